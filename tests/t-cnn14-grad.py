"""Cnn14 parameter gradients, C (cnn-tool grad) against the PyTorch
reference with identical weights: training-mode BatchNorm (batch
statistics), dropout off, loss = class-weighted NLL with PyTorch semantics
(sum_i w[y_i] (-logp_i[y_i]) / sum_i w[y_i]).

Tolerance: for every trainable parameter, max |g_c - g_r| / max |g_r| <= 1e-3;
the loss within 1e-5 relative.

Inputs are well conditioned (tests/ref/cnn14_ref.py pick_input): the
reference's own float32 gradients are within a quarter of the tolerance of
its float64 ones, and no pre-ReLU value lies within 1e-6 of its layer's
largest value (kink_margin).  A ReLU input within rounding of zero flips
sign between two float32 implementations and legitimately moves a conv
weight gradient by ~1e-3; such inputs (about six in ten at these sizes)
are skipped.

Cases: width_div 8, batch 4, 32 frames; width_div 16, batch 2, 101 frames;
width_div 4, batch 2, 32 frames.  The test also shows it has teeth: the
unweighted loss's gradient, and eval-mode BN's, differ from the reference
by more than the tolerance.
"""
import copy
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
TOL = 1e-3
LOSS_TOL = 1e-5
CLASSES = 3
WEIGHTS = [0.7, 1.3, 2.9]


def ref_grads(model, x, labels, weights, train=True):
    model.zero_grad()
    model.train(train)
    loss = R.weighted_nll(model(x), labels, weights)
    loss.backward()
    return loss.item(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def run_case(width_div, batch, frames, seed):
    label = f"width_div {width_div}, batch {batch}, {frames} frames"
    init = f"init-{width_div}.ckpt"
    R.cnn_tool("init", "--classes", CLASSES, "--width-div", width_div, "--seed", seed, "-o", init)
    model = R.Cnn14(CLASSES, width_div, dropout=False)
    header = ckpt.load_into(model, init)
    R.randomize_state(model, seed + 100)
    pert = f"pert-{width_div}.ckpt"
    ckpt.write_checkpoint(pert, model.state_dict(), header["params"]["model"])
    labels = torch.tensor([i % CLASSES for i in range(batch)][::-1])
    w = torch.tensor(WEIGHTS)
    m64 = copy.deepcopy(model).double()

    def excess(x):
        if R.kink_margin(copy.deepcopy(m64).train(), x.double()) < 1e-6:
            return float("inf")
        l32, g32 = ref_grads(model, x, labels, w)
        l64, g64 = ref_grads(m64, x.double(), labels, w.double())
        return max(abs(l32 - l64) / abs(l64) / (LOSS_TOL / 4),
                   max(R.rel_diff(g32[n], g64[n]) for n in g64) / (TOL / 4))

    in_seed, x = R.pick_input(excess, batch, frames, seed * 1000)
    ckpt.write_batch("batch.msgpack", x.numpy(), labels=labels.tolist())
    loss_r, grads_r = ref_grads(model, x, labels, w)

    R.cnn_tool("grad", pert, "--class-weights", ",".join(map(str, WEIGHTS)),
               stdin="batch.msgpack", stdout="grads.msgpack")
    gh, items, _ = ckpt.read_stream("grads.msgpack")
    names = [it["key"] for it in items]
    if names != list(grads_r):
        T.fail(f"{label}: gradient names/order {names} != {list(grads_r)}")
        return
    loss_c = float(gh["params"]["loss"])
    lrel = abs(loss_c - loss_r) / abs(loss_r)
    if lrel > LOSS_TOL:
        T.fail(f"{label}: loss {loss_c!r} vs {loss_r!r} (rel {lrel:.2e})")
    worst = (0.0, "")
    for it in items:
        n = it["key"]
        gc = torch.from_numpy(np.array(it["tensors"]["grad"]))
        if tuple(gc.shape) != tuple(grads_r[n].shape):
            T.fail(f"{label}: {n}: shape {tuple(gc.shape)} != {tuple(grads_r[n].shape)}")
            continue
        d = R.rel_diff(gc, grads_r[n])
        worst = max(worst, (d, n))
        if not d <= TOL:
            T.fail(f"{label}: {n}: gradient max rel diff {d:.3e} > {TOL:g}")
    print(f"{label} (input seed {in_seed}): loss {loss_c:.6f} vs {loss_r:.6f} (rel {lrel:.1e}); "
          f"worst gradient rel diff {worst[0]:.2e} ({worst[1]})")

    # teeth: plausible mistakes move the gradients by more than the tolerance
    m2 = R.Cnn14(CLASSES, width_div, dropout=False)
    m2.load_state_dict(model.state_dict())
    _, g_unweighted = ref_grads(m2, x, labels, torch.ones(CLASSES))
    _, g_eval = ref_grads(m2, x, labels, w, train=False)
    for what, g in (("unweighted loss", g_unweighted), ("eval-mode BN", g_eval)):
        d = max(R.rel_diff(g[n], grads_r[n]) for n in grads_r)
        if d <= 10 * TOL:
            T.fail(f"{label}: {what} changes the gradients by only {d:.2e}: the test is too weak")


run_case(8, 4, 32, seed=21)
run_case(16, 2, 101, seed=22)
run_case(4, 2, 32, seed=23)

T.done()
