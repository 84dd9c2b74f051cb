"""cnn-eval refuses what it cannot score, with a clear message and no output.

Runtime errors (exit 2, message naming the cause): class names that differ
from the checkpoint's (both lists named; --ignore-class-names scores
anyway, with the checkpoint's names), melspec settings that differ (the key
and both values named), a label outside the checkpoint's classes (the item
named), a short item without --pad-short, an empty stream, a truncated
stream (from a file and from a pipe), a stream without labels, a one-class stream (named so), a missing
checkpoint, an output path that cannot be written.  A failed run leaves
neither its report nor its posteriors file (nor their temporary files).
Band-pass settings that differ are only noted.  Class names with a tab,
backslash or newline are escaped in the TSV report.  Usage errors exit 1;
--help and --version print to stdout.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import numpy as np  # noqa: E402

import testlib as T  # noqa: E402

T.require_module("torch")  # cnn14_ref.py
import ckpt  # noqa: E402
import cnn14_ref as R  # noqa: E402

MEL = {"sample_rate": 16000, "n_fft": 512, "hop_length": 160, "n_mels": 64, "amin": 1e-10}


def cnn_eval(*args, stdin=None, code=0):
    r = T.run(["cnn-eval", *args], stdin=stdin, code=code)
    assert code == 0 or r.stderr.startswith("cnn-eval: "), r.stderr
    return r


rng = np.random.default_rng(1)


def stream(path, classes, labels, frames=40, params=None, keys=None):
    p = {"tensor": "logmel", "classes": classes}
    p.update(params or {})
    items = []
    for i, y in enumerate(labels):
        n = frames[i] if isinstance(frames, list) else frames
        it = {"key": keys[i] if keys else f"k{i}", "tensors": {"logmel": (rng.standard_normal((n, 64)) * 10 - 30).astype(np.float32)}}
        if y is not None:
            it["fields"] = {"label": y}
        items.append(it)
    ckpt.write_stream(path, ckpt.make_header("t-cnn-eval-errors", p), items)


# checkpoints: cnn-tool's (classes "0", "1", "2", no melspec), and one with names and melspec
R.cnn_tool("init", "--classes", 3, "--width-div", 16, "--seed", 2, "-o", "plain.ckpt")
hdr, sd = ckpt.read_checkpoint("plain.ckpt")
ckpt.write_checkpoint("named.ckpt", sd, ckpt.model_params(3, 16, ["low", "mid", "high"]),
                      extra_params={"melspec": MEL, "bandpass": {"low": 450, "high": 550, "order": 4, "zero_phase": False}})

stream("named.msgpack", ["low", "mid", "high"], [0, 1, 2, 1], params={"melspec": MEL})
cnn_eval("named.ckpt", "named.msgpack")  # the baseline is fine (a band-pass note only)
r = cnn_eval("named.ckpt", "named.msgpack")
assert "band-pass" in r.stderr, r.stderr

# class names differ: both lists named; --ignore-class-names scores with the checkpoint's names
r = cnn_eval("plain.ckpt", "named.msgpack", code=2)
assert '["low", "mid", "high"]' in r.stderr and '["0", "1", "2"]' in r.stderr and "--ignore-class-names" in r.stderr, r.stderr
r = cnn_eval("--ignore-class-names", "plain.ckpt", "named.msgpack")
assert r.stdout.splitlines()[-4] == "true\\predicted\t0\t1\t2", r.stdout
stream("four.msgpack", ["a", "b", "c", "d"], [0, 1, 3, 2], keys=["x0", "x1", "odd-one", "x3"])
r = cnn_eval("plain.ckpt", "four.msgpack", code=2)
assert '["a", "b", "c", "d"]' in r.stderr, r.stderr
# a label outside the checkpoint's classes names the item
r = cnn_eval("--ignore-class-names", "plain.ckpt", "four.msgpack", code=2)
assert "'odd-one'" in r.stderr and "label 3" in r.stderr, r.stderr

# melspec settings differ: the key and both values named; absent on one side: not checked
stream("mel400.msgpack", ["low", "mid", "high"], [0, 1, 2], params={"melspec": dict(MEL, n_fft=400)})
r = cnn_eval("named.ckpt", "mel400.msgpack", code=2)
assert "n_fft 400 in the stream, 512 in the checkpoint" in r.stderr, r.stderr
stream("melextra.msgpack", ["low", "mid", "high"], [0, 1, 2], params={"melspec": dict(MEL, top_db=80)})
r = cnn_eval("named.ckpt", "melextra.msgpack", code=2)
assert "top_db 80 in the stream, (absent) in the checkpoint" in r.stderr, r.stderr
# a stream without melspec settings is refused by a checkpoint that has them (issue 13)
stream("nomel.msgpack", ["low", "mid", "high"], [0, 1, 2])
r = cnn_eval("named.ckpt", "nomel.msgpack", code=2)
assert r.stderr == "cnn-eval: nomel.msgpack: no params.melspec in the stream, and named.ckpt was trained on melspec features\n", r.stderr

# a checkpoint header declaring 30,000 classes is refused before anything is allocated (issue 13)
ckpt.write_checkpoint("many.ckpt", sd, dict(ckpt.model_params(3, 16), classes=30000))
r = cnn_eval("many.ckpt", "named.msgpack", code=2)
assert r.stderr == "cnn-eval: many.ckpt: 30000 classes in params.model, outside [1, 4096] (formats/limits.md)\n", r.stderr
# NaN weights and a negative running variance: refused naming the tensor
bad = dict(sd)
bad["fc1.weight"] = sd["fc1.weight"].copy()
bad["fc1.weight"][1, 2] = np.nan
ckpt.write_checkpoint("nan.ckpt", bad, ckpt.model_params(3, 16))
r = cnn_eval("nan.ckpt", "named.msgpack", code=2)
assert "nan.ckpt: fc1.weight: element " in r.stderr and "is NaN" in r.stderr, r.stderr
bad = dict(sd)
bad["bn0.running_var"] = -np.abs(sd["bn0.running_var"])
ckpt.write_checkpoint("negvar.ckpt", bad, ckpt.model_params(3, 16))
r = cnn_eval("negvar.ckpt", "named.msgpack", code=2)
assert "negvar.ckpt: bn0.running_var: element 0 is a negative variance" in r.stderr, r.stderr

# short items: an error naming the item unless --pad-short
stream("short.msgpack", ["0", "1", "2"], [0, 1, 2], frames=[40, 31, 12], keys=["ok", "tiny", "tinier"])
r = cnn_eval("plain.ckpt", "short.msgpack", code=2)
assert "'tiny' has 31 frames" in r.stderr and "--pad-short" in r.stderr, r.stderr
cnn_eval("--pad-short", "plain.ckpt", "short.msgpack")

# empty, truncated, unlabelled streams; a missing checkpoint
stream("empty.msgpack", ["0", "1", "2"], [])
r = cnn_eval("plain.ckpt", "empty.msgpack", code=2)
assert "no items" in r.stderr and "undefined" in r.stderr, r.stderr
stream("whole.msgpack", ["0", "1", "2"], [0, 1, 2, 0, 1])
data = open("whole.msgpack", "rb").read()
with open("cut.msgpack", "wb") as f:
    f.write(data[: len(data) - 5000])
r = cnn_eval("plain.ckpt", "cut.msgpack", code=2)
assert "truncated" in r.stderr, r.stderr
r = cnn_eval("plain.ckpt", stdin="cut.msgpack", code=2)
assert "stdin" in r.stderr and "truncated" in r.stderr, r.stderr
p = T.run(["sh", "-c", f"head -c {len(data) - 9} whole.msgpack | cnn-eval plain.ckpt"], code=None)
assert p.returncode == 2 and "truncated" in p.stderr, p.stderr
stream("nolabel.msgpack", ["0", "1", "2"], [0, None])
r = cnn_eval("plain.ckpt", "nolabel.msgpack", code=2)
assert "'k1'" in r.stderr and "label" in r.stderr, r.stderr
# labelled for a task with one class: described as such, not as "unlabelled"
stream("oneclass.msgpack", ["mid"], [0, 0])
r = cnn_eval("plain.ckpt", "oneclass.msgpack", code=2)
assert '1 class in params.classes: ["mid"]' in r.stderr and "no class names" not in r.stderr, r.stderr
stream("noclass.msgpack", [], [0])
r = cnn_eval("plain.ckpt", "noclass.msgpack", code=2)
assert "no class names" in r.stderr, r.stderr
r = cnn_eval("missing.ckpt", "whole.msgpack", code=2)
assert "missing.ckpt" in r.stderr, r.stderr
r = cnn_eval("whole.msgpack", "whole.msgpack", code=2)  # a stream is not a checkpoint

# a failed run leaves no output files
cnn_eval("-o", "rep.tsv", "-p", "post.msgpack", "plain.ckpt", "named.msgpack", code=2)
cnn_eval("-o", "rep.tsv", "-p", "post.msgpack", "plain.ckpt", "cut.msgpack", code=2)
assert not [f for f in os.listdir(".") if "rep" in f or "post" in f], os.listdir(".")
# an output that cannot be created fails before scoring, and leaves nothing
r = cnn_eval("-o", "nodir/rep.tsv", "-p", "post.msgpack", "plain.ckpt", "whole.msgpack", code=2)
assert "nodir/rep.tsv" in r.stderr, r.stderr
r = cnn_eval("-o", "rep.tsv", "-p", "nodir/post.msgpack", "plain.ckpt", "whole.msgpack", code=2)
assert "nodir/post.msgpack" in r.stderr, r.stderr
assert not [f for f in os.listdir(".") if "rep" in f or "post" in f], os.listdir(".")
cnn_eval("-o", "/dev/null", "-p", "/dev/null", "plain.ckpt", "whole.msgpack")

# class names with a tab, a backslash and a newline stay one TSV cell each (escaped)
odd = ["a\tb", "c\\d", "e\nf"]
ckpt.write_checkpoint("odd.ckpt", sd, ckpt.model_params(3, 16, odd))
stream("odd.msgpack", odd, [0, 1, 2])
r = cnn_eval("odd.ckpt", "odd.msgpack")
assert "\ntrue\\predicted\ta\\tb\tc\\\\d\te\\nf\n" in r.stdout, r.stdout
assert len([line for line in r.stdout.splitlines() if line.startswith("a\\tb\t")]) == 2, r.stdout

# usage errors
for args in ([], ["--batch", "0", "plain.ckpt"], ["--batch", "x", "plain.ckpt"], ["--threads", "-1", "plain.ckpt"],
             ["--bogus", "plain.ckpt"], ["plain.ckpt", "a", "b"], ["-", "-"], ["-p", "-", "plain.ckpt", "whole.msgpack"],
             ["-p", "-", "-o", "-", "plain.ckpt", "whole.msgpack"], ["--max-record", "lots", "plain.ckpt"]):
    r = cnn_eval(*args, code=1)
    assert "Try" in r.stderr, (args, r.stderr)
r = cnn_eval("--help")
assert r.stdout.startswith("Usage: cnn-eval") and "Example" in r.stdout, r.stdout
r = cnn_eval("--version")
assert r.stdout.startswith("cnn-eval "), r.stdout
T.done()
