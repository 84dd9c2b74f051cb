/* nn_layers.c - see nn_layers.h.  Built for float by the library; a test may
 * include it again for double (then NN_LAYERS_NO_COMMON skips the
 * type-independent part already in the library). */
#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "cpu.h"
#include "nn_layers.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#ifndef NN_LAYERS_NO_COMMON
typedef struct {
	uint64_t base;
	double p;
	uint8_t *mask;
	size_t n;
} dropout_ctx;

SER_KERNEL static void dropout_task(void *arg, int tid, int nth)
{
	const dropout_ctx *c = arg;
	size_t lo, hi;
	nn_split(c->n, 64, tid, nth, &lo, &hi);
	const uint64_t threshold = (uint64_t)(c->p * 16777216.0);
	for (size_t i = lo; i < hi; i++)
		c->mask[i] = (nn_mix64(c->base + (i + 1) * NN_GOLDEN) >> 40) >= threshold;
}

void nn_dropout_mask(nn_pool *pool, uint64_t seed, uint64_t counter, int site, double p, uint8_t *mask,
                     size_t n)
{
	dropout_ctx c = {nn_mix64(seed ^ nn_mix64(counter * 64 + (uint64_t)site)), p, mask, n};
	nn_pool_run(pool, dropout_task, &c);
}
#endif

