#include "labels.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "csv.h"
#include "hashmap.h"
#include "stream.h"

typedef struct {
	size_t off;               /* into the text arena */
	unsigned long line, col;
} cell;

struct labels {
	char *path;
	size_t ncols;
	char **colnames;
	int key_col, split_col, speaker_col;
	size_t nrows, rows_cap;
	cell *cells;              /* nrows x ncols */
	size_t *key_off;          /* per row, into text */
	int *split;               /* per row */
	char *text;
	size_t text_len, text_cap;
	char **splits;
	size_t nsplits;
	hashmap *rows;            /* key -> row */
};

__attribute__((format(printf, 3, 4))) static void msg(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const char *text_at(const labels *lb, size_t off) { return lb->text + off; }

/* Makes room for len bytes and a NUL at the end of the arena; SIZE_MAX
 * when out of memory.  Pointers into the arena are stale afterwards. */
static size_t text_reserve(labels *lb, size_t len)
{
	if (lb->text_len + len + 1 > lb->text_cap) {
		size_t cap = lb->text_cap ? lb->text_cap : 4096;
		while (cap < lb->text_len + len + 1)
			cap *= 2;
		char *p = realloc(lb->text, cap);
		if (!p)
			return SIZE_MAX;
		lb->text = p;
		lb->text_cap = cap;
	}
	size_t off = lb->text_len;
	lb->text[off + len] = '\0';
	lb->text_len += len + 1;
	return off;
}

static size_t text_add(labels *lb, const char *s, size_t len)
{
	size_t off = text_reserve(lb, len);
	if (off != SIZE_MAX)
		memcpy(lb->text + off, s, len);
	return off;
}

static void trim(const char **s, size_t *len)
{
	while (*len && (**s == ' ' || **s == '\t'))
		(*s)++, (*len)--;
	while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
		(*len)--;
}

/* The key of a cell: st_key_from_path's rule, or the cell as it is. */
static void key_of(const char *s, size_t len, bool verbatim, const char **key, size_t *keylen)
{
	if (verbatim) {
		*key = s;
		*keylen = len;
	} else {
		*keylen = st_key_from_path(s, len, key);
	}
}

static int find_header(const labels *lb, const char *name)
{
	for (size_t i = 0; i < lb->ncols; i++)
		if (strcmp(lb->colnames[i], name) == 0)
			return (int)i;
	return -1;
}

/* A column the caller uses must be there, once. */
static int require_column(const labels *lb, const char *name, bool optional, const char *why, int *out, char *err,
                          size_t errlen)
{
	int c = find_header(lb, name);
	*out = c;
	if (c < 0) {
		if (optional)
			return 0;
		size_t n = (size_t)snprintf(err, errlen, "%s: missing required column '%s' (%s); the header has: ", lb->path,
		                            name, why);
		for (size_t i = 0; i < lb->ncols && n < errlen; i++)
			n += (size_t)snprintf(err + n, errlen - n, "%s%s", i ? ", " : "", lb->colnames[i]);
		return -1;
	}
	for (size_t i = (size_t)c + 1; i < lb->ncols; i++)
		if (strcmp(lb->colnames[i], name) == 0) {
			msg(err, errlen, "%s: column '%s' appears twice in the header (columns %d and %zu)", lb->path, name,
			    c + 1, i + 1);
			return -1;
		}
	return 0;
}

/* Room for twice the rows; -1 when out of memory (what was there stays valid). */
static int grow_rows(labels *lb)
{
	size_t cap = lb->rows_cap ? 2 * lb->rows_cap : 1024;
	cell *cells = realloc(lb->cells, cap * lb->ncols * sizeof *cells);
	if (cells)
		lb->cells = cells;
	size_t *key_off = realloc(lb->key_off, cap * sizeof *key_off);
	if (key_off)
		lb->key_off = key_off;
	int *split = realloc(lb->split, cap * sizeof *split);
	if (split)
		lb->split = split;
	if (!cells || !key_off || !split)
		return -1;
	lb->rows_cap = cap;
	return 0;
}

static int add_row(labels *lb, csv_reader *r, const labels_source *src, char *err, size_t errlen)
{
	size_t n = csv_nfields(r);
	if (n != lb->ncols) {
		msg(err, errlen, "%s:%lu: %zu fields, but the header has %zu", lb->path, csv_field_line(r, 0), n, lb->ncols);
		return -1;
	}
	if (lb->nrows == lb->rows_cap && grow_rows(lb))
		goto nomem;
	size_t row = lb->nrows;
	cell *cells = lb->cells + row * lb->ncols;
	for (size_t i = 0; i < n; i++) {
		const char *s = csv_field(r, i);
		size_t len = csv_field_len(r, i);
		trim(&s, &len);
		cells[i].line = csv_field_line(r, i);
		cells[i].col = csv_field_col(r, i);
		if ((cells[i].off = text_add(lb, s, len)) == SIZE_MAX)
			goto nomem;
	}
	const cell *kc = &cells[lb->key_col];
	const char *key;
	size_t keylen;
	key_of(text_at(lb, kc->off), strlen(text_at(lb, kc->off)), src->key_verbatim, &key, &keylen);
	if (!keylen) {
		msg(err, errlen, "%s:%lu:%lu: %s: empty key", lb->path, kc->line, kc->col, lb->colnames[lb->key_col]);
		return -1;
	}
	size_t key_start = (size_t)(key - lb->text);
	if ((lb->key_off[row] = text_reserve(lb, keylen)) == SIZE_MAX)
		goto nomem;
	memcpy(lb->text + lb->key_off[row], lb->text + key_start, keylen);
	size_t *first_row;
	int added = hashmap_put(lb->rows, text_at(lb, lb->key_off[row]), row, &first_row);
	if (added < 0)
		goto nomem;
	if (!added) {
		const cell *first = &lb->cells[*first_row * lb->ncols + lb->key_col];
		msg(err, errlen, "%s:%lu:%lu: duplicate key '%s' (first on line %lu)", lb->path, kc->line, kc->col,
		    text_at(lb, lb->key_off[row]), first->line);
		return -1;
	}
		lb->split[row] = -1;
	if (lb->split_col >= 0) {
		const cell *sc = &cells[lb->split_col];
		const char *name = text_at(lb, sc->off);
		if (!*name) {
			msg(err, errlen, "%s:%lu:%lu: %s: empty split name", lb->path, sc->line, sc->col,
			    lb->colnames[lb->split_col]);
			return -1;
		}
		int s = labels_split_find(lb, name);
		if (s < 0) {
			char **splits = realloc(lb->splits, (lb->nsplits + 1) * sizeof *splits);
			if (!splits)
				goto nomem;
			lb->splits = splits;
			if (!(splits[lb->nsplits] = strdup(name)))
				goto nomem;
			s = (int)lb->nsplits++;
		}
		lb->split[row] = s;
	}
	lb->nrows++;
	return 0;
nomem:
	msg(err, errlen, "%s: out of memory", lb->path);
	return -1;
}

labels *labels_load(const labels_source *src, char *err, size_t errlen)
{
	char cerr[CSV_ERRLEN];
	csv_reader *r = csv_open(src->path, cerr, sizeof cerr);
	if (!r) {
		msg(err, errlen, "%s", cerr);
		return NULL;
	}
	labels *lb = calloc(1, sizeof *lb);
	if (!lb || !(lb->path = strdup(csv_name(r)))) {
		msg(err, errlen, "%s: out of memory", src->path);
		goto fail;
	}
	int rc = csv_next(r);
	if (rc <= 0) {
		if (rc < 0)
			msg(err, errlen, "%s", csv_error(r));
		else
			msg(err, errlen, "%s: empty file (no header row)", lb->path);
		goto fail;
	}
	lb->ncols = csv_nfields(r);
	if (!(lb->colnames = calloc(lb->ncols, sizeof *lb->colnames)) || !(lb->rows = hashmap_new())) {
		msg(err, errlen, "%s: out of memory", lb->path);
		goto fail;
	}
	for (size_t i = 0; i < lb->ncols; i++) {
		const char *s = csv_field(r, i);
		size_t len = csv_field_len(r, i);
		trim(&s, &len);
		if (!(lb->colnames[i] = strndup(s, len))) {
			msg(err, errlen, "%s: out of memory", lb->path);
			goto fail;
		}
	}
	if (require_column(lb, src->key_column, false, "the key column", &lb->key_col, err, errlen))
		goto fail;
	lb->split_col = lb->speaker_col = -1;
	if (src->split_column && require_column(lb, src->split_column, src->split_optional, "the split column",
	                                        &lb->split_col, err, errlen))
		goto fail;
	if (src->speaker_column && require_column(lb, src->speaker_column, src->speaker_optional,
	                                          "the speaker column", &lb->speaker_col, err, errlen))
		goto fail;
	while ((rc = csv_next(r)) > 0)
		if (add_row(lb, r, src, err, errlen))
			goto fail;
	if (rc < 0) {
		msg(err, errlen, "%s", csv_error(r));
		goto fail;
	}
	csv_close(r);
	return lb;
fail:
	csv_close(r);
	labels_free(lb);
	return NULL;
}

void labels_free(labels *lb)
{
	if (!lb)
		return;
	for (size_t i = 0; lb->colnames && i < lb->ncols; i++)
		free(lb->colnames[i]);
	for (size_t i = 0; i < lb->nsplits; i++)
		free(lb->splits[i]);
	free(lb->colnames);
	free(lb->splits);
	free(lb->cells);
	free(lb->key_off);
	free(lb->split);
	free(lb->text);
	hashmap_free(lb->rows);
	free(lb->path);
	free(lb);
}

const char *labels_path(const labels *lb) { return lb->path; }
size_t labels_rows(const labels *lb) { return lb->nrows; }
const char *labels_key(const labels *lb, size_t row) { return text_at(lb, lb->key_off[row]); }
const char *labels_key_cell(const labels *lb, size_t row) { return labels_cell(lb, row, lb->key_col); }
int labels_column(const labels *lb, const char *name) { return find_header(lb, name); }
bool labels_has_splits(const labels *lb) { return lb->split_col >= 0; }
size_t labels_nsplits(const labels *lb) { return lb->nsplits; }
const char *labels_split_name(const labels *lb, size_t split) { return lb->splits[split]; }
int labels_row_split(const labels *lb, size_t row) { return lb->split[row]; }
bool labels_has_speakers(const labels *lb) { return lb->speaker_col >= 0; }

const char *labels_split_column(const labels *lb)
{
	return lb->split_col >= 0 ? lb->colnames[lb->split_col] : NULL;
}

const char *labels_cell(const labels *lb, size_t row, int column)
{
	return text_at(lb, lb->cells[row * lb->ncols + (size_t)column].off);
}

ptrdiff_t labels_find(const labels *lb, const char *key)
{
	const size_t *row = lb->rows ? hashmap_get(lb->rows, key) : NULL;
	return row ? (ptrdiff_t)*row : -1;
}

int labels_split_find(const labels *lb, const char *name)
{
	for (size_t i = 0; i < lb->nsplits; i++)
		if (strcmp(lb->splits[i], name) == 0)
			return (int)i;
	return -1;
}

const char *labels_speaker(const labels *lb, size_t row)
{
	if (lb->speaker_col < 0)
		return NULL;
	const char *s = labels_cell(lb, row, lb->speaker_col);
	return *s && strcasecmp(s, "unknown") != 0 ? s : NULL;
}

/* ---- tasks ---- */

struct labels_task {
	char *name;
	const char *column;       /* owned by the table */
	bool binned;
	size_t nclasses;
	char **classes;
	int *label;
	double *value;
};

static const char *const category_names[] = {
	"angry", "sad", "happy", "surprise", "fear", "disgust", "contempt", "neutral", "other", "no_agreement",
};
static const char *const bin_names[] = {"low", "mid", "high"};
static const char *const dim_columns[] = {"EmoAct", "EmoVal", "EmoDom"};

const char *labels_category_name(char code)
{
	const char *p = code ? strchr(LABELS_CATEGORY_CODES, code) : NULL;
	return p ? category_names[p - LABELS_CATEGORY_CODES] : NULL;
}

void labels_task_spec_init(labels_task_spec *spec)
{
	memset(spec, 0, sizeof *spec);
	spec->edges[0] = 3;
	spec->edges[1] = 5;
	spec->range[0] = 1;
	spec->range[1] = 7;
	spec->category_drop = "X";
}

int labels_task_parse(const char *name, labels_task_spec *spec)
{
	static const char *const names[] = {"arousal", "valence", "dominance", "category", "speaker"};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (strcmp(name, names[i]) == 0) {
			spec->kind = (labels_task_kind)i;
			spec->column = NULL;
			return 0;
		}
	if (strncmp(name, "column:", 7) == 0 && name[7]) {
		spec->kind = LABELS_COLUMN;
		spec->column = name + 7;
		return 0;
	}
	return -1;
}

/* Every item of a comma list must be one EmoClass code. */
static int each_code(const char *list, char *err, size_t errlen)
{
	for (const char *p = list; *p;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len != 1 || !labels_category_name(*p)) {
			msg(err, errlen, "--category-drop: '%.*s' is not an EmoClass code (%s)", (int)len, p,
			    "A, S, H, U, F, D, C, N, O, X");
			return -1;
		}
		p += len + (e != NULL);
	}
	return 0;
}

