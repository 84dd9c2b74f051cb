#include "train.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "evaluate.h"
#include "metrics.h"
#include "rng.h"
#include "rundir.h"
#include "stream.h"

const char train_log_header[] =
	"epoch\ttrain_loss\tdev_uar\ttest_uar\tseconds\ttrain_seconds\tstep_seconds\tsamples_per_s\n";

static int fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, TRAIN_ERRLEN, fmt, ap);
	va_end(ap);
	return -1;
}

int train_text_add(train_text *t, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -1;
		if (t->s && t->len + (size_t)n < t->cap) {
			t->len += (size_t)n;
			return 0;
		}
		size_t ncap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
		char *ns = realloc(t->s, ncap);
		if (!ns)
			return -1;
		t->s = ns;
		t->cap = ncap;
	}
}

int train_position_save(const char *path, const train_position *p, const char *producer, char *err)
{
	sv *h = st_header_new(producer, 0, NULL), *m = sv_map();
	if (!h || !m || sv_set(m, "epoch", sv_int(p->epoch)) || sv_set(m, "batch", sv_int(p->batch)) ||
	    sv_set(m, "loss_sum", sv_float(p->loss_sum)) || sv_set(m, "best_epoch", sv_int(p->best_epoch)) ||
	    sv_set(m, "best_dev_uar", sv_float(p->best_dev)) || sv_set(m, "best_test_uar", sv_float(p->best_test)) ||
	    sv_set(m, "step_seconds", sv_float(p->step_seconds)) ||
	    sv_set(m, "train_seconds", sv_float(p->train_seconds)) || sv_set(st_header_params(h), "position", m)) {
		sv_free(h);
		return fail(err, "out of memory");
	}
	st_writer *w = st_writer_open(path, h, err);
	int rc = !w || st_writer_close(w, err) ? -1 : 0;
	sv_free(h);
	return rc;
}

int train_position_load(const char *path, train_position *p, char *err)
{
	st_reader *r = st_reader_open(path, 0, 0, err);
	if (!r)
		return -1;
	const sv *m = sv_get(st_reader_params(r), "position");
	int64_t e, b, be;
	if (!m || !sv_get_int(m, "epoch", &e) || !sv_get_int(m, "batch", &b) || !sv_get_num(m, "loss_sum", &p->loss_sum) ||
	    !sv_get_int(m, "best_epoch", &be) || !sv_get_num(m, "best_dev_uar", &p->best_dev) ||
	    !sv_get_num(m, "best_test_uar", &p->best_test) || !sv_get_num(m, "step_seconds", &p->step_seconds) ||
	    !sv_get_num(m, "train_seconds", &p->train_seconds)) {
		st_reader_close(r);
		return fail(err, "%s: not a training position", path);
	}
	st_reader_close(r);
	if (e < 1 || e > INT_MAX || b < 0 || b > INT_MAX || be < 0 || be > e)
		return fail(err, "%s: position out of range (epoch %lld, batch %lld, best epoch %lld)", path,
			    (long long)e, (long long)b, (long long)be);
	p->epoch = (int)e;
	p->batch = (int)b;
	p->best_epoch = (int)be;
	return 0;
}

void train_plan_epoch(uint64_t seed, int epoch, const dataset *ds, int crop_frames, size_t *order, int *offsets)
{
	uint64_t s = rng_seed(seed, (uint64_t)epoch);
	size_t n = ds->n;
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n; i-- > 1;) { /* n - 1 down to 1; nothing when n is 0 */
		size_t j = (size_t)rng_below(&s, i + 1);
		size_t t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (size_t i = 0; i < n; i++) {
		int extra = ds->items[order[i]].frames - crop_frames;
		offsets[i] = extra > 0 ? (int)rng_below(&s, (uint64_t)extra + 1) : 0;
	}
}

int train_score(const train_run *r, const dataset *ds, double *uar, char *err)
{
	confusion conf;
	eval_options eo = {.max_batch = r->eval_batch, .pad_short = r->pad_short, .pad_value = r->pad_value};
	if (confusion_init(&conf, cnn14_classes(r->model)))
		return fail(err, "out of memory");
	int rc = evaluate_dataset(r->model, ds, &eo, &conf, NULL, NULL, err);
	if (rc == 0)
		*uar = confusion_uar(&conf);
	confusion_free(&conf);
	return rc ? -1 : 0;
}

static int save_model(train_run *r, const char *dir, const char *name, sv *training, char *err)
{
	char *p = rundir_path(dir, name);
	int rc = 0;
	if (!p || !training || sv_set(cnn14_params(r->model), "training", training))
		rc = fail(err, "out of memory");
	else if (cnn14_save(r->model, p, r->prog, r->argc, r->argv) != CNN14_OK)
		rc = fail(err, "%s", cnn14_error(r->model));
	free(p);
	return rc;
}

