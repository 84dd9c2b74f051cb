/* cnn-train - train Cnn14 on labelled log-Mel streams with the paper's recipe. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "cli.h"
#include "cnn14.h"
#include "dataset.h"
#include "evaluate.h"
#include "metrics.h"
#include "nn_pool.h"
#include "opts.h"
#include "rng.h"
#include "stream.h"

static const char *prog = "cnn-train";

static const char usage[] =
	"Usage: cnn-train --train T --dev D [--test E] -o RUNDIR [OPTION]...\n"
	"       cnn-train --resume RUNDIR [--threads N] [--progress | --quiet]\n"
	"Train Cnn14 on labelled log-Mel streams (melspec | binlabels) with the paper's\n"
	"recipe: SGD, lr 0.001, Nesterov momentum 0.9, batch 8, 60 epochs, class-balanced\n"
	"NLL; the best epoch is the one with the highest dev UAR (the earliest on ties).\n"
	"\n";

static const char epilog[] =
	"\n"
	"RUNDIR receives init.ckpt (the state before training), best.ckpt, last.ckpt,\n"
	"log.tsv (one row per epoch), summary.tsv and summary.json; SIGINT or SIGTERM\n"
	"saves resumable state and exits 128 + the signal.  See cnn-train(1).\n"
	"\n"
	"Example (the paper's baseline, then fine-tuning from it):\n"
	"  cnn-train --train train.msgpack --dev dev.msgpack --test test.msgpack -o runs/random\n"
	"  cnn-train --init runs/random/best.ckpt --finetune linear --train train100.msgpack \\\n"
	"            --dev dev100.msgpack --test test100.msgpack -o runs/bp100-linear\n";

/* Set by the signal handler; read between training steps. */
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

typedef struct {
	const char *train, *dev, *test, *rundir, *init, *resume;
	int epochs, batch, crop_frames, threads, eval_batch, width_div;
	double lr, momentum, weight_decay, save_every;
	bool nesterov, balance, new_head, freeze_bn_stats, pad_short, quiet, progress, dump_settings;
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
	{"output", 'o', OPT_STRING, F(rundir), .arg = "RUNDIR", .help = "run directory (created; must not hold a run already)"},
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
	{"progress", 0, OPT_FLAG, F(progress), .help = "progress on stderr even when it is not a terminal", .flags = OPT_KEEP},
	{"quiet", 'q', OPT_FLAG, F(quiet), .help = "no progress at all", .flags = OPT_KEEP},
	{"dump-settings", 0, OPT_FLAG, F(dump_settings), .flags = OPT_KEEP | OPT_HIDDEN,
	 .help = "print the settings as resolved (resume included) and exit: for tests"},
	OPT_END,
};
#undef F
#undef SET
#undef FILE_SET

static const opts_spec spec = {"cnn-train", options_table, usage, epilog};

/* Where a run stands: the next batch to train is `batch` of `epoch`. */
typedef struct {
	int epoch, batch;
	double loss_sum;     /* sum of batch losses so far in this epoch */
	int best_epoch;      /* 0: none yet */
	double best_dev, best_test;
	double step_seconds, train_seconds; /* this epoch so far (not part of exactness) */
} position;

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
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (!p)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	snprintf(p, n, "%s/%s", dir, name);
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

/* The newest complete state directory's (epoch, batch), or 0 when none. */
static int newest_state(const char *rundir, int *epoch, int *batch)
{
	DIR *d = opendir(rundir);
	if (!d)
		cli_die(prog, EXIT_RUNTIME, "%s: %s", rundir, strerror(errno));
	struct dirent *e;
	int found = 0;
	while ((e = readdir(d))) {
		int ep, b;
		char tail;
		if (sscanf(e->d_name, "state-%d-%d%c", &ep, &b, &tail) == 2 &&
		    (!found || ep > *epoch || (ep == *epoch && b > *batch))) {
			*epoch = ep;
			*batch = b;
			found = 1;
		}
	}
	closedir(d);
	return found;
}

