/* cnn-train - train Cnn14 on labelled log-Mel streams with the paper's recipe. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_check.h"
#include "cli.h"
#include "cnn14.h"
#include "dataset.h"
#include "evaluate.h"
#include "nn_pool.h"
#include "opts.h"
#include "rundir.h"
#include "stream.h"
#include "train.h"

static const char *prog = "cnn-train";

static const char usage[] =
	"Usage: cnn-train --train T --dev D [--test E] [--final-test E] --run-dir RUNDIR\n"
	"                 [OPTION]...\n"
	"       cnn-train --resume RUNDIR [--threads N] [--progress | --quiet]\n"
	"Train Cnn14 on labelled log-Mel streams (melspec | binlabels) with the paper's\n"
	"recipe: SGD, lr 0.001, Nesterov momentum 0.9, batch 8, 60 epochs, class-balanced\n"
	"NLL; the best epoch is the one with the highest dev UAR (the earliest on ties).\n"
	"\n";

static const char epilog[] =
	"\n"
	"RUNDIR receives init.ckpt (the state before training), best.ckpt, last.ckpt,\n"
	"log.tsv and log.jsonl (one row per epoch), summary.tsv and summary.json.\n"
	"Stderr gets a line per epoch (on a terminal also a live line with the ETA of\n"
	"the run).  SIGINT or SIGTERM saves resumable state and exits 128 + the\n"
	"signal.  See cnn-train(1).\n"
	"\n"
	"Example (the paper's baseline, then fine-tuning from it):\n"
	"  cnn-train --train train.msgpack --dev dev.msgpack --test test.msgpack \\\n"
	"            --run-dir runs/random\n"
	"  cnn-train --init runs/random/best.ckpt --finetune linear \\\n"
	"            --train train100.msgpack --dev dev100.msgpack \\\n"
	"            --test test100.msgpack --run-dir runs/bp100-linear\n";

/* Set by the signal handler; read between training steps. */
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

typedef struct {
	const char *train, *dev, *test, *final_test, *rundir, *init, *resume;
	int epochs, batch, crop_frames, threads, eval_batch, width_div;
	double lr, momentum, weight_decay, save_every;
	bool nesterov, balance, dropout, new_head, freeze_bn_stats, pad_short, quiet, progress, dump_settings;
	int finetune; /* cnn14_finetune: the index in finetune_names */
	uint64_t seed;
} options;

static const char *const finetune_names[] = {"all", "linear", NULL}; /* CNN14_FINETUNE_ALL, _LINEAR */

static bool divides_64(double v) { return 64 % (long)v == 0; }

#define F(field) offsetof(options, field)
#define SET (OPT_PERSIST)
#define FILE_SET (OPT_PERSIST | OPT_PATH)
/* Every option, once.  OPT_PERSIST: a training setting, stored in the run
 * file and restored by --resume; OPT_KEEP: may be given with --resume. */
