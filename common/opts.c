#include "opts.h"

#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { PARSE_OK = 0, PARSE_ERROR = -1, PARSE_HELP = -2, PARSE_VERSION = -3 };
/* getopt_long's val for table entry i (above every letter) */
#define VAL_BASE 256
#define VAL_HELP 1000000
#define VAL_VERSION 1000001
#define HELP_COLUMN 25

size_t opts_count(const opts_spec *s)
{
	size_t n = 0;
	while (s->table[n].type != OPT_HEAD || s->table[n].help)
		n++;
	return n;
}

const opt_desc *opts_at(const opts_spec *s, size_t i) { return &s->table[i]; }

static bool takes_arg(const opt_desc *d) { return d->type != OPT_FLAG && d->type != OPT_UNSET; }

static void *field(void *dest, const opt_desc *d) { return (char *)dest + d->offset; }

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* "an integer in [1, 100000]", "a number in (0, 1000000]" */
static void range_text(const opt_desc *d, char *buf, size_t len)
{
	bool integral = d->type != OPT_DOUBLE;
	snprintf(buf, len, "%s in %c%.*g, %.*g%c", integral ? "an integer" : "a number",
	         d->flags & OPT_MIN_OPEN ? '(' : '[', integral ? 20 : 15, d->min, integral ? 20 : 15, d->max,
	         d->flags & OPT_MAX_OPEN ? ')' : ']');
}

static bool in_range(const opt_desc *d, double v)
{
	if (v < d->min || v > d->max || ((d->flags & OPT_MIN_OPEN) && v == d->min) ||
	    ((d->flags & OPT_MAX_OPEN) && v == d->max))
		return false;
	return !d->valid || d->valid(v);
}

static int set_choice(const opt_desc *d, void *dest, const char *arg, char *err, size_t errlen)
{
	for (int k = 0; d->choices[k]; k++)
		if (strcmp(arg, d->choices[k]) == 0) {
			*(int *)field(dest, d) = k;
			return 0;
		}
	char list[256] = "";
	for (int k = 0; d->choices[k]; k++) {
		size_t n = strlen(list);
		snprintf(list + n, sizeof list - n, "%s%s", k ? ", " : "", d->choices[k]);
	}
	seterr(err, errlen, "--%s: '%s': must be one of %s", d->name, arg, list);
	return -1;
}

static int set_size(const opt_desc *d, void *dest, const char *arg, char *err, size_t errlen)
{
	size_t v;
	if (!cli_parse_size(arg, &v) || (d->max > 0 && ((double)v < d->min || (double)v > d->max))) {
		if (d->max > 0)
			seterr(err, errlen, "--%s: '%s': must be a size in [%.20g, %.20g] bytes (K, M or G suffix)", d->name, arg,
			       d->min, d->max);
		else
			seterr(err, errlen, "--%s: '%s': must be a size in bytes (K, M or G suffix)", d->name, arg);
		return -1;
	}
	*(size_t *)field(dest, d) = v;
	return 0;
}

/* Stores arg (NULL for a flag) in d's field: 0, or -1 with err. */
static int set_value(const opt_desc *d, void *dest, const char *arg, char *err, size_t errlen)
{
	long l = 0;
	double x = 0;
	bool ok = true;
	switch (d->type) {
	case OPT_FLAG: *(bool *)field(dest, d) = true; return 0;
	case OPT_UNSET: *(bool *)field(dest, d) = false; return 0;
	case OPT_STRING: *(const char **)field(dest, d) = arg; return 0;
	case OPT_CHOICE: return set_choice(d, dest, arg, err, errlen);
	case OPT_INT:
	case OPT_U64:
		ok = cli_parse_long(arg, LONG_MIN, LONG_MAX, &l) && in_range(d, (double)l);
		break;
	case OPT_DOUBLE: ok = cli_parse_double(arg, -1e308, 1e308, &x) && in_range(d, x); break;
	case OPT_SIZE: return set_size(d, dest, arg, err, errlen);
	case OPT_HEAD: abort();
	}
	if (!ok) {
		char range[96];
		range_text(d, range, sizeof range);
		seterr(err, errlen, "--%s: '%s': must %s%s", d->name, arg, d->must ? "" : "be ", d->must ? d->must : range);
		return -1;
	}
	if (d->type == OPT_INT)
		*(int *)field(dest, d) = (int)l;
	else if (d->type == OPT_U64)
		*(uint64_t *)field(dest, d) = (uint64_t)l;
	else
		*(double *)field(dest, d) = x;
	return 0;
}

/* An alias (an old spelling) shares its field with an earlier entry, whose
 * default stands. */
