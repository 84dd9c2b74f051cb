/* nn_layers.c - see nn_layers.h.  Built for float by the library; a test may
 * include it again for double (then NN_LAYERS_NO_COMMON skips the
 * type-independent part already in the library). */
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "cpu.h"
#include "nn_layers.h"
#include "nn_gemm.h"

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
		c->mask[i] = (rng_mix64(c->base + (i + 1) * RNG_GOLDEN) >> 40) >= threshold;
}

void nn_dropout_mask(nn_pool *pool, uint64_t seed, uint64_t counter, int site, double p, uint8_t *mask,
                     size_t n)
{
	dropout_ctx c = {rng_mix64(seed ^ rng_mix64(counter * 64 + (uint64_t)site)), p, mask, n};
	nn_pool_run(pool, dropout_task, &c);
}
#endif

/* ---- BatchNorm, ReLU, pooling ---- */

typedef struct {
	int c, n, h, w, k;
	size_t p;
	const nn_real *z, *scale, *shift, *mean, *invstd, *gamma, *dy;
	double *dmean, *dvar;
	const uint8_t *mask;
	nn_real keep_scale;
	nn_real *out, *gtmp, *dz, *dgamma, *dbeta;
	int batch_stats, acc;
} bn_ctx;

/* Eight float lanes as one vector: gcc 12 left the lane loop of sums2
 * scalar (the choice between b and a inside it), so the lanes are spelled
 * out; each lane's operations and their order are the scalar loop's. */
enum { SUM_LANES = 8 };
typedef nn_real sum_lanes __attribute__((vector_size(SUM_LANES * sizeof(nn_real))));
typedef nn_real sum_lanes_u __attribute__((vector_size(SUM_LANES * sizeof(nn_real)), aligned(sizeof(nn_real)),
                                           may_alias));

/* s1 = sum a' and s2 = sum a'*b' over n values, where a' = a - ashift and
 * b' = b - bshift (b NULL: b' = a'), in blocks of SUM_LANES float lanes
 * added into double. */
SER_KERNEL static void sums2(const nn_real *a, nn_real ashift, const nn_real *b, nn_real bshift, size_t n, double *s1,
                  double *s2)
{
	enum { BLOCK = 256 };
	double d1 = 0, d2 = 0;
	for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
		size_t len = MIN((size_t)BLOCK, n - i0), i = 0;
		sum_lanes l1 = {0}, l2 = {0};
		const nn_real *pa = a + i0, *pb = b ? b + i0 : NULL;
		for (; i + SUM_LANES <= len; i += SUM_LANES) {
			sum_lanes v = *(const sum_lanes_u *)(pa + i) - ashift;
			l1 += v;
			sum_lanes vb = v;
			if (pb)
				vb = *(const sum_lanes_u *)(pb + i) - bshift;
			l2 += v * vb;
		}
		for (; i < len; i++) {
			nn_real v = pa[i] - ashift;
			l1[0] += v;
			l2[0] += v * (pb ? pb[i] - bshift : v);
		}
		nn_real r1 = 0, r2 = 0;
		for (int j = 0; j < SUM_LANES; j++) {
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

void nn_bn_stats(nn_pool *pool, int c, size_t p, const nn_real *z, double *mean, double *var)
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

void nn_affine_relu_pool(nn_pool *pool, int c, int n, int h, int w, int k, const nn_real *z,
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
		nn_real *dzc = b->dz + ch * pin, *g = b->gtmp + (size_t)tid * pin;
		/* g = upstream gradient (un-pooled) where the ReLU passed it, into
		 * this thread's scratch */
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
		for (size_t i = 0; i < pin; i++) /* zc may be dzc: element i is read before it is written */
			dzc[i] = fk * g[i] + f1 * (zc[i] - m) + f0;
	}
}

void nn_bn_relu_backward(nn_pool *pool, int c, int n, int h, int w, int k, const nn_real *z,
                                const nn_real *mean, const nn_real *invstd, const nn_real *gamma,
                                const nn_real *scale, const nn_real *shift, const nn_real *dy,
                                int batch_stats, nn_real *gtmp, nn_real *dz, nn_real *dgamma, nn_real *dbeta,
                                int acc)
{
	bn_ctx b = {.c = c, .n = n, .h = h, .w = w, .k = k, .z = z, .mean = mean, .invstd = invstd,
	            .gamma = gamma, .scale = scale, .shift = shift, .dy = dy, .batch_stats = batch_stats,
	            .gtmp = gtmp, .dz = dz, .dgamma = dgamma, .dbeta = dbeta, .acc = acc};
	nn_pool_run(pool, bn_relu_backward_task, &b);
}

SER_KERNEL static void dropout_apply_kernel(size_t n, nn_real *x, const uint8_t *mask, nn_real keep_scale)
{
	for (size_t i = 0; i < n; i++)
		x[i] = mask[i] ? x[i] * keep_scale : 0;
}

void nn_dropout_apply(size_t n, nn_real *x, const uint8_t *mask, nn_real keep_scale)
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

void nn_colbn_stats(size_t rows, int cols, const nn_real *x, double *mean, double *var)
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

void nn_colbn_apply(nn_pool *pool, size_t rows, int cols, const nn_real *x, const nn_real *scale,
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

void nn_colbn_backward(size_t rows, int cols, const nn_real *x, const nn_real *mean,
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

void nn_head_forward(int c, int n, int h, int w, const nn_real *x, nn_real *feat, int *argmax)
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

void nn_head_backward(int c, int n, int h, int w, const nn_real *dfeat, const int *argmax, nn_real *dx)
{
	head_backward_kernel(c, n, h, w, dfeat, argmax, dx);
}

/* ---- linear layers and the loss ---- */

void nn_linear_forward(int n, int in, int out, const nn_real *x, const nn_real *wt, const nn_real *b,
                              nn_real *y)
{
	for (int i = 0; i < n; i++)
		memcpy(y + (size_t)i * (size_t)out, b, (size_t)out * sizeof *y);
	if (n > 0 && out > 0 && in > 0)
		NN_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1, x, in, wt, in, 1, y, out);
}

void nn_linear_backward(int n, int in, int out, const nn_real *x, const nn_real *wt, const nn_real *dy,
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

void nn_log_softmax(int n, int k, const nn_real *logits, nn_real *logp)
{
	log_softmax_kernel(n, k, logits, logp);
}

double nn_weighted_nll(int n, int k, const nn_real *logp, const int *labels, const nn_real *w,
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
