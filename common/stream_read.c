/* stream_read.c - records into items, the header check, the reader (stream.h). */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include "stream_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

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
			return mp_fail(r, ST_ERR_NONFINITE, "tensor '%s': non-finite value %g at index %zu", t->name, x, i);
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
		return mp_fail(r, ST_ERR_FORMAT, "tensor '%s' is not an ndarray map", tn);
	const sv *is_nd = sv_get(nd, "nd");
	if (!is_nd || is_nd->kind != SV_BOOL || !is_nd->u.b)
		return mp_fail(r, ST_ERR_FORMAT, "tensor '%s' is not an ndarray map (no nd: true)", tn);
	const sv *kind = sv_get(nd, "kind");
	if (kind && !sv_is_bytes(kind, ""))
		return mp_fail(r, ST_ERR_DTYPE,
		            "tensor '%s': refused ndarray kind (object, pickle and structured arrays are not accepted)", tn);
	const char *other = unknown_key(nd, ndarray_keys);
	if (other)
		return mp_fail(r, ST_ERR_FORMAT, "tensor '%s': unknown ndarray entry '%.100s'", tn, other);
	const char *ts = sv_bytes_cstr(sv_get(nd, "type"), buf, sizeof buf);
	st_dtype dtype;
	if (!ts)
		return mp_fail(r, ST_ERR_DTYPE, "tensor '%s': missing or non-string dtype", tn);
	if (st_dtype_parse(ts, &dtype))
		return mp_fail(r, ST_ERR_DTYPE, "tensor '%s': unsupported dtype '%.20s' (supported: <f4 <f8 <i4 <i8 |u1)", tn,
		            ts);
	const sv *shape = sv_get(nd, "shape");
	if (!shape || shape->kind != SV_ARRAY)
		return mp_fail(r, ST_ERR_SHAPE, "tensor '%s': shape is %s", tn, shape ? "not an array" : "missing");
	if (shape->u.arr.n > ST_MAX_DIMS)
		return mp_fail(r, ST_ERR_SHAPE, "tensor '%s': %zu dimensions (at most %d)", tn, shape->u.arr.n, ST_MAX_DIMS);
	int64_t dims[ST_MAX_DIMS];
	for (size_t d = 0; d < shape->u.arr.n; d++) {
		const sv *e = shape->u.arr.items[d];
		if (e->kind != SV_INT || e->u.i < 0)
			return mp_fail(r, ST_ERR_SHAPE, "tensor '%s': dimension %zu is not a non-negative integer", tn, d);
		dims[d] = e->u.i;
	}
	size_t want;
	if (st_shape_bytes_(dtype, (int)shape->u.arr.n, dims, &want))
		return mp_fail(r, ST_ERR_SHAPE, "tensor '%s': shape overflows", tn);
	sv *data = sv_get(nd, "data");
	if (!data || data->kind != SV_BIN)
		return mp_fail(r, ST_ERR_FORMAT, "tensor '%s': data is %s", tn, data ? "not binary" : "missing");
	if (data->u.bin.len != want)
		return mp_fail(r, ST_ERR_SHAPE, "tensor '%s': shape x dtype is %zu bytes but data has %zu", tn, want,
		            data->u.bin.len);
	/* the record's map guarantees the name is unique */
	st_tensor *t = st_append_tensor_(it, *name, dtype, (int)shape->u.arr.n, dims, want, data->u.bin.ptr);
	*name = NULL;
	if (!t)
		return mp_fail(r, ST_ERR_NOMEM, "out of memory");
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
			return mp_fail(r, ST_ERR_FORMAT,
			            "field '%s' is not a scalar (nil, bool, int, float, str, or a numpy scalar of dtype |b1 %s)",
			            *name, "<f4 <f8 <i4 <i8 |u1");
	} else if (val->kind == SV_ARRAY || val->kind == SV_BIN) {
		return mp_fail(r, ST_ERR_FORMAT, "field '%s' is not a scalar (put arrays in tensors)", *name);
	} else {
		*v = NULL;
	}
	int rc = sv_append_take(it->fields, *name, val);
	*name = NULL;
	return rc ? mp_fail(r, ST_ERR_NOMEM, "out of memory") : 0;
}

static const char *const item_keys[] = {"type", "key", "tensors", "fields", NULL};