static inline void gemm(int ta, int tb, size_t m, size_t n, size_t k, const nn_real *a, size_t lda,
                        const nn_real *b, size_t ldb, nn_real beta, nn_real *c, size_t ldc)
{
	if (m == 0 || n == 0)
		return;
	if (k == 0) {
		if (beta == 0)
			for (size_t i = 0; i < m; i++)
				memset(c + i * ldc, 0, n * sizeof *c);
		return;
	}
	NN_GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n,
	        (int)k, 1, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* ---- convolution ---- */

/* col rows c*9+kh*3+kw (c in [c0,c1)), columns: image rows [r0,r1) of x. */
SER_KERNEL static void im2col(const nn_real *x, size_t ldx, int c0, int c1, int h, int w, size_t r0, size_t r1,
                   nn_real *col, size_t ldc)
{
	const size_t sz = sizeof *x;
	for (int c = c0; c < c1; c++) {
		const nn_real *xc = x + (size_t)c * ldx;
		for (int kh = 0; kh < 3; kh++)
			for (int kw = 0; kw < 3; kw++) {
				nn_real *dst = col + ((size_t)c * 9 + (size_t)(kh * 3 + kw)) * ldc;
				for (size_t r = r0; r < r1; r++, dst += w) {
					size_t img = r / (size_t)h;
					int hh = (int)(r % (size_t)h) + kh - 1;
					if (hh < 0 || hh >= h) {
						memset(dst, 0, (size_t)w * sz);
						continue;
					}
					const nn_real *src = xc + (img * (size_t)h + (size_t)hh) * (size_t)w;
					if (kw == 0) {
						dst[0] = 0;
						memcpy(dst + 1, src, (size_t)(w - 1) * sz);
					} else if (kw == 1) {
						memcpy(dst, src, (size_t)w * sz);
					} else {
						memcpy(dst, src + 1, (size_t)(w - 1) * sz);
						dst[w - 1] = 0;
					}
				}
			}
	}
}

/* The adjoint of im2col over all image rows, for channels [c0,c1): dx += scatter(col). */
SER_KERNEL static void col2im(const nn_real *col, size_t ldc, int c0, int c1, int h, int w, size_t rows, nn_real *dx,
                   size_t ldx)
{
	for (int c = c0; c < c1; c++) {
		nn_real *xc = dx + (size_t)c * ldx;
		for (int kh = 0; kh < 3; kh++)
			for (int kw = 0; kw < 3; kw++) {
				const nn_real *src = col + ((size_t)c * 9 + (size_t)(kh * 3 + kw)) * ldc;
				for (size_t r = 0; r < rows; r++, src += w) {
					size_t img = r / (size_t)h;
					int hh = (int)(r % (size_t)h) + kh - 1;
					if (hh < 0 || hh >= h)
						continue;
					nn_real *dst = xc + (img * (size_t)h + (size_t)hh) * (size_t)w;
					if (kw == 0)
						for (int i = 1; i < w; i++)
							dst[i - 1] += src[i];
					else if (kw == 1)
						for (int i = 0; i < w; i++)
							dst[i] += src[i];
					else
						for (int i = 0; i + 1 < w; i++)
							dst[i + 1] += src[i];
				}
			}
	}
}

/* Work units of a whole-batch convolution: blocks of output channels (and
 * of input channels for im2col/col2im) of a size that depends on the layer
 * only, so that results do not depend on the thread count. */
static size_t channel_block(size_t channels)
{
	size_t b = (channels + 7) / 8;
	b = (b + 15) / 16 * 16;
	return b < 16 ? 16 : b;
}

static size_t conv_chunks(const nn_conv *cv)
{
	size_t rows = (size_t)cv->n * (size_t)cv->h, cr = (size_t)cv->chunk_rows;
	return (rows + cr - 1) / cr;
}

nn_conv_sizes NN_FN(nn_conv_ws_size)(const nn_conv *cv, int backward)
{
	nn_conv_sizes s = {0, 0, 0, 0};
	size_t p = (size_t)cv->n * (size_t)cv->h * (size_t)cv->w;
	if (cv->chunk_rows > 0) {
		size_t rows = MIN((size_t)cv->chunk_rows, (size_t)cv->n * (size_t)cv->h);
		s.col = 9 * (size_t)(backward ? MAX(cv->cin, cv->cout) : cv->cin) * rows * (size_t)cv->w;
		if (backward) {
			s.dw = conv_chunks(cv) * (size_t)cv->cout * (size_t)cv->cin * 9;
			s.wflip = (size_t)cv->cout * (size_t)cv->cin * 9;
		}
	} else {
		s.full = 9 * (size_t)cv->cin * p;
	}
	return s;
}

typedef struct {
	const nn_conv *cv;
	nn_conv_ws *ws;
	const nn_real *x, *wt, *dz;
	nn_real *z, *col, *dw, *dx;
	const nn_real *kept;
	int acc;
	nn_pool *pool;
	atomic_size_t next[3];   /* work-claiming counters, one per phase */
} conv_ctx;

/* ---- one input channel (the first layer): direct, no im2col ---- */

#define DIRECT_MAX_COUT 64
#define DIRECT_MAX_W 1024

static bool conv_direct(const nn_conv *cv)
{
	return cv->cin == 1 && cv->chunk_rows > 0 && cv->cout <= DIRECT_MAX_COUT && cv->w <= DIRECT_MAX_W;
}

/* Row y of image img of a one-channel plane, zero-padded by one on both
 * sides (pad[0..w+1]); a zero row outside the image. */
static void padded_row(const nn_real *plane, int h, int w, size_t img, int y, nn_real *pad)
{
	pad[0] = pad[w + 1] = 0;
	if (y < 0 || y >= h)
		memset(pad + 1, 0, (size_t)w * sizeof *pad);
	else
		memcpy(pad + 1, plane + (img * (size_t)h + (size_t)y) * (size_t)w, (size_t)w * sizeof *pad);
}

SER_KERNEL static void direct_forward_rows(const conv_ctx *c, size_t r0, size_t r1)
{
	const nn_conv *cv = c->cv;
	const int h = cv->h, w = cv->w;
	const size_t p = (size_t)cv->n * (size_t)h * (size_t)w;
	nn_real pad[3][DIRECT_MAX_W + 2];
	for (size_t r = r0; r < r1; r++) {
		size_t img = r / (size_t)h;
		int y = (int)(r % (size_t)h);
		for (int kh = 0; kh < 3; kh++)
			padded_row(c->x, h, w, img, y + kh - 1, pad[kh]);
		for (int co = 0; co < cv->cout; co++) {
			const nn_real *k = c->wt + (size_t)co * 9;
			nn_real *z = c->z + (size_t)co * p + r * (size_t)w;
			for (int x = 0; x < w; x++) {
				nn_real s = 0;
				for (int kh = 0; kh < 3; kh++)
					s += k[kh * 3] * pad[kh][x] + k[kh * 3 + 1] * pad[kh][x + 1] + k[kh * 3 + 2] * pad[kh][x + 2];
				z[x] = s;
			}
		}
	}
}

/* dW partial of rows [r0,r1) into part (cout*9), and dX of those rows. */
SER_KERNEL static void direct_backward_rows(const conv_ctx *c, size_t r0, size_t r1, nn_real *part)
{
	const nn_conv *cv = c->cv;
	const int h = cv->h, w = cv->w, cout = cv->cout;
	const size_t p = (size_t)cv->n * (size_t)h * (size_t)w;
	nn_real pad[3][DIRECT_MAX_W + 2];
	enum { L = 8 };
	nn_real lanes[DIRECT_MAX_COUT * 9][L];
	memset(lanes, 0, sizeof lanes);
	for (size_t r = r0; r < r1; r++) {
		size_t img = r / (size_t)h;
		int y = (int)(r % (size_t)h);
		if (c->dw) {
			for (int kh = 0; kh < 3; kh++)
				padded_row(c->x, h, w, img, y + kh - 1, pad[kh]);
			for (int co = 0; co < cout; co++) {
				const nn_real *dz = c->dz + (size_t)co * p + r * (size_t)w;
				for (int t = 0; t < 9; t++) {
					const nn_real *xs = pad[t / 3] + t % 3;
					nn_real *l = lanes[co * 9 + t];
					int x = 0;
					for (; x + L <= w; x += L)
						for (int j = 0; j < L; j++)
							l[j] += dz[x + j] * xs[x + j];
					for (; x < w; x++)
						l[0] += dz[x] * xs[x];
				}
			}
		}
		if (c->dx) {
			/* dx[y][x] = sum_co,kh,kw W[co][kh][kw] dz[co][y-kh+1][x-kw+1] */
			nn_real *dx = c->dx + r * (size_t)w;
			memset(dx, 0, (size_t)w * sizeof *dx);
			for (int kh = 0; kh < 3; kh++) {
				int yy = y - kh + 1;
				if (yy < 0 || yy >= h)
					continue;
				for (int co = 0; co < cout; co++) {
					padded_row(c->dz + (size_t)co * p, h, w, img, yy, pad[0]);
					const nn_real *k = c->wt + (size_t)co * 9 + kh * 3;
					for (int x = 0; x < w; x++)
						dx[x] += k[0] * pad[0][x + 2] + k[1] * pad[0][x + 1] + k[2] * pad[0][x];
				}
			}
		}
	}
	if (c->dw)
		for (int i = 0; i < cout * 9; i++) {
			nn_real v = 0;
			for (int j = 0; j < L; j++)
				v += lanes[i][j];
			part[i] = v;
		}
}

/* ---- few channels: direct, register-blocked over a row ---- */

/* With 8 to 16 channels an im2col matrix is read only 8 to 16 times by the
 * product, so packing it costs as much as the arithmetic; these layers
 * (the first blocks of narrow networks) are convolved directly instead,
 * from a buffer of each output row's three zero-padded input rows. */
#ifndef SMALL_MAX_CH
#define SMALL_MAX_CH 16
#endif
typedef nn_real vreal __attribute__((vector_size(32)));
typedef nn_real vrealu __attribute__((vector_size(32), aligned(sizeof(nn_real)), may_alias));
#define VL ((int)(32 / sizeof(nn_real)))

SER_VINLINE vreal vload(const nn_real *p) { return *(const vrealu *)p; }
SER_VINLINE void vstore(nn_real *p, vreal v) { *(vrealu *)p = v; }
SER_VINLINE nn_real vsum(vreal v)
{
	nn_real s = 0;
	for (int j = 0; j < VL; j++)
		s += v[j];
	return s;
}

static bool conv_small(const nn_conv *cv)
{
	return cv->chunk_rows > 0 && cv->cin > 1 && cv->cin <= SMALL_MAX_CH && cv->cout <= SMALL_MAX_CH &&
	       cv->w % VL == 0;
}

static size_t small_row_len(int w)
{
	return ((size_t)w + 2 + (size_t)VL - 1) / (size_t)VL * (size_t)VL;
}

/* buf[((r-r0)*c + ci)*3 + kh] = row y+kh-1 of channel ci of image r's image, padded: [0, x.., 0]. */
SER_KERNEL static void small_rows(const nn_real *x, size_t p, int c, int h, int w, size_t r0, size_t r1, nn_real *buf)
{
	const size_t wp = small_row_len(w);
	for (size_t r = r0; r < r1; r++) {
		size_t img = r / (size_t)h;
		int y = (int)(r % (size_t)h);
		for (int ci = 0; ci < c; ci++)
			for (int kh = 0; kh < 3; kh++) {
				nn_real *d = buf + (((r - r0) * (size_t)c + (size_t)ci) * 3 + (size_t)kh) * wp;
				int yy = y + kh - 1;
				memset(d, 0, wp * sizeof *d);
				if (yy >= 0 && yy < h)
					memcpy(d + 1, x + (size_t)ci * p + (img * (size_t)h + (size_t)yy) * (size_t)w, (size_t)w * sizeof *d);
			}
	}
}

/* out[co][r][x0 .. x0+nv*VL) for co and co+1 (two: co+1 < cout) from the rows buffer; k (cout, cin, 9). */
SER_VINLINE void small_out(const nn_real *rows, int cin, size_t wp, const nn_real *k, int co, bool two, int x0,
                             int nv, nn_real *o0, nn_real *o1)
{
	vreal a0[4] = {0}, a1[4] = {0};
	const nn_real *k0 = k + (size_t)co * (size_t)cin * 9, *k1 = two ? k0 + (size_t)cin * 9 : k0;
	for (int ci = 0; ci < cin; ci++)
		for (int kh = 0; kh < 3; kh++) {
			const nn_real *row = rows + ((size_t)ci * 3 + (size_t)kh) * wp + x0;
			for (int kw = 0; kw < 3; kw++) {
				nn_real w0 = k0[ci * 9 + kh * 3 + kw], w1 = k1[ci * 9 + kh * 3 + kw];
				for (int v = 0; v < nv; v++) {
					vreal in = vload(row + v * VL + kw);
					a0[v] += in * w0;
					a1[v] += in * w1;
				}
			}
		}
	for (int v = 0; v < nv; v++) {
		vstore(o0 + x0 + v * VL, a0[v]);
		if (two)
			vstore(o1 + x0 + v * VL, a1[v]);
	}
}

/* out (cout x P) rows [r0,r1) = conv of the channels in buf with k. */
SER_KERNEL static void small_conv_rows(const nn_real *buf, int cin, int cout, int w, size_t p, size_t r0, size_t r1,
                            const nn_real *k, nn_real *out)
{
	const size_t wp = small_row_len(w);
	for (size_t r = r0; r < r1; r++) {
		const nn_real *rows = buf + (r - r0) * (size_t)cin * 3 * wp;
		for (int co = 0; co < cout; co += 2) {
			bool two = co + 1 < cout;
			nn_real *o0 = out + (size_t)co * p + r * (size_t)w, *o1 = two ? o0 + p : o0;
			int x0 = 0;
			for (; x0 + 4 * VL <= w; x0 += 4 * VL)
				small_out(rows, cin, wp, k, co, two, x0, 4, o0, o1);
			for (; x0 + 2 * VL <= w; x0 += 2 * VL)
				small_out(rows, cin, wp, k, co, two, x0, 2, o0, o1);
			for (; x0 < w; x0 += VL)
				small_out(rows, cin, wp, k, co, two, x0, 1, o0, o1);
		}
	}
}

/* part (cout x cin*9) = dW of rows [r0,r1): sum over rows and x of dz * shifted input. */
SER_KERNEL static void small_dw_rows(const nn_real *buf, int cin, int cout, int w, size_t p, size_t r0, size_t r1,
                          const nn_real *dz, nn_real *part)
{
	const size_t wp = small_row_len(w);
	for (int co = 0; co < cout; co++)
		for (int ci = 0; ci < cin; ci++) {
			vreal acc[9] = {0};
			for (size_t r = r0; r < r1; r++) {
				const nn_real *d = dz + (size_t)co * p + r * (size_t)w;
				const nn_real *rows = buf + (((r - r0) * (size_t)cin + (size_t)ci) * 3) * wp;
				for (int x0 = 0; x0 < w; x0 += VL) {
					vreal g = vload(d + x0);
					for (int kh = 0; kh < 3; kh++)
						for (int kw = 0; kw < 3; kw++)
							acc[kh * 3 + kw] += g * vload(rows + (size_t)kh * wp + (size_t)(x0 + kw));
				}
			}
			for (int t = 0; t < 9; t++)
				part[((size_t)co * (size_t)cin + (size_t)ci) * 9 + (size_t)t] = vsum(acc[t]);
		}
}

SER_KERNEL static void conv_forward_task(void *arg, int tid, int nth)
{
	conv_ctx *c = arg;
	const nn_conv *cv = c->cv;
	const size_t rows = (size_t)cv->n * (size_t)cv->h, p = rows * (size_t)cv->w, k = 9 * (size_t)cv->cin;
	size_t j;
	(void)nth;
	if (cv->chunk_rows > 0) {
		const size_t cr = (size_t)cv->chunk_rows, chunks = conv_chunks(cv);
		nn_real *col = c->ws->col[tid];
		while ((j = atomic_fetch_add(&c->next[0], 1)) < chunks) {
			size_t r0 = j * cr, r1 = MIN(rows, r0 + cr), nc = (r1 - r0) * (size_t)cv->w;
			if (conv_direct(cv)) {
				direct_forward_rows(c, r0, r1);
				continue;
			}
			if (conv_small(cv)) {
				small_rows(c->x, p, cv->cin, cv->h, cv->w, r0, r1, col);
				small_conv_rows(col, cv->cin, cv->cout, cv->w, p, r0, r1, c->wt, c->z);
				continue;
			}
			im2col(c->x, p, 0, cv->cin, cv->h, cv->w, r0, r1, col, nc);
			gemm(0, 0, (size_t)cv->cout, nc, k, c->wt, k, col, nc, 0, c->z + r0 * (size_t)cv->w, p);
		}
		return;
	}
	const size_t cib = channel_block((size_t)cv->cin), cob = channel_block((size_t)cv->cout);
	while ((j = atomic_fetch_add(&c->next[0], 1)) * cib < (size_t)cv->cin)
		im2col(c->x, p, (int)(j * cib), (int)MIN((size_t)cv->cin, (j + 1) * cib), cv->h, cv->w, 0, rows, c->col, p);
	nn_pool_barrier(c->pool);
	while ((j = atomic_fetch_add(&c->next[1], 1)) * cob < (size_t)cv->cout) {
		size_t lo = j * cob, hi = MIN((size_t)cv->cout, lo + cob);
		gemm(0, 0, hi - lo, p, k, c->wt + lo * k, k, c->col, p, 0, c->z + lo * p, p);
	}
}

void NN_FN(nn_conv_forward)(nn_pool *pool, const nn_conv *cv, nn_conv_ws *ws, const nn_real *x,
                            const nn_real *wt, nn_real *z, nn_real *keep_col)
{
	conv_ctx c = {cv, ws, x, wt, NULL, z, keep_col ? keep_col : ws->full, NULL, NULL, NULL, 0, pool, {0, 0, 0}};
	nn_pool_run(pool, conv_forward_task, &c);
}

SER_KERNEL static void conv_backward_task(void *arg, int tid, int nth)
{
	conv_ctx *c = arg;
	const nn_conv *cv = c->cv;
	nn_conv_ws *ws = c->ws;
	const size_t rows = (size_t)cv->n * (size_t)cv->h, p = rows * (size_t)cv->w;
	const size_t cin = (size_t)cv->cin, cout = (size_t)cv->cout, k = 9 * cin, nw = cout * k;
	size_t lo, hi, j;
	if (cv->chunk_rows > 0) {
		const size_t cr = (size_t)cv->chunk_rows, chunks = conv_chunks(cv);
		if (c->dx && !conv_direct(cv)) {
			/* dx is the convolution of dz with the flipped, transposed kernel. */
			nn_split(cin, 1, tid, nth, &lo, &hi);
			for (size_t ci = lo; ci < hi; ci++)
				for (size_t co = 0; co < cout; co++)
					for (int t = 0; t < 9; t++)
						ws->wflip[ci * 9 * cout + co * 9 + (size_t)t] = c->wt[co * k + ci * 9 + (size_t)(8 - t)];
			nn_pool_barrier(c->pool);
		}
		nn_real *col = ws->col[tid];
		while ((j = atomic_fetch_add(&c->next[0], 1)) < chunks) {
			size_t r0 = j * cr, r1 = MIN(rows, r0 + cr), nc = (r1 - r0) * (size_t)cv->w, off = r0 * (size_t)cv->w;
			if (conv_direct(cv)) {
				direct_backward_rows(c, r0, r1, c->dw ? ws->dw[0] + j * nw : NULL);
				continue;
			}
			if (conv_small(cv)) {
				if (c->dw) {
					small_rows(c->x, p, cv->cin, cv->h, cv->w, r0, r1, col);
					small_dw_rows(col, cv->cin, cv->cout, cv->w, p, r0, r1, c->dz, ws->dw[0] + j * nw);
				}
				if (c->dx) {
					small_rows(c->dz, p, cv->cout, cv->h, cv->w, r0, r1, col);
					small_conv_rows(col, cv->cout, cv->cin, cv->w, p, r0, r1, ws->wflip, c->dx);
				}
				continue;
			}
			if (c->dw) {
				im2col(c->x, p, 0, cv->cin, cv->h, cv->w, r0, r1, col, nc);
				gemm(0, 1, cout, k, nc, c->dz + off, p, col, nc, 0, ws->dw[0] + j * nw, k);
			}
			if (c->dx) {
				im2col(c->dz, p, 0, cv->cout, cv->h, cv->w, r0, r1, col, nc);
				gemm(0, 0, cin, nc, 9 * cout, ws->wflip, 9 * cout, col, nc, 0, c->dx + off, p);
			}
		}
		if (!c->dw)
			return;
		/* per-chunk partial gradients, summed in chunk order */
		nn_pool_barrier(c->pool);
		nn_split(nw, 16, tid, nth, &lo, &hi);
		for (size_t i = lo; i < hi; i++) {
			nn_real s = c->acc ? c->dw[i] : 0;
			for (size_t t = 0; t < chunks; t++)
				s += ws->dw[0][t * nw + i];
			c->dw[i] = s;
		}
		return;
	}
	const size_t cib = channel_block(cin), cob = channel_block(cout);
	const nn_real *col = c->kept;
	if (!col) {
		while ((j = atomic_fetch_add(&c->next[0], 1)) * cib < cin)
			im2col(c->x, p, (int)(j * cib), (int)MIN(cin, (j + 1) * cib), cv->h, cv->w, 0, rows, ws->full, p);
		nn_pool_barrier(c->pool);
		col = ws->full;
	}
	if (c->dw)
		while ((j = atomic_fetch_add(&c->next[1], 1)) * cob < cout) {
			lo = j * cob;
			hi = MIN(cout, lo + cob);
			gemm(0, 1, hi - lo, k, p, c->dz + lo * p, p, col, p, c->acc ? 1 : 0, c->dw + lo * k, k);
		}
	if (!c->dx)
		return;
	if (col == ws->full)
		nn_pool_barrier(c->pool);
	while ((j = atomic_fetch_add(&c->next[2], 1)) * cib < cin) {
		lo = j * cib;
		hi = MIN(cin, lo + cib);
		gemm(1, 0, 9 * (hi - lo), p, cout, c->wt + 9 * lo, k, c->dz, p, 0, ws->full + 9 * lo * p, p);
		memset(c->dx + lo * p, 0, (hi - lo) * p * sizeof *c->dx);
		col2im(ws->full, p, (int)lo, (int)hi, cv->h, cv->w, rows, c->dx, p);
	}
}

void NN_FN(nn_conv_backward)(nn_pool *pool, const nn_conv *cv, nn_conv_ws *ws, const nn_real *x,
                             const nn_real *wt, const nn_real *dz, nn_real *dw, int acc, nn_real *dx,
                             const nn_real *kept_col)
{
	conv_ctx c = {cv, ws, x, wt, dz, NULL, NULL, dw, dx, kept_col, acc, pool, {0, 0, 0}};
	nn_pool_run(pool, conv_backward_task, &c);
}

/* ---- BatchNorm, ReLU, pooling ---- */

typedef struct {
	int c, n, h, w, k;
	size_t p;
	const nn_real *z, *scale, *shift, *mean, *invstd, *gamma, *dy;
	double *dmean, *dvar;
	const uint8_t *mask;
	nn_real keep_scale;
	nn_real *out, *dz, *dgamma, *dbeta;
	int batch_stats, acc;
} bn_ctx;

/* s1 = sum a' and s2 = sum a'*b' over n values, where a' = a - ashift and
 * b' = b - bshift (b NULL: b' = a'), in blocks of float lanes
 * (vectorised) added into double. */
SER_KERNEL static void sums2(const nn_real *a, nn_real ashift, const nn_real *b, nn_real bshift, size_t n, double *s1,
                  double *s2)
{
	enum { L = 8, BLOCK = 256 };
	double d1 = 0, d2 = 0;
	for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
		size_t len = MIN((size_t)BLOCK, n - i0), i = 0;
		nn_real l1[L] = {0}, l2[L] = {0};
		const nn_real *pa = a + i0, *pb = b ? b + i0 : NULL;
		for (; i + L <= len; i += L)
			for (int j = 0; j < L; j++) {
				nn_real v = pa[i + (size_t)j] - ashift;
				l1[j] += v;
				l2[j] += v * (pb ? pb[i + (size_t)j] - bshift : v);
			}
		for (; i < len; i++) {
			nn_real v = pa[i] - ashift;
			l1[0] += v;
			l2[0] += v * (pb ? pb[i] - bshift : v);
		}
		nn_real r1 = 0, r2 = 0;
		for (int j = 0; j < L; j++) {
			r1 += l1[j];
			r2 += l2[j];
		}
		d1 += r1;
		d2 += r2;
	}
	*s1 = d1;
	*s2 = d2;
}

