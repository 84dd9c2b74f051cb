/* Prints the OpenBLAS core in use (the environment may force one with
 * OPENBLAS_CORETYPE), its configuration and thread count, the variant of
 * sertools' own kernels the loader picked on this CPU (common/cpu.h), and
 * the FFTW version and the plan melspec's 512-point FFT runs
 * (melspec_fft_plan). */
#include <stdio.h>

#include <cblas.h>
#include <fftw3.h>

#include "cpu.h"
#include "melspec.h"

int main(void)
{
	char err[256];
	melspec_config cfg = melspec_default_config(16000);
	melspec *m = melspec_new(&cfg, err, sizeof err);
	if (!m) {
		fprintf(stderr, "openblas-core: %s\n", err);
		return 2;
	}
	printf("%s (threads %d; %s); %s, melspec FFT plan %s; sertools kernels: %s\n", openblas_get_corename(),
	       openblas_get_num_threads(), openblas_get_config(), fftw_version, melspec_fft_plan(m),
	       ser_cpu_variant());
	melspec_free(m);
	return 0;
}
