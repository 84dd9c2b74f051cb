/*
 * stream.h - the sertools tensor stream (specification: formats/stream.md).
 *
 * A stream is a sequence of msgpack maps: one header, any number of items,
 * one end record that carries the item count (and, optionally, stats known
 * only at the end, such as class counts).  Tensors are encoded exactly
 * as msgpack_numpy encodes numpy arrays, so Python reads a stream with
 * msgpack + msgpack_numpy and nothing else.
 *
 * Reading is bounded: one record at a time, every declared length checked
 * against the bytes left under the record limit (and, for a regular file,
 * against the bytes left in the file) before anything is allocated; from a
 * pipe, a payload over 16 MiB is read into memory that grows as its bytes
 * arrive, so a lying length costs no more than what was sent.  A record
 * may also hold at most 65536 + limit/256 msgpack values.  Tensor payloads
 * are read straight into 64-byte aligned memory.  A stream that stops
 * before its end record, or whose end count disagrees, is an error: a pipe
 * whose producer died never looks like a shorter dataset.
 *
 * Why the msgpack reader is our own: a general-purpose unpacker trusts the
 * counts it reads.  msgpack-c 4.0 (msgpack_unpack_next and the streaming
 * msgpack_unpacker alike), given the 5 bytes dd 01 00 00 00 (an array32
 * header announcing 2^24 elements, none of them sent), asks malloc for
 * 536870920 bytes (2^24 x 32-byte msgpack_object) at once and then waits
 * for more input; 8 such headers nested (40 bytes) took the process to a
 * VmPeak of 4.0 GiB, and dd ff ff ff ff asks for 128 GiB (measured on
 * AMD EPYC, glibc malloc counted through an LD_PRELOAD shim; resident
 * memory stayed at 1.5 MB only because the pages were never touched).
 * Here every count is charged against the bytes left under the record
 * limit before anything is allocated, so the same 5 bytes cost nothing.
 * The library was linked but unused, so it is no longer a dependency.
 *
 * Writing goes to stdout ("-" or NULL) or to a file that appears only when
 * st_writer_close succeeds (temp file + rename).  Every write is checked.
 * Pipes on either side are enlarged to 1 MiB (best effort) for throughput.
 *
 * The implementation is in files by concern (items, msgpack decoder and
 * encoder, reader, writer, headers); stream_impl.h lists them.
 *
 * Errors: functions return ST_OK (0) or a negative st_error; the reader
 * and writer keep a message with the file name and the item number, e.g.
 * "feats.msgpack: item 37: truncated record", for the caller to print
 * after its program name.
 */
#ifndef SERTOOLS_STREAM_H
#define SERTOOLS_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "value.h"

#define ST_FORMAT_NAME "sertools-stream"
#define ST_FORMAT_VERSION 1
#define ST_MAX_DIMS 4
/* 256 MiB: the largest Cnn14 tensor (conv_block6.conv2.weight) is 151 MB. */
#define ST_DEFAULT_MAX_RECORD ((size_t)256 << 20)
/* Environment variable that raises (or lowers) the record limit, in bytes;
 * suffixes K, M, G are accepted.  Options such as --max-record override it. */
#define ST_MAX_RECORD_ENV "SERTOOLS_MAX_RECORD"

typedef enum {
	ST_OK = 0,
	ST_END = 1,            /* st_reader_next: the end record was read and verified */
	ST_ERR_NOMEM = -1,
	ST_ERR_IO = -2,        /* read/write/open failed; message carries strerror */
	ST_ERR_TRUNCATED = -3, /* stream stopped inside a record or before its end record */
	ST_ERR_FORMAT = -4,    /* not msgpack, or not a record of this format */
	ST_ERR_LIMIT = -5,     /* a record larger than the limit */
	ST_ERR_DTYPE = -6,     /* unsupported or refused dtype */
	ST_ERR_SHAPE = -7,     /* bad shape, or shape x dtype != payload size */
	ST_ERR_NONFINITE = -8, /* NaN/Inf where the reader was asked for finite data */
	ST_ERR_COUNT = -9,     /* end record count disagrees with the items read */
	ST_ERR_USAGE = -10,    /* API misuse, e.g. a duplicate tensor name */
} st_error;

