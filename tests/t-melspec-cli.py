# melspec's command line and failure modes: short and empty items (and
# --pad-short against torchaudio on the zero-padded signal), wrong dtype or
# shape, missing tensor or sample rate, options that do not fit the stream,
# usage errors, non-finite and truncated input, atomic -o, and the first
# error by item order being reported whatever -j is.
import os
import sys
import warnings

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import msgpack  # noqa: E402
import msgpack_numpy as mn  # noqa: E402
import numpy as np  # noqa: E402

import testlib as T  # noqa: E402

T.require_module("torch")
T.require_module("torchaudio")
import torch  # noqa: E402
import torchaudio  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
MELSPEC = os.path.join(T.BIN, "melspec")


def write_stream(path, items, params, end=True):
    with open(path, "wb") as f:
        put = lambda o: f.write(msgpack.packb(o, default=mn.encode, use_bin_type=True))
        put({"type": "header", "format": "sertools-stream", "version": 1, "producer": "t-melspec-cli",
             "params": params})
        for key, tensors in items:
            put({"type": "item", "key": key, "tensors": tensors})
        if end:
            put({"type": "end", "count": len(items)})


def read_items(path):
    with open(path, "rb") as f:
        return list(msgpack.Unpacker(f, object_hook=mn.decode, raw=False, max_buffer_size=0))[1:-1]


def melspec(args, stdin=None):
    """melspec ARGS (stdin: bytes to feed it), whatever its exit status; output as bytes."""
    return T.run([MELSPEC] + args, input=stdin, code=None, text=False)


def expect_fail(args, code, pattern, label, stdin=None):
    r = melspec(args, stdin)
    err = r.stderr.decode(errors="replace")
    T.check(r.returncode == code, f"{label}: exit {r.returncode}, expected {code} ({err.strip()})")
    T.check(err.startswith("melspec: ") and pattern in err, f"{label}: message {err.strip()!r} lacks {pattern!r}")
    return r


rng = np.random.default_rng(7)
ok_wave = (0.1 * rng.standard_normal(4000)).astype(np.float32)
SR = {"sample_rate": 16000}

# ---- short items: N <= n_fft/2 = 256 cannot be reflect-padded ----
short = (0.1 * rng.standard_normal(200)).astype(np.float32)
write_stream("short.msgpack", [("fine", {"wave": ok_wave}), ("tiny-one", {"wave": short})], SR)
expect_fail(["short.msgpack"], 2, "item 2: key 'tiny-one': 200 samples is too short", "short item")
write_stream("edge.msgpack", [("edge", {"wave": short[:1].repeat(256)})], SR)
expect_fail(["edge.msgpack"], 2, "key 'edge': 256 samples", "item of exactly n_fft/2 samples")
expect_fail(["--nfft", "1024", "-o", "x.msgpack", "-"], 2, "stdin: item 2: key 'tiny-one': 200 samples",
            "short item read from stdin", stdin=open("short.msgpack", "rb").read())
T.check(not os.path.exists("x.msgpack"), "a failed run left its -o file behind")

# --pad-short zero-pads to n_fft/2 + 1 samples and equals torchaudio on that signal
r = melspec(["--pad-short", "-o", "padded.msgpack", "short.msgpack"])
T.check(r.returncode == 0, f"--pad-short failed: {r.stderr.decode()}")
if r.returncode == 0:
    y = read_items("padded.msgpack")[1]["tensors"]["logmel"]
    padded = np.concatenate([short, np.zeros(57, np.float32)])
    ms = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=512, hop_length=160, f_min=50, f_max=8000,
                                              n_mels=64, norm="slaney", mel_scale="slaney", pad_mode="reflect")
    ref = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=None)(ms(torch.from_numpy(padded))).T.numpy()
    d = np.abs(y - ref).max() if y.shape == ref.shape else np.inf
    print(f"--pad-short: shape {y.shape}, max diff vs torchaudio on the zero-padded signal {d:.2e} dB")
    T.check(y.shape == (2, 64) and d <= 1e-3, f"--pad-short: shape {y.shape}, diff {d}")

# empty items are an error even with --pad-short
write_stream("empty.msgpack", [("void", {"wave": np.zeros(0, np.float32)})], SR)
expect_fail(["--pad-short", "empty.msgpack"], 2, "key 'void': empty waveform", "empty item")