static bool dropped(const char *list, char code)
{
	for (const char *p = list; *p; p++)
		if (*p == code && (p == list || p[-1] == ',') && (p[1] == ',' || !p[1]))
			return true;
	return false;
}

int labels_task_check(const labels_task_spec *spec, char *err, size_t errlen)
{
	if (!(spec->range[0] < spec->range[1]) || !(spec->range[0] <= spec->edges[0]) ||
	    !(spec->edges[0] < spec->edges[1]) || !(spec->edges[1] <= spec->range[1])) {
		msg(err, errlen, "edges %g, %g and range [%g, %g] must satisfy low <= first edge < second edge <= high",
		    spec->edges[0], spec->edges[1], spec->range[0], spec->range[1]);
		return -1;
	}
	if (spec->categorical && spec->kind != LABELS_COLUMN) {
		msg(err, errlen, "--categorical goes with a column:NAME task");
		return -1;
	}
	return spec->category_drop ? each_code(spec->category_drop, err, errlen) : 0;
}

int labels_bin(double v, const double edges[2])
{
	return v <= edges[0] ? 0 : v >= edges[1] ? 2 : 1;
}

/* Plain decimal notation only: strtod would also take "nan", "inf" and hex. */
static bool parse_rating(const char *s, double *out)
{
	const char *p = s;
	if (*p == '+' || *p == '-')
		p++;
	size_t digits = 0;
	while (*p >= '0' && *p <= '9')
		p++, digits++;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			digits++;
	if (!digits)
		return false;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p)
		return false;
	*out = strtod(s, NULL);
	return isfinite(*out);
}

