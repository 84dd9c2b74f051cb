/*
 * ckpt_check.h - the one set of rules a Cnn14 checkpoint (formats/checkpoint.md)
 * must pass before any program uses it: cnn14_load/cnn14_open (so cnn-eval
 * and cnn-train), wdist, and panns-convert's check of what it wrote (through
 * `wdist --check`).
 *
 * Rules, each refusal naming the file and the tensor:
 *   - the header's params.model: arch "Cnn14", width_div dividing 64, n_mels
 *     64, 1 <= classes <= CKPT_MAX_CLASSES (formats/limits.md: cnn-eval
 *     holds a classes x classes confusion matrix, so the header alone must
 *     not be able to ask for gigabytes);
 *   - every item names a tensor of that model (the table below, derived from
 *     the header alone), with its dtype and shape; no name twice;
 *   - every tensor of the model is present (CKPT_SUBSET relaxes this to "a
 *     subset": wdist compares what two checkpoints have in common);
 *   - float values are finite; BatchNorm running variances are >= 0;
 *     num_batches_tracked is >= 0.
 *
 * Usage:
 *   ckpt_model cm;
 *   if (ckpt_read_header(st_reader_header(r), &cm, why, sizeof why)) refuse(why);
 *   ckpt_seen seen = {0};
 *   while (st_reader_next(r, &it) == ST_OK)
 *           if (ckpt_check_item(&cm, &seen, it.key, st_item_tensor(&it, "value"), why, sizeof why)) refuse(why);
 *   if (ckpt_check_complete(&cm, &seen, 0, why, sizeof why)) refuse(why);
 * or all of it at once: ckpt_validate(path, max_record, flags, err, errlen).
 * No global state; messages go to the caller's buffer.
 */
#ifndef SERTOOLS_CKPT_CHECK_H
#define SERTOOLS_CKPT_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream.h"
#include "value.h"

#define CKPT_MAX_CLASSES 4096 /* confusion matrix 4096^2 x 8 B = 128 MiB */
#define CKPT_MAX_TENSORS 96
#define CKPT_NAME_MAX 48

enum {
	CKPT_SUBSET = 1 << 0,      /* tensors may be missing (each present one still checked) */
	CKPT_SKIP_OUTPUT = 1 << 1, /* fc_transfer.* / fc_audioset.* are not checked (loading a body) */
};

typedef struct {
	char name[CKPT_NAME_MAX];
	st_dtype dtype;
	int ndim;
	int64_t shape[4];
} ckpt_spec;

typedef struct {
	int classes, width_div;
	const sv *class_names; /* in the header, or NULL when absent or of the wrong length */
	int ntensors, body_end; /* tensors [0, body_end) form the body */
	ckpt_spec t[CKPT_MAX_TENSORS];
} ckpt_model;

typedef struct {
	bool seen[CKPT_MAX_TENSORS];
} ckpt_seen;

/* The architecture in a checkpoint header and its tensor table: 0, or -1
 * with the reason in why. */
int ckpt_read_header(const sv *header, ckpt_model *m, char *why, size_t len);
/* The table of a model, in PANNs' state-dict order (also cnn14.c's). */
void ckpt_model_table(ckpt_model *m, int classes, int width_div);
/* Index of a tensor name in the table, or -1. */
int ckpt_find(const ckpt_model *m, const char *name);
/* One item (v may be NULL: no 'value' tensor): 0, or -1 with
 * "NAME: why" in why.  Marks it in seen. */
int ckpt_check_item(const ckpt_model *m, ckpt_seen *seen, const char *name, const st_tensor *v, unsigned flags,
                    char *why, size_t len);
/* The values of a tensor whose dtype and shape are right (finite, variances >= 0). */
int ckpt_check_values(const char *name, const st_tensor *v, char *why, size_t len);
/* After the last item: every tensor present (unless CKPT_SUBSET). */
int ckpt_check_complete(const ckpt_model *m, const ckpt_seen *seen, unsigned flags, char *why, size_t len);
/* The bytes of tensor data the model of a header needs (without output
 * layers under CKPT_SKIP_OUTPUT). */
uint64_t ckpt_payload_bytes(const ckpt_model *m, unsigned flags);
/* Before the model is allocated: a regular file must be at least as large
 * as the tensor data its header declares (a 169-byte header declaring a
 * full-width model made cnn14_open allocate 690 MB).  Other files (a pipe)
 * pass: their tensors are checked as they arrive.  0, or -1 with the
 * reason in why. */
int ckpt_check_size(const ckpt_model *m, const char *path, unsigned flags, char *why, size_t len);
/* The whole file: 0, or -1 with "PATH: why" in err (ST_ERRLEN bytes). */
int ckpt_validate(const char *path, size_t max_record, unsigned flags, char *err, size_t errlen);

#endif
