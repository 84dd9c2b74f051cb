"""binlabels as a filter: labels joined onto a stream written by Python.
Every task's labels are checked against an independent reading of the CSV
(Python's csv module and the binning rule); missing keys stop the run with
their count and leave no complete stream; --drop-unlabelled, extra label
rows, split filtering, header params/stats, class counts in the end record,
stream-cat joining (also of older streams with the counts in the header),
piped vs file input."""
import csv
import io
import os
import subprocess
import sys

import msgpack
import msgpack_numpy
import numpy as np

fails = []


def check(cond, what):
    if not cond:
        fails.append(what)
        print("FAIL:", what)


def run(*args, stdin=None, env=None, prog="binlabels"):
    p = subprocess.run([prog, *args], input=stdin, capture_output=True, env=env)
    return p.returncode, p.stdout, p.stderr.decode()


rng = np.random.default_rng(5)


def write_stream(path, keys, params=None):
    with open(path, "wb") as f:
        pk = lambda o: f.write(msgpack.packb(o, default=msgpack_numpy.encode, use_bin_type=True))
        pk({"type": "header", "format": "sertools-stream", "version": 1, "producer": "test",
            "params": params if params is not None else {"sample_rate": 16000, "melspec": {"n_mels": 64}},
            "stats": {"frames": 7}})
        for k in keys:
            pk({"type": "item", "key": k,
                "tensors": {"logmel": rng.standard_normal((3 + len(k) % 4, 64)).astype(np.float32)},
                "fields": {"label": 99, "value": -1.0, "keep": "me"}})
        pk({"type": "end", "count": len(keys)})


def read_stream(data):
    recs = list(msgpack.Unpacker(io.BytesIO(data), object_hook=msgpack_numpy.decode, raw=False))
    check(recs and recs[0]["type"] == "header" and recs[-1]["type"] == "end", "not a complete stream")
    items = [r for r in recs if r["type"] == "item"]
    check(recs[-1]["count"] == len(items), "end count")
    return recs[0], items


def read_end(data):
    recs = list(msgpack.Unpacker(io.BytesIO(data), object_hook=msgpack_numpy.decode, raw=False))
    return recs[-1] if recs and recs[-1]["type"] == "end" else {}


def abandoned(data):
    """Not a complete stream: what was written has no end record (a reader downstream fails)."""
    try:
        recs = list(msgpack.Unpacker(io.BytesIO(data), object_hook=msgpack_numpy.decode, raw=False))
    except Exception:
        return True
    return not any(r.get("type") == "end" for r in recs if isinstance(r, dict))


def read_items_of(path):
    with open(path, "rb") as f:
        return {r["key"]: r for r in msgpack.Unpacker(f, object_hook=msgpack_numpy.decode, raw=False)
                if r["type"] == "item"}


