#include "value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sv *sv_new(sv_kind kind)
{
	sv *v = calloc(1, sizeof *v);
	if (v)
		v->kind = kind;
	return v;
}

sv *sv_nil(void) { return sv_new(SV_NIL); }

sv *sv_bool(bool b)
{
	sv *v = sv_new(SV_BOOL);
	if (v)
		v->u.b = b;
	return v;
}

sv *sv_int(int64_t i)
{
	sv *v = sv_new(SV_INT);
	if (v)
		v->u.i = i;
	return v;
}

sv *sv_float(double f)
{
	sv *v = sv_new(SV_FLOAT);
	if (v)
		v->u.f = f;
	return v;
}

sv *sv_strn(const char *s, size_t len)
{
	sv *v = sv_new(SV_STR);
	if (!v)
		return NULL;
	v->u.str.ptr = malloc(len + 1);
	if (!v->u.str.ptr) {
		free(v);
		return NULL;
	}
	if (len)
		memcpy(v->u.str.ptr, s, len);
	v->u.str.ptr[len] = '\0';
	v->u.str.len = len;
	return v;
}

sv *sv_str(const char *s) { return sv_strn(s, strlen(s)); }

void *sv_aligned_alloc(size_t len)
{
	size_t rounded = (len + 63) / 64 * 64;
	if (rounded < len)
		return NULL;
	return aligned_alloc(64, rounded ? rounded : 64);
}

sv *sv_bin_take(void *ptr, size_t len)
{
	sv *v = sv_new(SV_BIN);
	if (!v)
		return NULL;
	v->u.bin.ptr = ptr;
	v->u.bin.len = len;
	return v;
}

sv *sv_array(void) { return sv_new(SV_ARRAY); }
sv *sv_map(void) { return sv_new(SV_MAP); }

sv *sv_strlist(const char *const *s, size_t n)
{
	sv *a = sv_array();
	for (size_t i = 0; a && i < n; i++)
		if (sv_push(a, sv_str(s[i])) != 0) {
			sv_free(a);
			return NULL;
		}
	return a;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 8;
	while (ncap < need)
		ncap *= 2;
	void *np = realloc(*p, ncap * elem);
	if (!np)
		return -1;
	*p = np;
	*cap = ncap;
	return 0;
}

int sv_push(sv *arr, sv *val)
{
	if (!val)
		return -1;
	if (grow((void **)&arr->u.arr.items, &arr->u.arr.cap, arr->u.arr.n + 1, sizeof(sv *))) {
		sv_free(val);
		return -1;
	}
	arr->u.arr.items[arr->u.arr.n++] = val;
	return 0;
}

static ptrdiff_t map_find(const sv *map, const char *key)
{
	if (!map || map->kind != SV_MAP)
		return -1;
	for (size_t i = 0; i < map->u.map.n; i++)
		if (strcmp(map->u.map.keys[i], key) == 0)
			return (ptrdiff_t)i;
	return -1;
}

int sv_append_take(sv *map, char *key, sv *val)
{
	if (!key || !val)
		goto fail;
	size_t cap = map->u.map.cap;
	if (grow((void **)&map->u.map.keys, &cap, map->u.map.n + 1, sizeof(char *)))
		goto fail;
	/* keys may now be longer than cap says: harmless, vals decides */
	cap = map->u.map.cap;
	if (grow((void **)&map->u.map.vals, &cap, map->u.map.n + 1, sizeof(sv *)))
		goto fail;
	map->u.map.cap = cap;
	map->u.map.keys[map->u.map.n] = key;
	map->u.map.vals[map->u.map.n++] = val;
	return 0;
fail:
	free(key);
	sv_free(val);
	return -1;
}

int sv_set(sv *map, const char *key, sv *val)
{
	if (!val)
		return -1;
	ptrdiff_t at = map_find(map, key);
	if (at >= 0) {
		sv_free(map->u.map.vals[at]);
		map->u.map.vals[at] = val;
		return 0;
	}
	char *k = strdup(key);
	if (!k) {
		sv_free(val);
		return -1;
	}
	return sv_append_take(map, k, val);
}

void sv_map_clear(sv *map)
{
	for (size_t i = 0; i < map->u.map.n; i++) {
		free(map->u.map.keys[i]);
		sv_free(map->u.map.vals[i]);
	}
	map->u.map.n = 0;
}

void sv_unset(sv *map, const char *key)
{
	ptrdiff_t at = map_find(map, key);
	if (at < 0)
		return;
	free(map->u.map.keys[at]);
	sv_free(map->u.map.vals[at]);
	size_t rest = map->u.map.n - (size_t)at - 1;
	memmove(&map->u.map.keys[at], &map->u.map.keys[at + 1], rest * sizeof(char *));
	memmove(&map->u.map.vals[at], &map->u.map.vals[at + 1], rest * sizeof(sv *));
	map->u.map.n--;
}

