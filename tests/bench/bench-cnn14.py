"""Cnn14 throughput: the C network (cnn-tool bench) against the PyTorch
reference (tests/ref/cnn14_ref.py), measured in the same run.

Batch 8 of 300-frame inputs, 3 classes, 2 threads, full width,
width_div 8 (issue 14's narrow model) and width_div 16 (the demo's, no goal
of its own): a training step (forward with dropout, backward, SGD Nesterov
update) and inference (eval mode), samples per second after one untimed
warm-up step (PyTorch: two at full width, four when narrow, as its
first calls are slow).  PyTorch runs in its own process with its fastest settings
here (GLIBC_TUNABLES keeping freed memory mapped, OPENBLAS_NUM_THREADS=1,
torch.set_num_threads(2)); ours in cnn-tool's.  Printed: both rates, the
ratio ours/PyTorch (narrow: the best of three alternating rounds
per side, as a 2-core machine shared with other work makes single short
runs noisy), GFLOPS (the conv and linear multiply-adds counted here,
x2; training = 3x forward) against the sgemm peak cnn-tool measures (one
single-threaded sgemm per thread), each process's peak resident memory
(wait4), and the OpenBLAS core.  When OPENBLAS_CORETYPE is set, both run
again without it.  SERTOOLS_BENCH_ITERS overrides the timed iterations.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("SERTOOLS_SRC", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "ref"))
sys.path.insert(0, os.path.join(SRC, "tests", "bench"))
from goals import result  # noqa: E402

BATCH, FRAMES, CLASSES, THREADS = 8, 300, 3, 2
TORCH_ENV = {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296",
             "OPENBLAS_NUM_THREADS": "1"}
CHANNELS = (64, 128, 256, 512, 1024, 2048)


def forward_flops(width_div, frames, classes=CLASSES, n_mels=64):
    """2 x the multiply-adds of the convolutions and linear layers of one
    sample (BatchNorm, ReLU, pooling and softmax are not counted)."""
    h, w, cin, macs = frames, n_mels, 1, 0
    for b, c in enumerate(CHANNELS, 1):
        c //= width_div
        macs += 9 * (cin * c + c * c) * h * w
        cin = c
        if b < 6:
            h, w = h // 2, w // 2
    macs += cin * cin + cin * classes
    return 2.0 * macs


def torch_worker(width_div, iters, warmup):
    import torch
    import cnn14_ref as R
    torch.set_num_threads(THREADS)
    torch.manual_seed(1)
    model = R.Cnn14(CLASSES, width_div).init_weights(1)
    x = -30 + 20 * torch.rand(BATCH, FRAMES, 64)
    labels = torch.arange(BATCH) % CLASSES
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)

    def train_step():
        opt.zero_grad()
        torch.nn.functional.nll_loss(model(x), labels).backward()
        opt.step()

    model.train()
    for _ in range(warmup):  # oneDNN primitives and the allocator settle in the first few calls
        train_step()
    t0 = time.perf_counter()
    for _ in range(iters):
        train_step()
    train = time.perf_counter() - t0
    model.eval()
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        t0 = time.perf_counter()
        for _ in range(iters):
            model(x)
        infer = time.perf_counter() - t0
    return {"train_samples_per_s": BATCH * iters / train, "infer_samples_per_s": BATCH * iters / infer}


def measure(cmd, env):
    """(stdout, peak resident memory in MB) of one child process; its own
    rusage comes from wait4 (RUSAGE_CHILDREN would give the largest child
    so far, not this one)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=err, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd))}: exit {p.returncode}: "
                               f"{err.read().decode(errors='replace').strip()[-500:]}")
        return out.read().decode(), ru.ru_maxrss / 1024.0


def ours(width_div, iters, env):
    exe = os.path.join(os.environ.get("SERTOOLS_TESTBIN", ""), "cnn-tool")
    if not os.access(exe, os.X_OK):
        return None
    out, rss = measure([exe, "bench", "--width-div", str(width_div), "--batch", str(BATCH), "--frames",
                        str(FRAMES), "--classes", str(CLASSES), "--iters", str(iters), "--threads", str(THREADS)],
                       env)
    r = {}
    for line in out.splitlines():
        k, _, v = line.partition(" ")
        try:
            r[k] = float(v)
        except ValueError:
            r[k] = v.strip()
    r["rss_mb"] = rss
    return r


