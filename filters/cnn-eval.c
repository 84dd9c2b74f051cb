/* cnn-eval - score a Cnn14 checkpoint on a labelled log-Mel stream. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "cli.h"
#include "cnn14.h"
#include "dataset.h"
#include "eval_report.h"
#include "evaluate.h"
#include "feature_params.h"
#include "metrics.h"
#include "nn_pool.h"
#include "opts.h"
#include "stream.h"

static const char *prog = "cnn-eval";

static const char usage[] =
	"Usage: cnn-eval [OPTION]... CKPT [STREAM]\n"
	"Score the checkpoint CKPT on a labelled log-Mel stream (melspec | binlabels;\n"
	"default stdin): UAR (mean recall over the classes present in the labels),\n"
	"accuracy, mean NLL, per-class recall with support, and the confusion matrix\n"
	"(rows true class, columns predicted).  Items are scored whole, in evaluation\n"
	"mode; items of equal length are batched (results move by float rounding at\n"
	"most; --batch 1: each item alone).  The whole stream is held in memory.\n"
	"\n";

static const char epilog[] =
	"\n"
	"Example (the best epoch of a run on the test set, and its posteriors):\n"
	"  cnn-eval -p test-post.msgpack runs/random/best.ckpt test.msgpack > test.tsv\n";

typedef struct {
	const char *ckpt, *stream, *output, *posteriors;
	bool json, pad_short, ignore_names, progress, quiet;
	int batch, threads;
	size_t max_record;
} options;

#define F(field) offsetof(options, field)
static const opt_desc options_table[] = {
	{"json", 0, OPT_FLAG, F(json), .help = "one JSON object instead of TSV"},
	OPT_REFUSE('j', "-j: not an option (JSON output is --json, long only)"),
	{"output", 'o', OPT_STRING, F(output), .arg = "FILE", .help = "write the report to FILE atomically (default stdout)"},
	{"posteriors", 'p', OPT_STRING, F(posteriors), .arg = "FILE",
	 .help = "also write an item stream of class posteriors\n(tensor 'posteriors', fields 'label' and\n'predicted'); '-' is stdout, then the report needs -o"},
	{"batch", 0, OPT_INT, F(batch), .min = 1, .max = 4096, .def = "32", .arg = "N",
	 .help = "largest batch of equal-length items"},
	{"pad-short", 0, OPT_FLAG, F(pad_short),
	 .help = "pad items shorter than 32 frames with the log-Mel of\ndigital silence (else they are an error)"},
	{"ignore-class-names", 0, OPT_FLAG, F(ignore_names),
	 .help = "score even when the stream's class names differ\nfrom the checkpoint's (labels are taken as the\ncheckpoint's class indices)"},
	OPT_MODEL_THREADS(options),
	OPT_MAX_RECORD(options),
	OPT_PROGRESS_QUIET(options),
	OPT_END,
};
#undef F

static const opts_spec spec = {"cnn-eval", options_table, usage, epilog};

static void parse_args(int argc, char **argv, options *o)
{
	memset(o, 0, sizeof *o);
	opts_defaults(&spec, o);
	int first = opts_parse(&spec, o, argc, argv, NULL);
	opts_ckpt_and_stream(&spec, first, argc, argv, &o->ckpt, &o->stream);
	if (o->posteriors && !strcmp(o->posteriors, "-") && (!o->output || !strcmp(o->output, "-")))
		cli_usage_error(prog, "--posteriors - takes stdout: write the report elsewhere with -o FILE");
}

/* What main holds.  Released at exit, also when a check fails midway, so
 * that every error path ends as cleanly as success (LeakSanitizer agrees). */
static struct {
	cnn14 *model;
	dataset ds;
	const char **names;      /* the model's class names */
	char (*numbers)[24];     /* "0", "1", ... for unnamed classes */
	float *logp;             /* items x classes */
	confusion conf;
	st_writer *posteriors;   /* open until its last item is written */
	atomic_output report;    /* open from open_outputs until write_report */
} held;

static void release(void)
{
	if (held.posteriors)
		st_writer_abort(held.posteriors);
	atomic_output_abort(&held.report);
	confusion_free(&held.conf);
	free(held.logp);
	free(held.names);
	free(held.numbers);
	dataset_free(&held.ds);
	cnn14_free(held.model);
	memset(&held, 0, sizeof held);
}

/* Messages are composed in a fixed buffer (a very long one is cut short). */
typedef struct {
	char text[4096];
	FILE *f;
} message;

static FILE *message_open(message *m)
{
	m->text[sizeof m->text - 1] = '\0';
	m->f = fmemopen(m->text, sizeof m->text - 1, "w");
	if (!m->f)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	return m->f;
}

