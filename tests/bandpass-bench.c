/* Times the SOS cascade of common/iir.c in process, for
 * tests/bench/bench-bandpass.py.  Usage:
 *     bandpass-bench SIGNAL.f32 RATE LOW HIGH ITEM_SAMPLES REPS
 * SIGNAL.f32 is raw little-endian float32.  Prints "name seconds" lines, the
 * best of REPS runs, for: the cascade over the whole signal (float32 in and
 * out, as the program runs it), two plain scalar loops written here for
 * comparison (scipy's sample-by-sample order, and one whole pass per
 * section; double state, float32 in and out), and the zero-phase filter
 * item by item (ITEM_SAMPLES each).  Then the largest difference between
 * the cascade and the plain loop, as a check that all compute the same. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "iir.h"

#define ORDER 4

static void sample_major(const double *sos, const float *in, float *out, size_t n)
{
	double z[2 * ORDER] = {0};
	for (size_t i = 0; i < n; i++) {
		double x = in[i];
		for (int s = 0; s < ORDER; s++) {
			const double *c = sos + 6 * s;
			double y = c[0] * x + z[2 * s];
			z[2 * s] = (c[1] * x - c[4] * y) + z[2 * s + 1];
			z[2 * s + 1] = c[2] * x - c[5] * y;
			x = y;
		}
		out[i] = (float)x;
	}
}

static void section_major(const double *sos, const float *in, float *out, double *tmp, size_t n)
{
	for (size_t i = 0; i < n; i++)
		tmp[i] = in[i];
	for (int s = 0; s < ORDER; s++) {
		const double *c = sos + 6 * s;
		double z0 = 0, z1 = 0;
		for (size_t i = 0; i < n; i++) {
			double x = tmp[i], y = c[0] * x + z0;
			z0 = (c[1] * x - c[4] * y) + z1;
			z1 = c[2] * x - c[5] * y;
			tmp[i] = y;
		}
	}
	for (size_t i = 0; i < n; i++)
		out[i] = (float)tmp[i];
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr, "usage: bandpass-bench SIGNAL.f32 RATE LOW HIGH ITEM_SAMPLES REPS\n");
		return 1;
	}
	FILE *f = fopen(argv[1], "rb");
	if (!f || fseek(f, 0, SEEK_END)) {
		perror(argv[1]);
		return 2;
	}
	long bytes = ftell(f);
	size_t n = (size_t)bytes / sizeof(float), item = (size_t)atol(argv[5]);
	int reps = atoi(argv[6]);
	float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *ref = malloc(n * sizeof *ref);
	double *tmp = malloc(n * sizeof *tmp);
	if (!x || !y || !ref || !tmp || fseek(f, 0, SEEK_SET) || fread(x, sizeof *x, n, f) != n) {
		fprintf(stderr, "bandpass-bench: cannot read %s\n", argv[1]);
		return 2;
	}
	fclose(f);
	/* touch the outputs first: page faults are not the filter's cost */
	memset(y, 0, n * sizeof *y);
	memset(ref, 0, n * sizeof *ref);
	memset(tmp, 0, n * sizeof *tmp);
	double sos[6 * ORDER];
	char err[256];
	if (iir_butter_bandpass(ORDER, atof(argv[3]), atof(argv[4]), atof(argv[2]), sos, err, sizeof err)) {
		fprintf(stderr, "bandpass-bench: %s\n", err);
		return 1;
	}
	iir_sos *filt = iir_sos_new(sos, ORDER);
	if (!filt)
		return 2;
	double best[4] = {INFINITY, INFINITY, INFINITY, INFINITY};
	for (int r = 0; r < reps; r++) {
		double t = cli_now();
		iir_sos_reset(filt);
		iir_sos_run_f32(filt, x, y, n);
		best[0] = fmin(best[0], cli_now() - t);
		t = cli_now();
		sample_major(sos, x, ref, n);
		best[1] = fmin(best[1], cli_now() - t);
		t = cli_now();
		section_major(sos, x, ref, tmp, n);
		best[2] = fmin(best[2], cli_now() - t);
	}
	double diff = 0;
	for (size_t i = 0; i < n; i++)
		diff = fmax(diff, fabs((double)y[i] - ref[i]));
	float *z = (float *)tmp; /* reused: the zero-phase output */
	for (int r = 0; r < reps; r++) {
		double t = cli_now();
		for (size_t at = 0; at + item <= n; at += item)
			if (iir_sos_filtfilt_f32(filt, x + at, z + at, item))
				return 2;
		best[3] = fmin(best[3], cli_now() - t);
	}
	printf("samples %zu\n", n);
	printf("core %.6f\n", best[0]);
	printf("plain-sample-major %.6f\n", best[1]);
	printf("plain-section-major %.6f\n", best[2]);
	printf("core-zero-phase-items %.6f\n", best[3]);
	printf("max-diff %.3g\n", diff);
	iir_sos_free(filt);
	free(x);
	free(y);
	free(ref);
	free(tmp);
	return 0;
}
