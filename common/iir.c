/* iir.c - Butterworth band-pass design (scipy's butter + zpk2sos) and the SOS cascade. */
#include <complex.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "iir.h"

/* ---- design ---- */

typedef struct {
	double complex v;
	bool real; /* numpy's isreal after _cplxreal: imag exactly 0 */
} root;

/* Stable insertion sorts: numpy sorts these short arrays stably, and ties
 * decide which pole or zero is picked. */
static void sort_by_real_then_imag(double complex *z, int n)
{
	for (int i = 1; i < n; i++) {
		double complex v = z[i];
		int j = i;
		while (j > 0 && (creal(z[j - 1]) > creal(v) ||
		                 (creal(z[j - 1]) == creal(v) && fabs(cimag(z[j - 1])) > fabs(cimag(v))))) {
			z[j] = z[j - 1];
			j--;
		}
		z[j] = v;
	}
}

static void sort_by_abs_imag(double complex *z, int n)
{
	for (int i = 1; i < n; i++) {
		double complex v = z[i];
		int j = i;
		while (j > 0 && fabs(cimag(z[j - 1])) > fabs(cimag(v))) {
			z[j] = z[j - 1];
			j--;
		}
		z[j] = v;
	}
}

/* Roots handled at once: the 2 x order poles of a band-pass. */
#define MAX_ROOTS (2 * IIR_MAX_ORDER)

/* scipy's _cplxreal: one root of each conjugate pair (imag > 0, the pair
 * averaged), sorted by real part, then the real roots, sorted, into out
 * (room for out_cap roots).  Returns the count, or -1 when a complex root has
 * no conjugate or n is more than MAX_ROOTS or out_cap. */
static int split_conjugates(const double complex *in, int n, root *out, int out_cap)
{
	double complex z[MAX_ROOTS], zp[MAX_ROOTS], zn[MAX_ROOTS];
	double zr[MAX_ROOTS];
	const double tol = 100 * DBL_EPSILON;
	int np = 0, nn = 0, nr = 0;
	if (n < 0 || n > MAX_ROOTS || n > out_cap)
		return -1;
	memcpy(z, in, (size_t)n * sizeof *z);
	sort_by_real_then_imag(z, n);
	for (int i = 0; i < n; i++) {
		if (fabs(cimag(z[i])) <= tol * cabs(z[i]))
			zr[nr++] = creal(z[i]);
		else if (cimag(z[i]) > 0)
			zp[np++] = z[i];
		else
			zn[nn++] = z[i];
	}
	if (np != nn)
		return -1;
	/* runs of nearly equal real parts are ordered by |imag| */
	for (int start = 0; start < np;) {
		int stop = start;
		while (stop + 1 < np && creal(zp[stop + 1]) - creal(zp[stop]) <= tol * cabs(zp[stop]))
			stop++;
		if (stop > start) {
			sort_by_abs_imag(zp + start, stop - start + 1);
			sort_by_abs_imag(zn + start, stop - start + 1);
		}
		start = stop + 1;
	}
	int k = 0;
	for (int i = 0; i < np; i++)
		out[k++] = (root){(zp[i] + conj(zn[i])) / 2, false};
	for (int i = 0; i < nr; i++)
		out[k++] = (root){zr[i], true};
	return k;
}

/* x + iy.  CMPLX is C11 but missing from clang 14's view of glibc's
 * complex.h; a complex is laid out as two doubles (C11 6.2.5p13), so this
 * is exact also for infinite or NaN parts, unlike x + I * y. */
static double complex make_complex(double x, double y)
{
	double complex z;
	double parts[2] = {x, y};
	memcpy(&z, parts, sizeof z);
	return z;
}

/* Complex division as numpy does it (Smith's method, scaled by a reciprocal),
 * so the poles agree with scipy's to rounding.  Pole pairs mirrored about
 * the imaginary axis (bands centred on fs/4) tie in distance from the unit
 * circle up to rounding: there the section order is rounding's choice, in
 * numpy as here (and numpy's differs between CPUs), and no test relies on
 * it. */