static const char *message_text(message *m)
{
	fclose(m->f);
	return m->text;
}

static void show(const sv *v, FILE *f)
{
	if (v)
		sv_print_json(v, f);
	else
		fputs("(absent)", f);
}

/* Dies naming every key of the two melspec maps whose value differs. */
static void check_melspec(const sv *stream_mel, const sv *ckpt_mel, const char *stream, const char *ckpt)
{
	if (!stream_mel && ckpt_mel) /* features that cannot be checked are not scored */
		cli_die(prog, EXIT_RUNTIME, "%s: no params.melspec in the stream, and %s was trained on melspec features",
		        stream, ckpt);
	char msg[4096];
	if (feature_params_match(stream_mel, ckpt_mel, "stream", "checkpoint", msg, sizeof msg))
		return;
	cli_die(prog, EXIT_RUNTIME, "%s: melspec settings differ from those of %s: %s", stream, ckpt, msg);
}

static void note_bandpass(const sv *stream_bp, const sv *ckpt_bp)
{
	if ((stream_bp == NULL) == (ckpt_bp == NULL) && (!stream_bp || sv_equal(stream_bp, ckpt_bp)))
		return;
	message msg;
	FILE *f = message_open(&msg);
	show(stream_bp, f);
	fputs(" in the stream, ", f);
	show(ckpt_bp, f);
	fputs(" in the checkpoint", f);
	cli_warn(prog, "note: band-pass settings differ: %s", message_text(&msg));
}

static void print_names(FILE *f, const char *const *names, int n)
{
	fputc('[', f);
	for (int k = 0; k < n; k++) {
		fputs(k ? ", " : "", f);
		sv_print_json_string(names[k], strlen(names[k]), f);
	}
	fputc(']', f);
}

/* The model's class names into held.names. */
static void model_class_names(const cnn14 *m)
{
	int classes = cnn14_classes(m);
	held.names = malloc((size_t)classes * sizeof *held.names);
	held.numbers = malloc((size_t)classes * sizeof *held.numbers);
	if (!held.names || !held.numbers)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	for (int k = 0; k < classes; k++) {
		snprintf(held.numbers[k], sizeof *held.numbers, "%d", k);
		held.names[k] = cnn14_class_name(m, k) ? cnn14_class_name(m, k) : held.numbers[k];
	}
}

static void check_classes(const dataset *ds, const char *const *names, int classes, const options *o)
{
	bool same = ds->classes == classes;
	for (int k = 0; same && k < classes; k++)
		same = strcmp(ds->class_names[k], names[k]) == 0;
	if (!same && !o->ignore_names) {
		message msg;
		FILE *f = message_open(&msg);
		fprintf(f, "%s has classes ", ds->name);
		print_names(f, (const char *const *)ds->class_names, ds->classes);
		fprintf(f, ", %s has ", o->ckpt);
		print_names(f, names, classes);
		cli_die(prog, EXIT_RUNTIME, "%s (--ignore-class-names to score anyway)", message_text(&msg));
	}
	for (size_t i = 0; i < ds->n; i++) {
		const ds_item *it = &ds->items[i];
		if (it->label >= classes)
			cli_die(prog, EXIT_RUNTIME, "%s: item '%s': label %d is not one of the checkpoint's %d classes", ds->name,
			        it->key, it->label, classes);
		if (it->frames < CNN14_MIN_FRAMES && !o->pad_short)
			cli_die(prog, EXIT_RUNTIME, "%s: item '%s' has %d frames, the network needs at least %d (pad it: --pad-short)",
			        ds->name, it->key, it->frames, CNN14_MIN_FRAMES);
	}
}

static void show_progress(void *ctx, size_t done, size_t total)
{
	cli_progress_update(ctx, done, total, "items");
}

