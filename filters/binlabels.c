/* binlabels - labels from an MSP-Podcast-style CSV onto stream items; key lists; label statistics. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic.h"
#include "cli.h"
#include "labels.h"
#include "opts.h"
#include "stream.h"

static const char *prog = "binlabels";

static const char usage[] =
	"Usage: binlabels (-c DIR | --csv FILE) --task TASK [OPTION]... [STREAM]\n"
	"       binlabels (-c DIR | --csv FILE) --keys-only [-s SPLITS] [--audio-dir DIR]\n"
	"       binlabels (-c DIR | --csv FILE) --stats [-s SPLITS] [--json]\n"
	"Attach class labels from an MSP-Podcast-style CSV to the items of a stream\n"
	"(stdin when STREAM is absent or '-'), keeping the items of the chosen splits;\n"
	"or list the keys of splits; or print the label statistics.\n"
	"\n";

static const char epilog[] =
	"\n"
	"Binning: low [1, A], mid (A, B), high [B, 7], ratings compared as parsed\n"
	"doubles; with the defaults 3.0 is low and 5.0 is high.\n"
	"\n"
	"Examples:\n"
	"  binlabels -c msp --task arousal -s Train < feats > train.msgpack\n"
	"  binlabels -c msp --keys-only -s Validation --audio-dir msp/Audios\n"
	"  binlabels --corpus msp --stats --split Train\n";

/* The paper's numbers for MSP-Podcast v1.7 Train, printed beside --stats. */
static const double paper_arousal_pct[3] = {9, 67, 24};
static const double paper_r_av = 0.2412, paper_r_ad = 0.7953;

typedef struct {
	const char *corpus, *csv, *task, *splits, *audio_dir, *output, *input;
	labels_source src;
	labels_task_spec spec;
	const char *edges, *range;
	bool drop_unlabelled, allow_empty, keys_only, stats, json, verbose, progress, quiet, categorical;
	size_t max_record;
	char *label_path;
} options;

#define F(field) offsetof(options, field)
/* -k and -t are hidden: those letters mean --keys FILE and --type elsewhere
 * (formats/cli.md); -j is hidden: it means --threads in melspec; all three
 * stay accepted for old scripts (pipelines/Makefile uses -t and -j). */