typedef struct {
	const char *s;
	size_t row;
} named_row;

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static int cmp_bytes(const void *a, const void *b)
{
	const named_row *x = a, *y = b;
	int c = strcmp(x->s, y->s);
	return c ? c : (x->row > y->row) - (x->row < y->row);
}

/* Non-negative integers by value; "01" and "1" stay distinct, in byte order. */
static int cmp_numbers(const void *a, const void *b)
{
	const named_row *x = a, *y = b;
	const char *p = x->s, *q = y->s;
	while (*p == '0' && p[1])
		p++;
	while (*q == '0' && q[1])
		q++;
	size_t lp = strlen(p), lq = strlen(q);
	if (lp != lq)
		return lp < lq ? -1 : 1;
	int c = strcmp(p, q);
	return c ? c : cmp_bytes(a, b);
}

/* Dense ids over the distinct values of the rows, sorted. */
static int make_classes(labels_task *t, named_row *v, size_t n)
{
	bool numeric = true;
	for (size_t i = 0; i < n && numeric; i++)
		numeric = all_digits(v[i].s);
	qsort(v, n, sizeof *v, numeric ? cmp_numbers : cmp_bytes);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (i == 0 || strcmp(v[i].s, v[i - 1].s) != 0)
			k++;
	if (k > INT32_MAX || !(t->classes = calloc(k ? k : 1, sizeof *t->classes)))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || strcmp(v[i].s, v[i - 1].s) != 0)
			if (!(t->classes[t->nclasses++] = strdup(v[i].s)))
				return -1;
		t->label[v[i].row] = (int)t->nclasses - 1;
	}
	return 0;
}

