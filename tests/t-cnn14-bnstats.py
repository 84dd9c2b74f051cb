"""Cnn14's evaluation-mode BatchNorm with realistic running statistics, C
(cnn-tool forward) against the PyTorch reference (tests/ref/cnn14_ref.py),
and panns-convert's round trip of the same statistics.

t-cnn14-forward.py gives every BatchNorm running variances in [0.5, 2],
where BN's epsilon (1e-5) moves nothing measurable.  Trained networks
have channels whose variance is far below epsilon: dead channels (a conv
output that is always 0: variance 0), channels of a band-passed or
digitally silent input (bn0 over mel bins at a constant floor), and
channels used only a little.  Here every BatchNorm layer's running
variances are drawn log-uniform over [1e-6, 10], and in each layer some
channels get the variances 0, 1e-12, 1e-40 (a float32 subnormal), 0 and
1e-9 (in that order, at least the first two, at most a quarter of the
layer's channels); about a third of the channels are below 1e-4, where
epsilon changes the normaliser 1/sqrt(var + eps) by 5 % or more.

The network is made consistent with those statistics, layer by layer in
forward order (in float64), as training would leave it: each conv output
channel's weights are scaled so that the channel's actual standard
deviation on the test input is sqrt(running variance) (weights 0 for a
variance-0 channel, which then outputs exactly 0), and its running mean is
the channel's actual mean plus 0.3 standard deviations of drift; 10 % of
the channels are "shifted" (running mean 2 to 6 sqrt(var + eps) below the
actual mean, as after a change of input domain), and the dead channels
keep a small running mean (1e-3 scale; one is -0.0).  The shifted channels
feed the next layers large, almost constant inputs, so later running means
lie several standard deviations from 0.  bn0 sees log-Mel-like input whose
per-bin levels are 3 to 30 sqrt(var + eps) below 0 (as low as -95 for
the bins of variance 10), with per-item level changes of one standard deviation; the
variance-0 bins carry a little energy (1e-3) at evaluation time.  BN
weights are in [0.5, 1.5], biases 0.2 N(0, 1), fc1's bias 0.1 N(0, 1).

Why not means of -100 dB with variances near 0: the folded BatchNorm
(x * s + t with s = gamma / sqrt(var + eps), t = beta - mean * s), which
PyTorch's CPU kernel and the C code both use, cancels |mean| * s against
x * s in float32; at |mean| / sqrt(var + eps) ~ 1e4 PyTorch's own float32
result is 1e-3 away from float64's, so no float32 comparison at 1e-4 is
possible there.  The test therefore requires (and checks) PyTorch float32
within TOL / 10 of PyTorch float64 before it compares the C side.

Tolerance, as in t-cnn14-forward.py: for each batch, against the PyTorch
reference in float64 (and, reported and checked too, in float32),
  max |c - r| / max |r| <= 1e-4 over the log-probabilities;
  |c - r| / |r| <= 1e-4 for every log-probability with |r| >= 0.01 max |r|;
  the same max-relative bound on the centred log-probabilities;
and every C output finite.  Teeth, checked on the data itself: the
float64 reference with BN epsilon 1e-3, 1e-4, 1e-6 or 0 instead of 1e-5
is more than 100 x TOL away (or non-finite).

Cases: width_div 8, batch 4, 101 frames, and width_div 16, batch 3, 47
frames (odd lengths at every pooling), eval-mode BN.

panns-convert: the width-8 network with these statistics is written as a
PANNs-style .pth (front end as PANNs stores it, num_batches_tracked, a
527-class fc_audioset), converted with a new 3-class head and with
--keep-audioset-head: every body tensor (and the AudioSet head when kept)
is bitwise the source's, its dtype <f4 (<i8 for num_batches_tracked), and
the source holds the special values (0, 1e-12, the subnormal 1e-40, -0.0
means) so that the bitwise check covers them; the C forward on each
converted checkpoint matches the PyTorch reference built from the source
.pth's tensors (and the converter's new head) within the same tolerance.
"""
import math
import os
import subprocess
import sys
import time
from collections import OrderedDict

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import ckpt  # noqa: E402
import cnn14_ref as R  # noqa: E402
from panns_frontend import slaney_melw, stft_basis  # noqa: E402

