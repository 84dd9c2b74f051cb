"""Python interop, both directions, with Debian's msgpack + msgpack_numpy.

1. Python writes every dtype (f32, f64, i32, i64, u8) x rank 0..4 (also with
   zero-size dimensions, Fortran-ordered and sliced arrays), fields of every
   scalar kind including numpy scalars, and many items.  The C reader's view
   (stream-dump: dtype, shape, payload bytes, fields) must equal what numpy
   holds, bit for bit; stream-cat's C re-write must read back in Python equal.
   Also with floats packed as float32 (Packer(use_single_float=True)).
2. The C writer (stream-gen matrix) writes; Python reads it with
   msgpack.Unpacker(object_hook=msgpack_numpy.decode, raw=False) exactly as
   formats/stream.md shows, and every value equals the generator's formula
   recomputed here (exact: compared as bytes, NaN payloads included).
Tolerance: none; every comparison is exact.
"""
import json
import math
import os
import subprocess
import sys

import msgpack
import msgpack_numpy
import numpy as np

BIN = os.environ["SERTOOLS_BIN"]
TESTBIN = os.environ["SERTOOLS_TESTBIN"]
rng = np.random.default_rng(3)
DTYPES = [np.float32, np.float64, np.int32, np.int64, np.uint8]


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, **kw)
    if p.returncode != 0:
        fail(f"{cmd} exited {p.returncode}: {p.stderr.decode(errors='replace')}")
    return p.stdout


def random_array(dt, shape):
    if np.issubdtype(dt, np.floating):
        a = rng.standard_normal(shape).astype(dt)
        flat = a.reshape(-1)
        specials = [np.nan, np.inf, -np.inf, -0.0, np.finfo(dt).max, np.finfo(dt).tiny / 4]
        flat[: min(len(specials), flat.size)] = specials[: flat.size]
        return a
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)


def python_items():
    items = []
    for dt in DTYPES:
        for rank in range(5):
            for zero in ([False, True] if rank else [False]):
                shape = [3, 2, 4, 2][:rank]
                if zero:
                    shape[rank - 1] = 0
                key = f"{np.dtype(dt).str}-r{rank}{'-zero' if zero else ''}"
                items.append((key, {"t": random_array(dt, tuple(shape))}, None))
    # memory layouts msgpack_numpy serialises in C order
    f = np.asfortranarray(rng.standard_normal((3, 5)).astype(np.float32))
    s = rng.integers(0, 100, (6, 8), dtype=np.int64)[::2, 1::3]
    items.append(("layouts", {"fortran": f, "slice": s, "scalar0d": np.array(7.25, dtype=np.float64)}, None))
    items.append(("no-tensors", {}, {"only": "fields"}))
    fields = {
        "int": 42, "neg": -(2**40), "big": 2**63 - 1, "float": 0.1, "str": "Ünïcödé \u20ac \U0001F600",
        "true": True, "false": False, "none": None, "nan": float("nan"), "inf": float("-inf"),
        "np_f32": np.float32(1.25), "np_f64": np.float64(-2.5e-300), "np_i32": np.int32(-7),
        "np_i64": np.int64(2**40), "np_u8": np.uint8(200), "np_bool": np.bool_(True),
    }
    items.append(("fields", {"wave": np.zeros(3, np.float32)}, fields))
    for i in range(300):
        items.append((f"utt-{i:04d}-\u00e9", {"wave": rng.standard_normal(i % 13).astype(np.float32),
                                                "label": np.array([i % 4], dtype=np.int64)},
                      {"label": i % 4, "split": ["Train", "Dev", "Test"][i % 3]}))
    return items


HEADER = {"type": "header", "format": "sertools-stream", "version": 1, "producer": "pytest",
          "producer_version": "0", "argv": ["pytest", "--x"],
          "params": {"sample_rate": 16000, "classes": ["low", "mid", "high"],
                     "melspec": {"n_fft": 400, "f_min": 0.0, "f_max": 8000.5, "center": True}},
          "stats": {"n": [1, 2, 3]}, "history": []}


def write_python(path, items, single_float=False):
    def pk(o):
        return msgpack.packb(o, default=msgpack_numpy.encode, use_single_float=single_float)
    with open(path, "wb") as out:
        out.write(pk(HEADER))
        for key, tensors, fields in items:
            rec = {"type": "item", "key": key, "tensors": tensors}
            if fields is not None:
                rec["fields"] = fields
            out.write(pk(rec))
        out.write(pk({"type": "end", "count": len(items)}))


