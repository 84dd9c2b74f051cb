/* mpack_read.c - the bounded msgpack decoder: input buffering, limits, bytes -> value tree (stream_impl.h). */
#include "stream_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mp_fail(st_reader *r, int code, const char *fmt, ...)
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
			return mp_fail(r, ST_ERR_IO, "read error: %s", strerror(errno));
	}
}

/* Ensures n (<= IN_BUFSIZE) bytes are buffered.  0, 1 at end of input, or an error. */
int mp_fill(st_reader *r, size_t n)
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
	return mp_fail(r, ST_ERR_TRUNCATED,
	            "truncated record (input ends at byte %llu, inside the record that starts at byte %llu)",
	            (unsigned long long)(r->offset + (r->end - r->pos)), (unsigned long long)r->record_start);
}

static int charge(st_reader *r, size_t n)
{
	if (n > r->budget)
		return mp_fail(r, ST_ERR_LIMIT,
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
			return mp_fail(r, ST_ERR_TRUNCATED,
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
		int rc = mp_fill(r, n);
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
	int rc = mp_fill(r, n);
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
		return mp_fail(r, ST_ERR_NOMEM, "out of memory for %zu bytes", len);
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
			return mp_fail(r, ST_ERR_NOMEM, "out of memory for %zu bytes", cap + extra);
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
			return mp_fail(r, ST_ERR_NOMEM, "out of memory for %zu bytes", cap + extra);
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
		return mp_fail(r, ST_ERR_LIMIT, "record holds more than %zu msgpack values (the limit for a %zu-byte record)",
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
		return mp_fail(r, ST_ERR_FORMAT, "string is not valid UTF-8 (byte %llu)", (unsigned long long)r->offset);
	}
	sv *v = sv_nil();
	if (!v) {
		free(s);
		return mp_fail(r, ST_ERR_NOMEM, "out of memory");
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
		return mp_fail(r, ST_ERR_NOMEM, "out of memory");
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
		return mp_fail(r, ST_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		sv *e = NULL;
		rc = parse_value(r, depth + 1, &e);
		if (rc || sv_push(a, e)) {
			sv_free(a);
			return rc ? rc : mp_fail(r, ST_ERR_NOMEM, "out of memory");
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
		return mp_fail(r, ST_ERR_FORMAT, "map key is not a string (msgpack type 0x%02x)", b);
	if ((rc = read_len(r, b, &len)))
		return rc;
	if (len == 0)
		return mp_fail(r, ST_ERR_FORMAT, "empty map key");
	char *k;
	if ((rc = read_payload(r, len, 1, "a map key", (void **)&k)))
		return rc;
	k[len] = '\0';
	const char *bad = memchr(k, '\0', len)            ? "contains a NUL byte"
	                  : is_str_byte(b) && !sv_utf8_valid(k, len) ? "is not valid UTF-8"
	                                                             : NULL;
	if (bad) {
		free(k);
		return mp_fail(r, ST_ERR_FORMAT, "map key %s", bad);
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
			return mp_fail(r, ST_ERR_NOMEM, "out of memory");
		memcpy(s, k, n * sizeof *s);
		qsort(s, n, sizeof *s, cmp_keys);
		for (size_t i = 1; i < n && !dup; i++)
			if (strcmp(s[i - 1], s[i]) == 0)
				dup = s[i];
		free(s);
	}
	return dup ? mp_fail(r, ST_ERR_FORMAT, "duplicate map key '%.100s'", dup) : 0;
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
		return mp_fail(r, ST_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < n && !rc; i++) {
		char *k = NULL;
		sv *v = NULL;
		if (!(rc = parse_key(r, &k)) && !(rc = parse_value(r, depth + 1, &v))) {
			/* so that an error later in the record can name it */
			if (depth == 0 && v->kind == SV_STR && strcmp(k, "type") == 0)
				r->in_end = strcmp(v->u.str.ptr, "end") == 0;
			if (sv_append_take(m, k, v))
				rc = mp_fail(r, ST_ERR_NOMEM, "out of memory");
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
		return mp_fail(r, ST_ERR_FORMAT, "nested deeper than %d levels", MAX_DEPTH);
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
				return mp_fail(r, ST_ERR_FORMAT, "integer %llu out of range (integers must fit in int64)",
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
			return mp_fail(r, ST_ERR_FORMAT, "unsupported msgpack type 0x%02x (ext types and 0xc1 are not part of the format)",
			            b);
		}
	if (!v)
		return mp_fail(r, ST_ERR_NOMEM, "out of memory");
	*out = v;
	return 0;
}

/* Reads one record map.  0, 1 at a clean end of input (between records), or an error. */
int mp_read_record(st_reader *r, sv **out)
{
	r->record_start = r->offset;
	r->in_end = false;
	r->budget = r->max_record;
	r->values_left = r->max_values;
	int rc = mp_fill(r, 1);
	if (rc)
		return rc;
	unsigned b = r->buf[r->pos];
	if ((b & 0xf0) != 0x80 && b != 0xde && b != 0xdf)
		return mp_fail(r, ST_ERR_FORMAT, "byte %llu: record is not a msgpack map (not a sertools stream?)",
		            (unsigned long long)r->offset);
	return parse_value(r, 0, out);
}