static const opt_desc options_table[] = {
	OPT_HEADING("Label file:"),
	{"corpus", 'c', OPT_STRING, F(corpus), .arg = "DIR",
	 .help = "DIR/Labels/labels_consensus.csv, or the v1.x\nspelling DIR/Labels/labels_concensus.csv"},
	{"csv", 0, OPT_STRING, F(csv), .arg = "FILE", .help = "any CSV with a header row"},
	{"key-column", 0, OPT_STRING, F(src.key_column), .def = LABELS_MSP_KEY, .arg = "NAME",
	 .help = "key column; a key is the cell's base name without\nextension: Audios/a_1.wav -> a_1"},
	{"key", 'k', OPT_STRING, F(src.key_column), .arg = "NAME", .flags = OPT_HIDDEN},
	{"key-verbatim", 0, OPT_FLAG, F(src.key_verbatim), .help = "use the key cell as it is"},
	{"split-column", 0, OPT_STRING, F(src.split_column), .def = LABELS_MSP_SPLIT, .arg = "NAME",
	 .help = "split column (when present)"},
	{"speaker-column", 0, OPT_STRING, F(src.speaker_column), .def = LABELS_MSP_SPEAKER, .arg = "NAME",
	 .help = "speaker column (when present)"},
	OPT_HEADING("Task:"),
	{"task", 't', OPT_STRING, F(task), .arg = "TASK", .flags = OPT_HIDE_LETTER,
	 .help = "arousal, valence, dominance (EmoAct, EmoVal, EmoDom,\nbinned), category (EmoClass), speaker, column:NAME"},
	{"edges", 0, OPT_STRING, F(edges), .def = "3,5", .arg = "A,B", .help = "rating <= A: low, >= B: high, else mid"},
	{"range", 0, OPT_STRING, F(range), .def = "1,7", .arg = "LO,HI", .help = "ratings accepted"},
	{"categorical", 0, OPT_FLAG, F(categorical), .help = "column:NAME: the classes are the column's values"},
	{"category-drop", 0, OPT_STRING, F(spec.category_drop), .def = "X", .arg = "L",
	 .help = "EmoClass codes to leave out ('' keeps all)"},
	OPT_HEADING("Selection:"),
	{"split", 's', OPT_STRING, F(splits), .arg = "LIST",
	 .help = "only rows of these splits (comma list, e.g.\nTrain,Validation)"},
	{"drop-unlabelled", 0, OPT_FLAG, F(drop_unlabelled),
	 .help = "drop items that have no label, with a count on\nstderr; without it they are an error and the output\nis abandoned"},
	{"allow-empty", 0, OPT_FLAG, F(allow_empty),
	 .help = "an empty result is not an error (default: --split\nthat matches no item, or no key, is one)"},
	OPT_HEADING("Modes and output:"),
	{"output", 'o', OPT_STRING, F(output), .arg = "FILE", .help = "write to FILE atomically (default stdout)"},
	{"keys-only", 0, OPT_FLAG, F(keys_only), .help = "print the keys of the selected rows, one a line"},
	{"audio-dir", 0, OPT_STRING, F(audio_dir), .arg = "DIR", .help = "...as 'key DIR/FILE' lines (FILE: the key cell)"},
	{"stats", 0, OPT_FLAG, F(stats),
	 .help = "per split: class counts and percentages of arousal,\nvalence, dominance, and Pearson's r between them"},
	{"json", 'j', OPT_FLAG, F(json), .help = "--stats as JSON", .flags = OPT_HIDE_LETTER},
	{"verbose", 'v', OPT_FLAG, F(verbose), .help = "print what was kept and filtered on stderr"},
	OPT_MAX_RECORD(options),
	OPT_PROGRESS_QUIET(options),
	OPT_END,
};
#undef F

static const opts_spec spec = {"binlabels", options_table, usage, epilog};

/* ---- the join: one item at a time ---- */

enum { ITEM_PASS, ITEM_OTHER_SPLIT, ITEM_DROPPED, ITEM_NO_ROW, ITEM_NO_VALUE };

typedef struct {
	const labels *lb;
	const labels_task *task;
	const bool *split_use;   /* per split; NULL keeps all */
	uint64_t read, outcome[5];
	uint64_t *class_counts;
	uint64_t *split_items;   /* input items per split of the label file */
	bool *row_seen;
	char missing[400];       /* the first few unlabelled keys */
	unsigned noted;
} join_state;

static void join_start(join_state *s, const labels *lb, const labels_task *task, const bool *split_use)
{
	memset(s, 0, sizeof *s);
	s->lb = lb;
	s->task = task;
	s->split_use = split_use;
	s->class_counts = calloc(labels_task_nclasses(task) + 1, sizeof *s->class_counts);
	s->row_seen = calloc(labels_rows(lb) + 1, sizeof *s->row_seen);
	s->split_items = calloc(labels_nsplits(lb) + 1, sizeof *s->split_items);
	if (!s->class_counts || !s->row_seen || !s->split_items)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
}

static void note_missing(join_state *s, const char *key)
{
	size_t n = strlen(s->missing);
	if (s->noted < 5)
		snprintf(s->missing + n, sizeof s->missing - n, "%s%s", n ? ", " : "", key);
	else if (s->noted == 5)
		snprintf(s->missing + n, sizeof s->missing - n, ", ...");
	s->noted++;
}

static void need(int rc)
{
	if (rc)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
}

static void set_field(st_item *it, const char *name, sv *v)
{
	need(st_item_set_field(it, name, v));
}