static double complex div_smith(double complex a, double complex b)
{
	double ar = creal(a), ai = cimag(a), br = creal(b), bi = cimag(b);
	if (fabs(br) >= fabs(bi)) {
		double rat = bi / br, scl = 1.0 / (br + bi * rat);
		return make_complex((ar + ai * rat) * scl, (ai - ar * rat) * scl);
	}
	double rat = br / bi, scl = 1.0 / (bi + br * rat);
	return make_complex((ar * rat + ai) * scl, (ai * rat - ar) * scl);
}

static void remove_root(root *r, int *n, int i)
{
	memmove(r + i, r + i + 1, (size_t)(*n - i - 1) * sizeof *r);
	(*n)--;
}

/* zpk2sos's "worst" pole: the one closest to the unit circle (first on ties). */
static int worst_pole(const root *p, int n, bool real_only)
{
	int best = -1;
	double bestd = INFINITY;
	for (int i = 0; i < n; i++) {
		if (real_only && !p[i].real)
			continue;
		double d = fabs(1 - cabs(p[i].v));
		if (d < bestd) {
			bestd = d;
			best = i;
		}
	}
	return best;
}

static int nearest(const root *z, int n, double complex to)
{
	int best = -1;
	double bestd = INFINITY;
	for (int i = 0; i < n; i++) {
		double d = cabs(z[i].v - to);
		if (d < bestd) {
			bestd = d;
			best = i;
		}
	}
	return best;
}

/* Coefficients of (x - r1)(x - r2) for a conjugate or a real pair, or of
 * (x - r1) x when has2 is false, as numpy.poly forms them. */
static void poly2(double complex r1, double complex r2, bool has2, double *c)
{
	c[0] = 1;
	if (!has2) {
		c[1] = -creal(r1);
		c[2] = 0;
		return;
	}
	c[1] = creal(-r1 - r2);
	c[2] = creal(r1 * r2);
}

int iir_butter_bandpass(int order, double low, double high, double rate, double *sos, char *err,
                        size_t errlen)
{
	if (order < 1 || order > IIR_MAX_ORDER) {
		snprintf(err, errlen, "order %d is not between 1 and %d", order, IIR_MAX_ORDER);
		return -1;
	}
	if (!(rate > 0) || !isfinite(rate)) {
		snprintf(err, errlen, "sample rate %g Hz is not a positive number", rate);
		return -1;
	}
	if (!(low > 0 && low < high && high < rate / 2)) {
		snprintf(err, errlen,
		         "band edges %g and %g Hz do not satisfy 0 < low < high < %g Hz (half the sample rate %g Hz)",
		         low, high, rate / 2, rate);
		return -1;
	}
	const int n = order;
	/* edges as fractions of Nyquist, prewarped for the bilinear transform at fs = 2 */
	double w1 = 4 * tan(M_PI * (2 * low / rate) / 2);
	double w2 = 4 * tan(M_PI * (2 * high / rate) / 2);
	double bw = w2 - w1, wo = sqrt(w1 * w2);

	/* analog prototype poles -exp(i pi m / 2n), m = -n+1, -n+3, ..., n-1,
	 * each split into two band-pass poles */
	double complex pa[MAX_ROOTS], pd[MAX_ROOTS];
	for (int i = 0; i < n; i++) {
		int m = -n + 1 + 2 * i;
		double complex proto = -cexp(make_complex(0, (M_PI * m) * (1.0 / (2 * n))));
		double complex plp = proto * bw / 2;
		double complex d = csqrt(plp * plp - wo * wo);
		pa[i] = plp + d;
		pa[n + i] = plp - d;
	}
	/* bilinear transform at fs = 2: s -> 4 (z - 1) / (z + 1); the n analog
	 * zeros at s = 0 go to z = 1, the n at infinity to z = -1 */
	double complex den = 1;
	for (int i = 0; i < 2 * n; i++) {
		pd[i] = div_smith(4 + pa[i], 4 - pa[i]);
		den *= 4 - pa[i];
	}
	double gain = pow(bw, n) * creal(div_smith(pow(4, n), den));

	/* zpk2sos, pairing 'nearest': sections built from the last, each time
	 * around the pole closest to the unit circle and the zeros nearest it */
	root p[MAX_ROOTS], z[MAX_ROOTS];
	int np = split_conjugates(pd, 2 * n, p, MAX_ROOTS), nz = 2 * n;
	if (np < 0) {
		snprintf(err, errlen, "internal error: unpaired complex pole");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		z[i] = (root){-1, true};
		z[n + i] = (root){1, true};
	}
	/* every zero is real, which rules out zpk2sos's pairing with a complex zero */
	for (int si = n - 1; si >= 0; si--) {
		double *s = sos + 6 * si;
		int i1 = worst_pole(p, np, false);
		root p1 = p[i1];
		remove_root(p, &np, i1);
		int nreal = 0;
		for (int i = 0; i < np; i++)
			nreal += p[i].real;
		if (p1.real && nreal == 0) {
			/* the last real pole: a first-order section */
			int iz = nearest(z, nz, p1.v);
			s[0] = 1;
			s[1] = -creal(z[iz].v);
			s[2] = 0;
			remove_root(z, &nz, iz);
			poly2(p1.v, 0, false, s + 3);
			continue;
		}
		double complex p2 = conj(p1.v);
		if (p1.real) {
			int i2 = worst_pole(p, np, true);
			p2 = p[i2].v;
			remove_root(p, &np, i2);
		}
		if (nz == 0) {
			s[0] = s[1] = 0;
			s[2] = 1;
		} else {
			int iz = nearest(z, nz, p1.v);
			double complex z1 = z[iz].v;
			remove_root(z, &nz, iz);
			if (nz > 0) {
				iz = nearest(z, nz, p1.v);
				poly2(z1, z[iz].v, true, s);
				remove_root(z, &nz, iz);
			} else {
				s[0] = 0;
				s[1] = 1;
				s[2] = -creal(z1);
			}
		}
		poly2(p1.v, p2, true, s + 3);
	}
	for (int i = 0; i < 3; i++)
		sos[i] *= gain;
	return 0;
}