sv *sv_get(const sv *map, const char *key)
{
	ptrdiff_t at = map_find(map, key);
	return at < 0 ? NULL : map->u.map.vals[at];
}

const char *sv_get_str(const sv *map, const char *key)
{
	const sv *v = sv_get(map, key);
	return v && v->kind == SV_STR ? v->u.str.ptr : NULL;
}

bool sv_get_int(const sv *map, const char *key, int64_t *out)
{
	const sv *v = sv_get(map, key);
	if (!v || v->kind != SV_INT)
		return false;
	*out = v->u.i;
	return true;
}

bool sv_get_num(const sv *map, const char *key, double *out)
{
	const sv *v = sv_get(map, key);
	if (v && v->kind == SV_INT)
		*out = (double)v->u.i;
	else if (v && v->kind == SV_FLOAT)
		*out = v->u.f;
	else
		return false;
	return true;
}

const sv *sv_get_strlist(const sv *map, const char *key)
{
	const sv *v = sv_get(map, key);
	if (!v || v->kind != SV_ARRAY)
		return NULL;
	for (size_t i = 0; i < v->u.arr.n; i++)
		if (v->u.arr.items[i]->kind != SV_STR)
			return NULL;
	return v;
}

sv *sv_copy(const sv *v)
{
	switch (v->kind) {
	case SV_NIL: return sv_nil();
	case SV_BOOL: return sv_bool(v->u.b);
	case SV_INT: return sv_int(v->u.i);
	case SV_FLOAT: return sv_float(v->u.f);
	case SV_STR: return sv_strn(v->u.str.ptr, v->u.str.len);
	case SV_BIN: {
		void *p = sv_aligned_alloc(v->u.bin.len);
		if (!p)
			return NULL;
		if (v->u.bin.len)
			memcpy(p, v->u.bin.ptr, v->u.bin.len);
		sv *c = sv_bin_take(p, v->u.bin.len);
		if (!c)
			free(p);
		return c;
	}
	case SV_ARRAY: {
		sv *c = sv_array();
		for (size_t i = 0; c && i < v->u.arr.n; i++)
			if (sv_push(c, sv_copy(v->u.arr.items[i]))) {
				sv_free(c);
				return NULL;
			}
		return c;
	}
	case SV_MAP: {
		sv *c = sv_map();
		for (size_t i = 0; c && i < v->u.map.n; i++)
			if (sv_set(c, v->u.map.keys[i], sv_copy(v->u.map.vals[i]))) {
				sv_free(c);
				return NULL;
			}
		return c;
	}
	}
	return NULL;
}

bool sv_equal(const sv *a, const sv *b)
{
	if (a->kind != b->kind) {
		/* 3 and 3.0 are the same parameter value */
		if (a->kind == SV_INT && b->kind == SV_FLOAT)
			return (double)a->u.i == b->u.f;
		if (a->kind == SV_FLOAT && b->kind == SV_INT)
			return a->u.f == (double)b->u.i;
		return false;
	}
	switch (a->kind) {
	case SV_NIL: return true;
	case SV_BOOL: return a->u.b == b->u.b;
	case SV_INT: return a->u.i == b->u.i;
	case SV_FLOAT: return a->u.f == b->u.f || (isnan(a->u.f) && isnan(b->u.f));
	case SV_STR: return a->u.str.len == b->u.str.len && !memcmp(a->u.str.ptr, b->u.str.ptr, a->u.str.len);
	case SV_BIN: return a->u.bin.len == b->u.bin.len && !memcmp(a->u.bin.ptr, b->u.bin.ptr, a->u.bin.len);
	case SV_ARRAY:
		if (a->u.arr.n != b->u.arr.n)
			return false;
		for (size_t i = 0; i < a->u.arr.n; i++)
			if (!sv_equal(a->u.arr.items[i], b->u.arr.items[i]))
				return false;
		return true;
	case SV_MAP:
		if (a->u.map.n != b->u.map.n)
			return false;
		for (size_t i = 0; i < a->u.map.n; i++) {
			const sv *o = sv_get(b, a->u.map.keys[i]);
			if (!o || !sv_equal(a->u.map.vals[i], o))
				return false;
		}
		return true;
	}
	return false;
}

