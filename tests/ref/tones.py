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