static int label_binned(labels_task *t, const labels *lb, int col, const labels_task_spec *spec, char *err,
                        size_t errlen)
{
	if (!(t->classes = calloc(3, sizeof *t->classes)))
		return -1;
	for (t->nclasses = 0; t->nclasses < 3; t->nclasses++)
		if (!(t->classes[t->nclasses] = strdup(bin_names[t->nclasses])))
			return -1;
	t->binned = true;
	for (size_t row = 0; row < lb->nrows; row++) {
		const cell *c = &lb->cells[row * lb->ncols + (size_t)col];
		const char *s = text_at(lb, c->off);
		double v;
		t->value[row] = NAN;
		t->label[row] = LABELS_NONE;
		if (!*s)
			continue;
		if (!parse_rating(s, &v)) {
			msg(err, errlen, "%s:%lu:%lu: %s: '%s' is not a number", lb->path, c->line, c->col, t->column, s);
			return -2;
		}
		if (v < spec->range[0] || v > spec->range[1]) {
			msg(err, errlen, "%s:%lu:%lu: %s: rating %s is outside [%g, %g]", lb->path, c->line, c->col,
			    t->column, s, spec->range[0], spec->range[1]);
			return -2;
		}
		t->value[row] = v;
		t->label[row] = labels_bin(v, spec->edges);
	}
	return 0;
}

