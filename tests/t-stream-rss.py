"""Memory stays bounded by the largest record, not the stream length.

A pipeline stream-gen | stream-cat | stream-cat --info streams 2 MiB
waveform items; the peak RSS of its processes (getrusage RUSAGE_CHILDREN
ru_maxrss, measured in a fresh interpreter per run) must stay far below the
stream size, and must not grow with the number of items: 200 items (420 MB)
may use at most 8 MiB more than 25 items (52 MB).  Under ASan the allocator
quarantine is capped at 16 MiB (freed payloads would otherwise be kept).
"""
import os
import subprocess
import sys

BIN = os.environ["SERTOOLS_BIN"]
TESTBIN = os.environ["SERTOOLS_TESTBIN"]
SAN = os.environ.get("SERTOOLS_SANITIZE") == "1"
SAMPLES = 1 << 19  # 2 MiB of float32 per item

env = dict(os.environ)
if SAN:
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16"

MEASURE = """
import resource, subprocess, sys
subprocess.run(sys.argv[1], shell=True, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_mib(items):
    cmd = (f"'{TESTBIN}/stream-gen' wave {items} {SAMPLES} | '{BIN}/stream-cat' | '{BIN}/stream-cat' | "
           f"'{BIN}/stream-cat' --info > info.txt")
    out = subprocess.run([sys.executable, "-c", MEASURE, cmd], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"FAIL: pipeline of {items} items: {out.stderr}")
        sys.exit(1)
    if f"items: {items}\n" not in open("info.txt").read():
        print(f"FAIL: --info did not see {items} items: {open('info.txt').read()}")
        sys.exit(1)
    return int(out.stdout) / 1024


small, large = peak_mib(25), peak_mib(200)
stream_mib = 200 * SAMPLES * 4 / 2**20
bound = 96 if SAN else 48
print(f"peak RSS: {small:.1f} MiB for 25 items, {large:.1f} MiB for 200 items ({stream_mib:.0f} MiB streamed)")
if large > bound:
    print(f"FAIL: peak RSS {large:.1f} MiB > {bound} MiB")
    sys.exit(1)
if large - small > 8:
    print(f"FAIL: peak RSS grows with the stream: {small:.1f} -> {large:.1f} MiB")
    sys.exit(1)
print("ok")
