/*
 * nn_conv.h - the network's 3x3 convolution (stride 1, padding 1, no bias)
 * over a whole batch, forward and backward, written once for a real type
 * (float in the library; see nn_layers.h for the double build of tests).
 *
 * Layout as in nn_layers.h: x is cin rows of P = n*h*w values, z cout rows.
 *
 * The way a layer is computed is chosen once, when it is planned
 * (nn_conv_plan), from its shape alone:
 *   NN_CONV_WHOLE_BATCH  small images, many channels: one im2col of the
 *                        whole batch, products over blocks of channels;
 *   NN_CONV_CHUNKED      large images: the n*h image rows cut into chunks,
 *                        each an im2col into its thread's buffer and one
 *                        product;
 *   NN_CONV_DIRECT       chunked, one input channel (the first layer):
 *                        computed directly, no im2col;
 *   NN_CONV_SMALL        chunked, 2..16 channels (the first blocks of
 *                        narrow networks), a width that is a multiple of
 *                        the vector length: direct, register-blocked over
 *                        a row (an im2col would cost as much as the
 *                        arithmetic);
 *   NN_CONV_WINOGRAD     chunked, at least 64 input and output channels:
 *                        the forward and dx by Winograd's F(2x2, 3x3),
 *                        2.25x fewer multiplications (nn_winograd.h); dW
 *                        by F(3x3, 2x2) from 128 channels, else as
 *                        NN_CONV_CHUNKED;
 *   NN_CONV_WHOLE_WINOGRAD whole batch, at least 256 input and output
 *                        channels and 128 tiles: forward, dx and dW by
 *                        Winograd over the whole batch (no im2col kept);
 *                        forward-only plans (nn_conv_plan_inference), whose
 *                        kernels are transformed ahead, take it from fewer.
 * Threads claim chunks and channel blocks as they come free, so a thread
 * delayed by other load does not hold the others up; every unit writes its
 * own part of the result (weight gradients: one partial per chunk, summed
 * in chunk order) and the chunk count never depends on the thread count,
 * so the results do not depend on the scheduling or the thread count.
 *
 * Usage: nn_conv_plan(&cv, ...); sizes = nn_conv_ws_size(&cv, backward);
 * allocate an nn_conv_ws (col: one buffer per pool thread); then
 * nn_conv_forward / nn_conv_backward as often as needed.
 */
#ifndef SERTOOLS_NN_CONV_H
#define SERTOOLS_NN_CONV_H

#ifndef NN_REAL
#define NN_REAL float
#define NN_GEMM cblas_sgemm
#endif

#include <stddef.h>

#include "nn_pool.h"

typedef NN_REAL nn_real;

typedef enum {
	NN_CONV_WHOLE_BATCH,
	NN_CONV_CHUNKED,
	NN_CONV_DIRECT,
	NN_CONV_SMALL,
	NN_CONV_WINOGRAD,
	NN_CONV_WHOLE_WINOGRAD,
} nn_conv_strategy;

typedef struct {
	int cin, cout, n, h, w;
	int chunk_rows;              /* rows per chunk; 0 for the whole-batch strategies */
	nn_conv_strategy strategy;
	int kernels_ahead;           /* a Winograd forward that reads kernels transformed ahead (nn_conv_plan_inference) */
} nn_conv;

/* Plans the convolution of a batch of n images of h x w, cin -> cout
 * channels: whole-batch up to 4096 positions (except one input channel),
 * else chunks of about 1024 positions, a multiple of four of them. */
void nn_conv_plan(nn_conv *cv, int cin, int cout, int n, int h, int w);
/* The same with the chunking given (0: whole batch), for tests. */
void nn_conv_plan_chunked(nn_conv *cv, int cin, int cout, int n, int h, int w, int chunk_rows);

/* Plans a forward-only convolution whose weights stay the same across many
 * calls (inference).  Its Winograd kernels are transformed once, ahead
 * (nn_conv_transform_kernels), instead of at every call; without that cost
 * Winograd pays on thinner layers, so more layers take it (nn_conv.c,
 * WINOGRAD_AHEAD_*).  Such a plan has no backward pass. */
void nn_conv_plan_inference(nn_conv *cv, int cin, int cout, int n, int h, int w);
/* Values of the transformed kernels the forward of cv reads: 16 cout cin
 * for a Winograd layer of nn_conv_plan_inference, else 0 (none). */
size_t nn_conv_kernels_size(const nn_conv *cv);
/* u = the Winograd transform of wt (cout, cin, 3, 3) for cv, by the pool's
 * threads; the same values the forward would make at each call. */
void nn_conv_transform_kernels(nn_pool *pool, const nn_conv *cv, const nn_real *wt, nn_real *u);

/* Scratch of a convolution; sizes from nn_conv_ws_size. */
typedef struct {
	nn_real **col;                 /* one per pool thread; chunked: 9*max(cin,cout)*chunk_rows*w each */
	nn_real *dw[1];                /* chunked backward: cout*cin*9 per chunk */
	nn_real *wflip;                /* chunked backward: cin*cout*9 */
	nn_real *full;                 /* whole-batch: 9*cin*n*h*w */
} nn_conv_ws;

typedef struct {
	size_t col, dw, wflip, full;   /* element counts per buffer (0: not needed) */
} nn_conv_sizes;
nn_conv_sizes nn_conv_ws_size(const nn_conv *cv, int backward);

/* z (cout x P) = conv(x (cin x P), wt (cout, cin, 3, 3)).  u: wt's
 * transformed kernels when nn_conv_kernels_size(cv) > 0, else NULL.
 * keep_col: for a whole-batch convolution, where to leave the im2col matrix
 * for the backward pass (NULL: ws->full). */
void nn_conv_forward(nn_pool *pool, const nn_conv *cv, nn_conv_ws *ws, const nn_real *x, const nn_real *wt,
                     const nn_real *u, nn_real *z, nn_real *keep_col);
/* dw (+)= dL/dwt and dx = dL/dx (dx may be NULL) from dz = dL/dz.  kept_col:
 * the keep_col of the forward pass or NULL (then recomputed). */
void nn_conv_backward(nn_pool *pool, const nn_conv *cv, nn_conv_ws *ws, const nn_real *x, const nn_real *wt,
                      const nn_real *dz, nn_real *dw, int acc, nn_real *dx, const nn_real *kept_col);

#endif
