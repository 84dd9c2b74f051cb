#!/usr/bin/python3
"""Tables and figure data of the study, from the run directories.

  report.py table1   --runs DIR --seeds S [settings]  Table 1 (markdown), paper beside it
  report.py sweep    --runs DIR --seeds S [settings]  the bandwidth sweep (markdown)
  report.py findings --runs DIR --seeds S --dist DIR [settings]  the paper's claims, with verdicts
  report.py stats    --csv CSV --out OUT STATS.json   corpus statistics beside the paper's
  report.py curves   --runs DIR --seeds S RUN...      per-epoch test UAR, mean and interval over seeds
  report.py gap      --runs DIR --seeds S --widths W  Fig 2b's second panel: fine-tuned - scratch per width
  report.py dist     DIST.tsv...                      wdist tables side by side (best, last)
  report.py compare  A B                               two study outputs cell by cell, verdict by verdict

A run is DIR/sSEED/NAME, cnn-train's run directory: summary.tsv (best_epoch
dev_uar test_uar epochs) and log.tsv (one row per epoch).  A missing or
malformed file is an error naming it (exit 2).

Statistics.  Every cell is over the seeds S (training seeds; the corpus is
the same): the mean, its 95 % confidence interval from Student's t with
n - 1 degrees of freedom (mean +- t * sd / sqrt(n)), and the median best
epoch.  A comparison (a finding, the sweep's gap) is paired: the difference
is taken within each seed (the same seed on both sides, which shares the
corpus, the crops' order and the upstream model of that seed), and the
interval is that of the mean difference.  The verdict of a claim "X > 0" is
`reproduced` when the interval lies above 0, `contradicted` when it lies
below, `inconclusive` when it contains 0 (or there is one seed).

Comparing two runs of the study (compare).  A and B are output directories
(an OUT, or pipelines/results[/medium]) holding table1.md, sweep.md and
findings.md as written here.  Runs on machines whose BLAS kernels round
differently do not give the same digits (README, Reproducibility), so the
comparison is of intervals: per cell (same table, row and column) the two
means, B - A, and whether each mean lies inside the other run's interval;
per finding the two verdicts, and whether they agree or are reversed
(`reproduced` on one side, `contradicted` on the other).  A cell or finding
found on one side only is listed as such.
"""
import argparse
import json
import math
import os
import re
import sys

# Triantafyllopoulos & Schuller 2021, Table 1: test UAR % (best dev epoch)
PAPER_T1 = {
    ('random', 'all'): (68.76, 58),
    ('iemocap', 'all'): (67.95, 16), ('iemocap', 'linear'): (61.15, 23),
    ('audioset', 'all'): (65.47, 28), ('audioset', 'linear'): (58.62, 2),
    ('voxceleb', 'all'): (67.36, 6), ('voxceleb', 'linear'): (62.45, 9),
    ('valence', 'all'): (62.24, 56), ('valence', 'linear'): (44.61, 53),
    ('dominance', 'all'): (67.97, 13), ('dominance', 'linear'): (65.29, 20),
}
# Section 4: the upstream models' own scores (% at the best validation epoch)
PAPER_UP = {'iemocap': '64 (33), UAR, validation', 'voxceleb': '64 (92), accuracy, validation',
            'events': 'released weights (mAP 0.438)', 'valence': '63.56 (52), UAR',
            'dominance': '54.87 (33), UAR'}
COLUMNS = [('random', 'Random'), ('iemocap', 'IEMOCAP (arousal)'),
           ('audioset', 'AudioSet (audio tagging)'), ('voxceleb', 'VoxCeleb1 (speaker identification)'),
           ('valence', 'MSP-Podcast (valence)'), ('dominance', 'MSP-Podcast (dominance)')]


def fail(msg):
    print(f'report.py: {msg}', file=sys.stderr)
    sys.exit(2)


def read_tsv(path):
    try:
        with open(path, encoding='utf-8') as f:
            lines = [l.rstrip('\n').split('\t') for l in f if l.strip()]
    except OSError as e:
        fail(f'{path}: {e.strerror}')
    if len(lines) < 2 or any(len(l) != len(lines[0]) for l in lines):
        fail(f'{path}: not a table with a header and rows of equal width')
    return lines[0], lines[1:]


