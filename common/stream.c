#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "atomic.h"
#include "cli.h"
#include "version.h"

/* ---------------- dtypes, tensors, items ---------------- */

const char *st_strerror(int code)
{
	switch (code) {
	case ST_OK: return "success";
	case ST_END: return "end of stream";
	case ST_ERR_NOMEM: return "out of memory";
	case ST_ERR_IO: return "input/output error";
	case ST_ERR_TRUNCATED: return "truncated stream";
	case ST_ERR_FORMAT: return "malformed record";
	case ST_ERR_LIMIT: return "record larger than the limit";
	case ST_ERR_DTYPE: return "unsupported dtype";
	case ST_ERR_SHAPE: return "bad shape";
	case ST_ERR_NONFINITE: return "non-finite value";
	case ST_ERR_COUNT: return "item count disagrees with end record";
	case ST_ERR_USAGE: return "invalid use of the stream API";
	}
	return "unknown error";
}

static const struct { const char *str; size_t size; } dtypes[] = {
	[ST_F32] = {"<f4", 4}, [ST_F64] = {"<f8", 8}, [ST_I32] = {"<i4", 4},
	[ST_I64] = {"<i8", 8}, [ST_U8] = {"|u1", 1},
};

static bool dtype_ok(st_dtype t) { return (unsigned)t <= ST_U8; }

size_t st_dtype_size(st_dtype t) { return dtype_ok(t) ? dtypes[t].size : 0; }
const char *st_dtype_str(st_dtype t) { return dtype_ok(t) ? dtypes[t].str : "?"; }

int st_dtype_parse(const char *s, st_dtype *out)
{
	for (int t = 0; t <= ST_U8; t++)
		if (strcmp(s, dtypes[t].str) == 0) {
			*out = (st_dtype)t;
			return 0;
		}
	if (strcmp(s, "<u1") == 0) {
		*out = ST_U8;
		return 0;
	}
	return -1;
}

size_t st_tensor_numel(const st_tensor *t)
{
	size_t n = 1;
	for (int d = 0; d < t->ndim; d++)
		n *= (size_t)t->shape[d];
	return n;
}

/* The payload size; -1 for a bad rank, a negative dimension, or a shape
 * whose non-zero dimensions overflow (so products of any subset of the
 * dimensions are safe for every consumer). */
static int shape_bytes(st_dtype dtype, int ndim, const int64_t *shape, size_t *out)
{
	if (!dtype_ok(dtype) || ndim < 0 || ndim > ST_MAX_DIMS)
		return -1;
	size_t n = dtypes[dtype].size, nonzero = n;
	for (int d = 0; d < ndim; d++) {
		if (shape[d] < 0)
			return -1;
		if (shape[d] == 0) {
			n = 0;
			continue;
		}
		if ((uint64_t)shape[d] > SIZE_MAX / nonzero)
			return -1;
		nonzero *= (size_t)shape[d];
		n *= (size_t)shape[d];
	}
	*out = n;
	return 0;
}

int st_item_init(st_item *it)
{
	memset(it, 0, sizeof *it);
	it->fields = sv_map();
	return it->fields ? ST_OK : ST_ERR_NOMEM;
}

static void tensor_free(st_tensor *t)
{
	free(t->name);
	free(t->data);
}

void st_item_clear(st_item *it)
{
	free(it->key);
	it->key = NULL;
	for (size_t i = 0; i < it->ntensors; i++)
		tensor_free(&it->tensors[i]);
	it->ntensors = 0;
	if (it->fields)
		sv_map_clear(it->fields);
}

void st_item_free(st_item *it)
{
	st_item_clear(it);
	free(it->tensors);
	sv_free(it->fields);
	memset(it, 0, sizeof *it);
}

int st_item_set_key(st_item *it, const char *key)
{
	char *k = strdup(key);
	if (!k)
		return ST_ERR_NOMEM;
	free(it->key);
	it->key = k;
	return ST_OK;
}

st_tensor *st_item_tensor(const st_item *it, const char *name)
{
	for (size_t i = 0; i < it->ntensors; i++)
		if (strcmp(it->tensors[i].name, name) == 0)
			return &it->tensors[i];
	return NULL;
}

void st_item_remove_tensor(st_item *it, const char *name)
{
	st_tensor *t = st_item_tensor(it, name);
	if (!t)
		return;
	size_t at = (size_t)(t - it->tensors);
	tensor_free(t);
	memmove(&it->tensors[at], &it->tensors[at + 1], (it->ntensors - at - 1) * sizeof *t);
	it->ntensors--;
}

/* name is malloc'd and taken (also on failure); data is taken on success only. */
static st_tensor *append_tensor(st_item *it, char *name, st_dtype dtype, int ndim, const int64_t *shape,
                                size_t nbytes, void *data)
{
	if (it->ntensors == it->cap) {
		size_t ncap = it->cap ? it->cap * 2 : 4;
		st_tensor *nt = realloc(it->tensors, ncap * sizeof *nt);
		if (!nt) {
			free(name);
			return NULL;
		}
		it->tensors = nt;
		it->cap = ncap;
	}
	st_tensor *t = &it->tensors[it->ntensors++];
	memset(t, 0, sizeof *t);
	t->name = name;
	t->dtype = dtype;
	t->ndim = ndim;
	for (int d = 0; d < ndim; d++)
		t->shape[d] = shape[d];
	t->data = data;
	t->nbytes = nbytes;
	return t;
}

st_tensor *st_item_take_tensor(st_item *it, const char *name, st_dtype dtype, int ndim,
                               const int64_t *shape, void *data)
{
	size_t nbytes;
	if (!name || !*name || st_item_tensor(it, name) || shape_bytes(dtype, ndim, shape, &nbytes))
		return NULL;
	char *n = strdup(name);
	return n ? append_tensor(it, n, dtype, ndim, shape, nbytes, data) : NULL;
}

st_tensor *st_item_add_tensor(st_item *it, const char *name, st_dtype dtype, int ndim,
                              const int64_t *shape, const void *data)
{
	size_t nbytes;
	if (shape_bytes(dtype, ndim, shape, &nbytes))
		return NULL;
	void *copy = sv_aligned_alloc(nbytes);
	if (!copy)
		return NULL;
	if (data)
		memcpy(copy, data, nbytes);
	else
		memset(copy, 0, nbytes);
	st_tensor *t = st_item_take_tensor(it, name, dtype, ndim, shape, copy);
	if (!t)
		free(copy);
	return t;
}

int st_item_set_field(st_item *it, const char *name, sv *val)
{
	return sv_set(it->fields, name, val) ? ST_ERR_NOMEM : ST_OK;
}

int st_item_copy(st_item *dst, const st_item *src)
{
	st_item_clear(dst);
	if (src->key && st_item_set_key(dst, src->key))
		return ST_ERR_NOMEM;
	for (size_t i = 0; i < src->ntensors; i++) {
		const st_tensor *t = &src->tensors[i];
		if (!st_item_add_tensor(dst, t->name, t->dtype, t->ndim, t->shape, t->data))
			return ST_ERR_NOMEM;
	}
	for (size_t i = 0; i < src->fields->u.map.n; i++)
		if (st_item_set_field(dst, src->fields->u.map.keys[i], sv_copy(src->fields->u.map.vals[i])))
			return ST_ERR_NOMEM;
	return ST_OK;
}

/* ---------------- reading ---------------- */

