/*
 * iir.h - Butterworth band-pass design and second-order-section filtering.
 *
 * Design follows scipy.signal.butter(order, [low, high], 'bandpass', fs=rate,
 * output='sos') step by step, in double precision: analog Butterworth
 * prototype, low-pass to band-pass transform at the prewarped edges,
 * bilinear transform, then scipy's zpk2sos pairing and ordering, so the
 * coefficients agree with scipy's to rounding.  Filtering is a cascade of
 * second-order sections in transposed direct form II with double state,
 * like scipy.signal.sosfilt; the transfer-function (b, a) form is never
 * formed, as it is unstable at narrow bandwidths.
 *
 * A section is 6 doubles, b0 b1 b2 a0 a1 a2 with a0 = 1 (scipy's sos row);
 * an sos array of n sections is 6n doubles, applied first to last.
 */
#ifndef SERTOOLS_IIR_H
#define SERTOOLS_IIR_H

#include <stddef.h>

/* Highest band-pass order accepted (order sections, 2 x order poles). */
#define IIR_MAX_ORDER 24

/* Writes the 'order' sections of the band-pass with -3 dB edges low and
 * high (Hz) at sample rate 'rate' into sos (6 x order doubles).  Returns 0,
 * or -1 with a message in err when not 1 <= order <= IIR_MAX_ORDER and
 * 0 < low < high < rate / 2. */
int iir_butter_bandpass(int order, double low, double high, double rate, double *sos, char *err,
                        size_t errlen);

/* scipy.signal.sosfilt_zi: the state (2 per section) in which the cascade
 * answers a unit step with its steady-state output. */
void iir_sos_zi(const double *sos, int nsec, double *zi);

/* scipy.signal.sosfiltfilt's default odd-extension length:
 * 3 (2 nsec + 1 - min(#sections with b2 = 0, #sections with a2 = 0)). */
size_t iir_sos_padlen(const double *sos, int nsec);

/* A cascade with its coefficients, state and scratch memory. */
typedef struct iir_sos iir_sos;

/* NULL when out of memory or when a section's a0 is not 1. */
iir_sos *iir_sos_new(const double *sos, int nsec);
void iir_sos_free(iir_sos *f);
int iir_sos_sections(const iir_sos *f);

/* State, 2 doubles per section (scipy's zi layout): zeroed, set to
 * scale x zi (zi NULL: zero), or read back. */
void iir_sos_reset(iir_sos *f);
void iir_sos_set_state(iir_sos *f, const double *zi, double scale);
void iir_sos_get_state(const iir_sos *f, double *zi);

/* Filters n samples, continuing from the current state and leaving the
 * state at the end (so a signal may be fed in pieces).  in == out is
 * allowed; other overlaps are not. */
void iir_sos_run(iir_sos *f, const double *in, double *out, size_t n);
void iir_sos_run_f32(iir_sos *f, const float *in, float *out, size_t n);

/* scipy.signal.sosfiltfilt(sos, x) with its defaults (odd extension of
 * iir_sos_padlen samples at each end, each pass started from iir_sos_zi
 * scaled by the first sample it sees), computed in double.  The state is
 * left undefined.  Returns 0, -1 when out of memory, -2 when n <= padlen
 * (too short for the extension).  in == out is allowed. */
int iir_sos_filtfilt_f32(iir_sos *f, const float *in, float *out, size_t n);

#endif
