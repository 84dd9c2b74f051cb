/* Prints the OpenBLAS core in use (the environment may force one with
 * OPENBLAS_CORETYPE), its configuration and thread count, and the variant
 * of sertools' own kernels the loader picked on this CPU (common/cpu.h). */
#include <stdio.h>

#include <cblas.h>

#include "cpu.h"

int main(void)
{
	printf("%s (threads %d; %s); sertools kernels: %s\n", openblas_get_corename(), openblas_get_num_threads(),
	       openblas_get_config(), ser_cpu_variant());
	return 0;
}