void iir_sos_zi(const double *sos, int nsec, double *zi)
{
	double scale = 1;
	for (int s = 0; s < nsec; s++) {
		const double *b = sos + 6 * s, *a = b + 3;
		/* steady state of one section: solve zi = A zi + B (scipy's lfilter_zi) */
		double B0 = b[1] - a[1] * b[0], B1 = b[2] - a[2] * b[0];
		double z0 = (B0 + B1) / ((1 + a[1]) + a[2]);
		zi[2 * s] = scale * z0;
		zi[2 * s + 1] = scale * (B1 - a[2] * z0);
		scale *= (b[0] + b[1] + b[2]) / (a[0] + a[1] + a[2]);
	}
}

size_t iir_sos_padlen(const double *sos, int nsec)
{
	int b2zero = 0, a2zero = 0;
	for (int s = 0; s < nsec; s++) {
		b2zero += sos[6 * s + 2] == 0;
		a2zero += sos[6 * s + 5] == 0;
	}
	return 3 * (size_t)(2 * nsec + 1 - (b2zero < a2zero ? b2zero : a2zero));
}

/* ---- filtering ----
 *
 * One section, transposed direct form II (scipy's sosfilt):
 *     y = b0 x + z0,  z0 <- (b1 x - a1 y) + z1,  z1 <- b2 x - a2 y.
 * A scalar cascade is bound by the latency of that recursion, so sections
 * run four at a time in the lanes of a vector, as a skewed pipeline: lane j
 * works on sample t - LAG j at step t, taking its input from lane j - 1's
 * output of LAG steps before, so no lane waits on another's result.  The
 * lanes use the same recursion with y substituted into the state update,
 *     z0 <- -a1 z0 + ((b1 - a1 b0) x + z1),  z1 <- -a2 z0 + (b2 - a2 b0) x,
 * which takes y off the critical path; the states are still TDF-II's and
 * the results agree with the plain form to a few units of double rounding.
 * The first and last few samples of each call (where lanes would reach
 * outside the signal) run through the plain scalar form.  Cascades of more
 * than four sections run group by group; padding sections are identities. */

