#!/bin/bash
# The study pipeline (pipelines/Makefile) in miniature: the tiny embedded
# corpus, 2 training seeds, 2 epochs (1 under ASan), 2 bandwidths instead of
# 8, runs through GNU parallel with the local ':' ssh login.  Checks that
# every output (findings.md, table1.md, sweep.md, stats.md, the four PNGs)
# exists and is well formed, that every table cell is the mean and 95 %
# t interval (scipy's t quantile) of the summaries of the runs it names, that
# each finding is the paired difference of its runs with the verdict its
# interval implies (and the verdict rule on constructed inputs), that linear-only
# runs moved only fc1 and the output layer and every fine-tuning run started
# from the intended checkpoint (the upstream model's best, the clean baseline's),
# that the learning curves score every other Test1 item (CURVE_EVERY=2 at tiny)
# while every cell's test UAR is all of Test1 under the best epoch's model,
# that `make compare` agrees with itself and catches a moved cell and a
# reversed verdict, that a second `make` has nothing to do (make -q), and that after losing one
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
uar = re.compile(r'^(-?\d+\.\d\d) \[(-?\d+\.\d\d), (-?\d+\.\d\d)\] \((\d+(?:\.5)?)\)$')
def check_cell(c, what):
    m = uar.match(c)
    if not m or not 0 <= float(m.group(1)) <= 100 or not 1 <= float(m.group(4)) <= epochs \
            or not float(m.group(2)) <= float(m.group(1)) <= float(m.group(3)):
        fail(f'{what}: bad cell {c!r} (want mean [lo, hi] (median best epoch))')
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
    if not re.match(r'^\d+ \(\d+\.\d\)$', t[u][1]):
        fail(f'table1.md: {u}: classes (chance) cell {t[u][1]!r}')
f = rows('findings.md')
if len(f) != 2 + 1 + 1 + 5 + 5 + 4 or f[0] != ['claim', 'paper', 'ours [95 % interval]', 'verdict']:
    fail(f'findings.md: {len(f)} table lines, header {f[0]}')
for r in f[2:]:
    # UAR points and epochs with 2 decimals, cosine distances (the layer rows) with 4
    d = r'\d\d\d\d' if r[0].startswith('Earlier layers') else r'\d\d'
    if not re.match(rf'^[+-]\d+\.{d} \[[+-]\d+\.{d}, [+-]\d+\.{d}\]$', r[2]) or r[3] not in ('reproduced', 'contradicted', 'inconclusive'):
        fail(f'findings.md: row {r}')
with open(os.path.join(out, 'baseline.tsv')) as fh:
    b = dict(zip(*[l.rstrip('\n').split('\t') for l in fh]))
if not 0 <= float(b['uar']) <= 1 or int(b['test_items']) < 3:
    fail(f'baseline.tsv: {b}')
if f'**{100 * float(b["uar"]):.2f} %**' not in open(os.path.join(out, 'table1.md'), encoding='utf-8').read():
    fail('table1.md: no trivial reference line with baseline.tsv\'s UAR')
for name in ('table1.md', 'sweep.md', 'findings.md', 'stats.md'):
    if os.path.abspath(out) in open(os.path.join(out, name), encoding='utf-8').read():
        fail(f'{name}: shows a machine path ({os.path.abspath(out)})')
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
# pipelines/curves.gp: Fig 2a six panels in two rows, 2b the curves and the gap side by side
sizes = {'fig2a': (1200, 780), 'fig2b': (1200, 540),
         'fig3a': (1000, 640), 'fig3b': (1000, 640)}
for fig, size in sizes.items():
    with open(os.path.join(out, fig + '.png'), 'rb') as f:
        b = f.read()
    if b[:8] != b'\x89PNG\r\n\x1a\n' or b[12:16] != b'IHDR' or struct.unpack('>II', b[16:24]) != size:
        fail(f'{fig}.png: not a {size[0]}x{size[1]} PNG')
    if len(b) < 5000:
        fail(f'{fig}.png: {len(b)} bytes, too small to hold a plot')
# figure data: fig2a one column per curve, epochs 1..E; fig3 14 layers, 2 columns per run
# fig2a: per run a named mean and its band (lo <= mean <= hi), both fine-tuning modes
with open(os.path.join(out, 'fig', 'fig2a.tsv')) as f:
    d = [l.rstrip('\n').split('\t') for l in f]
