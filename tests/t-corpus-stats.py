"""pipelines/corpus/stats.py against an independent computation, and the
corpus design against MSP-Podcast's training-set statistics.

The labels come from plan.py (no audio is rendered, so this is fast): the
small size's Train split must be within 3 points of the paper's 9/67/24 %
arousal classes and within 0.04 of r(A,V) = 0.2412 and r(A,D) = 0.7953.
stats.py's percentages must equal a direct count and its correlations the
textbook Pearson formula to 1e-4 (its printed precision).  Malformed CSVs are
errors naming file, line and column (exit 2).
"""
import csv
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import testlib as T  # noqa: E402

CORPUS = os.path.join(T.SRC, 'pipelines', 'corpus')
PLAN, STATS = os.path.join(CORPUS, 'plan.py'), os.path.join(CORPUS, 'stats.py')


def pearson(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy)


T.run([T.PYTHON, PLAN, '--set', 'main', '--size', 'small', '--seed', '1', '--work', 'plan'])
path = os.path.join('plan', 'labels.csv')
with open(path, newline='') as f:
    rows = list(csv.DictReader(f))
out = json.loads(T.run([T.PYTHON, STATS, '--json', path]).stdout)

for split in ('Train', 'Validation', 'Test1', 'all'):
    sel = [r for r in rows if split in ('all', r['Split_Set'])]
    got = out[split]
    if got['n'] != len(sel):
        T.fail(f'{split}: n {got["n"]} != {len(sel)}')
    cols = {c: [float(r[c]) for r in sel] for c in ('EmoAct', 'EmoVal', 'EmoDom')}
    for c, x in cols.items():
        low = 100 * sum(v <= 3 for v in x) / len(x)
        high = 100 * sum(v >= 5 for v in x) / len(x)
        for k, want in (('low', low), ('mid', 100 - low - high), ('high', high)):
            if abs(got[c][k] - want) > 1e-9:
                T.fail(f'{split} {c} {k}: {got[c][k]} != {want}')
    for k, a, b in (('r(A,V)', 'EmoAct', 'EmoVal'), ('r(A,D)', 'EmoAct', 'EmoDom'), ('r(V,D)', 'EmoVal', 'EmoDom')):
        want = pearson(cols[a], cols[b])
        if abs(got[k] - want) > 1e-4:
            T.fail(f'{split} {k}: {got[k]} != {want}')

train = out['Train']['EmoAct']
for k, want in (('low', 9), ('mid', 67), ('high', 24)):
    if abs(train[k] - want) > 3:
        T.fail(f'Train arousal {k} {train[k]:.1f} %, the paper {want} %')
for k, want in (('r(A,V)', 0.2412), ('r(A,D)', 0.7953)):
    if abs(out['Train'][k] - want) > 0.04:
        T.fail(f'Train {k} {out["Train"][k]:.4f}, the paper {want}')

# Edges: a rating on an edge belongs to the outer class.
with open('edges.csv', 'w') as f:
    f.write('FileName,EmoAct,EmoVal,EmoDom,Split_Set\n')
    for i, v in enumerate((1, 3, 3.0001, 4.9999, 5, 7)):
        f.write(f'a{i}.wav,{v},4,4,Train\n')
e = json.loads(T.run([T.PYTHON, STATS, '--json', '--split', 'Train', 'edges.csv']).stdout)
if [round(e['Train']['EmoAct'][k] * 6 / 100) for k in ('low', 'mid', 'high')] != [2, 2, 2]:
    T.fail(f'edge binning: {e["Train"]["EmoAct"]}')

# Bad input: file, line and column named, exit 2; a bad option is exit 1.
for bad, what in (('7.5', 'outside [1, 7]'), ('high', 'is not a number')):
    with open('bad.csv', 'w') as f:
        f.write('FileName,EmoAct,EmoVal,EmoDom,Split_Set\na.wav,4,4,4,Train\nb.wav,4,' + bad + ',4,Train\n')
    err = T.run([T.PYTHON, STATS, 'bad.csv'], code=2).stderr
    if 'bad.csv:3: EmoVal' not in err or what not in err:
        T.fail(f'bad value {bad}: {err}')
T.run([T.PYTHON, STATS, '--edges', '5,3', 'bad.csv'], code=1)
T.done()