/* Decides one item's fate; a passing item gets its fields. */
static int join_flow(join_state *s, st_item *it)
{
	s->read++;
	ptrdiff_t row = labels_find(s->lb, it->key);
	int outcome, cls = LABELS_NONE;
	if (row < 0) {
		outcome = ITEM_NO_ROW;
	} else {
		s->row_seen[row] = true;
		cls = labels_task_label(s->task, (size_t)row);
		int split = labels_row_split(s->lb, (size_t)row);
		if (split >= 0)
			s->split_items[split]++;
		outcome = s->split_use && !s->split_use[split] ? ITEM_OTHER_SPLIT
		          : cls == LABELS_DROPPED             ? ITEM_DROPPED
		          : cls == LABELS_NONE                ? ITEM_NO_VALUE
		                                              : ITEM_PASS;
	}
	s->outcome[outcome]++;
	if (outcome == ITEM_NO_ROW || outcome == ITEM_NO_VALUE)
		note_missing(s, it->key);
	if (outcome != ITEM_PASS)
		return outcome;
	s->class_counts[cls]++;
	size_t r = (size_t)row;
	set_field(it, "label", sv_int(cls));
	set_field(it, "class", sv_str(labels_task_class(s->task, (size_t)cls)));
	if (labels_task_binned(s->task))
		set_field(it, "value", sv_float(labels_task_value(s->task, r)));
	else
		sv_unset(it->fields, "value");
	if (labels_has_splits(s->lb))
		set_field(it, "split", sv_str(labels_split_name(s->lb, (size_t)labels_row_split(s->lb, r))));
	else
		sv_unset(it->fields, "split");
	const char *speaker = labels_speaker(s->lb, r);
	if (speaker)
		set_field(it, "speaker", sv_str(speaker));
	else
		sv_unset(it->fields, "speaker");
	return outcome;
}

/* At the end of the input: unlabelled items are an error unless dropped. */
static void join_drain(join_state *s, const options *o, const char *input)
{
	uint64_t no_row = s->outcome[ITEM_NO_ROW], no_value = s->outcome[ITEM_NO_VALUE];
	if (!no_row && !no_value)
		return;
	char what[300];
	snprintf(what, sizeof what, "%llu with no row in %s, %llu with no value in column %s", (unsigned long long)no_row,
	         labels_path(s->lb), (unsigned long long)no_value, labels_task_column(s->task));
	if (!o->drop_unlabelled)
		cli_die(prog, EXIT_RUNTIME,
		        "%s: %llu items have no %s label (%s): %s; output abandoned, without its end record "
		        "(--drop-unlabelled drops them)",
		        input, (unsigned long long)(no_row + no_value), labels_task_name(s->task), what, s->missing);
	cli_warn(prog, "%s: dropped %llu items that have no %s label (%s): %s", input,
	         (unsigned long long)(no_row + no_value), labels_task_name(s->task), what, s->missing);
}

static void join_report(const join_state *s, const char *input)
{
	uint64_t unused = 0;
	for (size_t row = 0; row < labels_rows(s->lb); row++) {
		int split = labels_row_split(s->lb, row);
		if (!s->row_seen[row] && (!s->split_use || s->split_use[split]) &&
		    labels_task_label(s->task, row) >= 0)
			unused++;
	}
	fprintf(stderr,
	        "%s: %s: %llu items read, %llu labelled and written, %llu in other splits, %llu of dropped "
	        "categories, %llu with no row, %llu with no value; %llu label rows of the selected splits had no item\n",
	        prog, input, (unsigned long long)s->read, (unsigned long long)s->outcome[ITEM_PASS],
	        (unsigned long long)s->outcome[ITEM_OTHER_SPLIT], (unsigned long long)s->outcome[ITEM_DROPPED],
	        (unsigned long long)s->outcome[ITEM_NO_ROW], (unsigned long long)s->outcome[ITEM_NO_VALUE],
	        (unsigned long long)unused);
	fprintf(stderr, "%s: class counts:", prog);
	for (size_t c = 0; c < labels_task_nclasses(s->task); c++)
		fprintf(stderr, " %s %llu", labels_task_class(s->task, c), (unsigned long long)s->class_counts[c]);
	fputc('\n', stderr);
}

static void die_abandoning(st_writer *w, const char *msg);

/* --split that selects none of the input's items is surely a mistake (a
 * feature file of another split): name the splits the input holds. */
