/* The Winograd convolutions (chunked and whole-batch) in float, on layers
 * of Cnn14's full width (t-nn-grad checks the algorithm in double on tiny
 * shapes, and PyTorch's gradient test cannot reach layers this large):
 * forward z and dx against the im2col + GEMM computation of the same layer,
 * and dW bit for bit (that part is im2col + GEMM in both); and all three
 * bit for bit the same on 1 and 2 threads.
 *
 * Tolerance: max |a - b| / max |b| <= 4e-6 for z and dx.  The two sum the
 * same products in different orders (Winograd adds the transforms' partial
 * sums), so they differ by float rounding: measured 6e-7..8e-7 here.  A
 * wrong transform or a missing product gives differences of order 1. */
#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "nn_conv.h"
#include "value.h"

#define TOL 4e-6

static uint64_t rng = 5;

static float *vec(size_t n, float scale)
{
	float *v = sv_aligned_alloc((n ? n : 1) * sizeof *v);
	NEED(v);
	for (size_t i = 0; i < n; i++) {
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		v[i] = scale * (float)((double)(rng >> 11) * 0x1p-53 - 0.5);
	}
	return v;
}

static double rel(const float *a, const float *b, size_t n)
{
	double d = 0, m = 0;
	for (size_t i = 0; i < n; i++) {
		d = fmax(d, fabs((double)a[i] - b[i]));
		m = fmax(m, fabs((double)b[i]));
	}
	return m > 0 ? d / m : d;
}

typedef struct {
	nn_conv cv;
	nn_conv_ws ws;
	float *z, *dw, *dx;
} run_t;

static void run(nn_pool *pool, const nn_conv *cv, const float *x, const float *wt, const float *dz, run_t *r)
{
	r->cv = *cv;
	nn_conv_sizes s = nn_conv_ws_size(cv, 1);
	int threads = nn_pool_threads(pool);
	NEED((r->ws.col = calloc((size_t)threads, sizeof *r->ws.col)) != NULL);
	for (int t = 0; t < threads; t++)
		r->ws.col[t] = vec(s.col, 0);
	r->ws.dw[0] = vec(s.dw, 0);
	r->ws.wflip = vec(s.wflip, 0);
	r->ws.full = vec(s.full, 0);
	size_t p = (size_t)cv->n * (size_t)cv->h * (size_t)cv->w;
	r->z = vec((size_t)cv->cout * p, 0);
	r->dw = vec((size_t)cv->cout * (size_t)cv->cin * 9, 0);
	r->dx = vec((size_t)cv->cin * p, 0);
	nn_conv_forward(pool, cv, &r->ws, x, wt, NULL, r->z, NULL);
	nn_conv_backward(pool, cv, &r->ws, x, wt, dz, r->dw, 0, r->dx, NULL);
	for (int t = 0; t < threads; t++)
		free(r->ws.col[t]);
	free(r->ws.col);
	free(r->ws.dw[0]);
	free(r->ws.wflip);
	free(r->ws.full);
}

static void check_layer(nn_pool *pool, nn_pool *pool1, int cin, int cout, int n, int h, int w)
{
	nn_conv wino;
	nn_conv_plan(&wino, cin, cout, n, h, w);
	bool whole = wino.chunk_rows == 0;
	CHECK(wino.strategy == (whole ? NN_CONV_WHOLE_WINOGRAD : NN_CONV_WINOGRAD), "%d->%d %dx%dx%d: strategy %d",
	      cin, cout, n, h, w, (int)wino.strategy);
	nn_conv plain = wino;
	plain.strategy = whole ? NN_CONV_WHOLE_BATCH : NN_CONV_CHUNKED;
	size_t p = (size_t)n * (size_t)h * (size_t)w, nw = (size_t)cout * (size_t)cin * 9;
	float *x = vec((size_t)cin * p, 2), *wt = vec(nw, 0.1f), *dz = vec((size_t)cout * p, 1);
	run_t a, b, one;
	run(pool, &wino, x, wt, dz, &a);
	run(pool, &plain, x, wt, dz, &b);
	run(pool1, &wino, x, wt, dz, &one);
	CHECK(memcmp(a.z, one.z, (size_t)cout * p * sizeof *a.z) == 0 &&
	          memcmp(a.dx, one.dx, (size_t)cin * p * sizeof *a.dx) == 0 &&
	          memcmp(a.dw, one.dw, nw * sizeof *a.dw) == 0,
	      "%d->%d: 1 and 2 threads differ", cin, cout);
	free(one.z), free(one.dw), free(one.dx);
	double dzr = rel(a.z, b.z, (size_t)cout * p), dxr = rel(a.dx, b.dx, (size_t)cin * p);
	double dwr = rel(a.dw, b.dw, nw);
	printf("%4d->%-4d %dx%dx%d, %s: Winograd vs im2col: z %.2e, dx %.2e, dW %.2e\n", cin, cout, n, h, w,
	       whole ? "whole batch" : "chunked", dzr, dxr, dwr);
	CHECK(dzr <= TOL, "%d->%d: forward differs by %.3e", cin, cout, dzr);
	CHECK(dxr <= TOL, "%d->%d: dx differs by %.3e", cin, cout, dxr);
	CHECK(dwr <= TOL, "%d->%d: dW differs by %.3e", cin, cout, dwr);
	free(x), free(wt), free(dz);
	free(a.z), free(a.dw), free(a.dx), free(b.z), free(b.dw), free(b.dx);
}