#define IN_BUFSIZE ((size_t)64 << 10)
/* Reads at least this long go from the kernel straight into their destination. */
#define DIRECT_READ ((size_t)64 << 10)
/* From a pipe, a payload longer than this is read into memory that grows as
 * the bytes arrive, so a lying length costs what was actually sent. */
#define GROW_FROM ((size_t)16 << 20)
#define MAX_DEPTH 16
#define MIN_VALUES ((size_t)1 << 16)
/* Pipes are enlarged to this (the unprivileged default maximum) */
#define PIPE_SIZE (1 << 20)

struct st_reader {
	char *name;
	int fd;
	bool own_fd;
	bool regular;           /* a regular file: its size bounds every declared length */
	uint64_t input_end;     /* for a regular file: its size, relative to where reading began */
	unsigned char *buf;
	size_t pos, end;
	uint64_t offset;        /* bytes consumed */
	uint64_t record_start;
	size_t max_record;
	size_t budget;          /* bytes the current record may still use */
	size_t max_values, values_left;
	unsigned flags;
	uint64_t items;
	bool done, failed;
	const char *cur_key;    /* key of the item being parsed, for messages */
	bool in_end;            /* the record being parsed says it is the end record */
	sv *header;
	sv *empty_params;
	void *spare;            /* a payload buffer of the previous item, reused */
	size_t spare_len;
	char err[ST_ERRLEN];
};

static int fail(st_reader *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(st_reader *r, int code, const char *fmt, ...)
{
	int k;
	unsigned long long n = (unsigned long long)r->items + 1;
	if (!r->header)
		k = snprintf(r->err, sizeof r->err, "%.200s: header: ", r->name);
	else if (r->in_end)
		k = snprintf(r->err, sizeof r->err, "%.200s: end record: ", r->name);
	else if (r->cur_key)
		k = snprintf(r->err, sizeof r->err, "%.200s: item %llu: key '%.100s': ", r->name, n, r->cur_key);
	else
		k = snprintf(r->err, sizeof r->err, "%.200s: item %llu: ", r->name, n);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err + k, sizeof r->err - (size_t)k, fmt, ap);
	va_end(ap);
	r->failed = true;
	return code;
}

static int read_some(st_reader *r, void *dst, size_t n, size_t *got)
{
	*got = 0;
	for (;;) {
		ssize_t k = read(r->fd, dst, n);
		if (k >= 0) {
			*got = (size_t)k;
			return 0;
		}
		if (errno != EINTR)
			return fail(r, ST_ERR_IO, "read error: %s", strerror(errno));
	}
}

/* Ensures n (<= IN_BUFSIZE) bytes are buffered.  0, 1 at end of input, or an error. */
static int in_fill(st_reader *r, size_t n)
{
	if (r->end - r->pos >= n)
		return 0;
	memmove(r->buf, r->buf + r->pos, r->end - r->pos);
	r->end -= r->pos;
	r->pos = 0;
	while (r->end < n) {
		size_t got;
		int rc = read_some(r, r->buf + r->end, IN_BUFSIZE - r->end, &got);
		if (rc)
			return rc;
		if (got == 0)
			return 1;
		r->end += got;
	}
	return 0;
}

static int truncated(st_reader *r)
{
	return fail(r, ST_ERR_TRUNCATED,
	            "truncated record (input ends at byte %llu, inside the record that starts at byte %llu)",
	            (unsigned long long)(r->offset + (r->end - r->pos)), (unsigned long long)r->record_start);
}

static int charge(st_reader *r, size_t n)
{
	if (n > r->budget)
		return fail(r, ST_ERR_LIMIT,
		            "record larger than the limit of %zu bytes (set %s or --max-record to raise it)",
		            r->max_record, ST_MAX_RECORD_ENV);
	r->budget -= n;
	return 0;
}

/* A declared length (n bytes still to come) must fit under the record limit
 * and, for a regular file, in what is left of the file. */
static int declared(st_reader *r, uint64_t n, const char *what)
{
	if (n > SIZE_MAX)
		return charge(r, SIZE_MAX);
	int rc = charge(r, (size_t)n);
	if (rc || !r->regular)
		return rc;
	uint64_t left = r->input_end > r->offset ? r->input_end - r->offset : 0;
	if (n > left) {
		/* the file may have grown since it was opened */
		struct stat st;
		off_t here = lseek(r->fd, 0, SEEK_CUR);
		if (fstat(r->fd, &st) == 0 && here >= 0 && (uint64_t)st.st_size >= (uint64_t)here)
			left = (uint64_t)st.st_size - (uint64_t)here + (r->end - r->pos);
		if (n > left)
			return fail(r, ST_ERR_TRUNCATED,
			            "truncated record (%s of %llu bytes declared at byte %llu, but the input ends at byte %llu)",
			            what, (unsigned long long)n, (unsigned long long)r->offset,
			            (unsigned long long)(r->offset + left));
	}
	return 0;
}

/* Copies n bytes of input to dst (budget already charged). */
static int in_copy(st_reader *r, void *dst, size_t n)
{
	unsigned char *out = dst;
	if (n < DIRECT_READ) {
		int rc = in_fill(r, n);
		if (rc)
			return rc == 1 ? truncated(r) : rc;
	}
	size_t have = r->end - r->pos;
	size_t take = have < n ? have : n;
	memcpy(out, r->buf + r->pos, take);
	r->pos += take;
	r->offset += take;
	out += take;
	n -= take;
	while (n > 0) {
		size_t got;
		int rc = read_some(r, out, n, &got);
		if (rc)
			return rc;
		if (got == 0)
			return truncated(r);
		out += got;
		n -= got;
		r->offset += got;
	}
	return 0;
}

/* Points *p at the next n (<= 9) input bytes and consumes them. */
static int in_take(st_reader *r, size_t n, const unsigned char **p)
{
	int rc = in_fill(r, n);
	if (rc)
		return rc == 1 ? truncated(r) : rc;
	if ((rc = charge(r, n)))
		return rc;
	*p = r->buf + r->pos;
	r->pos += n;
	r->offset += n;
	return 0;
}

static int in_uint(st_reader *r, size_t width, uint64_t *out)
{
	const unsigned char *b = NULL;
	int rc = in_take(r, width, &b);
	if (rc)
		return rc;
	uint64_t v = 0;
	for (size_t i = 0; i < width; i++)
		v = v << 8 | b[i];
	*out = v;
	return 0;
}

/* Reads a declared payload of len bytes into fresh 64-byte aligned memory
 * with extra bytes to spare at the end. */
static int read_payload(st_reader *r, size_t len, size_t extra, const char *what, void **out)
{
	int rc = declared(r, len, what);
	if (rc)
		return rc;
	if (len > SIZE_MAX - extra - 64)
		return fail(r, ST_ERR_NOMEM, "out of memory for %zu bytes", len);
	void *p;
	size_t cap = len;
	/* a spare much larger than needed would sit idle in the item */
	if (!extra && len >= DIRECT_READ && r->spare && r->spare_len >= len && r->spare_len / 2 <= len) {
		p = r->spare;
		r->spare = NULL;
		r->spare_len = 0;
	} else {
		if (!r->regular && len > GROW_FROM)
			cap = GROW_FROM;
		if (!(p = sv_aligned_alloc(cap + extra)))
			return fail(r, ST_ERR_NOMEM, "out of memory for %zu bytes", cap + extra);
	}
	size_t have = 0;
	for (;;) {
		if ((rc = in_copy(r, (char *)p + have, cap - have))) {
			free(p);
			return rc;
		}
		have = cap;
		if (have == len)
			break;
		cap = len - cap > cap ? 2 * cap : len;
		void *np = sv_aligned_alloc(cap + extra);
		if (!np) {
			free(p);
			return fail(r, ST_ERR_NOMEM, "out of memory for %zu bytes", cap + extra);
		}
		memcpy(np, p, have);
		free(p);
		p = np;
	}
	*out = p;
	return 0;
}

