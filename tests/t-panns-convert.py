"""panns-convert on PyTorch files with PANNs' Cnn14 keys and shapes (the
released Cnn14_16k_mAP=0.438.pth cannot be downloaded here).

The fake files hold what PANNs' Cnn14 state dict holds, in its order:
spectrogram_extractor.stft.conv_{real,imag}.weight (a periodic-Hann
windowed 512-point DFT basis, imaginary part -sin as torchlibrosa builds
it), logmel_extractor.melW (257, 64) computed here with librosa's Slaney
formulas in float64 and rounded to float32 as PANNs stores it (so the
converter's torchaudio filterbank is checked against an independent
implementation, tolerance 1e-6), bn0, conv_block1..6, fc1, fc_audioset
(527 classes); random values.  Checked:
  - width_div 16 and 1 (the real file's width), zip and legacy torch.save
    formats: every kept tensor bitwise
    equal to the source, front end and fc_audioset dropped, a fresh
    Xavier-uniform fc_transfer of --classes (zero bias), header
    params.model / melspec / pretrained; the C side (cnn-tool forward)
    loads the result and equals the torch reference on the source weights
    (max rel 1e-4);
  - --keep-audioset-head: fc_transfer = fc_audioset, 527 classes, names
    "0".."526" or from --class-names-file;
  - errors (exit 2, "panns-convert: what: why", an existing output file
    untouched and no temporary file left): melW off by 2e-6, melW
    transposed, a wrong STFT window, a missing, an unexpected and a
    misshapen tensor, NaN, a file that is not PyTorch's, a file with
    non-tensor objects (accepted with --trust-pickle);
  - usage errors exit 1; --help, --version.
"""
import math
import os
import sys
from collections import OrderedDict

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import numpy as np  # noqa: E402

import testlib as T  # noqa: E402

T.require_module("torch")
import torch  # noqa: E402

import ckpt  # noqa: E402
import cnn14_ref as R  # noqa: E402
from panns_frontend import slaney_melw, stft_basis  # noqa: E402

torch.set_num_threads(1)
PROG = os.path.join(T.BIN, "panns-convert")


def panns_convert(*args):
    """(exit status, stdout bytes, stderr text) of panns-convert ARGS."""
    p = T.run([PROG, *args], code=None, text=False)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def panns_state_dict(width_div, seed):
    torch.manual_seed(seed)
    body = R.Cnn14(3, width_div).state_dict()
    sd = OrderedDict()
    sd["spectrogram_extractor.stft.conv_real.weight"], sd["spectrogram_extractor.stft.conv_imag.weight"] = \
        stft_basis()
    sd["logmel_extractor.melW"] = slaney_melw()
    for k, v in body.items():
        if k.startswith("fc_transfer."):
            continue
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(1234567)
        elif k.endswith("running_var"):
            sd[k] = 0.5 + torch.rand(v.shape)
        else:
            sd[k] = 0.05 * torch.randn(v.shape)
    c6 = 2048 // width_div
    sd["fc_audioset.weight"] = 0.05 * torch.randn(527, c6)
    sd["fc_audioset.bias"] = 0.05 * torch.randn(527)
    return sd


def save(path, sd, extra=None, legacy=False):
    obj = {"model": sd, "iteration": 660000}
    obj.update(extra or {})
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)


def expect_error(what, args, needle, code=2, out="keep.ckpt"):
    with open(out, "wb") as f:
        f.write(b"precious")
    rc, _, err = panns_convert(*args, "-o", out)
    leftovers = [f for f in os.listdir(".") if f.startswith(".")]
    ok = rc == code and err.startswith("panns-convert: ") and needle in err
    with open(out, "rb") as f:
        kept = f.read() == b"precious"
    print(f"{what}: exit {rc}: {err.strip()[:200]}")
    if not (ok and kept and not leftovers):
        T.fail(f"{what}: exit {rc} (want {code}), message {err.strip()!r} (want {needle!r}), "
               f"output kept {kept}, temporary files {leftovers}")


def check_converted(label, path, src, width_div, classes, names, head_from_audioset):
    header, sd = ckpt.read_checkpoint(path)
    mp = header["params"]["model"]
    want_mp = {"arch": "Cnn14", "classes": classes, "class_names": names, "width_div": width_div, "n_mels": 64}
    if mp != want_mp:
        T.fail(f"{label}: params.model {mp}, want {want_mp}")
    mel = header["params"].get("melspec", {})
    if (mel.get("sample_rate"), mel.get("n_fft"), mel.get("hop_length"), mel.get("n_mels"), mel.get("f_min"),
            mel.get("f_max"), mel.get("mel_scale"), mel.get("norm")) != (16000, 512, 160, 64, 50.0, 8000.0,
                                                                          "slaney", "slaney"):
        T.fail(f"{label}: params.melspec {mel}")
    pre = header["params"].get("pretrained", {})
    if pre.get("audioset_head") != head_from_audioset or len(pre.get("sha256", "")) != 64:
        T.fail(f"{label}: params.pretrained {pre}")
    model = R.Cnn14(classes, width_div)
    if list(sd) != list(model.state_dict()):
        T.fail(f"{label}: names/order {list(sd)[:6]}...")
        return None
    for k, v in sd.items():
        s = src.get(k.replace("fc_transfer.", "fc_audioset.") if head_from_audioset else k)
        if k.startswith("fc_transfer.") and not head_from_audioset:
            continue
        if not np.array_equal(v, s.numpy()) or v.dtype != (np.dtype("<i8") if "num_b" in k else np.dtype("<f4")):
            T.fail(f"{label}: {k} differs from the source")
    if not head_from_audioset:
        w, b = sd["fc_transfer.weight"], sd["fc_transfer.bias"]
        bound = math.sqrt(6 / sum(w.shape))
        if np.abs(w).max() > bound or np.abs(w).max() < 0.9 * bound or np.any(b != 0):
            T.fail(f"{label}: the new head is not Xavier-uniform with zero bias")
    model.load_state_dict(ckpt.to_torch(sd), strict=True)
    return model


