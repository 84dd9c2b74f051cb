/*
 * train.h - the training loop of cnn-train: epochs, crops, scoring, state.
 *
 * One epoch trains on every training item once, in an order and with crop
 * offsets that are a function of (seed, epoch) alone (train_plan_epoch),
 * then scores the dev set (and the test set when there is one) and keeps
 * the epoch with the highest dev UAR (the earliest on ties) as the best.
 * A final test set is scored once, after the last epoch, with the best
 * epoch's model: the protocol's test score without the cost of scoring a
 * test set every epoch (the per-epoch test set then only draws the curve).
 * The whole resumable state (model, optimiser, position, log) is saved into
 * the run directory (common/rundir.h) at every epoch end, every save_every
 * seconds mid-epoch, and when *stop becomes nonzero (a signal); because
 * everything a step consumes is derived from (seed, epoch, batch), a run
 * resumed from any saved state ends with the same bytes as one that was
 * never interrupted (on the same CPU and OpenBLAS kernel; results do not
 * depend on the thread count, see cnn14.h).
 *
 * Files of a state directory: last.ckpt (the model; params.training says
 * where), last.opt (momentum), position.msgpack (a train_position in
 * params.position), log.tsv (one row per finished epoch, train_log_header
 * first), log.jsonl (the same rows as JSON objects {"epoch", "loss",
 * "dev_uar", "test_uar" (null without a test set), "seconds"}, the numbers
 * as log.tsv writes them), best.ckpt (a hard link to the previous state's
 * while it has not changed).  RUNDIR's last.ckpt, log.tsv, log.jsonl,
 * best.ckpt, summary.tsv and summary.json are links to the newest state's
 * files.
 *
 * Errors: 0 or -1 with a message in err (TRAIN_ERRLEN bytes).  The caller
 * prints it; nothing here prints except through the hooks.
 *
 * Usage sketch (what cnn-train's main does):
 *
 *     train_run r = {.prog = "cnn-train", .rundir = dir, .epochs = 60, .batch = 8, ...,
 *                    .model = m, .sgd = sgd, .stop = &stop_signal, .hooks = {progress_fns, &ui}};
 *     load the datasets into r.train, r.dev (r.test, r.have_test), r.class_weights, r.pad_value;
 *     if (resuming) { r.state_dir = rundir_path(dir, "state-E-B"); train_load_state(&r, err); }
 *     else { train_text_add(&r.log, "%s", train_log_header); r.pos.epoch = 1; }
 *     switch (train_loop(&r, err)) { case 1: stopped, state saved; case -1: die(err); }
 */
#ifndef SERTOOLS_TRAIN_H
#define SERTOOLS_TRAIN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cnn14.h"
#include "dataset.h"

#define TRAIN_ERRLEN 512

/* A growing text (log.tsv, the summaries). */
typedef struct {
	char *s;
	size_t len, cap;
} train_text;

/* Appends; 0, or -1 when memory runs out. */
int train_text_add(train_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The columns of log.tsv. */
extern const char train_log_header[];

/* Where a run stands: the next batch to train is `batch` of `epoch`. */
typedef struct {
	int epoch, batch;
	double loss_sum; /* sum of batch losses so far in this epoch */
	int best_epoch;  /* 0: none yet */
	double best_dev, best_test;
	double step_seconds, train_seconds; /* this epoch so far (not part of exactness) */
} train_position;

int train_position_save(const char *path, const train_position *p, const char *producer, char *err);
int train_position_load(const char *path, train_position *p, char *err);

/* The epoch's item order (a permutation of 0..n-1) and crop offsets (into
 * the items in that order): a function of (seed, epoch) alone. */
void train_plan_epoch(uint64_t seed, int epoch, const dataset *ds, int crop_frames, size_t *order, int *offsets);

/* What one finished epoch scored (for the epoch_done hook). */
typedef struct {
	int epoch;
	double loss, dev, test; /* test NAN without a test set */
	double seconds, train_seconds;
	bool best;
} train_epoch;

typedef struct train_run train_run;

/* Progress callbacks, each optional. */
typedef struct {
	void (*epoch_start)(void *ctx, const train_run *r, double start); /* cli_now() of the epoch's start */
	void (*batch_done)(void *ctx, const train_run *r);
	void (*epoch_done)(void *ctx, const train_run *r, const train_epoch *e);
	void *ctx;
} train_hooks;

struct train_run {
	/* set by the caller */
	const char *prog;   /* producer named in the files written */
	int argc;           /* the command line that started the run, */
	char **argv;        /* recorded in checkpoint headers */
	const char *rundir;
	int epochs, batch, crop_frames, eval_batch;
	bool pad_short;
	bool dropout;       /* false: training forward passes without dropout */
	uint64_t seed;
	double save_every;  /* seconds; 0: at epoch ends only */
	cnn14 *model;
	cnn14_sgd sgd;
	dataset train, dev, test, final_test;
	bool have_test, have_final_test;
	float *class_weights; /* one per class (malloc'd: train_run_free frees it) */
	float pad_value;    /* the log-Mel of silence: crop and short-item padding */
	const volatile sig_atomic_t *stop; /* NULL, or nonzero to stop (saved) */
	train_hooks hooks;
	/* kept by the loop (set by train_load_state on resume) */
	train_text log;
	train_position pos;
	int nbatches;
	char *state_dir;    /* newest committed state, NULL before the first */
	double final_test_uar; /* set by train_write_summary when have_final_test */
};

/* Trains from r->pos to the end of epoch r->epochs and writes the summary.
 * 1 when *r->stop became nonzero: the state is saved at r->pos; 0 when
 * done; -1 with err. */
int train_loop(train_run *r, char *err);

/* The model's UAR on ds (evaluation mode). */
int train_score(const train_run *r, const dataset *ds, double *uar, char *err);

/* Writes the whole resumable state as a new state directory and publishes
 * it.  new_best: r->pos ends the best epoch so far, best.ckpt is the model. */
int train_save_state(train_run *r, bool new_best, char *err);

/* Applies the state in r->state_dir to r->model (tensors, not the header:
 * the caller opened the model from init.ckpt so that every checkpoint header
 * derives from it as in an uninterrupted run), the optimiser, r->pos and
 * r->log. */
int train_load_state(train_run *r, char *err);

/* summary.tsv and summary.json of r->pos into the newest state, published.
 * Their test_uar: with a final test set, its UAR under the best epoch's
 * model (loaded into r->model, which then no longer holds the last epoch's);
 * else the test set's at the best epoch; else none. */
int train_write_summary(train_run *r, char *err);

/* Frees what the loop keeps (log, state_dir), the class weights, the
 * datasets and the model. */
void train_run_free(train_run *r);

#endif
