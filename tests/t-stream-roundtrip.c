/*
 * C writer -> C reader, exactly: every dtype, ranks 0..4 with zero-size
 * dimensions, payloads big enough for the reader's direct reads and buffer
 * reuse (varying sizes), fields of every scalar kind (NaN, -0, int64
 * extremes, UTF-8, empty strings), hundreds of items, a 1 MiB header; read
 * back from the file and through a pipe.  Also: atomic file output (no file
 * before close, none after abort), items the writer refuses without losing
 * the stream, ST_READ_FINITE, st_header_derive's history, the item API.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "stream.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Values equal bit for bit (sv_equal says 0.0 == -0.0 and 3 == 3.0). */
static bool same(const sv *a, const sv *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case SV_FLOAT: return memcmp(&a->u.f, &b->u.f, sizeof(double)) == 0;
	case SV_ARRAY:
		if (a->u.arr.n != b->u.arr.n)
			return false;
		for (size_t i = 0; i < a->u.arr.n; i++)
			if (!same(a->u.arr.items[i], b->u.arr.items[i]))
				return false;
		return true;
	case SV_MAP:
		if (a->u.map.n != b->u.map.n)
			return false;
		for (size_t i = 0; i < a->u.map.n; i++)
			if (strcmp(a->u.map.keys[i], b->u.map.keys[i]) || !same(a->u.map.vals[i], b->u.map.vals[i]))
				return false;
		return true;
	default: return sv_equal(a, b);
	}
}

static bool same_item(const st_item *a, const st_item *b, char *why, size_t len)
{
	if (strcmp(a->key, b->key))
		return snprintf(why, len, "key %s != %s", a->key, b->key), false;
	if (a->ntensors != b->ntensors)
		return snprintf(why, len, "%zu tensors != %zu", a->ntensors, b->ntensors), false;
	for (size_t i = 0; i < a->ntensors; i++) {
		const st_tensor *x = &a->tensors[i], *y = &b->tensors[i];
		if (strcmp(x->name, y->name) || x->dtype != y->dtype || x->ndim != y->ndim || x->nbytes != y->nbytes ||
		    memcmp(x->shape, y->shape, (size_t)x->ndim * sizeof *x->shape))
			return snprintf(why, len, "tensor %s: header differs", x->name), false;
		if (memcmp(x->data, y->data, x->nbytes))
			return snprintf(why, len, "tensor %s: data differs", x->name), false;
		if ((uintptr_t)y->data % 64)
			return snprintf(why, len, "tensor %s: payload not 64-byte aligned", x->name), false;
	}
	if (!same(a->fields, b->fields))
		return snprintf(why, len, "fields differ"), false;
	return true;
}

static void random_tensor(st_item *it, const char *name, bool big)
{
	st_dtype dt = (st_dtype)(next() % 5);
	int ndim = (int)(next() % 5);
	int64_t shape[ST_MAX_DIMS];
	for (int d = 0; d < ndim; d++)
		shape[d] = (int64_t)(next() % 5); /* zeros included */
	if (big) {
		dt = ST_F32;
		ndim = 1;
		shape[0] = 16384 + (int64_t)(next() % 40000); /* 64..224 KB: the reader's direct path */
	}
	st_tensor *t = st_item_add_tensor(it, name, dt, ndim, shape, NULL);
	NEED(t);
	unsigned char *p = t->data;
	for (size_t i = 0; i < t->nbytes; i++)
		p[i] = (unsigned char)next(); /* any bits: NaN payloads included */
}

static sv *random_field(uint64_t j)
{
	static const double specials[] = {0.0, -0.0, NAN, INFINITY, -INFINITY, 1e-310, 0.1, -1.5e300};
	static const int64_t ints[] = {0, -1, 127, 128, -32, -33, 255, 256, 65535, 65536, INT32_MIN, INT32_MAX,
	                               (int64_t)UINT32_MAX + 1, INT64_MIN, INT64_MAX};
	switch (j % 6) {
	case 0: return sv_nil();
	case 1: return sv_bool(j % 4 == 1);
	case 2: return sv_int(ints[next() % (sizeof ints / sizeof *ints)]);
	case 3: return sv_float(specials[next() % (sizeof specials / sizeof *specials)]);
	case 4: return sv_str(j % 12 == 4 ? "" : "Ünïcödé \xe2\x82\xac \xf0\x9f\x98\x80");
	default: {
		/* strings of every length class: fixstr, str8, str16 */
		size_t n = (size_t[]){31, 32, 255, 256, 70000}[next() % 5];
		char *s = malloc(n + 1);
		NEED(s);
		for (size_t i = 0; i < n; i++)
			s[i] = (char)('a' + next() % 26);
		s[n] = 0;
		sv *v = sv_str(s);
		free(s);
		return v;
	}
	}
}

