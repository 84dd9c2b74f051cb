# melspec against torchaudio 0.13: the filterbank, then whole outputs on
# noise, tones, speech (espeak-ng) and synthetic speech-like signals, odd
# lengths and silence, for the default (Cnn14) settings and for non-default
# options; -j N output identical to -j 1; header and pass-through.
#
# References, both computed here from the same float32 input:
#   ta32  torchaudio's MelSpectrogram + AmplitudeToDB as shipped (float32),
#         the equality target;
#   ta64  the same transforms built with torch's default dtype float64, so
#         that the window, filterbank, STFT and GEMM are all double: the
#         exact maths.
# melspec computes its filterbank in double and rounds it to float32;
# torchaudio computes it in float32 (its f_pts differ from the exact ones by
# an ulp or two), which moves its weights by up to ~2e-7, and a band whose
# edge catches a much stronger bin by up to ~1e-3 dB (more with 128 mels).
# melspec's FFT is in double (tests/t-melspec-truth.py); torchaudio's
# float32 FFT computes each bin with an
# error of about 3e-7 of the frame's RMS bin amplitude, so a band's accuracy
# depends on its level relative to its frame: a band whose mean bin power is
# 50 dB below the frame's mean bin power is good to ~1e-3 dB, one 80 dB
# below to ~0.03 dB, and 128 dB below is float32 noise.  The checks:
#   bands within 50 dB (RESOLVED):
#     |ours - ta64| <= TOL = 1e-3 dB                 (the exact maths)
#     |ours - ta32| <= TOL + |ta32 - ta64|          (torchaudio, allowing for
#                                                    torchaudio's own rounding)
#     and for the default settings, where torchaudio's filterbank rounding
#     is small, |ours - ta32| <= TOL outright;
#   bands 50..80 dB below: |ours - ta64| <= COARSE_TOL = 0.05 dB;
#   every value of a power-spectrum dB output (floored at -100 dB):
#     |ours - ta64| <= FLOOR_TOL = 0.5 dB;
#   digital silence: exactly -100 dB, as torchaudio gives.
import os
import sys
import warnings

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import msgpack  # noqa: E402
import msgpack_numpy as mn  # noqa: E402
import numpy as np  # noqa: E402

import testlib as T  # noqa: E402

T.require_module("scipy")
T.require_module("torch")
T.require_module("torchaudio")
import scipy.io.wavfile  # noqa: E402
import scipy.signal  # noqa: E402
import torch  # noqa: E402
import torchaudio  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
TOL, COARSE_TOL, FLOOR_TOL, FB_TOL = 1e-3, 0.05, 0.5, 1e-6
RESOLVED, COARSE = 50.0, 80.0


def write_stream(path, items, params):
    with open(path, "wb") as f:
        put = lambda o: f.write(msgpack.packb(o, default=mn.encode, use_bin_type=True))
        put({"type": "header", "format": "sertools-stream", "version": 1, "producer": "t-melspec",
             "params": params, "history": []})
        for key, tensors, fields in items:
            put({"type": "item", "key": key, "tensors": tensors, "fields": fields})
        put({"type": "end", "count": len(items)})


def read_stream(path):
    with open(path, "rb") as f:
        recs = list(msgpack.Unpacker(f, object_hook=mn.decode, raw=False, max_buffer_size=0))
    assert recs[0]["type"] == "header" and recs[-1]["type"] == "end", "malformed output"
    return recs[0], recs[1:-1]


def melspec(args, inp, out):
    T.run([os.path.join(T.BIN, "melspec")] + args + ["-o", out, inp])
    return read_stream(out)