SER_KERNEL static void bn_stats_task(void *arg, int tid, int nth)
{
	const bn_ctx *b = arg;
	size_t lo, hi;
	nn_split((size_t)b->c, 1, tid, nth, &lo, &hi);
	for (size_t ch = lo; ch < hi; ch++) {
		const nn_real *z = b->z + ch * b->p;
		/* shifted by the first value: no cancellation when |mean| >> std */
		double s1, s2, n = (double)b->p;
		sums2(z, z[0], NULL, 0, b->p, &s1, &s2);
		double dm = s1 / n;
		b->dmean[ch] = z[0] + dm;
		double v = s2 / n - dm * dm;
		b->dvar[ch] = v > 0 ? v : 0;
	}
}

void NN_FN(nn_bn_stats)(nn_pool *pool, int c, size_t p, const nn_real *z, double *mean, double *var)
{
	bn_ctx b = {.c = c, .p = p, .z = z, .dmean = mean, .dvar = var};
	nn_pool_run(pool, bn_stats_task, &b);
}

SER_KERNEL static void affine_relu_pool_task(void *arg, int tid, int nth)
{
	const bn_ctx *b = arg;
	const int h2 = b->h / b->k, w2 = b->w / b->k;
	const size_t pin = (size_t)b->n * (size_t)b->h * (size_t)b->w, pout = (size_t)b->n * (size_t)h2 * (size_t)w2;
	size_t lo, hi;
	nn_split((size_t)b->c, 1, tid, nth, &lo, &hi);
	for (size_t ch = lo; ch < hi; ch++) {
		const nn_real s = b->scale[ch], t = b->shift[ch];
		const nn_real *z = b->z + ch * pin;
		nn_real *o = b->out + ch * pout;
		if (b->k == 1) {
			for (size_t i = 0; i < pin; i++) {
				nn_real v = s * z[i] + t;
				o[i] = v > 0 ? v : 0;
			}
		} else {
			for (int img = 0; img < b->n; img++)
				for (int y = 0; y < h2; y++) {
					const nn_real *z0 = z + ((size_t)img * (size_t)b->h + 2 * (size_t)y) * (size_t)b->w;
					const nn_real *z1 = z0 + b->w;
					nn_real *od = o + ((size_t)img * (size_t)h2 + (size_t)y) * (size_t)w2;
					for (int x = 0; x < w2; x++) {
						nn_real a = s * z0[2 * x] + t, bb = s * z0[2 * x + 1] + t;
						nn_real cc = s * z1[2 * x] + t, d = s * z1[2 * x + 1] + t;
						a = a > 0 ? a : 0;
						bb = bb > 0 ? bb : 0;
						cc = cc > 0 ? cc : 0;
						d = d > 0 ? d : 0;
						od[x] = (((a + bb) + cc) + d) / 4;
					}
				}
		}
		if (b->mask) {
			const uint8_t *m = b->mask + ch * pout;
			for (size_t i = 0; i < pout; i++)
				o[i] = m[i] ? o[i] * b->keep_scale : 0;
		}
	}
}