#define NITEMS 300

static st_item *make_items(void)
{
	st_item *items = calloc(NITEMS, sizeof *items);
	NEED(items);
	for (uint64_t j = 0; j < NITEMS; j++) {
		st_item *it = &items[j];
		NEED(st_item_init(it) == ST_OK);
		char key[64];
		snprintf(key, sizeof key, "item-%03llu-\xc3\xbc", (unsigned long long)j);
		NEED(st_item_set_key(it, key) == ST_OK);
		size_t nt = j % 4;
		for (size_t t = 0; t < nt; t++) {
			char name[32];
			snprintf(name, sizeof name, "t%zu", t);
			random_tensor(it, name, false);
		}
		if (j % 3 == 0)
			random_tensor(it, "wave", true);
		for (uint64_t f = 0; f < j % 8; f++) {
			char name[32];
			snprintf(name, sizeof name, "f%llu", (unsigned long long)f);
			NEED(st_item_set_field(it, name, random_field(j + f)) == ST_OK);
		}
	}
	return items;
}

static sv *make_header(void)
{
	char *argv[] = {"t-stream-roundtrip", "--flag", "\xc3\xa9"};
	sv *h = st_header_new("t-stream-roundtrip", 3, argv);
	NEED(h);
	sv *p = st_header_params(h), *classes = sv_array(), *nested = sv_map();
	NEED(p && classes && nested);
	/* ~1 MiB of header: the writer's buffer fills and flushes inside a record */
	for (int i = 0; i < 100000; i++) {
		char c[32];
		snprintf(c, sizeof c, "class-%d", i);
		NEED(sv_push(classes, sv_str(c)) == 0);
	}
	NEED(sv_set(p, "classes", classes) == 0 && sv_set(p, "sample_rate", sv_int(16000)) == 0 &&
	     sv_set(nested, "low", sv_float(100.5)) == 0 && sv_set(nested, "zero_phase", sv_bool(true)) == 0 &&
	     sv_set(p, "bandpass", nested) == 0);
	return h;
}

static int count_dir_entries(void)
{
	DIR *d = opendir(".");
	NEED(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."));
	closedir(d);
	return n;
}

static void write_items(st_writer *w, st_item *items, size_t n)
{
	for (size_t j = 0; j < n; j++)
		CHECK(st_writer_put(w, &items[j]) == ST_OK, "put %zu: %s", j, st_writer_error(w));
}

static void read_back(const char *path, const sv *header, st_item *items, size_t n)
{
	char err[ST_ERRLEN], why[256];
	st_reader *r = st_reader_open(path, 0, 0, err);
	CHECK(r, "open %s: %s", path, err);
	if (!r)
		return;
	CHECK(same(st_reader_header(r), header), "%s: header differs", path);
	st_item it;
	NEED(st_item_init(&it) == ST_OK);
	int rc;
	size_t j = 0;
	while ((rc = st_reader_next(r, &it)) == ST_OK) {
		CHECK(j < n, "%s: more items than written", path);
		if (j < n)
			CHECK(same_item(&items[j], &it, why, sizeof why), "%s: item %zu: %s", path, j, why);
		j++;
	}
	CHECK(rc == ST_END, "%s: %s", path, st_reader_error(r));
	CHECK(j == n && st_reader_items(r) == n, "%s: %zu items read, %zu written", path, j, n);
	CHECK(st_reader_next(r, &it) == ST_END, "%s: ST_END is not sticky", path);
	st_item_free(&it);
	st_reader_close(r);
}

static void file_and_pipe(st_item *items, sv *header)
{
	char err[ST_ERRLEN];
	int before = count_dir_entries();
	st_writer *w = st_writer_open("rt.msgpack", header, err);
	NEED(w);
	write_items(w, items, NITEMS);
	CHECK(access("rt.msgpack", F_OK) != 0, "the output exists before st_writer_close");
	CHECK(st_writer_items(w) == NITEMS, "writer counts %llu", (unsigned long long)st_writer_items(w));
	CHECK(st_writer_close(w, err) == ST_OK, "close: %s", err);
	CHECK(count_dir_entries() == before + 1, "temporary files left behind");
	read_back("rt.msgpack", header, items, NITEMS);

	/* the same through a pipe, written by a child to its stdout */
	int fds[2];
	NEED(pipe(fds) == 0);
	pid_t pid = fork();
	NEED(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], 1);
		close(fds[1]);
		st_writer *cw = st_writer_open("-", header, err);
		if (!cw)
			_exit(3);
		for (size_t j = 0; j < NITEMS; j++)
			if (st_writer_put(cw, &items[j]))
				_exit(4);
		_exit(st_writer_close(cw, err) ? 5 : 0);
	}
	close(fds[1]);
	char path[32];
	snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
	read_back(path, header, items, NITEMS);
	close(fds[0]);
	int status;
	NEED(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "pipe writer child: status %d", status);

	/* abort leaves nothing */
	w = st_writer_open("aborted.msgpack", header, err);
	NEED(w);
	write_items(w, items, 10);
	st_writer_abort(w);
	CHECK(access("aborted.msgpack", F_OK) != 0 && count_dir_entries() == before + 1,
	      "st_writer_abort left a file behind");

	/* an empty stream is a stream */
	w = st_writer_open("empty.msgpack", header, err);
	NEED(w);
	CHECK(st_writer_close(w, err) == ST_OK, "empty: %s", err);
	read_back("empty.msgpack", header, items, 0);
}

