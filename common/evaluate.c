#include "evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* qsort has no context argument: sort (frames, index) pairs instead */
typedef struct {
	int frames;
	size_t index;
} by_len;

static int cmp_len(const void *a, const void *b)
{
	const by_len *x = a, *y = b;
	if (x->frames != y->frames)
		return x->frames < y->frames ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

float evaluate_silence_value(const sv *params)
{
	/* melspec's dB conversion is (20 / power) * log10(max(mel, amin)); the
	 * defaults are those of the Cnn14 front end (melspec_default_config) */
	double amin = 1e-10, power = 2.0;
	const sv *mel = sv_get(params, "melspec");
	if (mel) {
		if (!sv_get_num(mel, "amin", &amin) || !(amin > 0))
			amin = 1e-10;
		if (!sv_get_num(mel, "power", &power) || !(power > 0))
			power = 2.0;
	}
	return (float)(20.0 / power * log10(amin));
}

/* The items sorted by (padded) length, so that a batch holds equal lengths;
 * NULL with the reason in err for a short item without --pad-short. */
static by_len *order_by_length(const dataset *ds, const eval_options *opt, int *max_frames, char *err)
{
	by_len *order = malloc((ds->n ? ds->n : 1) * sizeof *order);
	if (!order) {
		snprintf(err, CNN14_ERRLEN, "out of memory");
		return NULL;
	}
	*max_frames = CNN14_MIN_FRAMES;
	for (size_t i = 0; i < ds->n; i++) {
		int f = ds->items[i].frames;
		if (f < CNN14_MIN_FRAMES) {
			if (!opt->pad_short) {
				snprintf(err, CNN14_ERRLEN, "%s: item '%s' has %d frames, the network needs at least %d (pad it: --pad-short)",
				         ds->name, ds->items[i].key, f, CNN14_MIN_FRAMES);
				free(order);
				return NULL;
			}
			f = CNN14_MIN_FRAMES;
		}
		order[i] = (by_len){f, i};
		if (f > *max_frames)
			*max_frames = f;
	}
	qsort(order, ds->n, sizeof *order, cmp_len);
	return order;
}

int evaluate_dataset(cnn14 *m, const dataset *ds, const eval_options *opt, confusion *conf, float *logp,
                     double *nll, char *err)
{
	int classes = cnn14_classes(m);
	if (ds->n_mels != CNN14_N_MELS && ds->n) {
		snprintf(err, CNN14_ERRLEN, "%s: %d mel bins, the network reads %d", ds->name, ds->n_mels, CNN14_N_MELS);
		return -1;
	}
	int max_frames;
	by_len *order = order_by_length(ds, opt, &max_frames, err);
	if (!order)
		return -1;
	size_t in_len = (size_t)opt->max_batch * (size_t)max_frames * CNN14_N_MELS;
	float *x = malloc(in_len * sizeof *x);
	float *out = malloc((size_t)opt->max_batch * (size_t)classes * sizeof *out);
	int rc = 0;
	double nll_sum = 0;
	if (!x || !out) {
		snprintf(err, CNN14_ERRLEN, "out of memory");
		rc = -1;
	}
	for (size_t i = 0; rc == 0 && i < ds->n;) {
		int frames = order[i].frames, batch = 0;
		while (i + (size_t)batch < ds->n && batch < opt->max_batch && order[i + (size_t)batch].frames == frames) {
			const ds_item *it = &ds->items[order[i + (size_t)batch].index];
			dataset_crop(ds, it, 0, frames, opt->pad_value, x + (size_t)batch * (size_t)frames * CNN14_N_MELS);
			batch++;
		}
		int st = cnn14_forward(m, x, batch, frames, 0, out);
		if (st != CNN14_OK) {
			snprintf(err, CNN14_ERRLEN, "%s", cnn14_error(m));
			rc = -1;
			break;
		}
		for (int b = 0; b < batch; b++) {
			size_t idx = order[i + (size_t)b].index;
			const float *lp = out + (size_t)b * (size_t)classes;
			int best = 0;
			for (int k = 1; k < classes; k++)
				if (lp[k] > lp[best])
					best = k;
			int label = ds->items[idx].label;
			if (label >= classes || confusion_add(conf, label, best)) {
				snprintf(err, CNN14_ERRLEN, "%s: item '%s': label %d is not one of the model's %d classes", ds->name,
				         ds->items[idx].key, label, classes);
				rc = -1;
				break;
			}
			nll_sum -= lp[label];
			if (logp)
				memcpy(logp + idx * (size_t)classes, lp, (size_t)classes * sizeof *lp);
		}
		i += (size_t)batch;
		if (opt->progress)
			opt->progress(opt->progress_ctx, i, ds->n);
	}
	if (nll)
		*nll = ds->n ? nll_sum / (double)ds->n : NAN;
	free(x);
	free(out);
	free(order);
	return rc;
}