def c_forward_matches(label, path, model):
    d = R.c_forward_vs_torch(path, model, R.logmel_like(2, 40, 3))
    print(f"{label}: C forward on the converted checkpoint vs torch: max rel diff {d:.2e}")
    if not d <= 1e-4:
        T.fail(f"{label}: C forward max rel diff {d:.3e} > 1e-4")


# ---- width 16 ----
src = panns_state_dict(16, 1)
save("small.pth", src)
rc, _, err = panns_convert("-o", "small.ckpt", "--classes", 4, "--class-names", "a,b,c,d", "small.pth")
if rc != 0:
    T.fail(f"width 16: exit {rc}: {err}")
else:
    m = check_converted("width 16, new head", "small.ckpt", src, 16, 4, ["a", "b", "c", "d"], False)
    if m is not None:
        c_forward_matches("width 16, new head", "small.ckpt", m)
# to stdout, same bytes apart from the argv in the header; the seed moves the head
rc, out, err = panns_convert("--seed", 2, "small.pth")
with open("stdout.ckpt", "wb") as f:
    f.write(out)
if rc != 0:
    T.fail(f"stdout: exit {rc}: {err}")
else:
    _, a = ckpt.read_checkpoint("stdout.ckpt")
    _, b = ckpt.read_checkpoint("small.ckpt")
    if a["fc_transfer.weight"].shape != (3, 128) or not np.array_equal(a["fc1.weight"], b["fc1.weight"]):
        T.fail("stdout: default of 3 classes / body differs")
    rc, _, _ = panns_convert("--seed", 3, "-o", "seed3.ckpt", "small.pth")
    _, c = ckpt.read_checkpoint("seed3.ckpt")
    if np.array_equal(a["fc_transfer.weight"], c["fc_transfer.weight"]):
        T.fail("--seed does not change the new head")
# PyTorch's legacy (pre-1.6, non-zip) file format
save("legacy.pth", src, legacy=True)
expect_error("legacy format without --trust-pickle", ["legacy.pth"], "legacy.pth: PyTorch's legacy (pre-1.6) format")
rc, _, err = panns_convert("--trust-pickle", "--classes", 4, "--class-names", "a,b,c,d", "-o", "legacy.ckpt",
                           "legacy.pth")
if rc != 0:
    T.fail(f"legacy format: exit {rc}: {err}")
else:
    check_converted("legacy format", "legacy.ckpt", src, 16, 4, ["a", "b", "c", "d"], False)
# the AudioSet head
with open("names.txt", "w") as f:
    f.write("".join(f"class {i}\n" for i in range(527)))
for extra, names in (([], [str(i) for i in range(527)]),
                     (["--class-names-file", "names.txt"], [f"class {i}" for i in range(527)])):
    rc, _, err = panns_convert("--keep-audioset-head", *extra, "-o", "as.ckpt", "small.pth")
    if rc != 0:
        T.fail(f"--keep-audioset-head {extra}: exit {rc}: {err}")
        continue
    m = check_converted(f"AudioSet head {extra}", "as.ckpt", src, 16, 527, names, True)
if m is not None:
    c_forward_matches("width 16, AudioSet head", "as.ckpt", m)

# ---- errors ----
def variant(mutate, path="bad.pth", extra=None):
    sd = OrderedDict((k, v.clone()) for k, v in src.items())
    mutate(sd)
    save(path, sd, extra)
    return path


def off_melw(sd):
    sd["logmel_extractor.melW"][40, 10] += 2e-6


def transposed(sd):
    sd["logmel_extractor.melW"] = sd["logmel_extractor.melW"].t().contiguous()


def hamming(sd):
    n = np.arange(512)
    sd["spectrogram_extractor.stft.conv_real.weight"] = torch.tensor(
        (0.54 - 0.46 * np.cos(2 * np.pi * n / 512)) * np.cos(2 * np.pi * np.outer(np.arange(257), n) / 512),
        dtype=torch.float32)[:, None, :]


def missing(sd):
    del sd["conv_block5.bn2.running_mean"]