static int label_category(labels_task *t, const labels *lb, int col, const labels_task_spec *spec, char *err,
                          size_t errlen)
{
	const char *drop = spec->category_drop ? spec->category_drop : "";
	int class_of[sizeof LABELS_CATEGORY_CODES];
	if (!(t->classes = calloc(sizeof LABELS_CATEGORY_CODES, sizeof *t->classes)))
		return -1;
	for (size_t i = 0; LABELS_CATEGORY_CODES[i]; i++) {
		class_of[i] = LABELS_DROPPED;
		if (dropped(drop, LABELS_CATEGORY_CODES[i]))
			continue;
		if (!(t->classes[t->nclasses] = strdup(category_names[i])))
			return -1;
		class_of[i] = (int)t->nclasses++;
	}
	for (size_t row = 0; row < lb->nrows; row++) {
		const cell *c = &lb->cells[row * lb->ncols + (size_t)col];
		const char *s = text_at(lb, c->off);
		const char *p = s[0] && !s[1] ? strchr(LABELS_CATEGORY_CODES, s[0]) : NULL;
		t->value[row] = NAN;
		t->label[row] = LABELS_NONE;
		if (!*s)
			continue;
		if (!p) {
			msg(err, errlen, "%s:%lu:%lu: %s: '%s' is not an EmoClass code (A, S, H, U, F, D, C, N, O, X)",
			    lb->path, c->line, c->col, t->column, s);
			return -2;
		}
		t->label[row] = class_of[p - LABELS_CATEGORY_CODES];
	}
	return 0;
}

static int label_distinct(labels_task *t, const labels *lb, int col)
{
	named_row *v = malloc((lb->nrows ? lb->nrows : 1) * sizeof *v);
	if (!v)
		return -1;
	size_t n = 0;
	for (size_t row = 0; row < lb->nrows; row++) {
		const char *s = col == lb->speaker_col ? labels_speaker(lb, row) : labels_cell(lb, row, col);
		t->value[row] = NAN;
		t->label[row] = LABELS_NONE;
		if (s && *s)
			v[n++] = (named_row){s, row};
	}
	int rc = make_classes(t, v, n);
	free(v);
	return rc;
}