static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			char *p = path_join(dir, e->d_name);
			unlink(p);
			free(p);
		}
	closedir(d);
	rmdir(dir);
}

/* Removes every state directory but the newest. */
static void prune_states(const char *rundir, int keep_epoch, int keep_batch)
{
	DIR *d = opendir(rundir);
	if (!d)
		return;
	struct dirent *e;
	char keep[64];
	snprintf(keep, sizeof keep, "state-%d-%d", keep_epoch, keep_batch);
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "state-", 6) == 0 && strcmp(e->d_name, keep) != 0) {
			char *p = path_join(rundir, e->d_name);
			remove_tree(p);
			free(p);
		}
	}
	closedir(d);
}

/* Removes what an interrupted run may have left half-written in dir: its own
 * temporary files (".init.XXXXXX.ckpt", ".last.ckpt.link", ...) and
 * unfinished state directories (".state-E-B.tmp"), nothing else. */
static void remove_leftovers(const char *dir)
{
	static const char *const ours[] = {"init.", "run.", "last.", "best.", "log.", "summary.", "position.", "state-"};
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] != '.')
			continue;
		for (size_t i = 0; i < sizeof ours / sizeof *ours; i++)
			if (strncmp(e->d_name + 1, ours[i], strlen(ours[i])) == 0) {
				char *p = path_join(dir, e->d_name);
				if (unlink(p) != 0)
					remove_tree(p);
				free(p);
				break;
			}
	}
	closedir(d);
}

/* Makes RUNDIR/name a hard link to target, atomically replacing it. */
static void publish(const char *rundir, const char *statedir, const char *name)
{
	char *target = path_join(statedir, name), *dest = path_join(rundir, name);
	size_t n = strlen(rundir) + strlen(name) + 16;
	char *tmp = malloc(n);
	if (!tmp)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	snprintf(tmp, n, "%s/.%s.link", rundir, name);
	unlink(tmp);
	if (link(target, tmp) != 0 || rename(tmp, dest) != 0)
		cli_die(prog, EXIT_RUNTIME, "%s: %s", dest, strerror(errno));
	/* rename() between two links of one file does nothing: drop the spare link */
	unlink(tmp);
	free(target);
	free(dest);
	free(tmp);
}

static void fsync_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		fsync(dirfd(d));
		closedir(d);
	}
}