def unexpected(sd):
    sd["fc_extra.weight"] = torch.zeros(3)


def misshapen(sd):
    sd["conv_block2.conv2.weight"] = sd["conv_block2.conv2.weight"][:, :-1].clone()


def nan(sd):
    sd["fc1.weight"][0, 0] = float("nan")


expect_error("melW off by 2e-6", [variant(off_melw)], "logmel_extractor.melW differs")
expect_error("melW transposed", [variant(transposed)], "transposed")
expect_error("Hamming STFT window", [variant(hamming)], "conv_real.weight is not a periodic-Hann")
expect_error("missing tensor", [variant(missing)], "conv_block5.bn2.running_mean")
expect_error("unexpected tensor", [variant(unexpected)], "fc_extra.weight")
expect_error("misshapen tensor", [variant(misshapen)], "conv_block2.conv2.weight")
expect_error("NaN", [variant(nan)], "fc1.weight: 1 non-finite")
with open("junk.pth", "wb") as f:
    f.write(b"not a pytorch file at all")
expect_error("not PyTorch", ["junk.pth"], "junk.pth: not a PyTorch file")
expect_error("no such file", ["nothere.pth"], "nothere.pth: no such file")
# issue 13: a tar archive with an empty zip appended passes zipfile.is_zipfile
# (and sent torch 1.13 down its legacy tar loader): refused by its first bytes
import io, subprocess, tarfile, zipfile  # noqa: E401,E402
with tarfile.open("tarzip.pth", "w") as tf:
    data = b"x" * 100
    ti = tarfile.TarInfo("storages")
    ti.size = len(data)
    tf.addfile(ti, io.BytesIO(data))
buf = io.BytesIO()
zipfile.ZipFile(buf, "w").close()
with open("tarzip.pth", "ab") as f:
    f.write(buf.getvalue())
assert zipfile.is_zipfile("tarzip.pth")
expect_error("tar with a zip appended", ["tarzip.pth"],
             "tarzip.pth: not a PyTorch file: it starts with 73746f72, not a zip archive's local header")
expect_error("usage: --classes 4097", ["--classes", 4097, "small.pth"], "--classes 4097: need 1 to 4096", code=1)
# the output's mode is the C tools': 0666 less the umask
rc, _, err = panns_convert("--classes", 4096, "-o", "mode.ckpt", "small.pth")
if rc != 0:
    T.fail(f"--classes 4096: exit {rc}: {err}")
mode = os.stat("mode.ckpt").st_mode & 0o777
um = os.umask(0)
os.umask(um)
if mode != 0o666 & ~um:
    T.fail(f"output mode {oct(mode)}, want {oct(0o666 & ~um)}")
# --help to a full disk: one line, exit 2, no traceback
if os.path.exists("/dev/full"):
    r = subprocess.run(["panns-convert", "--help"], stdout=open("/dev/full", "w"), capture_output=False,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 2 or r.stderr != "panns-convert: stdout: No space left on device\n":
        T.fail(f"--help to /dev/full: exit {r.returncode}, {r.stderr!r}")
pickled = variant(lambda sd: None, "pickled.pth", {"sampler": np.random.RandomState(0).get_state()})
expect_error("non-tensor objects", [pickled], "--trust-pickle")
rc, _, err = panns_convert("--trust-pickle", "-o", "trusted.ckpt", pickled)
if rc != 0:
    T.fail(f"--trust-pickle: exit {rc}: {err}")
expect_error("usage: no file", [], "no input file", code=1)
expect_error("usage: --classes with the AudioSet head", ["--keep-audioset-head", "--classes", 3, "small.pth"],
             "--classes", code=1)
expect_error("usage: unknown option", ["--frobnicate", "small.pth"], "unrecognized", code=1)
expect_error("27 names for 3 classes", ["--class-names", ",".join("x" * 27), "small.pth"], "27 class names")
rc, out, _ = panns_convert("--help")
if rc != 0 or b"Usage: panns-convert" not in out or b"Example" not in out:
    T.fail(f"--help: exit {rc}")
rc, out, _ = panns_convert("--version")
with open(os.path.join(os.environ["SERTOOLS_SRC"], "common", "version.h")) as f:
    version = [line.split('"')[1] for line in f if "SERTOOLS_VERSION " in line][0]
if rc != 0 or out.decode().strip() != f"panns-convert (sertools) {version}":
    T.fail(f"--version: exit {rc}: {out!r}, want version {version}")

# ---- full width, as the real file ----
src = panns_state_dict(1, 2)
save("full.pth", src)
del src
src = torch.load("full.pth", map_location="cpu")["model"]
rc, _, err = panns_convert("-o", "full.ckpt", "full.pth")
if rc != 0:
    T.fail(f"full width: exit {rc}: {err}")
else:
    m = check_converted("full width", "full.ckpt", src, 1, 3, ["0", "1", "2"], False)
    print(f"full width: {R.count_params(m) if m is not None else '?'} parameters")
    if m is not None:
        c_forward_matches("full width", "full.ckpt", m)

T.done()
