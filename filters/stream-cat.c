/* stream-cat - concatenate, select, validate and inspect sertools streams. */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "keyset.h"
#include "opts.h"
#include "stream.h"

static const char *prog = "stream-cat";

static const char usage[] =
	"Usage: stream-cat [OPTION]... [STREAM]...\n"
	"Concatenate sertools streams (stdin when none or '-') into one valid stream,\n"
	"or inspect them.  Every input is read to its end record: a truncated or\n"
	"malformed stream is an error (exit 2), never a shorter result.\n"
	"\n";

static const char epilog[] =
	"\n"
	"Streams are joined only when their header params agree; stats that count\n"
	"things (integers, integer arrays) are summed, in the headers and in the end\n"
	"records (binlabels' class counts; not kept with --head or --keys).\n"
	"\n"
	"Examples:\n"
	"  stream-cat part1.msgpack part2.msgpack > all.msgpack\n"
	"  stream-cat --info feats.msgpack\n"
	"  audio-read *.wav | stream-cat --list --head 5\n";

enum { MODE_CAT, MODE_INFO, MODE_LIST };

typedef struct {
	char *name;
	st_dtype dtype;
	int ndim;
	int64_t min_shape[ST_MAX_DIMS], max_shape[ST_MAX_DIMS];
	uint64_t count, values, nonfinite;
	double min, max, sum;
} tensor_summary;

typedef struct {
	tensor_summary *t;
	size_t n, cap;
	/* waveforms: each item's key and length, for durations (like soxi) */
	char **wave_keys;
	uint64_t *wave_samples;
	size_t nwave, capwave;
} summary;

static void note_wave(summary *s, const char *key, const st_tensor *t)
{
	if (strcmp(t->name, "wave") != 0 || t->ndim != 1)
		return;
	if (s->nwave == s->capwave) {
		s->capwave = s->capwave ? 2 * s->capwave : 256;
		s->wave_keys = realloc(s->wave_keys, s->capwave * sizeof *s->wave_keys);
		s->wave_samples = realloc(s->wave_samples, s->capwave * sizeof *s->wave_samples);
		if (!s->wave_keys || !s->wave_samples)
			cli_die(prog, EXIT_RUNTIME, "out of memory");
	}
	if (!(s->wave_keys[s->nwave] = strdup(key)))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	s->wave_samples[s->nwave++] = (uint64_t)t->shape[0];
}

static void summarise(summary *s, const st_tensor *t)
{
	tensor_summary *ts = NULL;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->t[i].name, t->name) == 0)
			ts = &s->t[i];
	if (!ts) {
		if (s->n == s->cap) {
			s->cap = s->cap ? 2 * s->cap : 8;
			s->t = realloc(s->t, s->cap * sizeof *s->t);
			if (!s->t)
				cli_die(prog, EXIT_RUNTIME, "out of memory");
		}
		ts = &s->t[s->n++];
		memset(ts, 0, sizeof *ts);
		if (!(ts->name = strdup(t->name)))
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		ts->dtype = t->dtype;
		ts->ndim = t->ndim;
		for (int d = 0; d < t->ndim; d++)
			ts->min_shape[d] = ts->max_shape[d] = t->shape[d];
		ts->min = INFINITY;
		ts->max = -INFINITY;
	}
	if (ts->dtype != t->dtype || ts->ndim != t->ndim)
		ts->ndim = -1; /* mixed: reported as such */
	for (int d = 0; ts->ndim >= 0 && d < t->ndim; d++) {
		if (t->shape[d] < ts->min_shape[d])
			ts->min_shape[d] = t->shape[d];
		if (t->shape[d] > ts->max_shape[d])
			ts->max_shape[d] = t->shape[d];
	}
	ts->count++;
	size_t n = st_tensor_numel(t);
	/* per-dtype loops: the compiler keeps each one tight */
