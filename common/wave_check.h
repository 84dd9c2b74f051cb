/*
 * wave_check.h - the rules a waveform stream's numbers must follow before a
 * filter computes on them (formats/limits.md), one function per rule so that
 * bandpass and melspec (and anything after them) apply the same ones:
 *
 *   - (the header's sample_rate is read by st_wave_rate, stream.h: an
 *     integer in [1, INT_MAX] Hz; a float, 16000.5 or 1e300, is refused);
 *   - every sample is finite and |x| <= WAVE_MAX_ABS.  audio-read yields
 *     [-1, 1]; 1e8 leaves room for integer-scaled audio (24-bit: 8.4e6)
 *     while keeping a frame's power far from float overflow, which is what
 *     turned samples of 1e17 into frames of "-100 dB" silence with exit 0.
 *     Such an item is an error naming it (exit 2), never a wrong number.
 *     A non-finite sample is reported in the stream reader's words
 *     ("tensor 'wave': non-finite value nan at index I"), so a filter may
 *     leave the wave out of the reader's ST_READ_FINITE scan and check it
 *     here only: one pass over the samples (melspec does; its worker
 *     threads run it, not the reader's thread).
 *
 *   if (wave_check_samples(x, n, why, sizeof why)) die("%s: item %s: %s", file, key, why);
 *
 * No state; messages go to the caller's buffer.
 */
#ifndef SERTOOLS_WAVE_CHECK_H
#define SERTOOLS_WAVE_CHECK_H

#include <stddef.h>

#define WAVE_MAX_ABS 1e8

/* 0, or -1 with the first non-finite sample, else the first beyond
 * WAVE_MAX_ABS, named in why.  One vectorised pass when all is well. */
int wave_check_samples(const float *x, size_t n, char *why, size_t len);

#endif
