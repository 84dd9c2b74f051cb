/* The SOS cascade of common/iir.c against a plain transposed-direct-form-II
 * loop written here (scipy's sosfilt recursion): every length around the
 * pipeline's thresholds, 1 to 9 sections (one to three groups of four),
 * signals fed whole and in random pieces, double and float paths, in place
 * and not, the final state, and sosfilt_zi's steady state.
 * Tolerance: 1e-12 of the output's peak (double path), float rounding of
 * input and output (float path, 2e-7 of the peak). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "iir.h"

static double worst_ratio; /* largest error / tolerance seen */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static double uniform(void)
{
	rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
	return (double)(rng_state >> 11) / 9007199254740992.0;
}

static void reference(const double *sos, int nsec, double *z, const double *in, double *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		double x = in[i];
		for (int s = 0; s < nsec; s++) {
			const double *c = sos + 6 * s;
			double y = c[0] * x + z[2 * s];
			z[2 * s] = c[1] * x - c[4] * y + z[2 * s + 1];
			z[2 * s + 1] = c[2] * x - c[5] * y;
			x = y;
		}
		out[i] = x;
	}
}

static double peak(const double *x, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++)
		m = fmax(m, fabs(x[i]));
	return m;
}

/* A band-pass of nsec sections, or (odd cases) a cascade with general
 * numerators, so that b0 != 1 and b1, b2 take any value in later sections. */
static void make_sos(int nsec, int variant, double *sos)
{
	char err[256];
	double lo = 300 + 700 * uniform(), hi = lo + 20 + 2000 * uniform();
	if (iir_butter_bandpass(nsec, lo, hi, 16000, sos, err, sizeof err)) {
		printf("FAIL: design: %s\n", err);
		exit(1);
	}
	if (variant)
		for (int s = 1; s < nsec; s++) {
			sos[6 * s] = 0.5 + uniform();
			sos[6 * s + 1] = uniform() - 0.5;
			sos[6 * s + 2] = uniform() - 0.5;
		}
}

static void test_lengths(int nsec, int variant)
{
	double sos[6 * IIR_MAX_ORDER];
	make_sos(nsec, variant, sos);
	iir_sos *f = iir_sos_new(sos, nsec);
	CHECK(f, "iir_sos_new");
	if (!f)
		return;
	const size_t maxn = 20000;
	double *x = malloc(maxn * sizeof *x), *ref = malloc(maxn * sizeof *ref), *y = malloc(maxn * sizeof *y);
	float *xf = malloc(maxn * sizeof *xf), *yf = malloc(maxn * sizeof *yf);
	if (!x || !ref || !y || !xf || !yf) {
		printf("FAIL: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < maxn; i++) {
		xf[i] = (float)(0.7 * (uniform() - 0.5));
		x[i] = xf[i];
	}
	static const size_t lengths[] = {0, 1, 2, 3, 11, 12, 13, 23, 24, 25, 27, 28, 29, 31, 36, 37, 40, 41, 100, 1001, 8191, 8192, 8193, 19999};
	for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++) {
		size_t n = lengths[li];
		double zr[2 * IIR_MAX_ORDER] = {0}, zf[2 * IIR_MAX_ORDER];
		reference(sos, nsec, zr, x, ref, n);
		double tol = 1e-12 * fmax(peak(ref, n), 1e-3);

		/* double, out of place, whole */
		iir_sos_reset(f);
		iir_sos_run(f, x, y, n);
		double e = 0;
		for (size_t i = 0; i < n; i++)
			e = fmax(e, fabs(y[i] - ref[i]));
		worst_ratio = fmax(worst_ratio, e / tol);
		CHECK(e <= tol, "nsec %d variant %d n %zu: double path error %g > %g", nsec, variant, n, e, tol);
		iir_sos_get_state(f, zf);
		for (int i = 0; i < 2 * nsec; i++)
			CHECK(fabs(zf[i] - zr[i]) <= tol, "nsec %d n %zu: final state %d: %g vs %g", nsec, n, i, zf[i], zr[i]);

		/* double, in place, in random pieces */
		memcpy(y, x, n * sizeof *y);
		iir_sos_reset(f);
		for (size_t at = 0; at < n;) {
			size_t piece = 1 + (size_t)(uniform() * (uniform() < 0.5 ? 40 : 3000));
			if (piece > n - at)
				piece = n - at;
			iir_sos_run(f, y + at, y + at, piece);
			at += piece;
		}
		e = 0;
		for (size_t i = 0; i < n; i++)
			e = fmax(e, fabs(y[i] - ref[i]));
		worst_ratio = fmax(worst_ratio, e / tol);
		CHECK(e <= tol, "nsec %d n %zu: pieces error %g > %g", nsec, n, e, tol);

		/* float, out of place and in place */
		double ftol = 2e-7 * fmax(peak(ref, n), 1e-3);
		iir_sos_reset(f);
		iir_sos_run_f32(f, xf, yf, n);
		e = 0;
		for (size_t i = 0; i < n; i++)
			e = fmax(e, fabs(yf[i] - ref[i]));
		worst_ratio = fmax(worst_ratio, e / ftol);
		CHECK(e <= ftol, "nsec %d n %zu: float path error %g > %g", nsec, n, e, ftol);
		float *inplace = malloc((n + 1) * sizeof *inplace);
		if (!inplace)
			exit(1);
		memcpy(inplace, xf, n * sizeof *inplace);
		iir_sos_reset(f);
		iir_sos_run_f32(f, inplace, inplace, n);
		for (size_t i = 0; i < n; i++)
			CHECK(inplace[i] == yf[i], "nsec %d n %zu: in place differs at %zu", nsec, n, i);
		free(inplace);
	}
	iir_sos_free(f);
	free(x);
	free(ref);
	free(y);
	free(xf);
	free(yf);
}

