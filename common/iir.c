/* iir.c - the second-order-section cascade (iir.h); the design is in
 * iir_design.c. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "iir.h"

/* One section, transposed direct form II (scipy's sosfilt):
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

/* The per-group loops, once per sample type (iir_group.h). */
#define IIR_TIN double
#define IIR_TOUT double
#define IIR_GROUP_SCALAR group_scalar_dd
#define IIR_GROUP_PIPELINE group_pipeline_dd
#include "iir_group.h"

#define IIR_TIN float
#define IIR_TOUT float
#define IIR_GROUP_SCALAR group_scalar_ff
#define IIR_GROUP_PIPELINE group_pipeline_ff
#include "iir_group.h"

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
