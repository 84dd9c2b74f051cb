/*
 * stream-gen - deterministic streams written by the C writer, for tests and
 * benchmarks.
 *
 *   stream-gen matrix [N_EXTRA]   every dtype x rank 0..4 (and shapes with a
 *                                 zero dimension), fields of every kind, then
 *                                 N_EXTRA small items; values follow the
 *                                 formula below, which t-stream-python.py
 *                                 recomputes in numpy
 *   stream-gen wave N SAMPLES     N float32 waveform items of SAMPLES samples
 *                                 (16 kHz, sample_rate param), as audio-read
 *                                 would write them
 *   stream-gen nan                three items, one with a NaN and one with an
 *                                 Inf in its float32 "wave"
 *
 * Formula: element i (C order) of item j is base(i, j) =
 * (i*7919 + j*104729) mod 20011 - 10005, as f32: base/64, f64: base/1024,
 * i32: base, i64: base*1000000007, u8: (i*7919 + j*104729) mod 256; the
 * first elements are replaced by the special values of each dtype (NaN
 * payloads, infinities, -0, denormals, extremes) listed below.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "stream.h"

static const char *prog = "stream-gen";

static int64_t base(uint64_t i, uint64_t j) { return (int64_t)((i * 7919 + j * 104729) % 20011) - 10005; }

static void fill(st_tensor *t, uint64_t j)
{
	size_t n = st_tensor_numel(t);
	static const uint32_t f32_special[] = {0x7fc00000u, 0xffc00001u, 0x7f800000u, 0xff800000u,
	                                       0x80000000u, 0x00000001u, 0x7f7fffffu, 0x00800000u};
	static const uint64_t f64_special[] = {0x7ff8000000000000ull, 0x7ff8000000000123ull, 0x7ff0000000000000ull,
	                                       0xfff0000000000000ull, 0x8000000000000000ull, 0x0000000000000001ull,
	                                       0x7fefffffffffffffull};
	static const int32_t i32_special[] = {INT32_MIN, INT32_MAX, 0, -1};
	static const int64_t i64_special[] = {INT64_MIN, INT64_MAX, 0, -1};
	for (size_t i = 0; i < n; i++) {
		switch (t->dtype) {
		case ST_F32:
			if (i < sizeof f32_special / sizeof *f32_special)
				memcpy((char *)t->data + 4 * i, &f32_special[i], 4);
			else
				((float *)t->data)[i] = (float)base(i, j) / 64.0f;
			break;
		case ST_F64:
			if (i < sizeof f64_special / sizeof *f64_special)
				memcpy((char *)t->data + 8 * i, &f64_special[i], 8);
			else
				((double *)t->data)[i] = (double)base(i, j) / 1024.0;
			break;
		case ST_I32:
			((int32_t *)t->data)[i] = i < 4 ? i32_special[i] : (int32_t)base(i, j);
			break;
		case ST_I64:
			((int64_t *)t->data)[i] = i < 4 ? i64_special[i] : base(i, j) * 1000000007;
			break;
		case ST_U8:
			((unsigned char *)t->data)[i] = (unsigned char)((i * 7919 + j * 104729) % 256);
			break;
		}
	}
}

static void put(st_writer *w, st_item *it)
{
	if (st_writer_put(w, it))
		cli_die(prog, EXIT_RUNTIME, "%s", st_writer_error(w));
}

static void need(bool ok)
{
	if (!ok)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
}

static void matrix(st_writer *w, long extra)
{
	static const int64_t dims[ST_MAX_DIMS] = {2, 3, 1, 4};
	st_item it;
	need(st_item_init(&it) == ST_OK);
	uint64_t j = 0;
	char key[64];
	for (int dt = ST_F32; dt <= ST_U8; dt++)
		for (int rank = 0; rank <= ST_MAX_DIMS; rank++)
			for (int zero = 0; zero <= (rank > 0); zero++, j++) {
				int64_t shape[ST_MAX_DIMS];
				memcpy(shape, dims, sizeof shape);
				if (zero)
					shape[rank - 1] = 0;
				st_item_clear(&it);
				snprintf(key, sizeof key, "%s-r%d%s", st_dtype_str((st_dtype)dt), rank, zero ? "-zero" : "");
				need(st_item_set_key(&it, key) == ST_OK);
				st_tensor *t = st_item_add_tensor(&it, "t", (st_dtype)dt, rank, shape, NULL);
				need(t != NULL);
				fill(t, j);
				int64_t ulen = (int64_t)(j % 5);
				st_tensor *u = st_item_add_tensor(&it, "u", ST_U8, 1, &ulen, NULL);
				need(u != NULL);
				fill(u, j);
				char s[64];
				snprintf(s, sizeof s, "name-%llu-\xc3\xa9\xe2\x82\xac", (unsigned long long)j);
				need(!st_item_set_field(&it, "i", sv_int((int64_t)j)) &&
				     !st_item_set_field(&it, "neg", sv_int(-(int64_t)j - 1000000000000)) &&
				     !st_item_set_field(&it, "f", sv_float((double)j / 8.0)) &&
				     !st_item_set_field(&it, "s", sv_str(s)) && !st_item_set_field(&it, "b", sv_bool(j % 2 == 0)) &&
				     !st_item_set_field(&it, "n", sv_nil()));
				put(w, &it);
			}
	for (long e = 0; e < extra; e++, j++) {
		st_item_clear(&it);
		snprintf(key, sizeof key, "extra-%05ld", e);
		need(st_item_set_key(&it, key) == ST_OK);
		int64_t len = (int64_t)(j % 17);
		st_tensor *t = st_item_add_tensor(&it, "wave", ST_F32, 1, &len, NULL);
		need(t != NULL);
		fill(t, j);
		need(!st_item_set_field(&it, "i", sv_int((int64_t)j)));
		put(w, &it);
	}
	st_item_free(&it);
}

static void wave(st_writer *w, long n, long samples, bool nan)
{
	st_item it;
	need(st_item_init(&it) == ST_OK);
	int64_t len = samples;
	char key[64];
	/* a cheap deterministic signal: a chirp plus a little LCG noise */
	uint32_t state = 12345;
	for (long k = 0; k < n; k++) {
		st_item_clear(&it);
		snprintf(key, sizeof key, "utt%06ld", k);
		need(st_item_set_key(&it, key) == ST_OK);
		st_tensor *t = st_item_add_tensor(&it, "wave", ST_F32, 1, &len, NULL);
		need(t != NULL);
		float *x = t->data;
		for (long i = 0; i < samples; i++) {
			state = state * 1664525u + 1013904223u;
			x[i] = 0.5f * sinf(0.01f * (float)i * (float)(1 + k % 7)) + (float)(state >> 8) / 16777216.0f * 0.01f;
		}
		if (nan && k == 1 && samples > 5)
			x[5] = NAN;
		if (nan && k == 2 && samples > 3)
			x[3] = -INFINITY;
		need(!st_item_set_field(&it, "label", sv_int(k % 4)));
		put(w, &it);
	}
	st_item_free(&it);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		cli_usage_error(prog, "usage: stream-gen matrix [N_EXTRA] | wave N SAMPLES | nan");
	cli_stdout_init();
	sv *h = st_header_new(prog, argc, argv);
	need(h != NULL);
	sv *p = st_header_params(h);
	static const char *const classes[] = {"neutral", "happy", "sad", "angry"};
	need(!sv_set(p, "sample_rate", sv_int(16000)) && !sv_set(p, "tensor", sv_str("wave")) &&
	     !sv_set(p, "classes", sv_strlist(classes, 4)));
	sv *stats = sv_map();
	need(stats && !sv_set(h, "stats", stats) && !sv_set(stats, "items", sv_int(0)));
	char err[ST_ERRLEN];
	long a = 0, b = 0;
	if (strcmp(argv[1], "matrix") == 0) {
		if (argc > 3 || (argc == 3 && !cli_parse_long(argv[2], 0, 1000000, &a)))
			cli_usage_error(prog, "matrix [N_EXTRA]");
		st_writer *w = st_writer_open("-", h, err);
		if (!w)
			cli_die(prog, EXIT_RUNTIME, "%s", err);
		matrix(w, a);
		if (st_writer_close(w, err))
			cli_die(prog, EXIT_RUNTIME, "%s", err);
	} else if (strcmp(argv[1], "wave") == 0 || strcmp(argv[1], "nan") == 0) {
		bool nan = argv[1][0] == 'n';
		if (nan)
			a = 3, b = 16;
		else if (argc != 4 || !cli_parse_long(argv[2], 0, 100000000, &a) || !cli_parse_long(argv[3], 0, 100000000, &b))
			cli_usage_error(prog, "wave N SAMPLES");
		sv_set(stats, "items", sv_int(a));
		st_writer *w = st_writer_open("-", h, err);
		if (!w)
			cli_die(prog, EXIT_RUNTIME, "%s", err);
		wave(w, a, b, nan);
		if (st_writer_close(w, err))
			cli_die(prog, EXIT_RUNTIME, "%s", err);
	} else {
		cli_usage_error(prog, "unknown mode '%s'", argv[1]);
	}
	sv_free(h);
	cli_close_stdout(prog);
	return 0;
}