torch.set_num_threads(1)
TOL = 1e-4
COND = TOL / 10       # PyTorch float32 vs float64: the data must be well conditioned
TEETH = 100 * TOL     # a wrong epsilon must move the reference at least this far
EPS = 1e-5
WRONG_EPS = (1e-3, 1e-4, 1e-6, 0.0)
SPECIAL = [0.0, 1e-12, 1e-40, 0.0, 1e-9]  # running variances at or near zero, in order of priority
CLASSES = 3
D = torch.float64
T0 = time.monotonic()
fails = []


def fail(msg):
    fails.append(msg)
    print("FAIL:", msg, flush=True)


class Draw:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def u(self, n, lo, hi):
        return torch.empty(n, dtype=D).uniform_(lo, hi, generator=self.g)

    def n(self, *shape):
        return torch.randn(*shape, generator=self.g, dtype=D)

    def perm(self, n):
        return torch.randperm(n, generator=self.g)

    def variances(self, c):
        """Log-uniform over [1e-6, 10], some channels at or near 0."""
        rv = torch.exp(self.u(c, math.log(1e-6), math.log(10.0)))
        k = min(len(SPECIAL), max(2, c // 4))
        rv[self.perm(c)[:k]] = torch.tensor(SPECIAL[:k], dtype=D)
        return rv


def build(width_div, batch, frames, seed):
    """(float32 state dict, float32 input) of a network made consistent with
    drawn running statistics (see the docstring)."""
    dr = Draw(seed)
    init = f"init-{width_div}.ckpt"
    R.cnn_tool("init", "--classes", CLASSES, "--width-div", width_div, "--seed", seed, "-o", init)
    m = R.Cnn14(CLASSES, width_div, dropout=False)
    ckpt.load_into(m, init)
    m = m.double().eval()
    # bn0 and the input
    c = 64
    rv0 = dr.variances(c)
    scale0 = (rv0 + EPS).sqrt()
    rm0 = -dr.u(c, 3, 30) * scale0
    spread = torch.where(rv0 > 0, rv0.sqrt() * dr.u(c, 0.7, 1.4), torch.full_like(rv0, 1e-3))
    x = (rm0 + scale0 * (0.3 * dr.n(c) + dr.n(batch, 1, c)) + spread * dr.n(batch, frames, c)).float()
    with torch.no_grad():
        m.bn0.running_mean.copy_(rm0)
        m.bn0.running_var.copy_(rv0)
        m.bn0.weight.copy_(dr.u(c, 0.5, 1.5))
        m.bn0.bias.copy_(0.2 * dr.n(c))
    # the conv layers, in forward order
    stats, neg_zero = [], False
    for name, bn in [(n, b) for n, b in m.named_modules() if isinstance(b, nn.BatchNorm2d) and n != "bn0"]:
        blk, which = name.split(".")
        conv = getattr(getattr(m, blk), "conv" + which[-1])
        seen = {}
        hook = bn.register_forward_hook(lambda mod, inp, out: seen.__setitem__("z", inp[0].detach()))
        with torch.no_grad():
            m(x.double())
        hook.remove()
        z = seen["z"]
        C = z.shape[1]
        mu, sd = z.mean((0, 2, 3)), z.std((0, 2, 3))
        rv = dr.variances(C)
        a = torch.where(sd > 0, rv.sqrt() / sd, torch.zeros_like(sd))
        mu = a * mu
        rm = mu + 0.3 * rv.sqrt() * dr.n(C)
        dead = rv == 0
        rm[dead] = 1e-3 * dr.n(int(dead.sum()))
        if dead.any() and not neg_zero:  # a running mean of -0.0 (bitwise round trip)
            rm[int(dead.nonzero()[0])] = -0.0
            neg_zero = True
        shifted = (dr.u(C, 0, 1) < 0.1) & ~dead
        rm[shifted] = mu[shifted] - dr.u(int(shifted.sum()), 2, 6) * (rv[shifted] + EPS).sqrt()
        with torch.no_grad():
            conv.weight.mul_(a.view(-1, 1, 1, 1))
            bn.running_mean.copy_(rm)
            bn.running_var.copy_(torch.where(rv >= 1e-6, rv * dr.u(C, 0.7, 1.4), rv))  # specials exact
            bn.weight.copy_(dr.u(C, 0.5, 1.5))
            bn.bias.copy_(0.2 * dr.n(C))
        stats.append(float((rm.abs() / (rv + EPS).sqrt()).max()))
    with torch.no_grad():
        m.fc1.bias.copy_(0.1 * dr.n(m.fc1.bias.shape[0]))
    sd = OrderedDict((k, v.float() if v.is_floating_point() else v.clone()) for k, v in m.state_dict().items())
    var = torch.cat([v for k, v in sd.items() if k.endswith("running_var")]).double()
    print(f"width_div {width_div}: {var.numel()} BN channels, {int((var == 0).sum())} of variance 0, "
          f"{int(((var > 0) & (var < 1e-4)).sum())} in (0, 1e-4), {int((var >= 1e-4).sum())} >= 1e-4; "
          f"largest |running mean| / sqrt(var + eps) per conv layer: {' '.join(f'{s:.1f}' for s in stats)}; "
          f"bn0: running means {float(rm0.min()):.1f} .. {float(rm0.max()):.3g}", flush=True)
    return sd, x


def reference(sd, x, dtype, eps=EPS):
    classes, c6 = sd["fc_transfer.weight"].shape
    m = R.Cnn14(classes, 2048 // c6, dropout=False)
    m.load_state_dict(sd)
    m = m.to(dtype).eval()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.eps = eps
    with torch.no_grad():
        return m(x.to(dtype)).double()


def measures(c, r):
    c = torch.as_tensor(np.asarray(c), dtype=D)
    r = torch.as_tensor(np.asarray(r), dtype=D)
    return (R.rel_diff(c, r), R.elementwise_rel(c, r),
            R.rel_diff(c - c.mean(1, keepdim=True), r - r.mean(1, keepdim=True)))


def worst(c, r):
    """The largest of the three measures; inf when anything is not finite."""
    if not (np.isfinite(np.asarray(c)).all() and np.isfinite(np.asarray(r)).all()):
        return float("inf")
    return max(measures(c, r))


def within(label, c, r, tol):
    if tuple(np.shape(c)) != tuple(np.shape(r)):
        fail(f"{label}: shape {np.shape(c)} != {tuple(np.shape(r))}")
        return
    d, e, cc = measures(c, r)
    print(f"{label}: max rel {d:.2e}, elementwise {e:.2e}, centred {cc:.2e} (tol {tol:g})")
    if not (np.isfinite(np.asarray(c)).all() and d <= tol and e <= tol and cc <= tol):
        fail(f"{label}: max rel {d:.3e}, elementwise {e:.3e}, centred {cc:.3e} > {tol:g}"
             + ("" if np.isfinite(np.asarray(c)).all() else " (non-finite output)"))


def c_forward(path, x, tag):
    keys = [f"{tag}{i}" for i in range(x.shape[0])]
    ckpt.write_batch(f"batch-{tag}.msgpack", x.numpy(), keys=keys)
    R.cnn_tool("forward", path, stdin=f"batch-{tag}.msgpack", stdout=f"out-{tag}.msgpack")
    _, items, _ = ckpt.read_stream(f"out-{tag}.msgpack")
    if [it["key"] for it in items] != keys:
        fail(f"{tag}: forward output keys {[it['key'] for it in items]} != {keys}")
    return np.stack([it["tensors"]["logprob"] for it in items])


def compare(label, path, sd, x, tag):
    """C forward of the checkpoint at path against PyTorch on sd."""
    r64 = reference(sd, x, D)
    r32 = reference(sd, x, torch.float32)
    d32 = worst(r32, r64)
    print(f"{label}: PyTorch float32 vs float64 {d32:.2e} (must be <= {COND:g})")
    if not d32 <= COND:
        fail(f"{label}: PyTorch's float32 result is {d32:.3e} from float64's: the data is ill-conditioned "
             f"for a float32 comparison at {TOL:g}")
    got = c_forward(path, x, tag)
    within(f"{label}: C vs PyTorch float64", got, r64, TOL)
    within(f"{label}: C vs PyTorch float32", got, r32, TOL)
    return r64


def teeth(label, sd, x, r64):
    for eps in WRONG_EPS:
        w = reference(sd, x, D, eps)
        d = worst(w, r64)
        print(f"{label}: BN eps {eps:g} instead of {EPS:g} moves the output by {d:.2e}")
        if not d > TEETH:
            fail(f"{label}: BN eps {eps:g} moves the reference by only {d:.3e} (<= {TEETH:g}): no teeth")


# ---- C forward with realistic statistics ----

cases = {}
for width_div, batch, frames, seed in ((8, 4, 101, 21), (16, 3, 47, 22)):
    sd, x = build(width_div, batch, frames, seed)
    path = f"bn-{width_div}.ckpt"
    ckpt.write_checkpoint(path, sd, ckpt.model_params(CLASSES, width_div))
    label = f"width_div {width_div}, batch {batch}, {frames} frames, eval-mode BN"
    r64 = compare(label, path, sd, x, f"w{width_div}-")
    teeth(label, sd, x, r64)
    cases[width_div] = (sd, x)
print(f"forward cases done ({time.monotonic() - T0:.1f} s)", flush=True)


# ---- panns-convert round trip ----

def bits(a):
    a = np.asarray(a)
    return a.dtype.str, a.shape, a.tobytes()


sd, x = cases[8]
src = OrderedDict()
src["spectrogram_extractor.stft.conv_real.weight"], src["spectrogram_extractor.stft.conv_imag.weight"] = stft_basis()
src["logmel_extractor.melW"] = slaney_melw()
for k, v in sd.items():
    if k.startswith("fc_transfer."):
        continue
    src[k] = torch.tensor(7654321) if k.endswith("num_batches_tracked") else v.clone()
gh = torch.Generator().manual_seed(23)
c6 = sd["fc1.weight"].shape[0]
src["fc_audioset.weight"] = 0.05 * torch.randn(527, c6, generator=gh)
src["fc_audioset.bias"] = 0.05 * torch.randn(527, generator=gh)
torch.save({"model": src, "iteration": 123}, "bnstats.pth")
src = torch.load("bnstats.pth", map_location="cpu", weights_only=True)["model"]  # what the converter reads

var = np.concatenate([src[k].numpy() for k in src if k.endswith("running_var")])
mean = np.concatenate([src[k].numpy() for k in src if k.endswith("running_mean")])
present = {"variance 0": int((var == 0).sum()), "variance 1e-12": int((var == np.float32(1e-12)).sum()),
           "subnormal variance 1e-40": int(((var > 0) & (var < np.finfo(np.float32).tiny)).sum()),
           "running mean -0.0": int(((mean == 0) & np.signbit(mean)).sum())}
print("special values in the .pth:", present)
if not all(present.values()):
    fail(f"the .pth lacks some special values: {present}")

body = [k for k in sd if not k.startswith("fc_transfer.")]
for extra, tag in ((["--classes", 3, "--seed", 4], "new head"), (["--keep-audioset-head"], "AudioSet head")):
    out = "conv-new.ckpt" if tag == "new head" else "conv-as.ckpt"
    p = subprocess.run([os.path.join(os.environ["SERTOOLS_BIN"], "panns-convert")] + [str(a) for a in extra]
                       + ["-o", out, "bnstats.pth"], stdin=subprocess.DEVNULL, capture_output=True)
    if p.returncode != 0:
        fail(f"panns-convert {tag}: exit {p.returncode}: {p.stderr.decode(errors='replace')}")
        continue
    header, got = ckpt.read_checkpoint(out)
    want = dict((k, src[k].numpy()) for k in body)
    if tag == "AudioSet head":
        want["fc_transfer.weight"] = src["fc_audioset.weight"].numpy()
        want["fc_transfer.bias"] = src["fc_audioset.bias"].numpy()
    bad = []
    for k, v in want.items():
        if k not in got:
            bad.append(f"{k} missing")
            continue
        wdt = "<i8" if k.endswith("num_batches_tracked") else "<f4"
        g = np.asarray(got[k])
        if g.dtype.str != wdt or g.shape != v.shape or g.tobytes() != np.asarray(v, dtype=wdt).tobytes():
            bad.append(k)
    print(f"panns-convert, {tag}: {len(want) - len(bad)} of {len(want)} tensors bitwise the source's")
    if bad:
        fail(f"panns-convert, {tag}: not bitwise the source: {bad[:5]}{' ...' if len(bad) > 5 else ''}")
    ref_sd = OrderedDict((k, src[k].clone()) for k in body)
    if tag == "AudioSet head":
        ref_sd["fc_transfer.weight"], ref_sd["fc_transfer.bias"] = src["fc_audioset.weight"], src["fc_audioset.bias"]
    else:
        ref_sd["fc_transfer.weight"] = torch.from_numpy(np.array(got["fc_transfer.weight"]))
        ref_sd["fc_transfer.bias"] = torch.from_numpy(np.array(got["fc_transfer.bias"]))
    label = f"panns-convert, {tag}, width_div 8"
    r64 = compare(label, out, ref_sd, x, "pc-")
    if tag == "AudioSet head":
        teeth(label, ref_sd, x, r64)

print(f"{time.monotonic() - T0:.1f} s")
if fails:
    print(f"{len(fails)} failures; first: {fails[0]}")
    sys.exit(1)
print("ok")