static void refusals(sv *header)
{
	char err[ST_ERRLEN];
	st_writer *w = st_writer_open("refused.msgpack", header, err);
	NEED(w);
	st_item good, bad;
	NEED(st_item_init(&good) == ST_OK && st_item_init(&bad) == ST_OK);
	NEED(st_item_set_key(&good, "good") == ST_OK);
	int64_t n = 3;
	NEED(st_item_add_tensor(&good, "x", ST_F64, 1, &n, NULL));
	CHECK(st_writer_put(w, &good) == ST_OK, "good: %s", st_writer_error(w));

	CHECK(st_writer_put(w, &bad) == ST_ERR_USAGE, "an item without key was accepted");
	NEED(st_item_set_key(&bad, "") == ST_OK);
	CHECK(st_writer_put(w, &bad) == ST_ERR_USAGE, "an empty key was accepted");
	NEED(st_item_set_key(&bad, "latin1-\xe9") == ST_OK);
	CHECK(st_writer_put(w, &bad) == ST_ERR_USAGE && strstr(st_writer_error(w), "UTF-8"),
	      "a non-UTF-8 key was accepted: %s", st_writer_error(w));
	NEED(st_item_set_key(&bad, "bad") == ST_OK);
	sv *arr = sv_array();
	NEED(arr && sv_push(arr, sv_int(1)) == 0 && st_item_set_field(&bad, "list", arr) == ST_OK);
	CHECK(st_writer_put(w, &bad) == ST_ERR_USAGE, "an array field was accepted");
	sv_unset(bad.fields, "list");
	NEED(st_item_set_field(&bad, "s", sv_strn("\xff\xfe", 2)) == ST_OK);
	CHECK(st_writer_put(w, &bad) == ST_ERR_USAGE, "a non-UTF-8 field was accepted");
	sv_unset(bad.fields, "s");
	st_tensor *t = st_item_add_tensor(&bad, "y", ST_I32, 1, &n, NULL);
	NEED(t);
	t->shape[0] = 4; /* disagrees with nbytes */
	CHECK(st_writer_put(w, &bad) == ST_ERR_SHAPE, "a tensor whose shape disagrees with its size was accepted");
	t->shape[0] = 3;
	CHECK(st_writer_put(w, &bad) == ST_OK, "the repaired item: %s", st_writer_error(w));
	CHECK(st_writer_close(w, err) == ST_OK, "close after refusals: %s", err);

	st_item items[2];
	NEED(st_item_init(&items[0]) == ST_OK && st_item_init(&items[1]) == ST_OK);
	NEED(st_item_copy(&items[0], &good) == ST_OK && st_item_copy(&items[1], &bad) == ST_OK);
	read_back("refused.msgpack", header, items, 2);
	for (int i = 0; i < 2; i++)
		st_item_free(&items[i]);
	st_item_free(&good);
	st_item_free(&bad);
}