if len(d[0]) != 1 + 3 * 11 or [r[0] for r in d[1:]] != [str(e) for e in range(1, epochs + 1)]:
    fail(f'fig2a.tsv: {d}')
names = d[0][1::3]
for want in ('Random (from scratch)', 'IEMOCAP (all layers)', 'IEMOCAP (linear only)',
             'AudioSet stand-in (events) (all layers)', 'MSP dominance (linear only)'):
    if want not in names:
        fail(f'fig2a.tsv: no curve named {want!r} in {names}')
if any(n.startswith('t1-') for n in names) or d[0][2::3] != ['lo'] * 11 or d[0][3::3] != ['hi'] * 11:
    fail(f'fig2a.tsv: header {d[0]}')
for r in d[1:]:
    for j in range(11):
        m, lo, hi = (float(x) for x in r[1 + 3 * j:4 + 3 * j])
        if not lo <= m <= hi:
            fail(f'fig2a.tsv: epoch {r[0]}, {names[j]}: band {lo} {m} {hi}')
with open(os.path.join(out, 'fig', 'fig2b-gap.tsv')) as f:
    d = [l.rstrip('\n').split('\t') for l in f]
if d[0] != ['width', 'gap', 'lo', 'hi'] or [r[0] for r in d[1:]] != widths:
    fail(f'fig2b-gap.tsv: {d}')
for r in d[1:]:  # the panel shows the sweep table's gap, interval and all
    if s[r[0]][2] != f'{float(r[1]):+.2f} [{float(r[2]):+.2f}, {float(r[3]):+.2f}]':
        fail(f'fig2b-gap.tsv: {r} is not sweep.md\'s gap {s[r[0]][2]}')
with open(os.path.join(out, 'fig', 'fig3b.tsv')) as f:
    d = [l.rstrip('\n').split('\t') for l in f]
if len(d) != 15 or len(d[0]) != 2 + 2 * len(widths) or d[1][1] != 'conv_block1.conv1':
    fail(f'fig3b.tsv: {len(d)} lines, header {d[0]}')
if not all(0 <= float(v) <= 2 for r in d[1:] for v in r[2:]):
    fail('fig3b.tsv: a distance outside [0, 2]')
PY

# The wiring, not just the format: every cell is the summary of the run it
# names, linear-only runs moved only the linear layers, and every
# fine-tuning run started from the intended checkpoint.
$PYTHON - out "$widths" <<'PY'
import os, sys
sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import ckpt, numpy as np
out, widths = sys.argv[1], sys.argv[2].split()
runs = os.path.join(out, 'runs')
bad = []
def rows(name):
    with open(os.path.join(out, name), encoding='utf-8') as f:
        return [[c.strip() for c in l.strip().strip('|').split('|')] for l in f if l.startswith('|')]
def summary(run):
    with open(os.path.join(runs, run, 'summary.tsv')) as f:
        head, vals = [l.rstrip('\n').split('\t') for l in f][:2]
    return dict(zip(head, vals))
from scipy import stats as sst
seeds = ['1', '2']
def cell(run, key='test_uar'):
    xs = [100 * float(summary(f's{s}/{run}')[key]) for s in seeds]
    m, sd = np.mean(xs), np.std(xs, ddof=1)
    h = sst.t.ppf(0.975, len(xs) - 1) * sd / np.sqrt(len(xs))
    med = np.median([int(summary(f's{s}/{run}')['best_epoch']) for s in seeds])
    return f'{m:.2f} [{m - h:.2f}, {m + h:.2f}] ({med:g})'
def interval_of(xs):
    m, sd = np.mean(xs), np.std(xs, ddof=1)
    h = sst.t.ppf(0.975, len(xs) - 1) * sd / np.sqrt(len(xs))
    return f'{m:+.2f} [{m - h:+.2f}, {m + h:+.2f}]', m - h, m + h