void NN_FN(nn_affine_relu_pool)(nn_pool *pool, int c, int n, int h, int w, int k, const nn_real *z,
                                const nn_real *scale, const nn_real *shift, const uint8_t *mask,
                                nn_real keep_scale, nn_real *out)
{
	bn_ctx b = {.c = c, .n = n, .h = h, .w = w, .k = k, .z = z, .scale = scale, .shift = shift,
	            .mask = mask, .keep_scale = keep_scale, .out = out};
	nn_pool_run(pool, affine_relu_pool_task, &b);
}

SER_KERNEL static void bn_relu_backward_task(void *arg, int tid, int nth)
{
	const bn_ctx *b = arg;
	const int w = b->w, h2 = b->h / b->k, w2 = w / b->k;
	const size_t pin = (size_t)b->n * (size_t)b->h * (size_t)w;
	const size_t pout = (size_t)b->n * (size_t)h2 * (size_t)w2;
	nn_real up[4096];
	size_t lo, hi;
	nn_split((size_t)b->c, 1, tid, nth, &lo, &hi);
	for (size_t ch = lo; ch < hi; ch++) {
		const nn_real s = b->scale[ch], t = b->shift[ch], m = b->mean[ch], is = b->invstd[ch];
		const nn_real *zc = b->z + ch * pin, *dyc = b->dy + ch * pout;
		nn_real *g = b->dz + ch * pin;
		/* g = upstream gradient (un-pooled) where the ReLU passed it, into dz */
		if (b->k == 1) {
			for (size_t i = 0; i < pin; i++)
				g[i] = s * zc[i] + t > 0 ? dyc[i] : 0;
		} else {
			for (int img = 0; img < b->n; img++)
				for (int y = 0; y < b->h; y++) {
					size_t off = ((size_t)img * (size_t)b->h + (size_t)y) * (size_t)w;
					const nn_real *z = zc + off;
					nn_real *gr = g + off;
					if (y / 2 >= h2) {
						memset(gr, 0, (size_t)w * sizeof *gr);
						continue;
					}
					const nn_real *d = dyc + ((size_t)img * (size_t)h2 + (size_t)(y / 2)) * (size_t)w2;
					for (int x = 0; x < w2; x++)
						up[2 * x] = up[2 * x + 1] = d[x] / 4;
					for (int x = 2 * w2; x < w; x++)
						up[x] = 0;
					for (int x = 0; x < w; x++)
						gr[x] = s * z[x] + t > 0 ? up[x] : 0;
				}
		}
		double sg, sgzm;
		sums2(g, 0, zc, m, pin, &sg, &sgzm);
		double sgx = (double)is * sgzm; /* sum g*xhat */
		b->dgamma[ch] = (nn_real)((b->acc ? b->dgamma[ch] : 0) + sgx);
		b->dbeta[ch] = (nn_real)((b->acc ? b->dbeta[ch] : 0) + sg);
		/* dz = k*(g - mean(g) - xhat*mean(g*xhat)) = k*g + c1*(z-mean) + c0 */
		const double kk = (double)b->gamma[ch] * is;
		double c1 = 0, c0 = 0;
		if (b->batch_stats) {
			c1 = -kk * is * (sgx / (double)pin);
			c0 = -kk * (sg / (double)pin);
		}
		const nn_real fk = (nn_real)kk, f1 = (nn_real)c1, f0 = (nn_real)c0;
		for (size_t i = 0; i < pin; i++)
			g[i] = fk * g[i] + f1 * (zc[i] - m) + f0;
	}
}

