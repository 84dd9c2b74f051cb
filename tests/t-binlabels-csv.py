"""binlabels: the label file. Binning at the edges, both corpus spellings,
real-world CSV (quotes, CRLF, BOM, empty values), and every refusal with its
file:line:col and exit status. Checked through --keys-only with --task
(the labelled rows) and through labelled streams."""
import os
import subprocess
import sys

import msgpack
import msgpack_numpy

fails = []


def check(cond, what):
    if not cond:
        fails.append(what)
        print("FAIL:", what)


def run(*args, stdin=None):
    p = subprocess.run(["binlabels", *args], input=stdin, capture_output=True)
    return p.returncode, p.stdout, p.stderr.decode()


def write_stream(path, keys):
    with open(path, "wb") as f:
        pk = lambda o: f.write(msgpack.packb(o, default=msgpack_numpy.encode, use_bin_type=True))
        pk({"type": "header", "format": "sertools-stream", "version": 1, "producer": "test", "params": {}})
        for k in keys:
            pk({"type": "item", "key": k, "tensors": {}})
        pk({"type": "end", "count": len(keys)})


def read_items(data):
    recs = list(msgpack.Unpacker(__import__("io").BytesIO(data), object_hook=msgpack_numpy.decode, raw=False))
    assert recs[0]["type"] == "header" and recs[-1]["type"] == "end", recs[-1]
    return recs[0], [r for r in recs if r["type"] == "item"]


HEAD = "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set\n"


def row(name, act, val="4", dom="4", cls="N", spk="1", split="Train"):
    return f"{name}.wav,{cls},{act},{val},{dom},{spk},Female,{split}\n"


# ---- binning at and around the edges ----
edges = [("1", 0), ("3", 0), ("3.0", 0), ("3.0000000000000001", 0), ("3.0001", 1), ("4.9999", 1),
         ("5", 2), ("5.00", 2), ("7", 2), ("+5", 2), ("3e0", 0), (" 4 ", 1), ("1.0E0", 0), ("6.9999999", 2)]
with open("edges.csv", "w") as f:
    f.write(HEAD + "".join(row(f"k{i}", v) for i, (v, _) in enumerate(edges)))
write_stream("edges.msgpack", [f"k{i}" for i in range(len(edges))])
rc, out, err = run("--csv", "edges.csv", "-t", "arousal", "edges.msgpack")
check(rc == 0, f"edges: exit {rc}: {err}")
if rc == 0:
    h, items = read_items(out)
    check(h["params"]["classes"] == ["low", "mid", "high"], f"classes {h['params']['classes']}")
    for it, (v, want) in zip(items, edges):
        check(it["fields"]["label"] == want, f"rating {v!r}: label {it['fields']['label']}, want {want}")
        check(it["fields"]["class"] == ["low", "mid", "high"][want], f"rating {v!r}: class {it['fields']['class']}")
        check(it["fields"]["value"] == float(v), f"rating {v!r}: value {it['fields']['value']}")
    counts = [sum(1 for _, w in edges if w == c) for c in range(3)]
    end = list(msgpack.Unpacker(__import__("io").BytesIO(out), raw=False))[-1]
    check(end.get("stats", {}).get("class_counts") == counts, f"end record {end} want class_counts {counts}")

# --edges moves both edges with the same closedness: <= a low, >= b high
rc, out, err = run("--csv", "edges.csv", "-t", "arousal", "--edges", "3.0001,4.9999", "edges.msgpack")
check(rc == 0, f"--edges: exit {rc}: {err}")
if rc == 0:
    h, items = read_items(out)
    for it, (v, _) in zip(items, edges):
        x = float(v)
        want = 0 if x <= 3.0001 else 2 if x >= 4.9999 else 1
        check(it["fields"]["label"] == want, f"--edges 3.0001,4.9999: rating {v!r}: {it['fields']['label']} want {want}")
    check(h["params"]["label_source"]["edges"] == [3.0001, 4.9999], f"label_source {h['params']['label_source']}")

# ---- refusals: file, line, column, exit 2 ----
bad = [
    ("0.999", "outside [1, 7]"), ("7.001", "outside [1, 7]"), ("-3", "outside [1, 7]"),
    ("abc", "is not a number"), ("nan", "is not a number"), ("inf", "is not a number"),
    ("0x1p1", "is not a number"), ("4,5", None), ("3.5.1", "is not a number"), ("1e", "is not a number"),
]
for value, what in bad:
    text = HEAD + row("a", "4") + row("b", "2") + f"c.wav,N,{value},4,4,1,Male,Train\n"
    with open("bad.csv", "w") as f:
        f.write(text)
    rc, out, err = run("--csv", "bad.csv", "-t", "arousal", "--keys-only")
    check(rc == 2 and out == b"", f"rating {value!r}: exit {rc}, out {out!r}")
    if what:
        want = f"binlabels: bad.csv:4:9: EmoAct: "
        check(err.startswith(want) and what in err and value in err, f"rating {value!r}: message {err!r}")
    else:  # an unquoted comma makes one field too many
        check(err.startswith("binlabels: bad.csv:4: 9 fields, but the header has 8"), f"extra field: {err!r}")

