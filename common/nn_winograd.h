/*
 * nn_winograd.h - private to nn_conv.c (included once per real type, after
 * nn_gemm.h and the conv_ctx definition): a 3x3 convolution's forward pass
 * and input gradient by Winograd's minimal filtering F(2x2, 3x3), and its
 * weight gradient by the transposed F(3x3, 2x2) (Lavin & Gray, "Fast
 * algorithms for convolutional neural networks", 2016).
 *
 * Each image is cut into 2x2 output tiles, each computed from its 4x4 input
 * patch (zeros outside the image, as the padding of 1 gives):
 *
 *   Y = A' [ (G g G') (.) (B' d B) ] A     (. elementwise, ' transposed)
 *
 * so a tile takes 16 multiplications per input and output channel pair
 * instead of 36: 2.25x fewer.  The 16 elementwise products, summed over the
 * input channels, are 16 matrix products per chunk of tiles,
 *
 *   M[e] (cout x T) = U[e] (cout x cin) V[e] (cin x T),  e = 0..15,
 *
 * with U[e] the transformed kernels (made once per call, by all threads)
 * and V[e] the transformed input patches of the chunk's T tiles.  A chunk
 * is a run of tile rows (2 image rows of one image each); threads claim
 * chunks as they come free and each writes only its own output rows, with
 * the same arithmetic whatever the thread count, so the result does not
 * depend on it.
 *
 * Accuracy: the transforms add and subtract (B, A) or halve (G), so the
 * result differs from the direct sum by a few roundings of partial sums:
 * the full-width Cnn14 forward (blocks 1-2 Winograd) is within 1.4e-7
 * (eval BN) and 2.1e-6 (train BN) relative of PyTorch's, tolerance 1e-4
 * (tests/t-cnn14-forward.py); in double, within 3e-15 of the definition
 * (tests/t-nn-grad.c).  F(4x4, 3x3), 4x fewer multiplications, has an
 * error ~10x larger (3e-6..1.1e-5 relative in a numpy simulation of the
 * Cnn14 layers) and was not taken.
 *
 * Measured (README, Speed): full-width inference +15-18 % samples per CPU
 * second, training +3 % (the backward passes, 2/3 of a step, are im2col +
 * GEMM as before); from 32 channels Cnn14/8 was 4 % slower, hence 64.
 * The whole-batch variant below (blocks 4-5 at full width, batch 8 x 300
 * frames) took full-width inference from 15.5 to 18.0 samples/s and
 * training from 4.4 to 4.8 on 2 threads of an AMD EPYC (AVX-512); dx and
 * dW by Winograd as well (below), training 4.8 to 5.3-5.4 (the backward
 * 15 % faster on one thread: 2.21 -> 1.88 s per batch).
 */
#ifndef SERTOOLS_NN_WINOGRAD_H
#define SERTOOLS_NN_WINOGRAD_H

/* Tile rows of one chunk: about WINOGRAD_TILES tiles, so that the 16
 * products are large enough for the GEMM to run near its peak while the
 * chunk's V and M (16 (cin + cout) T values) stay a few MB. */
#ifndef WINOGRAD_TILES
#define WINOGRAD_TILES 256
#endif

static size_t wino_tile_rows(const nn_conv *cv) { return ((size_t)cv->h + 1) / 2; }
static size_t wino_tile_cols(const nn_conv *cv) { return ((size_t)cv->w + 1) / 2; }

/* Tile rows per chunk and the number of chunks. */
static size_t wino_chunk_rows(const nn_conv *cv)
{
	size_t per = WINOGRAD_TILES / wino_tile_cols(cv);
	return per > 0 ? per : 1;
}

static size_t wino_chunks(const nn_conv *cv)
{
	size_t rows = (size_t)cv->n * wino_tile_rows(cv), per = wino_chunk_rows(cv);
	return (rows + per - 1) / per;
}

/* Per-thread scratch (V then M of one chunk) and the transformed kernels. */
static size_t wino_col_size(const nn_conv *cv)
{
	return 16 * ((size_t)cv->cin + (size_t)cv->cout) * wino_chunk_rows(cv) * wino_tile_cols(cv);
}

static size_t wino_kernel_size(const nn_conv *cv) { return 16 * (size_t)cv->cout * (size_t)cv->cin; }

/* U[e][co][ci] = (G g G')[e] for the output channels [lo, hi);
 * G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]. */
