#!/usr/bin/python3
"""panns-convert - the released PANNs Cnn14 weights as a sertools checkpoint.

Reads a PyTorch file holding PANNs' Cnn14 (16 kHz) state dict under the key
"model" (Cnn14_16k_mAP=0.438.pth), checks that its front end is the one
melspec computes (the log-Mel filterbank within 1e-6, the STFT basis a
periodic-Hann-windowed 512-point DFT), drops the front-end tensors and
writes bn0, the six conv blocks and fc1 with an output layer fc_transfer
(formats/checkpoint.md).  See man/panns-convert.1.
"""
import argparse
import hashlib
import math
import os
import sys
import shutil
import subprocess
import tempfile
from collections import OrderedDict

PROG = "panns-convert"
VERSION = "0.1.0"  # sertools' version (common/version.h); tests/t-panns-convert.py checks it
CHANNELS = (64, 128, 256, 512, 1024, 2048)
N_MELS, N_FFT, SAMPLE_RATE, F_MIN, F_MAX = 64, 512, 16000, 50.0, 8000.0
MELW_TOL = 1e-6
STFT_TOL = 1e-5
AUDIOSET_CLASSES = 527
FRONT_END = ("spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
             "logmel_extractor.melW")
HEAD = ("fc_audioset.weight", "fc_audioset.bias")
# torch.save's legacy (pre-1.6) format starts with this pickled magic number;
# the current format is a zip archive, which torch's own loader recognises
# by the local file header at offset 0 (torch.serialization._is_zipfile).
# Only that is taken for a zip: zipfile.is_zipfile also accepts a tar with
# an empty zip appended, which sends torch 1.13 down its legacy tar loader.
ZIP_MAGIC = b"PK\x03\x04"
MAX_CLASSES = 4096  # common/ckpt_check.h CKPT_MAX_CLASSES (formats/limits.md)
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"

USAGE = f"""\
Usage: {PROG} [OPTION]... PTH
Convert PANNs' released Cnn14 weights (16 kHz, e.g. Cnn14_16k_mAP=0.438.pth)
to a sertools Cnn14 checkpoint on standard output (or -o FILE).

The front end is checked against melspec's defaults (log-Mel filterbank
within {MELW_TOL:g}, STFT basis) and dropped; bn0, conv_block1..6 and fc1 are
kept; the width divisor is read from conv_block1.conv1.weight.

  -o, --output FILE        write FILE atomically instead of standard output
      --keep-audioset-head keep PANNs' AudioSet layer fc_audioset as the
                           output layer fc_transfer ({AUDIOSET_CLASSES} classes; log-softmax,
                           not PANNs' sigmoid)
      --classes K          without --keep-audioset-head: a new, freshly
                           initialised output layer of K classes (default 3)
      --seed N             initialisation of the new output layer (default 1)
      --class-names A,B,.. names of the output classes (default "0", "1", ...)
      --class-names-file F the names, one per line
      --trust-pickle       load a file that holds objects other than tensors, or
                           PyTorch's legacy (pre-1.6) format; this runs the
                           file's pickle code: trusted files only
      --progress           a line per step on stderr even when it is not a
                           terminal (load, check, write)
  -q, --quiet              no progress at all (warnings still shown)
      --help               print this help and exit
      --version            print the version and exit

Example:
  {PROG} -o panns.ckpt Cnn14_16k_mAP=0.438.pth
  cnn-train --init panns.ckpt --finetune linear --train train.msgpack \\
            --dev dev.msgpack --run-dir runs/panns-linear
"""


