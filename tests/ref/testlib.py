"""What every Python test shares: the Python side of tests/check.h.

A test imports it the way it imports ckpt.py, and says first what it needs
that a machine may lack:

    import os
    import sys

    sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
    import testlib as T  # noqa: E402

    T.require_module("torch")          # "skip: ..." and exit 77 where it is missing
    import torch  # noqa: E402

    r = T.run(["wdist", "a.ckpt", "b.ckpt"])      # must exit 0: else AssertionError
    r = T.run(["wdist", "a.ckpt"], code=1)        # must exit 1 (a usage error)
    r = T.run(["bandpass"], input=data, text=False, code=None)   # any status: the test looks
    T.check(r.stdout.startswith("layer"), f"output {r.stdout!r}")
    T.done()                           # "ok" and exit 0, or "N failures" and exit 1

Checks.  check(ok, msg) and fail(msg) print "FAIL: msg" and count; after
MAX_FAILURES the test stops with exit 1 (one broken thing should not bury the
output).  done() ends the test: exit 1 with the count when anything failed,
else it prints "ok".  A plain `assert` is right for what the rest of the test
builds on; check() for what can fail on its own and be reported with the rest.

Skips.  skip(why) prints "skip: why" and exits 77, which tests/run.sh counts
as skipped (it shows the last line).  require_module(name) imports and returns
the module, or skips naming it: for the references (torch, torchaudio, scipy,
sklearn) a machine may not have; numpy and msgpack are the suite's own needs
and are imported plainly.

Running.  run(args, ...) runs a program (args: a list, each item passed
through str()), captures stdout and stderr and returns the
subprocess.CompletedProcess.  stdin is /dev/null unless input= (bytes, or str
with text=True) or stdin= (a file name) is given.  code is the exit status
wanted (default 0; None accepts any); another status raises AssertionError
naming the command, its status and its stderr.  Output is text (UTF-8,
undecodable bytes replaced); text=False keeps stdout and stderr as bytes.

The directories of tests/run.sh: SRC, BIN (the programs, also on PATH),
TESTBIN (the compiled test helpers), PYTHON.
"""
import importlib
import os
import subprocess
import sys

SRC = os.environ.get("SERTOOLS_SRC", "")
BIN = os.environ.get("SERTOOLS_BIN", "")
TESTBIN = os.environ.get("SERTOOLS_TESTBIN", "")
PYTHON = os.environ.get("PYTHON", sys.executable)

EXIT_SKIP = 77
MAX_FAILURES = 20
failures = 0


def fail(msg):
    """Report a failure and count it; stop the test after MAX_FAILURES."""
    global failures
    failures += 1
    print("FAIL:", msg, flush=True)
    if failures >= MAX_FAILURES:
        print(f"stopping after {failures} failures")
        sys.exit(1)


def check(ok, msg):
    """fail(msg) unless ok; returns whether it held."""
    if not ok:
        fail(msg)
    return bool(ok)


def done():
    """End the test: exit 1 when something failed, else print "ok"."""
    if failures:
        print(f"{failures} failure{'s' if failures != 1 else ''}")
        sys.exit(1)
    print("ok")


def skip(why):
    """End the test as skipped (exit 77) with "skip: why" as its last line."""
    print(f"skip: {why}", flush=True)
    sys.exit(EXIT_SKIP)


def require_module(name):
    """Import and return the module name (e.g. "torch", "sklearn.metrics"),
    or skip the test when it cannot be imported here."""
    try:
        return importlib.import_module(name)
    except (ImportError, OSError) as e:
        skip(f"python module {name} cannot be imported ({e})")


def run(args, input=None, stdin=None, code=0, text=True):
    """Run args, capture its output; see the top of this file."""
    args = [str(a) for a in args]
    if input is not None and stdin is not None:
        raise ValueError("run: input and stdin both given")
    fin = open(stdin, "rb") if stdin is not None else None
    try:
        r = subprocess.run(args, input=input, stdin=fin if fin else (None if input is not None else subprocess.DEVNULL),
                           capture_output=True, encoding="utf-8" if text else None, errors="replace" if text else None)
    finally:
        if fin:
            fin.close()
    if code is not None and r.returncode != code:
        err = r.stderr if text else r.stderr.decode(errors="replace")
        raise AssertionError(f"{' '.join(args)}: exit {r.returncode}, want {code}: {err.strip()}")
    return r