SER_KERNEL static void wino_kernels(const nn_real *wt, int cin, int cout, size_t lo, size_t hi, nn_real *u)
{
	const size_t plane = (size_t)cout * (size_t)cin;
	for (size_t co = lo; co < hi; co++)
		for (size_t ci = 0; ci < (size_t)cin; ci++) {
			const nn_real *g = wt + (co * (size_t)cin + ci) * 9;
			nn_real t[4][3]; /* G g */
			for (int j = 0; j < 3; j++) {
				t[0][j] = g[j];
				t[1][j] = (nn_real)0.5 * (g[j] + g[3 + j] + g[6 + j]);
				t[2][j] = (nn_real)0.5 * (g[j] - g[3 + j] + g[6 + j]);
				t[3][j] = g[6 + j];
			}
			for (int i = 0; i < 4; i++) {
				nn_real r[4] = {t[i][0], (nn_real)0.5 * (t[i][0] + t[i][1] + t[i][2]),
				                (nn_real)0.5 * (t[i][0] - t[i][1] + t[i][2]), t[i][2]};
				for (int j = 0; j < 4; j++)
					u[(size_t)(i * 4 + j) * plane + co * (size_t)cin + ci] = r[j];
			}
		}
}

/* V[e][ci][t] = (B' d B)[e] of the patches of tile rows [tr0, tr1) (t counts
 * tiles from the chunk's first), input channels [c0, c1); B' = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
 * Tile tx's patch columns are 2 tx - 1 .. 2 tx + 2, so with each padded
 * row split into its even and odd columns (ev[m] = x[2m - 1], od[m] =
 * x[2m]) both halves of the transform are loops over contiguous arrays,
 * which the compiler vectorises (a 4x4 patch at a time did not: 15 % of
 * the full-width forward).  pad: 16 (tile_cols + 1) values. */
SER_KERNEL static void wino_input(const nn_conv *cv, const nn_real *x, size_t tr0, size_t tr1, size_t c0,
                                  size_t c1, nn_real *v, nn_real *pad)
{
	const int h = cv->h, w = cv->w;
	const size_t th = wino_tile_rows(cv), tw = wino_tile_cols(cv), len = tw + 1;
	const size_t p = (size_t)cv->n * (size_t)h * (size_t)w, tiles = (tr1 - tr0) * tw;
	const size_t plane = (size_t)cv->cin * tiles;
	nn_real *ev = pad, *od = pad + 4 * len, *tev = pad + 8 * len, *tod = pad + 12 * len;
	for (size_t ci = c0; ci < c1; ci++)
		for (size_t tr = tr0; tr < tr1; tr++) {
			size_t img = tr / th;
			int y0 = 2 * (int)(tr % th) - 1;
			for (int i = 0; i < 4; i++) {
				nn_real *e = ev + (size_t)i * len, *o = od + (size_t)i * len;
				if (y0 + i < 0 || y0 + i >= h) {
					memset(e, 0, len * sizeof *e);
					memset(o, 0, len * sizeof *o);
					continue;
				}
				const nn_real *row = x + ci * p + (img * (size_t)h + (size_t)(y0 + i)) * (size_t)w;
				size_t m = 1;
				e[0] = 0;
				for (; 2 * m - 1 < (size_t)w; m++)
					e[m] = row[2 * m - 1];
				for (; m < len; m++)
					e[m] = 0;
				for (m = 0; 2 * m < (size_t)w; m++)
					o[m] = row[2 * m];
				for (; m < len; m++)
					o[m] = 0;
			}
			for (int half = 0; half < 2; half++) { /* B' d, on the rows */
				const nn_real *r = half ? od : ev;
				nn_real *t = half ? tod : tev;
				for (size_t m = 0; m < len; m++) {
					nn_real r0 = r[m], r1 = r[len + m], r2 = r[2 * len + m], r3 = r[3 * len + m];
					t[m] = r0 - r2;
					t[len + m] = r1 + r2;
					t[2 * len + m] = r2 - r1;
					t[3 * len + m] = r1 - r3;
				}
			}
			nn_real *dst = v + ci * tiles + (tr - tr0) * tw;
			for (int k = 0; k < 4; k++) { /* (B' d) B, on the columns */
				const nn_real *te = tev + (size_t)k * len, *to = tod + (size_t)k * len;
				nn_real *d0 = dst + (size_t)(4 * k) * plane, *d1 = d0 + plane, *d2 = d1 + plane, *d3 = d2 + plane;
				for (size_t t = 0; t < tw; t++) {
					d0[t] = te[t] - te[t + 1];
					d1[t] = to[t] + te[t + 1];
					d2[t] = te[t + 1] - to[t];
					d3[t] = to[t] - to[t + 1];
				}
			}
		}
}

