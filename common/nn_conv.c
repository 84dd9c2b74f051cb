/* nn_conv.c - see nn_conv.h.  Built for float by the library; a test may
 * include it again for double (tests/t-nn-grad.c). */
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "cpu.h"
#include "nn_conv.h"
#include "nn_gemm.h"

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

typedef struct {
	const nn_conv *cv;
	nn_conv_ws *ws;
	const nn_real *x, *wt, *u, *dz;   /* u: Winograd kernels transformed ahead, or NULL */
	nn_real *z, *col, *dw, *dx;
	const nn_real *kept;
	int acc;
	nn_pool *pool;
	atomic_size_t next[3];   /* work-claiming counters, one per phase */
} conv_ctx;

#include "nn_winograd.h"

/* A chunked Winograd layer takes its weight gradient by Winograd too from
 * this many channels: below, each chunk's 16 products (cout x cin, inner
 * dimension the chunk's tiles) are too small and the per-chunk partial
 * gradients too many. */
#ifndef WINOGRAD_GRAD_MIN_CH
#define WINOGRAD_GRAD_MIN_CH 128
#endif

static bool winograd_grad_fits(const nn_conv *cv)
{
	return cv->strategy == NN_CONV_WINOGRAD && cv->cin >= WINOGRAD_GRAD_MIN_CH && cv->cout >= WINOGRAD_GRAD_MIN_CH;
}

nn_conv_sizes nn_conv_ws_size(const nn_conv *cv, int backward)
{
	nn_conv_sizes s = {0, 0, 0, 0};
	size_t p = (size_t)cv->n * (size_t)cv->h * (size_t)cv->w;
	if (cv->strategy == NN_CONV_WHOLE_WINOGRAD) { /* forward, dW and dx by Winograd, through full */
		s.col = 16 * (wino_tile_cols(cv) + 1);
		s.full = wino_whole_size(cv);
		if (backward)
			s.wflip = (size_t)cv->cout * (size_t)cv->cin * 9;
	} else if (cv->strategy != NN_CONV_WHOLE_BATCH) {
		size_t rows = MIN((size_t)cv->chunk_rows, (size_t)cv->n * (size_t)cv->h);
		s.col = 9 * (size_t)(backward ? MAX(cv->cin, cv->cout) : cv->cin) * rows * (size_t)cv->w;
		if (cv->strategy == NN_CONV_WINOGRAD) { /* chunks of tile rows; dx as the forward, transposed */
			size_t v = backward && winograd_grad_fits(cv) ? wino_grad_col_size(cv) : wino_col_size(cv);
			s.col = MAX(s.col, v + 16 * (wino_tile_cols(cv) + 1));
			s.full = cv->kernels_ahead ? 0 : wino_kernel_size(cv);
		}
		if (backward) {
			size_t parts = winograd_grad_fits(cv) ? wino_chunks(cv) : conv_chunks(cv);
			s.dw = parts * (size_t)cv->cout * (size_t)cv->cin * 9;
			s.wflip = (size_t)cv->cout * (size_t)cv->cin * 9;
		}
	} else {
		s.full = 9 * (size_t)cv->cin * p;
	}
	return s;
}


/* ---- one input channel (the first layer): direct, no im2col ---- */

#define DIRECT_MAX_COUT 64
#define DIRECT_MAX_W 1024