def pytorch(width_div, iters, env):
    env = dict(env, **TORCH_ENV)
    warmup = 2 if width_div == 1 else 4
    out, rss = measure([sys.executable, os.path.abspath(__file__), "--torch-worker", width_div, iters, warmup], env)
    r = json.loads(out)
    r["rss_mb"] = rss
    return r


def openblas_core(env):
    exe = os.path.join(os.environ.get("SERTOOLS_TESTBIN", ""), "openblas-core")
    try:
        return subprocess.run([exe], env=env, capture_output=True, text=True, check=True).stdout.split(" (")[0]
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def best(a, b):
    """Per rate, the faster of two rounds; memory of the first."""
    if a is None or b is None:
        return a or b
    r = dict(a)
    for k in ("train_samples_per_s", "infer_samples_per_s"):
        r[k] = max(a[k], b[k])
    return r


def report(width_div, iters, env, label, rounds):
    fl = forward_flops(width_div, FRAMES)
    t = o = None
    for _ in range(rounds):  # alternating, so that a burst of load elsewhere hits both
        t = best(t, pytorch(width_div, iters, env))
        try:
            o = best(o, ours(width_div, iters, env))
        except RuntimeError as e:
            print(f"  ours: failed: {e}")
    peak = o.get("sgemm_peak_gflops") if o else None
    print(f"width_div {width_div} ({label}; {fl / 1e9:.2f} GFLOP per sample forward, {iters} timed iterations, "
          f"best of {rounds} round{'s' if rounds > 1 else ''}):")
    for kind, mult in (("train", 3), ("infer", 1)):
        key = f"{kind}_samples_per_s"
        tg = t[key] * mult * fl / 1e9
        tp = f", {100 * tg / peak:.0f}% of peak" if peak else ""
        line = f"  {kind:5s} pytorch {t[key]:8.2f} samples/s ({tg:6.1f} GFLOPS{tp})"
        if o:
            og = o[key] * mult * fl / 1e9
            result(f"cnn14_{'full' if width_div == 1 else f'div{width_div}'}_{kind}", o[key] / t[key],
                   f"OpenBLAS {o.get('openblas_core')}")
            line += (f" | ours {o[key]:8.2f} samples/s ({og:6.1f} GFLOPS, {100 * og / peak:.0f}% of peak)"
                     f" | ours/pytorch {o[key] / t[key]:.2f}")
        else:
            line += " | ours: not available"
        print(line)
    mem = f"  peak RSS (training + inference process): pytorch {t['rss_mb']:.0f} MB"
    if o:
        mem += f" | ours {o['rss_mb']:.0f} MB | ours/pytorch {o['rss_mb'] / t['rss_mb']:.2f}"
        if width_div == 1:
            result("cnn14_full_rss", o['rss_mb'] / t['rss_mb'], f"OpenBLAS {o.get('openblas_core')}")
        mem += f"; sgemm peak {peak:.1f} GFLOPS on {THREADS} threads; ours: OpenBLAS core {o.get('openblas_core')}"
    print(mem)


def main():
    full_iters = int(os.environ.get("SERTOOLS_BENCH_ITERS", "3"))
    env = dict(os.environ)
    runs = [(env, f"OPENBLAS_CORETYPE={env.get('OPENBLAS_CORETYPE', '(unset)')}")]
    if "OPENBLAS_CORETYPE" in env:
        unset = {k: v for k, v in env.items() if k != "OPENBLAS_CORETYPE"}
        runs.append((unset, "OPENBLAS_CORETYPE unset"))
    print(f"Cnn14, batch {BATCH} x {FRAMES} frames, {CLASSES} classes, {THREADS} threads")
    if not os.access(os.path.join(os.environ.get("SERTOOLS_TESTBIN", ""), "cnn-tool"), os.X_OK):
        print("ours: not available ($SERTOOLS_TESTBIN/cnn-tool missing); PyTorch only")
    for e, label in runs:
        print(f"-- {label}; OpenBLAS core {openblas_core(e)}")
        for wd, iters, rounds in ((1, full_iters, 1), (8, 4 * full_iters, 3), (16, 4 * full_iters, 3)):
            report(wd, iters, e, label, rounds)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--torch-worker":
        print(json.dumps(torch_worker(*map(int, sys.argv[2:]))))
    else:
        main()