/* Scores ds into conf and logp (ds->n x classes), with progress on stderr. */
static void score(cnn14 *m, const dataset *ds, const eval_options *eo, confusion *conf, float *logp, const options *o)
{
	char err[CNN14_ERRLEN];
	cli_progress bar;
	cli_progress_init(&bar, prog, o->progress, o->quiet);
	eval_options opt = *eo;
	opt.progress = show_progress;
	opt.progress_ctx = &bar;
	if (evaluate_dataset(m, ds, &opt, conf, logp, NULL, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	cli_progress_done(&bar, ds->n, "items");
}

static int argmax(const float *v, int n)
{
	int best = 0;
	for (int k = 1; k < n; k++)
		if (v[k] > v[best])
			best = k;
	return best;
}

/* Opens the outputs before the long part, so that a bad path fails early.
 * The posteriors stream: the input's params with the checkpoint's class names. */
static void open_outputs(const options *o, const dataset *ds, int classes, int argc, char **argv)
{
	char err[ST_ERRLEN];
	if (atomic_output_open(&held.report, o->output, err, sizeof err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	if (!o->posteriors)
		return;
	sv *h = st_header_new(prog, argc, argv);
	if (!h || sv_set(h, "params", sv_copy(ds->params)) ||
	    sv_set(st_header_params(h), "tensor", sv_str("posteriors")) ||
	    sv_set(st_header_params(h), "classes", sv_strlist(held.names, (size_t)classes))) {
		sv_free(h);
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	}
	held.posteriors = st_writer_open(o->posteriors, h, err);
	sv_free(h);
	if (!held.posteriors)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
}

/* One item per input item, in input order: key, tensor posteriors (classes,),
 * fields label and predicted. */
static void write_posteriors(const dataset *ds, const float *logp, int classes)
{
	st_item it;
	if (st_item_init(&it))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	int64_t shape[1] = {classes};
	char err[ST_ERRLEN];
	for (size_t i = 0; i < ds->n; i++) {
		const float *lp = logp + i * (size_t)classes;
		st_item_clear(&it);
		st_tensor *t = st_item_add_tensor(&it, "posteriors", ST_F32, 1, shape, NULL);
		if (!t || st_item_set_key(&it, ds->items[i].key) ||
		    st_item_set_field(&it, "label", sv_int(ds->items[i].label)) ||
		    st_item_set_field(&it, "predicted", sv_int(argmax(lp, classes)))) {
			st_item_free(&it);
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		}
		float *p = t->data;
		for (int k = 0; k < classes; k++)
			p[k] = (float)exp((double)lp[k]);
		if (st_writer_put(held.posteriors, &it)) {
			snprintf(err, sizeof err, "%s", st_writer_error(held.posteriors));
			st_item_free(&it);
			cli_die(prog, EXIT_RUNTIME, "%s", err);
		}
	}
	st_item_free(&it);
	st_writer *w = held.posteriors;
	held.posteriors = NULL; /* closed (or freed on failure) here */
	if (st_writer_close(w, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
}

static void write_report(const options *o, const eval_report *rep)
{
	char err[ST_ERRLEN];
	FILE *out = held.report.f;
	int rc = o->json ? eval_report_write_json(rep, out) : eval_report_write_tsv(rep, out);
	if (rc)
		cli_die(prog, EXIT_RUNTIME, "%s: write error", o->output && strcmp(o->output, "-") ? o->output : "stdout");
	if (atomic_output_commit(&held.report, err, sizeof err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
}

int main(int argc, char **argv)
{
	options o;
	parse_args(argc, argv, &o);
	cli_stdout_init();
	atexit(release);
	char err[CNN14_ERRLEN > ST_ERRLEN ? CNN14_ERRLEN : ST_ERRLEN];
	held.model = cnn14_open(o.ckpt, o.threads, err);
	if (!held.model)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	cnn14 *m = held.model;
	dataset *ds = &held.ds;
	if (dataset_load(ds, o.stream, o.max_record, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	if (ds->n == 0)
		cli_die(prog, EXIT_RUNTIME, "%s: no items: UAR is undefined", ds->name);
	if (ds->n_mels != CNN14_N_MELS)
		cli_die(prog, EXIT_RUNTIME, "%s: %d mel bins, Cnn14 reads %d", ds->name, ds->n_mels, CNN14_N_MELS);

	int classes = cnn14_classes(m);
	model_class_names(m);
	check_classes(ds, held.names, classes, &o);
	check_melspec(sv_get(ds->params, "melspec"), sv_get(cnn14_params(m), "melspec"), ds->name, o.ckpt);
	note_bandpass(sv_get(ds->params, "bandpass"), sv_get(cnn14_params(m), "bandpass"));

	open_outputs(&o, ds, classes, argc, argv);
	held.logp = malloc(ds->n * (size_t)classes * sizeof *held.logp);
	if (!held.logp || confusion_init(&held.conf, classes))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	eval_options eo = {.max_batch = o.batch, .pad_short = o.pad_short, .pad_value = evaluate_silence_value(ds->params)};
	score(m, ds, &eo, &held.conf, held.logp, &o);
	double nll = 0;
	for (size_t i = 0; i < ds->n; i++)
		nll -= held.logp[i * (size_t)classes + (size_t)ds->items[i].label];
	nll /= (double)ds->n;

	if (held.posteriors)
		write_posteriors(ds, held.logp, classes);
	eval_report rep = {o.ckpt, ds->name, &held.conf, held.names, nll};
	write_report(&o, &rep);
	release();
	cli_close_stdout(prog);
	return 0;
}