def transforms(sr, n_fft=512, win=None, hop=160, fmin=50.0, fmax=8000.0, mels=64, power=2.0, db=True, f64=False):
    """torchaudio's pipeline as a function of a float32 numpy signal;
    (frames, mels) float64.  With f64, also each band's mean bin power
    relative to its frame's mean bin power, in dB (see the top of this file)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if f64 else torch.float32)
    try:
        ms = torchaudio.transforms.MelSpectrogram(
            sample_rate=sr, n_fft=n_fft, win_length=win, hop_length=hop, f_min=fmin, f_max=fmax, n_mels=mels,
            power=power, norm="slaney", mel_scale="slaney", pad_mode="reflect")
        spec2 = torchaudio.transforms.Spectrogram(n_fft=n_fft, win_length=win, hop_length=hop, power=2.0,
                                                  pad_mode="reflect")
    finally:
        torch.set_default_dtype(old)
    to_db = torchaudio.transforms.AmplitudeToDB(stype="power" if power == 2.0 else "magnitude", top_db=None)

    def apply(x):
        with torch.inference_mode():
            t = torch.from_numpy(x.astype(np.float64) if f64 else x)
            y = ms(t)
            y = (to_db(y) if db else y).T.numpy().astype(np.float64)
            if not f64:
                return y
            p = spec2(t)                                   # (freqs, frames) power
            fb = ms.mel_scale.fb                           # (freqs, mels)
            band_mean = (p.T @ fb) / fb.sum(0).clamp(min=1e-30)
            frame_mean = p.mean(0, keepdim=True).T
            rel = 10 * torch.log10(band_mean.clamp(min=1e-300) / frame_mean.clamp(min=1e-300))
            return y, rel.numpy()
    return apply


def as_db(y, power):
    """Linear outputs (--no-db) are compared in dB with the dB rule."""
    return 20.0 / power * np.log10(np.maximum(y.astype(np.float64), 1e-10))


def compare(label, ours, ref32, ref64_rel, linear_power=None, strict32=False, report=None):
    ref64, rel = ref64_rel
    if ours.shape != ref32.shape:
        T.fail(f"{label}: shape {ours.shape}, torchaudio {ref32.shape}")
        return
    if linear_power:
        ours, ref32, ref64 = (as_db(a, linear_power) for a in (ours, ref32, ref64))
    ours = ours.astype(np.float64)
    resolved, coarse = rel >= -RESOLVED, (rel >= -COARSE) & (rel < -RESOLVED)
    d32, d64, own = np.abs(ours - ref32), np.abs(ours - ref64), np.abs(ref32 - ref64)
    m32, m64 = d32[resolved].max(initial=0), d64[resolved].max(initial=0)
    excess = (d32 - own)[resolved].max(initial=0)
    mcoarse, mall = d64[coarse].max(initial=0), d64.max()
    if report is not None:
        report.append((label, m32, m64, own[resolved].max(initial=0), mcoarse, mall, resolved.mean()))
    T.check(m64 <= TOL, f"{label}: max |ours - torchaudio(float64)| = {m64:.3g} dB on resolved values")
    T.check(excess <= TOL, f"{label}: |ours - torchaudio| exceeds |torchaudio - torchaudio(float64)| by {excess:.3g} dB")
    if strict32:
        T.check(m32 <= TOL, f"{label}: max |ours - torchaudio| = {m32:.3g} dB on resolved values")
    T.check(mcoarse <= COARSE_TOL, f"{label}: max |ours - torchaudio(float64)| = {mcoarse:.3g} dB 50-80 dB down")
    if linear_power is None and "power 1" not in label:
        T.check(mall <= FLOOR_TOL, f"{label}: max |ours - torchaudio(float64)| = {mall:.3g} dB overall")


# ---- the filterbank ----
for sr, n_fft, mels, fmin, fmax in [(16000, 512, 64, 50, 8000), (16000, 512, 128, 0, 8000), (8000, 256, 40, 20, 4000),
                                    (22050, 1024, 80, 0, 11025), (16000, 511, 64, 50, 8000), (16000, 400, 23, 300, 3400)]:
    out = T.run([os.path.join(T.TESTBIN, "melspec-fbank"), sr, n_fft, mels, fmin, fmax], text=False).stdout
    ours = np.frombuffer(out, np.float32).reshape(n_fft // 2 + 1, mels).astype(np.float64)
    ref = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, fmin, fmax, mels, sr, "slaney", "slaney").numpy()
    torch.set_default_dtype(torch.float64)
    ref64 = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, fmin, fmax, mels, sr, "slaney", "slaney").numpy()
    torch.set_default_dtype(torch.float32)
    d, d64 = np.abs(ours - ref).max(), np.abs(ours - ref64).max()
    print(f"filterbank sr={sr} n_fft={n_fft} mels={mels} {fmin}-{fmax} Hz: max diff {d:.2e} (torchaudio), "
          f"{d64:.2e} (torchaudio float64), max weight {ref.max():.4f}")
    T.check(d <= FB_TOL, f"filterbank {sr}/{n_fft}/{mels}: {d:.3g} > {FB_TOL}")
    # computed in double: only the float32 rounding of the result may differ
    T.check(d64 <= 1e-8, f"filterbank {sr}/{n_fft}/{mels} vs float64 maths: {d64:.3g} > 1e-8")

# ---- signals ----
SR = 16000
rng = np.random.default_rng(20210606)


def f32(x):
    return np.asarray(x, dtype=np.float32)


def speech_espeak():
    T.run(["espeak-ng", "-v", "en", "-s", "150", "-w", "espeak.wav",
           "The role of task and acoustic similarity in audio transfer learning."])
    rate, x = scipy.io.wavfile.read("espeak.wav")
    x = x.astype(np.float64) / 32768.0
    g = np.gcd(SR, rate)
    return f32(scipy.signal.resample_poly(x, SR // g, rate // g))


def speech_synthetic(seconds=2.0):
    """Glottal pulses with a wandering f0 through three formant resonators,
    syllable-rate amplitude modulation and a gap of digital silence."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = np.cumsum(f0 / SR)
    src = np.diff(np.floor(phase), prepend=0.0) + 0.003 * rng.standard_normal(n)
    y = src
    for fc, bw in [(600, 80), (1500, 120), (2600, 160)]:
        r = np.exp(-np.pi * bw / SR)
        y = scipy.signal.lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fc / SR), r * r], y)
    y *= 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    y = 0.3 * y / np.abs(y).max()
    y[int(0.9 * SR):int(1.2 * SR)] = 0.0
    return f32(y)


