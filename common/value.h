/*
 * value.h - a small tree of msgpack-representable values.
 *
 * Stream headers, item fields and checkpoint metadata are trees of these.
 * Maps keep insertion order (so headers print in the order they were
 * built) and own their keys and values.  Every constructor returns NULL
 * when memory runs out; sv_push and sv_set accept a NULL value and then
 * return -1, so a chain such as sv_set(m, "rate", sv_int(16000)) needs one
 * check only.  Nothing here keeps global state.
 */
#ifndef SERTOOLS_VALUE_H
#define SERTOOLS_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { SV_NIL, SV_BOOL, SV_INT, SV_FLOAT, SV_STR, SV_BIN, SV_ARRAY, SV_MAP } sv_kind;

typedef struct sv sv;
struct sv {
	sv_kind kind;
	union {
		bool b;
		int64_t i;
		double f;
		struct { char *ptr; size_t len; } str;   /* NUL-terminated as well */
		struct { void *ptr; size_t len; } bin;   /* 64-byte aligned */
		struct { sv **items; size_t n, cap; } arr;
		struct { char **keys; sv **vals; size_t n, cap; } map;
	} u;
};

sv *sv_nil(void);
sv *sv_bool(bool b);
sv *sv_int(int64_t i);
sv *sv_float(double f);
sv *sv_str(const char *s);
sv *sv_strn(const char *s, size_t len);
/* Takes ownership of ptr, which must come from sv_aligned_alloc. */
sv *sv_bin_take(void *ptr, size_t len);
sv *sv_array(void);
sv *sv_map(void);
/* Array of strings, e.g. class names. */
sv *sv_strlist(const char *const *s, size_t n);

/* Takes ownership of val (frees it on failure).  0 or -1 (out of memory). */
int sv_push(sv *arr, sv *val);
/* Replaces an existing key.  Takes ownership of val.  0 or -1. */
int sv_set(sv *map, const char *key, sv *val);
/* Removes key if present. */
void sv_unset(sv *map, const char *key);
/* Appends key (malloc'd; ownership taken) and val without looking for an
 * existing entry: for parsers that check duplicates themselves, so that a
 * large map costs O(n), not O(n^2).  Frees both on failure.  0 or -1. */
int sv_append_take(sv *map, char *key, sv *val);
/* Removes every entry of a map, keeping its storage. */
void sv_map_clear(sv *map);

/* Lookups: NULL or false when absent or of the wrong kind. */
sv *sv_get(const sv *map, const char *key);
const char *sv_get_str(const sv *map, const char *key);
bool sv_get_int(const sv *map, const char *key, int64_t *out);
/* Accepts SV_INT and SV_FLOAT. */
bool sv_get_num(const sv *map, const char *key, double *out);
/* An SV_ARRAY whose items are all strings, else NULL. */
const sv *sv_get_strlist(const sv *map, const char *key);

sv *sv_copy(const sv *v);
bool sv_equal(const sv *a, const sv *b);
void sv_free(sv *v);

/* Strict UTF-8 as Python decodes it (no overlongs, surrogates or code
 * points above U+10FFFF).  Stream strings must be valid UTF-8, or Python's
 * msgpack (raw=False) cannot read them. */
bool sv_utf8_valid(const char *s, size_t len);

/* One-line JSON; bins print as {"bytes": N}; floats print in the shortest
 * form that reads back exactly, with ".0" when integral, and NaN/Inf as
 * null.  Returns 0 or -1 (I/O). */
int sv_print_json(const sv *v, FILE *f);
/* The same JSON on several lines for a reader, two spaces a level; arrays
 * of scalars (and of such arrays) and records of at most three scalars stay
 * on one line.  Returns 0 or -1 (I/O). */
int sv_print_json_pretty(const sv *v, FILE *f);
/* A JSON string; bytes that are not valid UTF-8 print as U+FFFD, so the
 * output is always valid JSON. */
void sv_print_json_string(const char *s, size_t len, FILE *f);

/* 64-byte aligned, for tensor payloads that GEMM and SIMD code read. */
void *sv_aligned_alloc(size_t len);

#endif