t = {r[0]: r[1:] for r in rows('table1.md')}
cols = ['iemocap', 'audioset', 'voxceleb', 'valence', 'dominance']
want_all = [cell('t1-random')] + [cell(f't1-{c}-all') for c in cols]
want_lin = ['-'] + [cell(f't1-{c}-linear') for c in cols]
if t['All layers'] != want_all: bad.append(f"table1 'All layers' {t['All layers']} != runs {want_all}")
if t['Linear only'] != want_lin: bad.append(f"table1 'Linear only' {t['Linear only']} != runs {want_lin}")
for u in ('iemocap', 'voxceleb', 'events', 'valence', 'dominance'):
    row = t[f'up-{u}']
    want = [cell(f'up-{u}', 'dev_uar').split(' (')[0], cell(f'up-{u}').split(' (')[0]]
    if row[2:4] != want: bad.append(f'upstream row up-{u} {row[2:4]} != its runs {want}')
sw = {r[0]: r[1:] for r in rows('sweep.md')}
for w in widths:
    if sw[w][:2] != [cell(f'sw-scratch-{w}'), cell(f'sw-ft-{w}')]:
        bad.append(f'sweep {w} Hz {sw[w][:2]} != runs sw-scratch-{w}, sw-ft-{w}')
# findings: the all - linear rows are paired differences of their runs
fr = [r for r in rows('findings.md')[2:]]
names = {'iemocap': 'IEMOCAP', 'audioset': 'AudioSet', 'voxceleb': 'VoxCeleb1', 'valence': 'valence', 'dominance': 'dominance'}
for c in cols:
    d = [100 * (float(summary(f's{s}/t1-{c}-all')['test_uar']) - float(summary(f's{s}/t1-{c}-linear')['test_uar'])) for s in seeds]
    text, lo, hi = interval_of(d)
    verdict = 'reproduced' if lo > 0 else 'contradicted' if hi < 0 else 'inconclusive'
    r = [r for r in fr if r[0].startswith('All layers beat linear only') and names[c] in r[0]]
    if len(r) != 1 or r[0][2:] != [text, verdict]:
        bad.append(f'findings: all - linear for {c}: {r} != {[text, verdict]}')
d = [100 * (float(summary(f's{s}/t1-random')['test_uar']) - float(summary(f's{s}/t1-voxceleb-all')['test_uar'])) for s in seeds]
r = [r for r in fr if r[0].startswith('No initialisation') and 'VoxCeleb1' in r[0]]
if len(r) != 1 or r[0][2] != interval_of(d)[0]:
    bad.append(f'findings: random - voxceleb {r} != {interval_of(d)[0]}')
# the verdict rule on constructed inputs
sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "pipelines"))
import report
for xs, want in (([1.0, 1.1, 0.9], 'reproduced'), ([-1.0, -1.1, -0.9], 'contradicted'),
                 ([1.0, 2.0, -0.5], 'inconclusive'), ([3.0], 'inconclusive'), ([2.0, 2.0], 'reproduced')):
    if report.verdict(xs) != want:
        bad.append(f'report.verdict({xs}) = {report.verdict(xs)}, want {want}')
    if len(xs) > 1 and len(set(xs)) > 1 and abs(report.interval(xs)[1] - (interval_of(xs)[2] - np.mean(xs))) > 1e-9:
        bad.append(f'report.interval({xs}) != scipy t interval')
def tensors(path):
    return ckpt.read_checkpoint(path)[1]
def is_linear(name):
    return name.startswith('fc1.') or name.startswith('fc_transfer.')
def is_running(name):
    return 'running_' in name or 'num_batches_tracked' in name
