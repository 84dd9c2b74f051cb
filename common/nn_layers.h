/*
 * nn_layers.h - the layer kernels of the network (forward and backward),
 * written once for a real type.
 *
 * The library builds them for float (names end in _f, GEMM is
 * cblas_sgemm).  A test may build the very same code for double by
 * defining NN_REAL double, NN_FN(x) x##_d and NN_GEMM cblas_dgemm before
 * including nn_layers.c, and check every backward against finite
 * differences (tests/t-nn-grad.c).
 *
 * Layout: activations are channel-major over the whole batch, "CNHW": a
 * tensor of C channels is C rows of P = N*H*W values (sample, time,
 * frequency).  Per-channel operations (BatchNorm) then read contiguous rows
 * and a convolution over the whole batch is one matrix product.
 *
 * Parallel kernels take an nn_pool and split work statically, so that the
 * result depends only on the thread count, never on scheduling.  Gradient
 * outputs have an "acc" flag: 0 overwrites, 1 adds (PyTorch's gradient
 * accumulation).
 */
#ifndef NN_REAL
#define NN_REAL float
#define NN_FN(name) name##_f
#define NN_GEMM cblas_sgemm
#endif

#ifndef SERTOOLS_NN_LAYERS_H_COMMON
#define SERTOOLS_NN_LAYERS_H_COMMON
#include <stddef.h>
#include <stdint.h>

#include "nn_pool.h"

/* splitmix64's finaliser: the generator behind initialisation and dropout. */
static inline uint64_t nn_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}
#define NN_GOLDEN 0x9e3779b97f4a7c15ULL

/* Dropout keep masks (1 keep, 0 drop) for n units: unit i of draw
 * (seed, counter, site) is kept when the top 24 bits of
 * nn_mix64(base + (i+1)*NN_GOLDEN), base = nn_mix64(seed ^ nn_mix64(counter*64+site)),
 * are >= p*2^24.  Independent of the thread count. */
void nn_dropout_mask(nn_pool *pool, uint64_t seed, uint64_t counter, int site, double p,
                     uint8_t *mask, size_t n);
#endif

typedef NN_REAL nn_real;

/* A 3x3 convolution, stride 1, padding 1, no bias, over the batch.
 * chunk_rows > 0: the N*H image rows are cut into chunks of chunk_rows rows
 * (chunk_rows*W positions), each an im2col into its thread's buffer and one
 * product (for large images and few channels);  chunk_rows == 0: one
 * im2col of the whole batch, and products over blocks of output channels
 * (for small images and many channels).  Threads claim chunks and blocks
 * as they come free, so a thread delayed by other load on the machine does
 * not hold the others up; every unit writes its own part of the result
 * (weight gradients: one partial per chunk, summed in chunk order), so the
 * results never depend on the scheduling or the thread count.  A chunked
 * convolution with one input channel (the first layer) is computed
 * directly, without im2col. */
typedef struct {
	int cin, cout, n, h, w;
	int chunk_rows;
} nn_conv;

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
nn_conv_sizes NN_FN(nn_conv_ws_size)(const nn_conv *cv, int backward);

/* z (cout x P) = conv(x (cin x P), wt (cout, cin, 3, 3)).  keep_col: for a
 * whole-batch convolution, where to leave the im2col matrix for the
 * backward pass (NULL: ws->full). */
void NN_FN(nn_conv_forward)(nn_pool *pool, const nn_conv *cv, nn_conv_ws *ws, const nn_real *x,
                            const nn_real *wt, nn_real *z, nn_real *keep_col);
/* dw (+)= dL/dwt and dx = dL/dx (dx may be NULL) from dz = dL/dz.  kept_col:
 * the keep_col of the forward pass or NULL (then recomputed). */
void NN_FN(nn_conv_backward)(nn_pool *pool, const nn_conv *cv, nn_conv_ws *ws, const nn_real *x,
                             const nn_real *wt, const nn_real *dz, nn_real *dw, int acc, nn_real *dx,
                             const nn_real *kept_col);

/* Per-channel mean and biased variance of the C rows of P values, in double. */
void NN_FN(nn_bn_stats)(nn_pool *pool, int c, size_t p, const nn_real *z, double *mean, double *var);