static bool direct_fits(const nn_conv *cv)
{
	return cv->cin == 1 && cv->cout <= DIRECT_MAX_COUT && cv->w <= DIRECT_MAX_W;
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

static bool small_fits(const nn_conv *cv)
{
	return cv->cin > 1 && cv->cin <= SMALL_MAX_CH && cv->cout <= SMALL_MAX_CH && cv->w % VL == 0;
}

static size_t small_row_len(int w)
{
	return ((size_t)w + 2 + (size_t)VL - 1) / (size_t)VL * (size_t)VL;
}

/* The rows buffer of a chunk: per channel, each image's rows of the chunk
 * with one zero-padded row above and below, each row [0, x.., 0], so an
 * input row is copied once and read by the three output rows it feeds.
 * Rows r0..r1 of the batch may span images: every image starts a segment
 * with its own two padding rows. */
static size_t small_strip_rows(int h, size_t r0, size_t r1)
{
	return (r1 - r0) + 2 * ((r1 - 1) / (size_t)h - r0 / (size_t)h + 1);
}

/* Where output row r's row y-1 starts in a channel's strip (y = r % h). */
static size_t small_strip_base(int h, size_t r0, size_t r)
{
	return (r - r0) + 2 * (r / (size_t)h - r0 / (size_t)h);
}

/* The end of the segment (rows of one image) that starts at row a < r1. */
static size_t small_segment_end(int h, size_t a, size_t r1)
{
	return MIN(r1, (a / (size_t)h + 1) * (size_t)h);
}

SER_KERNEL static void small_rows(const nn_real *x, size_t p, int c, int h, int w, size_t r0, size_t r1, nn_real *buf)
{
	const size_t wp = small_row_len(w), len = small_strip_rows(h, r0, r1);
	for (int ci = 0; ci < c; ci++)
		for (size_t a = r0; a < r1;) {
			size_t img = a / (size_t)h, b = small_segment_end(h, a, r1);
			int ya = (int)(a % (size_t)h), yb = ya + (int)(b - a);
			nn_real *d = buf + ((size_t)ci * len + small_strip_base(h, r0, a)) * wp;
			for (int y = ya - 1; y <= yb; y++, d += wp) {
				if (y < 0 || y >= h) {
					memset(d, 0, wp * sizeof *d);
					continue;
				}
				const nn_real *src = x + (size_t)ci * p + (img * (size_t)h + (size_t)y) * (size_t)w;
				d[0] = 0;
				for (int t = 0; t < w; t++) /* rows of 8-64 values: a call to memcpy cost more */
					d[1 + t] = src[t];
				for (size_t t = (size_t)w + 1; t < wp; t++)
					d[t] = 0;
			}
			a = b;
		}
}

/* out[co][r][x0 .. x0+nv*VL) for co and co+1 (two: co+1 < cout) from the
 * rows of output row r (rows: its row y-1 of channel 0; cstride: from one
 * channel's strip to the next); k (cout, cin, 9). */
SER_VINLINE void small_out(const nn_real *rows, int cin, size_t cstride, size_t wp, const nn_real *k, int co,
                             bool two, int x0, int nv, nn_real *o0, nn_real *o1)
{
	vreal a0[4] = {0}, a1[4] = {0};
	const nn_real *k0 = k + (size_t)co * (size_t)cin * 9, *k1 = two ? k0 + (size_t)cin * 9 : k0;
	for (int ci = 0; ci < cin; ci++)
		for (int kh = 0; kh < 3; kh++) {
			const nn_real *row = rows + (size_t)ci * cstride + (size_t)kh * wp + x0;
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
SER_KERNEL static void small_conv_rows(const nn_real *buf, int cin, int cout, int h, int w, size_t p, size_t r0,
                                       size_t r1, const nn_real *k, nn_real *out)
{
	const size_t wp = small_row_len(w), cstride = small_strip_rows(h, r0, r1) * wp;
	for (size_t r = r0; r < r1; r++) {
		const nn_real *rows = buf + small_strip_base(h, r0, r) * wp;
		for (int co = 0; co < cout; co += 2) {
			bool two = co + 1 < cout;
			nn_real *o0 = out + (size_t)co * p + r * (size_t)w, *o1 = two ? o0 + p : o0;
			int x0 = 0;
			for (; x0 + 4 * VL <= w; x0 += 4 * VL)
				small_out(rows, cin, cstride, wp, k, co, two, x0, 4, o0, o1);
			for (; x0 + 2 * VL <= w; x0 += 2 * VL)
				small_out(rows, cin, cstride, wp, k, co, two, x0, 2, o0, o1);
			for (; x0 < w; x0 += VL)
				small_out(rows, cin, cstride, wp, k, co, two, x0, 1, o0, o1);
		}
	}
}

/* part (cout x cin*9) = dW of rows [r0,r1): sum over rows and x of dz * shifted input. */
SER_KERNEL static void small_dw_rows(const nn_real *buf, int cin, int cout, int h, int w, size_t p, size_t r0,
                                     size_t r1, const nn_real *dz, nn_real *part)
{
	const size_t wp = small_row_len(w), len = small_strip_rows(h, r0, r1);
	for (int co = 0; co < cout; co++)
		for (int ci = 0; ci < cin; ci++) {
			vreal acc[9] = {0};
			/* segment by segment: no division per row in this, the hottest loop */
			for (size_t a = r0, b; a < r1; a = b) {
				b = small_segment_end(h, a, r1);
				const nn_real *rows = buf + ((size_t)ci * len + small_strip_base(h, r0, a)) * wp;
				for (size_t r = a; r < b; r++, rows += wp) {
					const nn_real *d = dz + (size_t)co * p + r * (size_t)w;
					for (int x0 = 0; x0 < w; x0 += VL) {
						vreal g = vload(d + x0);
						for (int kh = 0; kh < 3; kh++)
							for (int kw = 0; kw < 3; kw++)
								acc[kh * 3 + kw] += g * vload(rows + (size_t)kh * wp + (size_t)(x0 + kw));
					}
				}
			}
			for (int t = 0; t < 9; t++)
				part[((size_t)co * (size_t)cin + (size_t)ci) * 9 + (size_t)t] = vsum(acc[t]);
		}
}

/* Chunks of rows, claimed as threads come free; each chunk's output rows
 * are its own. */
SER_KERNEL static void chunked_forward(conv_ctx *c, int tid)
{
	const nn_conv *cv = c->cv;
	const size_t rows = (size_t)cv->n * (size_t)cv->h, p = rows * (size_t)cv->w, k = 9 * (size_t)cv->cin;
	const size_t cr = (size_t)cv->chunk_rows, chunks = conv_chunks(cv);
	nn_real *col = c->ws->col[tid];
	size_t j;
	while ((j = atomic_fetch_add(&c->next[0], 1)) < chunks) {
		size_t r0 = j * cr, r1 = MIN(rows, r0 + cr), nc = (r1 - r0) * (size_t)cv->w;
		switch (cv->strategy) {
		case NN_CONV_DIRECT:
			direct_forward_rows(c, r0, r1);
			break;
		case NN_CONV_SMALL:
			small_rows(c->x, p, cv->cin, cv->h, cv->w, r0, r1, col);
			small_conv_rows(col, cv->cin, cv->cout, cv->h, cv->w, p, r0, r1, c->wt, c->z);
			break;
		default:
			im2col(c->x, p, 0, cv->cin, cv->h, cv->w, r0, r1, col, nc);
			gemm(0, 0, (size_t)cv->cout, nc, k, c->wt, k, col, nc, 0, c->z + r0 * (size_t)cv->w, p);
		}
	}
}

/* One im2col of the whole batch (blocks of input channels), then products
 * over blocks of output channels. */
SER_KERNEL static void whole_batch_forward(conv_ctx *c)
{
	const nn_conv *cv = c->cv;
	const size_t rows = (size_t)cv->n * (size_t)cv->h, p = rows * (size_t)cv->w, k = 9 * (size_t)cv->cin;
	const size_t cib = channel_block((size_t)cv->cin), cob = channel_block((size_t)cv->cout);
	size_t j;
	while ((j = atomic_fetch_add(&c->next[0], 1)) * cib < (size_t)cv->cin)
		im2col(c->x, p, (int)(j * cib), (int)MIN((size_t)cv->cin, (j + 1) * cib), cv->h, cv->w, 0, rows, c->col, p);
	nn_pool_barrier(c->pool);
	while ((j = atomic_fetch_add(&c->next[1], 1)) * cob < (size_t)cv->cout) {
		size_t lo = j * cob, hi = MIN((size_t)cv->cout, lo + cob);
		gemm(0, 0, hi - lo, p, k, c->wt + lo * k, k, c->col, p, 0, c->z + lo * p, p);
	}
}

static void conv_forward_task(void *arg, int tid, int nth)
{
	conv_ctx *c = arg;
	if (c->cv->strategy == NN_CONV_WHOLE_BATCH)
		whole_batch_forward(c);
	else if (c->cv->strategy == NN_CONV_WHOLE_WINOGRAD)
		wino_whole_forward(c, tid, nth);
	else if (c->cv->strategy == NN_CONV_WINOGRAD)
		wino_forward(c, tid, nth);
	else
		chunked_forward(c, tid);
}

void nn_conv_forward(nn_pool *pool, const nn_conv *cv, nn_conv_ws *ws, const nn_real *x,
                            const nn_real *wt, const nn_real *u, nn_real *z, nn_real *keep_col)
{
	conv_ctx c = {cv, ws, x, wt, cv->kernels_ahead ? u : NULL, NULL, z, keep_col ? keep_col : ws->full, NULL, NULL,
	              NULL, 0, pool, {0, 0, 0}};
	nn_pool_run(pool, conv_forward_task, &c);
}

/* dx of a chunked convolution is the convolution of dz with the flipped,
 * transposed kernel: ws->wflip (cin, cout, 3, 3), made by all threads. */
SER_KERNEL static void flip_kernel(conv_ctx *c, int tid, int nth)
{
	const size_t cin = (size_t)c->cv->cin, cout = (size_t)c->cv->cout, k = 9 * cin;
	size_t lo, hi;
	nn_split(cin, 1, tid, nth, &lo, &hi);
	for (size_t ci = lo; ci < hi; ci++)
		for (size_t co = 0; co < cout; co++)
			for (int t = 0; t < 9; t++)
				c->ws->wflip[ci * 9 * cout + co * 9 + (size_t)t] = c->wt[co * k + ci * 9 + (size_t)(8 - t)];
}

/* Chunk j (rows r0..r1): its dW partial into ws->dw[0] + j*nw, its dx rows. */
SER_KERNEL static void chunk_backward(conv_ctx *c, nn_real *col, size_t j, size_t r0, size_t r1, bool want_dx)
{
	const nn_conv *cv = c->cv;
	nn_conv_ws *ws = c->ws;
	const size_t p = (size_t)cv->n * (size_t)cv->h * (size_t)cv->w;
	const size_t cin = (size_t)cv->cin, cout = (size_t)cv->cout, k = 9 * cin, nw = cout * k;
	const size_t nc = (r1 - r0) * (size_t)cv->w, off = r0 * (size_t)cv->w;
	nn_real *part = c->dw ? ws->dw[0] + j * nw : NULL;
	switch (cv->strategy) {
	case NN_CONV_DIRECT:
		direct_backward_rows(c, r0, r1, part);
		return;
	case NN_CONV_SMALL:
		if (part) {
			small_rows(c->x, p, cv->cin, cv->h, cv->w, r0, r1, col);
			small_dw_rows(col, cv->cin, cv->cout, cv->h, cv->w, p, r0, r1, c->dz, part);
		}
		if (c->dx) {
			small_rows(c->dz, p, cv->cout, cv->h, cv->w, r0, r1, col);
			small_conv_rows(col, cv->cout, cv->cin, cv->h, cv->w, p, r0, r1, ws->wflip, c->dx);
		}
		return;
	default:
		if (part) {
			im2col(c->x, p, 0, cv->cin, cv->h, cv->w, r0, r1, col, nc);
			gemm(0, 1, cout, k, nc, c->dz + off, p, col, nc, 0, part, k);
		}
		if (c->dx && want_dx) {
			im2col(c->dz, p, 0, cv->cout, cv->h, cv->w, r0, r1, col, nc);
			gemm(0, 0, cin, nc, 9 * cout, ws->wflip, 9 * cout, col, nc, 0, c->dx + off, p);
		}
	}
}

SER_KERNEL static void chunked_backward(conv_ctx *c, int tid, int nth)
{
	const nn_conv *cv = c->cv;
	nn_conv_ws *ws = c->ws;
	const size_t rows = (size_t)cv->n * (size_t)cv->h, nw = (size_t)cv->cout * 9 * (size_t)cv->cin;
	const size_t cr = (size_t)cv->chunk_rows, chunks = conv_chunks(cv);
	size_t lo, hi, j;
	const bool dw_wino = winograd_grad_fits(cv), dx_wino = cv->strategy == NN_CONV_WINOGRAD;
	if (c->dx && cv->strategy != NN_CONV_DIRECT) {
		flip_kernel(c, tid, nth);
		nn_pool_barrier(c->pool);
	}
	if (dw_wino) { /* dW by chunks of tile rows */
		if (c->dw)
			wino_grad_chunks(c, tid);
	} else if (c->dw || !dx_wino) { /* the chunks of rows: dW, and dx unless Winograd's below */
		while ((j = atomic_fetch_add(&c->next[0], 1)) < chunks)
			chunk_backward(c, ws->col[tid], j, j * cr, MIN(rows, j * cr + cr), !dx_wino);
	}
	if (c->dx && dx_wino)
		wino_dx(c, tid, nth); /* its kernels go to ws->full, which the chunks above do not use */
	if (!c->dw)
		return;
	const size_t parts = dw_wino ? wino_chunks(cv) : chunks;
	/* per-chunk partial gradients, summed in chunk order */
	nn_pool_barrier(c->pool);
	nn_split(nw, 16, tid, nth, &lo, &hi);
	for (size_t i = lo; i < hi; i++) {
		nn_real s = c->acc ? c->dw[i] : 0;
		for (size_t t = 0; t < parts; t++)
			s += ws->dw[0][t * nw + i];
		c->dw[i] = s;
	}
}

SER_KERNEL static void whole_batch_backward(conv_ctx *c, int tid, int nth)
{
	const nn_conv *cv = c->cv;
	nn_conv_ws *ws = c->ws;
	const size_t rows = (size_t)cv->n * (size_t)cv->h, p = rows * (size_t)cv->w;
	const size_t cin = (size_t)cv->cin, cout = (size_t)cv->cout, k = 9 * cin;
	const size_t cib = channel_block(cin), cob = channel_block(cout);
	size_t lo, hi, j;
	if (cv->strategy == NN_CONV_WHOLE_WINOGRAD) { /* dW, then dx, both by Winograd, each through ws->full */
		if (c->dx)
			flip_kernel(c, tid, nth); /* into ws->wflip, for wino_whole_dx */
		if (c->dw)
			wino_whole_grad(c, tid, nth);
		if (c->dx) {
			nn_pool_barrier(c->pool);
			wino_whole_dx(c, tid, nth);
		}
		return;
	}
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

static void conv_backward_task(void *arg, int tid, int nth)
{
	conv_ctx *c = arg;
	if (c->cv->strategy == NN_CONV_WHOLE_BATCH || c->cv->strategy == NN_CONV_WHOLE_WINOGRAD)
		whole_batch_backward(c, tid, nth);
	else
		chunked_backward(c, tid, nth);
}

void nn_conv_backward(nn_pool *pool, const nn_conv *cv, nn_conv_ws *ws, const nn_real *x,
                             const nn_real *wt, const nn_real *dz, nn_real *dw, int acc, nn_real *dx,
                             const nn_real *kept_col)
{
	conv_ctx c = {cv, ws, x, wt, NULL, dz, NULL, NULL, dw, dx, kept_col, acc, pool, {0, 0, 0}};
	nn_pool_run(pool, conv_backward_task, &c);
}

/* Whole-batch convolutions once the batch has this few positions; larger
 * ones are cut into chunks of about CHUNK_COLUMNS positions, a multiple of
 * four of them (so that 1, 2 or 4 threads share them evenly; the count
 * must not depend on the thread count, which would change the summation
 * order of the weight gradients). */
#define WHOLE_BATCH_MAX_P 4096
#define CHUNK_COLUMNS 1024

/* Winograd's forward for chunked layers of at least this many input and
 * output channels (fewer: the 16 products are too thin for the GEMM). */
#ifndef WINOGRAD_MIN_CH
#define WINOGRAD_MIN_CH 64
#endif

static bool winograd_fits(const nn_conv *cv)
{
	return cv->cin >= WINOGRAD_MIN_CH && cv->cout >= WINOGRAD_MIN_CH;
}

/* ... and for whole-batch layers of at least this many channels and
 * tiles: below them the kernels' transform (16 cout cin values, made at
 * every call) and thin products cost more than the multiplications saved.
 * Measured on Cnn14 at full width, batch 8 x 300 frames, one thread:
 * blocks 4-5 (256-1024 channels, 608 and 144 tiles) 1.2-1.9x faster, block
 * 6 (40 tiles) 2.2x slower, and the narrow model's layers (32-256
 * channels, batch 8 x 150 frames) 4 % to 3.7x slower (forward). */
#ifndef WINOGRAD_WHOLE_MIN_CH
#define WINOGRAD_WHOLE_MIN_CH 256
#endif
#ifndef WINOGRAD_WHOLE_MIN_TILES
#define WINOGRAD_WHOLE_MIN_TILES 128
#endif

static bool winograd_whole_fits(const nn_conv *cv)
{
	return cv->cin >= WINOGRAD_WHOLE_MIN_CH && cv->cout >= WINOGRAD_WHOLE_MIN_CH &&
	       wino_whole_tiles(cv) >= WINOGRAD_WHOLE_MIN_TILES;
}

void nn_conv_plan_chunked(nn_conv *cv, int cin, int cout, int n, int h, int w, int chunk_rows)
{
	*cv = (nn_conv){cin, cout, n, h, w, chunk_rows, NN_CONV_WHOLE_BATCH, 0};
	if (chunk_rows == 0)
		cv->strategy = winograd_whole_fits(cv) ? NN_CONV_WHOLE_WINOGRAD : NN_CONV_WHOLE_BATCH;
	else
		cv->strategy = direct_fits(cv)     ? NN_CONV_DIRECT
		               : small_fits(cv)    ? NN_CONV_SMALL
		               : winograd_fits(cv) ? NN_CONV_WINOGRAD
		                                   : NN_CONV_CHUNKED;
}

/* Forward-only plans, whose kernels are transformed ahead, take Winograd
 * from WINOGRAD_AHEAD_MIN_CH channels (chunked or whole batch) and, whole
 * batch, WINOGRAD_AHEAD_MIN_TILES tiles: without the per-call transform only
 * the tile transforms and thin products are left to pay for.  A layer whose
 * transformed kernels exceed WINOGRAD_AHEAD_SMALL floats needs
 * WINOGRAD_AHEAD_WIDE_MIN_TILES: with few tiles its products are bound by
 * reading the kernels, 16/9 of the weights' bytes.  None takes them ahead
 * when they would exceed WINOGRAD_AHEAD_MAX floats (128 MB: Cnn14's block
 * 6 at full width, 403 MB for its two layers): a process that trains and
 * scores, like cnn-train, would hold them beside the weights and momentum
 * and peak above its training step.  Measured on Cnn14
 * (README, Speed): 4 tiles against 16 and 32 channels against 64 were
 * faster at channels / 8 (batch 1, 225-650 frames); at full width, batch 1
 * x 440 frames, block 6 (2048 channels, 7 tiles) was slower by Winograd. */
#ifndef WINOGRAD_AHEAD_MIN_CH
#define WINOGRAD_AHEAD_MIN_CH 32
#endif
#ifndef WINOGRAD_AHEAD_MIN_TILES
#define WINOGRAD_AHEAD_MIN_TILES 4
#endif
#ifndef WINOGRAD_AHEAD_SMALL
#define WINOGRAD_AHEAD_SMALL ((size_t)1 << 20)
#endif
#ifndef WINOGRAD_AHEAD_WIDE_MIN_TILES
#define WINOGRAD_AHEAD_WIDE_MIN_TILES 16
#endif
#ifndef WINOGRAD_AHEAD_MAX
#define WINOGRAD_AHEAD_MAX ((size_t)32 << 20)
#endif

void nn_conv_plan_inference(nn_conv *cv, int cin, int cout, int n, int h, int w)
{
	nn_conv_plan(cv, cin, cout, n, h, w);
	if (wino_kernel_size(cv) > WINOGRAD_AHEAD_MAX)
		return;
	bool wide = cin >= WINOGRAD_AHEAD_MIN_CH && cout >= WINOGRAD_AHEAD_MIN_CH;
	size_t min_tiles = wino_kernel_size(cv) > WINOGRAD_AHEAD_SMALL ? WINOGRAD_AHEAD_WIDE_MIN_TILES
	                                                               : WINOGRAD_AHEAD_MIN_TILES;
	if (wide && cv->strategy == NN_CONV_WHOLE_BATCH && wino_whole_tiles(cv) >= min_tiles)
		cv->strategy = NN_CONV_WHOLE_WINOGRAD;
	else if (wide && cv->strategy == NN_CONV_CHUNKED)
		cv->strategy = NN_CONV_WINOGRAD;
	cv->kernels_ahead = cv->strategy == NN_CONV_WINOGRAD || cv->strategy == NN_CONV_WHOLE_WINOGRAD;
}

size_t nn_conv_kernels_size(const nn_conv *cv)
{
	return cv->kernels_ahead ? wino_kernel_size(cv) : 0;
}

static void transform_kernels_task(void *arg, int tid, int nth)
{
	conv_ctx *c = arg;
	size_t lo, hi;
	nn_split((size_t)c->cv->cout, 1, tid, nth, &lo, &hi);
	wino_kernels(c->wt, c->cv->cin, c->cv->cout, lo, hi, c->z);
}

void nn_conv_transform_kernels(nn_pool *pool, const nn_conv *cv, const nn_real *wt, nn_real *u)
{
	conv_ctx c = {cv, NULL, NULL, wt, NULL, NULL, u, NULL, NULL, NULL, NULL, 0, pool, {0, 0, 0}};
	nn_pool_run(pool, transform_kernels_task, &c);
}

void nn_conv_plan(nn_conv *cv, int cin, int cout, int n, int h, int w)
{
	size_t rows = (size_t)n * (size_t)h, p = rows * (size_t)w;
	if (p <= WHOLE_BATCH_MAX_P && cin > 1) { /* one input channel: direct, by rows */
		nn_conv_plan_chunked(cv, cin, cout, n, h, w, 0);
		return;
	}
	size_t per = (size_t)(CHUNK_COLUMNS / w > 0 ? CHUNK_COLUMNS / w : 1);
	size_t chunks = (rows + per - 1) / per;
	chunks = (chunks + 3) / 4 * 4;
	nn_conv_plan_chunked(cv, cin, cout, n, h, w, (int)((rows + chunks - 1) / chunks));
}