#define SUMMARISE(type)                                                          \
	do {                                                                     \
		const type *p = t->data;                                         \
		double lo = ts->min, hi = ts->max, sum = 0;                      \
		uint64_t bad = 0;                                                \
		for (size_t i = 0; i < n; i++) {                                 \
			double v = (double)p[i];                                 \
			if (!isfinite(v)) {                                      \
				bad++;                                           \
				continue;                                        \
			}                                                        \
			lo = v < lo ? v : lo;                                    \
			hi = v > hi ? v : hi;                                    \
			sum += v;                                                \
		}                                                                \
		ts->min = lo, ts->max = hi, ts->sum += sum;                      \
		ts->nonfinite += bad, ts->values += n - bad;                     \
	} while (0)
	switch (t->dtype) {
	case ST_F32: SUMMARISE(float); break;
	case ST_F64: SUMMARISE(double); break;
	case ST_I32: SUMMARISE(int32_t); break;
	case ST_I64: SUMMARISE(int64_t); break;
	case ST_U8: SUMMARISE(unsigned char); break;
	}
#undef SUMMARISE
}

static sv *must(sv *v)
{
	if (!v)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	return v;
}

static void put(sv *map, const char *key, sv *v)
{
	if (!v || sv_set(map, key, v))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
}

/* A tensor's shape: [10, 64], or [[10, 13], 64] where items differ. */
static sv *shape_value(const tensor_summary *ts)
{
	sv *shape = must(sv_array());
	for (int d = 0; d < ts->ndim; d++) {
		sv *dim = must(ts->min_shape[d] == ts->max_shape[d] ? sv_int(ts->min_shape[d]) : sv_array());
		if (dim->kind == SV_ARRAY && (sv_push(dim, sv_int(ts->min_shape[d])) || sv_push(dim, sv_int(ts->max_shape[d]))))
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		if (sv_push(shape, dim))
			cli_die(prog, EXIT_RUNTIME, "out of memory");
	}
	return shape;
}

static sv *tensors_value(const summary *s)
{
	sv *tensors = must(sv_map());
	for (size_t i = 0; i < s->n; i++) {
		const tensor_summary *ts = &s->t[i];
		sv *t = must(sv_map());
		put(t, "count", sv_int((int64_t)ts->count));
		if (ts->ndim < 0) {
			put(t, "mixed", sv_bool(true));
		} else {
			put(t, "dtype", sv_str(st_dtype_str(ts->dtype)));
			put(t, "shape", shape_value(ts));
		}
		if (ts->values) {
			put(t, "min", sv_float(ts->min));
			put(t, "max", sv_float(ts->max));
			put(t, "mean", sv_float(ts->sum / (double)ts->values));
		}
		put(t, "nonfinite", sv_int((int64_t)ts->nonfinite));
		put(tensors, ts->name, t);
	}
	return tensors;
}

/* Waveform durations in seconds, total and per item, as soxi reports
 * them; NULL when the stream holds no waveforms or no sample rate. */
static sv *duration_value(const summary *s, const sv *header)
{
	int64_t rate;
	const sv *params = sv_get(header, "params");
	if (!s->nwave || !params || !sv_get_int(params, "sample_rate", &rate) || rate <= 0)
		return NULL;
	sv *d = must(sv_map()), *items = must(sv_array());
	uint64_t total = 0;
	for (size_t i = 0; i < s->nwave; i++) {
		sv *it = must(sv_map());
		put(it, "key", sv_str(s->wave_keys[i]));
		put(it, "seconds", sv_float((double)s->wave_samples[i] / (double)rate));
		put(it, "samples", sv_int((int64_t)s->wave_samples[i]));
		if (sv_push(items, it))
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		total += s->wave_samples[i];
	}
	put(d, "sample_rate", sv_int(rate));
	put(d, "seconds", sv_float((double)total / (double)rate));
	put(d, "samples", sv_int((int64_t)total));
	put(d, "items", items);
	return d;
}

