"""Refusing what is surely a mistake (issue 15): binlabels with a --split
that matches none of the input's items is an error naming the splits the
input holds, with no stream left behind (--allow-empty writes the empty
stream on purpose); a failed --keys-only writes nothing, to a file or to
stdout, and a selection with no row is an error too (--allow-empty: an
empty list)."""
import io
import os
import sys

import msgpack

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import testlib as T  # noqa: E402

with open("labels.csv", "w") as f:
    f.write("FileName,EmoAct,EmoVal,EmoDom,Split_Set\n")
    for i in range(12):
        f.write(f"a{i}.wav,{1 + i % 7},4,4,{['Train', 'Development', 'Test1'][i % 3]}\n")
    f.write("bad key.wav,4,4,4,Test2\n")


def write_stream(path, keys):
    with open(path, "wb") as f:
        f.write(msgpack.packb({"type": "header", "format": "sertools-stream", "version": 1, "producer": "test",
                               "params": {}}))
        for k in keys:
            f.write(msgpack.packb({"type": "item", "key": k, "tensors": {}}))
        f.write(msgpack.packb({"type": "end", "count": len(keys)}))


def items(data):
    recs = list(msgpack.Unpacker(io.BytesIO(data), raw=False))
    T.check(recs and recs[-1]["type"] == "end", "not a complete stream")
    return [r["key"] for r in recs if r["type"] == "item"]


# the development features (a1, a4, ...) and one key with no row
dev = [f"a{i}" for i in range(12) if i % 3 == 1]
write_stream("dev.msgpack", dev + ["stranger"])
base = ["binlabels", "--csv", "labels.csv", "--task", "arousal", "--drop-unlabelled"]

# the right split: fine
r = T.run(base + ["-s", "Development", "dev.msgpack"], text=False)
T.check(items(r.stdout) == dev, f"Development: {items(r.stdout)}")

# the wrong split, which exists in the label file: an error naming what the input holds
for out in ([], ["-o", "w.msgpack"]):
    r = T.run(base + ["-s", "Train", *out, "dev.msgpack"], code=2)
    err = r.stderr
    T.check(err.startswith("binlabels: dev.msgpack: no item is in --split Train"), f"message: {err!r}")
    T.check("Development 4" in err and "1 with no row" in err and "--allow-empty" in err, f"splits present: {err!r}")
    T.check(len(err.strip().splitlines()) == 1, f"one line: {err!r}")
    if out:
        T.check(not os.path.exists("w.msgpack") and not any(n.startswith(".w.msgpack") for n in os.listdir(".")),
                "-o file (or its temporary) left behind")
    else:
        try:
            recs = list(msgpack.Unpacker(io.BytesIO(r.stdout.encode()), raw=False))
        except Exception:
            recs = []
        T.check(not any(isinstance(x, dict) and x.get("type") == "end" for x in recs),
                "a complete (empty) stream on stdout")
r = T.run(base + ["-s", "Train,Test1", "dev.msgpack"], code=2)
T.check("--split Train,Test1" in r.stderr, f"two splits: {r.stderr!r}")

# on purpose: --allow-empty
r = T.run(base + ["-s", "Train", "--allow-empty", "dev.msgpack"], text=False)
T.check(items(r.stdout) == [], f"--allow-empty: {items(r.stdout)}")

# --keys-only: complete or nothing
r = T.run(["binlabels", "--csv", "labels.csv", "--keys-only", "-s", "Development"])
T.check(r.stdout.split() == dev, f"keys: {r.stdout.split()}")
for out in ([], ["-o", "keys.txt"]):
    r = T.run(["binlabels", "--csv", "labels.csv", "--keys-only", *out], code=2)  # 'bad key' comes last
    T.check("white space" in r.stderr and r.stdout == "", f"failed --keys-only wrote {r.stdout!r}: {r.stderr!r}")
    T.check(not os.path.exists("keys.txt"), "failed --keys-only left its -o file")
# a split whose rows have no label for the task: no row selected is an error, --allow-empty allows it
with open("labels2.csv", "w") as f:
    f.write("FileName,EmoAct,EmoVal,EmoDom,Split_Set\nx.wav,,4,4,Train\ny.wav,3,4,4,Test1\n")
r = T.run(["binlabels", "--csv", "labels2.csv", "--keys-only", "-s", "Train", "--task", "arousal"], code=2)
T.check("no row selected" in r.stderr and "--allow-empty" in r.stderr and r.stdout == "", f"empty keys: {r.stderr!r}")
r = T.run(["binlabels", "--csv", "labels2.csv", "--keys-only", "-s", "Train", "--task", "arousal", "--allow-empty"])
T.check(r.stdout == "", f"--allow-empty keys: {r.stdout!r}")
r = T.run(["binlabels", "--csv", "labels2.csv", "--keys-only", "-s", "Test1", "--task", "arousal"])
T.check(r.stdout.split() == ["y"], f"Test1 keys: {r.stdout!r}")
T.done()
