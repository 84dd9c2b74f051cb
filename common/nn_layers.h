/*
 * nn_layers.h - the layer kernels of the network (forward and backward),
 * written once for a real type.
 *
 * The library builds them for float (NN_REAL float, GEMM cblas_sgemm),
 * under the plain names declared here.  A test may build the very same
 * code for double by defining NN_REAL double, NN_GEMM cblas_dgemm and a
 * new name for each function (#define nn_conv_forward nn_conv_forward_d,
 * ...) before including nn_layers.c, and check every backward against
 * finite differences (tests/t-nn-grad.c).
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
#define NN_GEMM cblas_sgemm
#endif

#ifndef SERTOOLS_NN_LAYERS_H_COMMON
#define SERTOOLS_NN_LAYERS_H_COMMON
#include <stddef.h>
#include <stdint.h>

#include "nn_pool.h"
#include "rng.h"


/* Dropout keep masks (1 keep, 0 drop) for n units: unit i of draw
 * (seed, counter, site) is kept when the top 24 bits of
 * rng_mix64(base + (i+1)*RNG_GOLDEN), base = rng_mix64(seed ^ rng_mix64(counter*64+site)),
 * are >= p*2^24.  Independent of the thread count. */
void nn_dropout_mask(nn_pool *pool, uint64_t seed, uint64_t counter, int site, double p,
                     uint8_t *mask, size_t n);
#endif

typedef NN_REAL nn_real;

#include "nn_conv.h" /* the convolution, in a file of its own */

/* Per-channel mean and biased variance of the C rows of P values, in double. */
void nn_bn_stats(nn_pool *pool, int c, size_t p, const nn_real *z, double *mean, double *var);

/* out = dropout(avgpool_k(relu(scale[c]*z + shift[c]))) over images n x h x w,
 * k = 1 or 2 (floor), out (C x n*(h/k)*(w/k)); mask NULL: no dropout, else
 * kept units are multiplied by keep_scale. */
void nn_affine_relu_pool(nn_pool *pool, int c, int n, int h, int w, int k, const nn_real *z,
                                const nn_real *scale, const nn_real *shift, const uint8_t *mask,
                                nn_real keep_scale, nn_real *out);

/* Backward of BatchNorm + ReLU (+ avgpool k) for C channels of n x h x w:
 * dy is the gradient of the (pooled) output; g = dy_up * [scale*z+shift > 0];
 * dgamma (+)= sum g*xhat, dbeta (+)= sum g with xhat = (z-mean)*invstd;
 * dz = gamma*invstd*(g - mean(g) - xhat*mean(g*xhat)) when batch_stats
 * (training-mode BN), else gamma*invstd*g.  g is formed in gtmp, one
 * channel (n*h*w values) per pool thread, so dz may be z itself (the
 * gradient replaces the activation it no longer needs). */
void nn_bn_relu_backward(nn_pool *pool, int c, int n, int h, int w, int k, const nn_real *z,
                                const nn_real *mean, const nn_real *invstd, const nn_real *gamma,
                                const nn_real *scale, const nn_real *shift, const nn_real *dy,
                                int batch_stats, nn_real *gtmp, nn_real *dz, nn_real *dgamma, nn_real *dbeta,
                                int acc);

/* In place: x[i] = mask[i] ? x[i]*keep_scale : 0. */
void nn_dropout_apply(size_t n, nn_real *x, const uint8_t *mask, nn_real keep_scale);

/* BatchNorm over the columns of a rows x cols matrix (bn0: the mel bins).
 * Statistics: per-column mean and biased variance (double). */
void nn_colbn_stats(size_t rows, int cols, const nn_real *x, double *mean, double *var);
/* y = x*scale[col] + shift[col] (y may be x). */
void nn_colbn_apply(nn_pool *pool, size_t rows, int cols, const nn_real *x, const nn_real *scale,
                           const nn_real *shift, nn_real *y);
/* dgamma (+)= sum dy*xhat, dbeta (+)= sum dy (per column); dx (may be NULL)
 * as in nn_bn_relu_backward without the ReLU. */
void nn_colbn_backward(size_t rows, int cols, const nn_real *x, const nn_real *mean,
                              const nn_real *invstd, const nn_real *gamma, const nn_real *dy,
                              int batch_stats, nn_real *dx, nn_real *dgamma, nn_real *dbeta, int acc);

/* The head's pooling: x (C x n*h*w) -> feat (n x C) with
 * feat = max_t(mean_f x) + mean_t(mean_f x); argmax (C*n) for backward. */
void nn_head_forward(int c, int n, int h, int w, const nn_real *x, nn_real *feat, int *argmax);
void nn_head_backward(int c, int n, int h, int w, const nn_real *dfeat, const int *argmax,
                             nn_real *dx);

/* y (n x out) = x (n x in) * W^T + b, W (out x in). */
void nn_linear_forward(int n, int in, int out, const nn_real *x, const nn_real *wt,
                              const nn_real *b, nn_real *y);
/* dw (+)= dy^T x, db (+)= sum dy, dx = dy W (dx may be NULL). */
void nn_linear_backward(int n, int in, int out, const nn_real *x, const nn_real *wt,
                               const nn_real *dy, nn_real *dw, nn_real *db, int acc, nn_real *dx);

/* Row-wise log-softmax of n x k logits (may be in place). */
void nn_log_softmax(int n, int k, const nn_real *logits, nn_real *logp);
/* Class-weighted NLL with PyTorch's "mean" reduction:
 * sum_i w[y_i] (-logp_i[y_i]) / sum_i w[y_i] (w NULL: all 1); dlogits
 * (may be NULL) is its gradient with respect to the logits. */
double nn_weighted_nll(int n, int k, const nn_real *logp, const int *labels, const nn_real *w,
                              nn_real *dlogits);
