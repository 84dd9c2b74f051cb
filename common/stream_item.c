/* stream_item.c - dtypes, tensors and items (stream.h). */
#include "stream_impl.h"

#include <stdlib.h>
#include <string.h>

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
int st_shape_bytes_(st_dtype dtype, int ndim, const int64_t *shape, size_t *out)
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
st_tensor *st_append_tensor_(st_item *it, char *name, st_dtype dtype, int ndim, const int64_t *shape,
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
	if (!name || !*name || st_item_tensor(it, name) || st_shape_bytes_(dtype, ndim, shape, &nbytes))
		return NULL;
	char *n = strdup(name);
	return n ? st_append_tensor_(it, n, dtype, ndim, shape, nbytes, data) : NULL;
}

st_tensor *st_item_add_tensor(st_item *it, const char *name, st_dtype dtype, int ndim,
                              const int64_t *shape, const void *data)
{
	size_t nbytes;
	if (st_shape_bytes_(dtype, ndim, shape, &nbytes))
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

size_t st_key_from_path(const char *path, size_t len, const char **key)
{
	for (size_t i = len; i > 0; i--)
		if (path[i - 1] == '/') {
			len -= i;
			path += i;
			break;
		}
	for (size_t i = len; i > 1; i--)
		if (path[i - 1] == '.') {
			len = i - 1;
			break;
		}
	*key = path;
	return len;
}
