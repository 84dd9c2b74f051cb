/*
 * melspec.h - log-Mel spectrogram of a waveform, as torchaudio computes it.
 *
 * The default configuration is the 16 kHz front end of PANNs' Cnn14 and
 * equals torchaudio's MelSpectrogram(sample_rate=16000, n_fft=512,
 * hop_length=160, f_min=50, f_max=8000, n_mels=64, norm='slaney',
 * mel_scale='slaney', pad_mode='reflect') followed by
 * AmplitudeToDB(stype='power', top_db=None):
 *
 *   - periodic Hann window of win_length samples, centred in n_fft with
 *     zeros when shorter;
 *   - the signal reflect-padded by pad = floor(n_fft / 2) samples at each
 *     end, so item of N samples gives 1 + floor((N + 2 pad - n_fft) / hop)
 *     frames (1 + floor(N / hop) for an even n_fft), which needs N > pad;
 *   - |X(k)|^power of the real FFT of each frame (power 2: power spectrum);
 *   - a Slaney-scale, Slaney-area-normalised triangular mel filterbank,
 *     the matrix torchaudio's melscale_fbanks(n_fft/2+1, f_min, f_max,
 *     n_mels, sample_rate, 'slaney', 'slaney') returns;
 *   - with db, (20 / power) * log10(max(mel, amin)), i.e. 10 log10 for the
 *     power spectrogram, 20 log10 for magnitudes; amin is 1e-10.
 *
 * The output of an item is a row-major (frames, n_mels) float32 matrix.
 *
 * Precision: the window and the FFT are in double (FFTW's fftw_), the power
 * spectrum is rounded to float32 for the filterbank product (float32 GEMM).
 * A float32 FFT's error, ~3e-7 of the frame's RMS bin, dominated: up to
 * 0.015 dB from the float64 truth on loud 44.1 kHz speech, 4x torchaudio's,
 * where the rounding of the power and the product adds ~1e-6 dB.  In double
 * the output is within 2e-5 dB of the truth (tests/t-melspec-truth.py), at
 * no measurable cost on AVX-512 and +30 % instructions under valgrind
 * (README, Speed).
 *
 * A melspec object owns its FFTW plan, window, filterbank and scratch: one
 * per thread.  Creating one calls the FFTW planner, which is not thread
 * safe, so create (and free) them all from one thread; melspec_compute on
 * distinct objects may then run concurrently.  The mel projection is done
 * by cblas_sgemm over blocks of 128 frames, one call per run of adjacent
 * bands (the filterbank is banded); a program that runs its own worker
 * threads should keep OpenBLAS single-threaded (openblas_set_num_threads).
 */
#ifndef SERTOOLS_MELSPEC_H
#define SERTOOLS_MELSPEC_H

#include <stdbool.h>
#include <stddef.h>

/* Limits (formats/limits.md) that bound one worker's memory: the
 * filterbank is (n_fft/2 + 1) x n_mels floats, 64 MiB at both limits, and
 * the FFT buffers O(n_fft).  A window of one sample is refused: torchaudio's
 * periodic Hann window of length 1 is [1], this formula's is [0]. */
#define MELSPEC_MAX_NFFT 65536
#define MELSPEC_MAX_MELS 512

typedef struct {
	long sample_rate;   /* Hz */
	int n_fft;          /* FFT size, 2..MELSPEC_MAX_NFFT */
	int win_length;     /* Hann window length, 2..n_fft */
	int hop_length;     /* frame step, >= 1 */
	int n_mels;         /* mel bands, 1..MELSPEC_MAX_MELS */
	double f_min, f_max; /* Hz, 0 <= f_min < f_max <= sample_rate / 2 */
	double power;       /* exponent of the magnitude, > 0 */
	bool db;            /* convert to decibels */
	double amin;        /* floor before the logarithm, a normal float > 0 */
} melspec_config;

/* The Cnn14 16 kHz front end: 512, 512, 160, 64 mels, 50-8000 Hz, power 2,
 * dB with amin 1e-10. */
melspec_config melspec_default_config(long sample_rate);

/* 0 when the configuration is usable, else -1 and a message naming the
 * offending values in err (errlen bytes). */
int melspec_check(const melspec_config *cfg, char *err, size_t errlen);

typedef struct melspec melspec;

/* NULL with a message in err when the configuration is invalid or memory
 * runs out.  Not thread safe (FFTW planning). */
melspec *melspec_new(const melspec_config *cfg, char *err, size_t errlen);
void melspec_free(melspec *m);

const melspec_config *melspec_get_config(const melspec *m);
/* "fixed" when the FFT runs the built-in 512-point plan (FFTW 3.3.10 on a
 * CPU with AVX), else "estimate".  Either is the same plan in every run;
 * the two can differ in the last bit of a rare value (none of 23 million
 * log-Mel values of the melspec bench, 2026-12-07).  The transform is
 * complex, two frames at a time (one the real, one the imaginary part),
 * 0.27 us a frame against 0.40 us for the best real transform of one. */
const char *melspec_fft_plan(const melspec *m);
/* The shortest item the reflect padding allows: floor(n_fft / 2) + 1. */
size_t melspec_min_samples(const melspec *m);
/* Frames of an item of n samples (n >= melspec_min_samples). */
size_t melspec_frames(const melspec *m, size_t n);

/* The filterbank, row-major (n_fft / 2 + 1, n_mels) like torchaudio's fb. */
const float *melspec_filterbank(const melspec *m);
/* Mel bands whose filter weights are all zero (too many mels for n_fft). */
int melspec_empty_bands(const melspec *m);

/* Computes the (melspec_frames(n), n_mels) output of x[0..n) into out.
 * 0, or -1 when n < melspec_min_samples(m). */
int melspec_compute(melspec *m, const float *x, size_t n, float *out);

#endif