def summary(runs, name):
    path = os.path.join(runs, name, 'summary.tsv')
    head, rows = read_tsv(path)
    try:
        r = dict(zip(head, rows[0]))
        return {'best': int(r['best_epoch']), 'dev': 100 * float(r['dev_uar']),
                'test': 100 * float(r['test_uar']), 'epochs': int(r['epochs'])}
    except (KeyError, ValueError):
        fail(f'{path}: no best_epoch, dev_uar, test_uar, epochs')


def log(runs, name):
    path = os.path.join(runs, name, 'log.tsv')
    head, rows = read_tsv(path)
    try:
        e, t = head.index('epoch'), head.index('test_uar')
        return [(int(r[e]), 100 * float(r[t])) for r in rows]
    except ValueError:
        fail(f'{path}: no epoch or test_uar column, or a value that is not a number')


# Two-sided 95 % Student t quantiles t(0.975, df), df = 1..30 (scipy.stats.t.ppf; beyond 30: 1.96).
T975 = [12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581837, 2.446911849, 2.364624251,
        2.306004135, 2.262157163, 2.228138852, 2.200985160, 2.178812830, 2.160368656, 2.144786688,
        2.131449546, 2.119905299, 2.109815578, 2.100922040, 2.093024054, 2.085963447, 2.079613845,
        2.073873068, 2.068657610, 2.063898562, 2.059538553, 2.055529439, 2.051830516, 2.048407142,
        2.045229642, 2.042272456]


def interval(xs):
    """(mean, half-width of the 95 % t interval) of xs; half-width None for one value."""
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, None
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return m, (T975[n - 2] if n - 1 <= len(T975) else 1.96) * sd / math.sqrt(n)


def verdict(xs):
    """The verdict on the claim 'the mean of xs is > 0' (module docstring)."""
    m, h = interval(xs)
    if h is None or m - h <= 0 <= m + h:
        return 'inconclusive'
    return 'reproduced' if m > 0 else 'contradicted'


def fmt_interval(xs, signed=False, digits=2):
    m, h = interval(xs)
    f = f'{{:{"+" if signed else ""}.{digits}f}}'
    if h is None:
        return f.format(m)
    return f.format(m) + f' [{f.format(m - h)}, {f.format(m + h)}]'


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def over_seeds(a, name):
    """The summaries of run NAME for every seed of a.seeds."""
    return [summary(os.path.join(a.runs, f's{seed}'), name) for seed in a.seeds.split()]


def cell(ss, key='test'):
    """mean [95 % interval] (median best epoch) of summaries ss."""
    med = median([s['best'] for s in ss])
    return f'{fmt_interval([s[key] for s in ss])} ({med:g})'


def run_classes(path):
    """Class count of a checkpoint, from its header (params.model.classes)."""
    try:
        import msgpack
        with open(path, 'rb') as f:
            header = next(iter(msgpack.Unpacker(f, raw=False, max_buffer_size=1 << 20)))
        return int(header['params']['model']['classes'])
    except (OSError, ValueError, KeyError, TypeError, StopIteration, ImportError) as e:
        fail(f'{path}: no class count in its header ({e})')


def settings(a):
    return (f'Embedded corpus size `{a.size}`, {a.epochs} epochs ({a.up_epochs} for the upstream models'
            f'{f", {a.vox_epochs} for the speaker model" if a.vox_epochs else ""}), '
            f'Cnn14 with channels / {a.width_div}{"" if a.dropout == "yes" else " without dropout"}, '
            f'SGD lr 0.001, Nesterov 0.9, batch 8, class-balanced NLL; AudioSet role: {a.audioset}. '
            f'Test UAR % at the best validation epoch: the mean over the training seeds {a.seeds.split()} '
            f'[95 % t interval] (the median best epoch); chance is 33.33 %. '
            f'The paper: full Cnn14, 60 epochs, MSP-Podcast v1.7, one run per cell.')