static void print_tensor_line(const tensor_summary *ts)
{
	printf("tensor %s: %llu items, ", ts->name, (unsigned long long)ts->count);
	if (ts->ndim < 0) {
		fputs("mixed dtype/rank", stdout);
	} else {
		printf("%s (", st_dtype_str(ts->dtype));
		for (int d = 0; d < ts->ndim; d++)
			printf(ts->min_shape[d] == ts->max_shape[d] ? "%s%lld" : "%s%lld..%lld", d ? ", " : "",
			       (long long)ts->min_shape[d], (long long)ts->max_shape[d]);
		putchar(')');
	}
	if (ts->values)
		printf(", min %.6g, max %.6g, mean %.6g", ts->min, ts->max, ts->sum / (double)ts->values);
	if (ts->nonfinite)
		printf(", NON-FINITE VALUES: %llu", (unsigned long long)ts->nonfinite);
	putchar('\n');
}

static void print_durations(const sv *d)
{
	double total;
	int64_t rate, samples;
	sv_get_num(d, "seconds", &total);
	sv_get_int(d, "sample_rate", &rate);
	sv_get_int(d, "samples", &samples);
	const sv *items = sv_get(d, "items");
	printf("duration: %.3f s (%d:%02d:%06.3f) = %lld samples at %lld Hz, %zu items\n", total, (int)(total / 3600),
	       (int)(fmod(total, 3600) / 60), fmod(total, 60), (long long)samples, (long long)rate, items->u.arr.n);
	for (size_t i = 0; i < items->u.arr.n; i++) {
		double sec;
		const sv *it = items->u.arr.items[i];
		sv_get_num(it, "seconds", &sec);
		sv_get_int(it, "samples", &samples);
		printf("  %s\t%.3f s\t%lld samples\n", sv_get_str(it, "key"), sec, (long long)samples);
	}
}

/* --info: the files' own header (merged when several), item count, per
 * tensor dtype/shapes/values, waveform durations; pretty JSON with --json. */
static void print_info(sv *info, const summary *s, bool json)
{
	sv *dur = duration_value(s, sv_get(info, "header"));
	if (dur)
		put(info, "duration", dur);
	if (json) {
		put(info, "tensors", tensors_value(s));
		sv_print_json_pretty(info, stdout);
		putchar('\n');
		return;
	}
	const sv *files = sv_get(info, "files");
	for (size_t i = 0; i < files->u.arr.n; i++)
		printf("%s%s", i ? ", " : "file: ", files->u.arr.items[i]->u.str.ptr);
	fputs("\nheader: ", stdout);
	sv_print_json_pretty(sv_get(info, "header"), stdout);
	if (sv_get(info, "end_stats")) {
		fputs("\nend stats: ", stdout);
		sv_print_json(sv_get(info, "end_stats"), stdout);
	}
	int64_t items = 0;
	sv_get_int(info, "items", &items);
	printf("\nitems: %lld\n", (long long)items);
	for (size_t i = 0; i < s->n; i++)
		print_tensor_line(&s->t[i]);
	if (dur)
		print_durations(dur);
}

static void print_item(const st_item *it, bool json)
{
	if (json) {
		fputs("{\"key\":", stdout);
		sv_print_json_string(it->key, strlen(it->key), stdout);
		fputs(",\"tensors\":{", stdout);
		for (size_t i = 0; i < it->ntensors; i++) {
			const st_tensor *t = &it->tensors[i];
			if (i)
				putchar(',');
			sv_print_json_string(t->name, strlen(t->name), stdout);
			printf(":{\"dtype\":\"%s\",\"shape\":[", st_dtype_str(t->dtype));
			for (int d = 0; d < t->ndim; d++)
				printf(d ? ",%lld" : "%lld", (long long)t->shape[d]);
			fputs("]}", stdout);
		}
		fputs("},\"fields\":", stdout);
		sv_print_json(it->fields, stdout);
		puts("}");
		return;
	}
	fputs(it->key, stdout);
	for (size_t i = 0; i < it->ntensors; i++) {
		const st_tensor *t = &it->tensors[i];
		printf("\t%s:%s(", t->name, st_dtype_str(t->dtype));
		for (int d = 0; d < t->ndim; d++)
			printf(d ? ",%lld" : "%lld", (long long)t->shape[d]);
		putchar(')');
	}
	for (size_t i = 0; i < it->fields->u.map.n; i++) {
		printf("\t%s=", it->fields->u.map.keys[i]);
		const sv *v = it->fields->u.map.vals[i];
		if (v->kind == SV_STR)
			fputs(v->u.str.ptr, stdout);
		else
			sv_print_json(v, stdout);
	}
	putchar('\n');
}

