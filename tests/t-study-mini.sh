#!/bin/bash
# The study pipeline (pipelines/Makefile) in miniature: the tiny embedded
# corpus, 2 epochs (1 under ASan), 2 bandwidths instead of 8, runs through
# GNU parallel with the local ':' ssh login.  Checks that every output
# (table1.md, sweep.md, stats.md, the four PNGs) exists and is well formed,
# that a second `make` has nothing to do (make -q), and that after losing one
# run only that run is trained again.
set -eu -o pipefail
fail() { echo "FAIL: $*"; exit 1; }
epochs=2; widths="20 400"
[ "${SERTOOLS_SANITIZE:-0}" = 1 ] && epochs=1
echo : > logins
mk=(make -C "$SERTOOLS_SRC/pipelines" --no-print-directory SIZE=tiny OUT="$PWD/out"
    BIN="$SERTOOLS_BIN" EPOCHS=$epochs WIDTHS="$widths" JOBS=2 THREADS=1 SSHLOGINFILE="$PWD/logins")

"${mk[@]}" -j2 all >log 2>&1 || { tail -30 log; fail "make all"; }
# (that the runs really go through ssh logins is t-fanout-ssh.sh's part)
ls out/logs/stage1-*.joblog out/logs/stage2-*.joblog >/dev/null || fail "no joblogs"

# Every output and its shape.
$PYTHON - out "$epochs" "$widths" <<'PY'
import os, re, struct, sys
out, epochs, widths = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
def fail(m):
    print('FAIL:', m); sys.exit(1)
def rows(name):
    with open(os.path.join(out, name), encoding='utf-8') as f:
        return [[c.strip() for c in l.strip().strip('|').split('|')] for l in f if l.startswith('|')]
uar = re.compile(r'^(\d+\.\d\d) \((\d+)\)$')
def check_cell(c, what):
    m = uar.match(c)
    if not m or not 0 <= float(m.group(1)) <= 100 or not 1 <= int(m.group(2)) <= epochs:
        fail(f'{what}: bad cell {c!r}')
t = {r[0]: r[1:] for r in rows('table1.md')}
for label in ('All layers', 'Linear only', 'All layers, paper', 'Linear only, paper'):
    if len(t.get(label, [])) != 6:
        fail(f'table1.md: row {label!r}: {t.get(label)}')
for c in t['All layers']:
    check_cell(c, 'table1 all')
if t['Linear only'][0] != '-':
    fail('table1.md: Random has a linear-only cell')
for c in t['Linear only'][1:]:
    check_cell(c, 'table1 linear')
if t['All layers, paper'][0] != '68.76 (58)' or t['Linear only, paper'][5] != '65.29 (20)':
    fail(f'table1.md: paper numbers {t["All layers, paper"]}')
for u in ('up-iemocap', 'up-voxceleb', 'up-events', 'up-valence', 'up-dominance'):
    if u not in t:
        fail(f'table1.md: no upstream row {u}')
s = {r[0]: r[1:] for r in rows('sweep.md')}
for w in widths:
    if w not in s:
        fail(f'sweep.md: no row for {w} Hz')
    check_cell(s[w][0], f'sweep {w} scratch'); check_cell(s[w][1], f'sweep {w} fine-tuned')
st = {r[0]: r[1:] for r in rows('stats.md')}
for split in ('Train', 'Validation', 'Test1', 'all'):
    if split not in st:
        fail(f'stats.md: no {split} row')
    pct = [float(x) for x in st[split][1].split('/')]
    if len(pct) != 3 or abs(sum(pct) - 100) > 0.2:
        fail(f'stats.md: {split} arousal {st[split][1]}')
    if not -1 <= float(st[split][5]) <= 1:
        fail(f'stats.md: {split} r(A,D) {st[split][5]}')
if int(st['all'][0]) != sum(int(st[s][0]) for s in ('Train', 'Validation', 'Test1')):
    fail('stats.md: rows do not add up')
for fig in ('fig2a', 'fig2b', 'fig3a', 'fig3b'):
    with open(os.path.join(out, fig + '.png'), 'rb') as f:
        b = f.read()
    if b[:8] != b'\x89PNG\r\n\x1a\n' or b[12:16] != b'IHDR' or struct.unpack('>II', b[16:24]) != (1000, 640):
        fail(f'{fig}.png: not a 1000x640 PNG')
    if len(b) < 5000:
        fail(f'{fig}.png: {len(b)} bytes, too small to hold a plot')
# figure data: fig2a one column per curve, epochs 1..E; fig3 14 layers, 2 columns per run
with open(os.path.join(out, 'fig', 'fig2a.tsv')) as f:
    d = [l.rstrip('\n').split('\t') for l in f]
if len(d[0]) != 7 or [r[0] for r in d[1:]] != [str(e) for e in range(1, epochs + 1)]:
    fail(f'fig2a.tsv: {d}')
with open(os.path.join(out, 'fig', 'fig3b.tsv')) as f:
    d = [l.rstrip('\n').split('\t') for l in f]
if len(d) != 15 or len(d[0]) != 2 + 2 * len(widths) or d[1][1] != 'conv_block1.conv1':
    fail(f'fig3b.tsv: {len(d)} lines, header {d[0]}')
if not all(0 <= float(v) <= 2 for r in d[1:] for v in r[2:]):
    fail('fig3b.tsv: a distance outside [0, 2]')
PY

# Nothing left to do.
"${mk[@]}" -q all || fail "make -q: a second run would do something"

# Lose one finished run (as if it had been interrupted before it ended):
# only it is trained again, and the table is rebuilt.
before=$(stat -c %Y out/runs/t1-random/summary.tsv out/runs/sw-ft-400/summary.tsv)
rm -rf out/runs/t1-voxceleb-linear out/runs/t1-voxceleb-linear.args
sleep 1
"${mk[@]}" all >log2 2>&1 || { tail -30 log2; fail "make after losing a run"; }
[ -s out/runs/t1-voxceleb-linear/summary.tsv ] || fail "the lost run was not redone"
grep -q 't1-voxceleb-linear: started' log2 || fail "the lost run was not started again"
n=$(grep -c ': started' log2 || true)
[ "$n" = 1 ] || fail "$n runs started again, expected 1"
[ "$(stat -c %Y out/runs/t1-random/summary.tsv out/runs/sw-ft-400/summary.tsv)" = "$before" ] \
  || fail "finished runs were touched"
"${mk[@]}" -q all || fail "make -q after the re-run"

# Settings changed under a finished run are refused, not silently mixed.
rc=0; "${mk[@]}" EPOCHS=3 stage1 >log3 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q 'made with other arguments' log3 || fail "EPOCHS changed under finished runs: exit $rc"
# Too many jobs x threads for this machine is refused.
rc=0; "${mk[@]}" JOBS=$(( $(nproc) + 1 )) all >log4 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q 'more than the' log4 || fail "JOBS x THREADS above the cores accepted"
echo ok
