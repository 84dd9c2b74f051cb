#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "atomic.h"
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

size_t st_dtype_size(st_dtype t) { return dtypes[t].size; }
const char *st_dtype_str(st_dtype t) { return dtypes[t].str; }

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
	while (it->fields && it->fields->u.map.n)
		sv_unset(it->fields, it->fields->u.map.keys[it->fields->u.map.n - 1]);
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

static int shape_bytes(st_dtype dtype, int ndim, const int64_t *shape, size_t *out)
{
	if (ndim < 0 || ndim > ST_MAX_DIMS)
		return -1;
	size_t n = dtypes[dtype].size;
	for (int d = 0; d < ndim; d++) {
		if (shape[d] < 0)
			return -1;
		if (shape[d] && n > SIZE_MAX / (size_t)shape[d])
			return -1;
		n *= (size_t)shape[d];
	}
	*out = n;
	return 0;
}

st_tensor *st_item_take_tensor(st_item *it, const char *name, st_dtype dtype, int ndim,
                               const int64_t *shape, void *data)
{
	size_t nbytes;
	if (st_item_tensor(it, name) || shape_bytes(dtype, ndim, shape, &nbytes))
		return NULL;
	if (it->ntensors == it->cap) {
		size_t ncap = it->cap ? it->cap * 2 : 4;
		st_tensor *nt = realloc(it->tensors, ncap * sizeof *nt);
		if (!nt)
			return NULL;
		it->tensors = nt;
		it->cap = ncap;
	}
	st_tensor *t = &it->tensors[it->ntensors];
	memset(t, 0, sizeof *t);
	t->name = strdup(name);
	if (!t->name)
		return NULL;
	t->dtype = dtype;
	t->ndim = ndim;
	for (int d = 0; d < ndim; d++)
		t->shape[d] = shape[d];
	t->data = data;
	t->nbytes = nbytes;
	it->ntensors++;
	return t;
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

#define IN_BUFSIZE (1u << 20)
#define MAX_DEPTH 16

struct st_reader {
	char *name;
	int fd;
	bool own_fd;
	unsigned char *buf;
	size_t pos, end;
	uint64_t offset;        /* bytes consumed */
	uint64_t record_start;
	size_t max_record;
	size_t budget;          /* bytes the current record may still use */
	unsigned flags;
	uint64_t items;
	bool done, failed;
	sv *header;
	sv *empty_params;
	char err[ST_ERRLEN];
};

static int fail(st_reader *r, int code, const char *fmt, ...)
{
	char msg[ST_ERRLEN - 160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (!r->header)
		snprintf(r->err, sizeof r->err, "%s: header: %s", r->name, msg);
	else
		snprintf(r->err, sizeof r->err, "%s: item %llu: %s", r->name, (unsigned long long)r->items + 1, msg);
	r->failed = true;
	return code;
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
		ssize_t got = read(r->fd, r->buf + r->end, IN_BUFSIZE - r->end);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return fail(r, ST_ERR_IO, "read error: %s", strerror(errno));
		}
		if (got == 0)
			return 1;
		r->end += (size_t)got;
	}
	return 0;
}

static int truncated(st_reader *r)
{
	return fail(r, ST_ERR_TRUNCATED, "truncated record (input ends at byte %llu, inside the record that starts at byte %llu)",
	            (unsigned long long)(r->offset + (r->end - r->pos)), (unsigned long long)r->record_start);
}

static int charge(st_reader *r, size_t n)
{
	if (n > r->budget)
		return fail(r, ST_ERR_LIMIT, "record larger than the limit of %zu bytes (set %s or --max-record to raise it)",
		            r->max_record, ST_MAX_RECORD_ENV);
	r->budget -= n;
	return 0;
}