def table1(a):
    t = ['# Table 1: arousal UAR % on the test split\n', settings(a), '',
         '| Initialisation | ' + ' | '.join(c for _, c in COLUMNS) + ' |',
         '| --- ' * (len(COLUMNS) + 1) + '|']
    for mode, label in (('all', 'All layers'), ('linear', 'Linear only')):
        ours, paper = [], []
        for key, _ in COLUMNS:
            if key == 'random':
                ours.append(cell(over_seeds(a, 't1-random')) if mode == 'all' else '-')
            else:
                ours.append(cell(over_seeds(a, f't1-{key}-{mode}')))
            p = PAPER_T1.get((key, mode))
            paper.append(f'{p[0]:.2f} ({p[1]})' if p else '-')
        t.append(f'| {label} | ' + ' | '.join(ours) + ' |')
        t.append(f'| {label}, paper | ' + ' | '.join(paper) + ' |')
    base = baseline_uar(a)
    if base is not None:
        t += ['', f'Trivial reference: logistic regression on the mean and spread of each log-Mel band '
              f'(pipelines/baseline.py, same features and splits): **{base:.2f} %** test UAR. '
              f'A cell below it has learned less than the band energies tell.']
    t += ['', '## Upstream pre-training (dev and test UAR % at the best dev epoch, mean [95 % interval] over seeds)', '',
          '| model | task | classes (chance %) | dev | test | best epoch (median) / epochs | goal (dev) | paper |',
          '| --- | --- | --- | --- | --- | --- | --- | --- |']
    tasks = {'iemocap': 'arousal (1-5 scale, edges 2,4)', 'voxceleb': 'speaker identification (UAR)',
             'events': 'sound-event family (AudioSet role)', 'valence': 'MSP valence', 'dominance': 'MSP dominance'}
    for u in ('iemocap', 'voxceleb', 'events', 'valence', 'dominance'):
        first = os.path.join(a.runs, f's{a.seeds.split()[0]}', f'up-{u}')
        if not os.path.exists(os.path.join(first, 'summary.tsv')):
            continue
        ss = over_seeds(a, f'up-{u}')
        k = run_classes(os.path.join(first, 'best.ckpt'))
        med = median([s['best'] for s in ss])
        t.append(f'| up-{u} | {tasks[u]} | {k} ({100 / k:.1f}) | {fmt_interval([s["dev"] for s in ss])} | '
                 f'{fmt_interval([s["test"] for s in ss])} | {med:g} / {ss[0]["epochs"]} | '
                 f'{upstream_goal(k, [s["dev"] for s in ss])} | {PAPER_UP[u]} |')
    return '\n'.join(t) + '\n'


def upstream_goal(classes, devs):
    """Has an upstream model learned its task?  The goal of issue 16: a mean dev
    UAR of at least 3x chance for many classes, 50 % (1.5x chance) for three."""
    goal = 50.0 if classes <= 3 else 3 * 100 / classes
    return f'≥ {goal:.1f}: {"met" if sum(devs) / len(devs) >= goal else "not met"}'


def sweep(a):
    widths = a.widths.split()
    seeds = a.sweep_seeds or a.seeds
    sa = argparse.Namespace(**dict(vars(a), seeds=seeds))
    t = ['# Bandwidth sweep: arousal UAR % on band-passed audio (4th-order Butterworth, centre 500 Hz)\n',
         settings(sa), f'Seeds of the sweep: {seeds.split()}' +
         (f' (fewer than Table 1\'s {a.seeds.split()}, to fit the budget).' if seeds != a.seeds else '.') +
         (f' Widths: {len(widths)} of the paper\'s 8 (20-400 Hz), to fit the budget: fewer widths with '
          'seeds rather than all widths without.' if len(widths) < 8 else ''),
         'Scratch: trained from random initialisation on the band-passed features; '
         'fine-tuned: all layers, starting from the clean baseline\'s best checkpoint of the same seed. '
         'The gap is paired within seeds. '
         'The paper gives these only as curves (its Fig 2b), so there is no number to put beside them.', '',
         '| bandwidth (Hz) | scratch | fine-tuned from clean | fine-tuned − scratch |',
         '| --- | --- | --- | --- |']
    for w in widths:
        sc, ft = over_seeds(sa, f'sw-scratch-{w}'), over_seeds(sa, f'sw-ft-{w}')
        gap = [f['test'] - s['test'] for s, f in zip(sc, ft)]
        t.append(f'| {w} | {cell(sc)} | {cell(ft)} | {fmt_interval(gap, signed=True)} |')
    t.append(f'| clean (baseline) | {cell(over_seeds(sa, "t1-random"))} | | |')
    return '\n'.join(t) + '\n'