/* z of tile rows [tr0, tr1), output channels [o0, o1) = A' M A, the parts of
 * tiles inside the image;
 * A' = [1 1 1 0; 0 1 -1 -1].  Loops over the tiles of a row, contiguous in
 * M; the two output columns of a tile go to even and odd scratch rows
 * (pad: 4 tile_cols values), interleaved into z at the end. */
SER_KERNEL static void wino_output(const nn_conv *cv, const nn_real *m, size_t tr0, size_t tr1, size_t o0,
                                   size_t o1, nn_real *z, nn_real *pad)
{
	const int h = cv->h, w = cv->w;
	const size_t th = wino_tile_rows(cv), tw = wino_tile_cols(cv);
	const size_t p = (size_t)cv->n * (size_t)h * (size_t)w, tiles = (tr1 - tr0) * tw;
	const size_t plane = (size_t)cv->cout * tiles;
	nn_real *ze0 = pad, *zo0 = pad + tw, *ze1 = pad + 2 * tw, *zo1 = pad + 3 * tw;
	for (size_t co = o0; co < o1; co++)
		for (size_t tr = tr0; tr < tr1; tr++) {
			size_t img = tr / th;
			int y = 2 * (int)(tr % th);
			const nn_real *s = m + co * tiles + (tr - tr0) * tw;
			for (size_t t = 0; t < tw; t++) {
				nn_real a[2][4];
				for (int j = 0; j < 4; j++) { /* A' M */
					nn_real s0 = s[(size_t)j * plane + t], s1 = s[(size_t)(4 + j) * plane + t];
					nn_real s2 = s[(size_t)(8 + j) * plane + t], s3 = s[(size_t)(12 + j) * plane + t];
					a[0][j] = s0 + s1 + s2;
					a[1][j] = s1 - s2 - s3;
				}
				ze0[t] = a[0][0] + a[0][1] + a[0][2];
				zo0[t] = a[0][1] - a[0][2] - a[0][3];
				ze1[t] = a[1][0] + a[1][1] + a[1][2];
				zo1[t] = a[1][1] - a[1][2] - a[1][3];
			}
			for (int r = 0; r < 2 && y + r < h; r++) {
				nn_real *zr = z + co * p + (img * (size_t)h + (size_t)(y + r)) * (size_t)w;
				const nn_real *e = r ? ze1 : ze0, *o = r ? zo1 : zo0;
				size_t t = 0;
				for (; 2 * t + 1 < (size_t)w; t++) {
					zr[2 * t] = e[t];
					zr[2 * t + 1] = o[t];
				}
				if (2 * t < (size_t)w)
					zr[2 * t] = e[t];
			}
		}
}

/* ---- the weight gradient by F(3x3, 2x2) ----
 *
 * dW[co][ci] (3x3) sums, over the 2x2 tiles of dz, the correlation of the
 * tile's 4x4 input patch d with the tile g of dz; by the transposition of
 * F(2x2, 3x3) that is
 *
 *   dW = G' [ sum over tiles (A g A') (.) (B' d B) ] G
 *
 * (A = [1 0; 1 1; 1 -1; 0 -1], B and G as above), so the sum over tiles is
 * 16 matrix products with the tiles as the inner dimension:
 *
 *   M[e] (cout x cin) = D[e] (cout x T) V[e]' (T x cin),
 *
 * V the forward's input transform and D the transformed dz tiles, and 16
 * multiplications per tile and channel pair replace 36. */

/* D[e][co][t] = (A g A')[e] for the dz tiles of tile rows [tr0, tr1),
 * output channels [o0, o1); zeros beyond the image. */
