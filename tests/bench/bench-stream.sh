#!/bin/bash
# stream-cat pass-through of 1 h of 16 kHz waveform items (600 items x 6 s
# float32, 230 MB), through a pipe, against `cat` of the same file (raw pipe
# speed) and a Python msgpack + msgpack_numpy read/re-write, measured in the
# same run.  Each pipeline runs 5 times; printed: the best wall-clock MB/s,
# and MB per CPU-second (user + sys of every process in the pipeline, the
# median run), which a shared machine disturbs less.  The file is generated
# once into $SERTOOLS_BENCH_DIR and read from the page cache.
set -eu
data=$SERTOOLS_BENCH_DIR/stream-1h-16k.msgpack
if [ ! -s "$data" ]; then
	"$SERTOOLS_TESTBIN/stream-gen" wave 600 96000 > "$data.tmp"
	mv "$data.tmp" "$data"
fi
cat "$data" > /dev/null # page cache

cat > "$SERTOOLS_BENCH_DIR/rewrite.py" <<'PY'
import sys, msgpack, msgpack_numpy
out = sys.stdout.buffer
pk = msgpack.Packer(default=msgpack_numpy.encode)
for rec in msgpack.Unpacker(sys.stdin.buffer, object_hook=msgpack_numpy.decode, raw=False, max_buffer_size=0):
    out.write(pk.pack(rec))
PY

DATA=$data REWRITE=$SERTOOLS_BENCH_DIR/rewrite.py "$PYTHON" - <<'PY'
import os, resource, statistics, subprocess, time
data, rewrite, py = os.environ["DATA"], os.environ["REWRITE"], os.environ["PYTHON"]
mb = os.path.getsize(data) / 1e6

def measure(cmd, runs=5):
    walls, cpus = [], []
    for _ in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, shell=True, check=True, executable="/bin/bash")
        walls.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    return mb / min(walls), mb / statistics.median(cpus)

rows = [
    ("stream-cat < file | cat", f"stream-cat < '{data}' | cat > /dev/null"),
    ("stream-cat --finite < file | cat (NaN/Inf check)", f"stream-cat --finite < '{data}' | cat > /dev/null"),
    ("stream-cat < file | stream-cat | cat", f"stream-cat < '{data}' | stream-cat | cat > /dev/null"),
    ("peer: cat < file | cat (raw pipe speed)", f"cat < '{data}' | cat > /dev/null"),
    ("peer: Python msgpack + msgpack_numpy read/re-write", f"'{py}' '{rewrite}' < '{data}' | cat > /dev/null"),
]
res = {}
print(f"{mb:.0f} MB, 600 items of 96000 float32 samples; best wall MB/s, MB per CPU-second")
for name, cmd in rows:
    res[name] = measure(cmd)
    print(f"  {name:<52} {res[name][0]:7.0f} MB/s {res[name][1]:7.0f} MB/cpu-s")
sc, raw, pyr = res[rows[0][0]], res[rows[3][0]], res[rows[4][0]]
print(f"ratio stream-cat / cat: {sc[0] / raw[0]:.2f} wall, {sc[1] / raw[1]:.2f} cpu;"
      f"  stream-cat / Python: {sc[0] / pyr[0]:.1f}x wall, {sc[1] / pyr[1]:.1f}x cpu")
PY