const char *st_strerror(int code);

typedef enum { ST_F32, ST_F64, ST_I32, ST_I64, ST_U8 } st_dtype;

size_t st_dtype_size(st_dtype t);
/* numpy's dtype.str: "<f4", "<f8", "<i4", "<i8", "|u1". */
const char *st_dtype_str(st_dtype t);
/* Parses a numpy dtype string; "<u1" is accepted for u8.  0 or -1. */
int st_dtype_parse(const char *s, st_dtype *out);

typedef struct {
	char *name;
	st_dtype dtype;
	int ndim;                    /* 0..ST_MAX_DIMS */
	int64_t shape[ST_MAX_DIMS];
	void *data;                  /* 64-byte aligned, owned by the item */
	size_t nbytes;
} st_tensor;

size_t st_tensor_numel(const st_tensor *t);

typedef struct {
	char *key;
	size_t ntensors, cap;
	st_tensor *tensors;
	sv *fields;                  /* map of scalars (nil/bool/int/float/str); never NULL after init */
} st_item;

/* An item must be initialised once; st_item_clear empties it for reuse and
 * st_item_free releases it. */
int st_item_init(st_item *it);
void st_item_clear(st_item *it);
void st_item_free(st_item *it);
int st_item_set_key(st_item *it, const char *key);
/* Adds a tensor with a copy of data (zero-filled when data is NULL). */
st_tensor *st_item_add_tensor(st_item *it, const char *name, st_dtype dtype, int ndim,
                              const int64_t *shape, const void *data);
/* Adds a tensor that takes ownership of data (from sv_aligned_alloc, at
 * least the shape's size).  NULL (data not taken) when name is empty or
 * already used, or the shape is invalid. */
st_tensor *st_item_take_tensor(st_item *it, const char *name, st_dtype dtype, int ndim,
                               const int64_t *shape, void *data);
st_tensor *st_item_tensor(const st_item *it, const char *name);
/* Removes a tensor by name; no-op when absent. */
void st_item_remove_tensor(st_item *it, const char *name);
/* Takes ownership of val. */
int st_item_set_field(st_item *it, const char *name, sv *val);
/* Copies key, tensors and fields of src into dst (dst is cleared first). */
int st_item_copy(st_item *dst, const st_item *src);
/* The item key of a file name (formats/stream.md, "Keys"): the base name
 * (after the last '/') without its extension (from the last '.'; a dot at
 * the start of the base name is not an extension).  "Audios/a.b.wav" ->
 * "a.b", "x/.wav" -> ".wav".  *key points into path; returns the key's
 * length (0: no key, e.g. "dir/"). */
size_t st_key_from_path(const char *path, size_t len, const char **key);

/* ---- reading ---- */

typedef struct st_reader st_reader;

enum {
	ST_READ_FINITE = 1 << 0, /* refuse NaN/Inf in float tensors */
};

/* The record limit from SERTOOLS_MAX_RECORD, or the default when it is
 * unset or not a size (prefer st_max_record_env, which reports that). */
size_t st_max_record_from_env(void);
/* The same, strictly: ST_OK and the limit in *out, or ST_ERR_USAGE and a
 * message in err (ST_ERRLEN bytes) when the variable is set but not a size.
 * st_reader_open(max_record 0) uses this and fails on a bad value. */
int st_max_record_env(size_t *out, char *err);

/* Opens path ("-" or NULL: stdin) and reads its header.  max_record 0 means
 * st_max_record_env() (a bad SERTOOLS_MAX_RECORD is an error).  On failure
 * returns NULL and writes a message to err (ST_ERRLEN bytes). */
#define ST_ERRLEN 512
st_reader *st_reader_open(const char *path, size_t max_record, unsigned flags, char *err);
/* The whole header map: "format", "version", "producer", "params", ... */
const sv *st_reader_header(const st_reader *r);
/* Shortcut for the header's "params" map (never NULL). */
const sv *st_reader_params(const st_reader *r);
/* Reads the next item into it (cleared first; its largest payload buffer
 * may be reused for the new item).  ST_OK, ST_END once the end record is
 * read and its count verified (and nothing follows it), or an error; after
 * an error the reader is unusable and it is left empty. */
