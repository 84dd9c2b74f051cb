/* Finite-difference gradient checks of every layer kernel, in double.
 *
 * common/nn_layers.c is compiled here a second time with NN_REAL double
 * (cblas_dgemm), so the backward code checked is the code the model runs.
 * Each check builds a scalar L = sum_i r_i out_i with fixed random r and
 * compares the analytic gradient with central differences (step 1e-6):
 * max |analytic - numeric| / max |numeric| <= 1e-6.  Both convolution
 * strategies (chunked: im2col + GEMM, or direct kernels for one input
 * channel and for few channels; Winograd F(2x2, 3x3) forward; whole-batch) run on 2 threads; the convolution's
 * forward is also compared with a direct 7-loop convolution (1e-12).
 */
#define NN_REAL double
#define NN_GEMM cblas_dgemm
/* the double build of each kernel under a name of its own (the library's
 * float ones keep the plain names) */
#define nn_affine_relu_pool nn_affine_relu_pool_d
#define nn_bn_relu_backward nn_bn_relu_backward_d
#define nn_bn_stats nn_bn_stats_d
#define nn_colbn_apply nn_colbn_apply_d
#define nn_colbn_backward nn_colbn_backward_d
#define nn_colbn_stats nn_colbn_stats_d
#define nn_conv_backward nn_conv_backward_d
#define nn_conv_forward nn_conv_forward_d
#define nn_conv_kernels_size nn_conv_kernels_size_d
#define nn_conv_transform_kernels nn_conv_transform_kernels_d
#define nn_conv_plan_inference nn_conv_plan_inference_d
#define nn_conv_ws_size nn_conv_ws_size_d
#define nn_conv_plan nn_conv_plan_d
#define nn_conv_plan_chunked nn_conv_plan_chunked_d
#define nn_dropout_apply nn_dropout_apply_d
#define nn_head_backward nn_head_backward_d
#define nn_head_forward nn_head_forward_d
#define nn_linear_backward nn_linear_backward_d
#define nn_linear_forward nn_linear_forward_d
#define nn_log_softmax nn_log_softmax_d
#define nn_weighted_nll nn_weighted_nll_d
#define NN_LAYERS_NO_COMMON
/* Winograd's forward from 4 channels and in chunks of a few tiles, so that
 * small layers take it, with several chunks and an uneven last one */
#define WINOGRAD_MIN_CH 4
#define WINOGRAD_TILES 6
/* its weight gradient from 4 channels too, and the whole-batch Winograd
 * from 4 channels and 8 tiles */
#define WINOGRAD_GRAD_MIN_CH 4
#define WINOGRAD_WHOLE_MIN_CH 4
#define WINOGRAD_WHOLE_MIN_TILES 8
/* forward-only plans (kernels transformed ahead) from 4 channels and tiles */
#define WINOGRAD_AHEAD_MIN_CH 4
#define WINOGRAD_AHEAD_MIN_TILES 4
#include "nn_layers.c"
#include "nn_conv.c"

#include <stdio.h>
#include <stdlib.h>

#include "value.h"

#define TOL 1e-6
#define STEP 1e-6
static int failures;
static uint64_t rng = 42;

static double urand(void)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (double)(rng >> 11) * 0x1p-53;
}

static double *vec(size_t n, double scale)
{
	double *v = sv_aligned_alloc((n ? n : 1) * sizeof *v);
	if (!v) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	for (size_t i = 0; i < n; i++)
		v[i] = scale * (2 * urand() - 1);
	return v;
}

