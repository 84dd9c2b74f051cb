"""python/sertools_stream.py, the reader shipped for users, and the snippet
of formats/stream.md: both read what the C programs write and both refuse a
stream cut short at any offset instead of yielding a shorter dataset.

Checks: a melspec stream read whole (header params, keys, shapes, values
equal to stream-cat's JSON-free copy); every prefix in the first and last
300 bytes and 300 random ones raises (TruncatedStream or StreamError), as
does the documented snippet; data after the end record and a wrong end count
raise; write_stream's output is accepted by the C reader (stream-cat) and
read back equal.
"""
import os
import random
import re
import sys

SRC = os.environ["SERTOOLS_SRC"]
sys.path.insert(0, os.path.join(SRC, "python"))
sys.path.insert(0, os.path.join(SRC, "tests", "ref"))
import numpy as np  # noqa: E402

import testlib as T  # noqa: E402

T.require_module("msgpack_numpy")
import sertools_stream as ss  # noqa: E402
import tones  # noqa: E402

rng = np.random.default_rng(5)
for i, f in enumerate((300.0, 900.0, 2000.0)):
    tones.write_tone(f"a{i}.wav", rng, f, 0.5, 0.9)
T.run(["sh", "-c", "audio-read a0.wav a1.wav a2.wav | melspec > feats.ms"])
header, items = ss.read_stream("feats.ms")
T.check(header["params"]["melspec"]["n_mels"] == 64, f"params {header['params']}")
T.check([it.key for it in items] == ["a0", "a1", "a2"], f"keys {[it.key for it in items]}")
T.check(all(it.tensors["logmel"].shape[1] == 64 and it.tensors["logmel"].dtype == np.float32 for it in items),
        "logmel shapes")

# The documented snippet, as formats/stream.md has it.
doc = open(os.path.join(SRC, "formats", "stream.md"), encoding="utf-8").read()
snippet = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
T.check("count" in snippet, "the snippet in formats/stream.md does not check the end record's count")


def snippet_reads(path):
    """Runs the documented snippet on path: True when it completes."""
    code = snippet.replace('"feats.msgpack"', repr(path)).replace("print(", "(lambda *a, **k: None)(")
    try:
        exec(compile(code, "formats/stream.md", "exec"), {})
        return True
    except Exception:
        return False


T.check(snippet_reads("feats.ms"), "the documented snippet fails on a whole stream")

data = open("feats.ms", "rb").read()
offsets = sorted(set(list(range(1, 300)) + list(range(len(data) - 300, len(data))) +
                     random.Random(1).sample(range(300, len(data) - 300), 300)))
silent = []
for n in offsets:
    open("cut.ms", "wb").write(data[:n])
    try:
        ss.read_stream("cut.ms")
        silent.append(n)
    except ss.StreamError:
        pass
    if snippet_reads("cut.ms"):
        silent.append(("snippet", n))
print(f"{len(offsets)} truncation offsets of a {len(data)}-byte stream: {len(silent)} read without an error")
T.check(not silent, f"prefixes read without an error: {silent[:10]}")

open("extra.ms", "wb").write(data + data[-5:])
try:
    ss.read_stream("extra.ms")
    T.fail("data after the end record was accepted")
except ss.StreamError as e:
    T.check("after the end" in str(e), f"message {e}")

# write_stream: the C reader accepts it and it reads back equal
out = [ss.Item(f"k{i}", {"x": rng.standard_normal((3, 4)).astype(np.float32)}, {"label": i}) for i in range(4)]
ss.write_stream("py.ms", {"tensor": "x"}, out)
T.run(["stream-cat", "-o", "copy.ms", "py.ms"])
h2, back = ss.read_stream("copy.ms")
T.check([b.key for b in back] == [o.key for o in out] and all(np.array_equal(b.tensors["x"], o.tensors["x"]) and
        b.fields["label"] == o.fields["label"] for b, o in zip(back, out)), "write_stream round trip")
T.done()
