"""Cnn14 forward pass, C (cnn-tool forward) against the PyTorch reference
(tests/ref/cnn14_ref.py) with identical weights, dropout off.

Weights come from `cnn-tool init`, are loaded strictly into the torch model,
then every BatchNorm gets random weights, biases and running statistics and
the linear layers random biases (so eval-mode BN and the biases matter); the
result is written with tests/ref/ckpt.py and given to the C side.

Tolerance (float32 on both sides; measured float32-vs-float64 error of the
reference is ~1e-6): for each batch,
  max |c - r| / max |r| <= 1e-4 over the log-probabilities;
  |c - r| / |r| <= 1e-4 for every log-probability with |r| >= 0.01 max |r|;
  the same max-relative bound on the centred log-probabilities
  (logp - mean over classes = logits - their mean), which carries the
  class differences that a near-uniform softmax would hide.
Cases: width_div 1, batch 2, 32, 150 and 1200 frames (150: blocks 1 and 2 are
chunked, so their 64+ channel convolutions run Winograd's forward, odd
heights included; 1200: blocks 4 and 5 have enough tiles (600, 152) for the
whole-batch Winograd forward, block 6 (38) not); width_div 8, batch 4, 32 and 101
frames (101: odd lengths at every pooling, floor pooling); each with
eval-mode BN (running statistics) and train-mode BN (batch statistics).
Also: 31 frames is an error naming the length.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import numpy as np  # noqa: E402

import testlib as T  # noqa: E402

T.require_module("torch")
import torch  # noqa: E402

import ckpt  # noqa: E402
import cnn14_ref as R  # noqa: E402

torch.set_num_threads(1)
TOL = 1e-4
CLASSES = 3


def compare(label, c, r):
    c = torch.as_tensor(np.asarray(c), dtype=torch.float64)
    r = torch.as_tensor(np.asarray(r), dtype=torch.float64)
    if c.shape != r.shape:
        T.fail(f"{label}: shape {tuple(c.shape)} != {tuple(r.shape)}")
        return
    d = R.rel_diff(c, r)
    e = R.elementwise_rel(c, r)
    cc = R.rel_diff(c - c.mean(1, keepdim=True), r - r.mean(1, keepdim=True))
    print(f"{label}: max rel {d:.2e}, elementwise {e:.2e}, centred {cc:.2e}")
    if not (d <= TOL and e <= TOL and cc <= TOL):
        T.fail(f"{label}: max rel {d:.3e}, elementwise {e:.3e}, centred {cc:.3e} > {TOL:g}")


def c_forward(ckpt_path, batch_path, keys, train_bn):
    args = ["forward"] + (["--train-bn"] if train_bn else []) + [ckpt_path]
    R.cnn_tool(*args, stdin=batch_path, stdout="out.msgpack")
    _, items, _ = ckpt.read_stream("out.msgpack")
    got = [it["key"] for it in items]
    if got != keys:
        raise AssertionError(f"forward output keys {got[:5]}... != input keys {keys[:5]}...")
    return np.stack([it["tensors"]["logprob"] for it in items])


def run_case(width_div, batch, frames_list, seed):
    init = f"init-{width_div}.ckpt"
    R.cnn_tool("init", "--classes", CLASSES, "--width-div", width_div, "--seed", seed, "-o", init)
    model = R.Cnn14(CLASSES, width_div, dropout=False)
    ckpt.load_into(model, init)
    x0 = R.logmel_like(batch, frames_list[0], seed)
    # the pristine C checkpoint, read by both sides as written
    if width_div != 1:
        ckpt.write_batch("batch.msgpack", x0.numpy())
        keys = [f"x{i:03d}" for i in range(batch)]
        model.eval()
        with torch.no_grad():
            ref = model(x0)
        compare(f"width_div {width_div}, {frames_list[0]} frames, C-written init checkpoint, eval BN",
                c_forward(init, "batch.msgpack", keys, False), ref)
    flat = x0.reshape(-1, x0.shape[-1])
    R.randomize_state(model, seed + 100, flat.mean(0), flat.var(0))
    pert = f"pert-{width_div}.ckpt"
    header, _ = ckpt.read_checkpoint(init)
    ckpt.write_checkpoint(pert, model.state_dict(), header["params"]["model"])
    for frames in frames_list:
        x = R.logmel_like(batch, frames, seed + frames)
        keys = [f"utt{i}" for i in range(batch)]
        ckpt.write_batch("batch.msgpack", x.numpy(), keys=keys)
        for train_bn in (False, True):
            m = R.Cnn14(CLASSES, width_div, dropout=False)
            m.load_state_dict(model.state_dict())
            m.train(train_bn)
            with torch.no_grad():
                ref = m(x)
            got = c_forward(pert, "batch.msgpack", keys, train_bn)
            compare(f"width_div {width_div}, batch {batch}, {frames} frames, "
                    f"{'train' if train_bn else 'eval'}-mode BN", got, ref)


run_case(1, 2, [32, 150, 1200], seed=11)
run_case(8, 4, [32, 101], seed=12)

# too short: an error that names the length
ckpt.write_batch("short.msgpack", R.logmel_like(2, 31, 5).numpy())
p = R.cnn_tool("forward", "init-8.ckpt", stdin="short.msgpack", stdout="o.msgpack", check=False)
if p.returncode != 2 or "31" not in p.stderr:
    T.fail(f"31 frames: exit {p.returncode}, message {p.stderr.strip()!r} (want exit 2 naming 31)")

T.done()