void NN_FN(nn_bn_relu_backward)(nn_pool *pool, int c, int n, int h, int w, int k, const nn_real *z,
                                const nn_real *mean, const nn_real *invstd, const nn_real *gamma,
                                const nn_real *scale, const nn_real *shift, const nn_real *dy,
                                int batch_stats, nn_real *dz, nn_real *dgamma, nn_real *dbeta, int acc)
{
	bn_ctx b = {.c = c, .n = n, .h = h, .w = w, .k = k, .z = z, .mean = mean, .invstd = invstd,
	            .gamma = gamma, .scale = scale, .shift = shift, .dy = dy, .batch_stats = batch_stats,
	            .dz = dz, .dgamma = dgamma, .dbeta = dbeta, .acc = acc};
	nn_pool_run(pool, bn_relu_backward_task, &b);
}

SER_KERNEL static void dropout_apply_kernel(size_t n, nn_real *x, const uint8_t *mask, nn_real keep_scale)
{
	for (size_t i = 0; i < n; i++)
		x[i] = mask[i] ? x[i] * keep_scale : 0;
}

void NN_FN(nn_dropout_apply)(size_t n, nn_real *x, const uint8_t *mask, nn_real keep_scale)
{
	dropout_apply_kernel(n, x, mask, keep_scale);
}

