"""cnn-train's logs: what stderr gets where, log.jsonl, named melspec differences.

Data, through the real pipeline (WAV -> audio-read -> melspec -> binlabels):
9 training, 6 dev and 3 test tones of three pitches, width_div 16, 64-frame
crops, batch 8 (two batches per epoch), 3 epochs.

 1. Stderr a file (a batch system, nohup): exactly one line per epoch,
    `cnn-train: epoch E/3: loss L, dev UAR D%, test UAR T%, S s, ETA ...`
    (no ETA after the last), loss and UARs those of log.tsv, no '\\r'
    anywhere.  --progress into a file adds the memory and best-epoch lines,
    still no '\\r'; -q writes nothing.  Stderr a terminal (a pty): the live
    line ('\\r', batch count, ETA) and the same epoch lines.
 2. log.jsonl: one object per log.tsv row, keys epoch, loss, dev_uar,
    test_uar, seconds, each number the same text as in log.tsv (test_uar
    null without a test set); RUNDIR/log.jsonl is the newest state's.
 3. Resume: SIGTERM once epoch 1's state exists, then --resume: log.jsonl
    again equals log.tsv row for row, and its epoch, loss and UAR equal the
    uninterrupted run's.
 4. A dev stream made with other melspec settings (--fmax 7000) is refused
    with the setting named and both values (f_max 8000.0 and 7000.0).
"""
import json
import os
import pty
import re
import signal
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import testlib as T  # noqa: E402
import tones  # noqa: E402

CT = os.path.join(T.BIN, "cnn-train")
EPOCHS = 3
BASE = ["--width-div", 16, "--crop-frames", 64, "--seed", 3, "--threads", 2, "--epochs", EPOCHS]
DUR = r"\d+(\.\d)? (s|min|h)"
LINE = re.compile(rf"cnn-train: epoch (\d+)/{EPOCHS}: loss (\d+\.\d{{4}}), dev UAR (\d+\.\d\d)%"
                  rf"(, test UAR (\d+\.\d\d)%)?, {DUR}(, ETA {DUR})?( \(best\))?")


def make_data():
    rng = np.random.default_rng(23)
    os.makedirs("wav", exist_ok=True)
    rows = ["FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Split_Set"]
    scp = []
    n = 0
    for split, per in (("Train", 3), ("Development", 2), ("Test1", 1)):
        for _ in range(per):
            for c, act in enumerate((2.0, 4.0, 6.0)):
                key = f"utt{n:04d}"
                n += 1
                tones.write_tone(f"wav/{key}.wav", rng, tones.PITCHES[c], 0.5, 1.0)
                scp.append(f"{key} wav/{key}.wav")
                rows.append(f"Audios/{key}.wav,N,{act:.2f},4.0,4.0,{c % 2},{split}")
    tones.labelled_features(T.run, rows, scp, (("Train", "train"), ("Development", "dev"), ("Test1", "test")),
                            fmax7k=True)
    T.run(["binlabels", "--csv", "labels.csv", "-t", "arousal", "-s", "Development", "-o", "dev7k.msgpack",
           "feats7k.msgpack"])


def train_to_file(rundir, extra=(), test=True):
    """Runs cnn-train with stderr a file; returns that file's text."""
    args = [CT, "--train", "train.msgpack", "--dev", "dev.msgpack", "-o", rundir] + (
        ["--test", "test.msgpack"] if test else []) + [str(a) for a in BASE + list(extra)]
    with open(rundir + ".err", "wb") as f:
        p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f)
    err = open(rundir + ".err", "rb").read().decode()
    assert p.returncode == 0, f"{rundir}: exit {p.returncode}: {err}"
    return err


def log_rows(rundir):
    lines = open(f"{rundir}/log.tsv").read().split("\n")
    assert lines[-1] == "" and lines[0].startswith("epoch\t"), f"{rundir}/log.tsv"
    return [ln.split("\t") for ln in lines[1:-1]]


def check_epoch_lines(lines, rundir, first, label):
    rows = log_rows(rundir)
    T.check(len(lines) == EPOCHS - first + 1, f"{label}: {len(lines)} lines for epochs {first}..{EPOCHS}: {lines}")
    for e, ln in zip(range(first, EPOCHS + 1), lines):
        m = LINE.fullmatch(ln)
        if not T.check(m is not None, f"{label}: not an epoch line: {ln!r}"):
            continue
        row = rows[e - 1]
        T.check(int(m[1]) == e, f"{label}: epoch {m[1]}, want {e}")
        T.check(m[2] == f"{float(row[1]):.4f}" and m[3] == f"{100 * float(row[2]):.2f}", f"{label}: {ln!r} vs {row}")
        T.check(m[5] == (f"{100 * float(row[3]):.2f}" if row[3] != "NA" else None), f"{label}: test UAR {ln!r}")
        T.check((m[8] is not None) == (e < EPOCHS), f"{label}: ETA on every epoch but the last: {ln!r}")