SER_KERNEL static void wino_grad_tiles(const nn_conv *cv, const nn_real *dz, size_t tr0, size_t tr1, size_t o0,
                                       size_t o1, nn_real *d)
{
	const int h = cv->h, w = cv->w;
	const size_t th = wino_tile_rows(cv), tw = wino_tile_cols(cv);
	const size_t p = (size_t)cv->n * (size_t)h * (size_t)w, tiles = (tr1 - tr0) * tw;
	const size_t plane = (size_t)cv->cout * tiles;
	for (size_t co = o0; co < o1; co++)
		for (size_t tr = tr0; tr < tr1; tr++) {
			size_t img = tr / th;
			int y = 2 * (int)(tr % th);
			const nn_real *r0 = dz + co * p + (img * (size_t)h + (size_t)y) * (size_t)w;
			const nn_real *r1 = y + 1 < h ? r0 + w : NULL;
			nn_real *dst = d + co * tiles + (tr - tr0) * tw;
			for (size_t t = 0; t < tw; t++) {
				size_t x = 2 * t;
				bool x1 = x + 1 < (size_t)w;
				nn_real g[2][2] = {{r0[x], x1 ? r0[x + 1] : 0}, {r1 ? r1[x] : 0, r1 && x1 ? r1[x + 1] : 0}};
				nn_real a[4][2]; /* A g */
				for (int j = 0; j < 2; j++) {
					a[0][j] = g[0][j];
					a[1][j] = g[0][j] + g[1][j];
					a[2][j] = g[0][j] - g[1][j];
					a[3][j] = -g[1][j];
				}
				for (int i = 0; i < 4; i++) { /* (A g) A' */
					dst[(size_t)(4 * i) * plane + t] = a[i][0];
					dst[(size_t)(4 * i + 1) * plane + t] = a[i][0] + a[i][1];
					dst[(size_t)(4 * i + 2) * plane + t] = a[i][0] - a[i][1];
					dst[(size_t)(4 * i + 3) * plane + t] = -a[i][1];
				}
			}
		}
}

/* dw[co][ci] (9 values) = G' M[.][co][ci] G for output channels [o0, o1),
 * added to dw when acc; G' = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1]. */
SER_KERNEL static void wino_grad_out(const nn_real *m, size_t cin, size_t cout, size_t o0, size_t o1, int acc,
                                     nn_real *dw)
{
	const size_t plane = cout * cin;
	for (size_t co = o0; co < o1; co++)
		for (size_t ci = 0; ci < cin; ci++) {
			const nn_real *s = m + co * cin + ci;
			nn_real r[3][4]; /* G' M, on the rows */
			for (int j = 0; j < 4; j++) {
				nn_real m0 = s[(size_t)j * plane], m1 = s[(size_t)(4 + j) * plane];
				nn_real m2 = s[(size_t)(8 + j) * plane], m3 = s[(size_t)(12 + j) * plane];
				r[0][j] = m0 + (nn_real)0.5 * (m1 + m2);
				r[1][j] = (nn_real)0.5 * (m1 - m2);
				r[2][j] = (nn_real)0.5 * (m1 + m2) + m3;
			}
			nn_real *o = dw + (co * cin + ci) * 9;
			for (int i = 0; i < 3; i++) { /* (G' M) G, on the columns */
				nn_real v0 = r[i][0] + (nn_real)0.5 * (r[i][1] + r[i][2]);
				nn_real v1 = (nn_real)0.5 * (r[i][1] - r[i][2]);
				nn_real v2 = (nn_real)0.5 * (r[i][1] + r[i][2]) + r[i][3];
				o[3 * i] = acc ? o[3 * i] + v0 : v0;
				o[3 * i + 1] = acc ? o[3 * i + 1] + v1 : v1;
				o[3 * i + 2] = acc ? o[3 * i + 2] + v2 : v2;
			}
		}
}

/* Per-thread scratch of the chunked weight gradient: V, D and M of a chunk. */
static size_t wino_grad_col_size(const nn_conv *cv)
{
	return wino_col_size(cv) + 16 * (size_t)cv->cout * (size_t)cv->cin;
}

/* The chunked layer's weight gradient: one partial per chunk of tile rows
 * into ws->dw[0] (nw values each, summed in chunk order by the caller),
 * chunks claimed from next[0]. */