/* ---- bn0: BatchNorm over columns ---- */

SER_KERNEL static void colbn_stats_kernel(size_t rows, int cols, const nn_real *x, double *mean, double *var)
{
	for (int j = 0; j < cols; j++)
		mean[j] = var[j] = 0;
	for (size_t r = 0; r < rows; r++)
		for (int j = 0; j < cols; j++)
			mean[j] += x[r * (size_t)cols + (size_t)j];
	for (int j = 0; j < cols; j++)
		mean[j] /= (double)rows;
	for (size_t r = 0; r < rows; r++)
		for (int j = 0; j < cols; j++) {
			double d = x[r * (size_t)cols + (size_t)j] - mean[j];
			var[j] += d * d;
		}
	for (int j = 0; j < cols; j++)
		var[j] /= (double)rows;
}

void NN_FN(nn_colbn_stats)(size_t rows, int cols, const nn_real *x, double *mean, double *var)
{
	colbn_stats_kernel(rows, cols, x, mean, var);
}

typedef struct {
	size_t rows;
	int cols;
	const nn_real *x, *scale, *shift;
	nn_real *y;
} colbn_ctx;

SER_KERNEL static void colbn_apply_task(void *arg, int tid, int nth)
{
	const colbn_ctx *c = arg;
	size_t lo, hi;
	nn_split(c->rows, 1, tid, nth, &lo, &hi);
	for (size_t r = lo; r < hi; r++)
		for (int j = 0; j < c->cols; j++) {
			size_t i = r * (size_t)c->cols + (size_t)j;
			c->y[i] = c->x[i] * c->scale[j] + c->shift[j];
		}
}