/* log.jsonl from log.tsv: one object per row, the same numbers as the same
 * text (so the two agree, and a resumed run writes the same bytes). */
static int log_json(const char *tsv, train_text *out)
{
	const char *row = strchr(tsv, '\n'); /* past the header */
	int bad = train_text_add(out, "%s", "");
	while (row && row[1]) {
		row++;
		const char *end = strchr(row, '\n');
		int len = (int)(end ? end - row : (ptrdiff_t)strlen(row));
		char f[5][32] = {{0}};
		int k = 0;
		for (const char *c = row; k < 5 && c < row + len; k++) {
			const char *tab = memchr(c, '\t', (size_t)(row + len - c));
			int flen = (int)((tab ? tab : row + len) - c);
			snprintf(f[k], sizeof f[k], "%.*s", flen, c);
			c = tab ? tab + 1 : row + len;
		}
		bad |= train_text_add(out, "{\"epoch\":%s,\"loss\":%s,\"dev_uar\":%s,\"test_uar\":%s,\"seconds\":%s}\n",
		                      f[0], f[1], f[2], strcmp(f[3], "NA") ? f[3] : "null", f[4]);
		row = end;
	}
	return bad ? -1 : 0;
}

/* The files of a state into dir: best.ckpt when new_best, last.ckpt,
 * last.opt, position.msgpack, log.tsv, log.jsonl. */
static int write_state_files(train_run *r, const char *dir, bool new_best, char *err)
{
	int completed = r->pos.epoch - 1;
	if (new_best) {
		sv *tr = sv_map();
		if (!tr || sv_set(tr, "epoch", sv_int(completed)) || sv_set(tr, "dev_uar", sv_float(r->pos.best_dev)) ||
		    sv_set(tr, "test_uar", r->have_test && !r->have_final_test ? sv_float(r->pos.best_test) : sv_nil()))
			return fail(err, "out of memory");
		if (save_model(r, dir, "best.ckpt", tr, err))
			return -1;
	}
	sv *tr = sv_map();
	if (!tr || sv_set(tr, "epoch", sv_int(completed)) || sv_set(tr, "batches_into_next_epoch", sv_int(r->pos.batch)))
		return fail(err, "out of memory");
	if (save_model(r, dir, "last.ckpt", tr, err))
		return -1;
	char *opt = rundir_path(dir, "last.opt"), *pos = rundir_path(dir, "position.msgpack"),
	     *log = rundir_path(dir, "log.tsv"), *json = rundir_path(dir, "log.jsonl");
	train_text js = {0};
	int rc = 0;
	if (!opt || !pos || !log || !json || log_json(r->log.s, &js))
		rc = fail(err, "out of memory");
	else if (cnn14_save_optimizer(r->model, opt, r->prog, r->argc, r->argv) != CNN14_OK)
		rc = fail(err, "%s", cnn14_error(r->model));
	else if (train_position_save(pos, &r->pos, r->prog, err) || rundir_write_text(log, r->log.s, err) ||
	         rundir_write_text(json, js.s, err))
		rc = -1;
	free(js.s);
	free(opt);
	free(pos);
	free(log);
	free(json);
	return rc;
}

int train_save_state(train_run *r, bool new_best, char *err)
{
	static const char *const published[] = {"last.ckpt", "log.tsv", "log.jsonl", "best.ckpt"};
	rundir_state st;
	/* leftovers of a killed save were removed when the run resumed */
	if (rundir_state_begin(&st, r->rundir, r->pos.epoch, r->pos.batch, err))
		return -1;
	/* best.ckpt: carried over from the previous state unless this epoch wrote a new one */
	if (write_state_files(r, st.tmp, new_best, err) || rundir_state_carry(&st, r->state_dir, "best.ckpt", err)) {
		rundir_state_abort(&st);
		return -1;
	}
	return rundir_state_commit(&st, r->rundir, published, sizeof published / sizeof *published, &r->state_dir,
	                           err);
}

/* The tensors of the state's checkpoint `name` into r->model (not the
 * header: it stays the one derived from init.ckpt). */
static int apply_state_model(train_run *r, const char *name, char *err)
{
	char *p = rundir_path(r->state_dir, name);
	if (!p)
		return fail(err, "out of memory");
	cnn14 *saved = cnn14_open(p, 1, err);
	if (!saved) {
		free(p);
		return -1;
	}
	int rc = 0;
	if (cnn14_classes(saved) != cnn14_classes(r->model) || cnn14_width_div(saved) != cnn14_width_div(r->model) ||
	    cnn14_num_tensors(saved) != cnn14_num_tensors(r->model))
		rc = fail(err, "%s: not a state of the model in init.ckpt", p);
	for (size_t i = 0; rc == 0 && i < cnn14_num_tensors(saved); i++) {
		cnn14_tensor from = cnn14_tensor_at(saved, i), to = cnn14_tensor_at(r->model, i);
		if (from.is_int64)
			memcpy(to.data_i64, from.data_i64, from.numel * sizeof *from.data_i64);
		else
			memcpy(to.data, from.data, from.numel * sizeof *from.data);
	}
	cnn14_free(saved);
	free(p);
	return rc;
}

