"""melspec's limits (formats/limits.md), each at the limit and one past it,
and no silent wrong numbers (issue 13): a sample beyond |x| = 1e8 is an
error naming the item (samples of 1e17 gave -100 dB frames with exit 0,
and NaN with --no-db); --nfft 65536 / 65537, --mels 512 / 513 (memory per
worker bounded: the 16777216 FFT took 6.5 GB), --win 2 / 1 (torchaudio's
window of one sample is [1], this one's [0]: refused rather than wrong).
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import msgpack  # noqa: E402
import msgpack_numpy as m  # noqa: E402
import numpy as np  # noqa: E402

import testlib as T  # noqa: E402


def write_stream(path, items, params):
    with open(path, "wb") as f:
        p = lambda o: f.write(msgpack.packb(o, default=m.encode, use_bin_type=True))
        p({"type": "header", "format": "sertools-stream", "version": 1, "producer": "test",
           "params": dict(params, tensor="wave")})
        for k, t in items:
            p({"type": "item", "key": k, "tensors": t})
        p({"type": "end", "count": len(items)})


def melspec(args):
    return subprocess.run(["melspec", "-j", "1", *args], capture_output=True)


def expect(args, code, message, label):
    r = melspec(args)
    err = r.stderr.decode(errors="replace")
    T.check(r.returncode == code, f"{label}: exit {r.returncode}, expected {code} ({err.strip()})")
    if message is not None:
        T.check(err == message, f"{label}: message {err!r}, expected {message!r}")
    return r


rng = np.random.default_rng(5)
ok = (0.1 * rng.standard_normal(140000)).astype(np.float32)
SR = {"sample_rate": 16000}
write_stream("ok.msgpack", [("x", {"wave": ok})], SR)

# samples: |x| <= 1e8 accepted, beyond it an error naming the item
lim = ok.copy()
lim[100], lim[200] = 1e8, -1e8
write_stream("lim.msgpack", [("x", {"wave": lim})], SR)
expect(["lim.msgpack", "-o", "o.msgpack"], 0, None, "samples at the limit")
big = ok.copy()
big[300] = 1e17
write_stream("big.msgpack", [("fine", {"wave": ok}), ("loud", {"wave": big})], SR)
msg = "melspec: big.msgpack: item 2: key 'loud': sample 300 is 1e+17, beyond the limit of 1e+08 (formats/limits.md)\n"
expect(["big.msgpack"], 2, msg, "1e17 sample")
expect(["--no-db", "big.msgpack"], 2, msg, "1e17 sample, --no-db")
# the one scan of the samples (wave_check) speaks the stream reader's words
# for NaN and Inf (formats/stream.md), and names a non-finite sample before
# an earlier out-of-range one, as when the reader checked first
both = big.copy()
both[900] = np.nan
inf = ok.copy()
inf[7] = -np.inf
write_stream("nonfinite.msgpack", [("fine", {"wave": ok}), ("both", {"wave": both}), ("inf", {"wave": inf})], SR)
for j in ("1", "2"):
    expect(["-j", j, "nonfinite.msgpack"], 2,
           "melspec: nonfinite.msgpack: item 2: key 'both': tensor 'wave': non-finite value nan at index 900\n",
           f"NaN after a 1e17 sample, -j {j}")
write_stream("inf.msgpack", [("inf", {"wave": inf})], SR)
expect(["inf.msgpack"], 2, "melspec: inf.msgpack: item 1: key 'inf': tensor 'wave': non-finite value -inf at index 7\n",
       "-inf sample")

# option limits that bound memory
expect(["--nfft", "65536", "--mels", "64", "ok.msgpack", "-o", "o.msgpack"], 0, None, "--nfft 65536")
expect(["--nfft", "65537", "ok.msgpack"], 2, "melspec: ok.msgpack: n_fft 65537: must be in 2..65536 (formats/limits.md)\n",
       "--nfft 65537")
expect(["--nfft", "16777216", "ok.msgpack"], 2, None, "--nfft 16777216")
expect(["--nfft", "4096", "--mels", "512", "ok.msgpack", "-o", "o.msgpack"], 0, None, "--mels 512")
expect(["--nfft", "4096", "--mels", "513", "ok.msgpack"], 2,
       "melspec: ok.msgpack: 513 mel bands: must be in 1..512 (formats/limits.md)\n", "--mels 513")
expect(["--win", "2", "ok.msgpack", "-o", "o.msgpack"], 0, None, "--win 2")
expect(["--win", "1", "ok.msgpack"], 2, "melspec: ok.msgpack: window length 1: must be in 2..n_fft (512)\n", "--win 1")
T.done()
