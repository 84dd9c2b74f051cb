#include "dataset.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feature_params.h"
#include "stream.h"

/* The header's class names; the names stay owned by ds->params. */
static int read_classes(dataset *ds, const char *name, char *err)
{
	const sv *classes = sv_get_strlist(ds->params, "classes");
	if (!classes || classes->u.arr.n == 0) {
		snprintf(err, ST_ERRLEN, "%s: header has no class names (params.classes): is it labelled (binlabels)?", name);
		return -1;
	}
	if (classes->u.arr.n < 2) {
		/* labelled, but for a task with one class: say so, not "unlabelled" */
		snprintf(err, ST_ERRLEN, "%s: 1 class in params.classes: [\"%.100s\"]: a classifier needs at least 2 "
		         "(a task or column with one value?)", name, classes->u.arr.items[0]->u.str.ptr);
		return -1;
	}
	ds->classes = (int)classes->u.arr.n;
	ds->class_names = calloc((size_t)ds->classes, sizeof *ds->class_names);
	ds->class_counts = calloc((size_t)ds->classes, sizeof *ds->class_counts);
	if (!ds->class_names || !ds->class_counts) {
		snprintf(err, ST_ERRLEN, "%s: out of memory", name);
		return -1;
	}
	for (int k = 0; k < ds->classes; k++)
		ds->class_names[k] = classes->u.arr.items[k]->u.str.ptr;
	return 0;
}

/* Checks one item and moves its log-Mel payload into the dataset. */
static int add_item(dataset *ds, const char *name, st_item *it, char *err)
{
	st_tensor *t = st_item_tensor(it, "logmel");
	int64_t label;
	if (!t || t->dtype != ST_F32 || t->ndim != 2 || t->shape[0] < 1) {
		snprintf(err, ST_ERRLEN, "%s: item '%s': no float32 'logmel' tensor of shape (frames, mels) (run melspec first)",
		         name, it->key);
		return -1;
	}
	if (!sv_get_int(it->fields, "label", &label)) {
		snprintf(err, ST_ERRLEN, "%s: item '%s': no integer 'label' field (run binlabels first)", name, it->key);
		return -1;
	}
	if (label < 0 || label >= ds->classes) {
		snprintf(err, ST_ERRLEN, "%s: item '%s': label %lld is not a class (%d classes)", name, it->key,
		         (long long)label, ds->classes);
		return -1;
	}
	if (ds->n == 0)
		ds->n_mels = (int)t->shape[1];
	if (t->shape[1] != ds->n_mels || t->shape[0] > INT32_MAX) {
		snprintf(err, ST_ERRLEN, "%s: item '%s': %lld mel bins, the first item has %d", name, it->key,
		         (long long)t->shape[1], ds->n_mels);
		return -1;
	}
	if (ds->n == ds->cap) {
		size_t ncap = ds->cap ? ds->cap * 2 : 256;
		ds_item *ni = realloc(ds->items, ncap * sizeof *ni);
		if (!ni)
			goto oom;
		ds->items = ni;
		ds->cap = ncap;
	}
	ds_item *d = &ds->items[ds->n];
	d->key = strdup(it->key);
	if (!d->key)
		goto oom;
	d->label = (int)label;
	d->frames = (int)t->shape[0];
	d->logmel = t->data;
	t->data = NULL; /* the dataset keeps the payload */
	ds->bytes += t->nbytes;
	ds->class_counts[label]++;
	ds->n++;
	return 0;
oom:
	snprintf(err, ST_ERRLEN, "%s: out of memory", name);
	return -1;
}

int dataset_load(dataset *ds, const char *path, size_t max_record, char *err)
{
	memset(ds, 0, sizeof *ds);
	st_reader *r = st_reader_open(path, max_record, ST_READ_FINITE, err);
	if (!r)
		return -1;
	const char *name = st_reader_name(r);
	ds->name = strdup(name);
	ds->params = sv_copy(st_reader_params(r));
	st_item it;
	bool item_ok = false;
	if (!ds->name || !ds->params || st_item_init(&it)) {
		snprintf(err, ST_ERRLEN, "%s: out of memory", name);
		goto fail;
	}
	item_ok = true;
	if (read_classes(ds, name, err))
		goto fail;
	int rc;
	while ((rc = st_reader_next(r, &it)) == ST_OK)
		if (add_item(ds, name, &it, err))
			goto fail;
	if (rc != ST_END) {
		snprintf(err, ST_ERRLEN, "%s", st_reader_error(r));
		goto fail;
	}
	st_item_free(&it);
	st_reader_close(r);
	return 0;
fail:
	if (item_ok)
		st_item_free(&it);
	st_reader_close(r);
	dataset_free(ds);
	return -1;
}