int train_load_state(train_run *r, char *err)
{
	int rc = 0;
	if (apply_state_model(r, "last.ckpt", err))
		return -1;
	char *opt = rundir_path(r->state_dir, "last.opt"), *pos = rundir_path(r->state_dir, "position.msgpack"),
	     *log = rundir_path(r->state_dir, "log.tsv");
	if (!opt || !pos || !log)
		rc = fail(err, "out of memory");
	else if (cnn14_load_optimizer(r->model, opt) != CNN14_OK)
		rc = fail(err, "%s", cnn14_error(r->model));
	else if (train_position_load(pos, &r->pos, err) || !(r->log.s = rundir_read_text(log, err)))
		rc = -1;
	if (rc == 0) {
		r->log.len = strlen(r->log.s);
		r->log.cap = r->log.len + 1;
	}
	free(opt);
	free(pos);
	free(log);
	return rc;
}

/* Writes text into the newest state as name. */
static int state_text(train_run *r, const char *name, const char *text, char *err)
{
	char *path = rundir_path(r->state_dir, name);
	int rc = !path ? fail(err, "out of memory") : rundir_write_text(path, text, err);
	free(path);
	return rc;
}

int train_write_summary(train_run *r, char *err)
{
	train_text t = {0};
	const train_position *p = &r->pos;
	/* the model scored as the best epoch's was, so the number is the one a
	 * --test of the same stream would have logged at that epoch */
	if (r->have_final_test &&
	    (apply_state_model(r, "best.ckpt", err) || train_score(r, &r->final_test, &r->final_test_uar, err)))
		return -1;
	bool have = r->have_final_test || r->have_test;
	double test = r->have_final_test ? r->final_test_uar : p->best_test;
	int bad = train_text_add(&t, "best_epoch\tdev_uar\ttest_uar\tepochs\n%d\t%.6f\t", p->best_epoch, p->best_dev);
	bad |= train_text_add(&t, have ? "%.6f" : "NA", test);
	bad |= train_text_add(&t, "\t%d\n", r->epochs);
	if (bad || state_text(r, "summary.tsv", t.s, err)) {
		free(t.s);
		return bad ? fail(err, "out of memory") : -1;
	}
	t.len = 0;
	bad = train_text_add(&t, "{\"best_epoch\":%d,\"dev_uar\":%.6f,\"test_uar\":", p->best_epoch, p->best_dev);
	bad |= train_text_add(&t, have ? "%.6f" : "null", test);
	bad |= train_text_add(&t, ",\"epochs\":%d}\n", r->epochs);
	if (bad || state_text(r, "summary.json", t.s, err)) {
		free(t.s);
		return bad ? fail(err, "out of memory") : -1;
	}
	free(t.s);
	rundir_fsync_dir(r->state_dir);
	if (rundir_publish(r->rundir, r->state_dir, "summary.tsv", err) ||
	    rundir_publish(r->rundir, r->state_dir, "summary.json", err))
		return -1;
	return 0;
}

/* The buffers of one batch and the epoch's plan. */
typedef struct {
	size_t *order;
	int *offsets;
	float *x;
	int *labels;
} batch_bufs;

/* One SGD step on batch p->batch of the planned epoch. */
static int step(train_run *r, const batch_bufs *b, char *err)
{
	train_position *p = &r->pos;
	size_t n = r->train.n, first = (size_t)p->batch * (size_t)r->batch;
	int bs = (int)((n - first) < (size_t)r->batch ? n - first : (size_t)r->batch);
	for (int k = 0; k < bs; k++) {
		const ds_item *it = &r->train.items[b->order[first + (size_t)k]];
		dataset_crop(&r->train, it, b->offsets[first + (size_t)k], r->crop_frames, r->pad_value,
		             b->x + (size_t)k * (size_t)r->crop_frames * CNN14_N_MELS);
		b->labels[k] = it->label;
	}
	double t0 = cli_now(), loss = 0;
	if (cnn14_forward(r->model, b->x, bs, r->crop_frames, r->dropout ? CNN14_TRAIN : CNN14_TRAIN | CNN14_NO_DROPOUT, NULL) != CNN14_OK ||
	    cnn14_backward_step(r->model, b->labels, r->class_weights, &loss, &r->sgd) != CNN14_OK)
		return fail(err, "%s", cnn14_error(r->model));
	p->step_seconds += cli_now() - t0;
	if (!isfinite(loss))
		return fail(err, "epoch %d, batch %d: the loss is %g: training diverged (lower --lr?)", p->epoch,
		            p->batch + 1, loss);
	p->loss_sum += loss;
	return 0;
}

