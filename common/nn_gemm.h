/* nn_gemm.h - private to the network's kernels (nn_conv.c, nn_layers.c):
 * the matrix product of the current real type, row-major, through BLAS, and
 * MIN/MAX.  Included once per translation unit, after NN_REAL and NN_GEMM
 * are set (nn_conv.h does that). */
#ifndef SERTOOLS_NN_GEMM_H
#define SERTOOLS_NN_GEMM_H

#include <cblas.h>
#include <string.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* c (m x n) = op(a) op(b) + beta c; k == 0 clears c when beta is 0. */
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

#endif