static void join_check_empty(const join_state *s, const options *o, const char *input, st_writer *w)
{
	uint64_t in_split = s->outcome[ITEM_PASS] + s->outcome[ITEM_DROPPED] + s->outcome[ITEM_NO_VALUE];
	if (!s->split_use || in_split > 0 || o->allow_empty)
		return;
	char present[400] = "";
	size_t n = 0;
	for (size_t i = 0; i < labels_nsplits(s->lb) && n < sizeof present; i++)
		if (s->split_items[i])
			n += (size_t)snprintf(present + n, sizeof present - n, "%s%s %llu", n ? ", " : "",
			                      labels_split_name(s->lb, i), (unsigned long long)s->split_items[i]);
	char msg[2 * ST_ERRLEN];
	snprintf(msg, sizeof msg,
	         "%.200s: no item is in --split %.200s (the input's items by split: %.400s; %llu with no row); output "
	         "abandoned (--allow-empty writes an empty stream)",
	         input, o->splits, n ? present : "none", (unsigned long long)s->outcome[ITEM_NO_ROW]);
	die_abandoning(w, msg);
}

static void join_stop(join_state *s)
{
	free(s->class_counts);
	free(s->row_seen);
	free(s->split_items);
}

/* ---- filter mode ---- */

/* The input's header with the task, its classes and the label source in
 * params.  The class counts go in the end record (stats.class_counts); a
 * header's own, from an earlier labelling, would be stale. */
static sv *output_header(const sv *in, const labels_task *task, const options *o, int argc, char **argv)
{
	sv *h = st_header_derive(in, prog, argc, argv);
	need(!h);
	sv *params = st_header_params(h), *classes = sv_array(), *src = sv_map();
	need(!params || !classes || !src);
	for (size_t c = 0; c < labels_task_nclasses(task); c++)
		need(sv_push(classes, sv_str(labels_task_class(task, c))));
	need(sv_set(src, "file", sv_str(o->label_path)));
	need(sv_set(src, "key", sv_str(o->src.key_column)));
	need(sv_set(src, "column", sv_str(labels_task_column(task))));
	if (labels_task_binned(task)) {
		sv *edges = sv_array(), *range = sv_array();
		need(!edges || !range);
		for (int i = 0; i < 2; i++) {
			need(sv_push(edges, sv_float(o->spec.edges[i])));
			need(sv_push(range, sv_float(o->spec.range[i])));
		}
		need(sv_set(src, "edges", edges));
		need(sv_set(src, "range", range));
	} else if (o->spec.kind == LABELS_CATEGORY) {
		need(sv_set(src, "drop", sv_str(o->spec.category_drop)));
	}
	need(sv_set(params, "task", sv_str(labels_task_name(task))));
	need(sv_set(params, "classes", classes));
	need(sv_set(params, "label_source", src));
	sv *stats = sv_get(h, "stats");
	if (stats)
		sv_unset(stats, "class_counts");
	return h;
}

static void die_abandoning(st_writer *w, const char *msg)
{
	char copy[ST_ERRLEN];
	snprintf(copy, sizeof copy, "%s", msg);
	st_writer_abort(w);
	cli_die(prog, EXIT_RUNTIME, "%s", copy);
}

/* One pass: each labelled item is written as it comes.  The first
 * unlabelled one (without --drop-unlabelled) abandons the output: a file
 * target never appears, a pipe never gets its end record, so no reader
 * takes it for a dataset; the rest is read only to count for the message. */
