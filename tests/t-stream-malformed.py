"""Malformed streams: every one is refused by stream-cat with exit 2 and a
message "stream-cat: FILE: header|item N: ..." naming what is wrong.

Covers wrong types for every field of every record, negative/huge shapes,
more than 4 dims, shape x dtype != bytes, missing and empty keys, unknown
record types, object/pickle, structured and big-endian dtypes, a second
header, data after the end, end count mismatches, declared bin/str/array/map
lengths beyond the record limit and beyond the bytes present (also 4 GiB on
a tiny file, from a file and a pipe, where an allocation would fail: address
space limited, or ASan's allocator capped), too many values, deep nesting,
duplicate/empty/non-string/NUL map keys, invalid UTF-8, ext types, 0xc1,
integers beyond int64.  Then NaN/Inf: counted by --info, refused by
--finite (ST_READ_FINITE) naming item, key, tensor and index; an infinity
alone as well as a NaN.
"""
import json
import os
import resource
import subprocess
import sys

import msgpack
import msgpack_numpy
import numpy as np

SAN = os.environ.get("SERTOOLS_SANITIZE") == "1"
TESTBIN = os.environ["SERTOOLS_TESTBIN"]
failures = []

H = {"type": "header", "format": "sertools-stream", "version": 1, "producer": "t", "params": {"sample_rate": 16000}}


def pk(o):
    return msgpack.packb(o, default=msgpack_numpy.encode)


def nd(dtype="<f4", shape=(4,), data=None, kind=b"", **extra):
    d = {b"nd": True, b"type": dtype, b"kind": kind, b"shape": list(shape),
         b"data": bytes(16) if data is None else data}
    d.update(extra)
    return d


def item(key="k", tensors=None, **extra):
    rec = {"type": "item", "key": key, "tensors": {"wave": nd()} if tensors is None else tensors}
    rec.update(extra)
    return rec


def stream(*records, end=None):
    body = b"".join(r if isinstance(r, bytes) else pk(r) for r in records)
    n = sum(1 for r in records if isinstance(r, dict) and r.get("type") == "item")
    return pk(H) + body + pk({"type": "end", "count": n if end is None else end})


