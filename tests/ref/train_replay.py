"""cnn-train's training steps replayed in PyTorch from its documented recipe
alone (man/cnn-train.1, common/cnn14.h, formats/checkpoint.md): what
t-cnn-train.py and t-cnn-train-replay.py share.

    import train_replay as TR
    order, offsets = TR.plan_epoch(seed, epoch, frames, crop)   # the epoch's item order and crops
    x, labels = TR.batch_input(items, order, offsets, first, size, crop)
    loss, state, bufs, margin = TR.replay_step(state, bufs, x, labels, weights, seed, counter,
                                               torch.float64, R, torch, lr=0.001, momentum=0.9)
    whole, (worst, name), worst_elem = TR.update_errors(got, ref, start, names)

What it encodes:
 - order and crops: splitmix64 (common/rng.h) seeded with (seed, epoch): a
   Fisher-Yates shuffle, then one crop offset per position, uniform draws
   by rejection; an item shorter than the crop is padded at its end with
   PAD (-100 dB);
 - dropout: cnn14.h's counter-based masks of (seed, counter, site), the
   counter being the number of the training forward pass in the run (1 for
   the first batch of the first epoch, and so on across epochs);
 - the loss: PyTorch's class-weighted NLL, mean reduction;
 - the step: torch.optim.SGD(lr, momentum, nesterov, weight_decay) from the
   given momentum buffers (None: the first step).
items are [(key, label, logmel float32 (frames, 64))] in stream order.
"""
import copy

import numpy as np

# The SGD tolerance of a replayed run against the float64 replay: the logged
# loss within LOSS_TOL relative; every parameter and running statistic
# within TOL of its tensor's largest value; the update (end state minus start
# state) within UPDATE_L2_TOL in relative L2 norm overall and TENSOR_L2_TOL
# per tensor.  The update bounds allow for ReLU inputs within float32
# rounding of zero, which flip sign in about one step in three at width 16
# and move the update by up to 2e-3 (PyTorch's own float32 step included);
# a recipe error moves it by ~0.5 (t-cnn-train.py, t-cnn-train-replay.py).
TOL, LOSS_TOL, UPDATE_L2_TOL, TENSOR_L2_TOL = 1e-4, 1e-5, 5e-3, 3e-2

M64 = (1 << 64) - 1
PAD = -100.0  # 10 log10(amin) of the default melspec settings


def rng_next(s):
    s = (s + 0x9E3779B97F4A7C15) & M64
    z = s
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return s, z ^ (z >> 31)


def rng_seed(seed, stream):
    s = seed ^ 0x5851F42D4C957F2D
    s, _ = rng_next(s)
    s ^= (stream * 0xDA942042E4DD58B5) & M64
    s, _ = rng_next(s)
    return s


def plan_epoch(seed, epoch, frames, crop):
    """cnn-train's documented plan: Fisher-Yates order, then one crop offset
    per position, all from rng_seed(seed, epoch); uniform draws by rejection."""
    state = rng_seed(seed, epoch)

    def below(n):
        nonlocal state
        limit = M64 - M64 % n
        while True:
            state, x = rng_next(state)
            if x < limit:
                return x % n

    n = len(frames)
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = below(i + 1)
        order[i], order[j] = order[j], order[i]
    offsets = [below(frames[order[i]] - crop + 1) if frames[order[i]] > crop else 0 for i in range(n)]
    return order, offsets


def batch_input(items, order, offsets, first, size, crop):
    """(x (size, crop, 64) float32, labels) of the batch of `size` positions
    of the epoch's plan starting at position `first`."""
    x = np.full((size, crop, 64), PAD, dtype=np.float32)
    labels = []
    for b in range(size):
        i, off = order[first + b], offsets[first + b]
        seg = items[i][2][off:off + crop]
        x[b, :seg.shape[0]] = seg
        labels.append(items[i][1])
    return x, labels