static void nonfinite(sv *header)
{
	char err[ST_ERRLEN];
	st_writer *w = st_writer_open("nan.msgpack", header, err);
	NEED(w);
	st_item it;
	NEED(st_item_init(&it) == ST_OK);
	int64_t n = 8;
	for (int k = 0; k < 3; k++) {
		st_item_clear(&it);
		NEED(st_item_set_key(&it, (const char *[]){"a", "b", "c"}[k]) == ST_OK);
		st_tensor *t = st_item_add_tensor(&it, "wave", k == 2 ? ST_F64 : ST_F32, 1, &n, NULL);
		NEED(t);
		if (k == 1)
			((float *)t->data)[5] = NAN;
		if (k == 2)
			((double *)t->data)[7] = -INFINITY;
		CHECK(st_writer_put(w, &it) == ST_OK, "%s", st_writer_error(w));
	}
	NEED(st_writer_close(w, err) == ST_OK);
	for (int flags = 0; flags <= ST_READ_FINITE; flags += ST_READ_FINITE) {
		st_reader *r = st_reader_open("nan.msgpack", 0, (unsigned)flags, err);
		NEED(r);
		int rc, k = 0;
		while ((rc = st_reader_next(r, &it)) == ST_OK)
			k++;
		if (flags) {
			CHECK(rc == ST_ERR_NONFINITE && k == 1, "ST_READ_FINITE: %d after %d items", rc, k);
			const char *m = st_reader_error(r);
			CHECK(strstr(m, "item 2: key 'b': tensor 'wave': non-finite value nan at index 5"), "message: %s", m);
		} else {
			CHECK(rc == ST_END && k == 3, "without ST_READ_FINITE NaN is data: %d after %d", rc, k);
		}
		st_reader_close(r);
	}
	st_item_free(&it);
}

static void derive(void)
{
	char *argv1[] = {"audio-read", "-r", "16000"}, *argv2[] = {"bandpass", "--low", "300"};
	char *argv3[] = {"melspec"};
	sv *h1 = st_header_new("audio-read", 3, argv1);
	NEED(h1 && sv_set(st_header_params(h1), "sample_rate", sv_int(16000)) == 0);
	sv *stats = sv_map();
	NEED(stats && sv_set(stats, "items", sv_int(7)) == 0 && sv_set(h1, "stats", stats) == 0);
	sv *h2 = st_header_derive(h1, "bandpass", 3, argv2);
	NEED(h2 && sv_set(st_header_params(h2), "bandpass", sv_str("300-3000")) == 0);
	sv *h3 = st_header_derive(h2, "melspec", 1, argv3);
	NEED(h3);
	CHECK(strcmp(sv_get_str(h3, "producer"), "melspec") == 0, "producer");
	const sv *a = sv_get(h3, "argv");
	CHECK(a && a->kind == SV_ARRAY && a->u.arr.n == 1 && strcmp(a->u.arr.items[0]->u.str.ptr, "melspec") == 0,
	      "argv");
	int64_t rate;
	CHECK(sv_get_int(st_header_params(h3), "sample_rate", &rate) && rate == 16000 &&
	      sv_get_str(st_header_params(h3), "bandpass"), "params are not carried over");
	int64_t items;
	CHECK(sv_get_int(sv_get(h3, "stats"), "items", &items) && items == 7, "stats are not carried over");
	const sv *hist = sv_get(h3, "history");
	CHECK(hist && hist->kind == SV_ARRAY && hist->u.arr.n == 2, "history has %zu entries",
	      hist ? hist->u.arr.n : 0);
	if (hist && hist->u.arr.n == 2) {
		const sv *e0 = hist->u.arr.items[0], *e1 = hist->u.arr.items[1];
		CHECK(strcmp(sv_get_str(e0, "producer"), "audio-read") == 0 && strcmp(sv_get_str(e1, "producer"), "bandpass") == 0,
		      "history order");
		CHECK(same(sv_get(e0, "argv"), sv_get(h1, "argv")) && same(sv_get(e1, "argv"), sv_get(h2, "argv")) &&
		      sv_get_str(e1, "producer_version"), "history entries carry argv and version");
		CHECK(e0->u.map.n == 3, "history entry has %zu keys", e0->u.map.n);
	}
	/* the input is not modified */
	CHECK(sv_get(h2, "history")->u.arr.n == 1, "st_header_derive changed its input");
	/* a header without history (a Python producer) starts one */
	sv *bare = sv_map();
	NEED(bare && sv_set(bare, "producer", sv_str("python")) == 0);
	sv *h4 = st_header_derive(bare, "stream-cat", 1, argv3);
	CHECK(h4 && sv_get(h4, "history")->u.arr.n == 1 && st_header_params(h4), "derive from a bare header");
	sv_free(bare);
	sv_free(h4);
	sv_free(h1);
	sv_free(h2);
	sv_free(h3);
}