def plain(v):
    """A field value as the C reader should hold it."""
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def same_value(got, want, single_float=False):
    # msgpack packs float subclasses (np.float64 too) itself; other numpy scalars go through msgpack_numpy
    packed_single = single_float and isinstance(want, float)
    want = plain(want)
    if isinstance(want, float):
        if packed_single:
            want = float(np.float32(want))
        if not math.isfinite(want):  # JSON (stream-dump) prints NaN and Inf as null
            return got is None or (isinstance(got, float) and (got == want or math.isnan(got) and math.isnan(want)))
        return isinstance(got, float) and got == want
    if isinstance(want, bool) or want is None:
        return got is want
    if isinstance(want, int):
        return isinstance(got, int) and not isinstance(got, bool) and got == want
    return got == want


def check_dump(path, items, single_float=False):
    lines = run([os.path.join(TESTBIN, "stream-dump"), path]).decode().splitlines()
    head = json.loads(lines[0])["header"]
    if head["params"] != HEADER["params"] or head["argv"] != HEADER["argv"]:
        fail(f"header seen by C: {head}")
    if json.loads(lines[-1]) != {"end": len(items)}:
        fail(f"end: {lines[-1]}")
    recs = [json.loads(l) for l in lines[1:-1]]
    if len(recs) != len(items):
        fail(f"C read {len(recs)} items, Python wrote {len(items)}")
    for rec, (key, tensors, fields) in zip(recs, items):
        if rec["key"] != key:
            fail(f"key {rec['key']!r} != {key!r}")
        if list(rec["tensors"]) != list(tensors):
            fail(f"{key}: tensor names {list(rec['tensors'])}")
        for name, arr in tensors.items():
            t = rec["tensors"][name]
            if t["dtype"] != arr.dtype.str or t["shape"] != list(arr.shape):
                fail(f"{key}/{name}: C sees {t['dtype']} {t['shape']}, numpy has {arr.dtype.str} {arr.shape}")
            if t["hex"] != np.ascontiguousarray(arr).tobytes().hex():
                fail(f"{key}/{name}: payload bytes differ")
        want = fields or {}
        if set(rec["fields"]) != set(want):
            fail(f"{key}: fields {sorted(rec['fields'])} != {sorted(want)}")
        for k, v in want.items():
            if not same_value(rec["fields"][k], v, single_float):
                fail(f"{key}: field {k}: C has {rec['fields'][k]!r}, Python wrote {v!r}")


def read_python(path):
    """Exactly as formats/stream.md shows."""
    with open(path, "rb") as f:
        return list(msgpack.Unpacker(f, object_hook=msgpack_numpy.decode, raw=False, max_buffer_size=0))


def check_rewrite(path, items):
    out = path + ".c.msgpack"
    run([os.path.join(BIN, "stream-cat"), "-o", out, path])
    recs = read_python(out)
    head, body, end = recs[0], recs[1:-1], recs[-1]
    if head["type"] != "header" or head["producer"] != "stream-cat" or head["params"] != HEADER["params"]:
        fail(f"rewritten header: {head}")
    if head["history"] != [{"producer": "pytest", "producer_version": "0", "argv": ["pytest", "--x"]}]:
        fail(f"history: {head['history']}")
    if end != {"type": "end", "count": len(items)}:
        fail(f"end record {end}")
    for rec, (key, tensors, fields) in zip(body, items):
        if rec["type"] != "item" or rec["key"] != key or set(rec["tensors"]) != set(tensors):
            fail(f"rewritten item {rec.get('key')!r}")
        for name, arr in tensors.items():
            got = rec["tensors"][name]
            if not isinstance(got, np.ndarray) or got.dtype != arr.dtype or got.shape != arr.shape or \
                    got.tobytes() != np.ascontiguousarray(arr).tobytes():
                fail(f"rewritten {key}/{name}: {got!r} != {arr!r}")
        for k, v in (fields or {}).items():
            if not same_value(rec.get("fields", {}).get(k), v):
                fail(f"rewritten {key}: field {k}: {rec.get('fields', {}).get(k)!r} != {v!r}")
        if not fields and "fields" in rec:
            fail(f"{key}: fields appeared: {rec['fields']}")