/* A length-prefixed value: 0 when b is not one of the families asked for. */
static int read_len(st_reader *r, unsigned b, size_t *len)
{
	uint64_t n = 0;
	int rc = 0;
	if (b >= 0xa0 && b <= 0xbf)
		n = b & 0x1f;
	else if (b == 0xd9 || b == 0xc4)
		rc = in_uint(r, 1, &n);
	else if (b == 0xda || b == 0xc5)
		rc = in_uint(r, 2, &n);
	else if (b == 0xdb || b == 0xc6)
		rc = in_uint(r, 4, &n);
	*len = (size_t)n;
	return rc;
}

static bool is_str_byte(unsigned b) { return (b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb); }
static bool is_bin_byte(unsigned b) { return b >= 0xc4 && b <= 0xc6; }

static int count_value(st_reader *r)
{
	if (r->values_left == 0)
		return fail(r, ST_ERR_LIMIT, "record holds more than %zu msgpack values (the limit for a %zu-byte record)",
		            r->max_values, r->max_record);
	r->values_left--;
	return 0;
}

static int parse_value(st_reader *r, int depth, sv **out);

static int parse_str(st_reader *r, size_t len, sv **out)
{
	char *s;
	int rc = read_payload(r, len, 1, "a string", (void **)&s);
	if (rc)
		return rc;
	s[len] = '\0';
	if (!sv_utf8_valid(s, len)) {
		free(s);
		return fail(r, ST_ERR_FORMAT, "string is not valid UTF-8 (byte %llu)", (unsigned long long)r->offset);
	}
	sv *v = sv_nil();
	if (!v) {
		free(s);
		return fail(r, ST_ERR_NOMEM, "out of memory");
	}
	v->kind = SV_STR;
	v->u.str.ptr = s;
	v->u.str.len = len;
	*out = v;
	return 0;
}

static int parse_bin(st_reader *r, size_t len, sv **out)
{
	void *p;
	int rc = read_payload(r, len, 0, "a bin", &p);
	if (rc)
		return rc;
	if (!(*out = sv_bin_take(p, len))) {
		free(p);
		return fail(r, ST_ERR_NOMEM, "out of memory");
	}
	return 0;
}

static int parse_array(st_reader *r, size_t n, int depth, sv **out)
{
	/* every element takes at least one byte: a longer count is a lie */
	int rc = declared(r, n, "an array");
	if (rc)
		return rc;
	r->budget += n;
	sv *a = sv_array();
	if (!a)
		return fail(r, ST_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		sv *e = NULL;
		rc = parse_value(r, depth + 1, &e);
		if (rc || sv_push(a, e)) {
			sv_free(a);
			return rc ? rc : fail(r, ST_ERR_NOMEM, "out of memory");
		}
	}
	*out = a;
	return 0;
}

static int parse_key(st_reader *r, char **out)
{
	const unsigned char *p = NULL;
	size_t len = 0;
	int rc = count_value(r);
	if (rc || (rc = in_take(r, 1, &p)))
		return rc;
	unsigned b = *p;
	if (!is_str_byte(b) && !is_bin_byte(b))
		return fail(r, ST_ERR_FORMAT, "map key is not a string (msgpack type 0x%02x)", b);
	if ((rc = read_len(r, b, &len)))
		return rc;
	if (len == 0)
		return fail(r, ST_ERR_FORMAT, "empty map key");
	char *k;
	if ((rc = read_payload(r, len, 1, "a map key", (void **)&k)))
		return rc;
	k[len] = '\0';
	const char *bad = memchr(k, '\0', len)            ? "contains a NUL byte"
	                  : is_str_byte(b) && !sv_utf8_valid(k, len) ? "is not valid UTF-8"
	                                                             : NULL;
	if (bad) {
		free(k);
		return fail(r, ST_ERR_FORMAT, "map key %s", bad);
	}
	*out = k;
	return 0;
}