static double dot(const double *a, const double *b, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* Compares analytic g with central differences of loss() over x. */
static void fd_check(const char *what, double *x, size_t n, const double *g, double (*loss)(void *), void *ctx)
{
	double maxd = 0, maxn = 0;
	for (size_t i = 0; i < n; i++) {
		double keep = x[i];
		x[i] = keep + STEP;
		double lp = loss(ctx);
		x[i] = keep - STEP;
		double lm = loss(ctx);
		x[i] = keep;
		double num = (lp - lm) / (2 * STEP), d = fabs(num - g[i]);
		maxd = d > maxd ? d : maxd;
		maxn = fabs(num) > maxn ? fabs(num) : maxn;
	}
	double rel = maxn > 0 ? maxd / maxn : maxd;
	printf("%-44s n %5zu  max|g| %.3e  rel err %.2e\n", what, n, maxn, rel);
	if (!(rel <= TOL) || maxn == 0) {
		printf("FAIL: %s: relative error %.3e > %.0e (or zero gradient)\n", what, rel, TOL);
		failures++;
	}
}

static nn_pool *pool;

/* ---- convolution ---- */

typedef struct {
	nn_conv cv;
	nn_conv_ws ws;
	double *x, *wt, *z, *r, *keep;
} conv_t;

static double conv_loss(void *arg)
{
	conv_t *c = arg;
	size_t p = (size_t)c->cv.n * (size_t)c->cv.h * (size_t)c->cv.w;
	nn_conv_forward_d(pool, &c->cv, &c->ws, c->x, c->wt, NULL, c->z, c->keep);
	return dot(c->z, c->r, (size_t)c->cv.cout * p);
}

/* max |z - the definition's 7-loop sum| of c's last forward */
static double def_diff(const conv_t *c)
{
	const int cin = c->cv.cin, cout = c->cv.cout, n = c->cv.n, h = c->cv.h, w = c->cv.w;
	size_t p = (size_t)n * (size_t)h * (size_t)w;
	double maxd = 0;
	for (int co = 0; co < cout; co++)
		for (int img = 0; img < n; img++)
			for (int y = 0; y < h; y++)
				for (int x = 0; x < w; x++) {
					double s2 = 0;
					for (int ci = 0; ci < cin; ci++)
						for (int kh = 0; kh < 3; kh++)
							for (int kw = 0; kw < 3; kw++) {
								int yy = y + kh - 1, xx = x + kw - 1;
								if (yy < 0 || yy >= h || xx < 0 || xx >= w)
									continue;
								s2 += c->wt[((size_t)co * (size_t)cin + (size_t)ci) * 9 + (size_t)(kh * 3 + kw)] *
								      c->x[(size_t)ci * p + ((size_t)img * (size_t)h + (size_t)yy) * (size_t)w + (size_t)xx];
							}
					double d = fabs(s2 - c->z[(size_t)co * p + ((size_t)img * (size_t)h + (size_t)y) * (size_t)w + (size_t)x]);
					maxd = d > maxd ? d : maxd;
				}
	return maxd;
}

/* c->ws for c->cv, for a forward (backward 0) or both passes */
static void ws_alloc(conv_t *c, int backward)
{
	nn_conv_sizes s = nn_conv_ws_size_d(&c->cv, backward);
	c->ws.col = calloc((size_t)nn_pool_threads(pool), sizeof *c->ws.col);
	if (!c->ws.col) {
		printf("FAIL: out of memory\n");
		exit(1);
	}
	for (int t = 0; t < nn_pool_threads(pool); t++)
		c->ws.col[t] = vec(s.col, 0);
	c->ws.dw[0] = vec(s.dw, 0);
	c->ws.wflip = vec(s.wflip, 0);
	c->ws.full = vec(s.full, 0);
}

static void ws_free(conv_t *c)
{
	for (int t = 0; t < nn_pool_threads(pool); t++)
		free(c->ws.col[t]);
	free(c->ws.col);
	free(c->ws.dw[0]);
	free(c->ws.wflip);
	free(c->ws.full);
}

/* A forward-only plan (nn_conv_plan_inference) of a layer that takes
 * Winograd with its kernels transformed ahead: the forward from those
 * kernels against the definition.  Its workspace holds no kernels (ASan
 * would see a write past it). */
static void check_conv_ahead(int cin, int cout, int n, int h, int w, nn_conv_strategy want)
{
	conv_t c;
	memset(&c, 0, sizeof c);
	nn_conv_plan_inference_d(&c.cv, cin, cout, n, h, w);
	size_t p = (size_t)n * (size_t)h * (size_t)w, nw = (size_t)cout * (size_t)cin * 9;
	ws_alloc(&c, 0);
	c.x = vec((size_t)cin * p, 1);
	c.wt = vec(nw, 1);
	c.z = vec((size_t)cout * p, 0);
	double *u = vec(nn_conv_kernels_size_d(&c.cv), 0);
	nn_conv_transform_kernels_d(pool, &c.cv, c.wt, u);
	nn_conv_forward_d(pool, &c.cv, &c.ws, c.x, c.wt, u, c.z, NULL);
	double maxd = def_diff(&c);
	printf("conv %dx%d %d->%d, inference plan (%s, kernels ahead) forward max abs diff to the definition %.2e\n", h,
	       w, cin, cout, c.cv.strategy == NN_CONV_WINOGRAD ? "winograd" : "whole winograd", maxd);
	if (c.cv.strategy != want || !c.cv.kernels_ahead || nn_conv_kernels_size_d(&c.cv) != 16 * (size_t)cin * (size_t)cout) {
		printf("FAIL: %d->%d %dx%dx%d: inference plan strategy %d, kernels ahead %d\n", cin, cout, n, h, w,
		       (int)c.cv.strategy, c.cv.kernels_ahead);
		failures++;
	}
	if (!(maxd <= 1e-12)) {
		printf("FAIL: %d->%d: the forward from kernels transformed ahead differs from the definition by %.3e\n", cin,
		       cout, maxd);
		failures++;
	}
	ws_free(&c);
	free(c.x);
	free(c.wt);
	free(c.z);
	free(u);
}

static void check_conv(int chunk_rows, int cin, int cout, int n, int h, int w)
{
	conv_t c;
	memset(&c, 0, sizeof c);
	nn_conv_plan_chunked_d(&c.cv, cin, cout, n, h, w, chunk_rows);
	size_t p = (size_t)n * (size_t)h * (size_t)w, nw = (size_t)cout * (size_t)cin * 9;
	ws_alloc(&c, 1);
	c.keep = chunk_rows ? NULL : vec(nn_conv_ws_size_d(&c.cv, 1).full, 0);
	c.x = vec((size_t)cin * p, 1);
	c.wt = vec(nw, 1);
	c.z = vec((size_t)cout * p, 0);
	c.r = vec((size_t)cout * p, 1);
	/* forward against the definition */
	conv_loss(&c);
	double maxd = def_diff(&c);
	char what[96];
	static const char *const names[] = {"whole batch", "chunked", "direct", "small", "winograd", "whole winograd"};
	snprintf(what, sizeof what, "conv %dx%d %d->%d, chunk_rows %d (%s)", h, w, cin, cout, chunk_rows,
	         names[c.cv.strategy]);
	printf("%-44s forward max abs diff to the definition %.2e\n", what, maxd);
	if (!(maxd <= 1e-12)) {
		printf("FAIL: %s: forward differs from the definition by %.3e\n", what, maxd);
		failures++;
	}
	double *dw = vec(nw, 0), *dx = vec((size_t)cin * p, 0);
	/* acc = 1 on a pre-filled dw checks the accumulation too */
	for (size_t i = 0; i < nw; i++)
		dw[i] = 0.5;
	nn_conv_backward_d(pool, &c.cv, &c.ws, c.x, c.wt, c.r, dw, 1, dx, c.keep);
	for (size_t i = 0; i < nw; i++)
		dw[i] -= 0.5;
	char w1[128], w2[128];
	snprintf(w1, sizeof w1, "%s: dW", what);
	snprintf(w2, sizeof w2, "%s: dX", what);
	fd_check(w1, c.wt, nw, dw, conv_loss, &c);
	fd_check(w2, c.x, (size_t)cin * p, dx, conv_loss, &c);
	free(dw);
	free(dx);
	ws_free(&c);
	free(c.keep);
	free(c.x);
	free(c.wt);
	free(c.z);
	free(c.r);
}

/* ---- BatchNorm + ReLU + avg pool + dropout ---- */

typedef struct {
	int c, n, h, w, k, train;
	double *z, *gamma, *beta, *rmean, *rvar, *out, *r;
	double *mean, *invstd, *scale, *shift;
	uint8_t *mask;
} bn_t;

static void bn_prepare_d(bn_t *b)
{
	size_t p = (size_t)b->n * (size_t)b->h * (size_t)b->w;
	double m[64], v[64];
	if (b->train)
		nn_bn_stats_d(pool, b->c, p, b->z, m, v);
	for (int j = 0; j < b->c; j++) {
		double mu = b->train ? m[j] : b->rmean[j], var = b->train ? v[j] : b->rvar[j];
		b->mean[j] = mu;
		b->invstd[j] = 1 / sqrt(var + 1e-5);
		b->scale[j] = b->gamma[j] * b->invstd[j];
		b->shift[j] = b->beta[j] - mu * b->scale[j];
	}
}

static size_t bn_pout(const bn_t *b)
{
	return (size_t)b->c * (size_t)b->n * (size_t)(b->h / b->k) * (size_t)(b->w / b->k);
}

static double bn_loss(void *arg)
{
	bn_t *b = arg;
	bn_prepare_d(b);
	nn_affine_relu_pool_d(pool, b->c, b->n, b->h, b->w, b->k, b->z, b->scale, b->shift, b->mask, 1.25, b->out);
	return dot(b->out, b->r, bn_pout(b));
}

static void check_bn(int train, int k, bool dropout)
{
	bn_t b = {.c = 3, .n = 2, .h = 5, .w = 7, .k = k, .train = train};
	size_t p = (size_t)b.n * (size_t)b.h * (size_t)b.w, np = (size_t)b.c * p;
	b.z = vec(np, 1);
	for (size_t i = 0; i < np; i++)
		b.z[i] += 0.3 * (double)(i / p);
	b.gamma = vec((size_t)b.c, 0.5);
	b.beta = vec((size_t)b.c, 0.3);
	for (int j = 0; j < b.c; j++)
		b.gamma[j] += 1;
	b.rmean = vec((size_t)b.c, 0.2);
	b.rvar = vec((size_t)b.c, 0.3);
	for (int j = 0; j < b.c; j++)
		b.rvar[j] += 1;
	b.mean = vec((size_t)b.c, 0);
	b.invstd = vec((size_t)b.c, 0);
	b.scale = vec((size_t)b.c, 0);
	b.shift = vec((size_t)b.c, 0);
	b.out = vec(np, 0);
	size_t pout = bn_pout(&b);
	b.r = vec(pout, 1);
	if (dropout) {
		b.mask = malloc(pout);
		for (size_t i = 0; i < pout; i++)
			b.mask[i] = urand() > 0.3;
	}
	bn_loss(&b);
	double *dy = vec(pout, 0), *dz = vec(np, 0), *dg = vec((size_t)b.c, 0), *db = vec((size_t)b.c, 0);
	memcpy(dy, b.r, pout * sizeof *dy);
	if (dropout)
		nn_dropout_apply_d(pout, dy, b.mask, 1.25);
	size_t pin = np / (size_t)b.c;
	double *gt = vec((size_t)nn_pool_threads(pool) * pin, 0);
	nn_bn_relu_backward_d(pool, b.c, b.n, b.h, b.w, k, b.z, b.mean, b.invstd, b.gamma, b.scale, b.shift, dy, train,
	                      gt, dz, dg, db, 0);
	{ /* in place (dz = z): the same values, bit for bit, as g lives in the per-thread scratch */
		double *zi = vec(np, 0);
		double *dg2 = vec((size_t)b.c, 0), *db2 = vec((size_t)b.c, 0);
		memcpy(zi, b.z, np * sizeof *zi);
		nn_bn_relu_backward_d(pool, b.c, b.n, b.h, b.w, k, zi, b.mean, b.invstd, b.gamma, b.scale, b.shift, dy,
		                      train, gt, zi, dg2, db2, 0);
		if (memcmp(zi, dz, np * sizeof *zi) != 0 || memcmp(dg2, dg, (size_t)b.c * sizeof *dg) != 0 ||
		    memcmp(db2, db, (size_t)b.c * sizeof *db) != 0) {
			printf("FAIL: bn+relu+pool%d backward in place differs from the out-of-place one\n", k);
			failures++;
		}
		free(zi);
		free(dg2);
		free(db2);
	}
	free(gt);
	char what[96];
	snprintf(what, sizeof what, "bn+relu+pool%d%s (%s): ", k, dropout ? "+dropout" : "", train ? "train" : "eval");
	char w1[128], w2[128], w3[128];
	snprintf(w1, sizeof w1, "%sdz", what);
	snprintf(w2, sizeof w2, "%sdgamma", what);
	snprintf(w3, sizeof w3, "%sdbeta", what);
	fd_check(w1, b.z, np, dz, bn_loss, &b);
	fd_check(w2, b.gamma, (size_t)b.c, dg, bn_loss, &b);
	fd_check(w3, b.beta, (size_t)b.c, db, bn_loss, &b);
	free(dy), free(dz), free(dg), free(db), free(b.z), free(b.gamma), free(b.beta), free(b.rmean), free(b.rvar);
	free(b.mean), free(b.invstd), free(b.scale), free(b.shift), free(b.out), free(b.r), free(b.mask);
}

/* ---- bn0 (columns) ---- */

typedef struct {
	size_t rows;
	int cols, train;
	double *x, *gamma, *beta, *rmean, *rvar, *y, *r, *mean, *invstd, *scale, *shift;
} colbn_t;

static double colbn_loss(void *arg)
{
	colbn_t *c = arg;
	double m[8], v[8];
	nn_colbn_stats_d(c->rows, c->cols, c->x, m, v);
	for (int j = 0; j < c->cols; j++) {
		double mu = c->train ? m[j] : c->rmean[j], var = c->train ? v[j] : c->rvar[j];
		c->mean[j] = mu;
		c->invstd[j] = 1 / sqrt(var + 1e-5);
		c->scale[j] = c->gamma[j] * c->invstd[j];
		c->shift[j] = c->beta[j] - mu * c->scale[j];
	}
	nn_colbn_apply_d(pool, c->rows, c->cols, c->x, c->scale, c->shift, c->y);
	return dot(c->y, c->r, c->rows * (size_t)c->cols);
}

static void check_colbn(int train)
{
	colbn_t c = {.rows = 9, .cols = 5, .train = train};
	size_t n = c.rows * (size_t)c.cols;
	c.x = vec(n, 2);
	c.gamma = vec(5, 0.5);
	c.beta = vec(5, 1);
	c.rmean = vec(5, 1);
	c.rvar = vec(5, 0.5);
	for (int j = 0; j < 5; j++)
		c.gamma[j] += 1, c.rvar[j] += 1;
	c.y = vec(n, 0);
	c.r = vec(n, 1);
	c.mean = vec(5, 0), c.invstd = vec(5, 0), c.scale = vec(5, 0), c.shift = vec(5, 0);
	colbn_loss(&c);
	double *dx = vec(n, 0), *dg = vec(5, 0), *db = vec(5, 0);
	nn_colbn_backward_d(c.rows, c.cols, c.x, c.mean, c.invstd, c.gamma, c.r, train, dx, dg, db, 0);
	fd_check(train ? "bn0 over columns (train): dx" : "bn0 over columns (eval): dx", c.x, n, dx, colbn_loss, &c);
	fd_check(train ? "bn0 over columns (train): dgamma" : "bn0 over columns (eval): dgamma", c.gamma, 5, dg, colbn_loss, &c);
	fd_check(train ? "bn0 over columns (train): dbeta" : "bn0 over columns (eval): dbeta", c.beta, 5, db, colbn_loss, &c);
	free(dx), free(dg), free(db), free(c.x), free(c.gamma), free(c.beta), free(c.rmean), free(c.rvar), free(c.y);
	free(c.r), free(c.mean), free(c.invstd), free(c.scale), free(c.shift);
}

/* ---- head pooling ---- */

typedef struct {
	int c, n, h, w;
	double *x, *feat, *r;
	int *argmax;
} head_t;

static double head_loss(void *arg)
{
	head_t *hd = arg;
	nn_head_forward_d(hd->c, hd->n, hd->h, hd->w, hd->x, hd->feat, hd->argmax);
	return dot(hd->feat, hd->r, (size_t)hd->n * (size_t)hd->c);
}

static void check_head(void)
{
	head_t hd = {4, 3, 5, 2, NULL, NULL, NULL, NULL};
	size_t nx = (size_t)hd.c * (size_t)hd.n * (size_t)hd.h * (size_t)hd.w;
	hd.x = vec(nx, 1);
	hd.feat = vec((size_t)hd.n * (size_t)hd.c, 0);
	hd.r = vec((size_t)hd.n * (size_t)hd.c, 1);
	hd.argmax = malloc((size_t)hd.c * (size_t)hd.n * sizeof *hd.argmax);
	head_loss(&hd);
	double *dx = vec(nx, 0);
	nn_head_backward_d(hd.c, hd.n, hd.h, hd.w, hd.r, hd.argmax, dx);
	fd_check("head: mean over mel, max+mean over time", hd.x, nx, dx, head_loss, &hd);
	free(dx), free(hd.x), free(hd.feat), free(hd.r), free(hd.argmax);
}

/* ---- linear, log-softmax, weighted NLL ---- */

typedef struct {
	int n, in, out;
	double *x, *wt, *b, *y, *r;
	int *labels;
	double *cw;
	bool nll;
} lin_t;

static double lin_loss(void *arg)
{
	lin_t *l = arg;
	nn_linear_forward_d(l->n, l->in, l->out, l->x, l->wt, l->b, l->y);
	if (!l->nll)
		return dot(l->y, l->r, (size_t)l->n * (size_t)l->out);
	nn_log_softmax_d(l->n, l->out, l->y, l->y);
	return nn_weighted_nll_d(l->n, l->out, l->y, l->labels, l->cw, NULL);
}

static void check_linear(bool nll)
{
	lin_t l = {4, 6, 3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, nll};
	l.x = vec(24, 1), l.wt = vec(18, 1), l.b = vec(3, 1), l.y = vec(12, 0), l.r = vec(12, 1);
	int labels[4] = {2, 0, 1, 2};
	double cw[3] = {0.7, 1.3, 2.9};
	l.labels = labels;
	l.cw = cw;
	lin_loss(&l);
	double *dy = vec(12, 0), *dw = vec(18, 0), *db = vec(3, 0), *dx = vec(24, 0);
	if (nll)
		nn_weighted_nll_d(l.n, l.out, l.y, labels, cw, dy);
	else
		memcpy(dy, l.r, sizeof(double) * 12);
	nn_linear_backward_d(l.n, l.in, l.out, l.x, l.wt, dy, dw, db, 0, dx);
	fd_check(nll ? "linear+log-softmax+weighted NLL: dW" : "linear: dW", l.wt, 18, dw, lin_loss, &l);
	fd_check(nll ? "linear+log-softmax+weighted NLL: db" : "linear: db", l.b, 3, db, lin_loss, &l);
	fd_check(nll ? "linear+log-softmax+weighted NLL: dx" : "linear: dx", l.x, 24, dx, lin_loss, &l);
	free(dy), free(dw), free(db), free(dx), free(l.x), free(l.wt), free(l.b), free(l.y), free(l.r);
}

int main(void)
{
	openblas_set_num_threads(1);
	pool = nn_pool_new(2);
	if (!pool)
		return 2;
	check_conv(2, 3, 4, 2, 5, 5);   /* chunked im2col + GEMM, uneven last chunk */
	check_conv(2, 17, 3, 1, 3, 4);  /* chunked im2col + GEMM (too many channels for the direct kernel) */
	check_conv(2, 3, 4, 2, 5, 4);   /* chunked, few channels: direct kernel, one vector per row */
	check_conv(2, 3, 5, 2, 5, 8);   /* direct, odd output channel count, two vectors */
	check_conv(3, 4, 3, 1, 4, 16);  /* direct, four vectors */
	check_conv(0, 3, 4, 2, 5, 4);   /* whole batch */
	check_conv(3, 1, 5, 2, 4, 6);   /* the first layer: one input channel */
	check_conv(0, 5, 2, 1, 3, 2);   /* tiny image */
	check_conv(2, 4, 5, 2, 5, 7);   /* Winograd: odd height and width, one tile row per chunk */
	check_conv(2, 6, 4, 3, 4, 3);   /* Winograd: 3 tile rows per chunk across images, uneven last chunk */
	check_conv(1, 5, 6, 2, 1, 9);   /* Winograd: one-row images (half-empty tiles) */
	check_conv(4, 4, 4, 1, 6, 6);   /* Winograd: whole tiles only */
	check_conv(0, 4, 5, 2, 5, 7);   /* whole-batch Winograd: odd height and width, across images */
	check_conv(0, 6, 4, 3, 1, 9);   /* whole-batch Winograd: one-row images (half-empty tiles) */
	check_conv(0, 5, 7, 2, 4, 4);   /* whole-batch Winograd: whole tiles only, threads split 5 and 7 channels */
	check_conv(0, 4, 4, 1, 3, 3);   /* whole batch, 4 tiles: too few for Winograd */
	check_conv_ahead(4, 5, 2, 5, 7, NN_CONV_WHOLE_WINOGRAD);  /* inference: whole batch, odd sizes, across images */
	check_conv_ahead(4, 4, 1, 3, 3, NN_CONV_WHOLE_WINOGRAD);  /* inference: the 4 tiles the per-call plan refuses */
	check_conv_ahead(4, 6, 2, 41, 51, NN_CONV_WINOGRAD);      /* inference: chunked (over 4096 positions) */
	for (int train = 0; train < 2; train++) {
		check_bn(train, 1, false);
		check_bn(train, 2, false);
		check_bn(train, 2, true);
		check_colbn(train);
	}
	check_head();
	check_linear(false);
	check_linear(true);
	nn_pool_free(pool);
	if (failures)
		return 1;
	printf("ok\n");
	return 0;
}