class Fail(Exception):
    """A runtime error: printed as 'panns-convert: message', exit 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write(f"{PROG}: {message}\nTry '{PROG} --help'.\n")
        sys.exit(1)


def emit(text):
    """Writes text to fd 1 unbuffered: 0, or 2 with a message (a full disk
    under --help is an error, not a traceback at exit)."""
    data = text.encode()
    try:
        while data:
            data = data[os.write(1, data):]
    except OSError as e:
        sys.stderr.write(f"{PROG}: stdout: {e.strerror or e}\n")
        return 2
    return 0


def parse_args(argv):
    p = Parser(prog=PROG, add_help=False, allow_abbrev=False)
    p.add_argument("pth", nargs="?")
    p.add_argument("-o", "--output", default="-")
    p.add_argument("--keep-audioset-head", action="store_true")
    p.add_argument("--classes", type=int)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--class-names")
    p.add_argument("--class-names-file")
    p.add_argument("--trust-pickle", action="store_true")
    p.add_argument("--progress", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--help", action="store_true")
    p.add_argument("--version", action="store_true")
    a = p.parse_args(argv)
    if a.help:
        sys.exit(emit(USAGE))
    if a.version:
        sys.exit(emit(f"{PROG} (sertools) {VERSION}\n"))
    if a.pth is None:
        p.error("no input file")
    if a.keep_audioset_head and a.classes is not None:
        p.error("--classes: the AudioSet head has 527 classes")
    if a.classes is not None and not 1 <= a.classes <= MAX_CLASSES:
        p.error(f"--classes {a.classes}: need 1 to {MAX_CLASSES} (formats/limits.md)")
    if a.class_names is not None and a.class_names_file is not None:
        p.error("--class-names and --class-names-file exclude each other")
    if a.seed < 0:
        p.error(f"--seed {a.seed}: need a non-negative integer")
    if a.output != "-" and os.path.isdir(a.output):
        p.error(f"--output {a.output}: is a directory")
    if a.output == "-" and sys.stdout.isatty():
        p.error("refusing to write a checkpoint to a terminal (use -o FILE or redirect)")
    return a


def load_state_dict(path, trust_pickle):
    import pickle

    import torch
    if not os.path.isfile(path):
        raise Fail(f"{path}: {'no such file' if not os.path.exists(path) else 'not a regular file'}")
    try:
        with open(path, "rb") as f:
            head = f.read(len(LEGACY_MAGIC))
    except OSError as e:
        raise Fail(f"{path}: {e.strerror or e}") from None
    if head.startswith(ZIP_MAGIC):
        pass
    elif head == LEGACY_MAGIC and not trust_pickle:
        raise Fail(f"{path}: PyTorch's legacy (pre-1.6) format, which is loaded by running pickle code; "
                   f"if you trust the file, rerun with --trust-pickle (or re-save it with torch >= 1.6)")
    elif head != LEGACY_MAGIC:
        raise Fail(f"{path}: not a PyTorch file: it starts with {head[:4].hex()}, not a zip archive's "
                   f"local header (504b0304) nor PyTorch's legacy magic number")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as e:
        if not trust_pickle and "Weights only load failed" in str(e):
            raise Fail(f"{path}: holds objects other than tensors, which a weights-only load refuses "
                       f"({str(e).split('WeightsUnpickler error: ')[-1].strip()}); if you trust the file, "
                       f"rerun with --trust-pickle (it runs the file's pickle code)") from None
        raise Fail(f"{path}: not a PyTorch file ({type(e).__name__}: {e})") from None
    except OSError as e:
        raise Fail(f"{path}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - torch.load raises anything on a corrupt file
        raise Fail(f"{path}: not a PyTorch file ({type(e).__name__}: {e})") from None
    sd = obj.get("model") if isinstance(obj, dict) else None
    if sd is None and isinstance(obj, dict) and "bn0.weight" in obj:
        sd = obj  # a bare state dict
    if not isinstance(sd, dict):
        raise Fail(f"{path}: no state dict under the key 'model'")
    for k, v in sd.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise Fail(f"{path}: model entry {k!r} is not a named tensor")
    return sd


def expected_shapes(width_div, classes):
    ch = [c // width_div for c in CHANNELS]
    shapes = OrderedDict()
    bn = lambda p, c: [(f"{p}.weight", (c,)), (f"{p}.bias", (c,)), (f"{p}.running_mean", (c,)),
                       (f"{p}.running_var", (c,)), (f"{p}.num_batches_tracked", ())]
    shapes.update(bn("bn0", N_MELS))
    cin = 1
    for b, c in enumerate(ch, 1):
        shapes[f"conv_block{b}.conv1.weight"] = (c, cin, 3, 3)
        shapes[f"conv_block{b}.conv2.weight"] = (c, c, 3, 3)
        shapes.update(bn(f"conv_block{b}.bn1", c))
        shapes.update(bn(f"conv_block{b}.bn2", c))
        cin = c
    shapes["fc1.weight"] = (ch[-1], ch[-1])
    shapes["fc1.bias"] = (ch[-1],)
    shapes["fc_transfer.weight"] = (classes, ch[-1])
    shapes["fc_transfer.bias"] = (classes,)
    return shapes


def fmt(shape):
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def infer_width_div(sd):
    w = sd.get("conv_block1.conv1.weight")
    if w is None:
        raise Fail("the state dict lacks 'conv_block1.conv1.weight': not PANNs' Cnn14")
    c1 = w.shape[0] if w.dim() == 4 else 0
    if c1 < 1 or 64 % c1 or tuple(w.shape[1:]) != (1, 3, 3):
        raise Fail(f"conv_block1.conv1.weight: shape {fmt(tuple(w.shape))}, want (64/D, 1, 3, 3) "
                   f"for a width divisor D of 1, 2, ..., 64")
    return 64 // c1


def check_front_end(sd):
    import torch
    import torchaudio
    melw = sd.get("logmel_extractor.melW")
    if melw is None:
        raise Fail("the state dict lacks 'logmel_extractor.melW': cannot check the front end")
    want_shape = (N_FFT // 2 + 1, N_MELS)
    if tuple(melw.shape) != want_shape:
        hint = " (transposed?)" if tuple(melw.shape) == want_shape[::-1] else ""
        raise Fail(f"logmel_extractor.melW: shape {fmt(tuple(melw.shape))}{hint}, want {fmt(want_shape)} "
                   f"(n_fft/2+1, n_mels) of the 16 kHz Cnn14")
    fb = torchaudio.functional.melscale_fbanks(n_freqs=N_FFT // 2 + 1, f_min=F_MIN, f_max=F_MAX, n_mels=N_MELS,
                                               sample_rate=SAMPLE_RATE, norm="slaney", mel_scale="slaney")
    d = (melw.double() - fb.double()).abs().max().item()
    if not d <= MELW_TOL:
        raise Fail(f"logmel_extractor.melW differs from melspec's filterbank (16 kHz, 512-point FFT, "
                   f"64 Slaney mels 50-8000 Hz) by up to {d:.3g} (> {MELW_TOL:g}): a different front end")
    n = torch.arange(N_FFT, dtype=torch.float64)
    k = torch.arange(N_FFT // 2 + 1, dtype=torch.float64)
    window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float64)
    angle = 2 * math.pi * torch.outer(k, n) / N_FFT
    basis = {"conv_real": window * torch.cos(angle), "conv_imag": window * torch.sin(angle)}
    for part, want in basis.items():
        name = f"spectrogram_extractor.stft.{part}.weight"
        w = sd.get(name)
        if w is None:
            raise Fail(f"the state dict lacks '{name}': cannot check the front end")
        if tuple(w.shape) != (N_FFT // 2 + 1, 1, N_FFT):
            raise Fail(f"{name}: shape {fmt(tuple(w.shape))}, want {fmt((N_FFT // 2 + 1, 1, N_FFT))} "
                       f"(a {N_FFT}-point STFT)")
        got = w[:, 0, :].double()
        if part == "conv_imag":  # the sign convention of the imaginary part does not matter
            got, want = got.abs(), want.abs()
        d = (got - want).abs().max().item()
        if not d <= STFT_TOL:
            raise Fail(f"{name} is not a periodic-Hann-windowed {N_FFT}-point DFT basis "
                       f"(differs by up to {d:.3g}): a different front end")


def class_names(a, classes):
    if a.class_names_file is not None:
        try:
            with open(a.class_names_file, encoding="utf-8") as f:
                names = [line.rstrip("\r\n") for line in f]
        except (OSError, UnicodeDecodeError) as e:
            raise Fail(f"{a.class_names_file}: {getattr(e, 'strerror', None) or e}") from None
        while names and names[-1] == "":
            names.pop()
        where = a.class_names_file
    elif a.class_names is not None:
        names, where = a.class_names.split(","), "--class-names"
    else:
        return [str(i) for i in range(classes)]
    if len(names) != classes:
        raise Fail(f"{where}: {len(names)} class names for {classes} classes")
    if any(not n for n in names):
        raise Fail(f"{where}: empty class name")
    return names


def convert(a):
    import numpy as np
    import torch
    sd = load_state_dict(a.pth, a.trust_pickle)
    width_div = infer_width_div(sd)
    check_front_end(sd)
    c6 = CHANNELS[-1] // width_div
    if a.keep_audioset_head:
        for k in HEAD:
            if k not in sd:
                raise Fail(f"--keep-audioset-head: the state dict lacks '{k}'")
        classes = sd["fc_audioset.weight"].shape[0]
    else:
        classes = a.classes if a.classes is not None else 3
    shapes = expected_shapes(width_div, classes)
    known = set(shapes) | set(FRONT_END) | set(HEAD)
    for k in sd:
        if k not in known:
            raise Fail(f"unexpected tensor '{k}': not PANNs' Cnn14 (width divisor {width_div})")
    out = OrderedDict()
    for name, shape in shapes.items():
        src = name
        if name.startswith("fc_transfer."):
            if not a.keep_audioset_head:
                continue
            src = name.replace("fc_transfer.", "fc_audioset.")
        if src not in sd:
            if name.endswith("num_batches_tracked"):
                out[name] = np.zeros((), dtype="<i8")  # older PyTorch did not store it
                continue
            raise Fail(f"the state dict lacks '{src}'")
        t = sd[src]
        if tuple(t.shape) != shape:
            raise Fail(f"{src}: shape {fmt(tuple(t.shape))}, want {fmt(shape)} (width divisor {width_div})")
        if name.endswith("num_batches_tracked"):
            if t.dtype.is_floating_point or t.dtype.is_complex or t.item() < 0:
                raise Fail(f"{src}: not a non-negative integer")
            out[name] = np.asarray(t.item(), dtype="<i8").reshape(())
            continue
        if not t.dtype.is_floating_point:
            raise Fail(f"{src}: dtype {t.dtype}, want a floating-point tensor")
        v = t.detach().to(torch.float32).contiguous().numpy().astype("<f4", copy=False)
        if not np.isfinite(v).all():
            raise Fail(f"{src}: {int((~np.isfinite(v)).sum())} non-finite values")
        if name.endswith("running_var") and (v < 0).any():
            raise Fail(f"{src}: negative running variance")
        out[name] = v
    if not a.keep_audioset_head:
        # a new head, as the model initialises one: Xavier-uniform weight, zero bias
        g = torch.Generator().manual_seed(a.seed)
        bound = math.sqrt(6.0 / (c6 + classes))
        w = (torch.rand(classes, c6, generator=g, dtype=torch.float64) * 2 - 1) * bound
        out["fc_transfer.weight"] = w.to(torch.float32).numpy()
        out["fc_transfer.bias"] = np.zeros(classes, dtype="<f4")
        out.move_to_end("fc_transfer.weight")
        out.move_to_end("fc_transfer.bias")
    header_params = {
        "model": {"arch": "Cnn14", "classes": classes, "class_names": class_names(a, classes),
                  "width_div": width_div, "n_mels": N_MELS},
        "melspec": {"sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "win_length": N_FFT, "hop_length": 160,
                    "n_mels": N_MELS, "f_min": F_MIN, "f_max": F_MAX, "window": "hann-periodic",
                    "center": True, "pad_mode": "reflect", "power": 2.0, "mel_scale": "slaney",
                    "norm": "slaney", "db": True, "amin": 1e-10, "top_db": None},
        "pretrained": {"source": "PANNs Cnn14 16 kHz (Kong et al. 2020)", "file": os.path.basename(a.pth),
                       "sha256": sha256(a.pth), "audioset_head": bool(a.keep_audioset_head)},
    }
    return header_params, out


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def validate(tmp, path):
    """The written file passes the checkpoint rules every C tool applies
    (common/ckpt_check.h), checked by `wdist --check` beside this script or
    on PATH.  Without wdist the rules convert() checked in Python stand
    (the same: names, shapes, finite values, variances >= 0)."""
    here = os.path.join(os.path.dirname(os.path.realpath(__file__)), "wdist")
    tool = here if os.access(here, os.X_OK) else shutil.which("wdist")
    if tool is None:
        return
    r = subprocess.run([tool, "--check", tmp], capture_output=True, text=True, errors="replace")
    if r.returncode != 0:
        why = r.stderr.strip().split(": ", 1)[-1].replace(tmp, path)
        raise Fail(f"{path}: the written checkpoint fails the checkpoint rules: {why}")


def write(path, params, tensors, argv):
    import msgpack
    import msgpack_numpy
    header = {"type": "header", "format": "sertools-stream", "version": 1, "producer": PROG,
              "producer_version": VERSION, "argv": [PROG] + list(argv), "params": params, "history": []}
    pack = msgpack.Packer(default=msgpack_numpy.encode, use_bin_type=True)
    to_stdout = path == "-"
    tmp = None
    try:
        if to_stdout:
            f = sys.stdout.buffer
        else:
            d = os.path.dirname(os.path.abspath(path))
            fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=d)
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)  # as the C tools' files (mkstemp makes 0600)
            f = os.fdopen(fd, "wb")
        f.write(pack.pack(header))
        for name, v in tensors.items():
            f.write(pack.pack({"type": "item", "key": name, "tensors": {"value": v}}))
        f.write(pack.pack({"type": "end", "count": len(tensors)}))
        f.flush()
        if not to_stdout:
            os.fsync(f.fileno())
            f.close()
            validate(tmp, path)
            os.rename(tmp, path)
            tmp = None
    except OSError as e:
        raise Fail(f"{'stdout' if to_stdout else path}: {e.strerror or e}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def step(a, text):
    """Progress (formats/cli.md): on a terminal or with --progress, never with -q."""
    if not a.quiet and (a.progress or sys.stderr.isatty()):
        sys.stderr.write(f"{PROG}: {text}\n")


def main(argv):
    a = parse_args(argv)
    try:
        step(a, f"converting {a.pth}")
        params, tensors = convert(a)
        step(a, f"checked, {len(tensors)} tensors; writing {'stdout' if a.output == '-' else a.output}")
        write(a.output, params, tensors, argv)
        step(a, "done")
    except Fail as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        return 2
    except MemoryError:
        sys.stderr.write(f"{PROG}: out of memory\n")
        return 2
    try:
        sys.stdout.flush()
    except OSError as e:
        sys.stderr.write(f"{PROG}: stdout: {e.strerror or e}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
