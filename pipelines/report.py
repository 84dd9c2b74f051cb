#!/usr/bin/python3
"""Tables and figure data of the study, from the run directories.

  report.py table1 --runs DIR [settings]      Table 1 (markdown), paper beside it
  report.py sweep  --runs DIR [settings]      the bandwidth sweep (markdown)
  report.py stats  --csv CSV STATS.json       corpus statistics beside the paper's
  report.py curves --runs DIR RUN...          per-epoch test UAR, one column per run
  report.py dist   DIST.tsv...                wdist tables side by side (best, last)

A run directory is cnn-train's: summary.tsv (best_epoch dev_uar test_uar
epochs) and log.tsv (one row per epoch).  A missing or malformed file is an
error naming it (exit 2).
"""
import argparse
import json
import math
import os
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


def cell(s):
    return f'{s["test"]:.2f} ({s["best"]})'


def settings(a):
    return (f'Embedded corpus size `{a.size}`, {a.epochs} epochs, Cnn14 with channels / {a.width_div}, '
            f'SGD lr 0.001, Nesterov 0.9, batch 8, class-balanced NLL; AudioSet role: {a.audioset}. '
            f'Test UAR % at the best validation epoch (the epoch in parentheses); '
            f'chance is 33.33 %. The paper: full Cnn14, 60 epochs, MSP-Podcast v1.7.')


def table1(a):
    t = [f'# Table 1: arousal UAR % on the test split\n', settings(a), '',
         '| Initialisation | ' + ' | '.join(c for _, c in COLUMNS) + ' |',
         '| --- ' * (len(COLUMNS) + 1) + '|']
    for mode, label in (('all', 'All layers'), ('linear', 'Linear only')):
        ours, paper = [], []
        for key, _ in COLUMNS:
            if key == 'random':
                ours.append(cell(summary(a.runs, 't1-random')) if mode == 'all' else '-')
            else:
                ours.append(cell(summary(a.runs, f't1-{key}-{mode}')))
            p = PAPER_T1.get((key, mode))
            paper.append(f'{p[0]:.2f} ({p[1]})' if p else '-')
        t.append(f'| {label} | ' + ' | '.join(ours) + ' |')
        t.append(f'| {label}, paper | ' + ' | '.join(paper) + ' |')
    t += ['', '## Upstream pre-training (dev and test score % at the best dev epoch)', '',
          '| model | task | dev | test | best epoch / epochs | paper |', '| --- | --- | --- | --- | --- | --- |']
    tasks = {'iemocap': 'arousal (1-5 scale, edges 2,4)', 'voxceleb': 'speaker identification (UAR)',
             'events': 'sound-event family (AudioSet role)', 'valence': 'MSP valence', 'dominance': 'MSP dominance'}
    for u in ('iemocap', 'voxceleb', 'events', 'valence', 'dominance'):
        if not os.path.exists(os.path.join(a.runs, f'up-{u}', 'summary.tsv')):
            continue
        s = summary(a.runs, f'up-{u}')
        t.append(f'| up-{u} | {tasks[u]} | {s["dev"]:.2f} | {s["test"]:.2f} | {s["best"]} / {s["epochs"]} | {PAPER_UP[u]} |')
    return '\n'.join(t) + '\n'


def sweep(a):
    widths = a.widths.split()
    base = summary(a.runs, 't1-random')
    t = ['# Bandwidth sweep: arousal UAR % on band-passed audio (4th-order Butterworth, centre 500 Hz)\n',
         settings(a), 'Scratch: trained from random initialisation on the band-passed features; '
         'fine-tuned: all layers, starting from the clean baseline\'s best checkpoint. '
         'The paper gives these only as curves (its Fig 2b), so there is no number to put beside them.', '',
         '| bandwidth (Hz) | scratch | fine-tuned from clean | fine-tuned − scratch |',
         '| --- | --- | --- | --- |']
    for w in widths:
        s, f = summary(a.runs, f'sw-scratch-{w}'), summary(a.runs, f'sw-ft-{w}')
        t.append(f'| {w} | {cell(s)} | {cell(f)} | {f["test"] - s["test"]:+.2f} |')
    t.append(f'| clean (baseline) | {cell(base)} | | |')
    return '\n'.join(t) + '\n'


def stats(a):
    try:
        with open(a.json, encoding='utf-8') as f:
            j = json.load(f)
    except (OSError, ValueError) as e:
        fail(f'{a.json}: {e}')
    t = ['# Corpus statistics (binlabels --stats)\n', f'Label file: `{a.csv}`; bins low [1, 3], mid (3, 5), high [5, 7].', '',
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


def curves(a):
    data = {n: dict(log(a.runs, n)) for n in a.names}
    epochs = sorted(set().union(*data.values()))
    out = ['epoch\t' + '\t'.join(a.names)]
    for e in epochs:
        out.append(f'{e}\t' + '\t'.join(f'{data[n][e]:.4f}' if e in data[n] else 'NaN' for n in a.names))
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    for c in ('table1', 'sweep'):
        p = sub.add_parser(c)
        p.add_argument('--runs', required=True)
        p.add_argument('--size', default='?')
        p.add_argument('--epochs', default='?')
        p.add_argument('--width-div', default='?')
        p.add_argument('--widths', default='20 40 60 80 100 200 300 400')
        p.add_argument('--audioset', default='the events stand-in model')
    p = sub.add_parser('stats')
    p.add_argument('--csv', required=True)
    p.add_argument('json')
    p = sub.add_parser('curves')
    p.add_argument('--runs', required=True)
    p.add_argument('names', nargs='+')
    p = sub.add_parser('dist')
    p.add_argument('files', nargs='+')
    a = ap.parse_args()
    sys.stdout.write({'table1': table1, 'sweep': sweep, 'stats': stats, 'curves': curves, 'dist': dist}[a.cmd](a))


if __name__ == '__main__':
    main()