INIT_NAMES = dict(COLUMNS)


def early_minus_late(path):
    """dist(first conv layer) - dist(last conv layer) at the best checkpoint, from a wdist table."""
    head, rows = read_tsv(path)
    convs = [r for r in rows if r[0].startswith('conv_block')]
    try:
        return float(convs[0][1]) - float(convs[-1][1])
    except (IndexError, ValueError):
        fail(f'{path}: no distances of the first and last convolution layers')


def baseline_uar(a):
    """The trivial model's test UAR % (baseline.py), or None without --baseline."""
    if not a.baseline:
        return None
    head, rows = read_tsv(a.baseline)
    try:
        return 100 * float(dict(zip(head, rows[0]))['uar'])
    except (KeyError, ValueError):
        fail(f'{a.baseline}: no uar column')


def findings(a):
    """One row per claim of the paper: the paper's number, ours [95 % interval], the verdict."""
    seeds, sw_seeds = a.seeds.split(), (a.sweep_seeds or a.seeds).split()
    widths = a.widths.split()
    inits = [k for k, _ in COLUMNS if k != 'random']
    S = {name: over_seeds(a, name) for name in ['t1-random'] + [f't1-{i}-{m}' for i in inits for m in ('all', 'linear')]}
    sa = argparse.Namespace(**dict(vars(a), seeds=' '.join(sw_seeds)))
    rows = []

    def row(claim, paper, xs, digits=2):
        rows.append(f'| {claim} | {paper} | {fmt_interval(xs, signed=True, digits=digits)} | {verdict(xs)} |')

    rnd = S['t1-random']
    base = baseline_uar(a)
    if base is not None:
        row(f'The Cnn14 baseline beats a trivial model: Random − logistic regression on band statistics '
            f'({base:.2f} %), UAR points', 'not reported', [r['test'] - base for r in rnd])
    paper_speed = PAPER_T1[('random', 'all')][1] - sum(PAPER_T1[(i, 'all')][1] for i in inits) / len(inits)
    row('Pre-training speeds up convergence: best epoch of Random − mean best epoch of the five '
        'initialisations (all layers)', f'{paper_speed:+.1f} epochs',
        [rnd[j]['best'] - sum(S[f't1-{i}-all'][j]['best'] for i in inits) / len(inits) for j in range(len(seeds))])
    for i in inits:
        p = PAPER_T1[('random', 'all')][0] - PAPER_T1[(i, 'all')][0]
        row(f'No initialisation beats the baseline: Random − {INIT_NAMES[i]} (all layers), UAR points',
            f'{p:+.2f}', [r['test'] - x['test'] for r, x in zip(rnd, S[f't1-{i}-all'])])
    for i in inits:
        p = PAPER_T1[(i, 'all')][0] - PAPER_T1[(i, 'linear')][0]
        row(f'All layers beat linear only: {INIT_NAMES[i]}, all − linear, UAR points', f'{p:+.2f}',
            [x['test'] - y['test'] for x, y in zip(S[f't1-{i}-all'], S[f't1-{i}-linear'])])
    narrow, wide = min(widths, key=float), max(widths, key=float)
    sc = {w: over_seeds(sa, f'sw-scratch-{w}') for w in widths}
    ft = {w: over_seeds(sa, f'sw-ft-{w}') for w in widths}
    row(f'A wider band gives a higher UAR: scratch at {wide} Hz − at {narrow} Hz, UAR points',
        'yes (Fig 2b, no number)', [x['test'] - y['test'] for x, y in zip(sc[wide], sc[narrow])])
    # the paper's Fig 2b: the gain is at the narrow bands (here: up to 100 Hz)
    narrows = [w for w in widths if float(w) <= 100] or [narrow]
    row(f'Fine-tuning from clean helps at narrow bands: fine-tuned − scratch, mean over '
        f'{", ".join(narrows)} Hz, UAR points', 'yes (Fig 2b, no number)',
        [sum(ft[w][j]['test'] - sc[w][j]['test'] for w in narrows) / len(narrows) for j in range(len(sw_seeds))])
    row('Earlier layers adapt more (Fig 3a): cosine distance of the first − the last convolution layer, '
        'best checkpoint, mean over the five initialisations (all layers)', 'yes (Fig 3a, no number)',
        [sum(early_minus_late(os.path.join(a.dist, f's{s}', f't1-{i}-all.tsv')) for i in inits) / len(inits)
         for s in seeds], digits=4)
    row('Earlier layers adapt more when fine-tuning clean → band-passed (Fig 3b): first − last '
        'convolution layer, mean over the widths', 'yes (Fig 3b, no number)',
        [sum(early_minus_late(os.path.join(a.dist, f's{s}', f'sw-ft-{w}.tsv')) for w in widths) / len(widths)
         for s in sw_seeds], digits=4)
    t = ['# Findings: the paper\'s claims, tested\n', settings(a),
         f'Each row is a claim that a difference is positive. Ours: the mean difference over the training seeds '
         f'{seeds} (sweep rows: {sw_seeds}), paired within each seed, with its 95 % t interval. Verdict: '
         '`reproduced` when the interval lies above 0, `contradicted` when below, `inconclusive` when it '
         'contains 0 or there is one seed.', '',
         '| claim | paper | ours [95 % interval] | verdict |', '| --- | --- | --- | --- |'] + rows
    return '\n'.join(t) + '\n'


