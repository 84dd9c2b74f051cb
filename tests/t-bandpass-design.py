"""bandpass design (common/iir.c, printed by bandpass-design) against scipy.

1. Coefficients against scipy.signal.butter(order, [lo, hi], 'bandpass',
   fs=rate, output='sos'): the paper's eight widths around 500 Hz at 16 kHz
   and 8 kHz, orders 1, 2, 4, 6 (and 3, 5, 8, 12 on a subset), bands centred
   on rate/4 (where zpk2sos's order hangs on rounding ties), very wide and
   very narrow bands, and random designs.  Tolerance: each coefficient within
   1e-9 of the largest magnitude in its half-row (b0..b2 or a0..a2) - a
   relative error that does not blow up on coefficients that are sums
   cancelling to ~1e-15 (e.g. a1 of a pole pair mirrored about the imaginary
   axis).  Also the layout: a0 == 1 exactly, shape (order, 6).
   What is compared is what the maths fixes, not what rounding picks:
   zpk2sos orders sections by their poles' distance from the unit circle,
   and where two sections tie (bands centred on rate/4 mirror pole pairs
   about the imaginary axis) the order, and so which section carries the
   gain, follows numpy's rounding, which differs between CPUs (SIMD paths).
   So the sections are compared as a set: each denominator row and each
   numerator row scaled to its largest coefficient must match a distinct
   row of scipy's, and the product of the numerator scales (the overall
   gain) must agree; the cascade order must put poles nearer the unit
   circle later (ties, within 1e-9, in either order).
2. sosfilt_zi of our sections against scipy's sosfilt_zi of the same
   sections, and sosfiltfilt's default pad length (zi within 1e-9 relative
   to its largest value, padlen exact; 1e-6 for bands below 5 Hz, where
   1 + a1 + a2 ~ 1e-8 makes the steady-state solve ill-conditioned and
   scipy's LU and our closed form round apart).
3. The response of the C coefficients, evaluated here with numpy on the unit
   circle (independent of scipy): |H| = 1/sqrt(2) (-3.0103 dB) at both edges
   and exactly 1 (0 dB) at the prewarped geometric centre
   f0 = rate/pi * atan(sqrt(tan(pi lo/rate) tan(pi hi/rate))), within
   1e-6 dB.  For order 1 (sharpest peak), the maximum of |H| lies at f0
   within 0.01 Hz, measurably away from sqrt(lo hi) and (lo + hi)/2.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import numpy as np  # noqa: E402

import testlib as T  # noqa: E402

T.require_module("scipy")
import scipy.signal as ss  # noqa: E402

WIDTHS = [20, 40, 60, 80, 100, 200, 300, 400]
worst = {"sos": 0.0, "zi": 0.0, "edge_db": 0.0, "centre_db": 0.0}


def design(order, lo, hi, rate):
    p = T.run([f"{T.TESTBIN}/bandpass-design", order, repr(float(lo)), repr(float(hi)), repr(float(rate))], code=None)
    if p.returncode != 0:
        T.fail(f"bandpass-design {order} {lo} {hi} {rate}: exit {p.returncode}: {p.stderr}")
        return None, None, None
    lines = p.stdout.splitlines()
    sos = np.array([[float(v) for v in line.split()] for line in lines[:order]])
    zi = np.array([[float(v) for v in line.split()[1:]] for line in lines[order:2 * order]])
    padlen = int(lines[2 * order].split()[1])
    return sos, zi, padlen


def half_row_error(c, r):
    """Max over rows of |c - r| / max|r| taken per half-row (numerator, denominator)."""
    e = 0.0
    for part in (slice(0, 3), slice(3, 6)):
        scale = np.max(np.abs(r[:, part]), axis=1, keepdims=True)
        e = max(e, float(np.max(np.abs(c[:, part] - r[:, part]) / scale)))
    return e


def normalised(rows):
    """Numerator rows divided by their largest-magnitude coefficient (sign included), and those divisors."""
    idx = np.argmax(np.abs(rows[:, :3]), axis=1)
    scale = rows[np.arange(len(rows)), idx]
    out = rows.copy()
    out[:, :3] /= scale[:, None]
    return out, scale


def set_error(c, r):
    """Half-row error of the best one-to-one matching of c's rows to r's (greedy, rows are few and distinct up to ties)."""
    cn, cs = normalised(c)
    rn, rs = normalised(r)
    free = list(range(len(rn)))
    e = 0.0
    for i in range(len(cn)):
        errs = [half_row_error(cn[i:i + 1], rn[j:j + 1]) for j in free]
        k = int(np.argmin(errs))
        e = max(e, errs[k])
        free.pop(k)
    gain_c, gain_r = np.prod(cs), np.prod(rs)
    e = max(e, abs(gain_c - gain_r) / abs(gain_r))
    return e


def order_error(sos):
    """How far the cascade is from 'poles nearer the unit circle come later': the largest decrease of
    the closeness 1 - distance(1 - |pole|) from one section to the next (0 when in order)."""
    close = [-np.min(np.abs(1 - np.abs(np.roots(row[3:])))) if row[5] != 0 or row[4] != 0 else -1.0 for row in sos]
    return max([0.0] + [close[i] - close[i + 1] for i in range(len(close) - 1)])


def check_design(order, lo, hi, rate, response=True):
    sos, zi, padlen = design(order, lo, hi, rate)
    if sos is None:
        return
    ref = ss.butter(order, [lo, hi], "bandpass", fs=rate, output="sos")
    what = f"order {order}, {lo}-{hi} Hz at {rate} Hz"
    if sos.shape != ref.shape or np.any(sos[:, 3] != 1.0):
        T.fail(f"{what}: layout {sos.shape}, a0 {sos[:, 3]}")
        return
    e = set_error(sos, ref)
    worst["sos"] = max(worst["sos"], e)
    if e > 1e-9:
        T.fail(f"{what}: sos differs from scipy by {e:.3g} (relative to its half-row)\nC:\n{sos}\nscipy:\n{ref}")
    eo = order_error(sos)
    if eo > 1e-9:
        T.fail(f"{what}: sections out of zpk2sos's order (a pole nearer the unit circle comes earlier by {eo:.3g})\n{sos}")
    zref = ss.sosfilt_zi(sos)
    ez = float(np.max(np.abs(zi - zref)) / max(np.max(np.abs(zref)), 1e-300))
    if hi >= 5:
        worst["zi"] = max(worst["zi"], ez)
    if ez > (1e-6 if hi < 5 else 1e-9):
        T.fail(f"{what}: sosfilt_zi differs by {ez:.3g}\nC:\n{zi}\nscipy:\n{zref}")
    ntaps = 2 * len(ref) + 1 - min((ref[:, 2] == 0).sum(), (ref[:, 5] == 0).sum())
    if padlen != 3 * ntaps:
        T.fail(f"{what}: padlen {padlen}, scipy's sosfiltfilt uses {3 * ntaps}")
    if not response:
        return
    f0 = rate / np.pi * np.arctan(np.sqrt(np.tan(np.pi * lo / rate) * np.tan(np.pi * hi / rate)))
    db = 20 * np.log10(np.abs(response_at(sos, np.array([lo, hi, f0]), rate)))
    edge = float(np.max(np.abs(db[:2] + 10 * np.log10(2))))
    worst["edge_db"] = max(worst["edge_db"], edge)
    worst["centre_db"] = max(worst["centre_db"], abs(db[2]))
    if edge > 1e-6 or abs(db[2]) > 1e-6:
        T.fail(f"{what}: response {db[0]:.6f} dB at {lo} Hz, {db[1]:.6f} dB at {hi} Hz, {db[2]:.6f} dB at f0 {f0:.4f} Hz")


def response_at(sos, f, rate):
    """H(exp(i 2 pi f / rate)) of the cascade, straight from the coefficients."""
    zinv = np.exp(-2j * np.pi * np.asarray(f, dtype=float) / rate)
    h = np.ones_like(zinv)
    for b0, b1, b2, a0, a1, a2 in sos:
        h *= (b0 + b1 * zinv + b2 * zinv ** 2) / (a0 + a1 * zinv + a2 * zinv ** 2)
    return h


# 1-3: the paper's bands, two rates, several orders
for rate in (16000, 8000):
    for w in WIDTHS:
        for order in (1, 2, 4, 6):
            check_design(order, 500 - w / 2, 500 + w / 2, rate)
    for w in (20, 100, 400):
        for order in (3, 5, 8, 12):
            check_design(order, 500 - w / 2, 500 + w / 2, rate)
# bands centred on rate/4 (mirror-image pole pairs tie in zpk2sos), very wide and very narrow
for rate in (16000, 8000):
    for order in (1, 2, 3, 4, 5, 8, 9):
        for lo, hi in ((rate / 8, 3 * rate / 8), (rate / 4 - 1, rate / 4 + 1), (10, rate / 2 - 10), (0.5, 3)):
            check_design(order, lo, hi, rate, response=(hi - lo > 10 and lo > 5))
rng = np.random.default_rng(11)
for _ in range(60):
    rate = float(rng.choice([8000, 11025, 16000, 22050, 44100, 48000]))
    order = int(rng.integers(1, 25))
    lo, hi = np.sort(rng.uniform(0.002, 0.498, 2) * rate)
    if hi - lo > 1:
        check_design(order, float(lo), float(hi), rate, response=False)

# 3: where the peak is (order 1: |H|^2 = 1 / (1 + q^2), q grows either side of f0)
for rate in (16000, 8000):
    lo, hi = 300.0, 700.0
    sos, _, _ = design(1, lo, hi, rate)
    f0 = rate / np.pi * np.arctan(np.sqrt(np.tan(np.pi * lo / rate) * np.tan(np.pi * hi / rate)))
    grid = np.arange(440, 520, 0.001)
    fpk = grid[np.argmax(np.abs(response_at(sos, grid, rate)))]
    if abs(fpk - f0) > 0.01:
        T.fail(f"order 1 {lo}-{hi} Hz at {rate} Hz: peak at {fpk:.3f} Hz, expected the prewarped centre {f0:.3f} Hz")
    if abs(fpk - np.sqrt(lo * hi)) < 0.2 or abs(fpk - (lo + hi) / 2) < 1:
        T.fail(f"order 1 {lo}-{hi} Hz at {rate} Hz: peak {fpk:.3f} Hz should differ from sqrt(lo hi) {np.sqrt(lo * hi):.3f}")
    print(f"order 1, {lo:g}-{hi:g} Hz at {rate} Hz: peak at {fpk:.3f} Hz; prewarped centre {f0:.3f}, "
          f"sqrt(lo hi) {np.sqrt(lo * hi):.3f}, (lo+hi)/2 {(lo + hi) / 2:.1f}")

print("largest differences: sos %.3g (relative to half-row), zi %.3g, edge %.3g dB, centre %.3g dB"
      % (worst["sos"], worst["zi"], worst["edge_db"], worst["centre_db"]))
T.done()