/* Started from sosfilt_zi scaled by c, a constant input c gives the
 * cascade's DC gain times c from the first sample on. */
static void test_zi(void)
{
	const double sos[3 * 6] = {
		0.2, 0.3, 0.1, 1, -0.5, 0.2,
		1.0, -0.4, 0.3, 1, 0.3, 0.4,
		0.7, 0.7, 0.0, 1, -1.2, 0.5,
	};
	double gain = 1, zi[6];
	for (int s = 0; s < 3; s++)
		gain *= (sos[6 * s] + sos[6 * s + 1] + sos[6 * s + 2]) / (1 + sos[6 * s + 4] + sos[6 * s + 5]);
	iir_sos_zi(sos, 3, zi);
	iir_sos *f = iir_sos_new(sos, 3);
	CHECK(f, "iir_sos_new");
	if (!f)
		return;
	double x[200], y[200];
	for (int i = 0; i < 200; i++)
		x[i] = -0.75;
	iir_sos_set_state(f, zi, -0.75);
	iir_sos_run(f, x, y, 200);
	for (int i = 0; i < 200; i++)
		CHECK(fabs(y[i] - gain * -0.75) <= 1e-14, "zi: sample %d: %.17g, steady state %.17g", i, y[i], gain * -0.75);
	/* one b2 = 0 but no a2 = 0: nothing taken off; both in one section: one tap less */
	CHECK(iir_sos_padlen(sos, 3) == 21, "padlen %zu, expected 21", iir_sos_padlen(sos, 3));
	double first_order[6 * 3];
	memcpy(first_order, sos, sizeof first_order);
	first_order[17] = 0;
	CHECK(iir_sos_padlen(first_order, 3) == 18, "padlen %zu, expected 18", iir_sos_padlen(first_order, 3));
	iir_sos_free(f);
	double bad[6] = {1, 0, 0, 2, 0, 0};
	CHECK(iir_sos_new(bad, 1) == NULL, "a0 != 1 accepted");
}

static void test_design_errors(void)
{
	double sos[6 * IIR_MAX_ORDER];
	char err[256];
	CHECK(iir_butter_bandpass(0, 450, 550, 16000, sos, err, sizeof err) == -1 && strstr(err, "order 0"), "order 0");
	CHECK(iir_butter_bandpass(IIR_MAX_ORDER + 1, 450, 550, 16000, sos, err, sizeof err) == -1, "order too high");
	CHECK(iir_butter_bandpass(4, 550, 450, 16000, sos, err, sizeof err) == -1 && strstr(err, "550"), "low > high");
	CHECK(iir_butter_bandpass(4, 0, 450, 16000, sos, err, sizeof err) == -1, "low 0");
	CHECK(iir_butter_bandpass(4, 450, 8000, 16000, sos, err, sizeof err) == -1 && strstr(err, "8000"), "high at Nyquist");
	CHECK(iir_butter_bandpass(4, 450, 550, NAN, sos, err, sizeof err) == -1, "rate NaN");
}

int main(void)
{
	for (int nsec = 1; nsec <= 9; nsec++)
		for (int variant = 0; variant < 2; variant++)
			test_lengths(nsec, variant);
	test_zi();
	test_design_errors();
	printf("largest error %.3g of its tolerance\n", worst_ratio);
	return check_done();
}