static int in_bytes(st_reader *r, void *dst, size_t n)
{
	int rc = charge(r, n);
	if (rc)
		return rc;
	unsigned char *out = dst;
	size_t have = r->end - r->pos;
	size_t take = have < n ? have : n;
	memcpy(out, r->buf + r->pos, take);
	r->pos += take;
	r->offset += take;
	out += take;
	n -= take;
	/* large payloads go straight from the kernel into the tensor */
	while (n > 0) {
		ssize_t got = read(r->fd, out, n);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return fail(r, ST_ERR_IO, "read error: %s", strerror(errno));
		}
		if (got == 0)
			return truncated(r);
		out += got;
		n -= (size_t)got;
		r->offset += (uint64_t)got;
	}
	return 0;
}

static int in_uint(st_reader *r, int width, uint64_t *out)
{
	unsigned char b[8];
	int rc = in_fill(r, (size_t)width);
	if (rc == 1)
		return truncated(r);
	if (rc)
		return rc;
	if ((rc = in_bytes(r, b, (size_t)width)))
		return rc;
	uint64_t v = 0;
	for (int i = 0; i < width; i++)
		v = v << 8 | b[i];
	*out = v;
	return 0;
}

static int parse_value(st_reader *r, int depth, sv **out);

static int parse_str(st_reader *r, size_t len, sv **out)
{
	int rc = charge(r, len);
	if (rc)
		return rc;
	r->budget += len; /* in_bytes charges again */
	char *s = malloc(len + 1);
	if (!s)
		return fail(r, ST_ERR_NOMEM, "out of memory");
	if ((rc = in_bytes(r, s, len))) {
		free(s);
		return rc;
	}
	s[len] = '\0';
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
	int rc = charge(r, len);
	if (rc)
		return rc;
	r->budget += len;
	void *p = sv_aligned_alloc(len);
	if (!p)
		return fail(r, ST_ERR_NOMEM, "out of memory for %zu bytes", len);
	if ((rc = in_bytes(r, p, len))) {
		free(p);
		return rc;
	}
	*out = sv_bin_take(p, len);
	if (!*out) {
		free(p);
		return fail(r, ST_ERR_NOMEM, "out of memory");
	}
	return 0;
}

static int parse_array(st_reader *r, size_t n, int depth, sv **out)
{
	/* every element takes at least one byte: a count beyond the budget is a lie */
	if (n > r->budget)
		return charge(r, n);
	sv *a = sv_array();
	if (!a)
		return fail(r, ST_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		sv *e = NULL;
		int rc = parse_value(r, depth + 1, &e);
		if (rc || sv_push(a, e)) {
			sv_free(a);
			return rc ? rc : fail(r, ST_ERR_NOMEM, "out of memory");
		}
	}
	*out = a;
	return 0;
}

static int parse_map(st_reader *r, size_t n, int depth, sv **out)
{
	if (n > r->budget / 2)
		return charge(r, n * 2);
	sv *m = sv_map();
	if (!m)
		return fail(r, ST_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		sv *k = NULL, *v = NULL;
		int rc = parse_value(r, depth + 1, &k);
		if (!rc && k->kind != SV_STR && k->kind != SV_BIN)
			rc = fail(r, ST_ERR_FORMAT, "map key is not a string");
		const char *kp = NULL;
		size_t klen = 0;
		if (!rc) {
			kp = k->kind == SV_STR ? k->u.str.ptr : k->u.bin.ptr;
			klen = k->kind == SV_STR ? k->u.str.len : k->u.bin.len;
			if (memchr(kp, '\0', klen))
				rc = fail(r, ST_ERR_FORMAT, "map key contains a NUL byte");
		}
		char key[256];
		if (!rc && klen >= sizeof key)
			rc = fail(r, ST_ERR_FORMAT, "map key longer than %zu bytes", sizeof key - 1);
		if (!rc) {
			memcpy(key, kp, klen);
			key[klen] = '\0';
			if (sv_get(m, key))
				rc = fail(r, ST_ERR_FORMAT, "duplicate map key '%s'", key);
		}
		if (!rc)
			rc = parse_value(r, depth + 1, &v);
		if (!rc && sv_set(m, key, v))
			rc = fail(r, ST_ERR_NOMEM, "out of memory");
		sv_free(k);
		if (rc) {
			sv_free(m);
			return rc;
		}
	}
	*out = m;
	return 0;
}