static int cmp_keys(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* O(n log n), so a hostile map of a million keys costs no more than reading it. */
static int check_duplicates(st_reader *r, const sv *m)
{
	size_t n = m->u.map.n;
	char **k = m->u.map.keys;
	const char *dup = NULL;
	if (n <= 8) {
		for (size_t i = 0; i < n && !dup; i++)
			for (size_t j = i + 1; j < n && !dup; j++)
				if (strcmp(k[i], k[j]) == 0)
					dup = k[i];
	} else {
		char **s = malloc(n * sizeof *s);
		if (!s)
			return fail(r, ST_ERR_NOMEM, "out of memory");
		memcpy(s, k, n * sizeof *s);
		qsort(s, n, sizeof *s, cmp_keys);
		for (size_t i = 1; i < n && !dup; i++)
			if (strcmp(s[i - 1], s[i]) == 0)
				dup = s[i];
		free(s);
	}
	return dup ? fail(r, ST_ERR_FORMAT, "duplicate map key '%.100s'", dup) : 0;
}

static int parse_map(st_reader *r, size_t n, int depth, sv **out)
{
	/* a key and a value take at least two bytes */
	if (n > SIZE_MAX / 2)
		return charge(r, SIZE_MAX);
	int rc = declared(r, 2 * n, "a map");
	if (rc)
		return rc;
	r->budget += 2 * n;
	sv *m = sv_map();
	if (!m)
		return fail(r, ST_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < n && !rc; i++) {
		char *k = NULL;
		sv *v = NULL;
		if (!(rc = parse_key(r, &k)) && !(rc = parse_value(r, depth + 1, &v))) {
			/* so that an error later in the record can name it */
			if (depth == 0 && v->kind == SV_STR && strcmp(k, "type") == 0)
				r->in_end = strcmp(v->u.str.ptr, "end") == 0;
			if (sv_append_take(m, k, v))
				rc = fail(r, ST_ERR_NOMEM, "out of memory");
		} else {
			free(k);
		}
	}
	if (!rc)
		rc = check_duplicates(r, m);
	if (rc) {
		sv_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

static int parse_value(st_reader *r, int depth, sv **out)
{
	if (depth > MAX_DEPTH)
		return fail(r, ST_ERR_FORMAT, "nested deeper than %d levels", MAX_DEPTH);
	const unsigned char *p = NULL;
	uint64_t n = 0;
	size_t len = 0;
	int rc = count_value(r);
	if (rc || (rc = in_take(r, 1, &p)))
		return rc;
	unsigned b = *p;
	sv *v = NULL;
	if (b <= 0x7f)
		v = sv_int((int64_t)b);
	else if (b >= 0xe0)
		v = sv_int((int64_t)b - 256);
	else if (b <= 0x8f)
		return parse_map(r, b & 0x0f, depth, out);
	else if (b <= 0x9f)
		return parse_array(r, b & 0x0f, depth, out);
	else if (is_str_byte(b))
		return (rc = read_len(r, b, &len)) ? rc : parse_str(r, len, out);
	else if (is_bin_byte(b))
		return (rc = read_len(r, b, &len)) ? rc : parse_bin(r, len, out);
	else
		switch (b) {
		case 0xc0: v = sv_nil(); break;
		case 0xc2: v = sv_bool(false); break;
		case 0xc3: v = sv_bool(true); break;
		case 0xdc: case 0xdd:
			if ((rc = in_uint(r, b == 0xdc ? 2 : 4, &n)))
				return rc;
			return parse_array(r, (size_t)n, depth, out);
		case 0xde: case 0xdf:
			if ((rc = in_uint(r, b == 0xde ? 2 : 4, &n)))
				return rc;
			return parse_map(r, (size_t)n, depth, out);
		case 0xca: {
			if ((rc = in_uint(r, 4, &n)))
				return rc;
			uint32_t u = (uint32_t)n;
			float f;
			memcpy(&f, &u, 4);
			v = sv_float(f);
			break;
		}
		case 0xcb: {
			if ((rc = in_uint(r, 8, &n)))
				return rc;
			double d;
			memcpy(&d, &n, 8);
			v = sv_float(d);
			break;
		}
		case 0xcc: case 0xcd: case 0xce: case 0xcf:
			if ((rc = in_uint(r, (size_t)1 << (b - 0xcc), &n)))
				return rc;
			if (n > INT64_MAX)
				return fail(r, ST_ERR_FORMAT, "integer %llu out of range (integers must fit in int64)",
				            (unsigned long long)n);
			v = sv_int((int64_t)n);
			break;
		case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
			unsigned w = 1u << (b - 0xd0);
			if ((rc = in_uint(r, w, &n)))
				return rc;
			uint64_t sign = 1ull << (8 * w - 1);
			int64_t s = w == 8 ? (int64_t)n : (int64_t)(n ^ sign) - (int64_t)sign;
			v = sv_int(s);
			break;
		}
		default:
			return fail(r, ST_ERR_FORMAT, "unsupported msgpack type 0x%02x (ext types and 0xc1 are not part of the format)",
			            b);
		}
	if (!v)
		return fail(r, ST_ERR_NOMEM, "out of memory");
	*out = v;
	return 0;
}

/* Reads one record map.  0, 1 at a clean end of input (between records), or an error. */
static int read_record(st_reader *r, sv **out)
{
	r->record_start = r->offset;
	r->in_end = false;
	r->budget = r->max_record;
	r->values_left = r->max_values;
	int rc = in_fill(r, 1);
	if (rc)
		return rc;
	unsigned b = r->buf[r->pos];
	if ((b & 0xf0) != 0x80 && b != 0xde && b != 0xdf)
		return fail(r, ST_ERR_FORMAT, "byte %llu: record is not a msgpack map (not a sertools stream?)",
		            (unsigned long long)r->offset);
	return parse_value(r, 0, out);
}

static bool sv_is_bytes(const sv *v, const char *s)
{
	if (!v)
		return false;
	if (v->kind == SV_STR)
		return strcmp(v->u.str.ptr, s) == 0;
	if (v->kind == SV_BIN)
		return v->u.bin.len == strlen(s) && memcmp(v->u.bin.ptr, s, v->u.bin.len) == 0;
	return false;
}

static const char *sv_bytes_cstr(const sv *v, char *buf, size_t len)
{
	if (v && v->kind == SV_STR)
		return v->u.str.ptr;
	if (v && v->kind == SV_BIN && v->u.bin.len < len && !memchr(v->u.bin.ptr, 0, v->u.bin.len)) {
		memcpy(buf, v->u.bin.ptr, v->u.bin.len);
		buf[v->u.bin.len] = '\0';
		return buf;
	}
	return NULL;
}

/* The first key of map not in allowed (a NULL-terminated list), or NULL. */
static const char *unknown_key(const sv *map, const char *const *allowed)
{
	for (size_t i = 0; i < map->u.map.n; i++) {
		size_t j = 0;
		while (allowed[j] && strcmp(allowed[j], map->u.map.keys[i]) != 0)
			j++;
		if (!allowed[j])
			return map->u.map.keys[i];
	}
	return NULL;
}

/* NaN or Inf: all exponent bits set.  A max over the exponent bits
 * vectorises where isfinite() and early exits do not (and GCC 12 vectorises
 * these loops only when they are not inlined into the parser). */
__attribute__((noinline)) static bool any_nonfinite_f32(const uint32_t *restrict p, size_t n)
{
	uint32_t top = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t b = p[i] & 0x7f800000u;
		top = b > top ? b : top;
	}
	return top == 0x7f800000u;
}

__attribute__((noinline)) static bool any_nonfinite_f64(const uint64_t *restrict p, size_t n)
{
	uint64_t any = 0;
	for (size_t i = 0; i < n; i++)
		any |= (p[i] & 0x7ff0000000000000ull) == 0x7ff0000000000000ull;
	return any;
}

static int check_finite(st_reader *r, const st_tensor *t)
{
	size_t n = st_tensor_numel(t);
	/* payloads are raw bytes from the stream: reading them as integers is as valid as as floats */
	if (t->dtype == ST_F32 ? !any_nonfinite_f32(t->data, n) : t->dtype == ST_F64 ? !any_nonfinite_f64(t->data, n) : true)
		return 0;
	for (size_t i = 0; i < n; i++) {
		double x = t->dtype == ST_F32 ? ((const float *)t->data)[i] : ((const double *)t->data)[i];
		if (!isfinite(x))
			return fail(r, ST_ERR_NONFINITE, "tensor '%s': non-finite value %g at index %zu", t->name, x, i);
	}
	return 0;
}

static const char *const ndarray_keys[] = {"nd", "type", "kind", "shape", "data", NULL};

/* Moves the ndarray nd (a value of the record, left empty) into the item. */
static int take_tensor(st_reader *r, st_item *it, char **name, sv *nd)
{
	char buf[32];
	const char *tn = *name;
	if (nd->kind != SV_MAP)
		return fail(r, ST_ERR_FORMAT, "tensor '%s' is not an ndarray map", tn);
	const sv *is_nd = sv_get(nd, "nd");
	if (!is_nd || is_nd->kind != SV_BOOL || !is_nd->u.b)
		return fail(r, ST_ERR_FORMAT, "tensor '%s' is not an ndarray map (no nd: true)", tn);
	const sv *kind = sv_get(nd, "kind");
	if (kind && !sv_is_bytes(kind, ""))
		return fail(r, ST_ERR_DTYPE,
		            "tensor '%s': refused ndarray kind (object, pickle and structured arrays are not accepted)", tn);
	const char *other = unknown_key(nd, ndarray_keys);
	if (other)
		return fail(r, ST_ERR_FORMAT, "tensor '%s': unknown ndarray entry '%.100s'", tn, other);
	const char *ts = sv_bytes_cstr(sv_get(nd, "type"), buf, sizeof buf);
	st_dtype dtype;
	if (!ts)
		return fail(r, ST_ERR_DTYPE, "tensor '%s': missing or non-string dtype", tn);
	if (st_dtype_parse(ts, &dtype))
		return fail(r, ST_ERR_DTYPE, "tensor '%s': unsupported dtype '%.20s' (supported: <f4 <f8 <i4 <i8 |u1)", tn,
		            ts);
	const sv *shape = sv_get(nd, "shape");
	if (!shape || shape->kind != SV_ARRAY)
		return fail(r, ST_ERR_SHAPE, "tensor '%s': shape is %s", tn, shape ? "not an array" : "missing");
	if (shape->u.arr.n > ST_MAX_DIMS)
		return fail(r, ST_ERR_SHAPE, "tensor '%s': %zu dimensions (at most %d)", tn, shape->u.arr.n, ST_MAX_DIMS);
	int64_t dims[ST_MAX_DIMS];
	for (size_t d = 0; d < shape->u.arr.n; d++) {
		const sv *e = shape->u.arr.items[d];
		if (e->kind != SV_INT || e->u.i < 0)
			return fail(r, ST_ERR_SHAPE, "tensor '%s': dimension %zu is not a non-negative integer", tn, d);
		dims[d] = e->u.i;
	}
	size_t want;
	if (shape_bytes(dtype, (int)shape->u.arr.n, dims, &want))
		return fail(r, ST_ERR_SHAPE, "tensor '%s': shape overflows", tn);
	sv *data = sv_get(nd, "data");
	if (!data || data->kind != SV_BIN)
		return fail(r, ST_ERR_FORMAT, "tensor '%s': data is %s", tn, data ? "not binary" : "missing");
	if (data->u.bin.len != want)
		return fail(r, ST_ERR_SHAPE, "tensor '%s': shape x dtype is %zu bytes but data has %zu", tn, want,
		            data->u.bin.len);
	/* the record's map guarantees the name is unique */
	st_tensor *t = append_tensor(it, *name, dtype, (int)shape->u.arr.n, dims, want, data->u.bin.ptr);
	*name = NULL;
	if (!t)
		return fail(r, ST_ERR_NOMEM, "out of memory");
	data->u.bin.ptr = NULL;
	data->u.bin.len = 0;
	if (r->flags & ST_READ_FINITE)
		return check_finite(r, t);
	return 0;
}

/* A numpy scalar as msgpack_numpy writes it ({nd: false, type, data}), as a plain value. */
static sv *numpy_scalar(const sv *v)
{
	static const char *const keys[] = {"nd", "type", "kind", "data", NULL};
	char buf[32];
	const sv *is_nd = sv_get(v, "nd"), *data = sv_get(v, "data"), *kind = sv_get(v, "kind");
	const char *ts = sv_bytes_cstr(sv_get(v, "type"), buf, sizeof buf);
	if (!is_nd || is_nd->kind != SV_BOOL || is_nd->u.b || !ts || !data || data->kind != SV_BIN ||
	    (kind && !sv_is_bytes(kind, "")) || unknown_key(v, keys))
		return NULL;
	const void *p = data->u.bin.ptr;
	size_t len = data->u.bin.len;
	st_dtype dt;
	if (strcmp(ts, "|b1") == 0)
		return len == 1 && *(const unsigned char *)p <= 1 ? sv_bool(*(const unsigned char *)p) : NULL;
	if (st_dtype_parse(ts, &dt) || len != st_dtype_size(dt))
		return NULL;
	switch (dt) {
	case ST_F32: { float x; memcpy(&x, p, 4); return sv_float(x); }
	case ST_F64: { double x; memcpy(&x, p, 8); return sv_float(x); }
	case ST_I32: { int32_t x; memcpy(&x, p, 4); return sv_int(x); }
	case ST_I64: { int64_t x; memcpy(&x, p, 8); return sv_int(x); }
	case ST_U8: return sv_int(*(const unsigned char *)p);
	}
	return NULL;
}

/* Moves a field value (or its numpy scalar's value) into the item. */
static int take_field(st_reader *r, st_item *it, char **name, sv **v)
{
	sv *val = *v;
	if (val->kind == SV_MAP) {
		val = numpy_scalar(val);
		if (!val)
			return fail(r, ST_ERR_FORMAT,
			            "field '%s' is not a scalar (nil, bool, int, float, str, or a numpy scalar of dtype |b1 %s)",
			            *name, "<f4 <f8 <i4 <i8 |u1");
	} else if (val->kind == SV_ARRAY || val->kind == SV_BIN) {
		return fail(r, ST_ERR_FORMAT, "field '%s' is not a scalar (put arrays in tensors)", *name);
	} else {
		*v = NULL;
	}
	int rc = sv_append_take(it->fields, *name, val);
	*name = NULL;
	return rc ? fail(r, ST_ERR_NOMEM, "out of memory") : 0;
}

static const char *const item_keys[] = {"type", "key", "tensors", "fields", NULL};

static int parse_item(st_reader *r, sv *rec, st_item *it)
{
	const sv *key = sv_get(rec, "key");
	if (!key || key->kind != SV_STR || key->u.str.len == 0 || memchr(key->u.str.ptr, 0, key->u.str.len))
		return fail(r, ST_ERR_FORMAT, "item has no key (a non-empty string)");
	r->cur_key = key->u.str.ptr;
	const char *other = unknown_key(rec, item_keys);
	if (other)
		return fail(r, ST_ERR_FORMAT, "unknown item entry '%.100s' (an item has key, tensors, fields)", other);
	if (st_item_set_key(it, key->u.str.ptr))
		return fail(r, ST_ERR_NOMEM, "out of memory");
	sv *tensors = sv_get(rec, "tensors");
	if (!tensors || tensors->kind != SV_MAP)
		return fail(r, ST_ERR_FORMAT, "tensors is %s", tensors ? "not a map" : "missing");
	for (size_t i = 0; i < tensors->u.map.n; i++) {
		int rc = take_tensor(r, it, &tensors->u.map.keys[i], tensors->u.map.vals[i]);
		if (rc)
			return rc;
	}
	sv *fields = sv_get(rec, "fields");
	if (fields && fields->kind != SV_MAP)
		return fail(r, ST_ERR_FORMAT, "fields is not a map");
	for (size_t i = 0; fields && i < fields->u.map.n; i++) {
		int rc = take_field(r, it, &fields->u.map.keys[i], &fields->u.map.vals[i]);
		if (rc)
			return rc;
	}
	r->cur_key = NULL;
	return 0;
}

int st_max_record_env(size_t *out, char *err)
{
	const char *s = getenv(ST_MAX_RECORD_ENV);
	*out = ST_DEFAULT_MAX_RECORD;
	if (!s || !*s)
		return ST_OK;
	if (!cli_parse_size(s, out)) {
		*out = ST_DEFAULT_MAX_RECORD;
		snprintf(err, ST_ERRLEN, "%s: '%.100s' is not a size in bytes (a positive integer, K, M or G suffix allowed)",
		         ST_MAX_RECORD_ENV, s);
		return ST_ERR_USAGE;
	}
	return ST_OK;
}

size_t st_max_record_from_env(void)
{
	size_t v;
	char err[ST_ERRLEN];
	return st_max_record_env(&v, err) == ST_OK ? v : ST_DEFAULT_MAX_RECORD;
}

/* Header entries are free-form, but those the format defines have their types. */
static const char *bad_header(const sv *h)
{
	static const char *const strs[] = {"producer", "producer_version", NULL};
	for (size_t i = 0; strs[i]; i++) {
		const sv *v = sv_get(h, strs[i]);
		if (v && v->kind != SV_STR)
			return strs[i];
	}
	const sv *v = sv_get(h, "argv");
	if (v && (v->kind != SV_ARRAY || !sv_get_strlist(h, "argv")))
		return "argv";
	if ((v = sv_get(h, "params")) && v->kind != SV_MAP)
		return "params";
	if ((v = sv_get(h, "stats")) && v->kind != SV_MAP)
		return "stats";
	if ((v = sv_get(h, "history"))) {
		if (v->kind != SV_ARRAY)
			return "history";
		for (size_t i = 0; i < v->u.arr.n; i++)
			if (v->u.arr.items[i]->kind != SV_MAP)
				return "history";
	}
	return NULL;
}

/* Bigger pipe buffers halve the context switches of a pipeline; best effort. */
static void enlarge_pipe(int fd)
{
#ifdef F_SETPIPE_SZ
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && fcntl(fd, F_GETPIPE_SZ) < PIPE_SIZE)
		(void)fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE);
