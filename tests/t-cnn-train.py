"""cnn-train end to end, on a small labelled set made here through the real
pipeline: tones of three clearly different pitches (250, 900, 3000 Hz,
+-7 %), with noise 5-15 dB down, gains 4-14 dB below full scale and
durations of 0.6-1.5 s, written as WAV files, then audio-read | melspec |
binlabels with an MSP-Podcast-style CSV whose EmoAct ratings put each pitch
in low / mid / high arousal.  Checked:

 1. Learning: width_div 8, the paper's recipe (lr 0.001, Nesterov 0.9,
    batch 8) without dropout, 64-frame crops: the best dev UAR is >= 0.6
    (chance 1/3) and the training loss falls.  Without --no-dropout the
    check would be a coin toss: with Cnn14's dropout this narrow network
    stays near chance for 6-10 epochs in about a third of the seeds (7 of
    20 seeds below 0.6 after 6 epochs, on an Intel Xeon; PyTorch training
    the reference network, 2 of 6 slow), and which seeds do depends on the
    CPU's rounding.  Without it all 8 seeds tried reach >= 0.9 by epoch 3.
    log.tsv, summary.tsv and summary.json have the documented columns, the
    best epoch is the argmax of dev UAR (earliest on ties), best.ckpt is
    that epoch's model.  init.ckpt is bitwise the fresh
    model of the core (cnn-tool init, same seed).  The dev and test UAR of
    best.ckpt, recomputed with the PyTorch reference on whole items in eval
    mode (sklearn's macro recall), equal the summary's.
 2. Against PyTorch: runs of 1 and 2 epochs on 8 unbalanced items (one batch
    per epoch, 100-frame crops, so that two items are padded with -100 dB
    and the others cropped at random offsets), width_div 16, are replayed
    in PyTorch from the documented recipe alone: order and crops from the
    splitmix64 generator of (seed, epoch), dropout masks from cnn14.h's
    counter-based generator, inverse-frequency class weights,
    torch.optim.SGD (Nesterov), from cnn-train's own state before each step
    (init.ckpt; last.ckpt + last.opt after epoch 1).  Against the float64
    replay: the logged training loss within 1e-5 relative; every parameter
    and running statistic within 1e-4 of its largest value; the update
    within 5e-3 in relative L2 norm overall and 3e-2 per tensor, and the
    saved momentum buffers likewise.  The update bounds allow for ReLU
    inputs within float32 rounding of zero, which flip sign in about one
    step in three at this size and move the update by up to 2e-3 (PyTorch's
    own float32 step included); a recipe error moves it by ~0.5 (classical
    momentum, an unweighted loss: checked).  Epoch 1's dev UAR equals
    PyTorch's on the model.
 3. Transfer: --init best.ckpt copies every tensor; --finetune linear
    leaves every conv and BatchNorm weight and bias bitwise unchanged (wdist
    <= 1e-12 against the run's init.ckpt; > 0 for fc1 and fc_transfer), the
    running statistics move (model.train() semantics), and with
    --freeze-bn-stats they do not either; --new-head keeps the body and
    draws the head the core draws for the seed; a 2-class task gets a new
    2-class head and the body.
 4. Resume: kill -9 mid-epoch (after the first mid-epoch state appears),
    again at a random moment of the resumed run, then --resume: last.ckpt,
    best.ckpt, init.ckpt, summary.* bytes and log.tsv's non-timing columns
    equal an uninterrupted run's (same command line in a directory of the
    same name).  SIGTERM mid-epoch exits 143 with a state saved, SIGINT
    during a resumed run (on another thread count) exits 130, and the run
    resumed to the end is equal too.  Every visible file is complete after
    each kill; no temporary file is left at the end.
 5. Refusals, exit 2 and no run directory: an empty training set, a class
    with no training items (named), a dev item under 32 frames without
    --pad-short (accepted with it), other melspec settings, an existing run,
    the same for a --final-test set; resuming on changed data (the final
    test set's too) or with settings; usage errors exit 1 (standard input
    named twice, once as --final-test).
Under ASan (SERTOOLS_SANITIZE=1) the runs are shorter; every check runs.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import scipy.io.wavfile

SRC = os.environ["SERTOOLS_SRC"]
sys.path.insert(0, os.path.join(SRC, "tests", "ref"))
import ckpt  # noqa: E402
import testlib as T  # noqa: E402
import tones  # noqa: E402
from train_replay import (LOSS_TOL, TENSOR_L2_TOL, TOL, UPDATE_L2_TOL, batch_input, plan_epoch,  # noqa: E402
                          replay_step, update_errors)

BIN = os.environ["SERTOOLS_BIN"]
TESTBIN = os.environ["SERTOOLS_TESTBIN"]
SAN = os.environ.get("SERTOOLS_SANITIZE") == "1"
CT = os.path.join(BIN, "cnn-train")
WORK = os.getcwd()
LOG_COLUMNS = ["epoch", "train_loss", "dev_uar", "test_uar", "seconds", "train_seconds", "step_seconds",
               "samples_per_s"]
MAIN_EPOCHS = 4 if SAN else 5
RESUME_EPOCHS = 3 if SAN else 4
check = T.check


def run(args, rc=0, cwd=None, stdin=None, what=None):
    """Runs a program (name in $SERTOOLS_BIN or a path); returns stderr."""
    exe = args[0] if "/" in args[0] else os.path.join(BIN, args[0])
    fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
    p = subprocess.run([exe] + [str(a) for a in args[1:]], cwd=cwd, stdin=fin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if stdin:
        fin.close()
    err = p.stderr.decode(errors="replace")
    if p.returncode != rc:
        raise SystemExit(f"FAIL: {what or ' '.join(map(str, args))}: exit {p.returncode}, want {rc}:\n{err}")
    return err


# ---- data ----

SR = tones.SR
PITCHES = tones.PITCHES
ACTS = [2.0, 4.0, 6.0]  # low, mid, high arousal (edges 3 and 5)


def make_data():
    rng = np.random.default_rng(7)
    os.makedirs("wav", exist_ok=True)
    rows = ["FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Split_Set,Band"]
    scp = []
    n = 0
    for split, per in (("Train", 40), ("Development", 10), ("Test1", 10)):
        for _ in range(per):
            for c in range(3):
                key = f"utt{n:04d}"
                n += 1
                tones.write_tone(f"wav/{key}.wav", rng, PITCHES[c], 0.6, 1.5)
                scp.append(f"{key} wav/{key}.wav")
                act = ACTS[c] + rng.uniform(-0.5, 0.5)
                band = "lowband" if c == 0 else "highband"
                rows.append(f"Audios/{key}.wav,N,{act:.2f},4.0,4.0,{c % 2},{split},{band}")
    # a dev item too short for the network: 0.25 s = 26 frames
    scipy.io.wavfile.write("wav/short.wav", SR, (3000 * np.sin(2 * np.pi * 900 * np.arange(4000) / SR)).astype(np.int16))
    rows.append("Audios/short.wav,N,4.0,4.0,4.0,1,Short,highband")
    scp.append("short wav/short.wav")
    splits = (("Train", "train"), ("Development", "dev"), ("Test1", "test"))
    tones.labelled_features(run, rows, scp, splits, fmax7k=True)
    for split, name in splits:
        run(["binlabels", "--csv", "labels.csv", "-t", "column:Band", "--categorical", "-s", split, "-o",
             f"{name}-band.msgpack", "feats.msgpack"])
    run(["binlabels", "--csv", "labels.csv", "-t", "arousal", "-s", "Development,Short", "-o", "dev-short.msgpack",
         "feats.msgpack"])
    run(["binlabels", "--csv", "labels.csv", "-t", "arousal", "-s", "Development", "-o", "dev7k.msgpack",
         "feats7k.msgpack"])


def items_of(path):
    """[(key, label, logmel float32 array)] in stream order."""
    _, items, _ = ckpt.read_stream(path)
    return [(it["key"], int(it["fields"]["label"]), np.asarray(it["tensors"]["logmel"], dtype=np.float32))
            for it in items]


def subset(src, dst, keys):
    open(dst + ".keys", "w").write("\n".join(keys) + "\n")
    run(["stream-cat", "-k", dst + ".keys", "-o", dst, src])


# ---- run directories ----

def read_log(path):
    lines = open(path).read().split("\n")
    check(lines[-1] == "", f"{path}: does not end with a newline")
    head = lines[0].split("\t")
    rows = [ln.split("\t") for ln in lines[1:-1]]
    return head, rows


def tensors(path):
    return ckpt.read_checkpoint(path)[1]


def header(path):
    return ckpt.read_stream(path)[0]


def bitwise_equal(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def hidden_leftovers(rundir):
    out = []
    for root, dirs, files in os.walk(rundir):
        out += [os.path.join(root, f) for f in files + dirs if f.startswith(".")]
    return out


def check_complete(rundir, label):
    """Every visible file of a run directory is whole."""
    for root, _, files in os.walk(rundir):
        for f in files:
            if f.startswith("."):
                continue
            p = os.path.join(root, f)
            if f.endswith((".ckpt", ".opt", ".msgpack")):
                try:
                    ckpt.read_stream(p)
                except Exception as e:  # noqa: BLE001
                    check(False, f"{label}: {p} is not a complete stream: {e}")
            elif f.endswith(".tsv"):
                text = open(p).read()
                check(text.endswith("\n") and all(len(ln.split("\t")) == len(text.split("\n")[0].split("\t"))
                                                  for ln in text.split("\n")[:-1]), f"{label}: {p} is cut short")


def wdist(ref, *cks, all_tensors=False):
    exe = os.path.join(BIN, "wdist")
    p = subprocess.run([exe] + (["-a"] if all_tensors else []) + [ref] + list(cks), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode:
        raise SystemExit(f"FAIL: wdist {ref} {cks}: {p.stderr}")
    rows = [ln.split("\t") for ln in p.stdout.strip().split("\n")[1:]]
    return {r[0]: [float("nan") if v == "NA" else float(v) for v in r[1:]] for r in rows}


# ---- the PyTorch replay ----

def torch_logp(ckpt_path, items, R, torch):
    """The PyTorch reference's log-probabilities of a checkpoint on whole
    items, one at a time, in eval mode (an array, items x classes)."""
    h, sd = ckpt.read_checkpoint(ckpt_path)
    model = R.Cnn14(h["params"]["model"]["classes"], h["params"]["model"]["width_div"])
    model.load_state_dict(ckpt.to_torch(sd))
    model.eval()
    with torch.no_grad():
        return np.stack([model(torch.from_numpy(x.copy())[None])[0].double().numpy() for _, _, x in items])


NEAR_TIE = 1e-4  # top-2 log-probability margin under which float32 rounding may choose either class


def uar_matches(c_uar, ckpt_path, stream, R, torch, label):
    """The UAR cnn-train logged for a checkpoint is what the maths fixes: it
    is the macro recall (sklearn, classes present) of cnn-eval's per-item
    predictions with the same checkpoint, and each of those predictions is
    PyTorch's argmax, or on a near-tie (top-2 margin < NEAR_TIE) one of
    PyTorch's top two.  No item and no comparison is skipped."""
    from sklearn.metrics import recall_score
    name = label.replace(" ", "").replace(",", "-")
    run(["cnn-eval", "-p", f"{name}.post.msgpack", "-o", f"{name}.tsv", ckpt_path, stream])
    post = f"{name}.post.msgpack"
    _, its, _ = ckpt.read_stream(post)
    items = items_of(stream)
    check([it["key"] for it in its] == [k for k, _, _ in items], f"{label}: cnn-eval's items")
    pred = [int(it["fields"]["predicted"]) for it in its]
    labels = [lab for _, lab, _ in items]
    uar = recall_score(labels, pred, labels=sorted(set(labels)), average="macro", zero_division=0)
    lp = torch_logp(ckpt_path, items, R, torch)
    top2 = np.argsort(-lp, axis=1)[:, :2]
    margins = lp[np.arange(len(items)), top2[:, 0]] - lp[np.arange(len(items)), top2[:, 1]]
    ties = int((margins < NEAR_TIE).sum())
    print(f"{label}: UAR cnn-train {c_uar:.6f}, of cnn-eval's predictions {uar:.6f}; PyTorch's argmax "
          f"{recall_score(labels, top2[:, 0], labels=sorted(set(labels)), average='macro', zero_division=0):.6f} "
          f"({ties} near-ties, smallest top-2 margin {margins.min():.2e})")
    check(abs(c_uar - uar) <= 5e-7, f"{label}: logged UAR {c_uar} != {uar} of the checkpoint's predictions")
    for (k, _, _), p, t, m in zip(items, pred, top2, margins):
        ok = p == t[0] or (m < NEAR_TIE and p == t[1])
        check(ok, f"{label}: item {k}: predicted {p}, PyTorch's top two {t.tolist()} (margin {m:.2e})")