t3 = np.arange(3 * SR) / SR
signals = {
    "noise-white": f32(0.1 * rng.standard_normal(3 * SR)),
    "noise-brown": f32(np.cumsum(rng.standard_normal(3 * SR)) * 1e-3),
    "noise-loud": f32(np.clip(0.7 * rng.standard_normal(SR), -1, 1)),
    "tone-440-3000": f32(0.5 * np.sin(2 * np.pi * 440 * t3) + 0.2 * np.sin(2 * np.pi * 3000 * t3)),
    "tone-1000": f32(0.5 * np.sin(2 * np.pi * 1000 * t3[:SR])),
    "chirp": f32(0.4 * scipy.signal.chirp(t3[:2 * SR], 60, 2.0, 7900, method="logarithmic")),
    "speech-espeak": speech_espeak(),
    "speech-synthetic": speech_synthetic(),
    "silence": np.zeros(SR, np.float32),
    "tiny": f32(1e-7 * rng.standard_normal(SR)),
}
# odd lengths: not a multiple of the hop, and just above the reflect limit (N > 256)
for n in [257, 258, 333, 511, 16001, 16159, 16161]:
    signals[f"odd-{n}"] = f32(0.1 * rng.standard_normal(n))

items = [(k, {"wave": v, "extra": np.arange(3, dtype=np.int32)}, {"label": i, "name": k})
         for i, (k, v) in enumerate(signals.items())]
write_stream("in.msgpack", items, {"sample_rate": SR, "tensor": "wave", "bandpass": {"low": 1.0}})