typedef struct {
	int mode;
	bool info, list, json, missing_ok, finite, progress, quiet;
	unsigned read_flags;
	const char *output, *keys_file;
	uint64_t head_arg;
	long head; /* -1: all */
	size_t max_record;
} options;

#define F(field) offsetof(options, field)
/* -l is hidden: the letter means --list FILE in audio-read (formats/cli.md);
 * it stays accepted for old scripts. */
static const opt_desc options_table[] = {
	{"output", 'o', OPT_STRING, F(output), .arg = "FILE", .help = "write the stream to FILE atomically (default stdout)"},
	{"info", 'i', OPT_FLAG, F(info),
	 .help = "describe the input: its own header, the item count,\nper tensor dtype/shapes/min/max/mean/NaN count, and\nwaveform durations (total and per item, as soxi)"},
	{"list", 'l', OPT_FLAG, F(list), .help = "print one line per item: key, tensor shapes, fields",
	 .flags = OPT_HIDE_LETTER},
	{"head", 'n', OPT_U64, F(head_arg), .min = 0, .max = (double)LONG_MAX, .arg = "N", .help = "only the first N items"},
	{"keys", 'k', OPT_STRING, F(keys_file), .arg = "FILE",
	 .help = "only items whose key is listed in FILE (first word\nof each line); a listed key never seen is an error"},
	{"missing-ok", 0, OPT_FLAG, F(missing_ok), .help = "...unless this is given (then counted on stderr)"},
	{"json", 0, OPT_FLAG, F(json),
	 .help = "JSON: --info one multi-line document, --list one\nobject per line"},
	OPT_REFUSE('j', "-j: not an option (JSON output is --json, long only)"),
	{"finite", 0, OPT_FLAG, F(finite), .help = "refuse NaN and infinite values in float tensors"},
	OPT_MAX_RECORD(options),
	OPT_PROGRESS_QUIET(options),
	OPT_END,
};
#undef F

static const opts_spec spec = {"stream-cat", options_table, usage, epilog};

/* Returns the index of the first input in argv. */
static int parse_args(int argc, char **argv, options *o)
{
	bool given[sizeof options_table / sizeof *options_table];
	*o = (options){0};
	opts_defaults(&spec, o);
	int first = opts_parse(&spec, o, argc, argv, given);
	if (o->info && o->list)
		cli_usage_error(prog, "--info and --list are separate modes");
	o->mode = o->info ? MODE_INFO : o->list ? MODE_LIST : MODE_CAT;
	o->head = opts_was_given(&spec, given, "head") ? (long)o->head_arg : -1;
	o->read_flags = o->finite ? ST_READ_FINITE : 0;
	if (o->output && o->mode != MODE_CAT)
		cli_usage_error(prog, "--output goes with concatenation, not --info or --list");
	if (o->json && o->mode == MODE_CAT)
		cli_usage_error(prog, "--json goes with --info or --list");
	if (o->missing_ok && !o->keys_file)
		cli_usage_error(prog, "--missing-ok goes with --keys");
	int nstdin = 0;
	for (int i = first; i < argc; i++)
		nstdin += strcmp(argv[i], "-") == 0;
	if (nstdin > 1)
		cli_usage_error(prog, "standard input ('-') can be read only once");
	return first;
}

