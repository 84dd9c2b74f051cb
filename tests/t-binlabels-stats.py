"""binlabels --stats against numpy on a generated MSP-Podcast-style CSV:
6000 rows in four splits, ratings drawn with correlations near the paper's
(r(A,V) ~ 0.24, r(A,D) ~ 0.80), many exactly on the edges 3 and 5, some
empty cells. Class counts must be exact; Pearson's r within 1e-12 of
numpy.corrcoef in the JSON (printed with 17 digits) and within 1e-9 in the
TSV (printed with 10 decimals); percentages to their printed precision."""
import csv
import json
import subprocess
import sys

import numpy as np

fails = []


def check(cond, what):
    if not cond:
        fails.append(what)
        print("FAIL:", what)


rng = np.random.default_rng(17)
N = 6000
cov = np.array([[1.0, 0.26, 0.82], [0.26, 1.0, 0.2], [0.82, 0.2, 1.0]])
z = rng.multivariate_normal([0, 0, 0], cov, size=N)
ratings = np.clip(4 + 1.1 * z, 1, 7)
# consensus ratings are means of a few raters: many land exactly on 3 and 5
ratings = np.round(ratings * 5) / 5
ratings[rng.random((N, 3)) < 0.03] = 3.0
ratings[rng.random((N, 3)) < 0.03] = 5.0
ratings[:6, 0] = [1, 3, 3.0001, 4.9999, 5, 7]
text = ratings.astype(object)
empty = rng.random((N, 3)) < 0.01
splits = rng.choice(["Train", "Validation", "Test1", "Test2"], size=N, p=[0.6, 0.15, 0.15, 0.1])
with open("labels.csv", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\r\n")
    w.writerow(["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"])
    for i in range(N):
        cells = ["" if empty[i, d] else repr(float(ratings[i, d])) for d in range(3)]
        w.writerow([f"MSP-PODCAST_{i:05d}.wav", "N", *cells, str(i % 50), "Female", splits[i]])
ratings[empty] = np.nan


def reference(mask, edges=(3.0, 5.0)):
    out = {"rows": int(mask.sum())}
    for d, name in enumerate(["arousal", "valence", "dominance"]):
        x = ratings[mask, d]
        x = x[~np.isnan(x)]
        counts = [int((x <= edges[0]).sum()), int(((x > edges[0]) & (x < edges[1])).sum()), int((x >= edges[1]).sum())]
        out[name] = {"n": len(x), "counts": counts, "pct": [100.0 * c / len(x) for c in counts]}
    out["r"] = {}
    for p, (a, b) in zip(["av", "ad", "vd"], [(0, 1), (0, 2), (1, 2)]):
        x, y = ratings[mask, a], ratings[mask, b]
        ok = ~np.isnan(x) & ~np.isnan(y)
        out["r"][p] = float(np.corrcoef(x[ok], y[ok])[0, 1])
    return out


def run(*args):
    p = subprocess.run(["binlabels", "--csv", "labels.csv", "--stats", *args], capture_output=True, text=True)
    check(p.returncode == 0, f"{args}: exit {p.returncode}: {p.stderr}")
    return p.stdout


order = ["Train", "Validation", "Test1", "Test2"]  # order of first appearance in the file
first_seen = list(dict.fromkeys(splits))
for args, names, edges in [([], first_seen, (3.0, 5.0)), (["-s", "Test2,Train"], ["Train", "Test2"], (3.0, 5.0)),
                           (["--edges", "2.5,4.4"], first_seen, (2.5, 4.4))]:
    js = json.loads(run("--json", *args))
    got_names = [s["split"] for s in js["splits"]]
    check(got_names == [n for n in first_seen if n in names] + ["all"], f"{args}: splits {got_names}")
    check(js["edges"] == list(edges) and js["classes"] == ["low", "mid", "high"], f"{args}: edges/classes")
    for s in js["splits"]:
        mask = np.isin(splits, names) if s["split"] == "all" else splits == s["split"]
        ref = reference(mask, edges)
        what = f"{args} {s['split']}"
        check(s["rows"] == ref["rows"], f"{what}: rows {s['rows']} want {ref['rows']}")
        for d in ["arousal", "valence", "dominance"]:
            check(s[d]["n"] == ref[d]["n"] and s[d]["counts"] == ref[d]["counts"],
                  f"{what} {d}: {s[d]['n']} {s[d]['counts']} want {ref[d]['n']} {ref[d]['counts']}")
            check(np.allclose(s[d]["pct"], ref[d]["pct"], rtol=0, atol=1e-12), f"{what} {d}: pct")
        for p in ["av", "ad", "vd"]:
            check(abs(s["r"][p] - ref["r"][p]) <= 1e-12, f"{what} r_{p}: {s['r'][p]!r} vs numpy {ref['r'][p]!r}")
    check(js["paper"]["r"] == {"av": 0.2412, "ad": 0.7953} and js["paper"]["arousal_pct"] == [9, 67, 24], "paper")

# the TSV: one header line, one row per split then "all", the paper's numbers as a '#' line
tsv = run().rstrip("\n").split("\n")
cols = tsv[0].split("\t")
dims = ["arousal", "valence", "dominance"]
want_cols = ["split", "rows"] + [f"{d}_{c}" for d in dims for c in
                                  ["n", "low", "mid", "high", "low_pct", "mid_pct", "high_pct"]] + ["r_av", "r_ad", "r_vd"]
check(cols == want_cols, f"TSV columns {cols}")
check(tsv[-1] == "# paper (MSP-Podcast v1.7, Train): arousal_low_pct 9 arousal_mid_pct 67 arousal_high_pct 24 "
      "r_av 0.2412 r_ad 0.7953", f"paper line {tsv[-1]!r}")
body = tsv[1:-1]
check([r.split("\t")[0] for r in body] == first_seen + ["all"], "TSV rows")
for line in body:
    v = dict(zip(cols, line.split("\t")))
    mask = np.ones(N, bool) if v["split"] == "all" else splits == v["split"]
    ref = reference(mask)
    check(int(v["rows"]) == ref["rows"], f"TSV {v['split']} rows")
    for d in dims:
        check([int(v[f"{d}_{c}"]) for c in ["low", "mid", "high"]] == ref[d]["counts"] and int(v[f"{d}_n"]) == ref[d]["n"],
              f"TSV {v['split']} {d} counts")
        for c, pc in zip(["low", "mid", "high"], ref[d]["pct"]):
            check(v[f"{d}_{c}_pct"] == f"{pc:.2f}", f"TSV {v['split']} {d}_{c}_pct {v[f'{d}_{c}_pct']} want {pc:.2f}")
    for p in ["av", "ad", "vd"]:
        check(abs(float(v[f"r_{p}"]) - ref["r"][p]) <= 1e-9, f"TSV {v['split']} r_{p}")

# a split with too few rows for r: nan in the TSV, null in the JSON
with open("tiny.csv", "w") as f:
    f.write("FileName,EmoAct,EmoVal,EmoDom,Split_Set\na,2,2,2,Train\nb,4,4,4,Train\nc,6,5,4,Dev\n")
p = subprocess.run(["binlabels", "--csv", "tiny.csv", "--stats", "--json"], capture_output=True, text=True)
js = json.loads(p.stdout)
check(js["splits"][1]["r"] == {"av": None, "ad": None, "vd": None}, f"tiny Dev r {js['splits'][1]['r']}")
check(js["splits"][0]["r"]["av"] == 1.0, "tiny Train r(A,V)")
p = subprocess.run(["binlabels", "--csv", "tiny.csv", "--stats"], capture_output=True, text=True)
check(p.stdout.split("\n")[2].endswith("\tnan\tnan\tnan"), f"tiny TSV {p.stdout!r}")
# constant ratings: r undefined, not a division by zero
with open("flat.csv", "w") as f:
    f.write("FileName,EmoAct,EmoVal,EmoDom\na,4,2,2\nb,4,4,4\nc,4,5,4\n")
p = subprocess.run(["binlabels", "--csv", "flat.csv", "--stats", "--json"], capture_output=True, text=True)
js = json.loads(p.stdout)
check([s["split"] for s in js["splits"]] == ["all"], "no split column: only 'all'")
check(js["splits"][0]["r"]["av"] is None and abs(js["splits"][0]["r"]["vd"] - np.corrcoef([2, 4, 5], [2, 4, 4])[0, 1])
      <= 1e-12, f"flat r {js['splits'][0]['r']}")

if fails:
    print(f"{len(fails)} failures")
    sys.exit(1)
print("ok")
