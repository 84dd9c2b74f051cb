/*
 * stream_impl.h - what the files of the stream module share; programs
 * include stream.h only.
 *
 * The module (specification: formats/stream.md):
 *   stream_item.c    dtypes, tensors, items
 *   mpack_read.c     the bounded msgpack decoder: input buffer, record
 *                    limits, bytes -> value tree (sv)
 *   mpack_write.c    the msgpack encoder: output buffer, shortest forms,
 *                    value tree -> bytes
 *   stream_read.c    records -> items (ndarrays, numpy scalars), the
 *                    header check, st_reader_*
 *   stream_write.c   items -> records, st_writer_*
 *   stream_header.c  headers: new, derived, merged; typed params
 *
 * The codec works on the reader's and the writer's own state (their
 * buffers, their limits, their error message with the item number), which
 * is why the structs are here and not opaque to it.
 *
 * Decoder guarantees (mp_read_record): every declared length or count is
 * charged against the bytes left under the record limit (and, for a
 * regular file, the bytes left in it) before anything is allocated; at
 * most max_values values and MAX_DEPTH levels per record; strings and map
 * keys are valid UTF-8, map keys unique and non-empty; integers fit int64.
 * Errors set the reader's message (mp_fail) and leave it failed.
 *
 * Encoder guarantees: integers in their shortest form, floats as float64,
 * str for text and bin for bytes (msgpack's use_bin_type), as Python's
 * msgpack writes them.  A write error or a value that cannot be encoded
 * ends the writer (mp_wfail); mp_wrefuse reports an item refused before
 * any byte of it was written, and the writer stays usable.
 */
#ifndef SERTOOLS_STREAM_IMPL_H
#define SERTOOLS_STREAM_IMPL_H

#include "atomic.h"
#include "stream.h"

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
#define OUT_BUFSIZE ((size_t)1 << 20)
/* Payloads this long skip the buffer: written straight from the tensor. */
#define DIRECT_WRITE ((size_t)64 << 10)

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

/* ---- items (stream_item.c) ---- */

/* The payload size; -1 for a bad rank, a negative dimension, or a shape
 * whose non-zero dimensions overflow (so products of any subset of the
 * dimensions are safe for every consumer). */
int st_shape_bytes_(st_dtype dtype, int ndim, const int64_t *shape, size_t *out);
/* name is malloc'd and taken (also on failure); data is taken on success only. */
st_tensor *st_append_tensor_(st_item *it, char *name, st_dtype dtype, int ndim, const int64_t *shape,
                             size_t nbytes, void *data);

/* ---- headers (stream_header.c) ---- */

/* b's counts added to a's: both ints, or int arrays of one length.  False
 * (a unchanged) when they are not both counts or a sum overflows. */
bool st_counts_add_(sv *a, const sv *b);

/* ---- decoding (mpack_read.c) ---- */

/* Sets the reader's message (prefixed with the name and the item, key or
 * record being read), marks it failed, returns code. */
int mp_fail(st_reader *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Ensures n (<= IN_BUFSIZE) bytes are buffered.  0, 1 at end of input, or an error. */
int mp_fill(st_reader *r, size_t n);
/* Reads one record map.  0, 1 at a clean end of input (between records), or an error. */
int mp_read_record(st_reader *r, sv **out);

/* ---- encoding (mpack_write.c) ---- */

int mp_wfail(st_writer *w, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int mp_wrefuse(st_writer *w, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Writes the buffer, then (n > 0) the n bytes at p. */
int mp_flush_with(st_writer *w, const void *p, size_t n);
/* A tag byte followed by the width low bytes of v, big-endian. */
int mp_put(st_writer *w, unsigned char tag, uint64_t v, int width);
int mp_pack_uint(st_writer *w, uint64_t v);
int mp_pack_int(st_writer *w, int64_t v);
int mp_pack_double(st_writer *w, double x);
int mp_pack_map(st_writer *w, size_t n);
int mp_pack_array(st_writer *w, size_t n);
int mp_pack_bin(st_writer *w, const void *p, size_t n);
int mp_pack_strn(st_writer *w, const char *s, size_t n);
int mp_pack_str(st_writer *w, const char *s);
/* A map key: non-empty, as the reader requires. */
int mp_pack_key(st_writer *w, const char *s);
/* msgpack_numpy spells ndarray keys as bytes. */
int mp_pack_binkey(st_writer *w, const char *s);
int mp_pack_value(st_writer *w, const sv *v, int depth);

/* ---- shared by reader and writer (stream_read.c) ---- */

/* Enlarges a pipe to PIPE_SIZE; best effort, a no-op on anything else. */
void st_pipe_enlarge(int fd);

#endif
