/* mpack_write.c - the msgpack encoder: output buffering, shortest forms, value tree -> bytes (stream_impl.h). */
#include "stream_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static void wmessage(st_writer *w, const char *fmt, va_list ap)
{
	int k = snprintf(w->err, sizeof w->err, "%.200s: ", w->name);
	vsnprintf(w->err + k, sizeof w->err - (size_t)k, fmt, ap);
}

/* A failure after bytes of a record may have been written: the writer is done. */
int mp_wfail(st_writer *w, int code, const char *fmt, ...)
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

/* An item refused before any of it was written: the writer stays usable. */
int mp_wrefuse(st_writer *w, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	wmessage(w, fmt, ap);
	va_end(ap);
	return code;
}

/* Writes the buffer, then (n > 0) the bytes at p, in as few system calls as the kernel allows. */
int mp_flush_with(st_writer *w, const void *p, size_t n)
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
			return mp_wfail(w, ST_ERR_IO, "write error: %s", strerror(errno));
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
		return mp_flush_with(w, p, n);
	if (w->len + n > OUT_BUFSIZE) {
		int rc = mp_flush_with(w, NULL, 0);
		if (rc)
			return rc;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	return 0;
}

/* msgpack's big-endian integers, in the shortest form as msgpack-c and Python write them */
int mp_put(st_writer *w, unsigned char tag, uint64_t v, int width)
{
	unsigned char b[9];
	b[0] = tag;
	for (int i = 0; i < width; i++)
		b[1 + i] = (unsigned char)(v >> (8 * (width - 1 - i)));
	return out_bytes(w, b, (size_t)width + 1);
}

int mp_pack_uint(st_writer *w, uint64_t v)
{
	if (v < 0x80)
		return mp_put(w, (unsigned char)v, 0, 0);
	if (v <= UINT8_MAX)
		return mp_put(w, 0xcc, v, 1);
	if (v <= UINT16_MAX)
		return mp_put(w, 0xcd, v, 2);
	if (v <= UINT32_MAX)
		return mp_put(w, 0xce, v, 4);
	return mp_put(w, 0xcf, v, 8);
}

int mp_pack_int(st_writer *w, int64_t v)
{
	if (v >= 0)
		return mp_pack_uint(w, (uint64_t)v);
	if (v >= -32)
		return mp_put(w, (unsigned char)(0xe0 | (v + 32)), 0, 0);
	if (v >= INT8_MIN)
		return mp_put(w, 0xd0, (uint64_t)v, 1);
	if (v >= INT16_MIN)
		return mp_put(w, 0xd1, (uint64_t)v, 2);
	if (v >= INT32_MIN)
		return mp_put(w, 0xd2, (uint64_t)v, 4);
	return mp_put(w, 0xd3, (uint64_t)v, 8);
}

int mp_pack_double(st_writer *w, double x)
{
	uint64_t u;
	memcpy(&u, &x, 8);
	return mp_put(w, 0xcb, u, 8);
}

/* fix, 8-, 16- and 32-bit length forms; tags[0] is the fix form's base (0 if none) */
static int pack_len(st_writer *w, size_t n, size_t fixmax, const unsigned char tags[4])
{
	if (tags[0] && n <= fixmax)
		return mp_put(w, (unsigned char)(tags[0] | n), 0, 0);
	if (tags[1] && n <= UINT8_MAX)
		return mp_put(w, tags[1], n, 1);
	if (n <= UINT16_MAX)
		return mp_put(w, tags[2], n, 2);
	if (n <= UINT32_MAX)
		return mp_put(w, tags[3], n, 4);
	return mp_wfail(w, ST_ERR_LIMIT, "a value of %zu bytes or entries is beyond msgpack's 4 GiB limit", n);
}

int mp_pack_map(st_writer *w, size_t n) { return pack_len(w, n, 15, (const unsigned char[]){0x80, 0, 0xde, 0xdf}); }
int mp_pack_array(st_writer *w, size_t n) { return pack_len(w, n, 15, (const unsigned char[]){0x90, 0, 0xdc, 0xdd}); }

int mp_pack_bin(st_writer *w, const void *p, size_t n)
{
	return pack_len(w, n, 0, (const unsigned char[]){0, 0xc4, 0xc5, 0xc6}) || out_bytes(w, p, n) ? ST_ERR_IO : 0;
}

int mp_pack_strn(st_writer *w, const char *s, size_t n)
{
	if (!sv_utf8_valid(s, n))
		return mp_wfail(w, ST_ERR_USAGE, "string '%.100s' is not valid UTF-8 (Python could not read the stream)", s);
	return pack_len(w, n, 31, (const unsigned char[]){0xa0, 0xd9, 0xda, 0xdb}) || out_bytes(w, s, n) ? ST_ERR_IO : 0;
}

int mp_pack_str(st_writer *w, const char *s) { return mp_pack_strn(w, s, strlen(s)); }

/* a map key: non-empty, as the reader requires */
int mp_pack_key(st_writer *w, const char *s)
{
	return *s ? mp_pack_str(w, s) : mp_wfail(w, ST_ERR_USAGE, "empty map key");
}

/* msgpack_numpy spells ndarray keys as bytes */
int mp_pack_binkey(st_writer *w, const char *s) { return mp_pack_bin(w, s, strlen(s)); }

int mp_pack_value(st_writer *w, const sv *v, int depth)
{
	if (depth > MAX_DEPTH)
		return mp_wfail(w, ST_ERR_USAGE, "value nested deeper than %d levels", MAX_DEPTH);
	switch (v->kind) {
	case SV_NIL: return mp_put(w, 0xc0, 0, 0);
	case SV_BOOL: return mp_put(w, v->u.b ? 0xc3 : 0xc2, 0, 0);
	case SV_INT: return mp_pack_int(w, v->u.i);
	case SV_FLOAT: return mp_pack_double(w, v->u.f);
	case SV_STR: return mp_pack_strn(w, v->u.str.ptr, v->u.str.len);
	case SV_BIN: return mp_pack_bin(w, v->u.bin.ptr, v->u.bin.len);
	case SV_ARRAY:
		if (mp_pack_array(w, v->u.arr.n))
			return ST_ERR_IO;
		for (size_t i = 0; i < v->u.arr.n; i++)
			if (mp_pack_value(w, v->u.arr.items[i], depth + 1))
				return ST_ERR_IO;
		return 0;
	case SV_MAP:
		if (mp_pack_map(w, v->u.map.n))
			return ST_ERR_IO;
		for (size_t i = 0; i < v->u.map.n; i++)
			if (mp_pack_key(w, v->u.map.keys[i]) || mp_pack_value(w, v->u.map.vals[i], depth + 1))
				return ST_ERR_IO;
		return 0;
	}
	return mp_wfail(w, ST_ERR_USAGE, "unknown value kind %d", (int)v->kind);
}