static void item_api(void)
{
	st_item it, cp;
	NEED(st_item_init(&it) == ST_OK && st_item_init(&cp) == ST_OK);
	int64_t shape[2] = {2, 3};
	CHECK(st_item_add_tensor(&it, "a", ST_I32, 2, shape, NULL), "add");
	CHECK(!st_item_add_tensor(&it, "a", ST_I32, 2, shape, NULL), "a duplicate tensor name was accepted");
	CHECK(!st_item_add_tensor(&it, "", ST_I32, 2, shape, NULL), "an empty tensor name was accepted");
	int64_t neg = -1, huge[4] = {1ll << 40, 1ll << 40, 0, 1};
	CHECK(!st_item_add_tensor(&it, "n", ST_I32, 1, &neg, NULL), "a negative dimension was accepted");
	CHECK(!st_item_add_tensor(&it, "h", ST_I32, 4, huge, NULL), "an overflowing shape was accepted");
	CHECK(!st_item_add_tensor(&it, "r", ST_I32, 5, huge, NULL), "rank 5 was accepted");
	void *p = sv_aligned_alloc(24);
	NEED(p);
	CHECK(!st_item_take_tensor(&it, "a", ST_I32, 2, shape, p), "take_tensor accepted a duplicate");
	CHECK(st_item_take_tensor(&it, "b", ST_I32, 2, shape, p), "take_tensor");
	CHECK(st_item_tensor(&it, "b") && st_item_tensor(&it, "b")->data == p,
	      "lookup");
	st_item_remove_tensor(&it, "a");
	CHECK(it.ntensors == 1 && !st_item_tensor(&it, "a") && st_item_tensor(&it, "b"), "remove");
	NEED(st_item_set_key(&it, "k") == ST_OK && st_item_set_field(&it, "x", sv_int(1)) == ST_OK);
	NEED(st_item_copy(&cp, &it) == ST_OK);
	char why[256];
	CHECK(same_item(&it, &cp, why, sizeof why), "copy: %s", why);
	st_item_clear(&cp);
	CHECK(!cp.key && cp.ntensors == 0 && cp.fields && cp.fields->u.map.n == 0, "clear");
	st_item_free(&it);
	st_item_free(&cp);

	for (int t = ST_F32; t <= ST_U8; t++) {
		st_dtype back;
		CHECK(st_dtype_parse(st_dtype_str((st_dtype)t), &back) == 0 && back == (st_dtype)t, "dtype %d", t);
	}
	st_dtype u;
	CHECK(st_dtype_parse("<u1", &u) == 0 && u == ST_U8, "<u1");
	CHECK(st_dtype_parse(">f4", &u) && st_dtype_parse("|O", &u) && st_dtype_parse("<f2", &u), "refused dtypes");
}

/* The key rule (formats/stream.md, "Keys from file names"). */
static void keys_from_paths(void)
{
	static const struct { const char *path, *key; } cases[] = {
		{"Audios/a_1.wav", "a_1"}, {"dir/a.b.wav", "a.b"}, {"a", "a"},       {"x/.wav", ".wav"},
		{"x.y/z", "z"},            {"/abs/f.", "f"},       {"d/..a", "."},   {"dir/", ""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const char *k;
		size_t n = st_key_from_path(cases[i].path, strlen(cases[i].path), &k);
		CHECK(n == strlen(cases[i].key) && memcmp(k, cases[i].key, n) == 0, "key of '%s': '%.*s', want '%s'",
		      cases[i].path, (int)n, k, cases[i].key);
	}
}

int main(void)
{
	st_item *items = make_items();
	sv *header = make_header();
	file_and_pipe(items, header);
	refusals(header);
	nonfinite(header);
	derive();
	item_api();
	keys_from_paths();
	for (size_t j = 0; j < NITEMS; j++)
		st_item_free(&items[j]);
	free(items);
	sv_free(header);
	return check_done();
}