void NN_FN(nn_colbn_apply)(nn_pool *pool, size_t rows, int cols, const nn_real *x, const nn_real *scale,
                           const nn_real *shift, nn_real *y)
{
	colbn_ctx c = {rows, cols, x, scale, shift, y};
	nn_pool_run(pool, colbn_apply_task, &c);
}

SER_KERNEL static void colbn_backward_kernel(size_t rows, int cols, const nn_real *x, const nn_real *mean,
                              const nn_real *invstd, const nn_real *gamma, const nn_real *dy,
                              int batch_stats, nn_real *dx, nn_real *dgamma, nn_real *dbeta, int acc)
{
	double sg[cols], sgx[cols];
	for (int j = 0; j < cols; j++)
		sg[j] = sgx[j] = 0;
	for (size_t r = 0; r < rows; r++)
		for (int j = 0; j < cols; j++) {
			size_t i = r * (size_t)cols + (size_t)j;
			sg[j] += dy[i];
			sgx[j] += dy[i] * ((x[i] - mean[j]) * invstd[j]);
		}
	for (int j = 0; j < cols; j++) {
		dgamma[j] = (nn_real)((acc ? dgamma[j] : 0) + sgx[j]);
		dbeta[j] = (nn_real)((acc ? dbeta[j] : 0) + sg[j]);
	}
	if (!dx)
		return;
	for (size_t r = 0; r < rows; r++)
		for (int j = 0; j < cols; j++) {
			size_t i = r * (size_t)cols + (size_t)j;
			nn_real k = gamma[j] * invstd[j];
			if (batch_stats)
				dx[i] = k * (dy[i] - (nn_real)(sg[j] / (double)rows) -
				             (x[i] - mean[j]) * invstd[j] * (nn_real)(sgx[j] / (double)rows));
			else
				dx[i] = k * dy[i];
		}
}

