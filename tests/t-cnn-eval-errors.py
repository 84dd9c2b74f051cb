"""cnn-eval refuses what it cannot score, with a clear message and no output.

Runtime errors (exit 2, message naming the cause): class names that differ
from the checkpoint's (both lists named; --ignore-class-names scores
anyway, with the checkpoint's names), melspec settings that differ (the key
and both values named), a label outside the checkpoint's classes (the item
named), a short item without --pad-short, an empty stream, a truncated
stream (from a file and from a pipe), a stream without labels, a missing
checkpoint, an output path that cannot be written.  A failed run leaves
neither its report nor its posteriors file (nor their temporary files).
Band-pass settings that differ are only noted.  Class names with a tab,
backslash or newline are escaped in the TSV report.  Usage errors exit 1;
--help and --version print to stdout.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import numpy as np  # noqa: E402

import ckpt  # noqa: E402
import cnn14_ref as R  # noqa: E402

MEL = {"sample_rate": 16000, "n_fft": 512, "hop_length": 160, "n_mels": 64, "amin": 1e-10}


def run(*args, stdin=None, code=0):
    fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
    try:
        r = subprocess.run(["cnn-eval", *map(str, args)], stdin=fin, capture_output=True, text=True)
    finally:
        if stdin:
            fin.close()
    assert r.returncode == code, (args, r.returncode, r.stderr)
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
run("named.ckpt", "named.msgpack")  # the baseline is fine (a band-pass note only)
r = run("named.ckpt", "named.msgpack")
assert "band-pass" in r.stderr, r.stderr

# class names differ: both lists named; --ignore-class-names scores with the checkpoint's names
r = run("plain.ckpt", "named.msgpack", code=2)
assert '["low", "mid", "high"]' in r.stderr and '["0", "1", "2"]' in r.stderr and "--ignore-class-names" in r.stderr, r.stderr
r = run("--ignore-class-names", "plain.ckpt", "named.msgpack")
assert r.stdout.splitlines()[-4] == "true\\predicted\t0\t1\t2", r.stdout
stream("four.msgpack", ["a", "b", "c", "d"], [0, 1, 3, 2], keys=["x0", "x1", "odd-one", "x3"])
r = run("plain.ckpt", "four.msgpack", code=2)
assert '["a", "b", "c", "d"]' in r.stderr, r.stderr
# a label outside the checkpoint's classes names the item
r = run("--ignore-class-names", "plain.ckpt", "four.msgpack", code=2)
assert "'odd-one'" in r.stderr and "label 3" in r.stderr, r.stderr

# melspec settings differ: the key and both values named; absent on one side: not checked
stream("mel400.msgpack", ["low", "mid", "high"], [0, 1, 2], params={"melspec": dict(MEL, n_fft=400)})
r = run("named.ckpt", "mel400.msgpack", code=2)
assert "n_fft 400 in the stream, 512 in the checkpoint" in r.stderr, r.stderr
stream("melextra.msgpack", ["low", "mid", "high"], [0, 1, 2], params={"melspec": dict(MEL, top_db=80)})
r = run("named.ckpt", "melextra.msgpack", code=2)
assert "top_db 80 in the stream, (absent) in the checkpoint" in r.stderr, r.stderr
stream("nomel.msgpack", ["low", "mid", "high"], [0, 1, 2])
run("named.ckpt", "nomel.msgpack")

# short items: an error naming the item unless --pad-short
stream("short.msgpack", ["0", "1", "2"], [0, 1, 2], frames=[40, 31, 12], keys=["ok", "tiny", "tinier"])
r = run("plain.ckpt", "short.msgpack", code=2)
assert "'tiny' has 31 frames" in r.stderr and "--pad-short" in r.stderr, r.stderr
run("--pad-short", "plain.ckpt", "short.msgpack")

# empty, truncated, unlabelled streams; a missing checkpoint
stream("empty.msgpack", ["0", "1", "2"], [])
r = run("plain.ckpt", "empty.msgpack", code=2)
assert "no items" in r.stderr and "undefined" in r.stderr, r.stderr
stream("whole.msgpack", ["0", "1", "2"], [0, 1, 2, 0, 1])
data = open("whole.msgpack", "rb").read()
with open("cut.msgpack", "wb") as f:
    f.write(data[: len(data) - 5000])
r = run("plain.ckpt", "cut.msgpack", code=2)
assert "truncated" in r.stderr, r.stderr
r = run("plain.ckpt", stdin="cut.msgpack", code=2)
assert "stdin" in r.stderr and "truncated" in r.stderr, r.stderr
p = subprocess.run(f"head -c {len(data) - 9} whole.msgpack | cnn-eval plain.ckpt", shell=True, capture_output=True, text=True)
assert p.returncode == 2 and "truncated" in p.stderr, p.stderr
stream("nolabel.msgpack", ["0", "1", "2"], [0, None])
r = run("plain.ckpt", "nolabel.msgpack", code=2)
assert "'k1'" in r.stderr and "label" in r.stderr, r.stderr
r = run("missing.ckpt", "whole.msgpack", code=2)
assert "missing.ckpt" in r.stderr, r.stderr
r = run("whole.msgpack", "whole.msgpack", code=2)  # a stream is not a checkpoint

# a failed run leaves no output files
run("-o", "rep.tsv", "-p", "post.msgpack", "plain.ckpt", "named.msgpack", code=2)
run("-o", "rep.tsv", "-p", "post.msgpack", "plain.ckpt", "cut.msgpack", code=2)
assert not [f for f in os.listdir(".") if "rep" in f or "post" in f], os.listdir(".")
# an output that cannot be created fails before scoring, and leaves nothing
r = run("-o", "nodir/rep.tsv", "-p", "post.msgpack", "plain.ckpt", "whole.msgpack", code=2)
assert "nodir/rep.tsv" in r.stderr, r.stderr
r = run("-o", "rep.tsv", "-p", "nodir/post.msgpack", "plain.ckpt", "whole.msgpack", code=2)
assert "nodir/post.msgpack" in r.stderr, r.stderr
assert not [f for f in os.listdir(".") if "rep" in f or "post" in f], os.listdir(".")
run("-o", "/dev/null", "-p", "/dev/null", "plain.ckpt", "whole.msgpack")

# class names with a tab, a backslash and a newline stay one TSV cell each (escaped)
odd = ["a\tb", "c\\d", "e\nf"]
ckpt.write_checkpoint("odd.ckpt", sd, ckpt.model_params(3, 16, odd))
stream("odd.msgpack", odd, [0, 1, 2])
r = run("odd.ckpt", "odd.msgpack")
assert "\ntrue\\predicted\ta\\tb\tc\\\\d\te\\nf\n" in r.stdout, r.stdout
assert len([line for line in r.stdout.splitlines() if line.startswith("a\\tb\t")]) == 2, r.stdout

# usage errors
for args in ([], ["--batch", "0", "plain.ckpt"], ["--batch", "x", "plain.ckpt"], ["--threads", "-1", "plain.ckpt"],
             ["--bogus", "plain.ckpt"], ["plain.ckpt", "a", "b"], ["-", "-"], ["-p", "-", "plain.ckpt", "whole.msgpack"],
             ["-p", "-", "-o", "-", "plain.ckpt", "whole.msgpack"], ["--max-record", "lots", "plain.ckpt"]):
    r = run(*args, code=1)
    assert "Try" in r.stderr, (args, r.stderr)
r = run("--help")
assert r.stdout.startswith("Usage: cnn-eval") and "Example" in r.stdout, r.stdout
r = run("--version")
assert r.stdout.startswith("cnn-eval "), r.stdout
print("ok")
