#!/usr/bin/python3
"""Class percentages and correlations of an MSP-Podcast style label CSV.

Usage: stats.py [--edges LO,HI] [--split NAME] [--json] CSV

For each split (Split_Set) and for all rows together, prints the count, the
percentage of low [1, LO], mid (LO, HI) and high [HI, 7] ratings of EmoAct,
EmoVal and EmoDom (the paper's binning with the default edges 3,5; a rating
equal to an edge belongs to the outer class), their means, and the Pearson
correlations r(A,V), r(A,D), r(V,D).  The paper reports, for MSP-Podcast's
training set, arousal 9/67/24 % and r(A,V) = 0.2412, r(A,D) = 0.7953.
Output is TSV; --json prints the same as one JSON object.

Example: stats.py --split Train corpus/main/Labels/labels_consensus.csv
"""
import argparse
import csv
import json
import sys

import numpy as np

DIMS = ('EmoAct', 'EmoVal', 'EmoDom')


def fail(msg):
    print(f'stats.py: {msg}', file=sys.stderr)
    sys.exit(2)


def read(path):
    try:
        with open(path, encoding='utf-8-sig', newline='') as f:
            rows = list(csv.reader(f))
    except OSError as e:
        fail(f'{path}: {e.strerror}')
    except UnicodeDecodeError as e:
        fail(f'{path}: not UTF-8: {e.reason}')
    if not rows:
        fail(f'{path}: empty file')
    head = rows[0]
    missing = [c for c in DIMS + ('Split_Set',) if c not in head]
    if missing:
        fail(f'{path}: no column {", ".join(missing)}')
    col = {c: head.index(c) for c in DIMS + ('Split_Set',)}
    values, splits = [], []
    for n, r in enumerate(rows[1:], 2):
        if not r:
            continue
        if len(r) != len(head):
            fail(f'{path}:{n}: {len(r)} fields, the header has {len(head)}')
        v = []
        for c in DIMS:
            try:
                x = float(r[col[c]])
            except ValueError:
                fail(f'{path}:{n}: {c}: "{r[col[c]]}" is not a number')
            if not 1.0 <= x <= 7.0:
                fail(f'{path}:{n}: {c}: {x:g} is outside [1, 7]')
            v.append(x)
        values.append(v)
        splits.append(r[col['Split_Set']])
    if not values:
        fail(f'{path}: no rows')
    return np.array(values), np.array(splits)


def summary(x, edges):
    out = {'n': len(x)}
    for i, c in enumerate(DIMS):
        low = float(np.mean(x[:, i] <= edges[0]) * 100)
        high = float(np.mean(x[:, i] >= edges[1]) * 100)
        out[c] = {'low': low, 'mid': 100.0 - low - high, 'high': high, 'mean': float(np.mean(x[:, i]))}
    with np.errstate(invalid='ignore', divide='ignore'):
        r = np.corrcoef(x.T) if len(x) > 1 else np.full((3, 3), np.nan)
    out['r(A,V)'], out['r(A,D)'], out['r(V,D)'] = (float(r[0, 1]), float(r[0, 2]), float(r[1, 2]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('csv')
    ap.add_argument('--edges', default='3,5')
    ap.add_argument('--split', action='append', help='only this split (repeatable)')
    ap.add_argument('--json', action='store_true')
    a = ap.parse_args()
    try:
        edges = tuple(float(e) for e in a.edges.split(','))
        if len(edges) != 2 or not 1 <= edges[0] < edges[1] <= 7:
            raise ValueError
    except ValueError:
        print(f'stats.py: --edges: "{a.edges}" is not LO,HI with 1 <= LO < HI <= 7', file=sys.stderr)
        sys.exit(1)
    x, splits = read(a.csv)
    order = ['Train', 'Validation', 'Test1', 'Test2']
    names = a.split or sorted(set(splits), key=lambda s: (order.index(s) if s in order else len(order), s))
    res = {}
    for s in names:
        sel = splits == s
        if not sel.any():
            fail(f'{a.csv}: no rows in split "{s}"')
        res[s] = summary(x[sel], edges)
    if not a.split:
        res['all'] = summary(x, edges)
    if a.json:
        print(json.dumps(res, indent=1))
        return
    print('split\tn\tdimension\tlow%\tmid%\thigh%\tmean')
    for s, r in res.items():
        for c in DIMS:
            d = r[c]
            print(f'{s}\t{r["n"]}\t{c}\t{d["low"]:.1f}\t{d["mid"]:.1f}\t{d["high"]:.1f}\t{d["mean"]:.3f}')
    print('split\tn\tr(A,V)\tr(A,D)\tr(V,D)')
    for s, r in res.items():
        print(f'{s}\t{r["n"]}\t{r["r(A,V)"]:.4f}\t{r["r(A,D)"]:.4f}\t{r["r(V,D)"]:.4f}')


if __name__ == '__main__':
    main()