static bool is_alias(const opts_spec *s, const opt_desc *d)
{
	for (const opt_desc *e = s->table; e < d; e++)
		if (e->type != OPT_HEAD && !(e->flags & OPT_REFUSED) && e->offset == d->offset)
			return true;
	return false;
}

void opts_defaults(const opts_spec *s, void *dest)
{
	char err[256];
	for (const opt_desc *d = s->table; d->type != OPT_HEAD || d->help; d++) {
		if (d->type == OPT_HEAD || (d->flags & OPT_REFUSED) || is_alias(s, d))
			continue;
		if (d->type == OPT_FLAG || d->type == OPT_UNSET)
			*(bool *)field(dest, d) = d->type == OPT_UNSET;
		else if (d->type == OPT_STRING)
			*(const char **)field(dest, d) = d->def;
		else if (!d->def && d->type == OPT_CHOICE)
			*(int *)field(dest, d) = 0;
		else if (!d->def && d->type == OPT_INT)
			*(int *)field(dest, d) = 0;
		else if (!d->def && d->type == OPT_U64)
			*(uint64_t *)field(dest, d) = 0;
		else if (!d->def && d->type == OPT_SIZE)
			*(size_t *)field(dest, d) = 0;
		else if (!d->def)
			*(double *)field(dest, d) = 0;
		else if (set_value(d, dest, d->def, err, sizeof err))
			cli_die(s->prog, EXIT_RUNTIME, "option table: default of %s", err);
	}
}

/* getopt_long's tables from the option table; n = opts_count(s). */
static struct option *long_options(const opts_spec *s, size_t n, char *shorts)
{
	struct option *lo = calloc(n + 3, sizeof *lo);
	if (!lo)
		cli_die(s->prog, EXIT_RUNTIME, "out of memory");
	size_t k = 0, c = 0;
	shorts[c++] = ':'; /* missing arguments reported as ':', not by getopt */
	for (size_t i = 0; i < n; i++) {
		const opt_desc *d = &s->table[i];
		if (d->type == OPT_HEAD)
			continue;
		if (d->name)
			lo[k++] = (struct option){d->name, takes_arg(d) ? required_argument : no_argument, NULL, VAL_BASE + (int)i};
		if (d->letter) {
			shorts[c++] = d->letter;
			if (takes_arg(d))
				shorts[c++] = ':';
		}
	}
	lo[k++] = (struct option){"help", no_argument, NULL, VAL_HELP};
	lo[k++] = (struct option){"version", no_argument, NULL, VAL_VERSION};
	shorts[c] = '\0';
	return lo;
}

/* The table index of what getopt_long returned, or -1 for an error. */
static long entry_of(const opts_spec *s, size_t n, int c)
{
	if (c >= VAL_BASE && (size_t)(c - VAL_BASE) < n)
		return c - VAL_BASE;
	for (size_t i = 0; i < n && c > 0 && c < VAL_BASE; i++)
		if (s->table[i].letter == c && s->table[i].type != OPT_HEAD)
			return (long)i;
	return -1;
}

static void getopt_error(const opts_spec *s, size_t n, int c, char **argv, char *err, size_t errlen)
{
	long i = entry_of(s, n, optopt);
	const char *word = argv[optind - 1];
	if (c == ':' && i >= 0)
		seterr(err, errlen, "--%s: needs an argument", s->table[i].name);
	else if (c == ':')
		seterr(err, errlen, "%s: needs an argument", word);
	else if (optopt && optopt < VAL_BASE)
		seterr(err, errlen, "unknown option '-%c'", optopt);
	else
		seterr(err, errlen, "unknown or ambiguous option '%s'", word);
}

/* The parser behind opts_parse and opts_reapply: PARSE_* codes; *first is
 * the index of the first operand. */
