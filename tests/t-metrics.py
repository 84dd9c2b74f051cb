"""UAR, accuracy and per-class recall against scikit-learn on random and edge cases.

Tolerance: 1e-12 absolute (both sides compute the same ratios in double).
Rule checked: UAR is the mean recall over the classes present in the labels
(= sklearn recall_score(labels=present classes, average='macro')).
"""
import math
import os
import sys

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import numpy as np  # noqa: E402

import testlib as T  # noqa: E402

T.require_module("sklearn.metrics")
from sklearn.metrics import accuracy_score, recall_score  # noqa: E402

tool = os.path.join(T.TESTBIN, "metrics-tool")
rng = np.random.default_rng(7)


def ours(classes, y, p):
    text = f"{classes}\n" + "".join(f"{a} {b}\n" for a, b in zip(y, p))
    out = T.run([tool], input=text).stdout
    res = {}
    for line in out.splitlines():
        parts = line.split()
        if parts[0] == "recall":
            res[("recall", int(parts[1]))] = float(parts[2])
        else:
            res[parts[0]] = float(parts[1])
    return res


def against_sklearn(name, classes, y, p):
    r = ours(classes, y, p)
    present = sorted(set(y))
    want = recall_score(y, p, labels=present, average="macro", zero_division=0)
    assert abs(r["uar"] - want) <= 1e-12, (name, r["uar"], want)
    assert abs(r["accuracy"] - accuracy_score(y, p)) <= 1e-12, name
    per = recall_score(y, p, labels=list(range(classes)), average=None, zero_division=0)
    for k in range(classes):
        got = r[("recall", k)]
        if k in present:
            assert abs(got - per[k]) <= 1e-12, (name, k, got, per[k])
        else:
            assert math.isnan(got), (name, k, got)


for trial in range(20):
    classes = int(rng.integers(2, 8))
    n = int(rng.integers(1, 300))
    y = rng.integers(0, classes, n).tolist()
    p = rng.integers(0, classes, n).tolist()
    against_sklearn(f"random {trial}", classes, y, p)

# a class never predicted counts with recall 0
against_sklearn("never predicted", 3, [0, 1, 2, 2], [0, 1, 1, 1])
r = ours(3, [0, 1, 2, 2], [0, 1, 1, 1])
assert abs(r["uar"] - 2 / 3) < 1e-12, r
# a class absent from the labels is left out of the mean (sklearn's default would count it as 0)
against_sklearn("absent class", 3, [0, 0, 1], [0, 2, 1])
r = ours(3, [0, 0, 1], [0, 2, 1])
assert abs(r["uar"] - 0.75) < 1e-12, r
# all correct, all wrong, a single item
against_sklearn("perfect", 3, [0, 1, 2], [0, 1, 2])
against_sklearn("all wrong", 2, [0, 1], [1, 0])
against_sklearn("single", 3, [2], [2])
# out-of-range pairs are refused
T.run([tool], input="3\n0 3\n", code=2)
T.done()