# the other dimensions are checked too, and so is a row of another split
with open("bad.csv", "w") as f:
    f.write(HEAD + row("a", "4") + row("b", "4", dom="9", split="Test1"))
rc, out, err = run("--csv", "bad.csv", "-t", "dominance", "--split", "Train", "--keys-only")
check(rc == 2 and err.startswith("binlabels: bad.csv:3:13: EmoDom: rating 9 is outside [1, 7]"), f"dom: {rc} {err!r}")
rc, out, err = run("--csv", "bad.csv", "--stats")
check(rc == 2 and "bad.csv:3:13: EmoDom" in err, f"--stats checks all dims: {rc} {err!r}")
# ...but a column no task uses is not
rc, out, err = run("--csv", "bad.csv", "-t", "arousal", "--keys-only")
check(rc == 0 and out == b"a\nb\n", f"unused column checked: {rc} {out!r} {err!r}")

# --range widens what is accepted
with open("wide.csv", "w") as f:
    f.write(HEAD + row("a", "0.5") + row("b", "9"))
rc, out, err = run("--csv", "wide.csv", "-t", "arousal", "--range", "0,10", "--keys-only")
check(rc == 0 and out == b"a\nb\n", f"--range: {rc} {out!r} {err!r}")

# duplicate key (after the extension is stripped)
with open("dup.csv", "w") as f:
    f.write(HEAD + row("a", "4") + row("b", "4") + "Audios/a.flac,N,4,4,4,1,Male,Train\n")
rc, out, err = run("--csv", "dup.csv", "--keys-only")
check(rc == 2 and err == "binlabels: dup.csv:4:1: duplicate key 'a' (first on line 2)\n", f"dup: {rc} {err!r}")

# missing required columns are named
with open("nocol.csv", "w") as f:
    f.write("FileName,EmoClass,EmoVal,EmoDom,Split_Set\na.wav,N,4,4,Train\n")
rc, out, err = run("--csv", "nocol.csv", "-t", "arousal", "--keys-only")
check(rc == 2 and "nocol.csv: missing required column 'EmoAct' (task arousal)" in err, f"missing col: {err!r}")
rc, out, err = run("--csv", "nocol.csv", "--stats")
check(rc == 2 and "missing required column 'EmoAct'" in err, f"missing col stats: {err!r}")
rc, out, err = run("--csv", "nocol.csv", "--key", "Name", "--keys-only")
check(rc == 2 and "missing required column 'Name' (the key column)" in err, f"missing key col: {err!r}")
rc, out, err = run("--csv", "nocol.csv", "--split-column", "Part", "--keys-only")
check(rc == 2 and "missing required column 'Part' (the split column)" in err, f"missing split col: {err!r}")
rc, out, err = run("--csv", "nocol.csv", "-t", "speaker", "--keys-only")
check(rc == 2 and "speaker column" in err, f"speaker without column: {err!r}")

# malformed CSV is reported by the reader with its position
for text, where, what in [
    (HEAD + 'a.wav,N,4,4,4,1,"Fem"ale,Train\n', "2:22", "after a closing quote"),
    (HEAD + 'a.wav,N,4,4,4,1,Fem"ale,Train\n', "2:20", "quote inside an unquoted field"),
    (HEAD + 'a.wav,N,4,4,4,1,"Female,Train\n', "2:17", "never closed"),
    (HEAD + "a.wav,N,4,4,4,1,F\xe9male,Train\n", "2:18", "UTF-8"),
]:
    with open("mal.csv", "wb") as f:
        f.write(text.encode("latin-1") if "\xe9" in text else text.encode())
    rc, out, err = run("--csv", "mal.csv", "--keys-only")
    check(rc == 2 and err.startswith(f"binlabels: mal.csv:{where}: ") and what in err, f"malformed {what}: {rc} {err!r}")
rc, out, err = run("--csv", "/nonexistent.csv", "--keys-only")
check(rc == 2 and err.startswith("binlabels: /nonexistent.csv: "), f"no file: {err!r}")
open("empty.csv", "w").close()
rc, out, err = run("--csv", "empty.csv", "--keys-only")
check(rc == 2 and "empty.csv: empty file" in err, f"empty file: {err!r}")
with open("emptysplit.csv", "w") as f:
    f.write(HEAD + row("a", "4", split=""))
rc, out, err = run("--csv", "emptysplit.csv", "--keys-only")
check(rc == 2 and "emptysplit.csv:2:24: Split_Set: empty split name" in err, f"empty split: {err!r}")