static int parse(const opts_spec *s, void *dest, int argc, char **argv, bool *given, bool saved, int *first,
                 char *err, size_t errlen)
{
	size_t n = opts_count(s);
	char *shorts = malloc(2 * n + 2);
	if (!shorts)
		cli_die(s->prog, EXIT_RUNTIME, "out of memory");
	struct option *lo = long_options(s, n, shorts);
	int c, rc = PARSE_OK;
	opterr = 0;
	optind = 0; /* glibc: a full restart, also of its permutation state */
	while (rc == PARSE_OK && (c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		long i = entry_of(s, n, c);
		if (c == VAL_HELP || c == VAL_VERSION)
			rc = saved ? (seterr(err, errlen, "--%s: not a setting", c == VAL_HELP ? "help" : "version"), PARSE_ERROR)
			           : c == VAL_HELP ? PARSE_HELP : PARSE_VERSION;
		else if (i < 0)
			rc = (getopt_error(s, n, c, argv, err, errlen), PARSE_ERROR);
		else if (s->table[i].flags & OPT_REFUSED)
			rc = (seterr(err, errlen, "%s", s->table[i].must), PARSE_ERROR);
		else if (saved && !(s->table[i].flags & OPT_PERSIST))
			rc = (seterr(err, errlen, "--%s: not a saved setting", s->table[i].name), PARSE_ERROR);
		else if (set_value(&s->table[i], dest, optarg, err, errlen))
			rc = PARSE_ERROR;
		else if (given)
			given[i] = true;
	}
	*first = optind;
	free(shorts);
	free(lo);
	return rc;
}

int opts_parse(const opts_spec *s, void *dest, int argc, char **argv, bool *given)
{
	char err[512];
	int first;
	if (given)
		memset(given, 0, opts_count(s) * sizeof *given);
	switch (parse(s, dest, argc, argv, given, false, &first, err, sizeof err)) {
	case PARSE_HELP:
		fputs(s->usage, stdout);
		opts_help(s, stdout);
		if (s->epilog)
			fputs(s->epilog, stdout);
		cli_close_stdout(s->prog); /* --help > /dev/full is an error, as for any output */
		exit(0);
	case PARSE_VERSION: cli_version(s->prog);
	case PARSE_ERROR: cli_usage_error(s->prog, "%s", err);
	}
	return first;
}

int opts_reapply(const opts_spec *s, void *dest, const sv *args, char *err, size_t errlen)
{
	if (!args || args->kind != SV_ARRAY || args->u.arr.n == 0 || args->u.arr.n > INT_MAX) {
		seterr(err, errlen, "not a list of saved settings");
		return -1;
	}
	char **argv = calloc(args->u.arr.n + 1, sizeof *argv);
	if (!argv)
		cli_die(s->prog, EXIT_RUNTIME, "out of memory");
	for (size_t i = 0; i < args->u.arr.n; i++) {
		if (args->u.arr.items[i]->kind != SV_STR) {
			free(argv);
			seterr(err, errlen, "saved setting %zu is not a string", i);
			return -1;
		}
		argv[i] = args->u.arr.items[i]->u.str.ptr;
	}
	int first, argc = (int)args->u.arr.n;
	int rc = parse(s, dest, argc, argv, NULL, true, &first, err, errlen);
	if (rc == PARSE_OK && first < argc) {
		seterr(err, errlen, "unexpected saved argument '%s'", argv[first]);
		rc = PARSE_ERROR;
	}
	free(argv);
	return rc == PARSE_OK ? 0 : -1;
}

bool opts_was_given(const opts_spec *s, const bool *given, const char *name)
{
	size_t n = opts_count(s);
	for (size_t i = 0; i < n; i++)
		if (s->table[i].name && strcmp(s->table[i].name, name) == 0)
			return given[i];
	abort();
}

const opt_desc *opts_given_except(const opts_spec *s, const bool *given, unsigned allowed)
{
	size_t n = opts_count(s);
	for (size_t i = 0; i < n; i++)
		if (given[i] && !(s->table[i].flags & allowed))
			return &s->table[i];
	return NULL;
}

static int push(sv *args, const char *a) { return sv_push(args, sv_str(a)); }

/* The value of a persisted option as written on a command line into buf
 * (or *out for strings); false when nothing is to be written. */
static bool persisted_value(const opt_desc *d, const void *src, char *buf, size_t len, const char **out)
{
	const void *f = (const char *)src + d->offset;
	*out = buf;
	switch (d->type) {
	case OPT_FLAG: return *(const bool *)f;
	case OPT_UNSET: return !*(const bool *)f;
	case OPT_INT: snprintf(buf, len, "%d", *(const int *)f); return true;
	case OPT_U64: snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)f); return true;
	case OPT_DOUBLE: snprintf(buf, len, "%.17g", *(const double *)f); return true;
	case OPT_SIZE: snprintf(buf, len, "%zu", *(const size_t *)f); return true;
	case OPT_CHOICE: *out = d->choices[*(const int *)f]; return true;
	case OPT_STRING: *out = *(const char *const *)f; return *out != NULL;
	case OPT_HEAD: break;
	}
	return false;
}

int opts_persist(const opts_spec *s, const void *src, sv *args)
{
	for (const opt_desc *d = s->table; d->type != OPT_HEAD || d->help; d++) {
		char buf[64], name[128];
		const char *value;
		if (!(d->flags & OPT_PERSIST) || !persisted_value(d, src, buf, sizeof buf, &value))
			continue;
		snprintf(name, sizeof name, "--%s", d->name);
		if (push(args, name))
			return -1;
		if (!takes_arg(d))
			continue;
		char *abs = (d->flags & OPT_PATH) && strcmp(value, "-") ? realpath(value, NULL) : NULL;
		int rc = push(args, abs ? abs : value);
		free(abs);
		if (rc)
			return -1;
	}
	return 0;
}

