/* stream_header.c - headers: new, derived, merged; typed params (stream.h). */
#include "stream_impl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "version.h"

sv *st_header_new(const char *producer, int argc, char **argv)
{
	sv *h = sv_map(), *args = sv_array();
	if (!h || !args)
		goto fail;
	for (int i = 0; i < argc; i++)
		if (sv_push(args, sv_str(argv[i])))
			goto fail;
	if (sv_set(h, "type", sv_str("header")) || sv_set(h, "format", sv_str(ST_FORMAT_NAME)) ||
	    sv_set(h, "version", sv_int(ST_FORMAT_VERSION)) || sv_set(h, "producer", sv_str(producer)) ||
	    sv_set(h, "producer_version", sv_str(SERTOOLS_VERSION)))
		goto fail;
	int rc = sv_set(h, "argv", args);
	args = NULL;
	if (rc || sv_set(h, "params", sv_map()) || sv_set(h, "history", sv_array()))
		goto fail;
	return h;
fail:
	sv_free(h);
	sv_free(args);
	return NULL;
}

sv *st_header_derive(const sv *in, const char *producer, int argc, char **argv)
{
	sv *h = st_header_new(producer, argc, argv);
	if (!h)
		return NULL;
	const sv *p = sv_get(in, "params"), *stats = sv_get(in, "stats"), *hist = sv_get(in, "history");
	if (p && p->kind == SV_MAP && sv_set(h, "params", sv_copy(p)))
		goto fail;
	if (stats && stats->kind == SV_MAP && sv_set(h, "stats", sv_copy(stats)))
		goto fail;
	sv *nh = sv_get(h, "history");
	if (hist && hist->kind == SV_ARRAY)
		for (size_t i = 0; i < hist->u.arr.n; i++)
			if (sv_push(nh, sv_copy(hist->u.arr.items[i])))
				goto fail;
	sv *entry = sv_map();
	static const char *const keys[] = {"producer", "producer_version", "argv"};
	for (size_t i = 0; entry && i < 3; i++) {
		const sv *v = sv_get(in, keys[i]);
		if (v && sv_set(entry, keys[i], sv_copy(v))) {
			sv_free(entry);
			goto fail;
		}
	}
	if (sv_push(nh, entry))
		goto fail;
	return h;
fail:
	sv_free(h);
	return NULL;
}

sv *st_header_params(sv *header) { return sv_get(header, "params"); }

/* b's counts added to a's: an int, or an array of ints of a's length.
 * False (a unchanged) when they are not both counts or a sum overflows. */
bool st_counts_add_(sv *a, const sv *b)
{
	int64_t sum;
	if (a->kind == SV_INT && b->kind == SV_INT) {
		if (__builtin_add_overflow(a->u.i, b->u.i, &sum))
			return false;
		a->u.i = sum;
		return true;
	}
	if (a->kind != SV_ARRAY || b->kind != SV_ARRAY || a->u.arr.n != b->u.arr.n)
		return false;
	for (size_t j = 0; j < a->u.arr.n; j++)
		if (a->u.arr.items[j]->kind != SV_INT || b->u.arr.items[j]->kind != SV_INT ||
		    __builtin_add_overflow(a->u.arr.items[j]->u.i, b->u.arr.items[j]->u.i, &sum))
			return false;
	for (size_t j = 0; j < a->u.arr.n; j++)
		a->u.arr.items[j]->u.i += b->u.arr.items[j]->u.i;
	return true;
}

/* Every param of one map must be in the other, equal. */
static int params_agree(const sv *p0, const sv *p1, const char *name, char *err)
{
	for (size_t i = 0; p0 && i < p0->u.map.n; i++) {
		const sv *o = p1 ? sv_get(p1, p0->u.map.keys[i]) : NULL;
		if (!o || !sv_equal(o, p0->u.map.vals[i])) {
			snprintf(err, ST_ERRLEN,
			         "%.200s: header param '%.100s' differs from the first stream's; streams made with different "
			         "settings cannot be joined",
			         name, p0->u.map.keys[i]);
			return ST_ERR_FORMAT;
		}
	}
	for (size_t i = 0; p1 && i < p1->u.map.n; i++)
		if (!p0 || !sv_get(p0, p1->u.map.keys[i])) {
			snprintf(err, ST_ERRLEN, "%.200s: header param '%.100s' is not in the first stream's header", name,
			         p1->u.map.keys[i]);
			return ST_ERR_FORMAT;
		}
	return ST_OK;
}

int st_header_merge(sv *out, const sv *in, const char *name, char *err)
{
	const sv *p0 = sv_get(out, "params"), *p1 = sv_get(in, "params");
	int rc = params_agree(p0 && p0->kind == SV_MAP ? p0 : NULL, p1 && p1->kind == SV_MAP ? p1 : NULL, name, err);
	if (rc)
		return rc;
	sv *s0 = sv_get(out, "stats");
	const sv *s1 = sv_get(in, "stats");
	if (!s0 || s0->kind != SV_MAP)
		return ST_OK;
	for (size_t i = 0; i < s0->u.map.n;) {
		const char *k = s0->u.map.keys[i];
		sv *a = s0->u.map.vals[i];
		const sv *b = s1 && s1->kind == SV_MAP ? sv_get(s1, k) : NULL;
		/* a count that overflows is no count: dropped (an array of them kept when equal) */
		if (b && (st_counts_add_(a, b) || ((a->kind != SV_INT || b->kind != SV_INT) && sv_equal(a, b))))
			i++;
		else
			sv_unset(s0, k);
	}
	return ST_OK;
}

int st_wave_rate(const st_reader *r, long *rate, char *err)
{
	const sv *v = sv_get(st_reader_params(r), "sample_rate");
	if (v && v->kind == SV_INT && v->u.i >= 1 && v->u.i <= INT_MAX) {
		*rate = (long)v->u.i;
		return ST_OK;
	}
	snprintf(err, ST_ERRLEN, "%.200s: header: no valid sample_rate param: %s", st_reader_name(r),
	         v ? "sample_rate is not a positive integer" : "there is no sample_rate (not a waveform stream?)");
	return ST_ERR_FORMAT;
}