inits = {'iemocap': 'up-iemocap', 'audioset': 'up-events', 'voxceleb': 'up-voxceleb', 'valence': 'up-valence', 'dominance': 'up-dominance'}
for seed in seeds:
    sr = os.path.join(runs, f's{seed}')
    for c, up in inits.items():
        src = tensors(os.path.join(sr, up, 'best.ckpt'))
        for mode in ('all', 'linear'):
            run = os.path.join(sr, f't1-{c}-{mode}')
            init = tensors(os.path.join(run, 'init.ckpt'))
            # --new-head: the body is the same seed's upstream model's, the output layer is new
            for k, v in init.items():
                if k.startswith('fc_transfer.'):
                    continue
                if k not in src or not np.array_equal(np.asarray(v), np.asarray(src[k])):
                    bad.append(f's{seed}/t1-{c}-{mode}/init.ckpt: {k} is not s{seed}/{up}/best.ckpt\'s')
            for final in ('best.ckpt', 'last.ckpt'):
                fin = tensors(os.path.join(run, final))
                moved = sorted(k for k in init if not is_running(k) and not np.array_equal(np.asarray(init[k]), np.asarray(fin[k])))
                frozen_moved = [k for k in moved if not is_linear(k)]
                if mode == 'linear' and frozen_moved:
                    bad.append(f's{seed}/t1-{c}-linear/{final}: non-linear tensors moved: {frozen_moved[:4]}')
                if mode == 'linear' and 'fc1.weight' not in moved and final == 'last.ckpt':
                    bad.append(f's{seed}/t1-{c}-linear/{final}: fc1.weight did not move')
                if mode == 'all' and final == 'last.ckpt' and not any(k.startswith('conv_block1.') for k in moved):
                    bad.append(f's{seed}/t1-{c}-all/{final}: conv_block1 did not move (all layers fine-tuned?)')
    base = tensors(os.path.join(sr, 't1-random', 'best.ckpt'))
    for w in widths:
        init = tensors(os.path.join(sr, f'sw-ft-{w}', 'init.ckpt'))
        diff = [k for k in base if not np.array_equal(np.asarray(base[k]), np.asarray(init[k]))]
        if diff or sorted(init) != sorted(base):
            bad.append(f's{seed}/sw-ft-{w}/init.ckpt is not s{seed}/t1-random/best.ckpt ({diff[:3]})')
# the curves' test set is every other Test1 item; a cell's test UAR is all
# of Test1 under the best epoch's model, the curve's that subset's
import json, subprocess
feat = os.path.join(out, 'feat', 'main', 'clean')
def keys(path):
    return [it['key'] for it in ckpt.read_stream(path)[1]]
full, half = keys(os.path.join(feat, 'Test1.arousal.ms')), keys(os.path.join(feat, 'Test1-every2.arousal.ms'))
if half != full[::2] or len(half) < 2: bad.append(f'Test1-every2: {len(half)} keys, not every other of Test1\'s {len(full)}')
def uar(ck, stream):
    r = subprocess.run([os.path.join(os.environ['SERTOOLS_BIN'], 'cnn-eval'), '--json', '--pad-short', ck, stream],
                       stdout=subprocess.PIPE, check=True)
    return f"{json.loads(r.stdout)['uar']:.6f}"
for run in ('s1/t1-random', 's2/t1-iemocap-all', 's1/up-iemocap'):
    d = os.path.join(runs, run)
    sm = summary(run)
    test = os.path.join(out, 'feat', 'iemocap', 'Test1.ms') if 'up-' in run else os.path.join(feat, 'Test1.arousal.ms')
    if uar(os.path.join(d, 'best.ckpt'), test) != sm['test_uar']:
        bad.append(f'{run}: summary test_uar {sm["test_uar"]} is not best.ckpt\'s on all of Test1')
    with open(os.path.join(d, 'log.tsv')) as f:
        log = [l.rstrip('\n').split('\t') for l in f][1:]
    curve = log[int(sm['best_epoch']) - 1][3]
    want = 'NA' if 'up-' in run else uar(os.path.join(d, 'best.ckpt'), os.path.join(feat, 'Test1-every2.arousal.ms'))
    if curve != want: bad.append(f'{run}: log.tsv test_uar at the best epoch {curve}, want {want} (the curve set)')
# and every run was given those sets (on the tiny corpus most models predict
# one class, so the subset's UAR is often the whole set's: the arguments are
# what tells the sets apart)
import glob
for path in sorted(glob.glob(os.path.join(runs, 's*', '*.args'))):
    run = os.path.basename(path)[:-5]
    args = open(path).read().split()
    opt = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i] in ('--test', '--final-test', '--dev')}
    band = os.path.dirname(opt.get('--dev', ''))
    if run.startswith('up-'):
        want = {'--final-test': os.path.join(band, os.path.basename(opt['--dev']).replace('Validation', 'Test1'))}
    else:
        want = {'--test': os.path.join(band, 'Test1-every2.arousal.ms'), '--final-test': os.path.join(band, 'Test1.arousal.ms')}
    got = {k: v for k, v in opt.items() if k != '--dev'}
    if got != want: bad.append(f'{path}: test sets {got}, want {want}')
