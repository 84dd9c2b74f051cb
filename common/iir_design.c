/* iir_design.c - Butterworth band-pass design, step by step as scipy's
 * butter + zpk2sos do it, and the steady state of a cascade (iir.h). */
#include <complex.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iir.h"

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

/* The 2n digital poles of the order-n band-pass with prewarped edges
 * (scipy's buttap, lp2bp_zpk, bilinear_zpk at fs = 2), and its gain. */
static double bandpass_poles(int n, double low, double high, double rate, double complex *pd)
{
	/* edges as fractions of Nyquist, prewarped for the bilinear transform at fs = 2 */
	double w1 = 4 * tan(M_PI * (2 * low / rate) / 2);
	double w2 = 4 * tan(M_PI * (2 * high / rate) / 2);
	double bw = w2 - w1, wo = sqrt(w1 * w2);

	/* analog prototype poles -exp(i pi m / 2n), m = -n+1, -n+3, ..., n-1,
	 * each split into two band-pass poles */
	double complex pa[MAX_ROOTS];
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
	return pow(bw, n) * creal(div_smith(pow(4, n), den));
}

/* The numerator of a section around pole p1: the zeros nearest it (two,
 * one, or none left), taken out of z. */
static void section_zeros(root *z, int *nz, double complex p1, double *s)
{
	if (*nz == 0) {
		s[0] = s[1] = 0;
		s[2] = 1;
		return;
	}
	int iz = nearest(z, *nz, p1);
	double complex z1 = z[iz].v;
	remove_root(z, nz, iz);
	if (*nz > 0) {
		iz = nearest(z, *nz, p1);
		poly2(z1, z[iz].v, true, s);
		remove_root(z, nz, iz);
	} else {
		s[0] = 0;
		s[1] = 1;
		s[2] = -creal(z1);
	}
}

/* zpk2sos, pairing 'nearest', of np poles p and the n zeros at -1 and n at
 * +1: sections built from the last, each time around the pole closest to
 * the unit circle and the zeros nearest it.  Every zero is real, which
 * rules out zpk2sos's pairing with a complex zero. */
static void pair_sections(root *p, int np, int n, double *sos)
{
	root z[MAX_ROOTS];
	int nz = 2 * n;
	for (int i = 0; i < n; i++) {
		z[i] = (root){-1, true};
		z[n + i] = (root){1, true};
	}
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
		section_zeros(z, &nz, p1.v, s);
		poly2(p1.v, p2, true, s + 3);
	}
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
	double complex pd[MAX_ROOTS];
	double gain = bandpass_poles(order, low, high, rate, pd);
	root p[MAX_ROOTS];
	int np = split_conjugates(pd, 2 * order, p, MAX_ROOTS);
	if (np < 0) {
		snprintf(err, errlen, "internal error: unpaired complex pole");
		return -1;
	}
	pair_sections(p, np, order, sos);
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