/* out = dropout(avgpool_k(relu(scale[c]*z + shift[c]))) over images n x h x w,
 * k = 1 or 2 (floor), out (C x n*(h/k)*(w/k)); mask NULL: no dropout, else
 * kept units are multiplied by keep_scale. */
void NN_FN(nn_affine_relu_pool)(nn_pool *pool, int c, int n, int h, int w, int k, const nn_real *z,
                                const nn_real *scale, const nn_real *shift, const uint8_t *mask,
                                nn_real keep_scale, nn_real *out);

/* Backward of BatchNorm + ReLU (+ avgpool k) for C channels of n x h x w:
 * dy is the gradient of the (pooled) output; g = dy_up * [scale*z+shift > 0];
 * dgamma (+)= sum g*xhat, dbeta (+)= sum g with xhat = (z-mean)*invstd;
 * dz = gamma*invstd*(g - mean(g) - xhat*mean(g*xhat)) when batch_stats
 * (training-mode BN), else gamma*invstd*g.  dz is required (g is formed in it). */
void NN_FN(nn_bn_relu_backward)(nn_pool *pool, int c, int n, int h, int w, int k, const nn_real *z,
                                const nn_real *mean, const nn_real *invstd, const nn_real *gamma,
                                const nn_real *scale, const nn_real *shift, const nn_real *dy,
                                int batch_stats, nn_real *dz, nn_real *dgamma, nn_real *dbeta, int acc);

/* In place: x[i] = mask[i] ? x[i]*keep_scale : 0. */
void NN_FN(nn_dropout_apply)(size_t n, nn_real *x, const uint8_t *mask, nn_real keep_scale);

/* BatchNorm over the columns of a rows x cols matrix (bn0: the mel bins).
 * Statistics: per-column mean and biased variance (double). */
void NN_FN(nn_colbn_stats)(size_t rows, int cols, const nn_real *x, double *mean, double *var);
/* y = x*scale[col] + shift[col] (y may be x). */
void NN_FN(nn_colbn_apply)(nn_pool *pool, size_t rows, int cols, const nn_real *x, const nn_real *scale,
                           const nn_real *shift, nn_real *y);
/* dgamma (+)= sum dy*xhat, dbeta (+)= sum dy (per column); dx (may be NULL)
 * as in nn_bn_relu_backward without the ReLU. */
void NN_FN(nn_colbn_backward)(size_t rows, int cols, const nn_real *x, const nn_real *mean,
                              const nn_real *invstd, const nn_real *gamma, const nn_real *dy,
                              int batch_stats, nn_real *dx, nn_real *dgamma, nn_real *dbeta, int acc);

/* The head's pooling: x (C x n*h*w) -> feat (n x C) with
 * feat = max_t(mean_f x) + mean_t(mean_f x); argmax (C*n) for backward. */
void NN_FN(nn_head_forward)(int c, int n, int h, int w, const nn_real *x, nn_real *feat, int *argmax);
void NN_FN(nn_head_backward)(int c, int n, int h, int w, const nn_real *dfeat, const int *argmax,
                             nn_real *dx);

/* y (n x out) = x (n x in) * W^T + b, W (out x in). */
void NN_FN(nn_linear_forward)(int n, int in, int out, const nn_real *x, const nn_real *wt,
                              const nn_real *b, nn_real *y);
/* dw (+)= dy^T x, db (+)= sum dy, dx = dy W (dx may be NULL). */
void NN_FN(nn_linear_backward)(int n, int in, int out, const nn_real *x, const nn_real *wt,
                               const nn_real *dy, nn_real *dw, nn_real *db, int acc, nn_real *dx);

/* Row-wise log-softmax of n x k logits (may be in place). */
void NN_FN(nn_log_softmax)(int n, int k, const nn_real *logits, nn_real *logp);
/* Class-weighted NLL with PyTorch's "mean" reduction:
 * sum_i w[y_i] (-logp_i[y_i]) / sum_i w[y_i] (w NULL: all 1); dlogits
 * (may be NULL) is its gradient with respect to the logits. */
double NN_FN(nn_weighted_nll)(int n, int k, const nn_real *logp, const int *labels, const nn_real *w,
                              nn_real *dlogits);