/* "  -o, --output RUNDIR" */
static int option_words(const opt_desc *d, char *buf, size_t len)
{
	char letter[8] = "    ";
	if (d->letter && !(d->flags & OPT_HIDE_LETTER))
		snprintf(letter, sizeof letter, "-%c, ", d->letter);
	return snprintf(buf, len, "  %s--%s%s%s", letter, d->name, takes_arg(d) ? " " : "",
	                takes_arg(d) ? (d->arg ? d->arg : "ARG") : "");
}

void opts_help(const opts_spec *s, FILE *f)
{
	for (const opt_desc *d = s->table; d->type != OPT_HEAD || d->help; d++) {
		if (d->flags & OPT_HIDDEN)
			continue;
		if (d->type == OPT_HEAD) {
			fprintf(f, "%s\n", d->help);
			continue;
		}
		char words[128];
		int w = option_words(d, words, sizeof words);
		fputs(words, f);
		if (w >= HELP_COLUMN - 1)
			fprintf(f, "\n%*s", HELP_COLUMN, "");
		else
			fprintf(f, "%*s", HELP_COLUMN - w, "");
		size_t col = HELP_COLUMN;
		for (const char *h = d->help ? d->help : ""; *h; h++, col++) {
			fputc(*h, f);
			if (*h == '\n') {
				fprintf(f, "%*s", HELP_COLUMN, "");
				col = HELP_COLUMN - 1;
			}
		}
		/* the default on a line of its own when it would pass column 80 */
		if (d->def && col > HELP_COLUMN && col + strlen(d->def) + 11 > 80)
			fprintf(f, "\n%*s(default %s)", HELP_COLUMN, "", d->def);
		else if (d->def)
			fprintf(f, "%s(default %s)", col > HELP_COLUMN ? " " : "", d->def);
		fputc('\n', f);
	}
	fputs("      --help             print this help and exit\n"
	      "      --version          print the version and exit\n", f);
}

static void dump_line(const opt_desc *d, const void *src, FILE *f)
{
	static const char *const types[] = {"head", "flag", "unset", "int", "u64", "double", "string", "choice", "size"};
	static const char *const flag_names[] = {"persist", "path", "min-open", "max-open",
	                                         "keep", "hidden", "hide-letter", "refused"};
	char buf[64];
	const char *value;
	if (d->name)
		fprintf(f, "%s\t%s\t", d->name, types[d->type]);
	else
		fprintf(f, "-%c\t%s\t", d->letter, types[d->type]);
	for (int k = 0, n = 0; k < (int)(sizeof flag_names / sizeof *flag_names); k++)
		if (d->flags & (1u << k))
			fprintf(f, "%s%s", n++ ? "," : "", flag_names[k]);
	fprintf(f, "\t%.17g\t%.17g\t", d->min, d->max);
	for (int k = 0; d->type == OPT_CHOICE && d->choices[k]; k++)
		fprintf(f, "%s%s", k ? "," : "", d->choices[k]);
	if (d->flags & OPT_REFUSED) /* no field of its own */
		value = "";
	else if (d->type == OPT_FLAG || d->type == OPT_UNSET)
		value = *(const bool *)((const char *)src + d->offset) ? "1" : "0";
	else if (!persisted_value(d, src, buf, sizeof buf, &value))
		value = "";
	fprintf(f, "\t%s\n", value);
}

int opts_dump(const opts_spec *s, const void *src, FILE *f)
{
	for (const opt_desc *d = s->table; d->type != OPT_HEAD || d->help; d++)
		if (d->type != OPT_HEAD)
			dump_line(d, src, f);
	sv *args = sv_array();
	int rc = !args || sv_push(args, sv_str(s->prog)) || opts_persist(s, src, args) ? -1 : 0;
	fputs("persisted\t", f);
	if (rc == 0 && sv_print_json(args, f))
		rc = -1;
	fputc('\n', f);
	sv_free(args);
	return rc || ferror(f) ? -1 : 0;
}

void opts_ckpt_and_stream(const opts_spec *s, int first, int argc, char **argv, const char **ckpt,
                          const char **stream)
{
	if (first >= argc)
		cli_usage_error(s->prog, "need a checkpoint");
	if (argc - first > 2)
		cli_usage_error(s->prog, "unexpected argument '%s'", argv[first + 2]);
	*ckpt = argv[first];
	*stream = first + 1 < argc ? argv[first + 1] : "-";
	if (!strcmp(*ckpt, "-") && !strcmp(*stream, "-"))
		cli_usage_error(s->prog, "stdin can be read only once: name the checkpoint or the stream");
}