static void write_text(const char *path, const char *text)
{
	char err[ST_ERRLEN];
	atomic_file af;
	if (atomic_open(&af, path, err, sizeof err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	if (fputs(text, af.f) == EOF) {
		atomic_abort(&af);
		cli_die(prog, EXIT_RUNTIME, "%s: %s", path, strerror(errno));
	}
	if (atomic_commit(&af, err, sizeof err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
}

/* A growing text buffer for log.tsv. */
typedef struct {
	char *s;
	size_t len, cap;
} text;

static void text_add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(text *t, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			cli_die(prog, EXIT_RUNTIME, "formatting failed");
		if (t->s && t->len + (size_t)n < t->cap) {
			t->len += (size_t)n;
			return;
		}
		size_t ncap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
		char *ns = realloc(t->s, ncap);
		if (!ns)
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		t->s = ns;
		t->cap = ncap;
	}
}

static const char log_header[] =
	"epoch\ttrain_loss\tdev_uar\ttest_uar\tseconds\ttrain_seconds\tstep_seconds\tsamples_per_s\n";

static void save_position(const char *path, const position *p)
{
	char err[ST_ERRLEN];
	sv *h = st_header_new(prog, 0, NULL), *m = sv_map();
	if (!h || !m || sv_set(m, "epoch", sv_int(p->epoch)) || sv_set(m, "batch", sv_int(p->batch)) ||
	    sv_set(m, "loss_sum", sv_float(p->loss_sum)) || sv_set(m, "best_epoch", sv_int(p->best_epoch)) ||
	    sv_set(m, "best_dev_uar", sv_float(p->best_dev)) || sv_set(m, "best_test_uar", sv_float(p->best_test)) ||
	    sv_set(m, "step_seconds", sv_float(p->step_seconds)) ||
	    sv_set(m, "train_seconds", sv_float(p->train_seconds)) || sv_set(st_header_params(h), "position", m))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	st_writer *w = st_writer_open(path, h, err);
	if (!w || st_writer_close(w, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	sv_free(h);
}

static void load_position(const char *path, position *p)
{
	char err[ST_ERRLEN];
	st_reader *r = st_reader_open(path, 0, 0, err);
	if (!r)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	const sv *m = sv_get(st_reader_params(r), "position");
	int64_t e, b, be;
	if (!m || !sv_get_int(m, "epoch", &e) || !sv_get_int(m, "batch", &b) || !sv_get_num(m, "loss_sum", &p->loss_sum) ||
	    !sv_get_int(m, "best_epoch", &be) || !sv_get_num(m, "best_dev_uar", &p->best_dev) ||
	    !sv_get_num(m, "best_test_uar", &p->best_test) || !sv_get_num(m, "step_seconds", &p->step_seconds) ||
	    !sv_get_num(m, "train_seconds", &p->train_seconds))
		cli_die(prog, EXIT_RUNTIME, "%s: not a training position", path);
	p->epoch = (int)e;
	p->batch = (int)b;
	p->best_epoch = (int)be;
	st_reader_close(r);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		cli_die(prog, EXIT_RUNTIME, "%s: %s", path, strerror(errno));
	text t = {0};
	char buf[4096];
	size_t n;
	text_add(&t, "%s", "");
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		text_add(&t, "%.*s", (int)n, buf);
	if (ferror(f))
		cli_die(prog, EXIT_RUNTIME, "%s: read error", path);
	fclose(f);
	return t.s;
}

typedef struct {
	const options *o;
	cnn14 *model;
	dataset train, dev, test;
	bool have_test;
	float class_weights[4096];
	float pad_value;
	cnn14_sgd sgd;
	text log;
	position pos;
	int nbatches;
	char *state_dir; /* newest committed state */
	int argc;
	char **argv;
	cli_progress progress;
} run;

static void save_model(run *r, const char *dir, const char *name, sv *training)
{
	char *p = path_join(dir, name);
	if (!training || sv_set(cnn14_params(r->model), "training", training))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	if (cnn14_save(r->model, p, prog, r->argc, r->argv) != CNN14_OK)
		cli_die(prog, EXIT_RUNTIME, "%s", cnn14_error(r->model));
	free(p);
}

/* Writes the whole resumable state under a new state directory and
 * publishes it.  new_best: this position ends the best epoch so far (whose
 * scores are in r->pos), so best.ckpt is this model. */
static void save_state(run *r, bool new_best)
{
	const char *rundir = r->o->rundir;
	char name[64];
	snprintf(name, sizeof name, ".state-%d-%d.tmp", r->pos.epoch, r->pos.batch);
	char *tmp = path_join(rundir, name);
	/* leftovers of a killed save were pruned when the run resumed */
	if (mkdir(tmp, 0777) != 0)
		cli_die(prog, EXIT_RUNTIME, "%s: %s", tmp, strerror(errno));
	int completed = r->pos.epoch - 1;
	if (new_best) {
		sv *tr = sv_map();
		if (!tr || sv_set(tr, "epoch", sv_int(completed)) || sv_set(tr, "dev_uar", sv_float(r->pos.best_dev)) ||
		    sv_set(tr, "test_uar", r->have_test ? sv_float(r->pos.best_test) : sv_nil()))
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		save_model(r, tmp, "best.ckpt", tr);
	}
	sv *tr = sv_map();
	if (!tr || sv_set(tr, "epoch", sv_int(completed)) || sv_set(tr, "batches_into_next_epoch", sv_int(r->pos.batch)))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	save_model(r, tmp, "last.ckpt", tr);
	char *p;
	p = path_join(tmp, "last.opt");
	if (cnn14_save_optimizer(r->model, p, prog, r->argc, r->argv) != CNN14_OK)
		cli_die(prog, EXIT_RUNTIME, "%s", cnn14_error(r->model));
	free(p);
	p = path_join(tmp, "position.msgpack");
	save_position(p, &r->pos);
	free(p);
	p = path_join(tmp, "log.tsv");
	write_text(p, r->log.s);
	free(p);
	/* best.ckpt: carried over from the previous state unless this epoch wrote a new one */
	char *best = path_join(tmp, "best.ckpt");
	if (access(best, F_OK) != 0 && r->state_dir) {
		char *old = path_join(r->state_dir, "best.ckpt");
		if (access(old, F_OK) == 0 && link(old, best) != 0)
			cli_die(prog, EXIT_RUNTIME, "%s: %s", best, strerror(errno));
		free(old);
	}
	free(best);
	fsync_dir(tmp);
	snprintf(name, sizeof name, "state-%d-%d", r->pos.epoch, r->pos.batch);
	char *final = path_join(rundir, name);
	if (access(final, F_OK) == 0) {
		/* nothing was trained since this position was saved: keep the committed copy */
		remove_tree(tmp);
		free(tmp);
		free(final);
		return;
	}
	if (rename(tmp, final) != 0)
		cli_die(prog, EXIT_RUNTIME, "%s: %s", final, strerror(errno));
	fsync_dir(rundir);
	free(tmp);
	free(r->state_dir);
	r->state_dir = final;
	publish(rundir, final, "last.ckpt");
	publish(rundir, final, "log.tsv");
	char *b = path_join(final, "best.ckpt");
	if (access(b, F_OK) == 0)
		publish(rundir, final, "best.ckpt");
	free(b);
	prune_states(rundir, r->pos.epoch, r->pos.batch);
}

static void load_data(run *r)
{
	const options *o = r->o;
	char err[ST_ERRLEN];
	if (dataset_load(&r->train, o->train, 0, err) || dataset_load(&r->dev, o->dev, 0, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	if (dataset_compatible(&r->train, &r->dev, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	r->have_test = o->test != NULL;
	if (r->have_test && (dataset_load(&r->test, o->test, 0, err) || dataset_compatible(&r->train, &r->test, err)))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	if (r->train.n == 0)
		cli_die(prog, EXIT_RUNTIME, "%s: no training items", r->train.name);
	if (r->dev.n == 0)
		cli_die(prog, EXIT_RUNTIME, "%s: no development items: the best epoch cannot be chosen", r->dev.name);
	if (r->train.n_mels != CNN14_N_MELS)
		cli_die(prog, EXIT_RUNTIME, "%s: %d mel bins, Cnn14 reads %d", r->train.name, r->train.n_mels, CNN14_N_MELS);
	if (r->train.classes > (int)(sizeof r->class_weights / sizeof *r->class_weights))
		cli_die(prog, EXIT_RUNTIME, "%s: too many classes (%d)", r->train.name, r->train.classes);
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
	for (int i = 0; i < (r->have_test ? 2 : 1) && !o->pad_short; i++) {
		const dataset *ds = i ? &r->test : &r->dev;
		for (size_t k = 0; k < ds->n; k++)
			if (ds->items[k].frames < CNN14_MIN_FRAMES)
				cli_die(prog, EXIT_RUNTIME, "%s: item '%s' has %d frames, the network needs at least %d (pad it: --pad-short)",
				        ds->name, ds->items[k].key, ds->items[k].frames, CNN14_MIN_FRAMES);
	}
}

/* What the run holds in memory, on stderr with progress. */
static void report_memory(run *r)
{
	if (r->o->quiet || !r->progress.enabled)
		return;
	double mb = (double)(r->train.bytes + r->dev.bytes + r->test.bytes) / 1048576.0;
	uint64_t params = cnn14_num_params(r->model);
	fprintf(stderr, "%s: in memory: %zu train, %zu dev, %zu test items, %.1f MB of log-Mel; model of %llu parameters, %.1f MB with gradients and momentum (plus activations)\n",
	        prog, r->train.n, r->dev.n, r->test.n, mb, (unsigned long long)params, 3.0 * 4.0 * (double)params / 1048576.0);
}

static void set_training_params(run *r)
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

static void build_model(run *r)
{
	const options *o = r->o;
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

static double score(run *r, const dataset *ds)
{
	char err[CNN14_ERRLEN];
	confusion conf;
	eval_options eo = {.max_batch = r->o->eval_batch, .pad_short = r->o->pad_short, .pad_value = r->pad_value};
	if (confusion_init(&conf, cnn14_classes(r->model)))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	if (evaluate_dataset(r->model, ds, &eo, &conf, NULL, NULL, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	double uar = confusion_uar(&conf);
	confusion_free(&conf);
	return uar;
}

/* The epoch's item order and crop offsets: a function of (seed, epoch) alone. */
static void plan_epoch(const run *r, int epoch, size_t *order, int *offsets)
{
	uint64_t s = rng_seed(r->o->seed, (uint64_t)epoch);
	size_t n = r->train.n;
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)rng_below(&s, i + 1);
		size_t t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (size_t i = 0; i < n; i++) {
		int extra = r->train.items[order[i]].frames - r->o->crop_frames;
		offsets[i] = extra > 0 ? (int)rng_below(&s, (uint64_t)extra + 1) : 0;
	}
}

static void write_summary(run *r)
{
	const char *names[] = {"summary.tsv", "summary.json"};
	text t = {0};
	const position *p = &r->pos;
	text_add(&t, "best_epoch\tdev_uar\ttest_uar\tepochs\n%d\t%.6f\t", p->best_epoch, p->best_dev);
	text_add(&t, r->have_test ? "%.6f" : "NA", p->best_test);
	text_add(&t, "\t%d\n", r->o->epochs);
	char *path = path_join(r->state_dir, names[0]);
	write_text(path, t.s);
	free(path);
	t.len = 0;
	text_add(&t, "{\"best_epoch\":%d,\"dev_uar\":%.6f,\"test_uar\":", p->best_epoch, p->best_dev);
	text_add(&t, r->have_test ? "%.6f" : "null", p->best_test);
	text_add(&t, ",\"epochs\":%d}\n", r->o->epochs);
	path = path_join(r->state_dir, names[1]);
	write_text(path, t.s);
	free(path);
	free(t.s);
	fsync_dir(r->state_dir);
	publish(r->o->rundir, r->state_dir, names[0]);
	publish(r->o->rundir, r->state_dir, names[1]);
}

static void train(run *r)
{
	const options *o = r->o;
	size_t n = r->train.n;
	size_t *order = malloc(n * sizeof *order);
	int *offsets = malloc(n * sizeof *offsets);
	size_t xlen = (size_t)o->batch * (size_t)o->crop_frames * CNN14_N_MELS;
	float *x = malloc(xlen * sizeof *x);
	int *labels = malloc((size_t)o->batch * sizeof *labels);
	if (!order || !offsets || !x || !labels)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	r->nbatches = (int)((n + (size_t)o->batch - 1) / (size_t)o->batch);
	double last_save = cli_now();
	position *p = &r->pos;
	while (p->epoch <= o->epochs) {
		double epoch_start = cli_now() - p->train_seconds;
		r->progress.start = epoch_start; /* the ETA is the epoch's */
		r->progress.last = epoch_start;
		plan_epoch(r, p->epoch, order, offsets);
		for (; p->batch < r->nbatches; p->batch++) {
			if (stop_signal) {
				p->train_seconds = cli_now() - epoch_start;
				save_state(r, false);
				cli_warn(prog, "stopped by signal %d at epoch %d, batch %d; state saved: cnn-train --resume %s",
				         (int)stop_signal, p->epoch, p->batch, o->rundir);
				exit(128 + stop_signal);
			}
			if (o->save_every > 0 && p->batch > 0 && cli_now() - last_save >= o->save_every) {
				p->train_seconds = cli_now() - epoch_start;
				save_state(r, false);
				last_save = cli_now();
			}
			size_t first = (size_t)p->batch * (size_t)o->batch;
			int bs = (int)((n - first) < (size_t)o->batch ? n - first : (size_t)o->batch);
			for (int b = 0; b < bs; b++) {
				const ds_item *it = &r->train.items[order[first + (size_t)b]];
				dataset_crop(&r->train, it, offsets[first + (size_t)b], o->crop_frames, r->pad_value,
				             x + (size_t)b * (size_t)o->crop_frames * CNN14_N_MELS);
				labels[b] = it->label;
			}
			double t0 = cli_now(), loss = 0;
			cnn14_zero_grad(r->model);
			if (cnn14_forward(r->model, x, bs, o->crop_frames, CNN14_TRAIN, NULL) != CNN14_OK ||
			    cnn14_backward(r->model, labels, r->class_weights, &loss) != CNN14_OK ||
			    cnn14_step(r->model, &r->sgd) != CNN14_OK)
				cli_die(prog, EXIT_RUNTIME, "%s", cnn14_error(r->model));
			p->step_seconds += cli_now() - t0;
			if (!isfinite(loss))
				cli_die(prog, EXIT_RUNTIME, "epoch %d, batch %d: the loss is %g: training diverged (lower --lr?)",
				        p->epoch, p->batch + 1, loss);
			p->loss_sum += loss;
			if (!o->quiet) {
				char what[128];
				snprintf(what, sizeof what, "batches of epoch %d/%d, loss %.4f", p->epoch, o->epochs,
				         p->loss_sum / (p->batch + 1));
				cli_progress_update(&r->progress, (uint64_t)p->batch + 1, (uint64_t)r->nbatches, what);
			}
		}
		double train_seconds = cli_now() - epoch_start;
		double dev = score(r, &r->dev);
		double test = r->have_test ? score(r, &r->test) : NAN;
		double seconds = cli_now() - epoch_start;
		double loss = p->loss_sum / r->nbatches;
		text_add(&r->log, "%d\t%.6f\t%.6f\t", p->epoch, loss, dev);
		text_add(&r->log, r->have_test ? "%.6f" : "NA", test);
		text_add(&r->log, "\t%.3f\t%.3f\t%.3f\t%.2f\n", seconds, train_seconds, p->step_seconds,
		         (double)n / train_seconds);
		bool best = p->best_epoch == 0 || dev > p->best_dev;
		if (best) {
			p->best_epoch = p->epoch;
			p->best_dev = dev;
			p->best_test = test;
		}
		if (!o->quiet && r->progress.enabled) {
			char tests[48] = "";
			if (r->have_test)
				snprintf(tests, sizeof tests, ", test UAR %.2f%%", 100 * test);
			/* blank the progress line first */
			fprintf(stderr, "\r%*s\r%s: epoch %d/%d: loss %.4f, dev UAR %.2f%%%s, %.1f s (%.1f samples/s)%s\n", 79, "",
			        prog, p->epoch, o->epochs, loss, 100 * dev, tests, seconds, (double)n / train_seconds,
			        best ? " (best)" : "");
		}
		/* the state after epoch E is the position (E + 1, 0) */
		p->epoch++;
		p->batch = 0;
		p->loss_sum = p->step_seconds = p->train_seconds = 0;
		save_state(r, best);
		last_save = cli_now();
	}
	write_summary(r);
	free(order);
	free(offsets);
	free(x);
	free(labels);
}

/* Refuses to resume on data other than the run started with. */
static void check_data(const run *r, const sv *saved)
{
	const dataset *sets[] = {&r->train, &r->dev, &r->test};
	const char *names[] = {"train", "dev", "test"};
	for (int i = 0; i < (r->have_test ? 3 : 2); i++) {
		const sv *e = sv_get(saved, names[i]);
		int64_t n, fp;
		if (!e || !sv_get_int(e, "items", &n) || !sv_get_int(e, "fingerprint", &fp))
			cli_die(prog, EXIT_RUNTIME, "%s/run.msgpack: no fingerprint of the %s data", r->o->rundir, names[i]);
		if ((uint64_t)n != sets[i]->n || (uint64_t)fp != dataset_fingerprint(sets[i]))
			cli_die(prog, EXIT_RUNTIME, "%s: changed since the run started (%lld items then, %zu now%s): resuming would not continue the same run",
			        sets[i]->name, (long long)n, sets[i]->n, (uint64_t)n == sets[i]->n ? ", other content" : "");
	}
}

/* The model of a resumed run before its newest state is applied: the one
 * init.ckpt holds, so that every checkpoint header derives from init.ckpt's
 * as in an uninterrupted run. */
static void open_init(run *r, const char *init_path)
{
	char err[CNN14_ERRLEN];
	r->model = cnn14_open(init_path, r->o->threads, err);
	if (!r->model)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	if (cnn14_classes(r->model) != r->train.classes)
		cli_die(prog, EXIT_RUNTIME, "%s: %d classes, the training data has %d", init_path, cnn14_classes(r->model),
		        r->train.classes);
	cnn14_set_seed(r->model, r->o->seed);
	cnn14_set_finetune(r->model, r->o->finetune, r->o->freeze_bn_stats);
}

/* Applies the state in r->state_dir: tensors (not the header, see
 * open_init), optimiser, position and log. */
static void load_state(run *r)
{
	char err[CNN14_ERRLEN];
	char *p = path_join(r->state_dir, "last.ckpt");
	cnn14 *last = cnn14_open(p, 1, err);
	if (!last)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	if (cnn14_classes(last) != cnn14_classes(r->model) || cnn14_width_div(last) != cnn14_width_div(r->model) ||
	    cnn14_num_tensors(last) != cnn14_num_tensors(r->model))
		cli_die(prog, EXIT_RUNTIME, "%s: not a state of the model in init.ckpt", p);
	for (size_t i = 0; i < cnn14_num_tensors(last); i++) {
		cnn14_tensor from = cnn14_tensor_at(last, i), to = cnn14_tensor_at(r->model, i);
		if (from.is_int64)
			memcpy(to.data_i64, from.data_i64, from.numel * sizeof *from.data_i64);
		else
			memcpy(to.data, from.data, from.numel * sizeof *from.data);
	}
	cnn14_free(last);
	free(p);
	p = path_join(r->state_dir, "last.opt");
	if (cnn14_load_optimizer(r->model, p) != CNN14_OK)
		cli_die(prog, EXIT_RUNTIME, "%s", cnn14_error(r->model));
	free(p);
	p = path_join(r->state_dir, "position.msgpack");
	load_position(p, &r->pos);
	free(p);
	p = path_join(r->state_dir, "log.tsv");
	r->log.s = read_file(p);
	r->log.len = strlen(r->log.s);
	r->log.cap = r->log.len + 1;
	free(p);
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

/* What the settings must satisfy beyond each option's own range. */
static void check_settings(const options *o, bool resume)
{
	if (resume) {
		if (!strcmp(o->train, "-") || !strcmp(o->dev, "-") || (o->test && !strcmp(o->test, "-")))
			cli_die(prog, EXIT_RUNTIME, "%s: the run read a stream from standard input: it cannot be resumed", o->rundir);
		return;
	}
	if (!o->train || !o->dev || !o->rundir)
		cli_usage_error(prog, "--train, --dev and -o RUNDIR are required");
	if (o->init && o->width_div != 1)
		cli_usage_error(prog, "--width-div comes from the --init checkpoint");
	int stdin_uses = !strcmp(o->train, "-") + !strcmp(o->dev, "-") + (o->test && !strcmp(o->test, "-"));
	if (stdin_uses > 1)
		cli_usage_error(prog, "standard input ('-') can be read only once");
}

int main(int argc, char **argv)
{
	options o;
	sv *saved;
	parse_args(argc, argv, &o, &saved);
	const char *resume = saved ? o.rundir : NULL;
	int run_argc = argc;
	char **run_argv = argv;
	check_settings(&o, resume != NULL);
	if (resume) {
		/* checkpoint headers record the command line that started the run */
		const sv *orig = sv_get_strlist(saved, "argv");
		run_argc = (int)orig->u.arr.n;
		run_argv = strlist_argv(orig);
	}

	run r;
	memset(&r, 0, sizeof r);
	r.o = &o;
	r.argc = run_argc;
	r.argv = run_argv;
	r.sgd = (cnn14_sgd){o.lr, o.momentum, o.weight_decay, o.nesterov};
	cli_progress_init(&r.progress, prog, o.progress);
	if (o.quiet)
		r.progress.enabled = false;

	if (!resume) {
		struct stat st;
		char *runfile = path_join(o.rundir, "run.msgpack");
		int e, b;
		bool taken = stat(runfile, &st) == 0 || (stat(o.rundir, &st) == 0 && newest_state(o.rundir, &e, &b));
		free(runfile);
		if (taken)
			cli_die(prog, EXIT_RUNTIME, "%s already holds a run: continue it with --resume %s, or choose another directory",
			        o.rundir, o.rundir);
	}
	load_data(&r);
	/* created only once the data is known to be usable */
	if (!resume && mkdir(o.rundir, 0777) != 0 && errno != EEXIST)
		cli_die(prog, EXIT_RUNTIME, "%s: %s", o.rundir, strerror(errno));
	remove_leftovers(o.rundir); /* of a run killed before it wrote run.msgpack, or of a save */
	char *init_path = path_join(o.rundir, "init.ckpt");
	int epoch = 0, batch = 0;
	if (resume)
		check_data(&r, sv_get(st_header_params(saved), "data"));
	if (resume && access(init_path, F_OK) == 0) {
		open_init(&r, init_path);
	} else {
		/* a fresh start (or a run killed before init.ckpt was written: start over) */
		build_model(&r);
		if (!resume) {
			sv *data = sv_map();
			if (!data || sv_set(data, "train", data_entry(&r.train)) || sv_set(data, "dev", data_entry(&r.dev)) ||
			    (r.have_test && sv_set(data, "test", data_entry(&r.test))))
				cli_die(prog, EXIT_RUNTIME, "out of memory");
			write_run_file(o.rundir, argc, argv, &o, data);
		}
		if (cnn14_save(r.model, init_path, prog, r.argc, r.argv) != CNN14_OK)
			cli_die(prog, EXIT_RUNTIME, "%s", cnn14_error(r.model));
		/* later headers derive from init.ckpt's, as they will after a resume */
		if (cnn14_load(r.model, init_path, 0) != CNN14_OK)
			cli_die(prog, EXIT_RUNTIME, "%s", cnn14_error(r.model));
	}
	if (resume && newest_state(o.rundir, &epoch, &batch)) {
		char name[64];
		snprintf(name, sizeof name, "state-%d-%d", epoch, batch);
		r.state_dir = path_join(o.rundir, name);
		remove_leftovers(r.state_dir);
		prune_states(o.rundir, epoch, batch);
		load_state(&r);
		if (r.pos.epoch > o.epochs) {
			write_summary(&r);
			cli_warn(prog, "%s: the run is already complete (%d epochs)", o.rundir, o.epochs);
		}
	} else {
		text_add(&r.log, "%s", log_header);
		r.pos.epoch = 1;
	}
	free(init_path);
	report_memory(&r);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (r.pos.epoch <= o.epochs)
		train(&r);
	if (!o.quiet && r.progress.enabled)
		fprintf(stderr, "%s: best epoch %d: dev UAR %.2f%%\n", prog, r.pos.best_epoch, 100 * r.pos.best_dev);
	cnn14_free(r.model);
	dataset_free(&r.train);
	dataset_free(&r.dev);
	dataset_free(&r.test);
	free(r.log.s);
	free(r.state_dir);
	if (saved) {
		free(run_argv);
		sv_free(saved);
	}
	cli_close_stdout(prog);
	return 0;
}