#else
	(void)fd;
#endif
}

st_reader *st_reader_open(const char *path, size_t max_record, unsigned flags, char *err)
{
	bool is_stdin = !path || strcmp(path, "-") == 0;
	const char *name = is_stdin ? "stdin" : path;
	st_reader *r = calloc(1, sizeof *r);
	if (!r) {
		snprintf(err, ST_ERRLEN, "%s: out of memory", name);
		return NULL;
	}
	r->fd = -1;
	r->name = strdup(name);
	r->buf = malloc(IN_BUFSIZE);
	r->empty_params = sv_map();
	r->max_record = max_record;
	r->flags = flags;
	if (!r->name || !r->buf || !r->empty_params) {
		snprintf(err, ST_ERRLEN, "%s: out of memory", name);
		goto fail;
	}
	if (!r->max_record && st_max_record_env(&r->max_record, err))
		goto fail;
	r->max_values = MIN_VALUES + r->max_record / 256;
	if (is_stdin) {
		r->fd = 0;
	} else {
		r->fd = open(path, O_RDONLY);
		if (r->fd < 0) {
			snprintf(err, ST_ERRLEN, "%s: %s", path, strerror(errno));
			goto fail;
		}
		r->own_fd = true;
	}
	struct stat st;
	if (fstat(r->fd, &st) != 0) {
		snprintf(err, ST_ERRLEN, "%s: %s", name, strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, ST_ERRLEN, "%s: is a directory", name);
		goto fail;
	}
	if (S_ISREG(st.st_mode)) {
		off_t here = lseek(r->fd, 0, SEEK_CUR);
		if (here >= 0 && here <= st.st_size) {
			r->regular = true;
			r->input_end = (uint64_t)(st.st_size - here);
		}
	}
	enlarge_pipe(r->fd);
	sv *h = NULL;
	int rc = read_record(r, &h);
	if (rc == 1) {
		snprintf(err, ST_ERRLEN, "%s: empty input (no stream header)", r->name);
		goto fail;
	}
	if (rc) {
		memcpy(err, r->err, ST_ERRLEN);
		goto fail;
	}
	const char *type = sv_get_str(h, "type"), *format = sv_get_str(h, "format"), *bad;
	int64_t version;
	if (!type || strcmp(type, "header") != 0 || !format || strcmp(format, ST_FORMAT_NAME) != 0)
		snprintf(err, ST_ERRLEN, "%s: not a %s stream (first record is not its header)", r->name, ST_FORMAT_NAME);
	else if (!sv_get_int(h, "version", &version) || version < 1 || version > ST_FORMAT_VERSION)
		snprintf(err, ST_ERRLEN, "%s: header: unsupported format version (this reader knows %d)", r->name,
		         ST_FORMAT_VERSION);
	else if ((bad = bad_header(h)))
		snprintf(err, ST_ERRLEN, "%s: header: '%s' has the wrong type (see formats/stream.md)", r->name, bad);
	else {
		r->header = h;
		return r;
	}
	sv_free(h);
fail:
	st_reader_close(r);
	return NULL;
}