#define LAG 4
#define SKEW (3 * LAG)  /* lane 3 runs this many samples behind lane 0 */
#define CHUNK 8192      /* float samples converted to double at a time (multi-group cascades) */

typedef double v4d __attribute__((vector_size(32)));
typedef long long v4i __attribute__((vector_size(32)));

#if defined(__clang__)
#define SHIFT_UP(v) __builtin_shufflevector(v, v, 0, 0, 1, 2)
#else
#define SHIFT_UP(v) __builtin_shuffle(v, (v4i){0, 0, 1, 2})
#endif

struct iir_sos {
	int nsec, ngroups;      /* ngroups = ceil(nsec / 4); arrays below hold 4 ngroups sections */
	double *b0, *b1, *b2, *a1, *a2, *k1, *k2;
	double *z;              /* state, 2 per section */
	double *zi;             /* sosfilt_zi, 2 per section */
	double *sos;            /* as given */
	size_t padlen;
	double *work;           /* scratch: odd extension, float-to-double chunks */
	size_t work_len;
};

/* Ensures f->work holds len doubles.  0 or -1. */
static int reserve_work(iir_sos *f, size_t len)
{
	if (f->work_len >= len)
		return 0;
	double *w = realloc(f->work, len * sizeof *w);
	if (!w)
		return -1;
	f->work = w;
	f->work_len = len;
	return 0;
}

int iir_sos_sections(const iir_sos *f)
{
	return f->nsec;
}

iir_sos *iir_sos_new(const double *sos, int nsec)
{
	if (nsec < 1)
		return NULL;
	for (int s = 0; s < nsec; s++)
		if (sos[6 * s + 3] != 1)
			return NULL;
	iir_sos *f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->nsec = nsec;
	f->ngroups = (nsec + 3) / 4;
	size_t padded = 4 * (size_t)f->ngroups;
	double **arrays[] = {&f->b0, &f->b1, &f->b2, &f->a1, &f->a2, &f->k1, &f->k2};
	bool ok = true;
	for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++)
		ok = ok && (*arrays[i] = calloc(padded, sizeof(double)));
	ok = ok && (f->z = calloc(2 * padded, sizeof(double))) && (f->zi = calloc(2 * padded, sizeof(double))) &&
	     (f->sos = malloc(6 * (size_t)nsec * sizeof(double)));
	if (!ok) {
		iir_sos_free(f);
		return NULL;
	}
	memcpy(f->sos, sos, 6 * (size_t)nsec * sizeof(double));
	for (size_t s = 0; s < padded; s++) {
		const double identity[6] = {1, 0, 0, 1, 0, 0};
		const double *c = s < (size_t)nsec ? sos + 6 * s : identity;
		f->b0[s] = c[0];
		f->b1[s] = c[1];
		f->b2[s] = c[2];
		f->a1[s] = c[4];
		f->a2[s] = c[5];
		f->k1[s] = c[1] - c[4] * c[0];
		f->k2[s] = c[2] - c[5] * c[0];
	}
	iir_sos_zi(sos, nsec, f->zi);
	f->padlen = iir_sos_padlen(sos, nsec);
	if (f->ngroups > 1 && reserve_work(f, CHUNK)) {
		iir_sos_free(f);
		return NULL;
	}
	return f;
}

void iir_sos_free(iir_sos *f)
{
	if (!f)
		return;
	free(f->b0);
	free(f->b1);
	free(f->b2);
	free(f->a1);
	free(f->a2);
	free(f->k1);
	free(f->k2);
	free(f->z);
	free(f->zi);
	free(f->sos);
	free(f->work);
	free(f);
}

void iir_sos_reset(iir_sos *f)
{
	memset(f->z, 0, 8 * (size_t)f->ngroups * sizeof(double));
}

