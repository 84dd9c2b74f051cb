/*
 * nn_winograd.h - private to nn_conv.c (included once per real type, after
 * nn_gemm.h and the conv_ctx definition): the forward pass of a 3x3
 * convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray,
 * "Fast algorithms for convolutional neural networks", 2016).
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
 * result differs from the direct sum by a few float roundings of the
 * partial sums: relative 2.6e-7..1.5e-6 measured in a numpy simulation of
 * the Cnn14 layers, under the 1e-4 forward tolerance against PyTorch
 * (F(4x4, 3x3) measured 3e-6..1.1e-5 and was not taken).
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
 * tiles from the chunk's first); B' = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
 * pad: 4 rows of 2 * tile_cols + 2 values. */
SER_KERNEL static void wino_input(const nn_conv *cv, const nn_real *x, size_t tr0, size_t tr1, nn_real *v,
                                  nn_real *pad)
{
	const int h = cv->h, w = cv->w;
	const size_t th = wino_tile_rows(cv), tw = wino_tile_cols(cv), plen = 2 * tw + 2;
	const size_t p = (size_t)cv->n * (size_t)h * (size_t)w, tiles = (tr1 - tr0) * tw;
	const size_t plane = (size_t)cv->cin * tiles;
	for (size_t ci = 0; ci < (size_t)cv->cin; ci++)
		for (size_t tr = tr0; tr < tr1; tr++) {
			size_t img = tr / th;
			int y0 = 2 * (int)(tr % th) - 1;
			for (int i = 0; i < 4; i++) {
				nn_real *row = pad + (size_t)i * plen;
				memset(row, 0, plen * sizeof *row);
				if (y0 + i >= 0 && y0 + i < h)
					memcpy(row + 1, x + ci * p + (img * (size_t)h + (size_t)(y0 + i)) * (size_t)w,
					       (size_t)w * sizeof *row);
			}
			nn_real *dst = v + ci * tiles + (tr - tr0) * tw;
			for (size_t tx = 0; tx < tw; tx++) {
				nn_real d[4][4], t[4][4];
				for (int i = 0; i < 4; i++)
					for (int j = 0; j < 4; j++)
						d[i][j] = pad[(size_t)i * plen + 2 * tx + (size_t)j];
				for (int j = 0; j < 4; j++) { /* B' d */
					t[0][j] = d[0][j] - d[2][j];
					t[1][j] = d[1][j] + d[2][j];
					t[2][j] = d[2][j] - d[1][j];
					t[3][j] = d[1][j] - d[3][j];
				}
				for (int i = 0; i < 4; i++) { /* (B' d) B */
					dst[(size_t)(i * 4 + 0) * plane + tx] = t[i][0] - t[i][2];
					dst[(size_t)(i * 4 + 1) * plane + tx] = t[i][1] + t[i][2];
					dst[(size_t)(i * 4 + 2) * plane + tx] = t[i][2] - t[i][1];
					dst[(size_t)(i * 4 + 3) * plane + tx] = t[i][1] - t[i][3];
				}
			}
		}
}

/* z of tile rows [tr0, tr1) = A' M A, the parts of tiles inside the image;
 * A' = [1 1 1 0; 0 1 -1 -1]. */
SER_KERNEL static void wino_output(const nn_conv *cv, const nn_real *m, size_t tr0, size_t tr1, nn_real *z)
{
	const int h = cv->h, w = cv->w;
	const size_t th = wino_tile_rows(cv), tw = wino_tile_cols(cv);
	const size_t p = (size_t)cv->n * (size_t)h * (size_t)w, tiles = (tr1 - tr0) * tw;
	const size_t plane = (size_t)cv->cout * tiles;
	for (size_t co = 0; co < (size_t)cv->cout; co++)
		for (size_t tr = tr0; tr < tr1; tr++) {
			size_t img = tr / th;
			int y = 2 * (int)(tr % th);
			nn_real *z0 = z + co * p + (img * (size_t)h + (size_t)y) * (size_t)w;
			nn_real *z1 = y + 1 < h ? z0 + w : NULL;
			const nn_real *src = m + co * tiles + (tr - tr0) * tw;
			for (size_t tx = 0; tx < tw; tx++) {
				nn_real s[4][4], t[2][4];
				for (int e = 0; e < 16; e++)
					s[e / 4][e % 4] = src[(size_t)e * plane + tx];
				for (int j = 0; j < 4; j++) { /* A' M */
					t[0][j] = s[0][j] + s[1][j] + s[2][j];
					t[1][j] = s[1][j] - s[2][j] - s[3][j];
				}
				size_t x = 2 * tx;
				bool two = x + 1 < (size_t)w;
				z0[x] = t[0][0] + t[0][1] + t[0][2];
				if (two)
					z0[x + 1] = t[0][1] - t[0][2] - t[0][3];
				if (z1) {
					z1[x] = t[1][0] + t[1][1] + t[1][2];
					if (two)
						z1[x + 1] = t[1][1] - t[1][2] - t[1][3];
				}
			}
		}
}

/* The whole forward pass, run by every pool thread: the kernels' transform
 * split by output channels, then chunks of tiles as threads come free. */
SER_KERNEL static void wino_forward(conv_ctx *c, int tid, int nth)
{
	const nn_conv *cv = c->cv;
	const size_t cin = (size_t)cv->cin, cout = (size_t)cv->cout, tw = wino_tile_cols(cv);
	const size_t rows = (size_t)cv->n * wino_tile_rows(cv), per = wino_chunk_rows(cv), chunks = wino_chunks(cv);
	const size_t plane = cout * cin;
	size_t lo, hi, j;
	nn_split(cout, 1, tid, nth, &lo, &hi);
	wino_kernels(c->wt, cv->cin, cv->cout, lo, hi, c->ws->full);
	nn_pool_barrier(c->pool);
	nn_real *v = c->ws->col[tid], *m = v + 16 * cin * per * tw, *pad = c->ws->col[tid] + wino_col_size(cv);
	while ((j = atomic_fetch_add(&c->next[0], 1)) < chunks) {
		size_t tr0 = j * per, tr1 = MIN(rows, tr0 + per), tiles = (tr1 - tr0) * tw;
		wino_input(cv, c->x, tr0, tr1, v, pad);
		for (int e = 0; e < 16; e++)
			gemm(0, 0, cout, tiles, cin, c->ws->full + (size_t)e * plane, cin, v + (size_t)e * cin * tiles,
			     tiles, 0, m + (size_t)e * cout * tiles, tiles);
		wino_output(cv, m, tr0, tr1, c->z);
	}
}

#endif