# ---- default settings (Cnn14) ----
header, out = melspec([], "in.msgpack", "out.msgpack")
ta32, ta64 = transforms(SR), transforms(SR, f64=True)
report = []
T.check([it["key"] for it in out] == list(signals), "item order or keys changed")
for it in out:
    k = it["key"]
    x = signals[k]
    y = it["tensors"].get("logmel")
    if y is None:
        T.fail(f"{k}: no logmel tensor")
        continue
    T.check(y.dtype == np.float32 and y.shape == (1 + len(x) // 160, 64),
            f"{k}: {y.dtype} {y.shape}, expected float32 ({1 + len(x) // 160}, 64)")
    compare(k, y, ta32(x), ta64(x), strict32=True, report=report)
    T.check("wave" not in it["tensors"], f"{k}: wave tensor not dropped")
    T.check(np.array_equal(it["tensors"].get("extra"), np.arange(3)), f"{k}: other tensor not passed through")
    T.check(it.get("fields") == {"label": list(signals).index(k), "name": k}, f"{k}: fields changed: {it.get('fields')}")
    if k == "silence":
        T.check(np.all(y == np.float32(-100.0)), "silence: not exactly -100 dB everywhere")
    if k == "speech-synthetic":
        # frames wholly inside the zero gap (0.9 s .. 1.2 s): centred at t*160, +-256
        gap = [t for t in range(y.shape[0]) if t * 160 - 256 >= int(0.9 * SR) and t * 160 + 256 <= int(1.2 * SR)]
        T.check(len(gap) > 10 and np.all(y[gap] == np.float32(-100.0)), "speech gap: digital silence is not exactly -100 dB")
        T.check(np.all(ta32(x)[gap] == -100.0), "reference: torchaudio does not give -100 dB for silence")

print("default settings, max |difference| in dB on resolved values (ours-ta32, ours-ta64, ta32-ta64), "
      "50-80 dB down (ours-ta64), all values (ours-ta64); share of values resolved")
for label, m32, m64, own, mcoarse, mall, share in report:
    print(f"  {label:18s} {m32:.2e} {m64:.2e} {own:.2e}   {mcoarse:.2e}   {mall:.2e}   {share:.3f}")

p = header["params"]
expected = {"sample_rate": 16000, "n_fft": 512, "win_length": 512, "hop_length": 160, "n_mels": 64, "f_min": 50.0,
            "f_max": 8000.0, "window": "hann-periodic", "center": True, "pad_mode": "reflect", "power": 2.0,
            "mel_scale": "slaney", "norm": "slaney", "db": True, "amin": 1e-10, "top_db": None}
T.check(p.get("melspec") == expected, f"header params.melspec: {p.get('melspec')}")
T.check(p.get("tensor") == "logmel", f"header params.tensor: {p.get('tensor')}")
T.check(p.get("sample_rate") == 16000 and p.get("bandpass") == {"low": 1.0}, f"header params not carried over: {p}")
T.check(header.get("producer") == "melspec" and [h.get("producer") for h in header.get("history", [])] == ["t-melspec"],
        f"header producer/history: {header.get('producer')}, {header.get('history')}")

# ---- non-default options, each against torchaudio with the same settings ----
subset = ["noise-white", "noise-brown", "tone-440-3000", "chirp", "speech-espeak", "speech-synthetic", "odd-16159"]
cases = [
    (["--mels", "128"], dict(mels=128)),
    (["--fmin", "0"], dict(fmin=0.0)),
    (["--no-db"], dict(db=False)),
    (["--power", "1"], dict(power=1.0)),
    (["--power", "1", "--no-db"], dict(power=1.0, db=False)),
    (["--nfft", "1024", "--win", "400", "--hop", "100", "--fmax", "7600"],
     dict(n_fft=1024, win=400, hop=100, fmax=7600.0)),
    (["--nfft", "511", "--win", "320", "--hop", "171", "--mels", "40", "--fmin", "125"],
     dict(n_fft=511, win=320, hop=171, mels=40, fmin=125.0)),
]
write_stream("sub.msgpack", [(k, {"wave": signals[k]}, {}) for k in subset], {"sample_rate": SR})
for args, kw in cases:
    header, out = melspec(args, "sub.msgpack", "sub-out.msgpack")
    r32, r64 = transforms(SR, **kw), transforms(SR, f64=True, **kw)
    db = kw.get("db", True)
    name = "logmel" if db else "mel"
    T.check(header["params"].get("tensor") == name, f"{args}: params.tensor {header['params'].get('tensor')}")
    worst = [0.0, 0.0, 0.0]
    for it in out:
        y = it["tensors"].get(name)
        if y is None:
            T.fail(f"{args} {it['key']}: no '{name}' tensor")
            continue
        rep = []
        compare(f"{' '.join(args)} {it['key']}", y, r32(signals[it["key"]]), r64(signals[it["key"]]),
                linear_power=None if db else kw.get("power", 2.0), report=rep)
        worst = [max(w, v) for w, v in zip(worst, rep[0][1:4])] if rep else worst
    print(f"{' '.join(args)}: max on resolved values: ours-ta32 {worst[0]:.2e}, ours-ta64 {worst[1]:.2e}, "
          f"ta32-ta64 {worst[2]:.2e} dB")

# 8 kHz input
x8 = f32(scipy.signal.resample_poly(signals["speech-espeak"], 1, 2))
write_stream("sr8.msgpack", [("s8", {"wave": x8}, {})], {"sample_rate": 8000})
header, out = melspec(["--fmax", "4000", "--mels", "40", "--nfft", "256", "--hop", "80"], "sr8.msgpack", "sr8-out.msgpack")
kw = dict(n_fft=256, hop=80, fmax=4000.0, mels=40)
compare("8 kHz speech", out[0]["tensors"]["logmel"], transforms(8000, **kw)(x8), transforms(8000, f64=True, **kw)(x8))
T.check(header["params"]["melspec"]["sample_rate"] == 8000, "8 kHz: sample_rate in params.melspec")

# ---- -j N gives the same output as -j 1 ----
many = [(f"r{i:02d}", {"wave": f32(0.1 * rng.standard_normal(int(n)))}, {"i": i})
        for i, n in enumerate(rng.integers(257, 40000, size=40))]
write_stream("many.msgpack", many, {"sample_rate": SR})
_, o1 = melspec(["-j", "1"], "many.msgpack", "j1.msgpack")
for j in ["2", "3"]:
    _, oj = melspec(["-j", j], "many.msgpack", f"j{j}.msgpack")
    same = len(o1) == len(oj) and all(
        a["key"] == b["key"] and a.get("fields") == b.get("fields") and
        a["tensors"]["logmel"].tobytes() == b["tensors"]["logmel"].tobytes() for a, b in zip(o1, oj))
    T.check(same, f"-j {j} output differs from -j 1")

# ---- an item's output does not depend on the items before it ----
# melspec transforms two frames at a time, one as the real and one as the
# imaginary part of a complex FFT; an odd last frame is paired with zeros.
# A one-frame item (1000 samples, --hop 4000) alone and after a loud item
# must give the same bytes.  Were it paired with the loud item's stale frame,
# that frame's rounding would show in the quiet item's bins (with these
# levels, 21 of 64 bands when the zeroing was removed, 2026-12-07; --no-db
# keeps values below the dB floor).
loud = f32(0.9 * np.sin(2 * np.pi * 1000 * np.arange(9000) / SR) + 0.1 * rng.standard_normal(9000))
quiet = f32(1e-9 * rng.standard_normal(1000))
write_stream("alone.msgpack", [("q", {"wave": quiet}, {})], {"sample_rate": SR})
write_stream("after.msgpack", [("loud", {"wave": loud}, {}), ("q", {"wave": quiet}, {})], {"sample_rate": SR})
_, a = melspec(["--hop", "4000", "--no-db", "-j", "1"], "alone.msgpack", "alone-out.msgpack")
_, b = melspec(["--hop", "4000", "--no-db", "-j", "1"], "after.msgpack", "after-out.msgpack")
T.check(a[0]["tensors"]["mel"].shape == (1, 64), f"one-frame item: shape {a[0]['tensors']['mel'].shape}")
T.check(a[0]["tensors"]["mel"].tobytes() == b[1]["tensors"]["mel"].tobytes(),
        "a one-frame item's output depends on the item before it")

T.done()
