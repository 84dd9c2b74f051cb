"""SGD steps on one batch, C (cnn-tool step) against torch.optim.SGD on the
PyTorch reference, in training mode, dropout off, class-weighted NLL loss.

Per case, from one starting checkpoint (random BatchNorm weights and biases,
running statistics from another batch):
  1. C takes three steps in one run, and three one-step runs chained through
     its optimiser state (--save-optimizer / --load-optimizer): the results
     must be bitwise equal (exact resume).
  2. Each of the three C steps is compared with one torch.optim.SGD step
     taken from C's state before it (checkpoint + momentum buffers read with
     msgpack_numpy), per tensor:
       parameters, running_mean, running_var: max |c - r| / max |r| <= 1e-4;
       the update p_after - p_before of every trained parameter and the
         momentum buffers: max |c - r| / max |r| <= 1e-3 (the parameter
         bound alone would miss a wrong update smaller than 1e-4 of the
         weights);
       num_batches_tracked: equal (+1 per step; unchanged with
         --freeze-bn-stats);
       every tensor that must not change (frozen parameters with
         `--finetune linear`, running statistics with --freeze-bn-stats):
         bitwise equal.
  3. C's three-step result against torch's own three steps from the start is
     printed, not asserted: trajectories that differ by rounding in step 1
     meet a pre-ReLU value within rounding of zero in a later step often
     enough (a sign flip moves a weight by ~1e-3 relative) that asserting
     1e-4 there would be flaky; 1. and 2. pin every step down instead.
`--finetune linear` trains fc1 and fc_transfer only, BatchNorm as under
PyTorch's model.train(); with --freeze-bn-stats every BatchNorm behaves as
under bn.eval() (running statistics used and left alone).
Inputs are well conditioned (tests/ref/cnn14_ref.py pick_input): PyTorch's
float32 first step is within a quarter of the tolerances of its float64 one,
and along the float64 trajectory and at C's states no pre-ReLU value lies
within 1e-6 (resp. 5e-7) of its layer's largest value.
The test shows it has teeth: Nesterov vs plain momentum, and weight decay
vs none, move the reference's update by more than ten times the tolerance.
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
TOL = 1e-4
UPDATE_TOL = 1e-3
CLASSES = 3
STEPS = 3
START_NBT = 5
WEIGHTS = [1.6, 0.8, 1.1]


def make_sgd(m, cfg, buffers=None):
    if cfg["freeze_bn"]:
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.eval()
    named = [(n, p) for n, p in m.named_parameters()
             if cfg["finetune"] == "all" or n.startswith(("fc1.", "fc_transfer."))]
    opt = torch.optim.SGD([p for _, p in named], lr=cfg["lr"], momentum=cfg["momentum"],
                          nesterov=cfg["nesterov"], weight_decay=cfg["wd"])
    for n, p in named:
        if buffers is not None and n in buffers:
            opt.state[p]["momentum_buffer"] = buffers[n].to(p.dtype).clone()
    return opt, named


def torch_steps(model, x, labels, cfg, steps=STEPS, dtype=torch.float32, buffers=None, margins=None):
    """steps SGD steps from model's state (+ momentum buffers); returns
    (state dict, {name: momentum buffer})."""
    m = copy.deepcopy(model).to(dtype).train()
    opt, named = make_sgd(m, cfg, buffers)
    w = torch.tensor(WEIGHTS, dtype=dtype)
    for _ in range(steps):
        if margins is not None:
            margins.append(R.kink_margin(copy.deepcopy(m), x.to(dtype)))
        opt.zero_grad()
        R.weighted_nll(m(x.to(dtype)), labels, w).backward()
        opt.step()
    return m.state_dict(), {n: opt.state[p]["momentum_buffer"] for n, p in named if p in opt.state}


def errors(after, ref, before, trained):
    """(worst value rel diff, worst update rel diff) of after against ref."""
    v = max(R.rel_diff(after[n], ref[n]) for n in ref if "num_batches" not in n)
    u = max(R.rel_diff(after[n].double() - before[n].double(), ref[n].double() - before[n].double())
            for n in trained)
    return v, u


def state_of(path):
    return ckpt.to_torch(ckpt.read_checkpoint(path)[1])


def buffers_of(path):
    _, items, _ = ckpt.read_stream(path)
    return {it["key"]: torch.from_numpy(np.array(it["tensors"]["momentum_buffer"])) for it in items}


def compare_step(label, got, ref, before, trained, freeze_bn, nbt_want, worst):
    for n, r in ref.items():
        c = got[n]
        if tuple(c.shape) != tuple(r.shape):
            T.fail(f"{label}: {n}: shape {tuple(c.shape)} != {tuple(r.shape)}")
            continue
        if n.endswith("num_batches_tracked"):
            if c.item() != r.item() or r.item() != nbt_want:
                T.fail(f"{label}: {n} = {c.item()}, reference {r.item()}, want {nbt_want}")
            continue
        stats = "running_" in n
        if n in trained or (stats and not freeze_bn):
            d = R.rel_diff(c, r)
            kind = "stats" if stats else "value"
            worst[kind] = max(worst[kind], (d, n))
            if not d <= TOL:
                T.fail(f"{label}: {n}: max rel diff {d:.3e} > {TOL:g}")
        elif not torch.equal(c, before[n]):
            T.fail(f"{label}: {n} must not change but did (max {(c - before[n]).abs().max():.3e})")
        if n in trained:
            u = R.rel_diff(c.double() - before[n].double(), r.double() - before[n].double())
            worst["update"] = max(worst["update"], (u, n))
            if not u <= UPDATE_TOL:
                T.fail(f"{label}: {n}: update max rel diff {u:.3e} > {UPDATE_TOL:g}")


def c_step(start, out, cfg, load_opt=None, save_opt=None, steps=1):
    args = ["step", start, "--steps", steps, "--lr", cfg["lr"], "--momentum", cfg["momentum"],
            "--class-weights", ",".join(map(str, WEIGHTS)), "--finetune", cfg["finetune"]]
    args += ["--nesterov"] if cfg["nesterov"] else []
    args += ["--weight-decay", cfg["wd"]] if cfg["wd"] else []
    args += ["--freeze-bn-stats"] if cfg["freeze_bn"] else []
    args += ["--load-optimizer", load_opt] if load_opt else []
    args += ["--save-optimizer", save_opt] if save_opt else []
    R.cnn_tool(*args, stdin="batch.msgpack", stdout=out)


def case(width_div, batch, frames, seed, lr, momentum=0.9, nesterov=True, wd=0.0, finetune="all",
         freeze_bn=False):
    cfg = dict(lr=lr, momentum=momentum, nesterov=nesterov, wd=wd, finetune=finetune, freeze_bn=freeze_bn)
    label = (f"width_div {width_div}, batch {batch}, lr {lr}, momentum {momentum}{' nesterov' if nesterov else ''}, "
             f"weight decay {wd}, finetune {finetune}{', frozen BN statistics' if freeze_bn else ''}")
    R.cnn_tool("init", "--classes", CLASSES, "--width-div", width_div, "--seed", seed, "-o", "init.ckpt")
    model = R.Cnn14(CLASSES, width_div, dropout=False)
    header = ckpt.load_into(model, "init.ckpt")
    R.randomize_state(model, seed + 100)
    with torch.no_grad():  # running statistics of another batch
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.momentum = 1.0
        model.train()(R.logmel_like(batch, frames, seed))
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.momentum = 0.1
                mod.num_batches_tracked.fill_(START_NBT)
    ckpt.write_checkpoint("start.ckpt", model.state_dict(), header["params"]["model"])
    start = model.state_dict()
    trained = {n for n, _ in model.named_parameters()
               if finetune == "all" or n.startswith(("fc1.", "fc_transfer."))}
    labels = torch.tensor([(i + 1) % CLASSES for i in range(batch)])

    def excess(x):
        margins = []
        s64, _ = torch_steps(model, x, labels, cfg, dtype=torch.float64, margins=margins)
        if min(margins) < 1e-6:
            return float("inf")
        v, u = errors(torch_steps(model, x, labels, cfg, steps=1)[0],
                      torch_steps(model, x, labels, cfg, steps=1, dtype=torch.float64)[0], start, trained)
        return max(v / (TOL / 4), u / (UPDATE_TOL / 4))

    first = seed * 1000
    for attempt in range(3):
        in_seed, x = R.pick_input(excess, batch, frames, first, tries=100)
        first = in_seed + 1
        ckpt.write_batch("batch.msgpack", x.numpy(), labels=labels.tolist())
        c_step("start.ckpt", "cont.ckpt", cfg, steps=STEPS)
        for k in range(1, STEPS + 1):
            c_step("start.ckpt" if k == 1 else f"c{k - 1}.ckpt", f"c{k}.ckpt", cfg,
                   load_opt=f"o{k - 1}.msgpack" if k > 1 else None, save_opt=f"o{k}.msgpack")
        # the margin at C's own states (where its next gradient is taken)
        m64 = R.Cnn14(CLASSES, width_div, dropout=False).double()
        c_margin = 1.0
        for k in range(STEPS):
            m64.load_state_dict(start if k == 0 else state_of(f"c{k}.ckpt"))
            make_sgd(m64.train(), cfg)
            c_margin = min(c_margin, R.kink_margin(m64, x.double()))
        if c_margin >= 5e-7:
            break
        print(f"{label}: input seed {in_seed}: C's trajectory passes within {c_margin:.1e} of a kink; next input")
    else:
        T.fail(f"{label}: no input keeps C's trajectory away from the kinks")
        return None

    cont = state_of("cont.ckpt")
    last = state_of(f"c{STEPS}.ckpt")
    same = all(torch.equal(cont[n], last[n]) for n in cont) and list(cont) == list(last)
    if not same:
        T.fail(f"{label}: {STEPS} steps in one run differ from {STEPS} resumed one-step runs")
    worst = {"value": (0.0, ""), "update": (0.0, ""), "stats": (0.0, ""), "buffer": (0.0, "")}
    before, buffers = start, None
    for k in range(1, STEPS + 1):
        m = R.Cnn14(CLASSES, width_div, dropout=False)
        m.load_state_dict(before)
        ref, ref_buf = torch_steps(m, x, labels, cfg, steps=1, buffers=buffers)
        got = state_of(f"c{k}.ckpt")
        if list(got) != list(ref):
            T.fail(f"{label}: step {k}: checkpoint names/order differ: {list(got)}")
            return None
        nbt = START_NBT + (0 if freeze_bn else k)
        compare_step(f"{label}: step {k}", got, ref, before, trained, freeze_bn, nbt, worst)
        got_buf = buffers_of(f"o{k}.msgpack")
        if set(got_buf) != set(ref_buf):
            T.fail(f"{label}: step {k}: momentum buffers for {sorted(got_buf)}, want {sorted(ref_buf)}")
        for n in set(got_buf) & set(ref_buf):
            d = R.rel_diff(got_buf[n], ref_buf[n])
            worst["buffer"] = max(worst["buffer"], (d, n))
            if not d <= UPDATE_TOL:
                T.fail(f"{label}: step {k}: momentum buffer {n}: max rel diff {d:.3e} > {UPDATE_TOL:g}")
        before, buffers = got, got_buf
    three, _ = torch_steps(model, x, labels, cfg)
    v, u = errors(cont, three, start, trained)
    print(f"{label} (input seed {in_seed}): resume bitwise {'equal' if same else 'DIFFERENT'}; "
          f"per step worst rel diff: parameters {worst['value'][0]:.2e} ({worst['value'][1]}), "
          f"updates {worst['update'][0]:.2e} ({worst['update'][1]}), running stats {worst['stats'][0]:.2e} "
          f"({worst['stats'][1]}), momentum {worst['buffer'][0]:.2e}; "
          f"three steps vs torch's three (not asserted): parameters {v:.2e}, updates {u:.2e}")
    return model, x, labels, cfg


result = case(8, 2, 32, 31, 0.01)
if result:
    model, x, labels, cfg = result
    # teeth, on the reference alone: the variants differ by more than the tolerance
    trained = {n for n, _ in model.named_parameters()}
    for what, change in (("nesterov vs plain momentum", dict(nesterov=False)),
                         ("weight decay 1e-3 vs none", dict(wd=1e-3))):
        gap = errors(torch_steps(model, x, labels, dict(cfg, **change))[0], torch_steps(model, x, labels, cfg)[0],
                     model.state_dict(), trained)[1]
        print(f"teeth: {what} moves the three-step update by {gap:.2e}")
        if gap <= 10 * UPDATE_TOL:
            T.fail(f"{what} moves the update by only {gap:.2e}: the test is too weak")
case(8, 2, 32, 32, 0.01, wd=5e-3)
case(16, 4, 32, 33, 0.01, nesterov=False)
case(16, 4, 32, 34, 0.001, wd=1e-4)
case(16, 4, 32, 35, 0.01, wd=1e-3, finetune="linear")
case(16, 4, 32, 36, 0.01, finetune="linear", freeze_bn=True)
case(16, 4, 32, 37, 0.001, freeze_bn=True)

T.done()