static int parse_item(st_reader *r, sv *rec, st_item *it)
{
	const sv *key = sv_get(rec, "key");
	if (!key || key->kind != SV_STR || key->u.str.len == 0 || memchr(key->u.str.ptr, 0, key->u.str.len))
		return mp_fail(r, ST_ERR_FORMAT, "item has no key (a non-empty string)");
	r->cur_key = key->u.str.ptr;
	const char *other = unknown_key(rec, item_keys);
	if (other)
		return mp_fail(r, ST_ERR_FORMAT, "unknown item entry '%.100s' (an item has key, tensors, fields)", other);
	if (st_item_set_key(it, key->u.str.ptr))
		return mp_fail(r, ST_ERR_NOMEM, "out of memory");
	sv *tensors = sv_get(rec, "tensors");
	if (!tensors || tensors->kind != SV_MAP)
		return mp_fail(r, ST_ERR_FORMAT, "tensors is %s", tensors ? "not a map" : "missing");
	for (size_t i = 0; i < tensors->u.map.n; i++) {
		int rc = take_tensor(r, it, &tensors->u.map.keys[i], tensors->u.map.vals[i]);
		if (rc)
			return rc;
	}
	sv *fields = sv_get(rec, "fields");
	if (fields && fields->kind != SV_MAP)
		return mp_fail(r, ST_ERR_FORMAT, "fields is not a map");
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

/* A 64 KiB pipe holds a sixth of a 6 s waveform item: with bigger pipe
 * buffers the stages of a pipeline run ahead instead of waking each other
 * per 64 KiB.  Best effort: files, terminals and old kernels stay as they are. */
void st_pipe_enlarge(int fd)
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
		goto mp_fail;
	}
	if (!r->max_record && st_max_record_env(&r->max_record, err))
		goto mp_fail;
	r->max_values = MIN_VALUES + r->max_record / 256;
	if (is_stdin) {
		r->fd = 0;
	} else {
		r->fd = open(path, O_RDONLY);
		if (r->fd < 0) {
			snprintf(err, ST_ERRLEN, "%s: %s", path, strerror(errno));
			goto mp_fail;
		}
		r->own_fd = true;
	}
	struct stat st;
	if (fstat(r->fd, &st) != 0) {
		snprintf(err, ST_ERRLEN, "%s: %s", name, strerror(errno));
		goto mp_fail;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, ST_ERRLEN, "%s: is a directory", name);
		goto mp_fail;
	}
	if (S_ISREG(st.st_mode)) {
		off_t here = lseek(r->fd, 0, SEEK_CUR);
		if (here >= 0 && here <= st.st_size) {
			r->regular = true;
			r->input_end = (uint64_t)(st.st_size - here);
		}
	}
	st_pipe_enlarge(r->fd);
	sv *h = NULL;
	int rc = mp_read_record(r, &h);
	if (rc == 1) {
		snprintf(err, ST_ERRLEN, "%s: empty input (no stream header)", r->name);
		goto mp_fail;
	}
	if (rc) {
		memcpy(err, r->err, ST_ERRLEN);
		goto mp_fail;
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
mp_fail:
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
	int rc = mp_read_record(r, &rec);
	if (rc == 1)
		return mp_fail(r, ST_ERR_TRUNCATED,
		            "truncated stream: input ends after %llu items without an end record (did the producer mp_fail?)",
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
			rc = mp_fail(r, ST_ERR_FORMAT, "unknown end record entry '%.100s'", other);
			sv_free(rec);
			return rc;
		}
		sv_free(rec);
		if (!ok)
			return mp_fail(r, ST_ERR_FORMAT, "end record without an integer count");
		if (count < 0 || (uint64_t)count != r->items)
			return mp_fail(r, ST_ERR_COUNT, "end record says %lld items but %llu were read", (long long)count,
			            (unsigned long long)r->items);
		rc = mp_fill(r, 1);
		if (rc == 0)
			return mp_fail(r, ST_ERR_FORMAT, "data after the end record (use stream-cat to join streams)");
		if (rc != 1)
			return rc;
		r->done = true;
		return ST_END;
	}
	if (type && strcmp(type, "header") == 0)
		rc = mp_fail(r, ST_ERR_FORMAT, "a second header inside the stream (use stream-cat to join streams)");
	else if (!tv)
		rc = mp_fail(r, ST_ERR_FORMAT, "record without a type");
	else if (!type)
		rc = mp_fail(r, ST_ERR_FORMAT, "record type is not a string");
	else
		rc = mp_fail(r, ST_ERR_FORMAT, "unknown record type '%.100s'", type);
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