/* Opens every input and builds the output header from all of theirs: it
 * must be complete before any item is written. */
static sv *open_inputs(const options *o, int ninputs, char **inputs, st_reader **readers, int argc, char **argv)
{
	char err[ST_ERRLEN];
	sv *header = NULL;
	for (int i = 0; i < ninputs; i++) {
		readers[i] = st_reader_open(inputs[i], o->max_record, o->read_flags, err);
		if (!readers[i])
			cli_die(prog, EXIT_RUNTIME, "%s", err);
		if (!header) {
			header = st_header_derive(st_reader_header(readers[i]), prog, argc, argv);
			if (!header)
				cli_die(prog, EXIT_RUNTIME, "out of memory");
		} else if (st_header_merge(header, st_reader_header(readers[i]), st_reader_name(readers[i]), err)) {
			cli_die(prog, EXIT_RUNTIME, "%s", err);
		}
	}
	return header;
}

static void die_writing(st_writer *w, const char *fmt, const char *what)
{
	char msg[ST_ERRLEN];
	snprintf(msg, sizeof msg, fmt, what);
	st_writer_abort(w);
	cli_die(prog, EXIT_RUNTIME, "%s", msg);
}

/* The inputs' end-record stats, counts summed (st_stats_merge), into *acc:
 * a copy of the first input's, then folded with each next one's. */
static void fold_end_stats(sv **acc, const st_reader *r, bool first)
{
	const sv *es = st_reader_end_stats(r);
	if (first && es && !(*acc = sv_copy(es)))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	else if (!first && *acc)
		st_stats_merge(*acc, es);
}

/* Items of every input in turn, selected, to w or to the printer.  The
 * number selected; *stopped when --head cut the run short; *end_stats the
 * inputs' end-record stats summed (NULL when none, or when --keys or --head
 * select items: counts of the whole inputs would be wrong). */
static uint64_t run(const options *o, int ninputs, st_reader **readers, keyset *keys, st_writer *w, summary *sum,
                    bool *stopped, sv **end_stats)
{
	*end_stats = NULL;
	uint64_t selected = 0;
	st_item it;
	if (st_item_init(&it))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	bool stop = false;
	cli_progress pr;
	cli_progress_init(&pr, prog, o->progress, o->quiet);
	uint64_t read = 0;
	for (int i = 0; i < ninputs && !stop; i++) {
		st_reader *r = readers[i];
		int rc;
		while ((rc = st_reader_next(r, &it)) == ST_OK) {
			cli_progress_update(&pr, ++read, 0, "items");
			if (keys && !keyset_mark(keys, it.key))
				continue;
			if (o->head >= 0 && selected >= (uint64_t)o->head) {
				stop = true;
				break;
			}
			selected++;
			if (o->mode == MODE_LIST)
				print_item(&it, o->json);
			else if (o->mode == MODE_INFO)
				for (size_t t = 0; t < it.ntensors; t++) {
					summarise(sum, &it.tensors[t]);
					note_wave(sum, it.key, &it.tensors[t]);
				}
			else if (st_writer_put(w, &it))
				die_writing(w, "%s", st_writer_error(w));
		}
		if (!stop && rc != ST_END) {
			if (w)
				die_writing(w, "%s", st_reader_error(r));
			cli_die(prog, EXIT_RUNTIME, "%s", st_reader_error(r));
		}
		if (!keys && o->head < 0)
			fold_end_stats(end_stats, r, i == 0);
	}
	cli_progress_done(&pr, read, "items read");
	st_item_free(&it);
	*stopped = stop;
	return selected;
}