void dataset_free(dataset *ds)
{
	for (size_t i = 0; i < ds->n; i++) {
		free(ds->items[i].key);
		free(ds->items[i].logmel);
	}
	free(ds->items);
	free(ds->class_names);
	free(ds->class_counts);
	sv_free(ds->params);
	free(ds->name);
	memset(ds, 0, sizeof *ds);
}

int dataset_compatible(const dataset *a, const dataset *b, char *err)
{
	if (a->classes != b->classes || !sv_equal(sv_get(a->params, "classes"), sv_get(b->params, "classes"))) {
		snprintf(err, ST_ERRLEN, "%s and %s have different classes", a->name, b->name);
		return -1;
	}
	if (a->n && b->n && a->n_mels != b->n_mels) {
		snprintf(err, ST_ERRLEN, "%s has %d mel bins, %s has %d", a->name, a->n_mels, b->name, b->n_mels);
		return -1;
	}
	const sv *ma = sv_get(a->params, "melspec"), *mb = sv_get(b->params, "melspec");
	if ((ma == NULL) != (mb == NULL) || (ma && !sv_equal(ma, mb))) {
		/* name each setting that differs, as cnn-eval does */
		int n = snprintf(err, ST_ERRLEN, "%s and %s were made with different melspec settings: ", a->name, b->name);
		size_t at = n < 0 ? 0 : (size_t)n < ST_ERRLEN ? (size_t)n : ST_ERRLEN - 1;
		if (!ma || !mb)
			snprintf(err + at, ST_ERRLEN - at, "only %s has them", ma ? a->name : b->name);
		else
			feature_params_match(ma, mb, a->name, b->name, err + at, ST_ERRLEN - at);
		return -1;
	}
	const sv *ba = sv_get(a->params, "bandpass"), *bb = sv_get(b->params, "bandpass");
	if ((ba == NULL) != (bb == NULL) || (ba && !sv_equal(ba, bb))) {
		snprintf(err, ST_ERRLEN, "%s and %s were made with different band-pass settings (%s, %s)", a->name, b->name,
		         ba ? "band-passed" : "none", bb ? "band-passed" : "none");
		return -1;
	}
	const char *ta = sv_get_str(a->params, "task"), *tb = sv_get_str(b->params, "task");
	if ((ta == NULL) != (tb == NULL) || (ta && strcmp(ta, tb) != 0)) {
		snprintf(err, ST_ERRLEN, "%s and %s are labelled for different tasks (%s, %s)", a->name, b->name,
		         ta ? ta : "none", tb ? tb : "none");
		return -1;
	}
	return 0;
}

static inline uint64_t fp_mix(uint64_t h, uint64_t w)
{
	h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 29);
}

uint64_t dataset_fingerprint(const dataset *ds)
{
	uint64_t h = fp_mix(0x243f6a8885a308d3ULL, ds->n);
	for (size_t i = 0; i < ds->n; i++) {
		const ds_item *it = &ds->items[i];
		for (const unsigned char *k = (const unsigned char *)it->key; *k; k++)
			h = fp_mix(h, *k);
		h = fp_mix(h, ((uint64_t)(uint32_t)it->label << 32) | (uint32_t)it->frames);
		size_t words = (size_t)it->frames * (size_t)ds->n_mels;
		const float *x = it->logmel;
		size_t j = 0;
		for (; j + 2 <= words; j += 2) {
			uint64_t w;
			memcpy(&w, x + j, sizeof w);
			h = fp_mix(h, w);
		}
		if (j < words) {
			uint32_t w;
			memcpy(&w, x + j, sizeof w);
			h = fp_mix(h, w);
		}
	}
	return h;
}

int dataset_min_frames(const dataset *ds)
{
	int m = 0;
	for (size_t i = 0; i < ds->n; i++)
		if (i == 0 || ds->items[i].frames < m)
			m = ds->items[i].frames;
	return m;
}

void dataset_crop(const dataset *ds, const ds_item *item, int offset, int len, float pad, float *dst)
{
	size_t row = (size_t)ds->n_mels;
	int have = item->frames - offset;
	if (have > len)
		have = len;
	if (have < 0)
		have = 0;
	memcpy(dst, item->logmel + (size_t)offset * row, (size_t)have * row * sizeof *dst);
	for (size_t i = (size_t)have * row; i < (size_t)len * row; i++)
		dst[i] = pad;
}
