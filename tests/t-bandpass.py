"""bandpass (the program) against scipy on the same float32 input.

For the paper's eight widths around 500 Hz, at 16 kHz and 8 kHz, causal and
--zero-phase, one stream each through the program; every item's output is
compared with scipy.signal.sosfilt / sosfiltfilt (default padding) run in
float64 on the same float32 samples, with scipy's own butter(4, ..., 'sos')
coefficients.  Signals (RMS 0.2): white noise, a 500 Hz tone, out-of-band
tones (100 + 3000 Hz), a chirp, espeak-ng speech, a synthetic vowel (glottal
pulse train through formant resonators), noise on a DC offset, and short
items (1, 28, 100 samples; and 0 samples, which passes through when causal).
Tolerance: max abs error 1e-6 (the brief's bar is 1e-4; float32 rounding of
the output alone is up to 6e-8 here).

The same streams carry 4 s sines at the band edges and at the prewarped
centre f0 = rate/pi atan(sqrt(tan(pi lo/rate) tan(pi hi/rate))); the
steady-state gain measured on the program's output (least-squares fit over
seconds 2 to 3) must be -3.0103 dB at the edges and 0 dB at f0 (twice that
with --zero-phase), within 0.001 dB (the brief asks 0.05 dB).

Also: header (params.bandpass, sample_rate, tensor, history), other tensors
and fields passed through bit for bit, item order, -o FILE and a file
argument, --order 2 and 6, and filtering an already band-passed stream
(params.bandpass.previous, output equal to sosfilt applied twice).
"""
import io
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import msgpack  # noqa: E402
import msgpack_numpy  # noqa: E402
import numpy as np  # noqa: E402

import testlib as T  # noqa: E402

T.require_module("scipy")
import scipy.io.wavfile  # noqa: E402
import scipy.signal as ss  # noqa: E402

WIDTHS = [20, 40, 60, 80, 100, 200, 300, 400]
TOL = 1e-6
GAIN_TOL_DB = 0.001
rng = np.random.default_rng(7)
worst = {"causal": 0.0, "zero-phase": 0.0, "gain_db": 0.0}


def pack(obj):
    return msgpack.packb(obj, default=msgpack_numpy.encode, use_bin_type=True)


def make_stream(rate, items, params=None):
    p = {"sample_rate": rate, "tensor": "wave"}
    p.update(params or {})
    out = [pack({"type": "header", "format": "sertools-stream", "version": 1, "producer": "t-bandpass",
                 "params": p, "history": []})]
    for key, tensors, fields in items:
        out.append(pack({"type": "item", "key": key, "tensors": tensors, "fields": fields}))
    out.append(pack({"type": "end", "count": len(items)}))
    return b"".join(out)


def read_stream(data):
    recs = list(msgpack.Unpacker(io.BytesIO(data), object_hook=msgpack_numpy.decode, raw=False, max_buffer_size=0))
    assert recs[0]["type"] == "header" and recs[-1]["type"] == "end", "stream framing"
    return recs[0], recs[1:-1]


def bandpass(args, data):
    """bandpass's output, or None (a failure counted) when it does not exit 0."""
    p = T.run(["bandpass"] + args, input=data, text=False, code=None)
    err = p.stderr.decode(errors="replace")
    ok = T.check(p.returncode == 0, f"bandpass {' '.join(args)}: exit {p.returncode}: {err}")
    return p.stdout if ok else None


def rms_scale(x, rms=0.2):
    x = np.asarray(x, dtype=np.float64)
    return (x * (rms / np.sqrt(np.mean(x ** 2)))).astype(np.float32)


def speech(rate):
    with tempfile.TemporaryDirectory() as d:
        wav = os.path.join(d, "s.wav")
        subprocess.run(["espeak-ng", "-w", wav, "Speech emotion recognition, the quick brown fox."], check=True)
        sr, x = scipy.io.wavfile.read(wav)
    g = np.gcd(int(rate), int(sr))
    return rms_scale(ss.resample_poly(x.astype(np.float64), rate // g, sr // g))


def vowel(rate, seconds=1.5):
    """Rosenberg glottal pulses (110-130 Hz, jittered), differentiated (lip radiation), through three formant resonators."""
    n = int(rate * seconds)
    src = np.zeros(n)
    t = 0.0
    while t < n:
        period = rate / (120 + 10 * np.sin(6 * np.pi * t / rate) + rng.normal(0, 1))
        tp, tn = 0.4 * period, 0.16 * period
        k = np.arange(int(tp + tn))
        pulse = np.where(k < tp, 0.5 * (1 - np.cos(np.pi * k / tp)), np.cos(np.pi * (k - tp) / (2 * tn)))
        i = int(t)
        src[i:i + len(k)] += pulse[: n - i]
        t += period
    x = np.diff(src, prepend=0.0)
    for f, bw in ((700, 90), (1220, 110), (2600, 160)):
        r = np.exp(-np.pi * bw / rate)
        x = ss.lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / rate), r * r], x)
    return rms_scale(x)