SER_KERNEL static void wino_grad_chunks(conv_ctx *c, int tid)
{
	const nn_conv *cv = c->cv;
	const size_t cin = (size_t)cv->cin, cout = (size_t)cv->cout, tw = wino_tile_cols(cv);
	const size_t rows = (size_t)cv->n * wino_tile_rows(cv), per = wino_chunk_rows(cv), chunks = wino_chunks(cv);
	const size_t nw = cout * cin * 9, plane = cout * cin;
	nn_real *v = c->ws->col[tid], *d = v + 16 * cin * per * tw, *m = v + wino_col_size(cv);
	nn_real *pad = m + 16 * plane;
	size_t j;
	while ((j = atomic_fetch_add(&c->next[0], 1)) < chunks) {
		size_t tr0 = j * per, tr1 = MIN(rows, tr0 + per), tiles = (tr1 - tr0) * tw;
		wino_input(cv, c->x, tr0, tr1, 0, cin, v, pad);
		wino_grad_tiles(cv, c->dz, tr0, tr1, 0, cout, d);
		for (int e = 0; e < 16; e++)
			gemm(0, 1, cout, cin, tiles, d + (size_t)e * cout * tiles, tiles, v + (size_t)e * cin * tiles, tiles,
			     0, m + (size_t)e * plane, cin);
		wino_grad_out(m, cin, cout, 0, cout, 0, c->ws->dw[0] + j * nw);
	}
}

/* z = the convolution of x with wt for the layer cv (the layer itself, or
 * its transpose for the backward pass's dx), run by every pool thread: the
 * kernels' transform split by output channels (unless u holds it already),
 * then chunks of tiles as threads come free, claimed from *next. */
SER_KERNEL static void wino_chunked_run(conv_ctx *c, const nn_conv *cv, const nn_real *x, const nn_real *wt,
                                        const nn_real *u, nn_real *z, atomic_size_t *next, int tid, int nth)
{
	const size_t cin = (size_t)cv->cin, cout = (size_t)cv->cout, tw = wino_tile_cols(cv);
	const size_t rows = (size_t)cv->n * wino_tile_rows(cv), per = wino_chunk_rows(cv), chunks = wino_chunks(cv);
	const size_t plane = cout * cin;
	size_t lo, hi, j;
	if (!u) {
		nn_split(cout, 1, tid, nth, &lo, &hi);
		wino_kernels(wt, cv->cin, cv->cout, lo, hi, c->ws->full);
		nn_pool_barrier(c->pool);
		u = c->ws->full;
	}
	nn_real *v = c->ws->col[tid], *m = v + 16 * cin * per * tw, *pad = c->ws->col[tid] + wino_col_size(cv);
	while ((j = atomic_fetch_add(next, 1)) < chunks) {
		size_t tr0 = j * per, tr1 = MIN(rows, tr0 + per), tiles = (tr1 - tr0) * tw;
		wino_input(cv, x, tr0, tr1, 0, cin, v, pad);
		for (int e = 0; e < 16; e++)
			gemm(0, 0, cout, tiles, cin, u + (size_t)e * plane, cin, v + (size_t)e * cin * tiles, tiles, 0,
			     m + (size_t)e * cout * tiles, tiles);
		wino_output(cv, m, tr0, tr1, 0, cout, z, pad);
	}
}

SER_KERNEL static void wino_forward(conv_ctx *c, int tid, int nth)
{
	wino_chunked_run(c, c->cv, c->x, c->wt, c->u, c->z, &c->next[0], tid, nth);
}

/* dx of a chunked layer from dz and the flipped, transposed kernels
 * (ws->wflip): the same computation with cin and cout swapped. */
SER_KERNEL static void wino_dx(conv_ctx *c, int tid, int nth)
{
	const nn_conv *cv = c->cv;
	nn_conv t = {cv->cout, cv->cin, cv->n, cv->h, cv->w, cv->chunk_rows, NN_CONV_WINOGRAD, 0};
	wino_chunked_run(c, &t, c->dz, c->ws->wflip, NULL, c->dx, &c->next[1], tid, nth);
}

/* ---- the whole batch at once (NN_CONV_WHOLE_WINOGRAD) ----
 *
 * Small images with many channels (Cnn14's blocks 4-5 at full width) have
 * too few tile rows for chunks to share among threads, so the phases are
 * shared instead: the kernels' and the input's transforms split by
 * channels, the 16 products claimed one at a time, the output transform
 * split by channels.  Each product is computed whole by one thread, so the
 * result does not depend on the thread count.  ws->full holds U (unless
 * the kernels were transformed ahead), then V (16 cin T), then M (16 cout
 * T), T the batch's tiles. */