const sv *st_reader_header(const st_reader *r) { return r->header; }

const sv *st_reader_params(const st_reader *r)
{
	const sv *p = sv_get(r->header, "params");
	return p ? p : r->empty_params;
}

/* Keeps the largest payload buffer of the item the caller is done with. */
static void recycle(st_reader *r, st_item *it)
{
	for (size_t i = 0; i < it->ntensors; i++) {
		st_tensor *t = &it->tensors[i];
		if (t->data && t->nbytes >= DIRECT_READ && t->nbytes > r->spare_len) {
			free(r->spare);
			r->spare = t->data;
			r->spare_len = t->nbytes;
			t->data = NULL;
		}
	}
}

static const char *const end_keys[] = {"type", "count", NULL};

int st_reader_next(st_reader *r, st_item *it)
{
	if (r->failed)
		return ST_ERR_USAGE;
	if (r->done)
		return ST_END;
	recycle(r, it);
	st_item_clear(it);
	sv *rec = NULL;
	int rc = read_record(r, &rec);
	if (rc == 1)
		return fail(r, ST_ERR_TRUNCATED,
		            "truncated stream: input ends after %llu items without an end record (did the producer fail?)",
		            (unsigned long long)r->items);
	if (rc)
		return rc;
	const sv *tv = sv_get(rec, "type");
	const char *type = tv && tv->kind == SV_STR ? tv->u.str.ptr : NULL;
	if (type && strcmp(type, "item") == 0) {
		rc = parse_item(r, rec, it);
		r->cur_key = NULL;
		sv_free(rec);
		if (rc) {
			st_item_clear(it);
			return rc;
		}
		r->items++;
		return ST_OK;
	}
	if (type && strcmp(type, "end") == 0) {
		int64_t count;
		bool ok = sv_get_int(rec, "count", &count);
		const char *other = unknown_key(rec, end_keys);
		if (other) {
			rc = fail(r, ST_ERR_FORMAT, "unknown end record entry '%.100s'", other);
			sv_free(rec);
			return rc;
		}
		sv_free(rec);
		if (!ok)
			return fail(r, ST_ERR_FORMAT, "end record without an integer count");
		if (count < 0 || (uint64_t)count != r->items)
			return fail(r, ST_ERR_COUNT, "end record says %lld items but %llu were read", (long long)count,
			            (unsigned long long)r->items);
		rc = in_fill(r, 1);
		if (rc == 0)
			return fail(r, ST_ERR_FORMAT, "data after the end record (use stream-cat to join streams)");
		if (rc != 1)
			return rc;
		r->done = true;
		return ST_END;
	}
	if (type && strcmp(type, "header") == 0)
		rc = fail(r, ST_ERR_FORMAT, "a second header inside the stream (use stream-cat to join streams)");
	else if (!tv)
		rc = fail(r, ST_ERR_FORMAT, "record without a type");
	else if (!type)
		rc = fail(r, ST_ERR_FORMAT, "record type is not a string");
	else
		rc = fail(r, ST_ERR_FORMAT, "unknown record type '%.100s'", type);
	sv_free(rec);
	return rc;
}

const char *st_reader_error(const st_reader *r) { return r->err; }
const char *st_reader_name(const st_reader *r) { return r->name; }
uint64_t st_reader_items(const st_reader *r) { return r->items; }
uint64_t st_reader_offset(const st_reader *r) { return r->offset; }

void st_reader_close(st_reader *r)
{
	if (!r)
		return;
	if (r->own_fd)
		close(r->fd);
	free(r->name);
	free(r->buf);
	free(r->spare);
	sv_free(r->header);
	sv_free(r->empty_params);
	free(r);
}

/* ---------------- headers ---------------- */

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

/* ---------------- writing ---------------- */

#define OUT_BUFSIZE ((size_t)1 << 20)
/* Payloads this long skip the buffer: written straight from the tensor. */
#define DIRECT_WRITE ((size_t)64 << 10)

