"""The goals of `make bench` (issue 14) against the ratios one run measured.

Each bench-* script appends lines "KEY VALUE [QUALIFIER]" to the file named
by $SERTOOLS_BENCH_RESULTS (see result() below and tests/bench/run.sh);
run.sh then runs this script on that file, which prints every goal with the
measured ratio beside it and "met", "missed" or "not measured" (a stage left
out by B=NAME, or one whose peer or program was missing).  The qualifier
tells apart runs of one stage under different settings (the OpenBLAS core
of the Cnn14 runs).  Usage: goals.py RESULTS-FILE.  Asserts nothing: a
benchmark on a shared machine is a measurement, not a test.
"""
import os
import sys

# key, what is measured, goal, direction ("min": the ratio must reach the
# goal; "max": it must stay at or under it).  A goal of None: a ratio shown
# for information, neither met nor missed (the demo's width, which the
# issue's goals predate).
GOALS = [
    ("cnn14_full_train", "Cnn14 full width, training (x PyTorch)", 1.5, "min"),
    ("cnn14_full_infer", "Cnn14 full width, inference (x PyTorch)", 1.5, "min"),
    ("cnn14_div8_train", "Cnn14 / 8, training (x PyTorch)", 2.0, "min"),
    ("cnn14_div8_infer", "Cnn14 / 8, inference (x PyTorch)", 2.0, "min"),
    ("cnn14_div16_train", "Cnn14 / 16 (the demo's), training (x PyTorch)", None, "min"),
    ("cnn14_div16_infer", "Cnn14 / 16 (the demo's), inference (x PyTorch)", None, "min"),
    ("cnn14_full_rss", "Cnn14 full width, peak RSS (ours / PyTorch)", 0.7, "max"),
    ("melspec_j1", "melspec -j 1 (x fastest torchaudio, wall)", 2.0, "min"),
    ("melspec_j2", "melspec -j 2 (x fastest torchaudio, wall)", 3.0, "min"),
    ("bandpass_program", "bandpass over a pipe (x scipy sosfilt)", 3.0, "min"),
    ("audio_read", "audio-read / sox command, wall", 1.10, "max"),
    ("train_overhead", "cnn-train loop overhead over the core step, %", 5.0, "max"),
    ("native", "portable / native build", 0.95, "min"),
]


def result(key, value, qualifier=""):
    """Records one measured ratio for the summary (a no-op outside make bench)."""
    path = os.environ.get("SERTOOLS_BENCH_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(f"{key} {value:.6g} {qualifier}".rstrip() + "\n")


def read(path):
    rows = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split(maxsplit=2)
                if len(parts) >= 2:
                    rows.setdefault(parts[0], []).append((float(parts[1]), parts[2].strip() if len(parts) > 2 else ""))
    except FileNotFoundError:
        pass
    return rows


def main():
    rows = read(sys.argv[1])
    met = missed = 0
    print("goals (issue 14), ratios of this run:")
    for key, what, goal, direction in GOALS:
        sign = ">=" if direction == "min" else "<="
        for value, qual in rows.get(key, [(None, "")]):
            if goal is None:
                shown = f"{value:8.3f}" if value is not None else f"{'':>8}"
                print(f"  {what:<52} {shown}  no goal{'' if value is not None else '  not measured'}"
                      f"{f'  [{qual}]' if qual else ''}")
                continue
            if value is None:
                print(f"  {what:<52} {'':>8}  goal {sign} {goal:<5g} not measured")
                continue
            ok = value >= goal if direction == "min" else value <= goal
            met, missed = met + ok, missed + (not ok)
            status = "met" if ok else "MISSED"
            print(f"  {what:<52} {value:8.3f}  goal {sign} {goal:<5g} {status:<6}{f'  [{qual}]' if qual else ''}")
    print(f"goals: {met} met, {missed} missed")


if __name__ == "__main__":
    main()
