#include "csv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define IN_BUFSIZE 65536
#define C_EOF (-1)
#define C_ERR (-2)

typedef struct {
	size_t off, len;
	unsigned long line, col;
} field;

struct csv_reader {
	FILE *f;
	bool own_file, started, failed, after_cr;
	char *name;
	unsigned char *in;
	size_t in_len, in_pos;
	unsigned long line, col;       /* position of the next character */
	unsigned long ch_line, ch_col; /* position of the character being decoded */
	int utf8_need;                 /* continuation bytes still expected */
	unsigned char utf8_lo, utf8_hi;
	unsigned char utf8_lead;       /* the lead byte of the sequence being decoded */
	char *rec;
	size_t rec_len, rec_cap;
	field *fields;
	size_t nfields, fields_cap;
	char err[CSV_ERRLEN];
};

__attribute__((format(printf, 4, 5))) static int fail_at(csv_reader *r, unsigned long line, unsigned long col,
                                                         const char *fmt, ...)
{
	int n = snprintf(r->err, sizeof r->err, "%s:%lu:%lu: ", r->name, line, col);
	if (n < 0 || (size_t)n >= sizeof r->err)
		n = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err + n, sizeof r->err - (size_t)n, fmt, ap);
	va_end(ap);
	r->failed = true;
	return C_ERR;
}

static csv_reader *reader_new(FILE *f, bool own, const char *name, char *err, size_t errlen)
{
	csv_reader *r = calloc(1, sizeof *r);
	if (r) {
		r->name = strdup(name);
		r->in = malloc(IN_BUFSIZE);
	}
	if (!r || !r->name || !r->in) {
		snprintf(err, errlen, "%s: out of memory", name);
		if (r) {
			free(r->name);
			free(r->in);
		}
		free(r);
		if (own)
			fclose(f);
		return NULL;
	}
	r->f = f;
	r->own_file = own;
	r->line = r->col = 1;
	r->utf8_lo = 0x80;
	r->utf8_hi = 0xbf;
	return r;
}

csv_reader *csv_open(const char *path, char *err, size_t errlen)
{
	if (strcmp(path, "-") == 0)
		return reader_new(stdin, false, "stdin", err, errlen);
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	return reader_new(f, true, path, err, errlen);
}

csv_reader *csv_open_file(FILE *f, const char *name, char *err, size_t errlen)
{
	return reader_new(f, false, name, err, errlen);
}

/* Tops the buffer up to at least want bytes unless the input ends first. */
static int fill(csv_reader *r, size_t want)
{
	if (r->in_pos > 0) {
		memmove(r->in, r->in + r->in_pos, r->in_len - r->in_pos);
		r->in_len -= r->in_pos;
		r->in_pos = 0;
	}
	while (r->in_len < want) {
		size_t got = fread(r->in + r->in_len, 1, IN_BUFSIZE - r->in_len, r->f);
		if (got == 0) {
			if (ferror(r->f))
				return fail_at(r, r->line, r->col, "read error: %s", strerror(errno));
			break;
		}
		r->in_len += got;
	}
	return 0;
}

static int peek(csv_reader *r)
{
	if (r->in_pos == r->in_len && fill(r, 1))
		return C_ERR;
	return r->in_pos < r->in_len ? r->in[r->in_pos] : C_EOF;
}

/* Consumes one byte, checking UTF-8 and keeping line and column. */
static int get(csv_reader *r)
{
	int p = peek(r);
	if (p == C_ERR)
		return C_ERR;
	if (p == C_EOF) {
		if (r->utf8_need)
			return fail_at(r, r->ch_line, r->ch_col, "input ends inside a UTF-8 sequence");
		return C_EOF;
	}
	unsigned char c = r->in[r->in_pos++];
	if (r->utf8_need) {
		if (c < r->utf8_lo || c > r->utf8_hi) /* the sequence's lead byte is the bad one */
			return fail_at(r, r->ch_line, r->ch_col,
			               "invalid UTF-8 (byte 0x%02x, then 0x%02x); the file must be UTF-8", r->utf8_lead, c);
		r->utf8_need--;
		r->utf8_lo = 0x80;
		r->utf8_hi = 0xbf;
		return c;
	}
	r->ch_line = r->line;
	r->ch_col = r->col;
	if (c == 0)
		return fail_at(r, r->line, r->col, "NUL byte");
	if (c >= 0x80) {
		r->utf8_lead = c;
		if (c >= 0xc2 && c <= 0xdf)
			r->utf8_need = 1;
		else if (c >= 0xe0 && c <= 0xef)
			r->utf8_need = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			r->utf8_need = 3;
		else
			return fail_at(r, r->line, r->col, "invalid UTF-8 (byte 0x%02x); the file must be UTF-8", c);
		/* overlong forms and surrogates are not UTF-8 */
		if (c == 0xe0)
			r->utf8_lo = 0xa0;
		else if (c == 0xed)
			r->utf8_hi = 0x9f;
		else if (c == 0xf0)
			r->utf8_lo = 0x90;
		else if (c == 0xf4)
			r->utf8_hi = 0x8f;
	}
	if (c == '\r') {
		r->line++;
		r->col = 1;
		r->after_cr = true;
	} else if (c == '\n') {
		if (!r->after_cr) {
			r->line++;
			r->col = 1;
		}
		r->after_cr = false;
	} else {
		r->col++;
		r->after_cr = false;
	}
	return c;
}

