/* stream_write.c - the writer: header, items, end record, atomic file output (stream.h). */
#include "stream_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	st_pipe_enlarge(w->fd);
	if (mp_pack_value(w, header, 0)) {
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
		return mp_wrefuse(w, ST_ERR_USAGE, "item %llu: the key is %s", n,
		               !it->key || !*it->key ? "empty" : "not valid UTF-8");
	for (size_t i = 0; i < it->ntensors; i++) {
		const st_tensor *t = &it->tensors[i];
		size_t nbytes;
		if (!name_ok(t->name))
			return mp_wrefuse(w, ST_ERR_USAGE, "item %llu: key '%.100s': a tensor name is empty or not UTF-8", n, it->key);
		if (st_shape_bytes_(t->dtype, t->ndim, t->shape, &nbytes) || nbytes != t->nbytes || (nbytes && !t->data))
			return mp_wrefuse(w, ST_ERR_SHAPE, "item %llu: key '%.100s': tensor '%.100s': shape, dtype and size disagree",
			               n, it->key, t->name);
		if (nbytes > UINT32_MAX)
			return mp_wrefuse(w, ST_ERR_LIMIT, "item %llu: key '%.100s': tensor '%.100s' is over msgpack's 4 GiB limit",
			               n, it->key, t->name);
		for (size_t j = 0; j < i; j++)
			if (strcmp(it->tensors[j].name, t->name) == 0)
				return mp_wrefuse(w, ST_ERR_USAGE, "item %llu: key '%.100s': tensor '%.100s' twice", n, it->key, t->name);
	}
	const sv *f = it->fields;
	for (size_t i = 0; f && i < f->u.map.n; i++) {
		const sv *v = f->u.map.vals[i];
		if (!name_ok(f->u.map.keys[i]))
			return mp_wrefuse(w, ST_ERR_USAGE, "item %llu: key '%.100s': a field name is empty or not UTF-8", n, it->key);
		if (v->kind == SV_BIN || v->kind == SV_ARRAY || v->kind == SV_MAP)
			return mp_wrefuse(w, ST_ERR_USAGE, "item %llu: key '%.100s': field '%.100s' is not a scalar", n, it->key,
			               f->u.map.keys[i]);
		if (v->kind == SV_STR && !sv_utf8_valid(v->u.str.ptr, v->u.str.len))
			return mp_wrefuse(w, ST_ERR_USAGE, "item %llu: key '%.100s': field '%.100s' is not valid UTF-8", n, it->key,
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
	int bad = mp_pack_map(w, has_fields ? 4 : 3) || mp_pack_key(w, "type") || mp_pack_str(w, "item") || mp_pack_key(w, "key") ||
	          mp_pack_str(w, it->key) || mp_pack_key(w, "tensors") || mp_pack_map(w, it->ntensors);
	for (size_t i = 0; !bad && i < it->ntensors; i++) {
		const st_tensor *t = &it->tensors[i];
		bad = mp_pack_key(w, t->name) || mp_pack_map(w, 5) || mp_pack_binkey(w, "nd") || mp_put(w, 0xc3, 0, 0) ||
		      mp_pack_binkey(w, "type") || mp_pack_str(w, st_dtype_str(t->dtype)) || mp_pack_binkey(w, "kind") ||
		      mp_pack_bin(w, "", 0) || mp_pack_binkey(w, "shape") || mp_pack_array(w, (size_t)t->ndim);
		for (int d = 0; !bad && d < t->ndim; d++)
			bad = mp_pack_int(w, t->shape[d]);
		bad = bad || mp_pack_binkey(w, "data") || mp_pack_bin(w, t->data, t->nbytes);
	}
	if (!bad && has_fields)
		bad = mp_pack_key(w, "fields") || mp_pack_value(w, it->fields, 1);
	if (bad)
		return w->code;
	w->items++;
	return ST_OK;
}

int st_writer_close(st_writer *w, char *err)
{
	int rc = ST_OK;
	if (!w->failed && (mp_pack_map(w, 2) || mp_pack_key(w, "type") || mp_pack_str(w, "end") || mp_pack_key(w, "count") ||
	                   mp_pack_uint(w, w->items) || mp_flush_with(w, NULL, 0)))
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