/* A listed key that never turned up is an error, unless --missing-ok. */
static void check_keys(const options *o, keyset *keys, st_writer *w, bool stopped)
{
	char names[ST_ERRLEN], msg[2 * ST_ERRLEN];
	size_t missing = keyset_unmarked(keys, names, sizeof names);
	if (!missing || stopped)
		return;
	if (o->missing_ok) {
		cli_warn(prog, "%s: %zu listed keys not found in the input", o->keys_file, missing);
		return;
	}
	snprintf(msg, sizeof msg, "%s: %zu listed keys not found in the input (%s)", o->keys_file, missing, names);
	if (w)
		st_writer_abort(w);
	cli_die(prog, EXIT_RUNTIME, "%s", msg);
}

/* --info's own view: the inputs' names and their own headers (merged when
 * several, as concatenation would), not the header stream-cat derives. */
static sv *info_start(int ninputs, st_reader **readers)
{
	char err[ST_ERRLEN];
	sv *info = must(sv_map()), *files = must(sv_array());
	sv *own = must(sv_copy(st_reader_header(readers[0])));
	for (int i = 0; i < ninputs; i++) {
		if (sv_push(files, sv_str(st_reader_name(readers[i]))))
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		if (i && st_header_merge(own, st_reader_header(readers[i]), st_reader_name(readers[i]), err))
			cli_die(prog, EXIT_RUNTIME, "%s", err);
	}
	put(info, "files", files);
	put(info, "header", own);
	return info;
}

static void info_finish(sv *info, uint64_t selected, const sv *end_stats, const summary *sum, bool json)
{
	if (end_stats)
		put(info, "end_stats", sv_copy(end_stats));
	put(info, "items", sv_int((int64_t)selected));
	print_info(info, sum, json);
	sv_free(info);
}

static void summary_free(summary *sum)
{
	for (size_t i = 0; i < sum->n; i++)
		free(sum->t[i].name);
	for (size_t i = 0; i < sum->nwave; i++)
		free(sum->wave_keys[i]);
	free(sum->t);
	free(sum->wave_keys);
	free(sum->wave_samples);
}

int main(int argc, char **argv)
{
	options o;
	int first = parse_args(argc, argv, &o);
	cli_stdout_init();
	char err[ST_ERRLEN];
	keyset *keys = NULL;
	if (o.keys_file && !(keys = keyset_load(o.keys_file, err, sizeof err)))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	int ninputs = argc - first;
	char *stdin_only[] = {"-"};
	char **inputs = ninputs ? argv + first : stdin_only;
	if (!ninputs)
		ninputs = 1;
	st_reader **readers = calloc((size_t)ninputs, sizeof *readers);
	if (!readers)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	sv *header = open_inputs(&o, ninputs, inputs, readers, argc, argv);
	sv *info = o.mode == MODE_INFO ? info_start(ninputs, readers) : NULL;
	st_writer *w = NULL;
	if (o.mode == MODE_CAT && !(w = st_writer_open(o.output, header, err)))
		cli_die(prog, EXIT_RUNTIME, "%s", err);

	summary sum = {0};
	bool stopped;
	sv *end_stats;
	uint64_t selected = run(&o, ninputs, readers, keys, w, &sum, &stopped, &end_stats);
	for (int i = 0; i < ninputs; i++)
		st_reader_close(readers[i]);
	free(readers);
	if (keys) {
		check_keys(&o, keys, w, stopped);
		keyset_free(keys);
	}
	if (o.mode == MODE_CAT) {
		sv *ws = end_stats ? st_writer_end_stats(w) : NULL;
		for (size_t i = 0; end_stats && i < end_stats->u.map.n; i++)
			if (!ws || sv_set(ws, end_stats->u.map.keys[i], sv_copy(end_stats->u.map.vals[i])))
				die_writing(w, "%s", "out of memory");
		if (st_writer_close(w, err))
			cli_die(prog, EXIT_RUNTIME, "%s", err);
	} else if (o.mode == MODE_INFO) {
		info_finish(info, selected, end_stats, &sum, o.json);
	}
	sv_free(end_stats);
	summary_free(&sum);
	sv_free(header);
	cli_close_stdout(prog);
	return 0;
}