# ---- real-world CSV: BOM, CRLF, quoted fields with commas/quotes/line breaks, empty values ----
text = ("\ufeff" + '"FileName",EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set\r\n'
        '"q,1.wav",H,"2.5",4,4,7,"Fe""male",Train\r\n'
        '\r\n'
        'q2.wav,S,,4,4,Unknown,"two\r\nlines",Train\r\n'
        'q3.wav, A ,6,4,4,3,,Validation')
with open("real.csv", "w", newline="") as f:
    f.write(text)
rc, out, err = run("--csv", "real.csv", "--keys-only")
check(rc == 0 and out == b"q,1\nq2\nq3\n", f"real csv keys: {rc} {out!r} {err!r}")
write_stream("real.msgpack", ["q3", "q,1"])
rc, out, err = run("--csv", "real.csv", "-t", "arousal", "real.msgpack")
check(rc == 0, f"real csv join: {rc} {err!r}")
if rc == 0:
    h, items = read_items(out)
    got = [(i["key"], i["fields"]["label"], i["fields"]["value"], i["fields"]["split"], i["fields"].get("speaker"))
           for i in items]
    check(got == [("q3", 2, 6.0, "Validation", "3"), ("q,1", 0, 2.5, "Train", "7")], f"real csv: {got}")
# an empty rating means "no label": such an item is unlabelled
write_stream("q2.msgpack", ["q2"])
rc, out, err = run("--csv", "real.csv", "-t", "arousal", "q2.msgpack")
check(rc == 2 and out == b"" and "1 with no value in column EmoAct" in err and "q2" in err, f"empty value: {err!r}")
# the category code is trimmed; "Unknown" speaker is no speaker
rc, out, err = run("--csv", "real.csv", "-t", "category", "q2.msgpack")
check(rc == 0 and read_items(out)[1][0]["fields"]["class"] == "sad" and "speaker" not in read_items(out)[1][0]["fields"],
      f"category on real csv: {rc} {err!r}")

# ---- corpus layout: both spellings, the new one first, neither is an error ----
os.makedirs("c1/Labels")
os.makedirs("c2/Labels")
os.makedirs("c3/Labels")
with open("c1/Labels/labels_consensus.csv", "w") as f:
    f.write(HEAD + row("x", "2"))
with open("c2/Labels/labels_concensus.csv", "w") as f:
    f.write(HEAD + row("y", "2"))
with open("c3/Labels/labels_consensus.csv", "w") as f:
    f.write(HEAD + row("new", "2"))
with open("c3/Labels/labels_concensus.csv", "w") as f:
    f.write(HEAD + row("old", "2"))
for d, want in [("c1", b"x\n"), ("c2", b"y\n"), ("c3", b"new\n")]:
    rc, out, err = run("--corpus", d, "--keys-only")
    check(rc == 0 and out == want, f"corpus {d}: {rc} {out!r} {err!r}")
os.makedirs("c4/Labels")
rc, out, err = run("--corpus", "c4", "--keys-only")
check(rc == 2 and "c4/Labels/labels_consensus.csv" in err and "c4/Labels/labels_concensus.csv" in err,
      f"no label file: {err!r}")

# ---- usage errors: exit 1 ----
for args, what in [
    (["--csv", "c1/Labels/labels_consensus.csv", "-t", "pleasure"], "unknown task 'pleasure'"),
    (["--csv", "x.csv", "--corpus", "c1", "--keys-only"], "exactly one of"),
    (["--keys-only"], "exactly one of"),
    (["--csv", "x.csv"], "--task is needed"),
    (["--csv", "x.csv", "-t", "arousal", "--edges", "5,3"], "edges"),
    (["--csv", "x.csv", "-t", "arousal", "--edges", "0.5,3"], "edges"),
    (["--csv", "x.csv", "-t", "arousal", "--edges", "3"], "--edges"),
    (["--csv", "x.csv", "-t", "category", "--category-drop", "Q"], "not an EmoClass code"),
    (["--csv", "x.csv", "-t", "arousal", "--categorical"], "--categorical"),
    (["--csv", "x.csv", "--stats", "--keys-only"], "separate modes"),
    (["--csv", "x.csv", "--stats", "-t", "arousal"], "no --task"),
    (["--csv", "x.csv", "--stats", "extra.msgpack"], "reads no stream"),
]:
    rc, out, err = run(*args)
    check(rc == 1 and what in err and "Try 'binlabels --help'" in err, f"usage {args}: {rc} {err!r}")
rc, out, err = run("--help")
check(rc == 0 and b"Usage: binlabels" in out and b"Examples:" in out, "--help")
rc, out, err = run("--version")
check(rc == 0 and out.startswith(b"binlabels (sertools) "), "--version")

if fails:
    sys.exit(1)
print("ok")
