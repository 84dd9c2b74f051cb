"""cnn-train's choice of the best epoch, on a run whose development curve
goes up, down and ties, so that the rule of cnn-train(1) ("the best epoch
is the one with the highest development UAR, the earliest of equal ones")
is exercised rather than assumed.

Data, through the real pipeline (WAV files -> audio-read -> melspec ->
binlabels with an MSP-Podcast-style CSV): tones of three pitches (250, 900,
3000 Hz, +-7 %) with noise 5-15 dB down, 0.4-0.8 s (41-81 frames).
Training: 8 items per pitch, labelled low / mid / high by pitch; test: 4
per pitch, labelled likewise.  Development: 4 items per pitch whose labels
agree with the pitch only in part (item i of pitch c is labelled
(c + i) mod 3, so every label has 2 items of its own pitch and one of each
other): the dev UAR of a model that tells the pitches apart moves between
1/3 and 1/2 and back as the model changes, instead of rising every epoch.
Every class has 4 dev and 4 test items (a power of two), so every recall
is a multiple of 1/4, sums of recalls are exact in binary and two epochs
with the same printed UAR have the same double: ties in log.tsv are ties
for cnn-train too (checked: every UAR printed is k/12).

The run: width_div 16, 40-frame crops, 8 epochs, seed 6 (the paper's
recipe otherwise).  Its dev UAR per epoch is 4 5 5 4 4 6 6 4 (in twelfths:
up, tie, down, tie, up to the best, tie, down), the same under every
OpenBLAS core type tried (Prescott, Nehalem, Sandybridge, Haswell,
SkylakeX) and in the ASan build.  If a seed's curve lacks any of the
required features the next candidate seed (218, then 357, which also
qualify here) is tried; if none has them the test fails and prints the
curves: it never passes without exercising the rule.  Required of the
curve:
  - at least one rise and one fall between consecutive epochs;
  - the highest dev UAR is reached at two or more epochs (a tie: earliest
    vs latest), not at epoch 1, and not at the last epoch;
  - it falls before the best epoch (a "stop at the first fall" rule picks
    another epoch);
  - the test UAR is highest at another epoch than the best (a choice by
    test UAR is caught) and differs between the best epoch and the other
    epochs of equal dev UAR (so best.ckpt's test UAR names its epoch).
The test asserts that each of these wrong rules (latest of the ties, last
epoch, epoch 1, stop at first fall, best test UAR, lowest training loss)
picks a different epoch from the documented one.

Checked, with the documented rule applied by this test to log.tsv:
  - log.tsv's header and epochs 1..8; every dev/test UAR is k/12;
  - summary.tsv is exactly "best_epoch dev_uar test_uar epochs" and the
    best row's dev_uar and test_uar strings; summary.json the same values;
  - best.ckpt's header params.training: epoch = the best epoch, dev_uar and
    test_uar equal that row's as printed (%.6f); last.ckpt's epoch = 8;
  - best.ckpt holds that epoch's model: its tensors are bitwise those of
    last.ckpt of the same run stopped after the best epoch (--epochs best;
    its log rows equal the first rows of the full run), and differ from
    the full run's last.ckpt;
  - cnn-eval on best.ckpt reproduces that row's dev and test UAR exactly as
    log.tsv prints them (%.6f), and cnn-eval on last.ckpt the last row's;
    no tolerance and no exception for near-ties;
  - cnn-eval's UAR equals scikit-learn's macro recall of its own per-item
    predictions (--posteriors), and those predictions equal the PyTorch
    reference's argmax on best.ckpt item by item.  The smallest top-2
    log-probability margin of the reference must be >= 1e-4 (it is ~1e-2
    here): a near-tie fails the test as unsuitable data, it is not excused.
  - --final-test (test scored once, after the last epoch, with the best
    epoch's model): the same run with --test dev.msgpack --final-test
    test.msgpack logs the dev stream as its curve (test_uar column = the
    dev_uar column), and its summary's test_uar is the full run's test UAR
    at the best epoch, as printed; so is that of a run with --final-test
    and no --test (log.tsv's test_uar NA), also after --resume of the
    complete run.  The curve is required to have another test UAR at the
    last epoch than at the best, so scoring the last model is caught.
    best.ckpt's params.training.test_uar is then nil (no test set was
    scored with it during the run).
Under ASan (SERTOOLS_SANITIZE=1) the same runs are made (the curve needs
its 8 epochs; a run takes a few seconds); every check runs.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

SRC = os.environ["SERTOOLS_SRC"]
sys.path.insert(0, os.path.join(SRC, "tests", "ref"))
import ckpt  # noqa: E402
import testlib as T  # noqa: E402
import tones  # noqa: E402

BIN = os.environ["SERTOOLS_BIN"]
LOG_COLUMNS = ["epoch", "train_loss", "dev_uar", "test_uar", "seconds", "train_seconds", "step_seconds",
               "samples_per_s"]
EPOCHS = 8
SEEDS = [6, 218, 357]  # 6 gives the curve here; the others are fallbacks for other rounding
DEV_PER_CLASS = TEST_PER_CLASS = 4
MARGIN = 1e-4
check = T.check


def run(args, what=None):
    """Runs a program of $SERTOOLS_BIN; returns stdout (exit 0 required)."""
    p = subprocess.run([os.path.join(BIN, args[0])] + [str(a) for a in args[1:]], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        print(f"FAIL: {what or ' '.join(map(str, args))}: exit {p.returncode}:\n{p.stderr.decode(errors='replace')}")
        sys.exit(1)
    return p.stdout.decode()


# ---- data ----

SR = tones.SR
PITCHES = tones.PITCHES
ACTS = [2.0, 4.0, 6.0]  # low, mid, high arousal (bin edges 3 and 5)


def make_data():
    rng = np.random.default_rng(3)
    os.makedirs("wav", exist_ok=True)
    rows = ["FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Split_Set"]
    scp = []
    n = 0
    for split, per in (("Train", 8), ("Development", DEV_PER_CLASS), ("Test1", TEST_PER_CLASS)):
        for i in range(per):
            for c in range(3):
                key = f"utt{n:04d}"
                n += 1
                tones.write_tone(f"wav/{key}.wav", rng, PITCHES[c], 0.4, 0.8)
                scp.append(f"{key} wav/{key}.wav")
                label = (c + i) % 3 if split == "Development" else c
                rows.append(f"Audios/{key}.wav,N,{ACTS[label]:.2f},4.0,4.0,{c % 2},{split}")
    tones.labelled_features(run, rows, scp, (("Train", "train"), ("Development", "dev"), ("Test1", "test")))
    for name, per in (("dev", DEV_PER_CLASS), ("test", TEST_PER_CLASS)):
        _, items, _ = ckpt.read_stream(f"{name}.msgpack")
        counts = np.bincount([int(it["fields"]["label"]) for it in items], minlength=3).tolist()
        if counts != [per] * 3:
            print(f"FAIL: {name}.msgpack: class counts {counts}, want {[per] * 3}")
            sys.exit(1)


# ---- the run and its curve ----

def read_log(path):
    text = open(path).read()
    check(text.endswith("\n"), f"{path}: does not end with a newline")
    lines = text.split("\n")[:-1]
    return lines[0].split("\t"), [ln.split("\t") for ln in lines[1:]]


def documented_best(dev):
    """cnn-train(1): the highest development UAR, the earliest of equal ones."""
    return dev.index(max(dev)) + 1


def wrong_rules(dev, test, loss):
    """Plausible wrong choices, each of which the curve must tell apart."""
    m = max(dev)
    first_fall = next((e for e in range(1, len(dev)) if dev[e] < dev[e - 1]), len(dev))
    return {
        "latest of equal dev UARs": max(e for e in range(1, len(dev) + 1) if dev[e - 1] == m),
        "last epoch": len(dev),
        "epoch 1": 1,
        "stop at the first fall of dev UAR": first_fall,
        "highest test UAR": test.index(max(test)) + 1,
        "lowest training loss": loss.index(min(loss)) + 1,
    }


def curve_problems(dev, test, loss):
    """What the curve lacks of what the test needs (empty: usable)."""
    out = []
    steps = list(zip(dev, dev[1:]))
    if not any(b > a for a, b in steps):
        out.append("no rise")
    if not any(b < a for a, b in steps):
        out.append("no fall")
    m = max(dev)
    best = documented_best(dev)
    tops = [e for e in range(1, len(dev) + 1) if dev[e - 1] == m]
    if len(tops) < 2:
        out.append("the highest dev UAR is reached once only")
    if not any(dev[e] < dev[e - 1] for e in range(1, best - 1)):
        out.append("no fall before the best epoch")
    if any(test[e - 1] == test[best - 1] for e in tops if e != best):
        out.append("the test UAR of the best epoch does not tell it from its equals")
    if test[-1] == test[best - 1]:
        out.append("the test UAR of the last epoch is the best epoch's (--final-test of the last model passes)")
    for rule, e in wrong_rules(dev, test, loss).items():
        if e == best:
            out.append(f"'{rule}' picks the best epoch too")
    return out


def train(seed, epochs, rundir, tests=("--test", "test.msgpack")):
    run(["cnn-train", "--train", "train.msgpack", "--dev", "dev.msgpack", *tests,
         "--width-div", 16, "--crop-frames", 40, "--epochs", epochs, "--seed", seed, "--threads", 2, "-q",
         "-o", rundir])


def curve(rundir):
    head, rows = read_log(f"{rundir}/log.tsv")
    check(head == LOG_COLUMNS, f"{rundir}/log.tsv: columns {head}")
    dev = [float(r[2]) for r in rows]
    test = [float(r[3]) for r in rows]
    loss = [float(r[1]) for r in rows]
    return rows, dev, test, loss


def twelfths(v):
    return [round(12 * x) for x in v]


# ---- scoring ----

def cnn_eval(ck, stream, post):
    rep = json.loads(run(["cnn-eval", "--json", "-p", post, ck, stream]))
    _, items, _ = ckpt.read_stream(post)
    labels = [int(it["fields"]["label"]) for it in items]
    preds = [int(it["fields"]["predicted"]) for it in items]
    return rep, labels, preds


def reference_predictions(ck, stream):
    """PyTorch's argmax per item on whole items in eval mode, and the
    smallest top-2 log-probability margin."""
    import torch
    import cnn14_ref as R
    torch.set_num_threads(1)
    h, sd = ckpt.read_checkpoint(ck)
    model = R.Cnn14(h["params"]["model"]["classes"], h["params"]["model"]["width_div"])
    model.load_state_dict(ckpt.to_torch(sd))
    model.eval()
    _, items, _ = ckpt.read_stream(stream)
    preds, margin = [], float("inf")
    with torch.no_grad():
        for it in items:
            lp = model(torch.from_numpy(np.array(it["tensors"]["logmel"], dtype=np.float32))[None])[0]
            top = lp.topk(2).values
            margin = min(margin, (top[0] - top[1]).item())
            preds.append(int(lp.argmax()))
    return preds, margin


def main():
    t0 = time.monotonic()
    make_data()
    print(f"data made ({time.monotonic() - t0:.1f} s)", flush=True)

    tried = []
    for seed in SEEDS:
        rundir = f"run{seed}"
        train(seed, EPOCHS, rundir)
        rows, dev, test, loss = curve(rundir)
        problems = curve_problems(dev, test, loss)
        print(f"seed {seed}: dev UAR x12 {twelfths(dev)}, test UAR x12 {twelfths(test)}, "
              f"train loss {[round(x, 3) for x in loss]} ({time.monotonic() - t0:.1f} s)", flush=True)
        if not problems:
            break
        print(f"  unusable: {'; '.join(problems)}")
        tried.append(f"seed {seed}: {twelfths(dev)} ({'; '.join(problems)})")
    else:
        print("FAIL: no candidate seed gives a development curve that exercises the best-epoch rule: "
              + " | ".join(tried))
        sys.exit(1)

    check([int(r[0]) for r in rows] == list(range(1, EPOCHS + 1)), f"log.tsv epochs {[r[0] for r in rows]}")
    for r in rows:
        for col, v in (("dev_uar", r[2]), ("test_uar", r[3])):
            check(v == f"{round(12 * float(v)) / 12:.6f}", f"epoch {r[0]}: {col} {v} is not k/12")
    best = documented_best(dev)
    row = rows[best - 1]
    print(f"documented rule: epoch {best} (dev {row[2]}, test {row[3]}); wrong rules would pick "
          f"{wrong_rules(dev, test, loss)}")

    # the summaries
    s_lines = open(f"{rundir}/summary.tsv").read().split("\n")
    check(s_lines[2:] == [""], f"summary.tsv: {s_lines}")
    check(s_lines[0].split("\t") == ["best_epoch", "dev_uar", "test_uar", "epochs"], f"summary.tsv header {s_lines[0]}")
    check(s_lines[1].split("\t") == [str(best), row[2], row[3], str(EPOCHS)],
          f"summary.tsv {s_lines[1].split(chr(9))}, want best epoch {best}, dev {row[2]}, test {row[3]}")
    js = json.load(open(f"{rundir}/summary.json"))
    want = {"best_epoch": best, "dev_uar": float(row[2]), "test_uar": float(row[3]), "epochs": EPOCHS}
    check(js == want, f"summary.json {js}, want {want}")

    # best.ckpt's header
    hb = ckpt.read_stream(f"{rundir}/best.ckpt")[0]
    tr = hb["params"].get("training", {})
    check(tr.get("epoch") == best, f"best.ckpt params.training {tr}, want epoch {best}")
    check(isinstance(tr.get("dev_uar"), float) and f"{tr['dev_uar']:.6f}" == row[2],
          f"best.ckpt params.training dev_uar {tr.get('dev_uar')}, log {row[2]}")
    check(isinstance(tr.get("test_uar"), float) and f"{tr['test_uar']:.6f}" == row[3],
          f"best.ckpt params.training test_uar {tr.get('test_uar')}, log {row[3]}")
    tl = ckpt.read_stream(f"{rundir}/last.ckpt")[0]["params"].get("training", {})
    check(tl.get("epoch") == EPOCHS, f"last.ckpt params.training {tl}, want epoch {EPOCHS}")

    # --final-test: scored once with the best epoch's model
    for name, tests in (("final", ("--test", "dev.msgpack", "--final-test", "test.msgpack")),
                        ("final-only", ("--final-test", "test.msgpack"))):
        train(seed, EPOCHS, name, tests)
        rows_f = read_log(f"{name}/log.tsv")[1]
        check([r[:3] for r in rows_f] == [r[:3] for r in rows], f"{name}: log.tsv's first columns differ from the run's")
        curve_col = [r[2] for r in rows] if name == "final" else ["NA"] * EPOCHS
        check([r[3] for r in rows_f] == curve_col, f"{name}: log.tsv test_uar {[r[3] for r in rows_f]}, want {curve_col}")
        for attempt in ("run", "--resume of the complete run"):
            if attempt != "run":
                subprocess.run([os.path.join(BIN, "cnn-train"), "--resume", name, "-q"], stdin=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=True)
            got = open(f"{name}/summary.tsv").read().split("\n")[1].split("\t")
            check(got == [str(best), row[2], row[3], str(EPOCHS)],
                  f"{name} ({attempt}): summary.tsv {got}, want test UAR {row[3]} of epoch {best} "
                  f"(the last epoch's is {rows[-1][3]})")
            js = json.load(open(f"{name}/summary.json"))
            check(js == want, f"{name} ({attempt}): summary.json {js}, want {want}")
        tf = ckpt.read_stream(f"{name}/best.ckpt")[0]["params"].get("training", {})
        check("test_uar" in tf and tf["test_uar"] is None, f"{name}: best.ckpt params.training {tf}, want test_uar nil")
    print(f"--final-test: summary test UAR {row[3]} (epoch {best}; last epoch's {rows[-1][3]})")

    # best.ckpt is the model after the best epoch: the same run stopped there
    train(seed, best, "upto")
    rows_b, _, _, _ = curve("upto")
    check([r[:4] for r in rows_b] == [r[:4] for r in rows[:best]],
          f"the run stopped after epoch {best} logged {[r[:4] for r in rows_b]}, not {[r[:4] for r in rows[:best]]}")
    _, sb = ckpt.read_checkpoint(f"{rundir}/best.ckpt")
    _, su = ckpt.read_checkpoint("upto/last.ckpt")
    _, sl = ckpt.read_checkpoint(f"{rundir}/last.ckpt")
    check(list(sb) == list(su), "best.ckpt tensor names differ from last.ckpt's")
    diff = [k for k in sb if k not in su or sb[k].dtype != su[k].dtype or sb[k].shape != su[k].shape
            or sb[k].tobytes() != su[k].tobytes()]
    check(not diff, f"best.ckpt is not the model after epoch {best}: {len(diff)} tensors differ, first {diff[:3]}")
    check(any(sb[k].tobytes() != sl[k].tobytes() for k in sb), "best.ckpt equals last.ckpt")

    # cnn-eval reproduces the logged UARs exactly as printed
    ref_margin = float("inf")
    for ck, r, what in ((f"{rundir}/best.ckpt", row, f"best.ckpt (epoch {best})"),
                        (f"{rundir}/last.ckpt", rows[-1], f"last.ckpt (epoch {EPOCHS})")):
        for stream, col in (("dev.msgpack", 2), ("test.msgpack", 3)):
            rep, labels, preds = cnn_eval(ck, stream, "post.msgpack")
            got = f"{rep['uar']:.6f}"
            print(f"{what} on {stream}: cnn-eval UAR {got}, log.tsv {r[col]}")
            check(got == r[col], f"{what} on {stream}: cnn-eval UAR {rep['uar']!r} prints {got}, log.tsv {r[col]}")
            from sklearn.metrics import recall_score
            sk = recall_score(labels, preds, labels=sorted(set(labels)), average="macro", zero_division=0)
            check(abs(sk - rep["uar"]) <= 1e-12, f"{what} on {stream}: cnn-eval UAR {rep['uar']} != sklearn's "
                                                 f"{sk} on its own predictions")
            if ck.endswith("best.ckpt"):
                tp, margin = reference_predictions(ck, stream)
                ref_margin = min(ref_margin, margin)
                check(margin >= MARGIN, f"{what} on {stream}: an item is within {margin:.2e} of a tie between "
                                        f"two classes: unsuitable data (need >= {MARGIN:g}), choose another seed")
                check(tp == preds, f"{what} on {stream}: cnn-eval predicts {preds}, PyTorch {tp}")
    print(f"PyTorch agrees item by item; smallest top-2 margin {ref_margin:.2e}")

    print(f"{time.monotonic() - t0:.1f} s")
    T.done()


if __name__ == "__main__":
    main()