void iir_sos_set_state(iir_sos *f, const double *zi, double scale)
{
	iir_sos_reset(f);
	for (int i = 0; zi && i < 2 * f->nsec; i++)
		f->z[i] = scale * zi[i];
}

void iir_sos_get_state(const iir_sos *f, double *zi)
{
	memcpy(zi, f->z, 2 * (size_t)f->nsec * sizeof(double));
}

/* One section over a double buffer, in place. */
SER_KERNEL static void section_run(iir_sos *f, int s, double *x, size_t n)
{
	double b0 = f->b0[s], b1 = f->b1[s], b2 = f->b2[s], a1 = f->a1[s], a2 = f->a2[s];
	double z0 = f->z[2 * s], z1 = f->z[2 * s + 1];
	for (size_t i = 0; i < n; i++) {
		double v = x[i], y = b0 * v + z0;
		z0 = (b1 * v - a1 * y) + z1;
		z1 = b2 * v - a2 * y;
		x[i] = y;
	}
	f->z[2 * s] = z0;
	f->z[2 * s + 1] = z1;
}

/* Group g (sections 4g .. 4g+3), sample after sample: for pieces too short
 * for the pipeline. */
#define DEFINE_GROUP_SCALAR(NAME, TIN, TOUT)                                   \
	SER_KERNEL static void NAME(iir_sos *f, int g, const TIN *in, TOUT *out, size_t n) \
	{                                                                      \
		for (size_t i = 0; i < n; i++) {                               \
			double v = in[i];                                      \
			for (int s = 4 * g; s < 4 * g + 4; s++) {              \
				double *z = f->z + 2 * s;                      \
				double y = f->b0[s] * v + z[0];                \
				z[0] = (f->b1[s] * v - f->a1[s] * y) + z[1];   \
				z[1] = f->b2[s] * v - f->a2[s] * y;            \
				v = y;                                         \
			}                                                      \
			out[i] = (TOUT)v;                                      \
		}                                                              \
	}

/* Group g through the skewed pipeline (see above).  n >= 2 SKEW. */
#define DEFINE_GROUP_PIPELINE(NAME, SCALAR, TIN, TOUT)                                        \
	SER_KERNEL static void NAME(iir_sos *f, int g, const TIN *in, TOUT *out, size_t n)     \
	{                                                                                     \
		const int s0 = 4 * g;                                                         \
		double *zs = f->z + 2 * s0;                                                   \
		/* prologue: lane j starts at sample SKEW - LAG j */                          \
		double head[SKEW];                                                            \
		for (int i = 0; i < SKEW; i++)                                                \
			head[i] = in[i];                                                      \
		section_run(f, s0, head, SKEW);                                               \
		section_run(f, s0 + 1, head, 2 * LAG);                                        \
		section_run(f, s0 + 2, head, LAG);                                            \
		v4d ring[LAG];                                                                \
		for (int j = 0; j < LAG; j++)                                                 \
			ring[j] = (v4d){head[2 * LAG + j], head[LAG + j], head[j], 0};        \
		v4d b0, k1, k2, na1, na2, z0, z1;                                             \
		memcpy(&b0, f->b0 + s0, sizeof b0);                                           \
		memcpy(&k1, f->k1 + s0, sizeof k1);                                           \
		memcpy(&k2, f->k2 + s0, sizeof k2);                                           \
		memcpy(&na1, f->a1 + s0, sizeof na1);                                         \
		memcpy(&na2, f->a2 + s0, sizeof na2);                                         \
		na1 = -na1;                                                                   \
		na2 = -na2;                                                                   \
		z0 = (v4d){zs[0], zs[2], zs[4], zs[6]};                                       \
		z1 = (v4d){zs[1], zs[3], zs[5], zs[7]};                                       \
		size_t end = SKEW + (n - SKEW) / LAG * LAG;                                   \
		for (size_t t = SKEW; t < end; t += LAG) {                                    \
			for (int j = 0; j < LAG; j++) {                                       \
				v4d x = SHIFT_UP(ring[j]);                                    \
				x[0] = in[t + j];                                             \
				v4d y = b0 * x + z0;                                          \
				v4d nz0 = na1 * z0 + (k1 * x + z1);                           \
				z1 = na2 * z0 + k2 * x;                                       \
				z0 = nz0;                                                     \
				ring[j] = y;                                                  \
				out[t + j - SKEW] = (TOUT)y[3];                               \
			}                                                                     \
		}                                                                             \
		for (int j = 0; j < 4; j++) {                                                 \
			zs[2 * j] = z0[j];                                                    \
			zs[2 * j + 1] = z1[j];                                                \
		}                                                                             \
		/* epilogue: bring lanes 1..3 up to sample end */                             \
		double tail[SKEW];                                                            \
		for (int j = 0; j < LAG; j++) {                                               \
			tail[2 * LAG + j] = ring[j][0];                                       \
			tail[LAG + j] = ring[j][1];                                           \
			tail[j] = ring[j][2];                                                 \
		}                                                                             \
		section_run(f, s0 + 1, tail + 2 * LAG, LAG);                                  \
		section_run(f, s0 + 2, tail + LAG, 2 * LAG);                                  \
		section_run(f, s0 + 3, tail, SKEW);                                           \
		for (int i = 0; i < SKEW; i++)                                                \
			out[end - SKEW + i] = (TOUT)tail[i];                                  \
		SCALAR(f, g, in + end, out + end, n - end);                                   \
	}

