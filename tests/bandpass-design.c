/* Prints the band-pass design of common/iir.c for the tests to compare with
 * scipy: one line per section (b0 b1 b2 a0 a1 a2), then "zi" lines
 * (sosfilt_zi, two per section) and "padlen N".
 * Usage: bandpass-design ORDER LOW HIGH RATE */
#include <stdio.h>
#include <stdlib.h>

#include "iir.h"

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: bandpass-design ORDER LOW HIGH RATE\n");
		return 1;
	}
	int order = atoi(argv[1]);
	double sos[6 * IIR_MAX_ORDER], zi[2 * IIR_MAX_ORDER];
	char err[256];
	if (iir_butter_bandpass(order, atof(argv[2]), atof(argv[3]), atof(argv[4]), sos, err, sizeof err)) {
		fprintf(stderr, "bandpass-design: %s\n", err);
		return 2;
	}
	for (int s = 0; s < order; s++)
		printf("%.17g %.17g %.17g %.17g %.17g %.17g\n", sos[6 * s], sos[6 * s + 1], sos[6 * s + 2],
		       sos[6 * s + 3], sos[6 * s + 4], sos[6 * s + 5]);
	iir_sos_zi(sos, order, zi);
	for (int s = 0; s < order; s++)
		printf("zi %.17g %.17g\n", zi[2 * s], zi[2 * s + 1]);
	printf("padlen %zu\n", iir_sos_padlen(sos, order));
	return 0;
}
