/*
 * evaluate.h - scoring a model on a dataset, as cnn-train and cnn-eval do.
 *
 * Items are scored whole, in evaluation mode (BatchNorm running
 * statistics, no dropout): items of equal length are batched together (up
 * to max_batch), every other item alone, so no padding ever enters a score
 * and a batch's composition changes a result only by float rounding
 * (OpenBLAS rounds a product's columns differently for different column
 * counts: ~6e-6 relative measured); max_batch 1 makes every item's result
 * independent of the others.  Items shorter
 * than CNN14_MIN_FRAMES are an error unless pad_short, which pads them at
 * the end with pad_value (the log-Mel of digital silence by default) to
 * the minimum length.
 */
#ifndef SERTOOLS_EVALUATE_H
#define SERTOOLS_EVALUATE_H

#include <stdbool.h>

#include "cnn14.h"
#include "dataset.h"
#include "metrics.h"

typedef struct {
	int max_batch;    /* >= 1 */
	bool pad_short;
	float pad_value;
	/* Optional: called after each batch with the items scored so far. */
	void (*progress)(void *ctx, size_t done, size_t total);
	void *progress_ctx;
} eval_options;

/* Fills conf (initialised by the caller with the model's class count) and,
 * when logp is not NULL, logp[i * classes + k] for item i of ds.  Also
 * the mean unweighted NLL into *nll when not NULL.  0, or -1 with a message
 * in err (CNN14_ERRLEN bytes). */
int evaluate_dataset(cnn14 *m, const dataset *ds, const eval_options *opt, confusion *conf, float *logp,
                     double *nll, char *err);

/* The log-Mel value of digital silence for a feature stream's params:
 * (20 / power) * log10(amin) of params.melspec, as melspec computes it
 * (-100 dB for the default power 2 and amin 1e-10). */
float evaluate_silence_value(const sv *params);

#endif
