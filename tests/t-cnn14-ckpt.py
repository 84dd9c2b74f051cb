"""Cnn14 checkpoints between C and Python.

- `cnn-tool init` at full width with 3 classes: the checkpoint holds the
  PyTorch state dict's names in PyTorch's order, float32 tensors and 0-dim
  int64 num_batches_tracked; 79,679,939 trainable parameters, as the torch
  reference counts; it loads into the torch model with
  load_state_dict(strict=True) using msgpack + msgpack_numpy only; the
  header's params.model describes it; the initialisation is PANNs'
  (Xavier-uniform conv/linear weights within their bound and with the
  uniform's spread, zero biases, BN weight 1, bias 0, running mean 0,
  variance 1).
- A checkpoint written by Python (tests/ref/ckpt.py) is read by the C side:
  `cnn-tool forward` on it equals the torch forward (max rel 1e-4), and
  tensors with a wrong shape, a missing tensor or a wrong name are errors
  (exit 2) that name the tensor.
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

torch.set_num_threads(1)

# ---- full width, 3 classes, written by C ----
R.cnn_tool("init", "--classes", 3, "--width-div", 1, "--seed", 7, "-o", "full.ckpt")
header, sd = ckpt.read_checkpoint("full.ckpt")
model = R.Cnn14(3, 1)
want = model.state_dict()
if list(sd) != list(want):
    T.fail(f"names/order: {list(sd)[:8]}... != {list(want)[:8]}...")
n_c = sum(v.size for k, v in sd.items() if "running_" not in k and "num_batches" not in k)
n_r = R.count_params(model)
print(f"parameters: C checkpoint {n_c:,}, torch reference {n_r:,}")
if not n_c == n_r == 79_679_939:
    T.fail(f"parameter count: C {n_c}, torch {n_r}, want 79679939")
for k, v in sd.items():
    if k.endswith("num_batches_tracked"):
        if v.dtype != np.dtype("<i8") or v.shape != () or int(v) != 0:
            T.fail(f"{k}: {v.dtype} shape {v.shape} value {v}, want 0-dim int64 0")
    elif v.dtype != np.dtype("<f4"):
        T.fail(f"{k}: dtype {v.dtype}, want float32")
mp = header["params"].get("model", {})
for key, val in (("arch", "Cnn14"), ("classes", 3), ("width_div", 1), ("n_mels", 64)):
    if mp.get(key) != val:
        T.fail(f"header params.model.{key} = {mp.get(key)!r}, want {val!r}")
if len(mp.get("class_names", [])) != 3:
    T.fail(f"header params.model.class_names = {mp.get('class_names')!r}")
try:
    model.load_state_dict(ckpt.to_torch(sd), strict=True)
except Exception as e:  # noqa: BLE001
    T.fail(f"load_state_dict(strict=True): {e}")
for k, v in sd.items():
    t = torch.from_numpy(np.array(v))
    if k.endswith(".weight") and t.dim() in (2, 4):
        fan_in = t.shape[1] * (t[0, 0].numel() if t.dim() == 4 else 1)
        fan_out = t.shape[0] * (t[0, 0].numel() if t.dim() == 4 else 1)
        bound = math.sqrt(6 / (fan_in + fan_out))
        # a uniform on [-b, b] has std b/sqrt(3); with >= 576 draws the sample
        # std is within 10 % of it and the extremes come close to the bound
        top, std, mean = t.abs().max().item(), t.std().item(), t.mean().item()
        if top > bound * (1 + 1e-6) or top < 0.9 * bound \
                or abs(std / (bound / math.sqrt(3)) - 1) > 0.1 or abs(mean) > 0.1 * bound:
            T.fail(f"{k}: not Xavier-uniform (bound {bound:.4g}, max {top:.4g}, std {std:.4g})")
    elif k.endswith(".bias") or k.endswith("running_mean"):
        if t.abs().max() != 0:
            T.fail(f"{k}: not zero")
    elif k.endswith("running_var") or (k.endswith(".weight") and t.dim() == 1):
        if not torch.all(t == 1):
            T.fail(f"{k}: not one")
del sd, model, want

# ---- written by Python, read by C ----
torch.manual_seed(3)
model = R.Cnn14(2, 16, dropout=False).init_weights(3)
x = R.logmel_like(3, 48, 4)
flat = x.reshape(-1, 64)
R.randomize_state(model, 5, flat.mean(0), flat.var(0))
mp = ckpt.model_params(2, 16, ["neutral", "emotional"])
ckpt.write_checkpoint("py.ckpt", model.state_dict(), mp)
d = R.c_forward_vs_torch("py.ckpt", model, x)
print(f"Python-written checkpoint, C forward vs torch: max rel diff {d:.2e}")
if not d <= 1e-4:
    T.fail(f"C forward on a Python-written checkpoint: max rel diff {d:.3e} > 1e-4")


def bad_checkpoint(what, mutate, names):
    sd = OrderedDict(model.state_dict())
    mutate(sd)
    ckpt.write_checkpoint("bad.ckpt", sd, mp)
    p = R.cnn_tool("forward", "bad.ckpt", stdin="batch.msgpack", stdout="o.msgpack", check=False)
    print(f"{what}: exit {p.returncode}: {p.stderr.strip()}")
    if p.returncode != 2 or not any(n in p.stderr for n in names):
        T.fail(f"{what}: exit {p.returncode}, message {p.stderr.strip()!r}: want exit 2 naming {names[0]}")


def wrong_shape(sd):
    sd["conv_block3.conv2.weight"] = sd["conv_block3.conv2.weight"][:, :-1]


def missing(sd):
    del sd["conv_block4.bn1.running_var"]


def renamed(sd):
    items = [("fc_out.weight" if k == "fc_transfer.weight" else k, v) for k, v in sd.items()]
    sd.clear()
    sd.update(items)


bad_checkpoint("wrong shape", wrong_shape, ["conv_block3.conv2.weight"])
bad_checkpoint("missing tensor", missing, ["conv_block4.bn1.running_var"])
bad_checkpoint("renamed tensor", renamed, ["fc_transfer.weight", "fc_out.weight"])

T.done()