static const opt_desc options_table[] = {
	OPT_HEADING("Data:"),
	{"train", 0, OPT_STRING, F(train), .arg = "FILE", .help = "training stream (required)", .flags = FILE_SET},
	{"dev", 0, OPT_STRING, F(dev), .arg = "FILE", .help = "development stream: selects the best epoch (required)",
	 .flags = FILE_SET},
	{"test", 0, OPT_STRING, F(test), .arg = "FILE", .help = "test stream, scored every epoch (for learning curves)",
	 .flags = FILE_SET},
	{"final-test", 0, OPT_STRING, F(final_test), .arg = "FILE",
	 .help = "test stream scored once, with the best epoch's model,\nafter the last (summary's test_uar: --test is then\nonly the curve)",
	 .flags = FILE_SET},
	{"run-dir", 0, OPT_STRING, F(rundir), .arg = "RUNDIR", .help = "run directory (created; must not hold a run already)"},
	/* the old spelling: -o is a file in every other program (formats/cli.md) */
	{"output", 'o', OPT_STRING, F(rundir), .arg = "RUNDIR", .flags = OPT_HIDDEN},
	{"crop-frames", 0, OPT_INT, F(crop_frames), .min = CNN14_MIN_FRAMES, .max = 1000000, .def = "300", .arg = "N",
	 .help = "training crop length in frames; a new random crop of\neach item every epoch, shorter items padded at the\nend with the log-Mel of digital silence",
	 .flags = SET},
	{"pad-short", 0, OPT_FLAG, F(pad_short), .help = "pad dev/test items shorter than 32 frames (else error)", .flags = SET},
	OPT_HEADING("Recipe:"),
	{"epochs", 0, OPT_INT, F(epochs), .min = 1, .max = 100000, .def = "60", .arg = "N", .help = "training epochs",
	 .flags = SET},
	{"lr", 0, OPT_DOUBLE, F(lr), .min = 0, .max = 1e6, .def = "0.001", .arg = "X", .help = "learning rate",
	 .flags = SET | OPT_MIN_OPEN},
	{"momentum", 0, OPT_DOUBLE, F(momentum), .min = 0, .max = 1, .def = "0.9", .arg = "X", .help = "Nesterov momentum",
	 .flags = SET | OPT_MAX_OPEN},
	{"no-nesterov", 0, OPT_UNSET, F(nesterov), .help = "classical momentum", .flags = SET},
	{"weight-decay", 0, OPT_DOUBLE, F(weight_decay), .min = 0, .max = 1e6, .def = "0", .arg = "X",
	 .help = "L2 weight decay", .flags = SET},
	{"batch", 0, OPT_INT, F(batch), .min = 1, .max = 4096, .def = "8", .arg = "N", .help = "batch size", .flags = SET},
	{"no-balance", 0, OPT_UNSET, F(balance), .help = "plain NLL instead of inverse-class-frequency weights", .flags = SET},
	{"no-dropout", 0, OPT_UNSET, F(dropout),
	 .help = "no dropout (Cnn14 has 0.2 after each block, 0.5\nbefore and after fc1)", .flags = SET},
	{"seed", 0, OPT_U64, F(seed), .min = 0, .max = (double)LONG_MAX, .def = "1", .arg = "N",
	 .help = "initialisation, data order, crops, dropout", .flags = SET},
	{"width-div", 0, OPT_INT, F(width_div), .min = 1, .max = 64, .def = "1", .arg = "N",
	 .help = "channel divisor of a model trained from scratch", .flags = SET, .valid = divides_64,
	 .must = "be one of 1, 2, 4, 8, 16, 32, 64"},
	OPT_HEADING("Transfer:"),
	{"init", 0, OPT_STRING, F(init), .arg = "CKPT", .help = "start from a checkpoint (ours or panns-convert's)",
	 .flags = FILE_SET},
	{"new-head", 0, OPT_FLAG, F(new_head),
	 .help = "a new output layer even when the class count agrees\n(it is new anyway when the class count differs)", .flags = SET},
	{"finetune", 0, OPT_CHOICE, F(finetune), .def = "all", .arg = "MODE",
	 .help = "all, or linear (only fc1 and fc_transfer)", .flags = SET, .choices = finetune_names},
	{"freeze-bn-stats", 0, OPT_FLAG, F(freeze_bn_stats), .help = "BatchNorm running statistics frozen too", .flags = SET},
	OPT_HEADING("Running:"),
	{"resume", 0, OPT_STRING, F(resume), .arg = "RUNDIR",
	 .help = "continue an interrupted run (kill -9, SIGINT, SIGTERM);\nit ends exactly as the uninterrupted run would",
	 .flags = OPT_KEEP},
	{"save-every", 0, OPT_DOUBLE, F(save_every), .min = 0, .max = 1e9, .def = "600", .arg = "SECS",
	 .help = "also save resumable state mid-epoch this often\n(0: at epoch ends only)", .flags = SET},
	{"threads", 0, OPT_INT, F(threads), .min = 0, .max = NN_MAX_THREADS, .def = "0", .arg = "N",
	 .help = "0: the cores this process may use; results do not\ndepend on it", .flags = SET | OPT_KEEP},
	{"eval-batch", 0, OPT_INT, F(eval_batch), .min = 1, .max = 4096, .def = "32", .arg = "N",
	 .help = "largest batch of equal-length items when scoring", .flags = SET},
	{"progress", 0, OPT_FLAG, F(progress),
	 .help = "also the memory and best-epoch lines when stderr is\nnot a terminal (which gets a plain line per epoch)",
	 .flags = OPT_KEEP},
	{"quiet", 'q', OPT_FLAG, F(quiet), .help = "no progress at all", .flags = OPT_KEEP},
	{"dump-settings", 0, OPT_FLAG, F(dump_settings), .flags = OPT_KEEP | OPT_HIDDEN,
	 .help = "print the settings as resolved (resume included) and exit: for tests"},
	OPT_END,
};
#undef F
#undef SET
#undef FILE_SET

