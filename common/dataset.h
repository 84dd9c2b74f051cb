/*
 * dataset.h - a labelled log-Mel stream held in memory, for training and
 * evaluation.
 *
 * The stream is what binlabels writes after melspec: items with a float32
 * tensor "logmel" (frames, n_mels) and an int field "label" in
 * [0, classes); the header carries params.classes (class names) and
 * params.melspec (the feature settings).  Loading validates every item
 * (finite values, label range, n_mels) and refuses a stream that is
 * truncated.  Memory is one float per log-Mel value plus small per-item
 * overhead: MSP-Podcast's 38k training items of a few seconds take about
 * 6 GB.
 */
#ifndef SERTOOLS_DATASET_H
#define SERTOOLS_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "value.h"

typedef struct {
	char *key;
	int label;
	int frames;
	float *logmel; /* frames x n_mels, row-major */
} ds_item;

typedef struct {
	char *name;          /* the path, or "stdin" */
	ds_item *items;
	size_t n, cap;
	int n_mels;
	int classes;
	char **class_names;  /* classes entries */
	uint64_t *class_counts;
	sv *params;          /* copy of the header params (melspec, task, classes, ...) */
	size_t bytes;        /* log-Mel payload held */
} dataset;

/* Loads a whole stream.  path "-" is stdin.  0, or -1 with a message in err
 * (ST_ERRLEN bytes) such as "train.msgpack: item 12 ('a01'): label 3 is not
 * a class (3 classes)". */
int dataset_load(dataset *ds, const char *path, size_t max_record, char *err);
void dataset_free(dataset *ds);

/* Checks that two datasets can be used together: the same class names,
 * task, n_mels, and feature settings (params.melspec and params.bandpass
 * equal, or both absent).  0, or -1 with a message naming what differs
 * (each differing melspec setting with both values, feature_params.h). */
int dataset_compatible(const dataset *a, const dataset *b, char *err);

/* A 64-bit fingerprint of the content: every key, label and log-Mel value
 * in order.  Equal streams give equal fingerprints; a changed one almost
 * surely does not (for noticing that data changed under a run, not for
 * security).  Reads every byte once: about a second per 5 GB. */
uint64_t dataset_fingerprint(const dataset *ds);

/* The smallest number of frames over the items (0 when empty). */
int dataset_min_frames(const dataset *ds);

/* Copies a crop of frames [offset, offset + len) of item into dst (len x
 * n_mels); rows past the item's end are filled with pad. */
void dataset_crop(const dataset *ds, const ds_item *item, int offset, int len, float pad, float *dst);

#endif