# ---- the label file: 3 splits, every category, speakers 1..12 ----
codes = "ASHUFDCNOX"
rows = []
for i in range(240):
    split = ["Train", "Validation", "Test1"][i % 3]
    spk = "Unknown" if i % 41 == 40 else str([2, 10, 1, 9, 12, 3][(i // 3) % 6] if split != "Test1" else 100 + i % 5)
    rows.append({"FileName": f"MSP-PODCAST_{i // 10:04d}_{i % 10:04d}.wav", "EmoClass": codes[i % 10],
                 "EmoAct": f"{rng.choice([1, 3, 3.0001, 4.9999, 5, 7, rng.uniform(1, 7)]):.6g}",
                 "EmoVal": f"{rng.uniform(1, 7):.4f}", "EmoDom": f"{rng.uniform(1, 7):.4f}",
                 "SpkrID": spk, "Gender": ["Female", "Male"][i % 2], "Split_Set": split,
                 "Score": str([2, 9, 10][i % 3])})
os.makedirs("msp/Labels")
with open("msp/Labels/labels_consensus.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)

# an independent reading of what each task means
by_key = {}
with open("msp/Labels/labels_consensus.csv", newline="") as f:
    for r in csv.DictReader(f):
        by_key[r["FileName"].rsplit(".", 1)[0]] = r


def binned(x, a=3.0, b=5.0):
    return 0 if x <= a else 2 if x >= b else 1


names = ["angry", "sad", "happy", "surprise", "fear", "disgust", "contempt", "neutral", "other", "no_agreement"]
speakers = sorted({r["SpkrID"] for r in by_key.values() if r["SpkrID"] != "Unknown"}, key=int)


def expect(task, key, drop="X"):
    """(label, class, value) or None when the row has no label, 'drop' when dropped."""
    r = by_key[key]
    if task in ("arousal", "valence", "dominance"):
        col = {"arousal": "EmoAct", "valence": "EmoVal", "dominance": "EmoDom"}[task]
        x = float(r[col])
        c = binned(x)
        return c, ["low", "mid", "high"][c], x
    if task == "category":
        if r["EmoClass"] in drop.split(","):
            return "drop"
        kept = [n for c, n in zip(codes, names) if c not in drop.split(",")]
        n = names[codes.index(r["EmoClass"])]
        return kept.index(n), n, None
    if task == "speaker":
        if r["SpkrID"] == "Unknown":
            return None
        return speakers.index(r["SpkrID"]), r["SpkrID"], None
    raise ValueError(task)


all_keys = list(by_key)
train = [k for k in all_keys if by_key[k]["Split_Set"] == "Train"]
valid = [k for k in all_keys if by_key[k]["Split_Set"] == "Validation"]
# a feature stream: most Train and Validation items, in a shuffled order; some rows have no item
stream_keys = [k for k in all_keys if by_key[k]["Split_Set"] != "Test1" and k[-1] != "7"]
rng.shuffle(stream_keys)
write_stream("feats.msgpack", stream_keys)
src_items = read_items_of("feats.msgpack")


def check_labelled(out, task, splits, keys_in, drop="X", what="", source=None):
    source = source or src_items
    h, items = read_stream(out)
    want_keys = [k for k in keys_in if by_key[k]["Split_Set"] in splits and expect(task, k, drop) not in (None, "drop")]
    check([i["key"] for i in items] == want_keys, f"{what}: keys/order differ ({len(items)} vs {len(want_keys)})")
    counts = [0] * len(h["params"]["classes"])
    for it in items:
        e = expect(task, it["key"], drop)
        f = it["fields"]
        check((f["label"], f["class"]) == e[:2], f"{what}: {it['key']}: {f['label']}/{f['class']} want {e[:2]}")
        check(h["params"]["classes"][f["label"]] == f["class"], f"{what}: class name vs classes")
        if e[2] is None:
            check("value" not in f, f"{what}: {it['key']}: a value on a categorical task")
        else:
            check(f["value"] == e[2], f"{what}: {it['key']}: value {f['value']} want {e[2]}")
        check(f["split"] == by_key[it["key"]]["Split_Set"], f"{what}: split field")
        spk = by_key[it["key"]]["SpkrID"]
        check(f.get("speaker") == (None if spk == "Unknown" else spk), f"{what}: speaker field {f.get('speaker')}")
        check(f["keep"] == "me", f"{what}: other fields kept")
        t0 = source[it["key"]]["tensors"]["logmel"]
        check(it["tensors"]["logmel"].dtype == t0.dtype and np.array_equal(it["tensors"]["logmel"], t0),
              f"{what}: tensor changed")
        counts[f["label"]] += 1
    end = read_end(out)
    check(end.get("stats", {}).get("class_counts") == counts, f"{what}: end record {end} want class_counts {counts}")
    check("class_counts" not in h["stats"], f"{what}: class_counts in the header")
    check(h["stats"]["frames"] == 7, f"{what}: other stats kept")
    check(h["params"]["sample_rate"] == 16000 and h["params"]["melspec"] == {"n_mels": 64}, f"{what}: params kept")
    check(h["params"]["task"] == task, f"{what}: params.task {h['params']['task']}")
    check(h["history"][-1]["producer"] == "test", f"{what}: history")
    src = h["params"]["label_source"]
    check(src["file"] == os.path.realpath("msp/Labels/labels_consensus.csv") and src["key"] == "FileName",
          f"{what}: label_source {src}")
    return h, items


# ---- every task, split selections, both classes of input ----
for task in ["arousal", "valence", "dominance", "category"]:
    for splits in [["Train"], ["Validation"], ["Train", "Validation"]]:
        rc, out, err = run("--corpus", "msp", "-t", task, "-s", ",".join(splits), "feats.msgpack")
        check(rc == 0 and err == "", f"{task} {splits}: exit {rc}: {err}")
        if rc == 0:
            h, _ = check_labelled(out, task, splits, stream_keys, what=f"{task} {splits}")
            if task == "category":
                check(h["params"]["classes"] == names[:-1], f"category classes {h['params']['classes']}")
    rc, out, err = run("--corpus", "msp", "-t", task, "feats.msgpack")
    check(rc == 0, f"{task} all splits: {rc} {err}")
    if rc == 0:
        check_labelled(out, task, ["Train", "Validation", "Test1"], stream_keys, what=f"{task} all")

# category: which codes are dropped is an option
for drop in ["X,O", "", "N"]:
    rc, out, err = run("--corpus", "msp", "-t", "category", "--category-drop", drop, "feats.msgpack")
    check(rc == 0, f"category drop {drop!r}: {rc} {err}")
    if rc == 0:
        h, _ = check_labelled(out, "category", ["Train", "Validation"], stream_keys, drop=drop, what=f"drop {drop!r}")
        check(h["params"]["classes"] == [n for c, n in zip(codes, names) if c not in drop.split(",")],
              f"drop {drop!r}: classes {h['params']['classes']}")
        check(h["params"]["label_source"]["drop"] == drop, "label_source.drop")

# speaker: dense ids sorted as numbers, built from every row of the file (all splits)
known = [k for k in stream_keys if by_key[k]["SpkrID"] != "Unknown"]
unknown = [k for k in stream_keys if by_key[k]["SpkrID"] == "Unknown"]
check(len(unknown) > 0, "the test needs unknown speakers")
rc, out, err = run("--corpus", "msp", "-t", "speaker", "feats.msgpack")
check(rc == 2 and abandoned(out) and f"{len(unknown)} items have no speaker label" in err, f"unknown speakers: {err}")
rc, out, err = run("--corpus", "msp", "-t", "speaker", "-s", "Train", "--drop-unlabelled", "feats.msgpack")
check(rc == 0, f"speaker: {rc} {err}")
if rc == 0:
    h, items = check_labelled(out, "speaker", ["Train"], known, what="speaker")
    check(h["params"]["classes"] == speakers, f"speaker classes {h['params']['classes']} want {speakers}")
    check(speakers[:4] == ["1", "2", "3", "9"] and "100" in speakers, "speaker order is numeric")

# column:NAME, numeric (binned) and categorical (sorted as numbers when all are integers)
rc, out, err = run("--corpus", "msp", "-t", "column:Gender", "--categorical", "-s", "Train", "feats.msgpack")
check(rc == 0, f"column:Gender: {rc} {err}")
if rc == 0:
    h, items = read_stream(out)
    check(h["params"]["classes"] == ["Female", "Male"] and h["params"]["task"] == "column:Gender", "Gender classes")
    check(all(i["fields"]["class"] == by_key[i["key"]]["Gender"] for i in items) and "value" not in items[0]["fields"],
          "Gender labels")
rc, out, err = run("--corpus", "msp", "-t", "column:Score", "--categorical", "feats.msgpack")
check(rc == 0 and read_stream(out)[0]["params"]["classes"] == ["2", "9", "10"], f"Score categorical: {err}")
rc, out, err = run("--corpus", "msp", "-t", "column:Score", "--edges", "2,9.5", "--range", "0,10", "feats.msgpack")
check(rc == 0, f"Score binned: {rc} {err}")
if rc == 0:
    h, items = read_stream(out)
    for it in items:
        x = float(by_key[it["key"]]["Score"])
        check(it["fields"]["label"] == binned(x, 2, 9.5) and it["fields"]["value"] == x, f"Score {x}")
    check(h["params"]["label_source"]["range"] == [0, 10], "label_source.range")
rc, out, err = run("--corpus", "msp", "-t", "column:Score", "feats.msgpack")
check(rc == 2 and "Score: rating 9 is outside [1, 7]" in err, f"Score default range: {err}")
rc, out, err = run("--corpus", "msp", "-t", "column:Nope", "feats.msgpack")
check(rc == 2 and "missing required column 'Nope' (task column:Nope)" in err, f"column:Nope: {err}")

# ---- unlabelled items: an error with the count, the output abandoned; or dropped with a count ----
missing = ["nope-1", "MSP-PODCAST_9999_0001", "nope-3"]
mixed = stream_keys[:20] + missing[:1] + stream_keys[20:40] + missing[1:]
write_stream("mixed.msgpack", mixed)
rc, out, err = run("--corpus", "msp", "-t", "arousal", "mixed.msgpack")
check(rc == 2 and abandoned(out), f"missing keys: exit {rc}, {len(out)} bytes written, with an end record")
check("mixed.msgpack: 3 items have no arousal label (3 with no row in msp/Labels/labels_consensus.csv" in err
      and all(k in err for k in missing) and "--drop-unlabelled" in err, f"missing keys message: {err!r}")
with open("old.msgpack", "wb") as f:
    f.write(b"previous")
rc, out, err = run("--corpus", "msp", "-t", "arousal", "-o", "old.msgpack", "mixed.msgpack")
check(rc == 2 and open("old.msgpack", "rb").read() == b"previous", "-o: a failed run must leave the target alone")
rc, out, err = run("--corpus", "msp", "-t", "arousal", "-o", "new.msgpack", "mixed.msgpack")
check(rc == 2 and not os.path.exists("new.msgpack"), "-o: a failed run must create no file")
check(sorted(os.listdir(".")) == sorted(set(os.listdir("."))) and not [n for n in os.listdir(".") if n.startswith(".")],
      f"temporary files left: {os.listdir('.')}")
# piped: the same, and nothing is left in TMPDIR
os.makedirs("tmp")
env = dict(os.environ, TMPDIR=os.path.abspath("tmp"))
rc, out, err = run("--corpus", "msp", "-t", "arousal", stdin=open("mixed.msgpack", "rb").read(), env=env)
check(rc == 2 and abandoned(out) and "stdin: 3 items have no arousal label" in err, f"piped missing: {rc} {err!r}")
check(os.listdir("tmp") == [], f"files left in TMPDIR: {os.listdir('tmp')}")
# items already on their way downstream (more than the writer buffers) before the unlabelled one:
# the stream has no end record, so the next stage fails instead of taking it for a dataset
with open("big.msgpack", "wb") as f:
    pk = lambda o: f.write(msgpack.packb(o, default=msgpack_numpy.encode, use_bin_type=True))
    pk({"type": "header", "format": "sertools-stream", "version": 1, "producer": "test", "params": {}})
    for k in stream_keys[:3] + ["nope-big"] + stream_keys[3:5]:
        pk({"type": "item", "key": k, "tensors": {"logmel": np.zeros((4096, 64), np.float32)}})
    pk({"type": "end", "count": 6})
rc, out, err = run("--corpus", "msp", "-t", "arousal", "big.msgpack")
check(rc == 2 and len(out) > 1 << 20 and abandoned(out) and "1 items have no arousal label" in err,
      f"big: exit {rc}, {len(out)} bytes, {err!r}")
rc2, _, err2 = run(stdin=out, prog="stream-cat")
check(rc2 == 2 and "truncated" in err2, f"big: downstream of an abandoned stream: {rc2} {err2!r}")
# more missing keys than are named: still the full count
many = [f"gone-{i}" for i in range(30)]
write_stream("many.msgpack", many + stream_keys[:5])
rc, out, err = run("--corpus", "msp", "-t", "arousal", "many.msgpack")
check(rc == 2 and "30 items have no arousal label" in err and "gone-0" in err and "..." in err, f"many: {err!r}")
# --drop-unlabelled
rc, out, err = run("--corpus", "msp", "-t", "arousal", "--drop-unlabelled", "mixed.msgpack")
check(rc == 0 and "dropped 3 items that have no arousal label (3 with no row in" in err, f"--drop-unlabelled: {err!r}")
if rc == 0:
    check_labelled(out, "arousal", ["Train", "Validation"], [k for k in mixed if k in by_key], what="drop-unlabelled",
                   source=read_items_of("mixed.msgpack"))
# a key whose row is in another split is filtered silently, and counted with --verbose
rc, out, err = run("--corpus", "msp", "-t", "category", "-s", "Validation", "-v", "feats.msgpack")
n_train = sum(1 for k in stream_keys if by_key[k]["Split_Set"] == "Train")
n_valid_x = sum(1 for k in stream_keys if by_key[k]["Split_Set"] == "Validation" and by_key[k]["EmoClass"] == "X")
n_valid = sum(1 for k in stream_keys if by_key[k]["Split_Set"] == "Validation") - n_valid_x
unused = sum(1 for k in valid if k not in stream_keys and by_key[k]["EmoClass"] != "X")
want = (f"binlabels: feats.msgpack: {len(stream_keys)} items read, {n_valid} labelled and written, {n_train} in other "
        f"splits, {n_valid_x} of dropped categories, 0 with no row, 0 with no value; {unused} label rows of the "
        f"selected splits had no item\n")
check(rc == 0 and err.startswith(want), f"--verbose:\n got  {err!r}\n want {want!r}")

# ---- the same output from a file argument, stdin redirected from a file, and a pipe ----
args = ["--corpus", "msp", "-t", "arousal", "-s", "Train"]
outs = []
rc, o1, err = run(*args, "feats.msgpack")
outs.append(o1)
with open("feats.msgpack", "rb") as f:
    p = subprocess.run(["binlabels", *args], stdin=f, capture_output=True)
    check(p.returncode == 0, f"stdin file: {p.stderr}")
    outs.append(p.stdout)
rc, o3, err = run(*args, stdin=open("feats.msgpack", "rb").read(), env=env)
check(rc == 0, f"pipe: {err}")
outs.append(o3)
check(os.listdir("tmp") == [], f"files left in TMPDIR: {os.listdir('tmp')}")
streams = [read_stream(o) for o in outs]
for (h, items), name in zip(streams[1:], ["stdin file", "pipe"]):
    check(h["params"] == streams[0][0]["params"] and h["stats"] == streams[0][0]["stats"], f"{name}: header differs")
    check(read_end(outs[0]) == read_end(outs[1]) == read_end(outs[2]), f"{name}: end record differs")
    check(msgpack.packb(items, default=msgpack_numpy.encode) ==
          msgpack.packb(streams[0][1], default=msgpack_numpy.encode), f"{name}: items differ")
# stdin not at offset 0: reading starts there
with open("prefixed.bin", "wb") as f:
    f.write(b"JUNK" + open("feats.msgpack", "rb").read())
with open("prefixed.bin", "rb") as f:
    f.seek(4)
    p = subprocess.run(["binlabels", *args], stdin=f, capture_output=True)
check(p.returncode == 0 and msgpack.packb(read_stream(p.stdout)[1], default=msgpack_numpy.encode) ==
      msgpack.packb(streams[0][1], default=msgpack_numpy.encode), f"stdin at an offset: {p.stderr}")

# ---- stream-cat joins Train and Validation: params agree, class counts add up ----
run("--corpus", "msp", "-t", "arousal", "-s", "Train", "-o", "train.msgpack", "feats.msgpack")
os.makedirs("elsewhere")
p = subprocess.run(["binlabels", "--corpus", "../msp", "-t", "arousal", "-s", "Validation", "-o", "../dev.msgpack",
                    "../feats.msgpack"], cwd="elsewhere", capture_output=True)
check(p.returncode == 0, f"dev: {p.stderr}")
rc, out, err = run("train.msgpack", "dev.msgpack", prog="stream-cat")
check(rc == 0, f"stream-cat join: {err}")
if rc == 0:
    h, items = read_stream(out)
    counts = [0, 0, 0]
    for it in items:
        counts[it["fields"]["label"]] += 1
    end = read_end(out)
    check(end.get("stats", {}).get("class_counts") == counts, f"joined: end record {end} want class_counts {counts}")
    check(sum(counts) == len(items) and min(counts) > 0, f"joined: counts {counts} of {len(items)} items")
# --head and --keys select items: the inputs' counts would be wrong, so there are none
rc, out, err = run("--head", "3", "train.msgpack", "dev.msgpack", prog="stream-cat")
check(rc == 0 and len(read_stream(out)[1]) == 3 and "stats" not in read_end(out), f"--head: {read_end(out)}")
# a labelled stream and an unlabelled one differ in params: not joined
rc, out, err = run("train.msgpack", "feats.msgpack", prog="stream-cat", stdin=None)
check(rc == 2 and "header param" in err, "a labelled and an unlabelled stream are not joined")


# ---- older streams, with class_counts in the header: still read, still summed ----
def to_old(data, path):
    recs = list(msgpack.Unpacker(io.BytesIO(data), raw=False))
    recs[0].setdefault("stats", {})["class_counts"] = recs[-1]["stats"]["class_counts"]
    del recs[-1]["stats"]
    with open(path, "wb") as f:
        for r in recs:
            f.write(msgpack.packb(r, use_bin_type=True))
    return recs[0]["stats"]["class_counts"]


c_train = to_old(open("train.msgpack", "rb").read(), "old-train.msgpack")
c_dev = to_old(open("dev.msgpack", "rb").read(), "old-dev.msgpack")
rc, out, err = run("old-train.msgpack", "old-dev.msgpack", prog="stream-cat")
check(rc == 0, f"old streams: {err}")
if rc == 0:
    h, items = read_stream(out)
    check(h["stats"]["class_counts"] == [a + b for a, b in zip(c_train, c_dev)] and "stats" not in read_end(out),
          f"old streams: header counts {h['stats']} end {read_end(out)}")
# old and new mixed: neither place has every input's counts, so neither keeps any
rc, out, err = run("old-train.msgpack", "dev.msgpack", prog="stream-cat")
check(rc == 0 and "class_counts" not in read_stream(out)[0]["stats"] and "stats" not in read_end(out),
      f"old + new: {err} {read_stream(out)[0]['stats'] if rc == 0 else ''} {read_end(out)}")
# relabelling an old stream: its header counts are stale and go; the new ones are in the end record
rc, out, err = run("--corpus", "msp", "-t", "valence", "old-train.msgpack")
check(rc == 0 and "class_counts" not in read_stream(out)[0]["stats"] and
      sum(read_end(out)["stats"]["class_counts"]) == len(read_stream(out)[1]), f"relabel old: {err}")

# ---- a truncated input is an error and the output is abandoned ----
data = open("feats.msgpack", "rb").read()
for cut in [len(data) - 1, len(data) // 2]:
    with open("cut.msgpack", "wb") as f:
        f.write(data[:cut])
    rc, out, err = run("--corpus", "msp", "-t", "arousal", "cut.msgpack")
    check(rc == 2 and abandoned(out) and "cut.msgpack: " in err, f"truncated at {cut}: {rc} {err!r}")
    rc, out, err = run("--corpus", "msp", "-t", "arousal", stdin=data[:cut], env=env)
    check(rc == 2 and abandoned(out) and "stdin: " in err and os.listdir("tmp") == [], f"piped truncated: {rc} {err!r}")

# ---- --keys-only: the rows of the selected splits, in file order ----
rc, out, err = run("--corpus", "msp", "--keys-only", "-s", "Validation,Test1")
want = [k for k in all_keys if by_key[k]["Split_Set"] in ("Validation", "Test1")]
check(rc == 0 and out.decode().split("\n") == want + [""], f"keys-only: {rc} {err}")
rc, out, err = run("--corpus", "msp", "--keys-only", "-s", "Train", "-t", "category", "--audio-dir", "msp/Audios")
want = [f"{k} msp/Audios/{by_key[k]['FileName']}" for k in train if by_key[k]["EmoClass"] != "X"]
check(rc == 0 and out.decode().split("\n") == want + [""], f"keys-only --audio-dir: {rc} {err}")
rc, out, err = run("--corpus", "msp", "--keys-only", "-o", "train.keys", "-s", "Train")
check(rc == 0 and out == b"" and open("train.keys").read().split() == train, "keys-only -o")
# the key list selects the split from a stream
rc, out, err = run("-k", "train.keys", "--missing-ok", "feats.msgpack", prog="stream-cat")
check(rc == 0 and {i["key"] for i in read_stream(out)[1]} == {k for k in stream_keys if k in train}, "stream-cat -k")

if fails:
    print(f"{len(fails)} failures")
    sys.exit(1)
print("ok")