# ---- the checks ----

def learning(R, torch):
    args = ["--train", "train.msgpack", "--dev", "dev.msgpack", "--test", "test.msgpack", "-o", "r1",
            "--width-div", 8, "--epochs", MAIN_EPOCHS, "--crop-frames", 64, "--threads", 2, "--seed", 1, "--no-dropout", "-q"]
    run(["cnn-train"] + args)
    for f in ("run.msgpack", "init.ckpt", "best.ckpt", "last.ckpt", "log.tsv", "summary.tsv", "summary.json",
              f"state-{MAIN_EPOCHS + 1}-0"):
        check(os.path.exists(f"r1/{f}"), f"r1/{f} missing")
    check(not hidden_leftovers("r1"), f"temporary files left: {hidden_leftovers('r1')}")
    head, rows = read_log("r1/log.tsv")
    check(head == LOG_COLUMNS, f"log.tsv columns {head}")
    check([int(r[0]) for r in rows] == list(range(1, MAIN_EPOCHS + 1)), "log.tsv epochs")
    dev = [float(r[2]) for r in rows]
    loss = [float(r[1]) for r in rows]
    print("dev UAR per epoch:", dev, "train loss:", loss)
    for r in rows:
        sec, trn, step, sps = map(float, r[4:8])
        check(0 < step <= trn <= sec, f"timing columns out of order: {r}")
        check(abs(sps - 120 / trn) <= 0.01 * sps + 0.01, f"samples_per_s {sps} != 120 / {trn}")
    check(max(dev) >= 0.6, f"training did not learn: best dev UAR {max(dev)}")
    check(loss[-1] < loss[0], f"training loss did not fall: {loss}")
    best = dev.index(max(dev)) + 1  # earliest on ties
    s_head, s_row = [ln.split("\t") for ln in open("r1/summary.tsv").read().strip().split("\n")]
    check(s_head == ["best_epoch", "dev_uar", "test_uar", "epochs"], f"summary.tsv columns {s_head}")
    check(s_row == [str(best), rows[best - 1][2], rows[best - 1][3], str(MAIN_EPOCHS)],
          f"summary.tsv {s_row}, log best row {rows[best - 1]}")
    js = json.load(open("r1/summary.json"))
    check(js == {"best_epoch": best, "dev_uar": float(rows[best - 1][2]), "test_uar": float(rows[best - 1][3]),
                 "epochs": MAIN_EPOCHS}, f"summary.json {js}")
    hb, hl = header("r1/best.ckpt"), header("r1/last.ckpt")
    check(hb["params"]["training"]["epoch"] == best, f"best.ckpt training {hb['params']['training']}")
    check(hl["params"]["training"]["epoch"] == MAIN_EPOCHS, f"last.ckpt training {hl['params']['training']}")
    train_params = header("train.msgpack")["params"]
    check(hb["params"]["melspec"] == train_params["melspec"] and hb["params"]["task"] == "arousal",
          "best.ckpt does not record the features and task")
    check(hb["params"]["model"]["class_names"] == ["low", "mid", "high"], "class names")
    run([os.path.join(TESTBIN, "cnn-tool"), "init", "--classes", 3, "--width-div", 8, "--seed", 1, "-o",
         "fresh.ckpt"])
    fresh, init = tensors("fresh.ckpt"), tensors("r1/init.ckpt")
    check(list(fresh) == list(init) and all(bitwise_equal(fresh[k], init[k]) for k in fresh),
          "init.ckpt is not the core's fresh model for the seed")
    check(not bitwise_equal(init["fc1.weight"], tensors("r1/best.ckpt")["fc1.weight"]), "best.ckpt == init.ckpt")
    uar_matches(float(rows[best - 1][2]), "r1/best.ckpt", "dev.msgpack", R, torch, "dev, best.ckpt")
    uar_matches(float(rows[best - 1][3]), "r1/best.ckpt", "test.msgpack", R, torch, "test, best.ckpt")
    return best