for b in bad:
    print('FAIL:', b)
sys.exit(1 if bad else 0)
PY

# CURVE_EVERY=1 (SIZE=full's): the curve is all of Test1 and gives the cell's
# number, so no run is given --final-test for it (Test1 loaded and scored
# twice); the upstream runs keep theirs.  The job lists alone (nothing run).
"${mk[@]}" OUT="$PWD/out1" CURVE_EVERY=1 --eval 'jobs-only: ; @:' jobs-only >log1 2>&1 || { cat log1; fail "job lists of CURVE_EVERY=1"; }
t1=$PWD/out1/feat/main/clean/Test1.arousal.ms
down=$(grep -h -E 'runs/s[0-9]+/(t1|sw)-' out1/jobs/stage1.txt out1/jobs/stage2.txt)
up=$(grep -h -E 'runs/s[0-9]+/up-' out1/jobs/stage1.txt)
[ -n "$down" ] && [ -n "$up" ] || fail "CURVE_EVERY=1: no job lines"
grep -q -- '--final-test' <<<"$down" && fail "CURVE_EVERY=1: a Table 1 or sweep run has --final-test: $(grep -m1 -- --final-test <<<"$down")"
grep -q -- "--test $t1 " <<<"$down" || fail "CURVE_EVERY=1: t1 runs do not score all of Test1 every epoch"
grep -v -q -- '--final-test' <<<"$up" && fail "CURVE_EVERY=1: an upstream run lacks --final-test"

# report.py compare (make compare): a run beside itself agrees everywhere; a copy
# with one cell moved outside its interval, one cell gone and one verdict turned is caught.
"${mk[@]}" compare WITH="$PWD/out" >log5 2>&1 || { cat log5; fail "make compare"; }
mkdir -p moved && cp out/table1.md out/sweep.md out/findings.md moved/
$PYTHON - out moved <<'PY'
import os, re, subprocess, sys
out, moved = sys.argv[1], sys.argv[2]
def fail(m):
    print('FAIL:', m); sys.exit(1)
same = open(os.path.join(out, 'compare.md'), encoding='utf-8').read()
n_cells = sum(len(re.findall(r'\d \[[-+]?\d+\.\d+, [-+]?\d+\.\d+\]', l)) for name in ('table1.md', 'sweep.md')
              for l in open(os.path.join(out, name), encoding='utf-8') if l.startswith('|'))
n_find = sum(1 for l in open(os.path.join(out, 'findings.md'), encoding='utf-8')
             if l.startswith('|') and l.rstrip().endswith(('reproduced |', 'contradicted |', 'inconclusive |')))
want = (f'Cells: {n_cells} in both; |B - A| mean 0.00, max 0.00 points; each mean inside the other run\'s interval: '
        f'{n_cells} of {n_cells}.')
if want not in same or f'Findings: {n_find} in both; the same verdict: {n_find}; reversed' not in same:
    fail(f'compare of a run with itself: {same[:600]!r}; want {n_cells} cells, {n_find} findings')
# move Table 1's first cell 50 points (outside both intervals), turn the first finding's verdict
t1 = open(os.path.join(moved, 'table1.md'), encoding='utf-8').read()
m = re.search(r'\| (-?\d+\.\d+) \[', t1)
t1 = t1[:m.start(1)] + f'{float(m.group(1)) + 50:.2f}' + t1[m.end(1):]
open(os.path.join(moved, 'table1.md'), 'w', encoding='utf-8').write(t1)
sw = [l for l in open(os.path.join(moved, 'sweep.md'), encoding='utf-8') if not l.startswith('| clean (baseline) |')]
open(os.path.join(moved, 'sweep.md'), 'w', encoding='utf-8').writelines(sw)  # one cell gone from B
fi = open(os.path.join(moved, 'findings.md'), encoding='utf-8').read().splitlines(keepends=True)
k = next(i for i, l in enumerate(fi) if l.rstrip().endswith(('reproduced |', 'contradicted |', 'inconclusive |')))
claim = fi[k].split('|')[1].strip()
fi[k] = re.sub(r'`?\w+`? \|\s*$', 'reproduced |\n', fi[k])
open(os.path.join(moved, 'findings.md'), 'w', encoding='utf-8').writelines(fi)
fo = list(fi)
fo[k] = re.sub(r'reproduced \|\s*$', 'contradicted |\n', fi[k])
os.makedirs('flipped', exist_ok=True)
for name in ('table1.md', 'sweep.md'):
    open(os.path.join('flipped', name), 'w', encoding='utf-8').write(open(os.path.join(out, name), encoding='utf-8').read())
