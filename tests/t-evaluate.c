/* Unit test of common/evaluate.h: the padding value of short items is
 * the log-Mel of digital silence exactly as melspec computes it, for
 * every power and amin a feature stream may declare. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "evaluate.h"
#include "melspec.h"
#include "value.h"

/* What melspec outputs for an all-zero waveform under cfg (every frame,
 * every band is the same value). */
static float melspec_of_silence(const melspec_config *cfg)
{
	char err[256];
	melspec *m = melspec_new(cfg, err, sizeof err);
	NEED(m);
	size_t n = 4 * (size_t)cfg->n_fft;
	float *x = calloc(n, sizeof *x);
	float *out = malloc(melspec_frames(m, n) * (size_t)cfg->n_mels * sizeof *out);
	NEED(x && out);
	NEED(melspec_compute(m, x, n, out) == 0);
	float v = out[3 * cfg->n_mels + cfg->n_mels / 2];
	free(x);
	free(out);
	melspec_free(m);
	return v;
}

static sv *params_of(const melspec_config *cfg)
{
	sv *p = sv_map(), *mel = sv_map();
	NEED(p && mel);
	NEED(sv_set(mel, "power", sv_float(cfg->power)) == 0 && sv_set(mel, "amin", sv_float(cfg->amin)) == 0);
	NEED(sv_set(p, "melspec", mel) == 0);
	return p;
}

int main(void)
{
	const double powers[] = {2.0, 1.0, 0.5, 3.0};
	const double amins[] = {1e-10, 1e-5, 1e-3};
	for (size_t i = 0; i < sizeof powers / sizeof *powers; i++)
		for (size_t j = 0; j < sizeof amins / sizeof *amins; j++) {
			melspec_config cfg = melspec_default_config(16000);
			cfg.power = powers[i];
			cfg.amin = amins[j];
			sv *p = params_of(&cfg);
			float want = melspec_of_silence(&cfg), got = evaluate_silence_value(p);
			/* both are (20 / power) * log10(amin) rounded to float; allow an ulp of slack */
			CHECK(fabsf(got - want) <= 1e-6f * fabsf(want), "power %g amin %g: pad value %.7g, melspec of silence %.7g",
			      powers[i], amins[j], got, want);
			sv_free(p);
		}
	/* a stream without params.melspec: the Cnn14 front end's -100 dB */
	sv *none = sv_map();
	NEED(none);
	CHECK(evaluate_silence_value(none) == -100.0f, "no melspec params: %g", evaluate_silence_value(none));
	sv_free(none);
	return check_done();
}