def stats(a):
    try:
        with open(a.json, encoding='utf-8') as f:
            j = json.load(f)
    except (OSError, ValueError) as e:
        fail(f'{a.json}: {e}')
    where = os.path.relpath(os.path.abspath(a.csv), os.path.abspath(a.out))
    t = ['# Corpus statistics (binlabels --stats)\n', f'Label file: `{where}` (relative to the output directory); '
         'bins low [1, 3], mid (3, 5), high [5, 7].', '',
         '| split | rows | arousal low/mid/high % | valence low/mid/high % | dominance low/mid/high % | r(A,V) | r(A,D) | r(V,D) |',
         '| --- | --- | --- | --- | --- | --- | --- | --- |']

    def pct(d):
        return '/'.join(f'{p:.1f}' for p in d['pct']) if d['n'] else '-'

    def r(x):
        return '-' if x is None or (isinstance(x, float) and math.isnan(x)) else f'{x:.4f}'
    try:
        for s in j['splits']:
            t.append(f'| {s["split"]} | {s["rows"]} | {pct(s["arousal"])} | {pct(s["valence"])} | '
                     f'{pct(s["dominance"])} | {r(s["r"]["av"])} | {r(s["r"]["ad"])} | {r(s["r"]["vd"])} |')
    except (KeyError, TypeError):
        fail(f'{a.json}: not binlabels --stats -j output')
    t.append('| paper: MSP-Podcast v1.7 Train | | 9/67/24 | | | 0.2412 | 0.7953 | |')
    return '\n'.join(t) + '\n'


DISPLAY = {'random': 'Random', 'iemocap': 'IEMOCAP', 'audioset': 'AudioSet stand-in (events)',
           'voxceleb': 'VoxCeleb1 stand-in', 'valence': 'MSP valence', 'dominance': 'MSP dominance'}


def display_name(run, audioset='AudioSet stand-in (events)'):
    """What a figure calls a run: 'IEMOCAP (all layers)', 'fine-tuned, 20 Hz', not a run id."""
    names = dict(DISPLAY, audioset=audioset)
    parts = run.split('-')
    if run == 't1-random':
        return 'Random (from scratch)'
    if parts[0] == 't1' and len(parts) == 3 and parts[1] in names:
        return f'{names[parts[1]]} ({"all layers" if parts[2] == "all" else "linear only"})'
    if parts[0] == 'sw' and len(parts) == 3:
        return f'{"from scratch" if parts[1] == "scratch" else "fine-tuned from clean"}, {parts[2]} Hz'
    return run


def curves(a):
    """Per epoch and run, the mean test UAR over the seeds and its 95 % t interval.

    Columns: epoch, then for each run its display name (the mean), 'lo' and
    'hi'; the interval is the mean's when there are two seeds or more, the
    value itself otherwise.  Only the epochs every seed reached are shown."""
    data = {}
    for n in a.names:
        per_seed = [dict(log(os.path.join(a.runs, f's{seed}'), n)) for seed in a.seeds.split()]
        data[n] = {}
        for e in set.intersection(*(set(d) for d in per_seed)):
            m, h = interval([d[e] for d in per_seed])
            data[n][e] = (m, m - (h or 0), m + (h or 0))
    epochs = sorted(set().union(*data.values()))
    head = ['epoch']
    for n in a.names:
        head += [display_name(n, a.audioset), 'lo', 'hi']
    out = ['\t'.join(head)]
    for e in epochs:
        cells = [str(e)]
        for n in a.names:
            cells += [f'{v:.4f}' for v in data[n][e]] if e in data[n] else ['NaN'] * 3
        out.append('\t'.join(cells))
    return '\n'.join(out) + '\n'


