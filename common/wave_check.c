/* wave_check.c - the waveform rules of wave_check.h. */
#include "wave_check.h"

#include <math.h>
#include <stdio.h>

int wave_check_samples(const float *x, size_t n, char *why, size_t len)
{
	for (size_t i = 0; i < n; i++) {
		if (!(fabsf(x[i]) <= (float)WAVE_MAX_ABS)) { /* NaN too */
			if (isnan(x[i]))
				snprintf(why, len, "sample %zu is NaN", i);
			else if (isinf(x[i]))
				snprintf(why, len, "sample %zu is infinite", i);
			else
				snprintf(why, len, "sample %zu is %g, beyond the limit of %g (formats/limits.md)", i,
				         (double)x[i], WAVE_MAX_ABS);
			return -1;
		}
	}
	return 0;
}