void sv_free(sv *v)
{
	if (!v)
		return;
	switch (v->kind) {
	case SV_STR: free(v->u.str.ptr); break;
	case SV_BIN: free(v->u.bin.ptr); break;
	case SV_ARRAY:
		for (size_t i = 0; i < v->u.arr.n; i++)
			sv_free(v->u.arr.items[i]);
		free(v->u.arr.items);
		break;
	case SV_MAP:
		for (size_t i = 0; i < v->u.map.n; i++) {
			free(v->u.map.keys[i]);
			sv_free(v->u.map.vals[i]);
		}
		free(v->u.map.keys);
		free(v->u.map.vals);
		break;
	default: break;
	}
	free(v);
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
	unsigned c = p[0];
	size_t n;
	unsigned lo = 0x80, hi = 0xbf;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		if (c == 0xf4)
			hi = 0x8f; /* beyond U+10FFFF */
	} else {
		return 0;
	}
	if (left < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

bool sv_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = utf8_seq(p + i, len - i);
		if (!n)
			return false;
		i += n;
	}
	return true;
}

void sv_print_json_string(const char *s, size_t len, FILE *f)
{
	const unsigned char *p = (const unsigned char *)s;
	putc('"', f);
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		if (c == '"' || c == '\\') {
			fprintf(f, "\\%c", c);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\u%04x", c);
			i++;
		} else if (c < 0x80) {
			putc(c, f);
			i++;
		} else {
			size_t n = utf8_seq(p + i, len - i);
			if (n)
				fwrite(p + i, 1, n, f);
			else
				fputs("\\ufffd", f);
			i += n ? n : 1;
		}
	}
	putc('"', f);
}

static void print_json_double(double x, FILE *f)
{
	/* JSON has no NaN/Inf */
	if (!isfinite(x)) {
		fputs("null", f);
		return;
	}
	char buf[40];
	snprintf(buf, sizeof buf, "%.15g", x);
	if (strtod(buf, NULL) != x)
		snprintf(buf, sizeof buf, "%.17g", x);
	fputs(buf, f);
	/* keep a float a float for the reader of the JSON */
	if (!strpbrk(buf, ".e"))
		fputs(".0", f);
}

int sv_print_json(const sv *v, FILE *f)
{
	switch (v->kind) {
	case SV_NIL: fputs("null", f); break;
	case SV_BOOL: fputs(v->u.b ? "true" : "false", f); break;
	case SV_INT: fprintf(f, "%lld", (long long)v->u.i); break;
	case SV_FLOAT: print_json_double(v->u.f, f); break;
	case SV_STR: sv_print_json_string(v->u.str.ptr, v->u.str.len, f); break;
	case SV_BIN: fprintf(f, "{\"bytes\":%zu}", v->u.bin.len); break;
	case SV_ARRAY:
		putc('[', f);
		for (size_t i = 0; i < v->u.arr.n; i++) {
			if (i)
				putc(',', f);
			sv_print_json(v->u.arr.items[i], f);
		}
		putc(']', f);
		break;
	case SV_MAP:
		putc('{', f);
		for (size_t i = 0; i < v->u.map.n; i++) {
			if (i)
				putc(',', f);
			sv_print_json_string(v->u.map.keys[i], strlen(v->u.map.keys[i]), f);
			putc(':', f);
			sv_print_json(v->u.map.vals[i], f);
		}
		putc('}', f);
		break;
	}
	return ferror(f) ? -1 : 0;
}

/* Arrays of numbers and strings (and of such arrays) and records of up to
 * three scalars stay on one line. */
static bool flat(const sv *v)
{
	if (v->kind == SV_MAP) {
		/* a small record of scalars, e.g. one item's duration */
		for (size_t i = 0; i < v->u.map.n; i++)
			if (v->u.map.vals[i]->kind == SV_MAP || v->u.map.vals[i]->kind == SV_ARRAY)
				return false;
		return v->u.map.n <= 3;
	}
	for (size_t i = 0; v->kind == SV_ARRAY && i < v->u.arr.n; i++) {
		const sv *e = v->u.arr.items[i];
		if (e->kind == SV_MAP || (e->kind == SV_ARRAY && !flat(e)))
			return false;
	}
	return true;
}

static void print_pretty(const sv *v, int depth, FILE *f)
{
	if (flat(v)) {
		sv_print_json(v, f);
		return;
	}
	bool map = v->kind == SV_MAP;
	size_t n = map ? v->u.map.n : v->u.arr.n;
	fputs(map ? "{\n" : "[\n", f);
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "%*s", 2 * (depth + 1), "");
		if (map) {
			sv_print_json_string(v->u.map.keys[i], strlen(v->u.map.keys[i]), f);
			fputs(": ", f);
		}
		print_pretty(map ? v->u.map.vals[i] : v->u.arr.items[i], depth + 1, f);
		fputs(i + 1 < n ? ",\n" : "\n", f);
	}
	fprintf(f, "%*s%c", 2 * depth, "", map ? '}' : ']');
}

int sv_print_json_pretty(const sv *v, FILE *f)
{
	print_pretty(v, 0, f);
	return ferror(f) ? -1 : 0;
}