static const opts_spec spec = {"cnn-train", options_table, usage, epilog};

static sv *read_run_file(const char *rundir);

/* The options of a fresh run from argv; of a resumed one from its run
 * file, then argv's OPT_KEEP options over them.  *saved: the run file's
 * header (resume) or NULL. */
static void parse_args(int argc, char **argv, options *o, sv **saved)
{
	bool given[sizeof options_table / sizeof *options_table];
	opts_defaults(&spec, o);
	int first = opts_parse(&spec, o, argc, argv, given);
	if (first < argc)
		cli_usage_error(prog, "unexpected argument '%s'", argv[first]);
	*saved = NULL;
	if (o->resume) {
		const opt_desc *d = opts_given_except(&spec, given, OPT_KEEP);
		if (d)
			cli_usage_error(prog, "--%s: --resume takes its settings from the run directory; give only --threads, --progress or --quiet with it",
			                d->name);
		char err[256];
		const char *rundir = o->resume;
		*saved = read_run_file(rundir);
		opts_defaults(&spec, o);
		if (opts_reapply(&spec, o, sv_get_strlist(st_header_params(*saved), "args"), err, sizeof err))
			cli_die(prog, EXIT_RUNTIME, "%s/run.msgpack: saved arguments: %s", rundir, err);
		opts_parse(&spec, o, argc, argv, NULL); /* results do not depend on --threads (cnn14.h) */
		o->rundir = o->resume;
	}
	if (o->dump_settings) {
		if (opts_dump(&spec, o, stdout))
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		cli_close_stdout(prog);
		exit(0);
	}
}

static char *path_join(const char *dir, const char *name)
{
	char *p = rundir_path(dir, name);
	if (!p)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	return p;
}

/* ---- the run directory ----
 * RUNDIR/run.msgpack    the command line (header argv), the settings in full with
 *                       absolute data paths (params.args) and the data's
 *                       fingerprints (params.data): a stream with no items
 * RUNDIR/init.ckpt      the model before training; every later checkpoint's header
 *                       derives from it, so a resumed run writes the same bytes
 * RUNDIR/state-E-B/     resumable state at epoch E, batch B: last.ckpt, last.opt,
 *                       position.msgpack, log.tsv, best.ckpt (hard link when unchanged)
 * RUNDIR/{last,best}.ckpt, log.tsv, summary.*: hard links to the newest state's files
 * A state directory is complete by construction: it is written as .state-E-B.tmp and
 * renamed; so the newest state-* directory is always a consistent place to resume. */

static sv *data_entry(const dataset *ds)
{
	sv *m = sv_map();
	if (!m || sv_set(m, "items", sv_int((int64_t)ds->n)) ||
	    sv_set(m, "fingerprint", sv_int((int64_t)dataset_fingerprint(ds))))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	return m;
}