labels_task *labels_task_new(const labels *lb, const labels_task_spec *spec, char *err, size_t errlen)
{
	if (labels_task_check(spec, err, errlen))
		return NULL;
	labels_task *t = calloc(1, sizeof *t);
	if (!t)
		goto nomem;
	static const char *const names[] = {"arousal", "valence", "dominance", "category", "speaker"};
	char *name = NULL;
	if (spec->kind == LABELS_COLUMN) {
		name = malloc(strlen(spec->column) + 8);
		if (name)
			sprintf(name, "column:%s", spec->column);
	} else {
		name = strdup(names[spec->kind]);
	}
	t->name = name;
	t->label = malloc((lb->nrows ? lb->nrows : 1) * sizeof *t->label);
	t->value = malloc((lb->nrows ? lb->nrows : 1) * sizeof *t->value);
	if (!t->name || !t->label || !t->value)
		goto nomem;
	const char *colname = spec->kind == LABELS_COLUMN     ? spec->column
	                      : spec->kind == LABELS_CATEGORY ? LABELS_MSP_CATEGORY
	                      : spec->kind == LABELS_SPEAKER  ? NULL
	                                                      : dim_columns[spec->kind];
	int col;
	if (spec->kind == LABELS_SPEAKER) {
		if (lb->speaker_col < 0) {
			msg(err, errlen, "%s: task speaker needs a speaker column, and the file has none", lb->path);
			goto fail;
		}
		col = lb->speaker_col;
	} else {
		char why[300];
		snprintf(why, sizeof why, "task %s", t->name);
		if (require_column(lb, colname, false, why, &col, err, errlen))
			goto fail;
	}
	t->column = lb->colnames[col];
	int rc;
	if (spec->kind == LABELS_CATEGORY)
		rc = label_category(t, lb, col, spec, err, errlen);
	else if (spec->kind == LABELS_SPEAKER || spec->categorical)
		rc = label_distinct(t, lb, col);
	else
		rc = label_binned(t, lb, col, spec, err, errlen);
	if (rc == -1)
		goto nomem;
	if (rc)
		goto fail;
	return t;
nomem:
	msg(err, errlen, "%s: out of memory", lb->path);
fail:
	labels_task_free(t);
	return NULL;
}

void labels_task_free(labels_task *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nclasses; i++)
		free(t->classes[i]);
	free(t->classes);
	free(t->label);
	free(t->value);
	free(t->name);
	free(t);
}

const char *labels_task_name(const labels_task *t) { return t->name; }
const char *labels_task_column(const labels_task *t) { return t->column; }
bool labels_task_binned(const labels_task *t) { return t->binned; }
size_t labels_task_nclasses(const labels_task *t) { return t->nclasses; }
const char *labels_task_class(const labels_task *t, size_t cls) { return t->classes[cls]; }
int labels_task_label(const labels_task *t, size_t row) { return t->label[row]; }
double labels_task_value(const labels_task *t, size_t row) { return t->value[row]; }

/* ---- statistics ---- */

double labels_pearson(const double *x, const double *y, size_t n)
{
	if (n < 2)
		return NAN;
	double mx = 0, my = 0;
	for (size_t i = 0; i < n; i++) {
		mx += x[i];
		my += y[i];
	}
	mx /= (double)n;
	my /= (double)n;
	double sxy = 0, sxx = 0, syy = 0;
	for (size_t i = 0; i < n; i++) {
		double dx = x[i] - mx, dy = y[i] - my;
		sxy += dx * dy;
		sxx += dx * dx;
		syy += dy * dy;
	}
	if (sxx == 0 || syy == 0)
		return NAN;
	double r = sxy / sqrt(sxx * syy);
	return r > 1 ? 1 : r < -1 ? -1 : r;
}

int labels_dim_stats_compute(const labels *lb, const labels_task *const dims[3], const bool *use,
                             labels_dim_stats *out)
{
	static const int pairs[3][2] = {{0, 1}, {0, 2}, {1, 2}};
	memset(out, 0, sizeof *out);
	size_t cap = lb->nrows ? lb->nrows : 1;
	double *x = malloc(cap * sizeof *x), *y = malloc(cap * sizeof *y);
	if (!x || !y) {
		free(x);
		free(y);
		return -1;
	}
	for (size_t row = 0; row < lb->nrows; row++) {
		if (use && !use[row])
			continue;
		out->rows++;
		for (int d = 0; d < 3; d++) {
			int c = dims[d]->label[row];
			if (c >= 0) {
				out->n[d]++;
				out->counts[d][c]++;
			}
		}
	}
	for (int p = 0; p < 3; p++) {
		const labels_task *a = dims[pairs[p][0]], *b = dims[pairs[p][1]];
		size_t n = 0;
		for (size_t row = 0; row < lb->nrows; row++)
			if ((!use || use[row]) && !isnan(a->value[row]) && !isnan(b->value[row])) {
				x[n] = a->value[row];
				y[n++] = b->value[row];
			}
		out->r_n[p] = n;
		out->r[p] = labels_pearson(x, y, n);
	}
	free(x);
	free(y);
	return 0;
}