void NN_FN(nn_colbn_backward)(size_t rows, int cols, const nn_real *x, const nn_real *mean,
                              const nn_real *invstd, const nn_real *gamma, const nn_real *dy,
                              int batch_stats, nn_real *dx, nn_real *dgamma, nn_real *dbeta, int acc)
{
	colbn_backward_kernel(rows, cols, x, mean, invstd, gamma, dy, batch_stats, dx, dgamma, dbeta, acc);
}

/* ---- head ---- */

SER_KERNEL static void head_forward_kernel(int c, int n, int h, int w, const nn_real *x, nn_real *feat, int *argmax)
{
	for (int ch = 0; ch < c; ch++)
		for (int img = 0; img < n; img++) {
			const nn_real *xi = x + ((size_t)ch * (size_t)n + (size_t)img) * (size_t)h * (size_t)w;
			nn_real best = 0, sum = 0;
			int at = 0;
			for (int y = 0; y < h; y++) {
				nn_real s = 0;
				for (int f = 0; f < w; f++)
					s += xi[(size_t)y * (size_t)w + (size_t)f];
				s /= (nn_real)w;
				if (y == 0 || s > best) {
					best = s;
					at = y;
				}
				sum += s;
			}
			feat[(size_t)img * (size_t)c + (size_t)ch] = best + sum / (nn_real)h;
			argmax[(size_t)ch * (size_t)n + (size_t)img] = at;
		}
}

void NN_FN(nn_head_forward)(int c, int n, int h, int w, const nn_real *x, nn_real *feat, int *argmax)
{
	head_forward_kernel(c, n, h, w, x, feat, argmax);
}

SER_KERNEL static void head_backward_kernel(int c, int n, int h, int w, const nn_real *dfeat, const int *argmax, nn_real *dx)
{
	for (int ch = 0; ch < c; ch++)
		for (int img = 0; img < n; img++) {
			nn_real d = dfeat[(size_t)img * (size_t)c + (size_t)ch];
			int at = argmax[(size_t)ch * (size_t)n + (size_t)img];
			nn_real *xi = dx + ((size_t)ch * (size_t)n + (size_t)img) * (size_t)h * (size_t)w;
			for (int y = 0; y < h; y++) {
				nn_real v = (d / (nn_real)h + (y == at ? d : 0)) / (nn_real)w;
				for (int f = 0; f < w; f++)
					xi[(size_t)y * (size_t)w + (size_t)f] = v;
			}
		}
}

void NN_FN(nn_head_backward)(int c, int n, int h, int w, const nn_real *dfeat, const int *argmax, nn_real *dx)
{
	head_backward_kernel(c, n, h, w, dfeat, argmax, dx);
}

/* ---- linear layers and the loss ---- */

void NN_FN(nn_linear_forward)(int n, int in, int out, const nn_real *x, const nn_real *wt, const nn_real *b,
                              nn_real *y)
{
	for (int i = 0; i < n; i++)
		memcpy(y + (size_t)i * (size_t)out, b, (size_t)out * sizeof *y);
	if (n > 0 && out > 0 && in > 0)
		NN_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1, x, in, wt, in, 1, y, out);
}

void NN_FN(nn_linear_backward)(int n, int in, int out, const nn_real *x, const nn_real *wt, const nn_real *dy,
                               nn_real *dw, nn_real *db, int acc, nn_real *dx)
{
	gemm(1, 0, (size_t)out, (size_t)in, (size_t)n, dy, (size_t)out, x, (size_t)in, acc ? 1 : 0, dw, (size_t)in);
	for (int o = 0; o < out; o++) {
		nn_real s = acc ? db[o] : 0;
		for (int i = 0; i < n; i++)
			s += dy[(size_t)i * (size_t)out + (size_t)o];
		db[o] = s;
	}
	if (dx)
		gemm(0, 0, (size_t)n, (size_t)in, (size_t)out, dy, (size_t)out, wt, (size_t)in, 0, dx, (size_t)in);
}

SER_KERNEL static void log_softmax_kernel(int n, int k, const nn_real *logits, nn_real *logp)
{
	for (int i = 0; i < n; i++) {
		const nn_real *l = logits + (size_t)i * (size_t)k;
		nn_real *o = logp + (size_t)i * (size_t)k;
		nn_real m = l[0];
		for (int j = 1; j < k; j++)
			m = l[j] > m ? l[j] : m;
		double s = 0;
		for (int j = 0; j < k; j++)
			s += exp((double)(l[j] - m));
		nn_real lse = m + (nn_real)log(s);
		for (int j = 0; j < k; j++)
			o[j] = l[j] - lse;
	}
}

void NN_FN(nn_log_softmax)(int n, int k, const nn_real *logits, nn_real *logp)
{
	log_softmax_kernel(n, k, logits, logp);
}

double NN_FN(nn_weighted_nll)(int n, int k, const nn_real *logp, const int *labels, const nn_real *w,
                              nn_real *dlogits)
{
	double num = 0, den = 0;
	for (int i = 0; i < n; i++) {
		double wi = w ? w[labels[i]] : 1;
		num -= wi * logp[(size_t)i * (size_t)k + (size_t)labels[i]];
		den += wi;
	}
	if (dlogits)
		for (int i = 0; i < n; i++) {
			double wi = (w ? w[labels[i]] : 1) / den;
			for (int j = 0; j < k; j++) {
				size_t e = (size_t)i * (size_t)k + (size_t)j;
				dlogits[e] = (nn_real)(wi * (exp((double)logp[e]) - (j == labels[i])));
			}
		}
	return num / den;
}