DEFINE_GROUP_SCALAR(group_scalar_dd, double, double)
DEFINE_GROUP_SCALAR(group_scalar_ff, float, float)
DEFINE_GROUP_PIPELINE(group_pipeline_dd, group_scalar_dd, double, double)
DEFINE_GROUP_PIPELINE(group_pipeline_ff, group_scalar_ff, float, float)

void iir_sos_run(iir_sos *f, const double *in, double *out, size_t n)
{
	for (int g = 0; g < f->ngroups; g++) {
		if (n >= 2 * SKEW)
			group_pipeline_dd(f, g, in, out, n);
		else
			group_scalar_dd(f, g, in, out, n);
		in = out;
	}
}

void iir_sos_run_f32(iir_sos *f, const float *in, float *out, size_t n)
{
	if (f->ngroups == 1) {
		if (n >= 2 * SKEW)
			group_pipeline_ff(f, 0, in, out, n);
		else
			group_scalar_ff(f, 0, in, out, n);
		return;
	}
	/* between groups the signal stays in double, in the chunk buffer that
	 * iir_sos_new reserved */
	for (size_t start = 0; start < n; start += CHUNK) {
		size_t len = n - start < CHUNK ? n - start : CHUNK;
		for (size_t i = 0; i < len; i++)
			f->work[i] = in[start + i];
		iir_sos_run(f, f->work, f->work, len);
		for (size_t i = 0; i < len; i++)
			out[start + i] = (float)f->work[i];
	}
}

int iir_sos_filtfilt_f32(iir_sos *f, const float *in, float *out, size_t n)
{
	size_t pad = f->padlen;
	if (n <= pad)
		return -2;
	size_t len = n + 2 * pad;
	if (reserve_work(f, len))
		return -1;
	double *e = f->work;
	/* odd extension: 2 x[0] - x[pad..1] before, 2 x[n-1] - x[n-2..n-1-pad] after */
	double first = in[0], last = in[n - 1];
	for (size_t i = 0; i < pad; i++) {
		e[i] = 2 * first - in[pad - i];
		e[pad + n + i] = 2 * last - in[n - 2 - i];
	}
	for (size_t i = 0; i < n; i++)
		e[pad + i] = in[i];
	iir_sos_set_state(f, f->zi, e[0]);
	iir_sos_run(f, e, e, len);
	for (size_t i = 0, j = len - 1; i < j; i++, j--) {
		double t = e[i];
		e[i] = e[j];
		e[j] = t;
	}
	iir_sos_set_state(f, f->zi, e[0]);
	iir_sos_run(f, e, e, len);
	for (size_t i = 0; i < n; i++)
		out[i] = (float)e[len - 1 - pad - i];
	return 0;
}