open(os.path.join('flipped', 'findings.md'), 'w', encoding='utf-8').writelines(fo)
r = subprocess.run([os.environ['PYTHON'], os.path.join(os.environ['SERTOOLS_SRC'], 'pipelines', 'report.py'),
                    'compare', 'flipped', moved], capture_output=True, text=True)
if r.returncode != 0:
    fail(f'report.py compare: {r.stderr}')
c = r.stdout
if f'Cells: {n_cells - 1} in both' not in c or '| sweep.md | clean (baseline) | scratch |' not in c \
        or '| - | | only in A |' not in c:
    fail(f'a cell missing from B was not listed: {c!r}')
if f'each mean inside the other run\'s interval: {n_cells - 2} of {n_cells - 1}.' not in c or '| +50.00 | no |' not in c:
    fail(f'a cell moved by 50 points was not caught: {c[:800]!r}')
if 'reversed (reproduced on one side, contradicted on the other): 1.' not in c \
        or not re.search(re.escape(claim) + r' \|.*`contradicted` \|.*`reproduced` \| REVERSED \|', c):
    fail(f'a reversed verdict was not caught: {c!r}')
PY

# Nothing left to do.
"${mk[@]}" -q all || fail "make -q: a second run would do something"

# Lose one finished run (as if it had been interrupted before it ended):
# only it is trained again, and the table is rebuilt.
before=$(stat -c %Y out/runs/s1/t1-random/summary.tsv out/runs/s2/sw-ft-400/summary.tsv)
rm -rf out/runs/s1/t1-voxceleb-linear out/runs/s1/t1-voxceleb-linear.args
sleep 1
"${mk[@]}" all >log2 2>&1 || { tail -30 log2; fail "make after losing a run"; }
[ -s out/runs/s1/t1-voxceleb-linear/summary.tsv ] || fail "the lost run was not redone"
grep -q 's1/t1-voxceleb-linear: started' log2 || fail "the lost run was not started again"
n=$(grep -c ': started' log2 || true)
[ "$n" = 1 ] || fail "$n runs started again, expected 1"
[ "$(stat -c %Y out/runs/s1/t1-random/summary.tsv out/runs/s2/sw-ft-400/summary.tsv)" = "$before" ] \
  || fail "finished runs were touched"
"${mk[@]}" -q all || fail "make -q after the re-run"

# make -n with other variables changes nothing (it used to rewrite the job
# lists, and a study running in the same OUT then ran the rewritten list:
# fewer seeds, exit 0).
cp out/jobs/stage2.txt jobs2.before
"${mk[@]}" -n SEEDS=1 SWEEP_SEEDS=1 all >log5 2>&1 || { tail -5 log5; fail "make -n with other seeds"; }
cmp -s jobs2.before out/jobs/stage2.txt || fail "make -n rewrote the job list"
# A stage whose list another make has rewritten is refused when it starts
# (the other make simulated: NEED_JOBS= keeps this one from writing it).
echo "$PWD/other-make-job" > out/jobs/stage2.txt
rc=0; "${mk[@]}" NEED_JOBS= stage2 >log6 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q 'jobs/stage2.txt: another make in this OUT has rewritten it' log6 || fail "a rewritten job list was run: exit $rc"
grep -q other-make-job log6 && fail "the rewritten job list was run"
cp jobs2.before out/jobs/stage2.txt

# Settings changed under a finished run are refused, not silently mixed.
rc=0; "${mk[@]}" EPOCHS=3 stage1 >log3 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q 'made with other arguments' log3 || fail "EPOCHS changed under finished runs: exit $rc"
# Too many jobs x threads for this machine is refused.
rc=0; "${mk[@]}" JOBS=$(( $(nproc) + 1 )) all >log4 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q 'more than the' log4 || fail "JOBS x THREADS above the cores accepted"
echo ok