static void run_filter(const options *o, const labels *lb, const labels_task *task, const bool *split_use, int argc,
                       char **argv)
{
	char err[ST_ERRLEN];
	/* static: a refused input exits from inside the join, and what the
	 * reader holds stays reachable then (LeakSanitizer) */
	static st_reader *r;
	r = st_reader_open(o->input, o->max_record, 0, err);
	if (!r)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	sv *header = output_header(st_reader_header(r), task, o, argc, argv);
	st_writer *w = st_writer_open(o->output, header, err);
	if (!w)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	sv_free(header);
	join_state js;
	join_start(&js, lb, task, split_use);
	st_item it;
	if (st_item_init(&it))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	cli_progress progress;
	cli_progress_init(&progress, prog, o->progress, o->quiet);
	int rc;
	while ((rc = st_reader_next(r, &it)) == ST_OK) {
		int outcome = join_flow(&js, &it);
		if (w && outcome == ITEM_PASS && st_writer_put(w, &it))
			die_abandoning(w, st_writer_error(w));
		if (w && !o->drop_unlabelled && (outcome == ITEM_NO_ROW || outcome == ITEM_NO_VALUE)) {
			st_writer_abort(w);
			w = NULL;
		}
		cli_progress_update(&progress, js.read, 0, "items read");
	}
	if (rc != ST_END)
		die_abandoning(w, st_reader_error(r));
	join_check_empty(&js, o, st_reader_name(r), w);
	join_drain(&js, o, st_reader_name(r));
	sv *counts = sv_array(), *end = st_writer_end_stats(w);
	need(!counts || !end);
	for (size_t c = 0; c < labels_task_nclasses(task); c++)
		need(sv_push(counts, sv_int((int64_t)js.class_counts[c])));
	need(sv_set(end, "class_counts", counts));
	if (st_writer_close(w, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	cli_progress_done(&progress, js.outcome[ITEM_PASS], "items written");
	if (o->verbose)
		join_report(&js, st_reader_name(r));
	join_stop(&js);
	st_item_free(&it);
	st_reader_close(r);
}

/* ---- text modes ---- */

static FILE *text_open(const options *o, atomic_file *af)
{
	char err[512];
	if (!o->output || strcmp(o->output, "-") == 0)
		return stdout;
	if (atomic_open(af, o->output, err, sizeof err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	return af->f;
}

static void text_close(const options *o, atomic_file *af, FILE *f)
{
	char err[512];
	if (f == stdout)
		return;
	if (ferror(f)) {
		atomic_abort(af);
		cli_die(prog, EXIT_RUNTIME, "%s: write error", o->output);
	}
	if (atomic_commit(af, err, sizeof err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
}

/* Dies before anything is written: the list is built in memory first. */
static _Noreturn void keys_fail(FILE *m, char *buf, const char *fmt, const char *path, const char *what)
{
	fclose(m);
	free(buf);
	cli_die(prog, EXIT_RUNTIME, fmt, path, what);
}

/* The key list is complete or absent: a failure (a key a list cannot hold,
 * an empty selection) writes nothing, not even to stdout. */
static void run_keys(const options *o, const labels *lb, const labels_task *task, const bool *split_use)
{
	char *buf = NULL;
	size_t len = 0, rows = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	for (size_t row = 0; row < labels_rows(lb); row++) {
		if (split_use && !split_use[labels_row_split(lb, row)])
			continue;
		if (task && labels_task_label(task, row) < 0)
			continue;
		const char *key = labels_key(lb, row);
		if (strpbrk(key, " \t\r\n\v\f"))
			keys_fail(m, buf, "%s: key '%s' contains white space, which a key list cannot hold", labels_path(lb), key);
		if (o->audio_dir && strpbrk(labels_key_cell(lb, row), "\r\n"))
			keys_fail(m, buf, "%s: file name '%s' contains a line break, which a list cannot hold", labels_path(lb),
			          labels_key_cell(lb, row));
		if (o->audio_dir)
			fprintf(m, "%s %s/%s\n", key, o->audio_dir, labels_key_cell(lb, row));
		else
			fprintf(m, "%s\n", key);
		rows++;
	}
	if (rows == 0 && !o->allow_empty && (split_use || task))
		keys_fail(m, buf, "%s: %s: no row selected, nothing written (--allow-empty writes an empty list)",
		          labels_path(lb), o->splits ? o->splits : o->task);
	if (fflush(m) || ferror(m))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	atomic_file af = {0};
	FILE *f = text_open(o, &af);
	if (len)
		fwrite(buf, 1, len, f);
	fclose(m);
	free(buf);
	text_close(o, &af, f);
}

static const char *const dim_names[3] = {"arousal", "valence", "dominance"};
static const char *const pair_names[3] = {"av", "ad", "vd"};

static void print_num(FILE *f, double v, const char *fmt, bool json)
{
	if (isnan(v))
		fputs(json ? "null" : "nan", f);
	else
		fprintf(f, fmt, v);
}

static double pct(uint64_t count, uint64_t n) { return n ? 100.0 * (double)count / (double)n : NAN; }

static void print_stats_row(FILE *f, const char *split, const labels_dim_stats *s, bool json, bool first)
{
	if (json) {
		fprintf(f, "%s{\"split\":", first ? "" : ",");
		sv_print_json_string(split, strlen(split), f);
		fprintf(f, ",\"rows\":%llu", (unsigned long long)s->rows);
		for (int d = 0; d < 3; d++) {
			fprintf(f, ",\"%s\":{\"n\":%llu,\"counts\":[%llu,%llu,%llu],\"pct\":[", dim_names[d],
			        (unsigned long long)s->n[d], (unsigned long long)s->counts[d][0],
			        (unsigned long long)s->counts[d][1], (unsigned long long)s->counts[d][2]);
			for (int c = 0; c < 3; c++) {
				fputs(c ? "," : "", f);
				print_num(f, pct(s->counts[d][c], s->n[d]), "%.17g", true);
			}
			fputs("]}", f);
		}
		fputs(",\"r\":{", f);
		for (int p = 0; p < 3; p++) {
			fprintf(f, "%s\"%s\":", p ? "," : "", pair_names[p]);
			print_num(f, s->r[p], "%.17g", true);
		}
		fprintf(f, "},\"r_n\":{\"av\":%llu,\"ad\":%llu,\"vd\":%llu}}", (unsigned long long)s->r_n[0],
		        (unsigned long long)s->r_n[1], (unsigned long long)s->r_n[2]);
		return;
	}
	fprintf(f, "%s\t%llu", split, (unsigned long long)s->rows);
	for (int d = 0; d < 3; d++) {
		fprintf(f, "\t%llu\t%llu\t%llu\t%llu", (unsigned long long)s->n[d], (unsigned long long)s->counts[d][0],
		        (unsigned long long)s->counts[d][1], (unsigned long long)s->counts[d][2]);
		for (int c = 0; c < 3; c++) {
			fputc('\t', f);
			print_num(f, pct(s->counts[d][c], s->n[d]), "%.2f", false);
		}
	}
	for (int p = 0; p < 3; p++) {
		fputc('\t', f);
		print_num(f, s->r[p], "%.10f", false);
	}
	fputc('\n', f);
}

static void run_stats(const options *o, const labels *lb, const bool *split_use)
{
	labels_task *dims[3];
	char err[512];
	for (int d = 0; d < 3; d++) {
		labels_task_spec spec = o->spec;
		spec.kind = (labels_task_kind)d;
		spec.categorical = false;
		if (!(dims[d] = labels_task_new(lb, &spec, err, sizeof err)))
			cli_die(prog, EXIT_RUNTIME, "%s", err);
	}
	size_t nrows = labels_rows(lb);
	bool *use = calloc(nrows + 1, sizeof *use);
	if (!use)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	atomic_file af = {0};
	FILE *f = text_open(o, &af);
	if (o->json) {
		fputs("{\"file\":", f);
		sv_print_json_string(labels_path(lb), strlen(labels_path(lb)), f);
		fprintf(f, ",\"edges\":[%.17g,%.17g],\"range\":[%.17g,%.17g],\"classes\":[\"low\",\"mid\",\"high\"],"
		           "\"splits\":[",
		        o->spec.edges[0], o->spec.edges[1], o->spec.range[0], o->spec.range[1]);
	} else {
		fputs("split\trows", f);
		for (int d = 0; d < 3; d++)
			fprintf(f, "\t%1$s_n\t%1$s_low\t%1$s_mid\t%1$s_high\t%1$s_low_pct\t%1$s_mid_pct\t%1$s_high_pct",
			        dim_names[d]);
		fputs("\tr_av\tr_ad\tr_vd\n", f);
	}
	labels_dim_stats st;
	bool first = true;
	for (size_t s = 0; s < labels_nsplits(lb); s++) {
		if (split_use && !split_use[s])
			continue;
		for (size_t row = 0; row < nrows; row++)
			use[row] = labels_row_split(lb, row) == (int)s;
		if (labels_dim_stats_compute(lb, (const labels_task *const *)dims, use, &st))
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		print_stats_row(f, labels_split_name(lb, s), &st, o->json, first);
		first = false;
	}
	for (size_t row = 0; row < nrows; row++)
		use[row] = !split_use || split_use[labels_row_split(lb, row)];
	if (labels_dim_stats_compute(lb, (const labels_task *const *)dims, use, &st))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	print_stats_row(f, "all", &st, o->json, first);
	if (o->json)
		fprintf(f, "],\"paper\":{\"corpus\":\"MSP-Podcast v1.7\",\"split\":\"Train\",\"arousal_pct\":[%g,%g,%g],"
		           "\"r\":{\"av\":%g,\"ad\":%g}}}\n",
		        paper_arousal_pct[0], paper_arousal_pct[1], paper_arousal_pct[2], paper_r_av, paper_r_ad);
	else
		fprintf(f, "# paper (MSP-Podcast v1.7, Train): arousal_low_pct %g arousal_mid_pct %g arousal_high_pct %g "
		           "r_av %g r_ad %g\n",
		        paper_arousal_pct[0], paper_arousal_pct[1], paper_arousal_pct[2], paper_r_av, paper_r_ad);
	text_close(o, &af, f);
	for (int d = 0; d < 3; d++)
		labels_task_free(dims[d]);
	free(use);
}

/* ---- main ---- */

static void parse_pair(const char *opt, const char *s, double out[2])
{
	const char *comma = strchr(s, ',');
	char first[64];
	if (!comma || (size_t)(comma - s) >= sizeof first)
		cli_usage_error(prog, "%s: '%s' is not two numbers A,B", opt, s);
	memcpy(first, s, (size_t)(comma - s));
	first[comma - s] = '\0';
	if (!cli_parse_double(first, -1e300, 1e300, &out[0]) || !cli_parse_double(comma + 1, -1e300, 1e300, &out[1]))
		cli_usage_error(prog, "%s: '%s' is not two numbers A,B", opt, s);
}

/* The label file of a corpus directory, in either spelling. */
static char *corpus_labels(const char *dir)
{
	static const char *const names[] = {"labels_consensus.csv", "labels_concensus.csv"};
	char *paths[2];
	for (int i = 0; i < 2; i++) {
		if (!(paths[i] = malloc(strlen(dir) + 40)))
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		sprintf(paths[i], "%s/Labels/%s", dir, names[i]);
	}
	for (int i = 0; i < 2; i++)
		if (access(paths[i], F_OK) == 0) {
			free(paths[1 - i]);
			return paths[i];
		}
	cli_die(prog, EXIT_RUNTIME, "%s: no label file: neither %s nor %s exists", dir, paths[0], paths[1]);
}

/* One flag per split of the file; NULL when no --split. */
static bool *select_splits(const labels *lb, const char *list)
{
	if (!list)
		return NULL;
	if (!labels_has_splits(lb))
		cli_die(prog, EXIT_RUNTIME, "%s: --split needs a split column, and the file has none (--split-column)",
		        labels_path(lb));
	bool *use = calloc(labels_nsplits(lb) + 1, sizeof *use);
	char *copy = strdup(list);
	if (!use || !copy)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	for (char *save = NULL, *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		int s = labels_split_find(lb, name);
		if (s < 0) {
			char known[400] = "";
			size_t n = 0;
			for (size_t i = 0; i < labels_nsplits(lb) && n < sizeof known; i++)
				n += (size_t)snprintf(known + n, sizeof known - n, "%s%s", i ? ", " : "",
				                      labels_split_name(lb, i));
			cli_die(prog, EXIT_RUNTIME, "%s: no row has %s '%s' (the file's splits: %s)", labels_path(lb),
			        labels_split_column(lb), name, known);
		}
		use[s] = true;
	}
	free(copy);
	return use;
}

/* The combinations of options that make no sense, and the task spec. */
static void check_args(int argc, char **argv, int first, options *o)
{
	if (!o->corpus == !o->csv)
		cli_usage_error(prog, "give the label file with exactly one of --corpus DIR and --csv FILE");
	if (o->keys_only && o->stats)
		cli_usage_error(prog, "--keys-only and --stats are separate modes");
	bool filter = !o->keys_only && !o->stats;
	if (filter && !o->task)
		cli_usage_error(prog, "--task is needed to label a stream (or use --keys-only or --stats)");
	if (o->stats && o->task)
		cli_usage_error(prog, "--stats covers arousal, valence and dominance; it takes no --task");
	if (o->audio_dir && !o->keys_only)
		cli_usage_error(prog, "--audio-dir goes with --keys-only");
	if (o->json && !o->stats)
		cli_usage_error(prog, "--json goes with --stats");
	if (o->allow_empty && o->stats)
		cli_usage_error(prog, "--allow-empty goes with labelling a stream or --keys-only");
	if (!filter && (o->drop_unlabelled || o->verbose || o->progress || o->max_record))
		cli_usage_error(prog, "--drop-unlabelled, --verbose, --progress and --max-record go with labelling a stream");
	if (first < argc - (filter ? 1 : 0))
		cli_usage_error(prog, filter ? "at most one input stream" : "this mode reads no stream");
	o->input = first < argc ? argv[first] : "-";
	if (o->task && labels_task_parse(o->task, &o->spec))
		cli_usage_error(prog, "unknown task '%s' (arousal, valence, dominance, category, speaker, column:NAME)",
		                o->task);
	o->spec.categorical = o->categorical;
	if (o->categorical && (!o->task || o->spec.kind != LABELS_COLUMN))
		cli_usage_error(prog, "--categorical goes with a column:NAME task");
	char err[512];
	if (labels_task_check(&o->spec, err, sizeof err))
		cli_usage_error(prog, "%s", err);
	if (filter && o->csv && strcmp(o->csv, "-") == 0 && strcmp(o->input, "-") == 0)
		cli_usage_error(prog, "the label file and the stream cannot both be stdin");
}

/* Options into o (its spec parsed and checked); every usage error here. */
static void parse_args(int argc, char **argv, options *o)
{
	bool given[sizeof options_table / sizeof *options_table];
	*o = (options){0};
	labels_task_spec_init(&o->spec);
	opts_defaults(&spec, o);
	int first = opts_parse(&spec, o, argc, argv, given);
	/* a column named on the command line must exist; the MSP defaults may be absent */
	o->src.split_optional = !opts_was_given(&spec, given, "split-column");
	o->src.speaker_optional = !opts_was_given(&spec, given, "speaker-column");
	parse_pair("--edges", o->edges, o->spec.edges);
	parse_pair("--range", o->range, o->spec.range);
	check_args(argc, argv, first, o);
}


int main(int argc, char **argv)
{
	options o;
	parse_args(argc, argv, &o);
	bool filter = !o.keys_only && !o.stats;
	char err[512];
	cli_stdout_init();

	o.src.path = o.corpus ? corpus_labels(o.corpus) : o.csv;
	labels *lb = labels_load(&o.src, err, sizeof err);
	if (!lb)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	bool *split_use = select_splits(lb, o.splits);
	labels_task *task = NULL;
	if (o.task && !(task = labels_task_new(lb, &o.spec, err, sizeof err)))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	if (filter) {
		/* an absolute path, so that streams labelled from one file in different
		 * directories still agree on params when joined */
		o.label_path = strcmp(o.src.path, "-") ? realpath(o.src.path, NULL) : strdup("-");
		if (!o.label_path)
			cli_die(prog, EXIT_RUNTIME, "%s: %s", o.src.path, strerror(errno));
		run_filter(&o, lb, task, split_use, argc, argv);
	} else if (o.keys_only) {
		run_keys(&o, lb, task, split_use);
	} else {
		run_stats(&o, lb, split_use);
	}
	labels_task_free(task);
	labels_free(lb);
	free(split_use);
	free(o.label_path);
	if (o.corpus)
		free((char *)o.src.path);
	cli_close_stdout(prog);
	return 0;
}