int st_reader_next(st_reader *r, st_item *it);
/* The end record's "stats" map (counts such as binlabels' class_counts),
 * once st_reader_next has returned ST_END; NULL before that or when the
 * end record has none.  Owned by the reader. */
const sv *st_reader_end_stats(const st_reader *r);
const char *st_reader_error(const st_reader *r);
const char *st_reader_name(const st_reader *r);
uint64_t st_reader_items(const st_reader *r);
/* Bytes consumed so far. */
uint64_t st_reader_offset(const st_reader *r);
void st_reader_close(st_reader *r);

/* ---- writing ---- */

/* A fresh header: format, version, producer, producer_version, argv, and an
 * empty "params" map and "history" array.  NULL on out of memory. */
sv *st_header_new(const char *producer, int argc, char **argv);
/* A header for a program that transforms an input stream: a fresh header
 * whose params and stats are copies of the input's and whose history is the
 * input's history plus the input's own producer entry. */
sv *st_header_derive(const sv *input_header, const char *producer, int argc, char **argv);
/* The "params" map of a header built by the two functions above. */
sv *st_header_params(sv *header);
/* Joins the header of another input (named name in messages) into out, a
 * header derived from the first input, as stream-cat does: every param must
 * be in both and equal (else ST_ERR_FORMAT and a message in err, ST_ERRLEN
 * bytes); stats that count (an int, or an array of ints of one length) are
 * summed, other stats kept when equal, and dropped when they differ or a
 * sum overflows. */
int st_header_merge(sv *out, const sv *in, const char *name, char *err);
/* Folds the stats map in (NULL: none) into acc, as above: counts summed,
 * equal values kept, the rest dropped from acc.  For end-record stats too. */
void st_stats_merge(sv *acc, const sv *in);
/* The sample rate of a waveform stream, the one rule every program applies:
 * params.sample_rate is an integer in 1..INT_MAX (Hz).  ST_OK, or
 * ST_ERR_FORMAT and "NAME: header: no valid sample_rate param: why" in err
 * (ST_ERRLEN bytes). */
int st_wave_rate(const st_reader *r, long *rate, char *err);

typedef struct st_writer st_writer;
/* path "-" or NULL: stdout; otherwise the file appears atomically at close.
 * Takes no ownership of header (a map with type "header", format and
 * version 1, as st_header_new/derive make); writes it at once.  The writer writes fd 1 itself, bypassing stdio (stdout is flushed
 * first): print nothing else to stdout while it is open. */
st_writer *st_writer_open(const char *path, const sv *header, char *err);
/* An item the reader would refuse (empty key or name, strings that are not
 * UTF-8, a field that is not a scalar, a shape that disagrees with nbytes,
 * a tensor over 4 GiB) is refused before anything is written (ST_ERR_USAGE,
 * _SHAPE or _LIMIT; the writer stays usable).  A write error (ST_ERR_IO)
 * ends the writer: st_writer_close or _abort is all that is left. */
int st_writer_put(st_writer *w, const st_item *it);
/* Writes the end record, flushes, closes (and renames into place), and
 * frees w.  On failure the message goes to err (ST_ERRLEN bytes).  stdout
 * is flushed, not closed: main closes it (cli_close_stdout). */
int st_writer_close(st_writer *w, char *err);
/* Drops the output and frees w: a file target leaves no file behind. */
void st_writer_abort(st_writer *w);
/* The "stats" map of the end record, to fill before st_writer_close with
 * what is known only at the end (binlabels' class_counts); written only
 * when not empty.  NULL when out of memory.  Owned by the writer. */
sv *st_writer_end_stats(st_writer *w);
/* The message of the last failed st_writer_put. */
const char *st_writer_error(const st_writer *w);
uint64_t st_writer_items(const st_writer *w);

#endif
