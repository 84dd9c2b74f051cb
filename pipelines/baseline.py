#!/usr/bin/python3
"""The trivial reference of Table 1: what a model with no network gets.

  baseline.py TRAIN.ms TEST.ms > baseline.tsv

Features: the mean and standard deviation over time of each log-Mel band
(128 numbers per item), standardised on the training split; classifier:
scikit-learn's LogisticRegression (lbfgs, C = 1, class_weight='balanced',
as the networks' class-balanced NLL).  Deterministic: no seed.  Prints
"uar<TAB>accuracy<TAB>train_items<TAB>test_items" and a row, UAR as
recall_score(average='macro') over the classes present in the test labels.
A Cnn14 baseline that does not beat this has not learned more than the
band energies tell.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import accuracy_score, recall_score  # noqa: E402

import sertools_stream as ss  # noqa: E402


def features(path):
    try:
        _, items = ss.read_stream(path)
    except (OSError, ss.StreamError) as e:
        print(f"baseline.py: {e}", file=sys.stderr)
        sys.exit(2)
    if not items:
        print(f"baseline.py: {path}: no items", file=sys.stderr)
        sys.exit(2)
    x = np.stack([np.concatenate([it.tensors["logmel"].mean(0), it.tensors["logmel"].std(0)]) for it in items])
    y = np.array([it.fields["label"] for it in items])
    return x.astype(np.float64), y


def main():
    if len(sys.argv) != 3:
        print("usage: baseline.py TRAIN.ms TEST.ms", file=sys.stderr)
        sys.exit(1)
    xtr, ytr = features(sys.argv[1])
    xte, yte = features(sys.argv[2])
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-9
    clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000)
    clf.fit((xtr - mu) / sd, ytr)
    pred = clf.predict((xte - mu) / sd)
    uar = recall_score(yte, pred, labels=sorted(set(yte.tolist())), average="macro", zero_division=0)
    print("uar\taccuracy\ttrain_items\ttest_items")
    print(f"{uar:.6f}\t{accuracy_score(yte, pred):.6f}\t{len(ytr)}\t{len(yte)}")


if __name__ == "__main__":
    main()