struct st_writer {
	int fd;
	atomic_file af;
	bool to_stdout;
	bool failed;            /* bytes may be missing: the stream is lost */
	int code;               /* the st_error of the last failure */
	char *name;
	unsigned char *buf;
	size_t len;
	uint64_t items;
	char err[ST_ERRLEN];
};

static int wfail(st_writer *w, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void wmessage(st_writer *w, const char *fmt, va_list ap)
{
	int k = snprintf(w->err, sizeof w->err, "%.200s: ", w->name);
	vsnprintf(w->err + k, sizeof w->err - (size_t)k, fmt, ap);
}

/* A failure after bytes of a record may have been written: the writer is done. */
static int wfail(st_writer *w, int code, const char *fmt, ...)
{
	if (!w->failed) {
		va_list ap;
		va_start(ap, fmt);
		wmessage(w, fmt, ap);
		va_end(ap);
		w->code = code;
	}
	w->failed = true;
	return w->code;
}

static int wrefuse(st_writer *w, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* An item refused before any of it was written: the writer stays usable. */
static int wrefuse(st_writer *w, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	wmessage(w, fmt, ap);
	va_end(ap);
	return code;
}

/* Writes the buffer, then (n > 0) the bytes at p, in as few system calls as the kernel allows. */
static int out_write(st_writer *w, const void *p, size_t n)
{
	struct iovec iov[2] = {{w->buf, w->len}, {(void *)p, n}};
	int first = 0;
	while (first < 2) {
		if (iov[first].iov_len == 0) {
			first++;
			continue;
		}
		ssize_t k = writev(w->fd, iov + first, 2 - first);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			w->len = 0;
			return wfail(w, ST_ERR_IO, "write error: %s", strerror(errno));
		}
		for (size_t done = (size_t)k; done > 0 && first < 2;) {
			size_t step = done < iov[first].iov_len ? done : iov[first].iov_len;
			iov[first].iov_base = (char *)iov[first].iov_base + step;
			iov[first].iov_len -= step;
			done -= step;
			if (iov[first].iov_len == 0)
				first++;
		}
	}
	w->len = 0;
	return 0;
}

static int out_bytes(st_writer *w, const void *p, size_t n)
{
	if (w->failed)
		return w->code;
	if (n >= DIRECT_WRITE)
		return out_write(w, p, n);
	if (w->len + n > OUT_BUFSIZE) {
		int rc = out_write(w, NULL, 0);
		if (rc)
			return rc;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	return 0;
}

/* msgpack's big-endian integers, in the shortest form as msgpack-c and Python write them */
static int out_be(st_writer *w, unsigned char tag, uint64_t v, int width)
{
	unsigned char b[9];
	b[0] = tag;
	for (int i = 0; i < width; i++)
		b[1 + i] = (unsigned char)(v >> (8 * (width - 1 - i)));
	return out_bytes(w, b, (size_t)width + 1);
}

static int pack_uint(st_writer *w, uint64_t v)
{
	if (v < 0x80)
		return out_be(w, (unsigned char)v, 0, 0);
	if (v <= UINT8_MAX)
		return out_be(w, 0xcc, v, 1);
	if (v <= UINT16_MAX)
		return out_be(w, 0xcd, v, 2);
	if (v <= UINT32_MAX)
		return out_be(w, 0xce, v, 4);
	return out_be(w, 0xcf, v, 8);
}

static int pack_int(st_writer *w, int64_t v)
{
	if (v >= 0)
		return pack_uint(w, (uint64_t)v);
	if (v >= -32)
		return out_be(w, (unsigned char)(0xe0 | (v + 32)), 0, 0);
	if (v >= INT8_MIN)
		return out_be(w, 0xd0, (uint64_t)v, 1);
	if (v >= INT16_MIN)
		return out_be(w, 0xd1, (uint64_t)v, 2);
	if (v >= INT32_MIN)
		return out_be(w, 0xd2, (uint64_t)v, 4);
	return out_be(w, 0xd3, (uint64_t)v, 8);
}

static int pack_double(st_writer *w, double x)
{
	uint64_t u;
	memcpy(&u, &x, 8);
	return out_be(w, 0xcb, u, 8);
}

/* fix, 8-, 16- and 32-bit length forms; tags[0] is the fix form's base (0 if none) */
static int pack_len(st_writer *w, size_t n, size_t fixmax, const unsigned char tags[4])
{
	if (tags[0] && n <= fixmax)
		return out_be(w, (unsigned char)(tags[0] | n), 0, 0);
	if (tags[1] && n <= UINT8_MAX)
		return out_be(w, tags[1], n, 1);
	if (n <= UINT16_MAX)
		return out_be(w, tags[2], n, 2);
	if (n <= UINT32_MAX)
		return out_be(w, tags[3], n, 4);
	return wfail(w, ST_ERR_LIMIT, "a value of %zu bytes or entries is beyond msgpack's 4 GiB limit", n);
}

static int pack_map(st_writer *w, size_t n) { return pack_len(w, n, 15, (const unsigned char[]){0x80, 0, 0xde, 0xdf}); }
static int pack_array(st_writer *w, size_t n) { return pack_len(w, n, 15, (const unsigned char[]){0x90, 0, 0xdc, 0xdd}); }

static int pack_bin(st_writer *w, const void *p, size_t n)
{
	return pack_len(w, n, 0, (const unsigned char[]){0, 0xc4, 0xc5, 0xc6}) || out_bytes(w, p, n) ? ST_ERR_IO : 0;
}

static int pack_strn(st_writer *w, const char *s, size_t n)
{
	if (!sv_utf8_valid(s, n))
		return wfail(w, ST_ERR_USAGE, "string '%.100s' is not valid UTF-8 (Python could not read the stream)", s);
	return pack_len(w, n, 31, (const unsigned char[]){0xa0, 0xd9, 0xda, 0xdb}) || out_bytes(w, s, n) ? ST_ERR_IO : 0;
}

static int pack_str(st_writer *w, const char *s) { return pack_strn(w, s, strlen(s)); }

/* a map key: non-empty, as the reader requires */
static int pack_key(st_writer *w, const char *s)
{
	return *s ? pack_str(w, s) : wfail(w, ST_ERR_USAGE, "empty map key");
}

/* msgpack_numpy spells ndarray keys as bytes */
static int pack_binkey(st_writer *w, const char *s) { return pack_bin(w, s, strlen(s)); }

static int pack_value(st_writer *w, const sv *v, int depth)
{
	if (depth > MAX_DEPTH)
		return wfail(w, ST_ERR_USAGE, "value nested deeper than %d levels", MAX_DEPTH);
	switch (v->kind) {
	case SV_NIL: return out_be(w, 0xc0, 0, 0);
	case SV_BOOL: return out_be(w, v->u.b ? 0xc3 : 0xc2, 0, 0);
	case SV_INT: return pack_int(w, v->u.i);
	case SV_FLOAT: return pack_double(w, v->u.f);
	case SV_STR: return pack_strn(w, v->u.str.ptr, v->u.str.len);
	case SV_BIN: return pack_bin(w, v->u.bin.ptr, v->u.bin.len);
	case SV_ARRAY:
		if (pack_array(w, v->u.arr.n))
			return ST_ERR_IO;
		for (size_t i = 0; i < v->u.arr.n; i++)
			if (pack_value(w, v->u.arr.items[i], depth + 1))
				return ST_ERR_IO;
		return 0;
	case SV_MAP:
		if (pack_map(w, v->u.map.n))
			return ST_ERR_IO;
		for (size_t i = 0; i < v->u.map.n; i++)
			if (pack_key(w, v->u.map.keys[i]) || pack_value(w, v->u.map.vals[i], depth + 1))
				return ST_ERR_IO;
		return 0;
	}
	return wfail(w, ST_ERR_USAGE, "unknown value kind %d", (int)v->kind);
}

st_writer *st_writer_open(const char *path, const sv *header, char *err)
{
	bool to_stdout = !path || strcmp(path, "-") == 0;
	const char *name = to_stdout ? "stdout" : path;
	st_writer *w = calloc(1, sizeof *w);
	if (!w || !(w->name = strdup(name)) || !(w->buf = malloc(OUT_BUFSIZE))) {
		snprintf(err, ST_ERRLEN, "%s: out of memory", name);
		if (w)
			free(w->name);
		free(w);
		return NULL;
	}
	w->to_stdout = to_stdout;
	const char *type = sv_get_str(header, "type"), *format = sv_get_str(header, "format");
	int64_t version;
	if (!header || header->kind != SV_MAP || !type || strcmp(type, "header") != 0 || !format ||
	    strcmp(format, ST_FORMAT_NAME) != 0 || !sv_get_int(header, "version", &version) ||
	    version != ST_FORMAT_VERSION) {
		snprintf(err, ST_ERRLEN, "%s: not a stream header (make it with st_header_new)", name);
		free(w->buf);
		free(w->name);
		free(w);
		return NULL;
	}
	if (to_stdout) {
		/* whatever stdio holds goes first; from here on the stream owns fd 1 */
		if (fflush(stdout) != 0) {
			snprintf(err, ST_ERRLEN, "stdout: %s", strerror(errno));
			st_writer_abort(w);
			return NULL;
		}
		w->fd = STDOUT_FILENO;
	} else {
		if (atomic_open(&w->af, path, err, ST_ERRLEN)) {
			free(w->buf);
			free(w->name);
			free(w);
			return NULL;
		}
		w->fd = fileno(w->af.f);
	}
	enlarge_pipe(w->fd);
	if (pack_value(w, header, 0)) {
		snprintf(err, ST_ERRLEN, "%s", w->err[0] ? w->err : "cannot write the header");
		st_writer_abort(w);
		return NULL;
	}
	return w;
}

static bool name_ok(const char *s) { return s && *s && sv_utf8_valid(s, strlen(s)); }

/* Everything the reader would refuse, found before a byte is written. */
static int check_item(st_writer *w, const st_item *it)
{
	unsigned long long n = (unsigned long long)w->items + 1;
	if (!name_ok(it->key))
		return wrefuse(w, ST_ERR_USAGE, "item %llu: the key is %s", n,
		               !it->key || !*it->key ? "empty" : "not valid UTF-8");
	for (size_t i = 0; i < it->ntensors; i++) {
		const st_tensor *t = &it->tensors[i];
		size_t nbytes;
		if (!name_ok(t->name))
			return wrefuse(w, ST_ERR_USAGE, "item %llu: key '%.100s': a tensor name is empty or not UTF-8", n, it->key);
		if (shape_bytes(t->dtype, t->ndim, t->shape, &nbytes) || nbytes != t->nbytes || (nbytes && !t->data))
			return wrefuse(w, ST_ERR_SHAPE, "item %llu: key '%.100s': tensor '%.100s': shape, dtype and size disagree",
			               n, it->key, t->name);
		if (nbytes > UINT32_MAX)
			return wrefuse(w, ST_ERR_LIMIT, "item %llu: key '%.100s': tensor '%.100s' is over msgpack's 4 GiB limit",
			               n, it->key, t->name);
		for (size_t j = 0; j < i; j++)
			if (strcmp(it->tensors[j].name, t->name) == 0)
				return wrefuse(w, ST_ERR_USAGE, "item %llu: key '%.100s': tensor '%.100s' twice", n, it->key, t->name);
	}
	const sv *f = it->fields;
	for (size_t i = 0; f && i < f->u.map.n; i++) {
		const sv *v = f->u.map.vals[i];
		if (!name_ok(f->u.map.keys[i]))
			return wrefuse(w, ST_ERR_USAGE, "item %llu: key '%.100s': a field name is empty or not UTF-8", n, it->key);
		if (v->kind == SV_BIN || v->kind == SV_ARRAY || v->kind == SV_MAP)
			return wrefuse(w, ST_ERR_USAGE, "item %llu: key '%.100s': field '%.100s' is not a scalar", n, it->key,
			               f->u.map.keys[i]);
		if (v->kind == SV_STR && !sv_utf8_valid(v->u.str.ptr, v->u.str.len))
			return wrefuse(w, ST_ERR_USAGE, "item %llu: key '%.100s': field '%.100s' is not valid UTF-8", n, it->key,
			               f->u.map.keys[i]);
	}
	return 0;
}

int st_writer_put(st_writer *w, const st_item *it)
{
	if (w->failed)
		return w->code;
	int rc = check_item(w, it);
	if (rc)
		return rc;
	bool has_fields = it->fields && it->fields->u.map.n > 0;
	int bad = pack_map(w, has_fields ? 4 : 3) || pack_key(w, "type") || pack_str(w, "item") || pack_key(w, "key") ||
	          pack_str(w, it->key) || pack_key(w, "tensors") || pack_map(w, it->ntensors);
	for (size_t i = 0; !bad && i < it->ntensors; i++) {
		const st_tensor *t = &it->tensors[i];
		bad = pack_key(w, t->name) || pack_map(w, 5) || pack_binkey(w, "nd") || out_be(w, 0xc3, 0, 0) ||
		      pack_binkey(w, "type") || pack_str(w, st_dtype_str(t->dtype)) || pack_binkey(w, "kind") ||
		      pack_bin(w, "", 0) || pack_binkey(w, "shape") || pack_array(w, (size_t)t->ndim);
		for (int d = 0; !bad && d < t->ndim; d++)
			bad = pack_int(w, t->shape[d]);
		bad = bad || pack_binkey(w, "data") || pack_bin(w, t->data, t->nbytes);
	}
	if (!bad && has_fields)
		bad = pack_key(w, "fields") || pack_value(w, it->fields, 1);
	if (bad)
		return w->code;
	w->items++;
	return ST_OK;
}

int st_writer_close(st_writer *w, char *err)
{
	int rc = ST_OK;
	if (!w->failed && (pack_map(w, 2) || pack_key(w, "type") || pack_str(w, "end") || pack_key(w, "count") ||
	                   pack_uint(w, w->items) || out_write(w, NULL, 0)))
		rc = ST_ERR_IO;
	if (w->failed)
		rc = w->code;
	if (w->to_stdout) {
		/* fd 1 stays open: main closes stdout and checks it */
	} else if (rc == ST_OK) {
		if (atomic_commit(&w->af, w->err, sizeof w->err))
			rc = w->code = ST_ERR_IO;
	} else {
		atomic_abort(&w->af);
	}
	if (rc != ST_OK && err)
		snprintf(err, ST_ERRLEN, "%s", w->err[0] ? w->err : "write error");
	free(w->buf);
	free(w->name);
	free(w);
	return rc;
}

void st_writer_abort(st_writer *w)
{
	if (!w)
		return;
	if (!w->to_stdout && w->af.tmp)
		atomic_abort(&w->af);
	free(w->buf);
	free(w->name);
	free(w);
}

const char *st_writer_error(const st_writer *w) { return w->err; }
uint64_t st_writer_items(const st_writer *w) { return w->items; }