def gap(a):
    """Per width: the fine-tuned − scratch test UAR, paired within seeds, mean and 95 % interval."""
    out = ['width\tgap\tlo\thi']
    for w in a.widths.split():
        sc, ft = over_seeds(a, f'sw-scratch-{w}'), over_seeds(a, f'sw-ft-{w}')
        m, h = interval([f['test'] - s['test'] for s, f in zip(sc, ft)])
        out.append(f'{w}\t{m:.4f}\t{m - (h or 0):.4f}\t{m + (h or 0):.4f}')
    return '\n'.join(out) + '\n'


def dist(a):
    tables, layers = [], None
    for p in a.files:
        head, rows = read_tsv(p)
        if len(head) != 3:
            fail(f'{p}: expected wdist output for two checkpoints (best, last)')
        names = [r[0] for r in rows]
        if layers is None:
            layers = names
        elif names != layers:
            fail(f'{p}: other layers than {a.files[0]}')
        tables.append(rows)
    out = ['index\tlayer\t' + '\t'.join(f'{os.path.basename(p)[:-4]}:best\t{os.path.basename(p)[:-4]}:last'
                                        for p in a.files)]
    for i, name in enumerate(layers):
        vals = []
        for rows in tables:
            vals += ['NaN' if v == 'NA' else v for v in rows[i][1:]]
        out.append(f'{i + 1}\t{name}\t' + '\t'.join(vals))
    return '\n'.join(out) + '\n'


MD_CELL = re.compile(r'^([-+]?\d+(?:\.\d+)?) \[([-+]?\d+(?:\.\d+)?), ([-+]?\d+(?:\.\d+)?)\]')
VERDICTS = ('reproduced', 'contradicted', 'inconclusive')


def md_tables(path):
    """The markdown tables of file path: for each, (header cells, rows of cells)."""
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except OSError as e:
        fail(f'{path}: {e.strerror}')
    tables, cur = [], None
    for line in lines:
        if not line.startswith('|'):
            cur = None
            continue
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if cur is None:
            cur = (cells, [])
            tables.append(cur)
        elif not all(set(c) <= set('-: ') for c in cells):
            cur[1].append(cells)
    return tables


def md_cells(out):
    """{(file, row, column): (mean, lo, hi)} of every 'mean [lo, hi]' cell of table1.md and sweep.md in out."""
    cells = {}
    for name in ('table1.md', 'sweep.md'):
        for head, rows in md_tables(os.path.join(out, name)):
            for r in rows:
                for col, c in zip(head[1:], r[1:]):
                    m = MD_CELL.match(c)
                    if m:
                        cells[(name, r[0], col)] = tuple(map(float, m.groups()))
    return cells


def md_findings(out):
    """{claim: (estimate, verdict)} of findings.md in out."""
    found = {}
    for head, rows in md_tables(os.path.join(out, 'findings.md')):
        if head[:1] == ['claim'] and head[-1:] == ['verdict']:
            found.update({r[0]: (r[-2], r[-1]) for r in rows if r[-1] in VERDICTS})
    if not found:
        fail(f'{os.path.join(out, "findings.md")}: no findings table')
    return found


def fmt_cell(c):
    return f'{c[0]:.2f} [{c[1]:.2f}, {c[2]:.2f}]'


def fmt_finding(f):
    return f'{f[0]} `{f[1]}`' if f else '-'