def mix64(z):
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def keep_mask(seed, counter, site, p, n):
    """cnn14.h's dropout: unit i of (seed, counter, site) is kept when the
    top 24 bits of mix64(base + (i+1)*golden) are >= p*2^24."""
    inner = int(mix64(np.array([(counter * 64 + site) & M64], dtype=np.uint64))[0])
    base = mix64(np.array([seed ^ inner], dtype=np.uint64))[0]
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        v = mix64(base + i * np.uint64(0x9E3779B97F4A7C15))
    return (v >> np.uint64(40)) >= np.uint64(int(p * 16777216.0))


def masked_model(state, seed, counter, dtype, R, dropout=True):
    """The reference network with cnn-train's dropout masks for training
    forward number `counter` of the run (none with dropout False: cnn-train
    --no-dropout), in training mode."""
    import torch

    class Masked(R.Cnn14):
        site = 0

        def _drop(self, x, p):
            if not dropout:
                return x
            self.site += 1
            keep = keep_mask(seed, counter, self.site, p, x.numel())
            if x.dim() == 4:  # the C layout is (channel, sample, time, mel)
                N, C, T, Mm = x.shape
                m = torch.from_numpy(keep.reshape(C, N, T, Mm)).permute(1, 0, 2, 3)
            else:
                m = torch.from_numpy(keep.reshape(x.shape))
            return x * m.to(x.dtype) * (1.0 / (1.0 - p))

    classes, c6 = state["fc_transfer.weight"].shape
    model = Masked(classes, 2048 // c6)
    model.load_state_dict(state)
    return model.to(dtype).train()


def replay_step(state, buffers, batch_x, labels, weights, seed, counter, dtype, R, torch, nesterov=True,
                lr=0.001, momentum=0.9, weight_decay=0.0, dropout=True):
    """One cnn-train training step in PyTorch: (loss, state dict, momentum
    buffers by parameter name, kink margin of the forward pass: how close
    float32 rounding comes to flipping a ReLU, see cnn14_ref.kink_margin)."""
    import torch.nn.functional as F
    model = masked_model(state, seed, counter, dtype, R, dropout)
    x = torch.from_numpy(batch_x).to(dtype)
    margin = R.kink_margin(copy.deepcopy(model), x)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=nesterov,
                          weight_decay=weight_decay)
    for n, p in model.named_parameters():
        if buffers is not None and n in buffers:
            opt.state[p]["momentum_buffer"] = buffers[n].to(dtype).clone()
    loss = F.nll_loss(model(x), torch.tensor(labels), weight=torch.tensor(weights, dtype=dtype))
    opt.zero_grad()
    loss.backward()
    opt.step()
    bufs = {n: opt.state[p]["momentum_buffer"] for n, p in model.named_parameters()}
    return loss.item(), model.state_dict(), bufs, margin


def update_errors(got, ref, start, names):
    """(relative L2 error of the whole update, (worst per-tensor relative L2
    error, its tensor), worst per-tensor max-element error) of got against
    ref, both stepped from start."""
    num = den = 0.0
    per, worst_max = (0.0, ""), 0.0
    for n in names:
        d = got[n].double() - ref[n].double()
        u = ref[n].double() - start[n].double()
        num += (d ** 2).sum().item()
        den += (u ** 2).sum().item()
        e = (d.norm() / u.norm()).item() if u.norm() > 0 else d.norm().item()
        per = max(per, (e, n))
        worst_max = max(worst_max, (d.abs().max() / u.abs().max()).item() if u.abs().max() > 0 else 0.0)
    return (num / den) ** 0.5, per, worst_max


def bitwise(a, b):
    """Same dtype, shape and bytes (numpy arrays or torch tensors)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def class_weights(labels, classes, balance=True):
    """cnn-train's class weights: N / (K * N[k]), or all 1 without balance."""
    counts = np.bincount(labels, minlength=classes)
    return [len(labels) / (classes * c) if balance else 1.0 for c in counts]