/* z of a forward pass alone, planned by cv (u: its kernels transformed
 * ahead, or NULL) */
static float *forward(nn_pool *pool, const nn_conv *cv, const float *x, const float *wt, const float *u)
{
	nn_conv_sizes s = nn_conv_ws_size(cv, 0);
	int threads = nn_pool_threads(pool);
	nn_conv_ws ws = {NULL, {NULL}, NULL, vec(s.full, 0)};
	NEED((ws.col = calloc((size_t)threads, sizeof *ws.col)) != NULL);
	for (int t = 0; t < threads; t++)
		ws.col[t] = vec(s.col, 0);
	float *z = vec((size_t)cv->cout * (size_t)cv->n * (size_t)cv->h * (size_t)cv->w, 0);
	nn_conv_forward(pool, cv, &ws, x, wt, u, z, NULL);
	for (int t = 0; t < threads; t++)
		free(ws.col[t]);
	free(ws.col);
	free(ws.full);
	return z;
}

/* An inference plan (nn_conv_plan_inference) reads kernels transformed
 * ahead: bit for bit the per-call plan's result where that is Winograd too
 * (the same transform, made earlier), within TOL of its im2col where the
 * inference plan alone takes Winograd. */
static void check_ahead(nn_pool *pool, int cin, int cout, int n, int h, int w)
{
	nn_conv ahead, per_call;
	nn_conv_plan_inference(&ahead, cin, cout, n, h, w);
	nn_conv_plan(&per_call, cin, cout, n, h, w);
	CHECK(ahead.kernels_ahead && nn_conv_kernels_size(&ahead) == 16 * (size_t)cin * (size_t)cout,
	      "%d->%d %dx%dx%d: the inference plan reads no kernels transformed ahead", cin, cout, n, h, w);
	CHECK(nn_conv_kernels_size(&per_call) == 0, "%d->%d: a per-call plan reads kernels ahead", cin, cout);
	size_t p = (size_t)n * (size_t)h * (size_t)w, nw = (size_t)cout * (size_t)cin * 9;
	float *x = vec((size_t)cin * p, 2), *wt = vec(nw, 0.1f), *u = vec(nn_conv_kernels_size(&ahead), 0);
	nn_conv_transform_kernels(pool, &ahead, wt, u);
	float *za = forward(pool, &ahead, x, wt, u), *zp = forward(pool, &per_call, x, wt, NULL);
	bool wino = per_call.strategy == NN_CONV_WINOGRAD || per_call.strategy == NN_CONV_WHOLE_WINOGRAD;
	double d = rel(za, zp, (size_t)cout * p);
	printf("%4d->%-4d %dx%dx%d, inference plan, kernels ahead: vs the per-call plan (%s) %.2e\n", cin, cout, n, h, w,
	       wino ? "Winograd" : "im2col", d);
	if (wino)
		CHECK(memcmp(za, zp, (size_t)cout * p * sizeof *za) == 0, "%d->%d: kernels ahead change the result", cin,
		      cout);
	else
		CHECK(d <= TOL, "%d->%d: inference plan differs by %.3e", cin, cout, d);
	free(x), free(wt), free(u), free(za), free(zp);
}

int main(void)
{
	openblas_set_num_threads(1);
	nn_pool *pool = nn_pool_new(2), *pool1 = nn_pool_new(1);
	NEED(pool && pool1);
	check_layer(pool, pool1, 256, 512, 8, 37, 8);  /* Cnn14 block 4 at full width, batch 8 x 300 frames */
	check_layer(pool, pool1, 512, 1024, 8, 18, 4); /* block 5 */
	check_layer(pool, pool1, 256, 256, 4, 17, 7);  /* odd height and width: ragged tiles */
	check_layer(pool, pool1, 64, 128, 2, 75, 32);  /* block 2 (chunked, dW by im2col), two images, an odd height */
	check_layer(pool, pool1, 128, 128, 2, 75, 32); /* chunked, dW by Winograd too */
	check_layer(pool, pool1, 128, 256, 1, 151, 33); /* chunked, odd height and width */
	check_layer(pool, pool1, 128, 64, 1, 150, 33); /* chunked, odd width, fewer outputs than inputs */
	check_ahead(pool, 512, 1024, 8, 18, 4);  /* block 5: Winograd either way */
	check_ahead(pool, 128, 128, 2, 75, 32);  /* chunked: Winograd either way */
	check_ahead(pool, 512, 1024, 8, 9, 2);   /* block 6's shape, 40 tiles: Winograd for inference only */
	check_ahead(pool, 32, 64, 1, 27, 8);     /* Cnn14 / 8 block 4 at batch 1: few tiles, few channels */
	check_ahead(pool, 32, 32, 2, 2, 4);      /* t-nn-model's block 5 (channels / 32, 40 frames): 4 tiles */
	check_ahead(pool, 32, 32, 3, 2, 4);      /* ... and 6 */
	nn_pool_free(pool);
	nn_pool_free(pool1);
	return check_done();
}