def check_jsonl(rundir, label):
    rows = log_rows(rundir)
    text = open(f"{rundir}/log.jsonl").read()
    lines = text.split("\n")
    T.check(lines[-1] == "" and len(lines) - 1 == len(rows), f"{label}: log.jsonl has {len(lines) - 1} rows, "
            f"log.tsv {len(rows)}")
    for row, ln in zip(rows, lines):
        want = (f'{{"epoch":{row[0]},"loss":{row[1]},"dev_uar":{row[2]},'
                f'"test_uar":{"null" if row[3] == "NA" else row[3]},"seconds":{row[4]}}}')
        T.check(ln == want, f"{label}: log.jsonl row {ln!r}, log.tsv row {row}")
        js = json.loads(ln)
        T.check(list(js) == ["epoch", "loss", "dev_uar", "test_uar", "seconds"], f"{label}: keys {list(js)}")
    states = sorted((d for d in os.listdir(rundir) if d.startswith("state-")),
                    key=lambda d: tuple(map(int, d.split("-")[1:])))
    T.check(os.path.samefile(f"{rundir}/log.jsonl", f"{rundir}/{states[-1]}/log.jsonl"),
            f"{label}: log.jsonl is not the newest state's")
    return [json.loads(ln) for ln in lines[:-1]]


def on_terminal(rundir):
    """stderr a pty: returns what it received."""
    master, slave = pty.openpty()
    args = [CT, "--train", "train.msgpack", "--dev", "dev.msgpack", "-o", rundir] + [str(a) for a in BASE]
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the pty
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert p.wait() == 0, f"{rundir}: exit {p.returncode}: {out!r}"
    return out.decode().replace("\r\n", "\n")


def main():
    make_data()
    # 1, 2: stderr a file
    err = train_to_file("a")
    T.check("\r" not in err, f"a carriage return in stderr to a file: {err!r}")
    check_epoch_lines(err.split("\n")[:-1], "a", 1, "stderr a file")
    ref = check_jsonl("a", "a")
    err = train_to_file("b", ["--progress"], test=False)
    T.check("\r" not in err, f"--progress into a file: a carriage return: {err!r}")
    lines = err.split("\n")[:-1]
    T.check(len(lines) == EPOCHS + 2 and "in memory" in lines[0] and "best epoch" in lines[-1],
            f"--progress into a file: {lines}")
    check_epoch_lines(lines[1:-1], "b", 1, "--progress into a file")
    T.check(all(r["test_uar"] is None for r in check_jsonl("b", "b")), "test_uar without a test set")
    T.check(train_to_file("c", ["-q"]) == "", "-q: stderr not empty")
    out = on_terminal("d")
    live = [s for s in out.split("\r") if s.startswith("cnn-train: epoch 1/3, batch")]
    T.check(live and all("ETA" in s for s in live), f"terminal: no live line with an ETA: {out!r}")
    epochs = [s for s in re.split("[\r\n]", out) if LINE.fullmatch(s)]
    T.check(len(epochs) == EPOCHS, f"terminal: {len(epochs)} epoch lines: {out!r}")
    # 3: resume after SIGTERM
    args = [CT, "--train", "train.msgpack", "--dev", "dev.msgpack", "--test", "test.msgpack", "-o", "r",
            "--save-every", 0] + BASE
    p = subprocess.Popen([str(a) for a in args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    t0 = time.monotonic()
    while p.poll() is None and not os.path.exists("r/state-2-0") and time.monotonic() - t0 < 300:
        time.sleep(0.001)
    p.send_signal(signal.SIGTERM)
    p.communicate()
    if p.returncode == 0:
        print("note: the run ended before SIGTERM; resuming a complete run")
    else:
        T.check(p.returncode == 143, f"SIGTERM: exit {p.returncode}")
    with open("r.err", "wb") as f:
        q = subprocess.run([CT, "--resume", "r"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f)
    assert q.returncode == 0, f"--resume: exit {q.returncode}: {open('r.err').read()}"
    got = check_jsonl("r", "resumed")
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in got]
    T.check(strip == [{k: v for k, v in r.items() if k != "seconds"} for r in ref],
            f"resumed log.jsonl {strip} differs from the uninterrupted run's {ref}")
    # 4: the differing setting named
    r = T.run(["cnn-train", "--train", "train.msgpack", "--dev", "dev7k.msgpack", "-o", "x", "-q"] + BASE, code=2)
    T.check(re.search(r"different melspec settings: f_max \S*8000\S* in the train\.msgpack, \S*7000\S* in the "
                      r"dev7k\.msgpack", r.stderr) is not None and r.stderr.count("\n") == 1,
            f"other melspec settings: {r.stderr!r}")
    T.done()


if __name__ == "__main__":
    main()