def against_pytorch(R, torch):
    train = items_of("train.msgpack")
    pick = []
    for c, k in ((0, 4), (1, 3), (2, 1)):  # 4 low, 3 mid, 1 high: weights 8/12, 8/9, 8/3
        cl = sorted([it for it in train if it[1] == c], key=lambda it: it[2].shape[0])
        pick += [cl[-1], cl[0], cl[len(cl) // 2], cl[-2]][:k] if c < 2 else [cl[len(cl) // 2]]
    subset("train.msgpack", "t8.msgpack", [k for k, _, _ in pick])
    items = items_of("t8.msgpack")
    frames = [x.shape[0] for _, _, x in items]
    crop, seed = 100, 7
    check(sum(f < crop for f in frames) >= 2 and sum(f > crop for f in frames) >= 2,
          f"crop {crop}: want items on both sides of it: {frames}")
    common = ["--train", "t8.msgpack", "--dev", "dev.msgpack", "--width-div", 16, "--crop-frames", crop, "--seed",
              seed, "--threads", 2, "-q"]
    run(["cnn-train"] + common + ["--epochs", 1, "-o", "v1"])
    run(["cnn-train"] + common + ["--epochs", 2, "-o", "v2"])
    _, rows1 = read_log("v1/log.tsv")
    _, rows2 = read_log("v2/log.tsv")
    check(rows1[0][:4] == rows2[0][:4], f"epoch 1 differs between runs: {rows1[0]} {rows2[0]}")
    counts = np.bincount([lab for _, lab, _ in items], minlength=3)
    weights = [len(items) / (3 * c) for c in counts]
    states = [("v1/init.ckpt", None), ("v1/last.ckpt", "v1/state-2-0/last.opt")]
    afters = ["v1/last.ckpt", "v2/last.ckpt"]
    for epoch in (1, 2):
        order, offsets = plan_epoch(seed, epoch, frames, crop)
        x, labels = batch_input(items, order, offsets, 0, len(items), crop)
        start = ckpt.to_torch(tensors(states[epoch - 1][0]))
        bufs = None
        if states[epoch - 1][1]:
            _, its, _ = ckpt.read_stream(states[epoch - 1][1])
            bufs = {it["key"]: torch.from_numpy(np.array(it["tensors"]["momentum_buffer"])) for it in its}
        loss32, ref32, _, _ = replay_step(start, bufs, x, labels, weights, seed, epoch, torch.float32, R, torch)
        loss, ref, rbufs, margin = replay_step(start, bufs, x, labels, weights, seed, epoch, torch.float64, R, torch)
        got = ckpt.to_torch(tensors(afters[epoch - 1]))
        c_loss = float((rows1 if epoch == 1 else rows2)[epoch - 1][1])
        print(f"epoch {epoch}: loss cnn-train {c_loss:.6f}, PyTorch float64 {loss:.6f}, float32 {loss32:.6f}")
        check(abs(c_loss - loss) <= LOSS_TOL * abs(loss) + 5e-7, f"epoch {epoch}: loss {c_loss} != {loss}")
        worst = 0.0
        for n, r in ref.items():
            if n.endswith("num_batches_tracked"):
                check(got[n].item() == r.item() == epoch, f"epoch {epoch}: {n} = {got[n].item()}")
                continue
            d = R.rel_diff(got[n], r)
            worst = max(worst, d)
            check(d <= TOL, f"epoch {epoch}: {n}: max rel diff {d:.3e} > {TOL}")
        trained = [n for n in ref if "running_" not in n and "num_batches" not in n]
        whole, per, emax = update_errors(got, ref, start, trained)
        whole32, per32, emax32 = update_errors(ref32, ref, start, trained)
        print(f"epoch {epoch}: values worst rel diff {worst:.2e} (tol {TOL}); update rel L2 error {whole:.2e} "
              f"(tol {UPDATE_L2_TOL}), worst tensor {per[0]:.2e} {per[1]} (tol {TENSOR_L2_TOL}), worst element "
              f"{emax:.2e}; PyTorch float32: {whole32:.2e}, {per32[0]:.2e}, {emax32:.2e}; kink margin {margin:.1e}")
        check(whole <= UPDATE_L2_TOL, f"epoch {epoch}: update rel L2 error {whole:.3e} > {UPDATE_L2_TOL}")
        check(per[0] <= TENSOR_L2_TOL, f"epoch {epoch}: {per[1]}: update rel L2 error {per[0]:.3e} > {TENSOR_L2_TOL}")
        if epoch == 1:
            # the comparison has teeth: recipe errors move the update far beyond the tolerance
            for what, w, nest in (("classical momentum", weights, False), ("unweighted loss", [1.0] * 3, True)):
                _, wrong, _, _ = replay_step(start, bufs, x, labels, w, seed, epoch, torch.float64, R, torch, nest)
                e = update_errors(wrong, ref, start, trained)[0]
                print(f"  {what} would be off by {e:.2e}")
                check(e > 10 * UPDATE_L2_TOL, f"{what} is within {e:.2e} of the recipe: the test has no teeth")
            _, its, _ = ckpt.read_stream("v1/state-2-0/last.opt")
            cbufs = {it["key"]: torch.from_numpy(np.array(it["tensors"]["momentum_buffer"])) for it in its}
            check(sorted(cbufs) == sorted(rbufs), "momentum buffers: not one per parameter")
            zero = {n: torch.zeros_like(b) for n, b in rbufs.items()}
            bwhole, bper, _ = update_errors(cbufs, rbufs, zero, list(rbufs))
            check(bwhole <= UPDATE_L2_TOL and bper[0] <= TENSOR_L2_TOL,
                  f"momentum buffers: rel L2 error {bwhole:.3e}, {bper}")
    uar_matches(float(rows1[0][2]), "v1/last.ckpt", "dev.msgpack", R, torch, "dev, epoch 1")


def transfer(best):
    subset("train.msgpack", "t24.msgpack", [k for k, _, _ in items_of("train.msgpack")[:24]])
    base = ["--train", "t24.msgpack", "--dev", "dev.msgpack", "--threads", 2, "--crop-frames", 64, "-q"]
    best_t = tensors("r1/best.ckpt")
    # linear: BN as under model.train()
    run(["cnn-train"] + base + ["--init", "r1/best.ckpt", "--finetune", "linear", "--epochs", 2, "-o", "f1"])
    init = tensors("f1/init.ckpt")
    check(all(bitwise_equal(init[k], best_t[k]) for k in best_t), "--init: init.ckpt != the --init checkpoint")
    d = wdist("f1/init.ckpt", "f1/best.ckpt", "f1/last.ckpt")
    last = tensors("f1/last.ckpt")
    for layer, (db, dl) in d.items():
        if layer.startswith("conv_block"):
            check(abs(db) <= 1e-12 and abs(dl) <= 1e-12, f"--finetune linear: {layer} moved (wdist {db}, {dl})")
        else:
            check(dl > 0, f"--finetune linear: {layer} did not train (wdist {dl})")
    for k in init:
        frozen = not k.startswith(("fc1.", "fc_transfer.")) and "running_" not in k and "num_batches" not in k
        if frozen:
            check(bitwise_equal(init[k], last[k]), f"--finetune linear: {k} changed")
        elif "running_" in k:
            check(not bitwise_equal(init[k], last[k]), f"--finetune linear: {k} (running statistics) unchanged")
    steps = 2 * 3
    check(int(last["bn0.num_batches_tracked"]) == int(init["bn0.num_batches_tracked"]) + steps,
          "--finetune linear: num_batches_tracked")
    # linear with frozen statistics
    run(["cnn-train"] + base + ["--init", "r1/best.ckpt", "--finetune", "linear", "--freeze-bn-stats", "--epochs",
                                 1, "-o", "f2"])
    i2, l2 = tensors("f2/init.ckpt"), tensors("f2/last.ckpt")
    for k in i2:
        if k.startswith(("fc1.", "fc_transfer.")):
            check(not bitwise_equal(i2[k], l2[k]), f"--freeze-bn-stats: {k} did not train")
        else:
            check(bitwise_equal(i2[k], l2[k]), f"--freeze-bn-stats: {k} changed")
    # a new head of the same size: the body, and the head the core draws for the seed
    run(["cnn-train"] + base + ["--init", "r1/best.ckpt", "--new-head", "--seed", 3, "--epochs", 1, "-o", "n1"])
    run([os.path.join(TESTBIN, "cnn-tool"), "init", "--classes", 3, "--width-div", 8, "--seed", 3, "-o",
         "fresh3.ckpt"])
    n1, fresh3 = tensors("n1/init.ckpt"), tensors("fresh3.ckpt")
    for k in n1:
        want = fresh3[k] if k.startswith("fc_transfer.") else best_t[k]
        check(bitwise_equal(n1[k], want), f"--new-head: init.ckpt {k} is neither the body nor the fresh head")
    # another class count: a new head whatever --new-head says
    run(["cnn-train", "--train", "train-band.msgpack", "--dev", "dev-band.msgpack", "--init", "r1/best.ckpt",
         "--epochs", 1, "--threads", 2, "--crop-frames", 64, "-q", "-o", "n2"])
    hn2 = header("n2/init.ckpt")
    check(hn2["params"]["model"]["classes"] == 2 and hn2["params"]["model"]["class_names"] == ["highband", "lowband"],
          f"2-class head: {hn2['params']['model']}")
    n2 = tensors("n2/init.ckpt")
    check(n2["fc_transfer.weight"].shape == (2, 2048 // 8), "2-class head shape")
    check(all(bitwise_equal(n2[k], best_t[k]) for k in n2 if not k.startswith("fc_transfer.")),
          "2-class head: the body was not copied")
    d2 = wdist("r1/best.ckpt", "n2/init.ckpt")
    check("fc_transfer" not in d2 and all(abs(v[0]) <= 1e-12 for v in d2.values()),
          f"wdist best -> 2-class init: {d2}")


def newest_state(rundir):
    best = None
    for f in os.listdir(rundir) if os.path.isdir(rundir) else []:
        parts = f.split("-")
        if f.startswith("state-") and len(parts) == 3:
            pos = (int(parts[1]), int(parts[2]))
            best = pos if best is None or pos > best else best
    return best


def start(args, cwd):
    return subprocess.Popen([CT] + [str(a) for a in args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_until(proc, cond, timeout=300):
    t0 = time.monotonic()
    while proc.poll() is None and not cond():
        if time.monotonic() - t0 > timeout:
            break
        time.sleep(0.001)
    return proc.poll() is None


def same_run(ref, got, label):
    for f in ("init.ckpt", "last.ckpt", "best.ckpt", "summary.tsv", "summary.json"):
        a, b = open(f"{ref}/{f}", "rb").read(), open(f"{got}/{f}", "rb").read()
        check(a == b, f"{label}: {f} differs from the uninterrupted run's")
    la = [r[:4] for r in read_log(f"{ref}/log.tsv")[1]]
    lb = [r[:4] for r in read_log(f"{got}/log.tsv")[1]]
    check(la == lb, f"{label}: log.tsv differs:\n{la}\n{lb}")
    check(not hidden_leftovers(got), f"{label}: temporary files left: {hidden_leftovers(got)}")


def resume():
    items = items_of("train.msgpack")
    subset("train.msgpack", "t48.msgpack", [k for k, _, _ in items[:48]])
    data = os.path.abspath(".")
    args = ["--train", f"{data}/t48.msgpack", "--dev", f"{data}/dev.msgpack", "--test", f"{data}/test.msgpack",
            "--width-div", 16, "--epochs", RESUME_EPOCHS, "--crop-frames", 64, "--seed", 9, "--threads", 2,
            "--save-every", 0.01, "-q", "-o", "run"]
    for d in ("u", "k", "t"):
        os.mkdir(d)
    run(["cnn-train"] + args, cwd="u")
    # kill -9 once a mid-epoch state exists, then at a random moment of the resumed run
    p = start(args, "k")
    alive = wait_until(p, lambda: (newest_state("k/run") or (0, 0))[1] > 0)
    p.kill()
    p.wait()
    check(alive and p.returncode == -signal.SIGKILL, "kill -9: the run ended before it could be killed")
    print("kill -9 at state", newest_state("k/run"))
    check_complete("k/run", "after kill -9")
    rnd = random.Random(11)
    p = start(["--resume", "run"], "k")
    time.sleep(rnd.uniform(0.05, 0.4) * (6 if SAN else 1))
    p.kill()
    p.wait()
    print("second kill -9 at state", newest_state("k/run"), "exit", p.returncode)
    check_complete("k/run", "after the second kill -9")
    run(["cnn-train", "--resume", "run"], cwd="k")
    same_run("u/run", "k/run", "kill -9 and resume")
    # SIGTERM mid-epoch, SIGINT during the resumed run on one thread
    p = start(args, "t")
    alive = wait_until(p, lambda: newest_state("t/run") is not None)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate()
    err = err.decode()
    check(alive and p.returncode == 143, f"SIGTERM: exit {p.returncode}, want 143: {err}")
    check("stopped by signal 15" in err and "--resume" in err, f"SIGTERM message: {err}")
    pos = newest_state("t/run")
    print("SIGTERM: state", pos)
    check(pos is not None and not os.path.exists("t/run/summary.tsv"), "SIGTERM: no state saved, or run complete")
    check_complete("t/run", "after SIGTERM")
    p = start(["--resume", "run", "--threads", 1], "t")
    alive = wait_until(p, lambda: newest_state("t/run") != pos)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate()
    # the first new state comes after a batch of epoch 2 or so, long before the run's end: it must be running
    check(alive and p.returncode == 130, f"SIGINT: exit {p.returncode} (running: {alive}), want 130: {err.decode()}")
    run(["cnn-train", "--resume", "run"], cwd="t")
    same_run("u/run", "t/run", "SIGTERM, SIGINT and resume")
    # a complete run resumes to itself
    before = {f: open(f"u/run/{f}", "rb").read() for f in ("last.ckpt", "best.ckpt", "log.tsv", "summary.tsv")}
    err = run(["cnn-train", "--resume", "run"], cwd="u")
    check("already complete" in err, f"resuming a complete run: {err}")
    check(all(open(f"u/run/{f}", "rb").read() == b for f, b in before.items()), "a complete run changed on resume")
    # refusals of --resume
    err = run(["cnn-train", "--resume", "u/run", "--epochs", 9], rc=1)
    check("--resume" in err, f"--resume with settings: {err}")
    subset("train.msgpack", "moving.msgpack", [k for k, _, _ in items[:24]])
    run(["cnn-train", "--train", "moving.msgpack", "--dev", "dev.msgpack", "--width-div", 16, "--epochs", 1,
         "--crop-frames", 64, "-q", "-o", "mv"])
    subset("train.msgpack", "moving.msgpack", [k for k, _, _ in items[1:25]])
    err = run(["cnn-train", "--resume", "mv"], rc=2)
    check("changed since the run started" in err, f"resume on changed data: {err}")
    # the final test set is fingerprinted too
    tests = items_of("test.msgpack")
    subset("test.msgpack", "final.msgpack", [k for k, _, _ in tests[:-1]])
    run(["cnn-train", "--train", "t24.msgpack", "--dev", "dev.msgpack", "--final-test", "final.msgpack",
         "--width-div", 16, "--epochs", 1, "--crop-frames", 64, "-q", "-o", "mvf"])
    subset("test.msgpack", "final.msgpack", [k for k, _, _ in tests[1:]])
    err = run(["cnn-train", "--resume", "mvf"], rc=2)
    check("changed since the run started" in err and "final.msgpack" in err, f"resume on a changed final test set: {err}")


def refusals():
    def refused(args, rundir, words, what, rc=2):
        err = run(["cnn-train"] + args + ["-o", rundir, "-q"], rc=rc, what=what)
        check(all(w in err for w in words), f"{what}: message {err!r} lacks {words}")
        check(rc != 2 or not os.path.exists(rundir), f"{what}: {rundir} was created")

    base = ["--width-div", 16, "--epochs", 1, "--crop-frames", 64, "--threads", 2]
    run(["stream-cat", "-n", 0, "-o", "empty.msgpack", "train.msgpack"])
    refused(["--train", "empty.msgpack", "--dev", "dev.msgpack"] + base, "x1", ["no training items"], "empty set")
    items = items_of("train.msgpack")
    subset("train.msgpack", "nohigh.msgpack", [k for k, lab, _ in items if lab != 2])
    refused(["--train", "nohigh.msgpack", "--dev", "dev.msgpack"] + base, "x2", ["'high'", "no training items"],
            "missing class")
    refused(["--train", "train.msgpack", "--dev", "dev-short.msgpack"] + base, "x3", ["'short'", "--pad-short"],
            "short dev item")
    refused(["--train", "train.msgpack", "--dev", "dev7k.msgpack"] + base, "x4", ["melspec"], "other melspec")
    before = open("r1/last.ckpt", "rb").read()
    err = run(["cnn-train", "--train", "train.msgpack", "--dev", "dev.msgpack", "-o", "r1", "-q"] + base, rc=2)
    check("already holds a run" in err and open("r1/last.ckpt", "rb").read() == before, f"existing run: {err}")
    refused(["--dev", "dev.msgpack"] + base, "x5", ["required"], "no --train", rc=1)
    refused(["--train", "train.msgpack", "--dev", "dev.msgpack", "--width-div", 3], "x6", ["--width-div"],
            "bad --width-div", rc=1)
    refused(["--train", "train.msgpack", "--dev", "dev.msgpack", "--init", "r1/best.ckpt", "--width-div", 8], "x7",
            ["--width-div"], "--width-div with --init", rc=1)
    refused(["--train", "train.msgpack", "--dev", "dev.msgpack", "--final-test", "dev-short.msgpack"] + base, "x10",
            ["'short'", "--pad-short"], "short final test item")
    refused(["--train", "train.msgpack", "--dev", "dev.msgpack", "--final-test", "dev7k.msgpack"] + base, "x11",
            ["melspec"], "final test set of other melspec")
    refused(["--train", "train.msgpack", "--dev", "-", "--final-test", "-"] + base, "x12", ["standard input"],
            "standard input twice", rc=1)
    # accepted: the short item padded; a stream from standard input (not resumable)
    run(["cnn-train", "--train", "t24.msgpack", "--dev", "dev-short.msgpack", "--pad-short", "-o", "x8", "-q"] + base)
    run(["cnn-train", "--train", "-", "--dev", "dev.msgpack", "-o", "x9", "-q"] + base, stdin="t24.msgpack")
    err = run(["cnn-train", "--resume", "x9"], rc=2)
    check("standard input" in err, f"resume of a run on stdin: {err}")


def main():
    t0 = time.monotonic()
    import torch
    import cnn14_ref as R
    torch.set_num_threads(1)
    make_data()
    best = learning(R, torch)
    print(f"learning: best epoch {best} ({time.monotonic() - t0:.1f} s)", flush=True)
    against_pytorch(R, torch)
    print(f"PyTorch replay done ({time.monotonic() - t0:.1f} s)", flush=True)
    transfer(best)
    print(f"transfer done ({time.monotonic() - t0:.1f} s)", flush=True)
    resume()
    print(f"resume done ({time.monotonic() - t0:.1f} s)", flush=True)
    refusals()
    print(f"refusals done ({time.monotonic() - t0:.1f} s)", flush=True)
    T.done()


if __name__ == "__main__":
    main()
