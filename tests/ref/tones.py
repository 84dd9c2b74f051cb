"""Labelled tone corpora for the training tests.

Each class is a pitch (PITCHES); an utterance is a sine at that pitch
(+-7 %), random phase, white noise 5-15 dB below it and a peak level 4-14 dB
below full scale, written as a 16-bit WAV.  A network learns the classes in a
few epochs, which is what a test of the training loop needs.  The random
draws are taken in a fixed order, so a seed fixes the corpus.
"""
import numpy as np
import scipy.io.wavfile

SR = 16000
PITCHES = [250.0, 900.0, 3000.0]


def write_tone(path, rng, pitch, min_dur, max_dur):
    """Writes one utterance of class pitch to path; rng a numpy Generator."""
    dur = rng.uniform(min_dur, max_dur)
    t = np.arange(int(dur * SR)) / SR
    f = pitch * rng.uniform(0.93, 1.07)
    x = np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    x += 10 ** (-rng.uniform(5, 15) / 20) * rng.standard_normal(t.size)
    x *= 10 ** (-rng.uniform(4, 14) / 20) / np.max(np.abs(x))
    scipy.io.wavfile.write(path, SR, (x * 32767).astype(np.int16))


def labelled_features(run, rows, scp, splits, fmax7k=False):
    """The real pipeline over a tone corpus: writes labels.csv (rows, header
    first) and wav.scp (scp, 'key path' lines), runs audio-read | melspec
    into feats.msgpack (and melspec --fmax 7000 into feats7k.msgpack when
    fmax7k), then binlabels --task arousal per (split, name) of splits into
    NAME.msgpack.  run(argv) runs a program of $SERTOOLS_BIN and fails the
    test on a non-zero exit."""
    open("labels.csv", "w").write("\n".join(rows) + "\n")
    open("wav.scp", "w").write("\n".join(scp) + "\n")
    run(["audio-read", "--list", "wav.scp", "-o", "wave.msgpack"])
    run(["melspec", "-o", "feats.msgpack", "wave.msgpack"])
    if fmax7k:
        run(["melspec", "--fmax", "7000", "-o", "feats7k.msgpack", "wave.msgpack"])
    for split, name in splits:
        run(["binlabels", "--csv", "labels.csv", "--task", "arousal", "--split", split, "-o", f"{name}.msgpack",
             "feats.msgpack"])