def check(name, data, want, env=None, stdin_pipe=False, limit_memory=False, code=2):
    path = f"case-{len(failures)}-{abs(hash(name)) % 10**8}.msgpack"
    with open(path, "wb") as f:
        f.write(data)
    e = dict(os.environ)
    e.update(env or {})
    pre = None
    if limit_memory:
        if SAN:
            # ASan reserves terabytes of address space; cap its allocator instead
            e["ASAN_OPTIONS"] = e.get("ASAN_OPTIONS", "") + ":allocator_may_return_null=1:max_allocation_size_mb=1024"
        else:
            pre = lambda: resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))
    if stdin_pipe:
        p = subprocess.run(["stream-cat"], input=data, capture_output=True, env=e, preexec_fn=pre)
        where = "stdin"
    else:
        p = subprocess.run(["stream-cat", path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=e,
                           preexec_fn=pre)
        where = path
    err = p.stderr.decode(errors="replace")
    if p.returncode != code:
        failures.append(f"{name}: exit {p.returncode}, expected {code}: {err.strip()}")
    elif not err.startswith(f"stream-cat: {where}: ") and not err.startswith("stream-cat: SERTOOLS"):
        failures.append(f"{name}: message does not name the input: {err.strip()}")
    elif want not in err:
        failures.append(f"{name}: message lacks {want!r}: {err.strip()}")
    elif err.count("\n") != 1:
        failures.append(f"{name}: expected one line: {err!r}")
    os.unlink(path)


def raw_map(*pairs):
    """A msgpack map from already-packed (key, value) byte pairs, duplicates allowed."""
    n = len(pairs)
    head = bytes([0x80 | n]) if n < 16 else b"\xde" + n.to_bytes(2, "big")
    return head + b"".join(k + v for k, v in pairs)


def s(x):
    return pk(x)


def item_with_field(value_bytes):
    """An item record whose field 'x' is the given raw msgpack bytes."""
    return raw_map((s("type"), s("item")), (s("key"), s("k")), (s("tensors"), s({})),
                   (s("fields"), raw_map((s("x"), value_bytes))))


# ---- header
for name, h, want in [
    ("header type int", {**H, "type": 1}, "not a sertools-stream stream"),
    ("header format", {**H, "format": "other"}, "not a sertools-stream stream"),
    ("header format missing", {k: v for k, v in H.items() if k != "format"}, "not a sertools-stream stream"),
    ("header version str", {**H, "version": "1"}, "unsupported format version"),
    ("header version 2", {**H, "version": 2}, "unsupported format version"),
    ("header version 0", {**H, "version": 0}, "unsupported format version"),
    ("header params list", {**H, "params": [1]}, "'params' has the wrong type"),
    ("header stats str", {**H, "stats": "x"}, "'stats' has the wrong type"),
    ("header argv str", {**H, "argv": "a b"}, "'argv' has the wrong type"),
    ("header argv ints", {**H, "argv": [1, 2]}, "'argv' has the wrong type"),
    ("header history map", {**H, "history": {}}, "'history' has the wrong type"),
    ("header history of str", {**H, "history": ["x"]}, "'history' has the wrong type"),
    ("header producer int", {**H, "producer": 3}, "'producer' has the wrong type"),
    ("header producer_version", {**H, "producer_version": 1.0}, "'producer_version' has the wrong type"),
]:
    check(name, pk(h) + pk({"type": "end", "count": 0}), want)
check("empty input", b"", "empty input")
check("text", b"hello world\n", "header: byte 0: record is not a msgpack map")
check("item first", pk(item()) + pk({"type": "end", "count": 1}), "not a sertools-stream stream")
check("header truncated", pk(H)[:-3], "header: truncated record")

# ---- items
for name, rec, want in [
    ("key int", item(key=5), "item 2: item has no key"),
    ("key missing", {"type": "item", "tensors": {}}, "item 2: item has no key"),
    ("key empty", item(key=""), "item 2: item has no key"),
    ("key bin", item(key=b"k"), "item 2: item has no key"),
    ("tensors list", item(tensors=[1]), "key 'k': tensors is not a map"),
    ("tensors missing", {"type": "item", "key": "k"}, "key 'k': tensors is missing"),
    ("fields list", item(fields=[1]), "key 'k': fields is not a map"),
    ("field list", item(fields={"x": [1, 2]}), "field 'x' is not a scalar"),
    ("field bin", item(fields={"x": b"ab"}), "field 'x' is not a scalar"),
    ("field map", item(fields={"x": {"a": 1}}), "field 'x' is not a scalar"),
    ("field ndarray", item(fields={"x": np.zeros(2)}), "field 'x' is not a scalar"),
    ("field numpy f2", item(fields={"x": np.float16(1)}), "field 'x' is not a scalar"),
    ("field numpy bad size", item(fields={"x": {b"nd": False, b"type": "<f4", b"data": b"abc"}}),
     "field 'x' is not a scalar"),
    ("unknown item entry", item(label=3), "unknown item entry 'label'"),
    ("tensor int", item(tensors={"wave": 3}), "tensor 'wave' is not an ndarray map"),
    ("nd false", item(tensors={"wave": {**nd(), b"nd": False}}), "no nd: true"),
    ("nd missing", item(tensors={"wave": {k: v for k, v in nd().items() if k != b"nd"}}), "no nd: true"),
    ("nd 1", item(tensors={"wave": {**nd(), b"nd": 1}}), "no nd: true"),
    ("dtype missing", item(tensors={"wave": {k: v for k, v in nd().items() if k != b"type"}}),
     "missing or non-string dtype"),
    ("dtype int", item(tensors={"wave": nd(dtype=4)}), "missing or non-string dtype"),
    ("dtype f2", item(tensors={"wave": nd(dtype="<f2", shape=(8,))}), "unsupported dtype '<f2'"),
    ("dtype big-endian", item(tensors={"wave": nd(dtype=">f4")}), "unsupported dtype '>f4'"),
    ("dtype big-endian i8", item(tensors={"wave": nd(dtype=">i8", shape=(2,))}), "unsupported dtype '>i8'"),
    ("dtype complex", item(tensors={"wave": nd(dtype="<c8", shape=(2,))}), "unsupported dtype '<c8'"),
    ("object dtype (pickle)", item(tensors={"wave": nd(dtype=[["", "|O"]], kind=b"O", data=b"\x80\x04N.")}),
     "refused ndarray kind"),
    ("object dtype str", item(tensors={"wave": nd(dtype="|O", kind=b"O")}), "refused ndarray kind"),
    ("structured V", item(tensors={"wave": nd(dtype=[["a", "<f4"]], kind=b"V")}), "refused ndarray kind"),
    ("kind str V", item(tensors={"wave": nd(kind="V")}), "refused ndarray kind"),
    ("unknown ndarray entry", item(tensors={"wave": {**nd(), b"order": b"F"}}), "unknown ndarray entry 'order'"),
    ("shape missing", item(tensors={"wave": {k: v for k, v in nd().items() if k != b"shape"}}), "shape is missing"),
    ("shape int", item(tensors={"wave": {**nd(), b"shape": 4}}), "shape is not an array"),
    ("shape negative", item(tensors={"wave": nd(shape=(-4,))}), "dimension 0 is not a non-negative integer"),
    ("shape float", item(tensors={"wave": nd(shape=(4.0,))}), "dimension 0 is not a non-negative integer"),
    ("shape str", item(tensors={"wave": nd(shape=("4",))}), "dimension 0 is not a non-negative integer"),
    ("shape huge", item(tensors={"wave": nd(shape=(2**62, 2**62))}), "shape overflows"),
    ("shape huge with zero", item(tensors={"wave": nd(shape=(2**40, 0, 2**40), data=b"")}), "shape overflows"),
    ("shape beyond int64", item(tensors={"wave": nd(shape=(2**64 - 1,))}), "out of range"),
    ("5 dims", item(tensors={"wave": nd(shape=(1, 1, 1, 1, 4))}), "5 dimensions (at most 4)"),
    ("shape x dtype", item(tensors={"wave": nd(shape=(3,))}), "shape x dtype is 12 bytes but data has 16"),
    ("shape x dtype f8", item(tensors={"wave": nd(dtype="<f8", shape=(4,))}),
     "shape x dtype is 32 bytes but data has 16"),
    ("data missing", item(tensors={"wave": {k: v for k, v in nd().items() if k != b"data"}}), "data is missing"),
    ("data str", item(tensors={"wave": nd(data="0123456789abcdef")}), "data is not binary"),
    ("type missing", {"key": "k", "tensors": {}}, "item 2: record without a type"),
    ("type unknown", {"type": "foo"}, "unknown record type 'foo'"),
    ("type int", {"type": 7}, "record type is not a string"),
    ("second header", H, "a second header inside the stream"),
]:
    check(name, stream(item("a"), rec), want)

# ---- end record
check("end count mismatch", stream(item("a"), end=5), "end record says 5 items but 1 were read")
check("end count low", stream(item("a"), item("b"), end=1), "end record says 1 items but 2 were read")
check("end count negative", stream(end=-1), "end record says -1 items")
check("end count str", pk(H) + pk({"type": "end", "count": "0"}), "end record without an integer count")
check("end count missing", pk(H) + pk({"type": "end"}), "end record without an integer count")
check("end unknown entry", pk(H) + pk({"type": "end", "count": 0, "x": 1}), "unknown end record entry 'x'")
check("end stats not a map", pk(H) + pk({"type": "end", "count": 0, "stats": [1]}), "end record: 'stats' is not a map")
check("no end", pk(H) + pk(item("a")), "item 2: truncated stream: input ends after 1 items without an end record")
check("data after end", stream(item("a")) + pk(item("b")), "data after the end record")
check("junk after end", stream(item("a")) + b"\n", "data after the end record")
check("two streams", stream(item("a")) + stream(item("b")), "data after the end record")
check("record not a map", pk(H) + pk(3), "item 1: byte ")
check("record array", pk(H) + pk([1, 2]), "record is not a msgpack map")

# ---- msgpack-level defects, inside an item's field
for name, value, want in [
    ("ext fixext1", b"\xd4\x01\x00", "unsupported msgpack type 0xd4"),
    ("ext8", b"\xc7\x02\x05ab", "unsupported msgpack type 0xc7"),
    ("ext32", b"\xc9\x00\x00\x00\x01\x05a", "unsupported msgpack type 0xc9"),
    ("timestamp ext", b"\xd6\xff\x00\x00\x00\x01", "unsupported msgpack type 0xd6"),
    ("0xc1", b"\xc1", "unsupported msgpack type 0xc1"),
    ("uint64 beyond int64", b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff", "out of range"),
    ("invalid UTF-8", b"\xa2\xff\xfe", "string is not valid UTF-8"),
    ("UTF-8 surrogate", b"\xa3\xed\xa0\x80", "string is not valid UTF-8"),
    ("UTF-8 overlong", b"\xa2\xc0\xaf", "string is not valid UTF-8"),
    ("non-string key", raw_map((s(1), s(2))), "map key is not a string"),
    ("array key", raw_map((s([1]), s(2))), "map key is not a string"),
    ("empty key", raw_map((s(""), s(2))), "empty map key"),
    ("NUL in key", raw_map((s("a\0b"), s(2))), "map key contains a NUL byte"),
    ("invalid UTF-8 key", raw_map((b"\xa1\xff", s(2))), "map key is not valid UTF-8"),
    ("duplicate key", raw_map((s("a"), s(1)), (s("a"), s(2))), "duplicate map key 'a'"),
    ("duplicate key in a big map", raw_map(*[(s(f"k{i}"), s(i)) for i in range(40)], (s("k17"), s(0))),
     "duplicate map key 'k17'"),
    ("deep nesting", b"\x91" * 20 + b"\x01", "nested deeper than 16 levels"),
]:
    check(name, pk(H) + item_with_field(value) + pk({"type": "end", "count": 1}), want)
check("duplicate record key", pk(H) + raw_map((s("type"), s("item")), (s("type"), s("item")), (s("key"), s("k")),
                                               (s("tensors"), s({}))), "duplicate map key 'type'")
nested = 1
for _ in range(20):
    nested = [nested]
check("deep nesting in header", pk({**H, "params": {"x": nested}}) + pk({"type": "end", "count": 0}),
      "header: nested deeper than 16 levels")

# ---- declared lengths: beyond the limit, beyond the bytes present
# (value bytes declare 1 MiB and are followed by 3 bytes only)
MB = 1 << 20
declared = {
    "bin16": b"\xc5\xff\xf0", "bin32": b"\xc6" + MB.to_bytes(4, "big"),
    "str16": b"\xda\xff\xf0", "str32": b"\xdb" + MB.to_bytes(4, "big"),
    "array16": b"\xdc\xff\xf0", "array32": b"\xdd" + MB.to_bytes(4, "big"),
    "map16": b"\xde\xff\xf0", "map32": b"\xdf" + MB.to_bytes(4, "big"),
}
for name, head in declared.items():
    rec = item_with_field(head + b"\xa1a\x01")
    check(f"{name} beyond the limit", pk(H) + rec, "item 1: record larger than the limit of 1024 bytes",
          env={"SERTOOLS_MAX_RECORD": "1K"})
    check(f"{name} beyond the bytes present", pk(H) + rec, "item 1: truncated record")
    check(f"{name} beyond the bytes present, piped", pk(H) + rec, "item 1: truncated record", stdin_pipe=True)
check("bin8 beyond the bytes present", pk(H) + item_with_field(b"\xc4\xff" + b"ab"), "truncated record")
check("real bin beyond the limit", stream(item(tensors={"wave": nd(shape=(500,), data=bytes(2000))})),
      "record larger than the limit of 1024 bytes", env={"SERTOOLS_MAX_RECORD": "1K"})
check("header beyond the limit", pk({**H, "argv": ["x" * 2000]}), "header: record larger than the limit",
      env={"SERTOOLS_MAX_RECORD": "1K"})
check("too many values", stream(item(fields={"x": None}), item_with_field(b"\xdd" + (70000).to_bytes(4, "big") +
                                                                          b"\xc0" * 70000)),
      "item 2: record holds more than 65936 msgpack values", env={"SERTOOLS_MAX_RECORD": "100K"})
check("bad SERTOOLS_MAX_RECORD", stream(), "SERTOOLS_MAX_RECORD: 'lots' is not a size",
      env={"SERTOOLS_MAX_RECORD": "lots"})
check("zero SERTOOLS_MAX_RECORD", stream(), "is not a size", env={"SERTOOLS_MAX_RECORD": "0"})
# 4 GiB declared on a tiny input: an error, not an allocation
for name, head in [("bin32", b"\xc6\xff\xff\xff\xf0"), ("str32", b"\xdb\xff\xff\xff\xf0"),
                   ("array32", b"\xdd\xff\xff\xff\xf0"), ("map32", b"\xdf\x7f\xff\xff\xf0")]:
    rec = pk(H) + item_with_field(head + b"\xa1a\x01")
    for piped in (False, True):
        check(f"4 GiB {name} {'piped' if piped else 'file'}", rec, "truncated record",
              env={"SERTOOLS_MAX_RECORD": "8G"}, stdin_pipe=piped, limit_memory=True)

# ---- NaN and Inf
with open("nan.msgpack", "wb") as f:
    subprocess.run([os.path.join(TESTBIN, "stream-gen"), "nan"], stdout=f, check=True)
p = subprocess.run(["stream-cat", "--info", "nan.msgpack"], capture_output=True, text=True)
if p.returncode != 0 or "tensor wave: 3 items" not in p.stdout or "NON-FINITE VALUES: 2" not in p.stdout:
    failures.append(f"--info does not flag NaN/Inf: {p.returncode} {p.stdout} {p.stderr}")
p = subprocess.run(["stream-cat", "--info", "--json", "nan.msgpack"], capture_output=True, text=True)
info = json.loads(p.stdout)
if info["tensors"]["wave"]["nonfinite"] != 2 or info["tensors"]["wave"]["count"] != 3:
    failures.append(f"--info --json: {info['tensors']}")
clean = subprocess.run([os.path.join(TESTBIN, "stream-gen"), "wave", "2", "16"], capture_output=True).stdout
p = subprocess.run(["stream-cat", "--info"], input=clean, capture_output=True, text=False)
if p.returncode != 0 or b"NON-FINITE" in p.stdout:
    failures.append(f"--info flags a clean stream: {p.stdout}")
if subprocess.run(["stream-cat", "nan.msgpack"], stdout=subprocess.DEVNULL).returncode != 0:
    failures.append("NaN is legal data for a reader that does not ask for finite values")
for cmd in (["stream-cat", "--finite", "nan.msgpack"], [os.path.join(TESTBIN, "stream-dump"), "--finite", "nan.msgpack"]):
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    want = "nan.msgpack: item 2: key 'utt000001': tensor 'wave': non-finite value nan at index 5"
    if p.returncode != 2 or want not in p.stderr:
        failures.append(f"{cmd}: {p.returncode} {p.stderr!r}")
# an infinity alone (the NaN above stops the reader before it): refused as well
with open("inf.keys", "w") as f:
    f.write("utt000002\n")
subprocess.run(["stream-cat", "-k", "inf.keys", "-o", "inf.msgpack", "nan.msgpack"], check=True)
for cmd in (["stream-cat", "--finite", "inf.msgpack"], [os.path.join(TESTBIN, "stream-dump"), "--finite", "inf.msgpack"]):
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    want = "inf.msgpack: item 1: key 'utt000002': tensor 'wave': non-finite value -inf at index 3"
    if p.returncode != 2 or want not in p.stderr:
        failures.append(f"{cmd}: {p.returncode} {p.stderr!r}")

if failures:
    print("\n".join("FAIL: " + f for f in failures))
    sys.exit(1)
print("ok")