/* The batches of the epoch from p->batch on: 0, 1 (stopped, saved) or -1. */
static int run_batches(train_run *r, const batch_bufs *b, double epoch_start, double *last_save, char *err)
{
	train_position *p = &r->pos;
	for (; p->batch < r->nbatches; p->batch++) {
		if (r->stop && *r->stop) {
			p->train_seconds = cli_now() - epoch_start;
			return train_save_state(r, false, err) ? -1 : 1;
		}
		if (r->save_every > 0 && p->batch > 0 && cli_now() - *last_save >= r->save_every) {
			p->train_seconds = cli_now() - epoch_start;
			if (train_save_state(r, false, err))
				return -1;
			*last_save = cli_now();
		}
		if (step(r, b, err))
			return -1;
		if (r->hooks.batch_done)
			r->hooks.batch_done(r->hooks.ctx, r);
	}
	return 0;
}

/* Scores the finished epoch, logs it, keeps the best, saves (E + 1, 0). */
static int end_epoch(train_run *r, double epoch_start, char *err)
{
	train_position *p = &r->pos;
	size_t n = r->train.n;
	train_epoch e = {.epoch = p->epoch, .test = NAN};
	e.train_seconds = cli_now() - epoch_start;
	if (train_score(r, &r->dev, &e.dev, err) || (r->have_test && train_score(r, &r->test, &e.test, err)))
		return -1;
	e.seconds = cli_now() - epoch_start;
	e.loss = p->loss_sum / r->nbatches;
	int bad = train_text_add(&r->log, "%d\t%.6f\t%.6f\t", p->epoch, e.loss, e.dev);
	bad |= train_text_add(&r->log, r->have_test ? "%.6f" : "NA", e.test);
	bad |= train_text_add(&r->log, "\t%.3f\t%.3f\t%.3f\t%.2f\n", e.seconds, e.train_seconds, p->step_seconds,
	                      (double)n / e.train_seconds);
	if (bad)
		return fail(err, "out of memory");
	e.best = p->best_epoch == 0 || e.dev > p->best_dev;
	if (e.best) {
		p->best_epoch = p->epoch;
		p->best_dev = e.dev;
		p->best_test = e.test;
	}
	if (r->hooks.epoch_done)
		r->hooks.epoch_done(r->hooks.ctx, r, &e);
	/* the state after epoch E is the position (E + 1, 0) */
	p->epoch++;
	p->batch = 0;
	p->loss_sum = p->step_seconds = p->train_seconds = 0;
	return train_save_state(r, e.best, err);
}

int train_loop(train_run *r, char *err)
{
	size_t n = r->train.n;
	batch_bufs b = {malloc(n * sizeof *b.order), malloc(n * sizeof *b.offsets),
	                malloc((size_t)r->batch * (size_t)r->crop_frames * CNN14_N_MELS * sizeof *b.x),
	                malloc((size_t)r->batch * sizeof *b.labels)};
	int rc = !b.order || !b.offsets || !b.x || !b.labels ? fail(err, "out of memory") : 0;
	r->nbatches = (int)((n + (size_t)r->batch - 1) / (size_t)r->batch);
	double last_save = cli_now();
	while (rc == 0 && r->pos.epoch <= r->epochs) {
		double epoch_start = cli_now() - r->pos.train_seconds;
		if (r->hooks.epoch_start)
			r->hooks.epoch_start(r->hooks.ctx, r, epoch_start);
		train_plan_epoch(r->seed, r->pos.epoch, &r->train, r->crop_frames, b.order, b.offsets);
		rc = run_batches(r, &b, epoch_start, &last_save, err);
		if (rc == 0)
			rc = end_epoch(r, epoch_start, err);
		last_save = cli_now();
	}
	if (rc == 0)
		rc = train_write_summary(r, err);
	free(b.order);
	free(b.offsets);
	free(b.x);
	free(b.labels);
	return rc;
}

void train_run_free(train_run *r)
{
	cnn14_free(r->model);
	dataset_free(&r->train);
	dataset_free(&r->dev);
	dataset_free(&r->test);
	dataset_free(&r->final_test);
	free(r->log.s);
	free(r->state_dir);
	free(r->class_weights);
	r->model = NULL;
	r->log.s = r->state_dir = NULL;
	r->class_weights = NULL;
}