static size_t wino_whole_tiles(const nn_conv *cv)
{
	return (size_t)cv->n * wino_tile_rows(cv) * wino_tile_cols(cv);
}

static size_t wino_whole_size(const nn_conv *cv)
{
	return (cv->kernels_ahead ? 0 : wino_kernel_size(cv)) +
	       16 * ((size_t)cv->cin + (size_t)cv->cout) * wino_whole_tiles(cv);
}

/* z = the convolution of x with wt (or with the kernels transformed ahead,
 * u), for the layer cv (the layer itself, or its transpose for the backward
 * pass's dx), claiming products from *next. */
SER_KERNEL static void wino_whole_run(conv_ctx *c, const nn_conv *cv, const nn_real *x, const nn_real *wt,
                                      const nn_real *u, nn_real *z, atomic_size_t *next, int tid, int nth)
{
	const size_t cin = (size_t)cv->cin, cout = (size_t)cv->cout, rows = (size_t)cv->n * wino_tile_rows(cv);
	const size_t tiles = wino_whole_tiles(cv), plane = cout * cin;
	nn_real *v = u ? c->ws->full : c->ws->full + 16 * plane, *m = v + 16 * cin * tiles, *pad = c->ws->col[tid];
	size_t lo, hi, e;
	if (!u) {
		nn_split(cout, 1, tid, nth, &lo, &hi);
		wino_kernels(wt, cv->cin, cv->cout, lo, hi, c->ws->full);
		u = c->ws->full;
	}
	nn_split(cin, 1, tid, nth, &lo, &hi);
	wino_input(cv, x, 0, rows, lo, hi, v, pad);
	nn_pool_barrier(c->pool);
	while ((e = atomic_fetch_add(next, 1)) < 16)
		gemm(0, 0, cout, tiles, cin, u + e * plane, cin, v + e * cin * tiles, tiles, 0, m + e * cout * tiles,
		     tiles);
	nn_pool_barrier(c->pool);
	nn_split(cout, 1, tid, nth, &lo, &hi);
	wino_output(cv, m, 0, rows, lo, hi, z, pad);
}

SER_KERNEL static void wino_whole_forward(conv_ctx *c, int tid, int nth)
{
	wino_whole_run(c, c->cv, c->x, c->wt, c->u, c->z, &c->next[0], tid, nth);
}

/* The whole-batch layer's weight gradient (into c->dw, added when acc):
 * ws->full holds M (16 cout cin), V (16 cin T) and D (16 cout T). */
SER_KERNEL static void wino_whole_grad(conv_ctx *c, int tid, int nth)
{
	const nn_conv *cv = c->cv;
	const size_t cin = (size_t)cv->cin, cout = (size_t)cv->cout, rows = (size_t)cv->n * wino_tile_rows(cv);
	const size_t tiles = wino_whole_tiles(cv), plane = cout * cin;
	nn_real *m = c->ws->full, *v = m + 16 * plane, *d = v + 16 * cin * tiles, *pad = c->ws->col[tid];
	size_t lo, hi, e;
	nn_split(cin, 1, tid, nth, &lo, &hi);
	wino_input(cv, c->x, 0, rows, lo, hi, v, pad);
	nn_split(cout, 1, tid, nth, &lo, &hi);
	wino_grad_tiles(cv, c->dz, 0, rows, lo, hi, d);
	nn_pool_barrier(c->pool);
	while ((e = atomic_fetch_add(&c->next[1], 1)) < 16)
		gemm(0, 1, cout, cin, tiles, d + e * cout * tiles, tiles, v + e * cin * tiles, tiles, 0, m + e * plane,
		     cin);
	nn_pool_barrier(c->pool);
	nn_split(cout, 1, tid, nth, &lo, &hi);
	wino_grad_out(m, cin, cout, lo, hi, c->acc, c->dw);
}

/* dx of the layer = the convolution of dz with the flipped, transposed
 * kernels (ws->wflip, made beforehand): the same computation with cin and
 * cout swapped. */
SER_KERNEL static void wino_whole_dx(conv_ctx *c, int tid, int nth)
{
	const nn_conv *cv = c->cv;
	nn_conv t = {cv->cout, cv->cin, cv->n, cv->h, cv->w, 0, NN_CONV_WHOLE_WINOGRAD, 0};
	wino_whole_run(c, &t, c->dz, c->ws->wflip, NULL, c->dx, &c->next[2], tid, nth);
}

#endif
