"""cnn-train's option table: every setting survives --resume.

The table is read from the program itself (the hidden --dump-settings prints
every option with its type, range, flags and resolved value), so an option
added later is covered without touching this test.  Every option that may
not be given with --resume (all but those marked keep) must come back from
the run file with the value it was started with; the one exception is
--output, whose value on resume is the --resume argument.  For each such
option the test picks a value other than the default, runs the program with
all of them, writes the run file from the list the program persisted, and
compares what --resume resolves.  A run file written by the code before the
option table (its settings list in the old order, --width-div left out when
--init is given) must still resume.  Also: the refusals of --resume and the
one-line usage errors.
"""
import json
import os
import sys

import msgpack

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import testlib as T  # noqa: E402

NOT_RESTORED = {"run-dir", "output"}  # RUNDIR is the --resume argument (-o/--output: its old spelling)


def dump(args, code=0):
    r = T.run(["cnn-train"] + args + ["--dump-settings"], code=code)
    rows, persisted = {}, None
    for line in r.stdout.splitlines():
        f = line.split("\t")
        if f[0] == "persisted":
            persisted = json.loads(f[1])
            continue
        name, typ, flags, lo, hi, choices, value = f
        rows[name] = {"type": typ, "flags": set(flags.split(",")) - {""}, "min": float(lo), "max": float(hi),
                      "choices": choices.split(",") if choices else [], "value": value}
    assert persisted is not None, r.stdout
    return rows, persisted


def other_value(name, row):
    """A command-line value for the option other than its default: (words, value as dumped)."""
    t, v = row["type"], row["value"]
    if t in ("flag", "unset"):
        return [f"--{name}"], "0" if v == "1" else "1"
    if t in ("int", "u64"):
        x = int(row["max"]) if int(v) != int(row["max"]) else int(row["min"])
        if t == "u64":
            x = min(x, 2**63 - 1)
        return [f"--{name}", str(x)], str(x)
    if t == "double":
        x = 0.1 + 0.2  # 17 significant digits: an inexact copy is caught
        if not (row["min"] < x < row["max"]) or float(v) == x:
            x = (row["min"] + row["max"]) / 3
        return [f"--{name}", repr(x)], "%.17g" % x
    if t == "choice":
        c = next(c for c in row["choices"] if c != v)
        return [f"--{name}", c], c
    if t == "string":
        path = os.path.abspath(f"{name}.data")
        open(path, "wb").close()
        return [f"--{name}", path], path
    raise AssertionError(f"--{name}: unknown type {t}")


def write_run_file(rundir, args):
    os.makedirs(rundir, exist_ok=True)
    header = {"type": "header", "format": "sertools-stream", "version": 1, "producer": "cnn-train",
              "argv": ["cnn-train", "--train", "x", "--dev", "y", "-o", rundir],
              "params": {"args": args, "data": {}}}
    with open(os.path.join(rundir, "run.msgpack"), "wb") as f:
        f.write(msgpack.packb(header) + msgpack.packb({"type": "end", "count": 0}))


defaults, _ = dump([])
settings = [n for n, row in defaults.items() if "keep" not in row["flags"] and n not in NOT_RESTORED]
T.check(len(settings) >= 20, f"only {len(settings)} settings in the table: {settings}")
words, want = [], {}
for name in settings:
    w, v = other_value(name, defaults[name])
    words += w
    want[name] = v
started, persisted = dump(words + ["--run-dir", "run"])
for name in settings:
    T.check(started[name]["value"] == want[name] != defaults[name]["value"],
            f"--{name}: given {want[name]!r}, resolved {started[name]['value']!r}, default {defaults[name]['value']!r}")
T.check(persisted[0] == "cnn-train", f"persisted list starts with {persisted[:1]}")

# every setting comes back from the run file
write_run_file("run", persisted)
resumed, again = dump(["--resume", "run"])
for name in settings:
    T.check(resumed[name]["value"] == started[name]["value"],
            f"--{name} does not survive --resume: started {started[name]['value']!r}, resumed {resumed[name]['value']!r}")
T.check(again == persisted, f"persisted again: {again} != {persisted}")
T.check(resumed["run-dir"]["value"] == "run", f"RUNDIR on resume: {resumed['run-dir']['value']!r}")
# -o/--output: the hidden old spelling of --run-dir, the same setting
T.check("hidden" in defaults["output"]["flags"], "--output is not hidden in cnn-train")
old, _ = dump(["-o", "old-run"])
T.check(old["run-dir"]["value"] == "old-run", f"-o does not set the run directory: {old['run-dir']['value']!r}")

# options marked keep are taken from the command line on resume
resumed, _ = dump(["--resume", "run", "--threads", "3", "-q"])
T.check(resumed["threads"]["value"] == "3" and resumed["quiet"]["value"] == "1", "--threads/-q with --resume")

# a run file of the code before the option table
old = ["cnn-train", "--train", "/a/t.msgpack", "--dev", "/a/d.msgpack", "--init", "/a/i.ckpt", "--new-head",
       "--finetune", "linear", "--freeze-bn-stats", "--crop-frames", "150", "--pad-short", "--epochs", "8",
       "--lr", "0.001", "--momentum", "0.90000000000000002", "--no-nesterov", "--weight-decay", "0", "--batch", "8",
       "--no-balance", "--seed", "7", "--save-every", "600", "--threads", "0", "--eval-batch", "32"]
write_run_file("old", old)
resumed, _ = dump(["--resume", "old"])
got = {n: resumed[n]["value"] for n in ("train", "init", "new-head", "finetune", "crop-frames", "epochs",
                                          "momentum", "no-nesterov", "no-balance", "seed", "width-div", "test")}
T.check(got == {"train": "/a/t.msgpack", "init": "/a/i.ckpt", "new-head": "1", "finetune": "linear",
                "crop-frames": "150", "epochs": "8", "momentum": "0.90000000000000002", "no-nesterov": "0",
                "no-balance": "0", "seed": "7", "width-div": "1", "test": ""}, f"old run file: {got}")

# refusals
r = T.run(["cnn-train", "--resume", "run", "--epochs", "3"], code=1)
T.check("--resume" in r.stderr and r.stderr.count("\n") == 2, f"--resume with a setting: {r.stderr!r}")
write_run_file("bad", ["cnn-train", "--resume", "x"])
r = T.run(["cnn-train", "--resume", "bad"], code=2)
T.check("not a saved setting" in r.stderr, f"--resume in saved arguments: {r.stderr!r}")
for args, what in ((["--lr", "0"], "--lr: '0': must be a number in (0, "), (["--bogus"], "'--bogus'"),
                   (["--finetune", "some"], "must be one of all, linear"), (["--width-div", "3"], "be one of 1, 2, 4"),
                   (["--momentum", "1"], "in [0, 1)"), (["--train"], "needs an argument")):
    r = T.run(["cnn-train"] + args, code=1)
    T.check(what in r.stderr and r.stderr.endswith("\nTry 'cnn-train --help'.\n") and r.stderr.count("\n") == 2,
            f"{args}: {r.stderr!r}")
T.done()
