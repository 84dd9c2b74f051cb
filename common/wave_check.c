/* wave_check.c - the waveform rules of wave_check.h. */
#include "wave_check.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>

int wave_check_rate(const sv *params, long *rate, char *why, size_t len)
{
	int64_t r;
	if (!sv_get(params, "sample_rate")) {
		snprintf(why, len, "no sample_rate in params: not a waveform stream");
		return -1;
	}
	if (!sv_get_int(params, "sample_rate", &r) || r < 2 || r > INT_MAX) {
		snprintf(why, len, "sample_rate is not an integer from 2 to %d Hz", INT_MAX);
		return -1;
	}
	*rate = (long)r;
	return 0;
}

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