static int append(csv_reader *r, char c)
{
	if (r->rec_len == r->rec_cap) {
		if (r->rec_cap >= CSV_MAX_RECORD) {
			const field *f = &r->fields[r->nfields];
			return fail_at(r, f->line, f->col, "record longer than %zu MiB (an unclosed quote?)",
			               CSV_MAX_RECORD >> 20);
		}
		size_t cap = r->rec_cap ? 2 * r->rec_cap : 256;
		char *p = realloc(r->rec, cap);
		if (!p)
			return fail_at(r, r->line, r->col, "out of memory");
		r->rec = p;
		r->rec_cap = cap;
	}
	r->rec[r->rec_len++] = c;
	return 0;
}

static int begin_field(csv_reader *r)
{
	if (r->nfields == CSV_MAX_FIELDS)
		return fail_at(r, r->line, r->col, "record with more than %d fields", CSV_MAX_FIELDS);
	if (r->nfields == r->fields_cap) {
		size_t cap = r->fields_cap ? 2 * r->fields_cap : 16;
		field *p = realloc(r->fields, cap * sizeof *p);
		if (!p)
			return fail_at(r, r->line, r->col, "out of memory");
		r->fields = p;
		r->fields_cap = cap;
	}
	field *f = &r->fields[r->nfields];
	f->off = r->rec_len;
	f->line = r->line;
	f->col = r->col;
	return 0;
}

static int end_field(csv_reader *r)
{
	field *f = &r->fields[r->nfields];
	f->len = r->rec_len - f->off;
	if (append(r, '\0'))
		return C_ERR;
	r->nfields++;
	return 0;
}

/* Consumes CR, LF or CRLF. */
static int end_line(csv_reader *r)
{
	int c = get(r);
	if (c == '\r' && peek(r) == '\n')
		c = get(r);
	return c == C_ERR ? C_ERR : 0;
}

/* After the opening quote: up to and including the closing quote. */
static int quoted(csv_reader *r)
{
	const field *f = &r->fields[r->nfields];
	for (;;) {
		int c = get(r);
		if (c == C_ERR)
			return C_ERR;
		if (c == C_EOF)
			return fail_at(r, f->line, f->col, "quoted field is never closed");
		if (c == '"') {
			int n = peek(r);
			if (n != '"')
				return n == C_ERR ? C_ERR : 0;
			if (get(r) == C_ERR)
				return C_ERR;
		}
		if (append(r, (char)c))
			return C_ERR;
	}
}

int csv_next(csv_reader *r)
{
	if (r->failed)
		return -1;
	r->rec_len = 0;
	r->nfields = 0;
	if (!r->started) {
		r->started = true;
		if (fill(r, 3))
			return -1;
		if (r->in_len >= 3 && memcmp(r->in, "\xef\xbb\xbf", 3) == 0)
			r->in_pos = 3;
	}
	int c;
	while ((c = peek(r)) == '\r' || c == '\n')
		if (end_line(r))
			return -1;
	if (c == C_ERR)
		return -1;
	if (c == C_EOF)
		return get(r) == C_ERR ? -1 : 0;
	for (;;) {
		if (begin_field(r))
			return -1;
		c = peek(r);
		if (c == '"') {
			if (get(r) == C_ERR || quoted(r))
				return -1;
			c = peek(r);
			if (c != ',' && c != '\r' && c != '\n' && c != C_EOF && c != C_ERR) {
				get(r);
				if (r->failed)
					return -1;
				fail_at(r, r->ch_line, r->ch_col,
				        "unexpected character after a closing quote (a quote inside a quoted field is written \"\")");
				return -1;
			}
		} else {
			while ((c = peek(r)) != ',' && c != '\r' && c != '\n' && c != C_EOF && c != C_ERR) {
				if (c == '"') {
					fail_at(r, r->line, r->col, "quote inside an unquoted field (quote the whole field)");
					return -1;
				}
				if (get(r) == C_ERR || append(r, (char)c))
					return -1;
			}
		}
		if (c == C_ERR || end_field(r))
			return -1;
		if (c != ',')
			break;
		if (get(r) == C_ERR)
			return -1;
	}
	if (c == C_EOF)
		return get(r) == C_ERR ? -1 : 1;
	return end_line(r) ? -1 : 1;
}

size_t csv_nfields(const csv_reader *r) { return r->nfields; }
const char *csv_field(const csv_reader *r, size_t i) { return r->rec + r->fields[i].off; }
size_t csv_field_len(const csv_reader *r, size_t i) { return r->fields[i].len; }
unsigned long csv_field_line(const csv_reader *r, size_t i) { return r->fields[i].line; }
unsigned long csv_field_col(const csv_reader *r, size_t i) { return r->fields[i].col; }
const char *csv_error(const csv_reader *r) { return r->err; }
const char *csv_name(const csv_reader *r) { return r->name; }

void csv_close(csv_reader *r)
{
	if (!r)
		return;
	if (r->own_file)
		fclose(r->f);
	free(r->name);
	free(r->in);
	free(r->rec);
	free(r->fields);
	free(r);
}