def compare(a):
    ca, cb = md_cells(a.a), md_cells(a.b)
    fa, fb = md_findings(a.a), md_findings(a.b)
    both = [k for k in ca if k in cb]
    inside = {k for k in both if ca[k][1] <= cb[k][0] <= ca[k][2] and cb[k][1] <= ca[k][0] <= cb[k][2]}
    diffs = [abs(cb[k][0] - ca[k][0]) for k in both]
    claims = [k for k in fa if k in fb]
    agree = [k for k in claims if fa[k][1] == fb[k][1]]
    reversed_ = {k for k in claims if {fa[k][1], fb[k][1]} == {'reproduced', 'contradicted'}}
    out = [f'# Two runs of the study compared\n\nA: `{a.a}`  \nB: `{a.b}`\n']
    if both:
        out.append(f'Cells: {len(both)} in both; |B - A| mean {sum(diffs) / len(diffs):.2f}, max {max(diffs):.2f} '
                   f'points; each mean inside the other run\'s interval: {len(inside)} of {len(both)}.  ')
    else:
        out.append('Cells: none in both.  ')
    out.append(f'Findings: {len(claims)} in both; the same verdict: {len(agree)}; '
               f'reversed (reproduced on one side, contradicted on the other): {len(reversed_)}.\n')
    out.append('| table | row | column | A | B | B − A | each inside the other\'s interval |')
    out.append('| --- | --- | --- | --- | --- | --- | --- |')
    for k in both:
        out.append(f'| {k[0]} | {k[1]} | {k[2]} | {fmt_cell(ca[k])} | {fmt_cell(cb[k])} | '
                   f'{cb[k][0] - ca[k][0]:+.2f} | {"yes" if k in inside else "no"} |')
    out += [f'| {k[0]} | {k[1]} | {k[2]} | {fmt_cell(ca[k])} | - | | only in A |' for k in ca if k not in cb]
    out += [f'| {k[0]} | {k[1]} | {k[2]} | - | {fmt_cell(cb[k])} | | only in B |' for k in cb if k not in ca]
    out.append('\n| claim | A | B | verdicts |')
    out.append('| --- | --- | --- | --- |')
    for k in list(fa) + [k for k in fb if k not in fa]:
        va, vb = fa.get(k), fb.get(k)
        what = ('only in A' if vb is None else 'only in B' if va is None else 'the same' if va[1] == vb[1]
                else 'REVERSED' if k in reversed_ else 'differ')
        out.append(f'| {k} | {fmt_finding(va)} | {fmt_finding(vb)} | {what} |')
    return '\n'.join(out) + '\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    for c in ('table1', 'sweep', 'findings'):
        p = sub.add_parser(c)
        p.add_argument('--runs', required=True)
        p.add_argument('--seeds', default='1')
        p.add_argument('--sweep-seeds', default='')
        p.add_argument('--size', default='?')
        p.add_argument('--epochs', default='?')
        p.add_argument('--up-epochs', default='?')
        p.add_argument('--vox-epochs', default='')
        p.add_argument('--width-div', default='?')
        p.add_argument('--dropout', default='yes', choices=('yes', 'no'))
        p.add_argument('--widths', default='20 40 60 80 100 200 300 400')
        p.add_argument('--audioset', default='the events stand-in model')
        if c == 'findings':
            p.add_argument('--dist', required=True, help='the wdist tables, DIST/sSEED/RUN.tsv')
        if c != 'sweep':
            p.add_argument('--baseline', help="baseline.py's output: the trivial model's test UAR")
    p = sub.add_parser('stats')
    p.add_argument('--csv', required=True)
    p.add_argument('--out', required=True, help='the output directory the label file is shown relative to')
    p.add_argument('json')
    p = sub.add_parser('curves')
    p.add_argument('--runs', required=True)
    p.add_argument('--seeds', default='1')
    p.add_argument('--audioset', default='AudioSet stand-in (events)', help='what the AudioSet role is called')
    p.add_argument('names', nargs='+')
    p = sub.add_parser('gap')
    p.add_argument('--runs', required=True)
    p.add_argument('--seeds', default='1')
    p.add_argument('--widths', required=True)
    p = sub.add_parser('dist')
    p.add_argument('files', nargs='+')
    p = sub.add_parser('compare')
    p.add_argument('a', help='a study output directory (table1.md, sweep.md, findings.md)')
    p.add_argument('b', help='another one')
    a = ap.parse_args()
    sys.stdout.write({'table1': table1, 'sweep': sweep, 'findings': findings, 'stats': stats, 'curves': curves,
                      'gap': gap, 'dist': dist, 'compare': compare}[a.cmd](a))


if __name__ == '__main__':
    main()