static int parse_value(st_reader *r, int depth, sv **out)
{
	if (depth > MAX_DEPTH)
		return fail(r, ST_ERR_FORMAT, "nested deeper than %d levels", MAX_DEPTH);
	uint64_t b = 0, n = 0;
	int rc = in_uint(r, 1, &b);
	if (rc)
		return rc;
	sv *v = NULL;
	if (b <= 0x7f)
		v = sv_int((int64_t)b);
	else if (b >= 0xe0)
		v = sv_int((int64_t)b - 256);
	else if (b >= 0x80 && b <= 0x8f)
		return parse_map(r, b & 0x0f, depth, out);
	else if (b >= 0x90 && b <= 0x9f)
		return parse_array(r, b & 0x0f, depth, out);
	else if (b >= 0xa0 && b <= 0xbf)
		return parse_str(r, b & 0x1f, out);
	else
		switch (b) {
		case 0xc0: v = sv_nil(); break;
		case 0xc2: v = sv_bool(false); break;
		case 0xc3: v = sv_bool(true); break;
		case 0xc4: case 0xc5: case 0xc6:
			if ((rc = in_uint(r, 1 << (b - 0xc4), &n)))
				return rc;
			return parse_bin(r, (size_t)n, out);
		case 0xd9: case 0xda: case 0xdb:
			if ((rc = in_uint(r, 1 << (b - 0xd9), &n)))
				return rc;
			return parse_str(r, (size_t)n, out);
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
			if ((rc = in_uint(r, 1 << (b - 0xcc), &n)))
				return rc;
			if (n > INT64_MAX)
				return fail(r, ST_ERR_FORMAT, "integer %llu out of range", (unsigned long long)n);
			v = sv_int((int64_t)n);
			break;
		case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
			int w = 1 << (b - 0xd0);
			if ((rc = in_uint(r, w, &n)))
				return rc;
			int64_t s = w == 8 ? (int64_t)n : (int64_t)(n ^ (1ull << (8 * w - 1))) - (int64_t)(1ull << (8 * w - 1));
			v = sv_int(s);
			break;
		}
		default:
			return fail(r, ST_ERR_FORMAT, "unsupported msgpack type 0x%02x (ext types and 0xc1 are not part of the format)",
			            (unsigned)b);
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
	r->budget = r->max_record;
	int rc = in_fill(r, 1);
	if (rc)
		return rc;
	if ((r->buf[r->pos] & 0xf0) != 0x80 && r->buf[r->pos] != 0xde && r->buf[r->pos] != 0xdf)
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

static int check_finite(st_reader *r, const st_tensor *t)
{
	size_t n = st_tensor_numel(t);
	if (t->dtype == ST_F32) {
		const float *p = t->data;
		for (size_t i = 0; i < n; i++)
			if (!isfinite(p[i]))
				return fail(r, ST_ERR_NONFINITE, "tensor '%s': non-finite value %g at index %zu", t->name, p[i], i);
	} else if (t->dtype == ST_F64) {
		const double *p = t->data;
		for (size_t i = 0; i < n; i++)
			if (!isfinite(p[i]))
				return fail(r, ST_ERR_NONFINITE, "tensor '%s': non-finite value %g at index %zu", t->name, p[i], i);
	}
	return 0;
}

static int take_tensor(st_reader *r, st_item *it, const char *name, sv *nd)
{
	char buf[32];
	if (!nd || nd->kind != SV_MAP)
		return fail(r, ST_ERR_FORMAT, "tensor '%s' is not an ndarray map", name);
	sv *is_nd = sv_get(nd, "nd");
	if (!is_nd || is_nd->kind != SV_BOOL || !is_nd->u.b)
		return fail(r, ST_ERR_FORMAT, "tensor '%s' is not an ndarray map (no nd: true)", name);
	const sv *kind = sv_get(nd, "kind");
	if (kind && !sv_is_bytes(kind, ""))
		return fail(r, ST_ERR_DTYPE, "tensor '%s': refused ndarray kind (object, pickle and structured arrays are not accepted)", name);
	const char *ts = sv_bytes_cstr(sv_get(nd, "type"), buf, sizeof buf);
	st_dtype dtype;
	if (!ts)
		return fail(r, ST_ERR_DTYPE, "tensor '%s': missing or non-string dtype", name);
	if (st_dtype_parse(ts, &dtype))
		return fail(r, ST_ERR_DTYPE, "tensor '%s': unsupported dtype '%s' (supported: <f4 <f8 <i4 <i8 |u1)", name, ts);
	const sv *shape = sv_get(nd, "shape");
	if (!shape || shape->kind != SV_ARRAY)
		return fail(r, ST_ERR_SHAPE, "tensor '%s': missing shape", name);
	if (shape->u.arr.n > ST_MAX_DIMS)
		return fail(r, ST_ERR_SHAPE, "tensor '%s': %zu dimensions (at most %d)", name, shape->u.arr.n, ST_MAX_DIMS);
	int64_t dims[ST_MAX_DIMS];
	for (size_t d = 0; d < shape->u.arr.n; d++) {
		const sv *e = shape->u.arr.items[d];
		if (e->kind != SV_INT || e->u.i < 0)
			return fail(r, ST_ERR_SHAPE, "tensor '%s': dimension %zu is not a non-negative integer", name, d);
		dims[d] = e->u.i;
	}
	size_t want;
	if (shape_bytes(dtype, (int)shape->u.arr.n, dims, &want))
		return fail(r, ST_ERR_SHAPE, "tensor '%s': shape overflows", name);
	sv *data = sv_get(nd, "data");
	if (!data || data->kind != SV_BIN)
		return fail(r, ST_ERR_FORMAT, "tensor '%s': missing binary data", name);
	if (data->u.bin.len != want)
		return fail(r, ST_ERR_SHAPE, "tensor '%s': shape x dtype is %zu bytes but data has %zu", name, want,
		            data->u.bin.len);
	st_tensor *t = st_item_take_tensor(it, name, dtype, (int)shape->u.arr.n, dims, data->u.bin.ptr);
	if (!t)
		return fail(r, ST_ERR_NOMEM, "out of memory");
	data->u.bin.ptr = NULL; /* the tensor owns it now */
	data->u.bin.len = 0;
	if (r->flags & ST_READ_FINITE)
		return check_finite(r, t);
	return 0;
}

/* A field: a scalar, or a numpy scalar as msgpack_numpy writes it. */
static int take_field(st_reader *r, st_item *it, const char *name, sv *v)
{
	char buf[32];
	sv *val = NULL;
	if (v->kind == SV_MAP) {
		const sv *is_nd = sv_get(v, "nd");
		const char *ts = sv_bytes_cstr(sv_get(v, "type"), buf, sizeof buf);
		const sv *data = sv_get(v, "data");
		st_dtype dt;
		if (!is_nd || is_nd->kind != SV_BOOL || is_nd->u.b || !ts || st_dtype_parse(ts, &dt) || !data ||
		    data->kind != SV_BIN || data->u.bin.len != st_dtype_size(dt))
			return fail(r, ST_ERR_FORMAT, "field '%s' is not a scalar", name);
		const void *p = data->u.bin.ptr;
		switch (dt) {
		case ST_F32: { float x; memcpy(&x, p, 4); val = sv_float(x); break; }
		case ST_F64: { double x; memcpy(&x, p, 8); val = sv_float(x); break; }
		case ST_I32: { int32_t x; memcpy(&x, p, 4); val = sv_int(x); break; }
		case ST_I64: { int64_t x; memcpy(&x, p, 8); val = sv_int(x); break; }
		case ST_U8: val = sv_int(*(const unsigned char *)p); break;
		}
	} else if (v->kind == SV_ARRAY || v->kind == SV_BIN) {
		return fail(r, ST_ERR_FORMAT, "field '%s' is not a scalar (put arrays in tensors)", name);
	} else {
		val = sv_copy(v);
	}
	if (!val || st_item_set_field(it, name, val))
		return fail(r, ST_ERR_NOMEM, "out of memory");
	return 0;
}

static int parse_item(st_reader *r, sv *rec, st_item *it)
{
	const sv *key = sv_get(rec, "key");
	if (!key || key->kind != SV_STR || key->u.str.len == 0 || memchr(key->u.str.ptr, 0, key->u.str.len))
		return fail(r, ST_ERR_FORMAT, "item has no key (a non-empty string)");
	if (st_item_set_key(it, key->u.str.ptr))
		return fail(r, ST_ERR_NOMEM, "out of memory");
	sv *tensors = sv_get(rec, "tensors");
	if (tensors && tensors->kind != SV_MAP)
		return fail(r, ST_ERR_FORMAT, "item '%s': tensors is not a map", it->key);
	for (size_t i = 0; tensors && i < tensors->u.map.n; i++) {
		int rc = take_tensor(r, it, tensors->u.map.keys[i], tensors->u.map.vals[i]);
		if (rc) {
			char msg[ST_ERRLEN];
			snprintf(msg, sizeof msg, "%s", r->err);
			/* name the key too: it is what a user greps for */
			const char *tail = strstr(msg, ": tensor");
			if (tail)
				snprintf(r->err, sizeof r->err, "%.*s: key '%s'%s", (int)(tail - msg), msg, it->key, tail);
			return rc;
		}
	}
	sv *fields = sv_get(rec, "fields");
	if (fields && fields->kind != SV_MAP)
		return fail(r, ST_ERR_FORMAT, "item '%s': fields is not a map", it->key);
	for (size_t i = 0; fields && i < fields->u.map.n; i++) {
		int rc = take_field(r, it, fields->u.map.keys[i], fields->u.map.vals[i]);
		if (rc)
			return rc;
	}
	return 0;
}

size_t st_max_record_from_env(void)
{
	const char *s = getenv(ST_MAX_RECORD_ENV);
	if (!s || !*s)
		return ST_DEFAULT_MAX_RECORD;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned long long mul = 1;
	if (*end == 'K' || *end == 'k')
		mul = 1ull << 10, end++;
	else if (*end == 'M' || *end == 'm')
		mul = 1ull << 20, end++;
	else if (*end == 'G' || *end == 'g')
		mul = 1ull << 30, end++;
	if (errno || *end || v == 0 || v > SIZE_MAX / mul)
		return ST_DEFAULT_MAX_RECORD;
	return (size_t)(v * mul);
}

st_reader *st_reader_open(const char *path, size_t max_record, unsigned flags, char *err)
{
	bool is_stdin = !path || strcmp(path, "-") == 0;
	st_reader *r = calloc(1, sizeof *r);
	if (!r) {
		snprintf(err, ST_ERRLEN, "%s: out of memory", is_stdin ? "stdin" : path);
		return NULL;
	}
	r->name = strdup(is_stdin ? "stdin" : path);
	r->buf = malloc(IN_BUFSIZE);
	r->empty_params = sv_map();
	r->max_record = max_record ? max_record : st_max_record_from_env();
	r->flags = flags;
	if (!r->name || !r->buf || !r->empty_params) {
		snprintf(err, ST_ERRLEN, "%s: out of memory", is_stdin ? "stdin" : path);
		goto fail;
	}
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
	const char *type = sv_get_str(h, "type"), *format = sv_get_str(h, "format");
	int64_t version;
	if (!type || strcmp(type, "header") != 0 || !format || strcmp(format, ST_FORMAT_NAME) != 0) {
		snprintf(err, ST_ERRLEN, "%s: not a %s stream (first record is not its header)", r->name, ST_FORMAT_NAME);
		sv_free(h);
		goto fail;
	}
	if (!sv_get_int(h, "version", &version) || version < 1 || version > ST_FORMAT_VERSION) {
		snprintf(err, ST_ERRLEN, "%s: header: unsupported format version (this reader knows %d)", r->name,
		         ST_FORMAT_VERSION);
		sv_free(h);
		goto fail;
	}
	const sv *params = sv_get(h, "params");
	if (params && params->kind != SV_MAP) {
		snprintf(err, ST_ERRLEN, "%s: header: params is not a map", r->name);
		sv_free(h);
		goto fail;
	}
	r->header = h;
	return r;
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

int st_reader_next(st_reader *r, st_item *it)
{
	if (r->failed)
		return ST_ERR_USAGE;
	if (r->done)
		return ST_END;
	st_item_clear(it);
	sv *rec = NULL;
	int rc = read_record(r, &rec);
	if (rc == 1)
		return fail(r, ST_ERR_TRUNCATED, "truncated stream: input ends after %llu items without an end record (did the producer fail?)",
		            (unsigned long long)r->items);
	if (rc)
		return rc;
	const char *type = sv_get_str(rec, "type");
	if (type && strcmp(type, "item") == 0) {
		rc = parse_item(r, rec, it);
		sv_free(rec);
		if (rc)
			return rc;
		r->items++;
		return ST_OK;
	}
	if (type && strcmp(type, "end") == 0) {
		int64_t count;
		bool ok = sv_get_int(rec, "count", &count);
		sv_free(rec);
		if (!ok)
			return fail(r, ST_ERR_FORMAT, "end record without a count");
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
	sv_free(rec);
	if (type && strcmp(type, "header") == 0)
		return fail(r, ST_ERR_FORMAT, "a second header inside the stream (use stream-cat to join streams)");
	return fail(r, ST_ERR_FORMAT, "unknown record type '%s'", type ? type : "(none)");
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
	if (p && sv_set(h, "params", sv_copy(p)))
		goto fail;
	if (stats && sv_set(h, "stats", sv_copy(stats)))
		goto fail;
	sv *nh = sv_get(h, "history");
	if (hist && hist->kind == SV_ARRAY)
		for (size_t i = 0; i < hist->u.arr.n; i++)
			if (sv_push(nh, sv_copy(hist->u.arr.items[i])))
				goto fail;
	sv *entry = sv_map();
	const char *keys[] = {"producer", "producer_version", "argv"};
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

struct st_writer {
	FILE *f;
	atomic_file af;
	bool to_stdout;
	bool failed;
	char *name;
	msgpack_packer pk;
	uint64_t items;
	char err[ST_ERRLEN];
};

static int write_cb(void *data, const char *buf, size_t len)
{
	st_writer *w = data;
	if (w->failed)
		return -1;
	if (len && fwrite(buf, 1, len, w->f) != len) {
		snprintf(w->err, sizeof w->err, "%s: write error: %s", w->name, strerror(errno));
		w->failed = true;
		return -1;
	}
	return 0;
}

static int pack_key(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	return msgpack_pack_str_with_body(pk, s, n);
}

/* msgpack_numpy spells ndarray keys as bytes */
static int pack_binkey(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	return msgpack_pack_bin_with_body(pk, s, n);
}

static int pack_value(msgpack_packer *pk, const sv *v)
{
	switch (v->kind) {
	case SV_NIL: return msgpack_pack_nil(pk);
	case SV_BOOL: return v->u.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	case SV_INT: return msgpack_pack_int64(pk, v->u.i);
	case SV_FLOAT: return msgpack_pack_double(pk, v->u.f);
	case SV_STR: return msgpack_pack_str_with_body(pk, v->u.str.ptr, v->u.str.len);
	case SV_BIN: return msgpack_pack_bin_with_body(pk, v->u.bin.ptr, v->u.bin.len);
	case SV_ARRAY:
		if (msgpack_pack_array(pk, v->u.arr.n))
			return -1;
		for (size_t i = 0; i < v->u.arr.n; i++)
			if (pack_value(pk, v->u.arr.items[i]))
				return -1;
		return 0;
	case SV_MAP:
		if (msgpack_pack_map(pk, v->u.map.n))
			return -1;
		for (size_t i = 0; i < v->u.map.n; i++)
			if (pack_key(pk, v->u.map.keys[i]) || pack_value(pk, v->u.map.vals[i]))
				return -1;
		return 0;
	}
	return -1;
}

static int wfail(st_writer *w, int code, const char *msg)
{
	if (!w->failed || !w->err[0])
		snprintf(w->err, sizeof w->err, "%s: %s", w->name, msg);
	w->failed = true;
	return code;
}

st_writer *st_writer_open(const char *path, const sv *header, char *err)
{
	st_writer *w = calloc(1, sizeof *w);
	bool to_stdout = !path || strcmp(path, "-") == 0;
	if (!w || !(w->name = strdup(to_stdout ? "stdout" : path))) {
		snprintf(err, ST_ERRLEN, "%s: out of memory", to_stdout ? "stdout" : path);
		free(w);
		return NULL;
	}
	w->to_stdout = to_stdout;
	if (to_stdout) {
		w->f = stdout;
	} else {
		if (atomic_open(&w->af, path, err, ST_ERRLEN)) {
			free(w->name);
			free(w);
			return NULL;
		}
		w->f = w->af.f;
	}
	msgpack_packer_init(&w->pk, w, write_cb);
	if (pack_value(&w->pk, header)) {
		snprintf(err, ST_ERRLEN, "%s", w->err[0] ? w->err : "cannot write the header");
		st_writer_abort(w);
		return NULL;
	}
	return w;
}

int st_writer_put(st_writer *w, const st_item *it)
{
	if (w->failed)
		return ST_ERR_IO;
	if (!it->key || !*it->key)
		return wfail(w, ST_ERR_USAGE, "item without a key");
	msgpack_packer *pk = &w->pk;
	bool has_fields = it->fields && it->fields->u.map.n > 0;
	int bad = msgpack_pack_map(pk, has_fields ? 4 : 3) || pack_key(pk, "type") || pack_key(pk, "item") ||
	          pack_key(pk, "key") || pack_key(pk, it->key) || pack_key(pk, "tensors") ||
	          msgpack_pack_map(pk, it->ntensors);
	for (size_t i = 0; !bad && i < it->ntensors; i++) {
		const st_tensor *t = &it->tensors[i];
		bad = pack_key(pk, t->name) || msgpack_pack_map(pk, 5) || pack_binkey(pk, "nd") || msgpack_pack_true(pk) ||
		      pack_binkey(pk, "type") || pack_key(pk, st_dtype_str(t->dtype)) || pack_binkey(pk, "kind") ||
		      msgpack_pack_bin(pk, 0) || pack_binkey(pk, "shape") || msgpack_pack_array(pk, (size_t)t->ndim);
		for (int d = 0; !bad && d < t->ndim; d++)
			bad = msgpack_pack_int64(pk, t->shape[d]);
		bad = bad || pack_binkey(pk, "data") || msgpack_pack_bin_with_body(pk, t->data, t->nbytes);
	}
	if (!bad && has_fields)
		bad = pack_key(pk, "fields") || pack_value(pk, it->fields);
	if (bad)
		return wfail(w, ST_ERR_IO, "write error");
	w->items++;
	return ST_OK;
}

int st_writer_close(st_writer *w, char *err)
{
	int rc = ST_OK;
	msgpack_packer *pk = &w->pk;
	if (!w->failed && (msgpack_pack_map(pk, 2) || pack_key(pk, "type") || pack_key(pk, "end") ||
	                   pack_key(pk, "count") || msgpack_pack_uint64(pk, w->items)))
		rc = wfail(w, ST_ERR_IO, "write error");
	if (w->failed)
		rc = ST_ERR_IO;
	if (w->to_stdout) {
		if (fflush(stdout) != 0 && rc == ST_OK)
			rc = wfail(w, ST_ERR_IO, strerror(errno));
	} else if (rc == ST_OK) {
		if (atomic_commit(&w->af, w->err, sizeof w->err))
			rc = ST_ERR_IO;
	} else {
		atomic_abort(&w->af);
	}
	if (rc != ST_OK && err)
		snprintf(err, ST_ERRLEN, "%s", w->err[0] ? w->err : "write error");
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
	free(w->name);
	free(w);
}

const char *st_writer_error(const st_writer *w) { return w->err; }
uint64_t st_writer_items(const st_writer *w) { return w->items; }