# ---- wrong tensors ----
write_stream("f64.msgpack", [("dbl", {"wave": ok_wave.astype(np.float64)})], SR)
expect_fail(["f64.msgpack"], 2, "key 'dbl': tensor 'wave' is <f8", "float64 wave")
write_stream("2d.msgpack", [("stereo", {"wave": np.zeros((2, 1000), np.float32)})], SR)
expect_fail(["2d.msgpack"], 2, "key 'stereo': tensor 'wave' is <f4 with 2 dimensions", "2-D wave")
write_stream("nowave.msgpack", [("x", {"audio": ok_wave})], SR)
expect_fail(["nowave.msgpack"], 2, "key 'x': no 'wave' tensor", "missing wave tensor")
write_stream("clash.msgpack", [("x", {"wave": ok_wave, "logmel": np.zeros((2, 2), np.float32)})], SR)
expect_fail(["clash.msgpack"], 2, "key 'x': already has a 'logmel' tensor", "existing logmel tensor")
bad = ok_wave.copy()
bad[1234] = np.nan
write_stream("nan.msgpack", [("n", {"wave": bad})], SR)
expect_fail(["nan.msgpack"], 2, "non-finite value", "NaN in the input")

# ---- header problems ----
write_stream("norate.msgpack", [("x", {"wave": ok_wave})], {})
expect_fail(["norate.msgpack"], 2, "no sample_rate", "missing sample_rate")
write_stream("floatrate.msgpack", [("x", {"wave": ok_wave})], {"sample_rate": 16000.5})
expect_fail(["floatrate.msgpack"], 2, "sample_rate is not a positive integer", "non-integer sample_rate")
write_stream("feats.msgpack", [("x", {"wave": ok_wave})], {"sample_rate": 16000, "tensor": "logmel"})
expect_fail(["feats.msgpack"], 2, "holds 'logmel' tensors", "feature stream as input")
write_stream("sr8.msgpack", [("x", {"wave": ok_wave})], {"sample_rate": 8000})
expect_fail(["sr8.msgpack"], 2, "f_max 8000 Hz is above the Nyquist frequency 4000 Hz", "default fmax at 8 kHz")
r = melspec(["--fmax", "4000", "-o", "sr8-out.msgpack", "sr8.msgpack"])
T.check(r.returncode == 0, f"8 kHz with --fmax 4000: {r.stderr.decode()}")

# ---- truncated input: an error, and the output is not a complete stream ----
write_stream("trunc.msgpack", [("a", {"wave": ok_wave}), ("b", {"wave": ok_wave})], SR, end=False)
r = expect_fail(["trunc.msgpack"], 2, "trunc.msgpack: ", "truncated input")
T.check(b"\xa3end" not in r.stdout, "a truncated input still produced an end record")

# ---- the first bad item by order is the one reported, for any -j ----
items = [(f"k{i}", {"wave": ok_wave}) for i in range(12)]
items[5] = ("bad5", {"wave": short})
items[9] = ("bad9", {"wave": short})
write_stream("two-bad.msgpack", items, SR)
for j in ["1", "2", "3"]:
    expect_fail(["-j", j, "-o", "two-bad-out.msgpack", "two-bad.msgpack"], 2, "item 6: key 'bad5'", f"-j {j} error order")
T.check(not os.path.exists("two-bad-out.msgpack"), "failed -j run left its -o file behind")

# ---- usage errors (exit 1) ----
for args, pattern in [(["--win", "600"], "--win 600 is longer than --nfft 512"),
                      (["--mels", "0"], "--mels"), (["--hop", "x"], "--hop"), (["--power", "0"], "--power"),
                      (["--fmin", "9000", "--fmax", "8000"], "--fmin 9000 must be below --fmax 8000"),
                      (["-j", "-1"], "--threads: '-1': must be an integer in"), (["--bogus"], "unknown or ambiguous option '--bogus'"), (["a", "b"], "one input stream at most")]:
    expect_fail(args + ["ok.msgpack"], 1, pattern, f"usage error {args}")

# ---- --help, --version ----
r = melspec(["--help"])
T.check(r.returncode == 0 and b"Usage: melspec" in r.stdout and b"Example" in r.stdout and not r.stderr, "--help")
r = melspec(["--version"])
T.check(r.returncode == 0 and r.stdout.startswith(b"melspec (sertools) "), "--version")

# ---- stdin/stdout and '-' ----
write_stream("ok.msgpack", [("x", {"wave": ok_wave})], SR)
a = melspec([], stdin=open("ok.msgpack", "rb").read())
b = melspec(["-"], stdin=open("ok.msgpack", "rb").read())
open("a.msgpack", "wb").write(a.stdout)
open("b.msgpack", "wb").write(b.stdout)
same = a.returncode == 0 and b.returncode == 0 and [
    (i["key"], i["tensors"]["logmel"].tobytes()) for i in read_items("a.msgpack")] == [
    (i["key"], i["tensors"]["logmel"].tobytes()) for i in read_items("b.msgpack")]
T.check(same, "stdin without and with '-' give different items")
r = melspec(["--progress", "-o", "p.msgpack", "ok.msgpack"])
T.check(r.returncode == 0 and b"melspec: 1 items" in r.stderr, f"--progress: {r.stderr!r}")

T.done()