def signals(rate):
    n = 2 * rate
    t = np.arange(n) / rate
    sig = {
        "noise": rms_scale(rng.standard_normal(n)),
        "tone500": rms_scale(np.sin(2 * np.pi * 500 * t + 0.3)),
        "tones-out": rms_scale(np.sin(2 * np.pi * 100 * t) + np.sin(2 * np.pi * 3000 * t + 1)),
        "chirp": rms_scale(ss.chirp(t, 50, t[-1], rate / 2 - 100)),
        "speech": speech(rate),
        "vowel": vowel(rate),
        "dc-noise": (0.1 + rms_scale(rng.standard_normal(rate // 2), 0.15)).astype(np.float32),
        "short-1": np.array([0.3], dtype=np.float32),
        "short-28": rms_scale(rng.standard_normal(28)),
        "short-100": rms_scale(rng.standard_normal(100)),
    }
    return sig


def sine_items(rate, lo, hi):
    f0 = rate / np.pi * np.arctan(np.sqrt(np.tan(np.pi * lo / rate) * np.tan(np.pi * hi / rate)))
    t = np.arange(4 * rate) / rate
    return {f"sine-{name}": ((0.5 * np.sin(2 * np.pi * f * t + 0.7)).astype(np.float32), f)
            for name, f in (("lo", lo), ("hi", hi), ("f0", f0))}


def amplitude(x, f, rate):
    """Least-squares amplitude of a sinusoid at f over seconds 2 to 3 of x: away
    from the start transient, and from the end one of --zero-phase's backward pass."""
    tail = np.asarray(x[2 * rate:3 * rate], dtype=np.float64)
    t = np.arange(2 * rate, 3 * rate) / rate
    basis = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, tail, rcond=None)
    return float(np.hypot(*coef))


def check_run(rate, w, zero_phase, sig):
    lo, hi = 500 - w / 2, 500 + w / 2
    sos = ss.butter(4, [lo, hi], "bandpass", fs=rate, output="sos")
    sines = sine_items(rate, lo, hi)
    items = []
    for key, x in sig.items():
        if zero_phase and len(x) <= 27:
            continue
        items.append((key, {"wave": x}, {"label": key}))
    if not zero_phase:
        items.append(("empty", {"wave": np.zeros(0, dtype=np.float32)}, {}))
    for key, (x, f) in sines.items():
        items.append((key, {"wave": x}, {}))
    args = ["--width", str(w)] + (["--zero-phase"] if zero_phase else [])
    out = bandpass(args, make_stream(rate, items))
    if out is None:
        return
    header, got = read_stream(out)
    mode = "zero-phase" if zero_phase else "causal"
    what = f"{mode}, width {w} at {rate} Hz"
    bp = header["params"].get("bandpass", {})
    expect = {"low": lo, "high": hi, "order": 4, "zero_phase": zero_phase, "center": 500.0, "width": float(w)}
    if bp != expect or header["params"].get("sample_rate") != rate or header["params"].get("tensor") != "wave":
        T.fail(f"{what}: header params {header['params']}")
    if header.get("producer") != "bandpass" or [h.get("producer") for h in header.get("history", [])] != ["t-bandpass"]:
        T.fail(f"{what}: producer/history {header.get('producer')} {header.get('history')}")
    if [g["key"] for g in got] != [k for k, _, _ in items]:
        T.fail(f"{what}: item keys {[g['key'] for g in got]}")
        return
    for (key, tensors, fields), g in zip(items, got):
        x = tensors["wave"]
        y = g["tensors"]["wave"]
        if y.dtype != np.float32 or y.shape != x.shape or g.get("fields", {}) != fields:
            T.fail(f"{what}: {key}: dtype {y.dtype} shape {y.shape} fields {g.get('fields')}")
            continue
        if len(x) == 0:
            continue
        x64 = x.astype(np.float64)
        ref = ss.sosfiltfilt(sos, x64) if zero_phase else ss.sosfilt(sos, x64)
        e = float(np.max(np.abs(y - ref)))
        worst[mode] = max(worst[mode], e)
        if e > TOL:
            i = int(np.argmax(np.abs(y - ref)))
            T.fail(f"{what}: {key}: max abs error {e:.3g} at sample {i} (got {y[i]:.9g}, scipy {ref[i]:.9g})")
        if key in sines:
            f = sines[key][1]
            db = 20 * np.log10(amplitude(y, f, rate) / amplitude(x, f, rate))
            want = (0.0 if key == "sine-f0" else -10 * np.log10(2)) * (2 if zero_phase else 1)
            worst["gain_db"] = max(worst["gain_db"], abs(db - want))
            if abs(db - want) > GAIN_TOL_DB:
                T.fail(f"{what}: gain at {f:.3f} Hz is {db:.4f} dB, expected {want:.4f} dB")


for rate in (16000, 8000):
    sig = signals(rate)
    for w in WIDTHS:
        for zp in (False, True):
            check_run(rate, w, zp, sig)

# other tensors and fields pass through; --low/--high, --order, -o, file argument
x = rms_scale(rng.standard_normal(16000))
extra = rng.standard_normal((3, 5)).astype(np.float64)
data = make_stream(16000, [("a", {"wave": x, "extra": extra}, {"label": 1, "split": "Train", "score": 0.5}),
                           ("b", {"wave": x[:5000]}, {})])
with tempfile.TemporaryDirectory() as d:
    src, dst = os.path.join(d, "in.msgpack"), os.path.join(d, "out.msgpack")
    with open(src, "wb") as f:
        f.write(data)
    for order in (2, 6):
        if bandpass(["--low", "300", "--high", "3400", "--order", str(order), "-o", dst, src], b"") is None:
            continue
        with open(dst, "rb") as f:
            header, got = read_stream(f.read())
        sos = ss.butter(order, [300, 3400], "bandpass", fs=16000, output="sos")
        bp = header["params"]["bandpass"]
        if bp != {"low": 300.0, "high": 3400.0, "order": order, "zero_phase": False}:
            T.fail(f"--low/--high --order {order}: params.bandpass {bp}")
        a = got[0]
        if set(a["tensors"]) != {"wave", "extra"} or a["tensors"]["extra"].dtype != np.float64 or \
                a["tensors"]["extra"].tobytes() != extra.tobytes() or a["fields"] != {"label": 1, "split": "Train", "score": 0.5}:
            T.fail(f"pass-through: tensors {list(a['tensors'])}, fields {a['fields']}")
        for g, n in zip(got, (16000, 5000)):
            e = float(np.max(np.abs(g["tensors"]["wave"] - ss.sosfilt(sos, x[:n].astype(np.float64)))))
            worst["causal"] = max(worst["causal"], e)
            if e > TOL:
                T.fail(f"--order {order} 300-3400 Hz, item {g['key']}: max abs error {e:.3g}")

# band-passing a band-passed stream: allowed, recorded, and equal to filtering twice
once = bandpass(["--width", "100"], make_stream(16000, [("a", {"wave": x}, {})]))
twice = bandpass(["--low", "450", "--high", "550", "--zero-phase"], once) if once else None
if twice:
    header, got = read_stream(twice)
    bp = header["params"]["bandpass"]
    if bp.get("previous") != {"low": 450.0, "high": 550.0, "order": 4, "zero_phase": False, "center": 500.0, "width": 100.0} \
            or bp.get("zero_phase") is not True:
        T.fail(f"twice: params.bandpass {bp}")
    sos = ss.butter(4, [450, 550], "bandpass", fs=16000, output="sos")
    first = read_stream(once)[1][0]["tensors"]["wave"]
    e = float(np.max(np.abs(got[0]["tensors"]["wave"] - ss.sosfiltfilt(sos, first.astype(np.float64)))))
    if e > TOL:
        T.fail(f"twice: max abs error {e:.3g}")

# --threads: items of unequal lengths (so workers finish out of turn) come out
# in input order with the same bytes for 1, 2 and 5 threads, causal and zero-phase
many = make_stream(16000, [(f"u{i}", {"wave": rms_scale(rng.standard_normal(400 + 997 * (i % 7)))}, {"i": i})
                           for i in range(23)])
for zp in ([], ["--zero-phase"]):
    outs = {t: bandpass(["--width", "100", "--threads", str(t)] + zp, many) for t in (1, 2, 5)}
    if all(outs.values()):
        items = {t: read_stream(o)[1] for t, o in outs.items()}
        keys = [it["key"] for it in items[1]]
        if keys != [f"u{i}" for i in range(23)]:
            T.fail(f"--threads 1 {' '.join(zp)}: item order {keys}")
        for t in (2, 5):
            same = len(items[t]) == len(items[1]) and all(
                a["key"] == b["key"] and a["tensors"]["wave"].tobytes() == b["tensors"]["wave"].tobytes()
                for a, b in zip(items[1], items[t]))
            if not same:
                T.fail(f"--threads {t} {' '.join(zp)}: items differ from --threads 1")

print("largest errors: causal %.3g, zero-phase %.3g (max abs, tolerance %g); gain %.3g dB from the ideal (tolerance %g)"
      % (worst["causal"], worst["zero-phase"], TOL, worst["gain_db"], GAIN_TOL_DB))
T.done()
