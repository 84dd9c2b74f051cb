"""The PANNs front end's fixed tensors, rebuilt from their formulas.

A PANNs checkpoint carries the STFT as two convolutions (periodic-Hann-windowed
cosine and sine bases) and the Slaney-normalised mel matrix of librosa
(htk=False, norm='slaney').  Tests that build a PANNs-shaped state dict take
them from here so every test means the same front end.
"""
import numpy as np
import torch


def slaney_melw(sr=16000, n_fft=512, n_mels=64, fmin=50.0, fmax=8000.0):
    """librosa.filters.mel(htk=False, norm='slaney').T from its formulas."""
    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f < 1000, 3 * f / 200, 15 + 27 * np.log(np.maximum(f, 1e-9) / 1000) / np.log(6.4))

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        return np.where(m < 15, 200 * m / 3, 1000 * np.exp(np.log(6.4) / 27 * (m - 15)))

    fft_f = np.linspace(0, sr / 2, n_fft // 2 + 1)
    pts = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    w = np.zeros((n_mels, len(fft_f)))
    for i in range(n_mels):
        lower = (fft_f - pts[i]) / (pts[i + 1] - pts[i])
        upper = (pts[i + 2] - fft_f) / (pts[i + 2] - pts[i + 1])
        w[i] = np.maximum(0, np.minimum(lower, upper)) * 2 / (pts[i + 2] - pts[i])
    return torch.tensor(w.T, dtype=torch.float32)


def stft_basis(n_fft=512):
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)  # periodic Hann
    ang = 2 * np.pi * np.outer(k, n) / n_fft
    return (torch.tensor(window * np.cos(ang), dtype=torch.float32)[:, None, :],
            torch.tensor(-window * np.sin(ang), dtype=torch.float32)[:, None, :])