static void write_run_file(const char *rundir, int argc, char **argv, const options *o, sv *data)
{
	char err[ST_ERRLEN];
	sv *h = st_header_new(prog, argc, argv), *args = sv_array();
	/* every setting explicitly (a resumed run does not depend on the defaults
	 * of the version that resumes it), data paths absolute (--resume works
	 * from any directory), doubles exact */
	if (!h || !args || sv_push(args, sv_str(prog)) || opts_persist(&spec, o, args) ||
	    sv_set(st_header_params(h), "args", args) || sv_set(st_header_params(h), "data", data))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	char *path = path_join(rundir, "run.msgpack");
	st_writer *w = st_writer_open(path, h, err);
	if (!w || st_writer_close(w, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	free(path);
	sv_free(h);
}

/* The header of a run's run.msgpack (params.args and argv checked). */
static sv *read_run_file(const char *rundir)
{
	char err[ST_ERRLEN];
	char *path = path_join(rundir, "run.msgpack");
	st_reader *r = st_reader_open(path, 0, 0, err);
	if (!r)
		cli_die(prog, EXIT_RUNTIME, "%s (is %s a cnn-train run directory?)", err, rundir);
	if (!sv_get_strlist(st_reader_params(r), "args") || !sv_get_strlist(st_reader_header(r), "argv") ||
	    !sv_get(st_reader_params(r), "data"))
		cli_die(prog, EXIT_RUNTIME, "%s: not a cnn-train run file (no saved arguments)", path);
	sv *copy = sv_copy(st_reader_header(r));
	st_item it;
	if (!copy || st_item_init(&it))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	if (st_reader_next(r, &it) != ST_END)
		cli_die(prog, EXIT_RUNTIME, "%s: not a run file", path);
	st_item_free(&it);
	st_reader_close(r);
	free(path);
	return copy;
}

/* An optional scored stream (--test, --final-test) into ds, checked against
 * the training stream's settings; false when path is NULL. */
static bool load_scored(dataset *ds, const char *path, const dataset *train)
{
	char err[ST_ERRLEN];
	if (!path)
		return false;
	if (dataset_load(ds, path, 0, err) || dataset_compatible(train, ds, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	return true;
}

static void load_data(train_run *r, const options *o)
{
	char err[ST_ERRLEN];
	if (dataset_load(&r->train, o->train, 0, err) || dataset_load(&r->dev, o->dev, 0, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	if (dataset_compatible(&r->train, &r->dev, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	r->have_test = load_scored(&r->test, o->test, &r->train);
	r->have_final_test = load_scored(&r->final_test, o->final_test, &r->train);
	if (r->train.n == 0)
		cli_die(prog, EXIT_RUNTIME, "%s: no training items", r->train.name);
	if (r->dev.n == 0)
		cli_die(prog, EXIT_RUNTIME, "%s: no development items: the best epoch cannot be chosen", r->dev.name);
	if (r->train.n_mels != CNN14_N_MELS)
		cli_die(prog, EXIT_RUNTIME, "%s: %d mel bins, Cnn14 reads %d", r->train.name, r->train.n_mels, CNN14_N_MELS);
	r->class_weights = malloc((size_t)r->train.classes * sizeof *r->class_weights);
	if (!r->class_weights)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	for (int k = 0; k < r->train.classes; k++) {
		uint64_t n = r->train.class_counts[k];
		if (n == 0 && o->balance)
			cli_die(prog, EXIT_RUNTIME, "%s: class '%s' has no training items: balanced weights would divide by zero (use --no-balance to train anyway)",
			        r->train.name, r->train.class_names[k]);
		/* inverse class frequency, scaled so that a balanced set has weights 1 */
		r->class_weights[k] = !o->balance ? 1.0f
		                                  : (float)((double)r->train.n / ((double)r->train.classes * (double)n));
	}
	r->pad_value = evaluate_silence_value(r->train.params);
	/* found now rather than when the first epoch is scored */
	const dataset *scored[] = {&r->dev, r->have_test ? &r->test : NULL, r->have_final_test ? &r->final_test : NULL};
	for (int i = 0; i < 3 && !o->pad_short; i++) {
		const dataset *ds = scored[i];
		for (size_t k = 0; ds && k < ds->n; k++)
			if (ds->items[k].frames < CNN14_MIN_FRAMES)
				cli_die(prog, EXIT_RUNTIME, "%s: item '%s' has %d frames, the network needs at least %d (pad it: --pad-short)",
				        ds->name, ds->items[k].key, ds->items[k].frames, CNN14_MIN_FRAMES);
	}
}

/* What the run holds in memory, on stderr with progress. */
static void report_memory(const train_run *r)
{
	double mb = (double)(r->train.bytes + r->dev.bytes + r->test.bytes + r->final_test.bytes) / 1048576.0;
	uint64_t params = cnn14_num_params(r->model);
	fprintf(stderr, "%s: in memory: %zu train, %zu dev, %zu test, %zu final test items, %.1f MB of log-Mel; model of %llu parameters, %.1f MB with gradients and momentum (plus activations)\n",
	        prog, r->train.n, r->dev.n, r->test.n, r->final_test.n, mb, (unsigned long long)params, 3.0 * 4.0 * (double)params / 1048576.0);
}

static void set_training_params(train_run *r)
{
	sv *p = cnn14_params(r->model);
	const sv *mel = sv_get(r->train.params, "melspec");
	const char *task = sv_get_str(r->train.params, "task");
	if ((mel && sv_set(p, "melspec", sv_copy(mel))) || (task && sv_set(p, "task", sv_str(task))))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	const sv *bp = sv_get(r->train.params, "bandpass");
	if (bp ? sv_set(p, "bandpass", sv_copy(bp)) : (sv_unset(p, "bandpass"), 0))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
}

static void build_model(train_run *r, const options *o)
{
	char err[CNN14_ERRLEN];
	int classes = r->train.classes;
	if (o->init) {
		cnn14 *src = cnn14_open(o->init, o->threads, err);
		if (!src)
			cli_die(prog, EXIT_RUNTIME, "%s", err);
		if (!o->new_head && cnn14_classes(src) == classes) {
			r->model = src;
		} else {
			cnn14_config cfg = {classes, cnn14_width_div(src), o->seed, o->threads};
			cnn14_free(src);
			r->model = cnn14_new(&cfg, err);
			if (!r->model)
				cli_die(prog, EXIT_RUNTIME, "%s", err);
			if (cnn14_load(r->model, o->init, CNN14_LOAD_BODY) != CNN14_OK)
				cli_die(prog, EXIT_RUNTIME, "%s", cnn14_error(r->model));
		}
		sv_unset(cnn14_params(r->model), "training");
		const sv *was = sv_get(cnn14_params(r->model), "melspec"), *now = sv_get(r->train.params, "melspec");
		if (was && now && !sv_equal(was, now))
			cli_warn(prog, "%s was trained on features made with other melspec settings than %s's", o->init,
			         r->train.name);
		cnn14_set_seed(r->model, o->seed);
	} else {
		cnn14_config cfg = {classes, o->width_div, o->seed, o->threads};
		r->model = cnn14_new(&cfg, err);
		if (!r->model)
			cli_die(prog, EXIT_RUNTIME, "%s", err);
	}
	const char **names = malloc((size_t)classes * sizeof *names);
	if (!names)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	for (int k = 0; k < classes; k++)
		names[k] = r->train.class_names[k];
	if (cnn14_set_class_names(r->model, names, classes) != CNN14_OK)
		cli_die(prog, EXIT_RUNTIME, "%s", cnn14_error(r->model));
	free(names);
	cnn14_set_finetune(r->model, o->finetune, o->freeze_bn_stats);
	set_training_params(r);
}

/* Refuses to resume on data other than the run started with. */
static void check_data(const train_run *r, const options *o, const sv *saved)
{
	const dataset *sets[] = {&r->train, &r->dev, r->have_test ? &r->test : NULL,
	                         r->have_final_test ? &r->final_test : NULL};
	const char *names[] = {"train", "dev", "test", "final_test"};
	for (int i = 0; i < 4; i++) {
		if (!sets[i])
			continue;
		const sv *e = sv_get(saved, names[i]);
		int64_t n, fp;
		if (!e || !sv_get_int(e, "items", &n) || !sv_get_int(e, "fingerprint", &fp))
			cli_die(prog, EXIT_RUNTIME, "%s/run.msgpack: no fingerprint of the %s data", o->rundir, names[i]);
		if ((uint64_t)n != sets[i]->n || (uint64_t)fp != dataset_fingerprint(sets[i]))
			cli_die(prog, EXIT_RUNTIME, "%s: changed since the run started (%lld items then, %zu now%s): resuming would not continue the same run",
			        sets[i]->name, (long long)n, sets[i]->n, (uint64_t)n == sets[i]->n ? ", other content" : "");
	}
}

/* The model of a resumed run before its newest state is applied: the one
 * init.ckpt holds, so that every checkpoint header derives from init.ckpt's
 * as in an uninterrupted run. */
static void open_init(train_run *r, const options *o, const char *init_path)
{
	char err[CNN14_ERRLEN];
	r->model = cnn14_open(init_path, o->threads, err);
	if (!r->model)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	if (cnn14_classes(r->model) != r->train.classes)
		cli_die(prog, EXIT_RUNTIME, "%s: %d classes, the training data has %d", init_path, cnn14_classes(r->model),
		        r->train.classes);
	cnn14_set_seed(r->model, o->seed);
	cnn14_set_finetune(r->model, o->finetune, o->freeze_bn_stats);
}

/* argv view of a string list owned by list. */
static char **strlist_argv(const sv *list)
{
	char **v = calloc(list->u.arr.n + 1, sizeof *v);
	if (!v)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	for (size_t i = 0; i < list->u.arr.n; i++)
		v[i] = list->u.arr.items[i]->u.str.ptr;
	return v;
}

/* How many of the data streams are standard input. */
static int stdin_uses(const options *o)
{
	return !strcmp(o->train, "-") + !strcmp(o->dev, "-") + (o->test && !strcmp(o->test, "-")) +
	       (o->final_test && !strcmp(o->final_test, "-"));
}

/* What the settings must satisfy beyond each option's own range. */
static void check_settings(const options *o, bool resume)
{
	if (resume) {
		if (stdin_uses(o) > 0)
			cli_die(prog, EXIT_RUNTIME, "%s: the run read a stream from standard input: it cannot be resumed", o->rundir);
		return;
	}
	if (!o->train || !o->dev || !o->rundir)
		cli_usage_error(prog, "--train, --dev and --run-dir RUNDIR are required");
	if (o->init && o->width_div != 1)
		cli_usage_error(prog, "--width-div comes from the --init checkpoint");
	if (stdin_uses(o) > 1)
		cli_usage_error(prog, "standard input ('-') can be read only once");
}

/* Progress on stderr (common/train.h hooks).  Stderr a terminal: a live
 * line with the ETA of the whole run, and a line per finished epoch.
 * Anything else (a file, nohup, a batch system's log): only the line per
 * epoch, plain, never a carriage return.  -q: nothing. */
typedef struct {
	bool epochs, live, extra; /* epoch lines; the live line; the memory and best-epoch lines */
	double last;              /* cli_now() of the last live line */
	double batch_t0;          /* when this process began the current epoch's batches */
	int batch_n0;             /* the batch it began at */
	double batch_t;           /* when its last batch ended */
	double train_time;        /* seconds of batches of finished epochs, this process */
	double batches;           /* how many batches that was */
	double eval_seconds;      /* scoring time of the last finished epoch (0: none yet) */
	double epoch_time;        /* seconds of the epochs finished in this process */
	int epochs_done;          /* their count */
} ui;

/* "41 s", "7.5 s", "39 min", "2.5 h" */
static void duration(char *buf, size_t n, double s)
{
	if (s < 10)
		snprintf(buf, n, "%.1f s", s);
	else if (s < 120)
		snprintf(buf, n, "%.0f s", s);
	else if (s < 7200)
		snprintf(buf, n, "%.0f min", s / 60);
	else
		snprintf(buf, n, "%.1f h", s / 3600);
}

static void on_epoch_start(void *ctx, const train_run *r, double start)
{
	(void)start;
	ui *u = ctx;
	u->batch_t0 = u->batch_t = cli_now();
	u->batch_n0 = r->pos.batch;
}

static void on_batch(void *ctx, const train_run *r)
{
	ui *u = ctx;
	const train_position *p = &r->pos;
	u->batch_t = cli_now();
	if (!u->live || u->batch_t - u->last < 0.25)
		return;
	u->last = u->batch_t;
	/* the run's ETA: batches left at this process's rate, plus scoring
	 * every epoch left at the last epoch's cost */
	double done = u->batches + (p->batch + 1 - u->batch_n0), spent = u->train_time + (u->batch_t - u->batch_t0);
	double left = (double)(r->nbatches - p->batch - 1) + (double)(r->epochs - p->epoch) * r->nbatches;
	double eta = left * spent / done + (double)(r->epochs - p->epoch + 1) * u->eval_seconds;
	char t[32];
	duration(t, sizeof t, eta);
	fprintf(stderr, "\r%s: epoch %d/%d, batch %d/%d, loss %.4f, ETA %s     ", prog, p->epoch, r->epochs,
	        p->batch + 1, r->nbatches, p->loss_sum / (p->batch + 1), t);
}

static void on_epoch(void *ctx, const train_run *r, const train_epoch *e)
{
	ui *u = ctx;
	u->train_time += u->batch_t - u->batch_t0;
	u->batches += r->nbatches - u->batch_n0;
	u->eval_seconds = e->seconds - e->train_seconds;
	u->epoch_time += e->seconds;
	u->epochs_done++;
	if (!u->epochs)
		return;
	char tests[48] = "", secs[32], eta[48] = "";
	if (r->have_test)
		snprintf(tests, sizeof tests, ", test UAR %.2f%%", 100 * e->test);
	duration(secs, sizeof secs, e->seconds);
	if (e->epoch < r->epochs) {
		strcpy(eta, ", ETA ");
		duration(eta + 6, sizeof eta - 6, (r->epochs - e->epoch) * u->epoch_time / u->epochs_done);
	}
	if (u->live) /* blank the live line first */
		fprintf(stderr, "\r%*s\r", 79, "");
	fprintf(stderr, "%s: epoch %d/%d: loss %.4f, dev UAR %.2f%%%s, %s%s%s\n", prog, e->epoch, r->epochs, e->loss,
	        100 * e->dev, tests, secs, eta, e->best ? " (best)" : "");
}

static void die_unless_new(const char *rundir)
{
	struct stat st;
	char err[RUNDIR_ERRLEN];
	char *runfile = path_join(rundir, "run.msgpack");
	int e, b;
	bool taken = stat(runfile, &st) == 0 || (stat(rundir, &st) == 0 && rundir_newest(rundir, &e, &b, err) > 0);
	free(runfile);
	if (taken)
		cli_die(prog, EXIT_RUNTIME, "%s already holds a run: continue it with --resume %s, or choose another directory",
		        rundir, rundir);
}

/* The model of a fresh run, saved as init.ckpt (and the run file). */
static void start_model(train_run *r, const options *o, bool resume, int argc, char **argv, const char *init_path)
{
	build_model(r, o);
	if (!resume) {
		sv *data = sv_map();
		if (!data || sv_set(data, "train", data_entry(&r->train)) || sv_set(data, "dev", data_entry(&r->dev)) ||
		    (r->have_test && sv_set(data, "test", data_entry(&r->test))) ||
		    (r->have_final_test && sv_set(data, "final_test", data_entry(&r->final_test))))
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		write_run_file(o->rundir, argc, argv, o, data);
	}
	if (cnn14_save(r->model, init_path, prog, r->argc, r->argv) != CNN14_OK)
		cli_die(prog, EXIT_RUNTIME, "%s", cnn14_error(r->model));
	/* later headers derive from init.ckpt's, as they will after a resume */
	if (cnn14_load(r->model, init_path, 0) != CNN14_OK)
		cli_die(prog, EXIT_RUNTIME, "%s", cnn14_error(r->model));
}

/* Data, model and position of the run: a fresh one, or where a resumed one stopped. */
static void prepare(train_run *r, const options *o, sv *saved, int argc, char **argv)
{
	char err[TRAIN_ERRLEN];
	if (!saved)
		die_unless_new(o->rundir);
	load_data(r, o);
	/* --init is checked by the checkpoint rules before anything is created:
	 * a refused checkpoint leaves no run directory (cnn-train(1)) */
	if (!saved && o->init && ckpt_validate(o->init, 0, 0, err, sizeof err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	/* created only once the data is known to be usable */
	if (!saved && mkdir(o->rundir, 0777) != 0 && errno != EEXIST)
		cli_die(prog, EXIT_RUNTIME, "%s: %s", o->rundir, strerror(errno));
	rundir_remove_leftovers(o->rundir); /* of a run killed before it wrote run.msgpack, or of a save */
	char *init_path = path_join(o->rundir, "init.ckpt");
	int epoch = 0, batch = 0, found = 0;
	if (saved)
		check_data(r, o, sv_get(st_header_params(saved), "data"));
	if (saved && access(init_path, F_OK) == 0)
		open_init(r, o, init_path);
	else /* a fresh start (or a run killed before init.ckpt was written: start over) */
		start_model(r, o, saved != NULL, argc, argv, init_path);
	free(init_path);
	if (saved && (found = rundir_newest(o->rundir, &epoch, &batch, err)) < 0)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	if (found) {
		char name[64];
		snprintf(name, sizeof name, "state-%d-%d", epoch, batch);
		r->state_dir = path_join(o->rundir, name);
		rundir_remove_leftovers(r->state_dir);
		rundir_prune(o->rundir, epoch, batch);
		if (train_load_state(r, err))
			cli_die(prog, EXIT_RUNTIME, "%s", err);
		if (r->pos.epoch > o->epochs) {
			if (train_write_summary(r, err))
				cli_die(prog, EXIT_RUNTIME, "%s", err);
			cli_warn(prog, "%s: the run is already complete (%d epochs)", o->rundir, o->epochs);
		}
	} else {
		if (train_text_add(&r->log, "%s", train_log_header))
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		r->pos.epoch = 1;
	}
}

static void init_run(train_run *r, const options *o, ui *u, int argc, char **argv)
{
	*r = (train_run){.prog = prog, .argc = argc, .argv = argv, .rundir = o->rundir, .epochs = o->epochs,
	                 .batch = o->batch, .crop_frames = o->crop_frames, .eval_batch = o->eval_batch,
	                 .pad_short = o->pad_short, .dropout = o->dropout, .seed = o->seed, .save_every = o->save_every,
	                 .sgd = {o->lr, o->momentum, o->weight_decay, o->nesterov}, .stop = &stop_signal,
	                 .hooks = {on_epoch_start, on_batch, on_epoch, u}};
	bool tty = isatty(STDERR_FILENO);
	*u = (ui){.epochs = !o->quiet, .live = !o->quiet && tty, .extra = !o->quiet && (tty || o->progress)};
}

int main(int argc, char **argv)
{
	options o;
	sv *saved;
	parse_args(argc, argv, &o, &saved);
	int run_argc = argc;
	char **run_argv = argv;
	check_settings(&o, saved != NULL);
	if (saved) {
		/* checkpoint headers record the command line that started the run */
		const sv *orig = sv_get_strlist(saved, "argv");
		run_argc = (int)orig->u.arr.n;
		run_argv = strlist_argv(orig);
	}
	train_run r;
	ui u;
	init_run(&r, &o, &u, run_argc, run_argv);
	prepare(&r, &o, saved, argc, argv);
	if (u.extra)
		report_memory(&r);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	char err[TRAIN_ERRLEN];
	int rc = r.pos.epoch <= o.epochs ? train_loop(&r, err) : 0;
	if (rc < 0)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	if (rc > 0) {
		cli_warn(prog, "stopped by signal %d at epoch %d, batch %d; state saved: cnn-train --resume %s",
		         (int)stop_signal, r.pos.epoch, r.pos.batch, o.rundir);
		exit(128 + stop_signal);
	}
	if (u.extra && r.have_final_test)
		fprintf(stderr, "%s: best epoch %d: dev UAR %.2f%%, final test UAR %.2f%%\n", prog, r.pos.best_epoch,
		        100 * r.pos.best_dev, 100 * r.final_test_uar);
	else if (u.extra)
		fprintf(stderr, "%s: best epoch %d: dev UAR %.2f%%\n", prog, r.pos.best_epoch, 100 * r.pos.best_dev);
	train_run_free(&r);
	if (saved) {
		free(run_argv);
		sv_free(saved);
	}
	cli_close_stdout(prog);
	return 0;
}
