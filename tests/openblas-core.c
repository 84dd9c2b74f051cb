/* Prints the OpenBLAS core in use (the environment may force one with
 * OPENBLAS_CORETYPE), its configuration and thread count. */
#include <stdio.h>

#include <cblas.h>

int main(void)
{
	printf("%s (threads %d; %s)\n", openblas_get_corename(), openblas_get_num_threads(), openblas_get_config());
	return 0;
}