items = python_items()
write_python("py.msgpack", items)
check_dump("py.msgpack", items)
check_rewrite("py.msgpack", items)
write_python("py32.msgpack", items, single_float=True)
check_dump("py32.msgpack", items, single_float=True)

# C writes, Python reads: every value against the generator's formula
with open("c.msgpack", "wb") as f:
    subprocess.run([os.path.join(TESTBIN, "stream-gen"), "matrix", "40"], stdout=f, check=True)
recs = read_python("c.msgpack")
head, body, end = recs[0], recs[1:-1], recs[-1]
if head["format"] != "sertools-stream" or head["version"] != 1 or head["producer"] != "stream-gen" or \
        head["params"] != {"sample_rate": 16000, "tensor": "wave", "classes": ["neutral", "happy", "sad", "angry"]}:
    fail(f"C header as Python sees it: {head}")
if end != {"type": "end", "count": len(body)}:
    fail(f"end {end}")


def base(i, j):
    return (i * 7919 + j * 104729) % 20011 - 10005


def expect(dt, shape, j):
    n = int(np.prod(shape)) if shape else 1
    i = np.arange(n, dtype=np.int64)
    b = base(i, j)
    if dt == "<f4":
        a = (b.astype(np.float32) / np.float32(64)).astype(np.float32)
        sp = np.array([0x7fc00000, 0xffc00001, 0x7f800000, 0xff800000, 0x80000000, 1, 0x7f7fffff, 0x00800000],
                      dtype=np.uint32).view(np.float32)
    elif dt == "<f8":
        a = b.astype(np.float64) / 1024.0
        sp = np.array([0x7ff8000000000000, 0x7ff8000000000123, 0x7ff0000000000000, 0xfff0000000000000,
                       0x8000000000000000, 1, 0x7fefffffffffffff], dtype=np.uint64).view(np.float64)
    elif dt == "<i4":
        a = b.astype(np.int32)
        sp = np.array([-2**31, 2**31 - 1, 0, -1], dtype=np.int32)
    elif dt == "<i8":
        a = b * 1000000007
        sp = np.array([-2**63, 2**63 - 1, 0, -1], dtype=np.int64)
    else:
        a = ((i * 7919 + j * 104729) % 256).astype(np.uint8)
        sp = a[:0]
    k = min(len(sp), n)
    a[:k] = sp[:k]
    return a.reshape(shape)


j = 0
dims = [2, 3, 1, 4]
for dt in ["<f4", "<f8", "<i4", "<i8", "|u1"]:
    for rank in range(5):
        for zero in ([False, True] if rank else [False]):
            shape = dims[:rank]
            if zero:
                shape[rank - 1] = 0
            rec = body[j]
            key = f"{dt}-r{rank}{'-zero' if zero else ''}"
            if rec["key"] != key:
                fail(f"item {j}: key {rec['key']} != {key}")
            t, u = rec["tensors"]["t"], rec["tensors"]["u"]
            want = expect(dt, tuple(shape), j)
            if t.dtype.str != dt or t.shape != tuple(shape) or t.tobytes() != want.tobytes():
                fail(f"{key}: Python reads {t.dtype.str} {t.shape} {t!r}, expected {want!r}")
            if u.dtype != np.uint8 or u.tobytes() != expect("|u1", (j % 5,), j).tobytes():
                fail(f"{key}: u = {u!r}")
            f = rec["fields"]
            want_f = {"i": j, "neg": -j - 10**12, "f": j / 8, "s": f"name-{j}-\u00e9\u20ac", "b": j % 2 == 0,
                      "n": None}
            if f != want_f or type(f["f"]) is not float or type(f["b"]) is not bool:
                fail(f"{key}: fields {f} != {want_f}")
            j += 1
for e in range(40):
    rec = body[j]
    w = rec["tensors"]["wave"]
    if rec["key"] != f"extra-{e:05d}" or w.tobytes() != expect("<f4", (j % 17,), j).tobytes() or \
            rec["fields"] != {"i": j}:
        fail(f"extra item {e}: {rec}")
    j += 1
if j != len(body):
    fail(f"{len(body)} items, expected {j}")
print("ok")
