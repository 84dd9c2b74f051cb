/* The Cnn14 model API on tiny shapes (width_div 32, 40 frames):
 * parameter count, the short-input error, checkpoint round trip and the
 * messages for mismatches, replanning for a new batch shape, loading the
 * body into a model with a new head, determinism with dropout, gradient
 * accumulation, linear-only freezing (with and without frozen BN
 * statistics), independence of the thread count, and resuming from a
 * saved optimiser state bitwise equal to an uninterrupted run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cnn14.h"
#include "stream.h"

enum { B = 3, T = 40, K = 3, WD = 32 };
static float x[B * T * CNN14_N_MELS];
static const int labels[B] = {2, 0, 1};
static const float weights[K] = {0.5f, 1.5f, 2.0f};
static const cnn14_sgd sgd = {0.05, 0.9, 1e-3, true};

static cnn14 *make(int classes, uint64_t seed)
{
	char err[CNN14_ERRLEN];
	cnn14_config cfg = {classes, WD, seed, 2};
	cnn14 *m = cnn14_new(&cfg, err);
	if (!m) {
		printf("cnn14_new: %s\n", err);
		exit(2);
	}
	return m;
}

static void train_with(cnn14 *m, int steps, unsigned mode, const cnn14_sgd *opt, bool fused)
{
	for (int s = 0; s < steps; s++) {
		cnn14_zero_grad(m);
		int rc = cnn14_forward(m, x, B, T, CNN14_TRAIN | mode, NULL);
		if (!rc && fused)
			rc = cnn14_backward_step(m, labels, weights, NULL, opt);
		if (!rc && !fused)
			rc = cnn14_backward(m, labels, weights, NULL);
		if (!rc && !fused)
			rc = cnn14_step(m, opt);
		if (rc) {
			printf("training: %s\n", cnn14_error(m));
			exit(2);
		}
	}
}

/* The fused-step comparison's model: seed 31, all layers or linear only. */
static cnn14 *make_tuned(bool linear)
{
	cnn14 *m = make(K, 31);
	if (linear)
		cnn14_set_finetune(m, CNN14_FINETUNE_LINEAR, false);
	return m;
}

static void train(cnn14 *m, int steps, unsigned mode)
{
	train_with(m, steps, mode, &sgd, false);
}

/* Index of the first tensor (with prefix, "" for all) that differs, or -1. */
static long first_diff(cnn14 *a, cnn14 *b, const char *prefix)
{
	for (size_t i = 0; i < cnn14_num_tensors(a); i++) {
		cnn14_tensor ta = cnn14_tensor_at(a, i), tb = cnn14_tensor_at(b, i);
		if (strncmp(ta.name, prefix, strlen(prefix)) != 0)
			continue;
		size_t bytes = ta.numel * (ta.is_int64 ? 8 : 4);
		if (memcmp(ta.is_int64 ? (void *)ta.data_i64 : (void *)ta.data,
		           tb.is_int64 ? (void *)tb.data_i64 : (void *)tb.data, bytes) != 0)
			return (long)i;
	}
	return -1;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	rewind(f);
	char *s = malloc(*len ? *len : 1);
	if (s && fread(s, 1, *len, f) != *len) {
		free(s);
		s = NULL;
	}
	fclose(f);
	return s;
}

/* Copies a checkpoint, changing one tensor (drop: leave it out; else
 * reshape it to 1-D). */
static void rewrite(const char *in, const char *out, const char *name, bool drop)
{
	char err[ST_ERRLEN];
	st_reader *r = st_reader_open(in, 0, 0, err);
	st_writer *w = r ? st_writer_open(out, st_reader_header(r), err) : NULL;
	if (!w) {
		printf("rewrite: %s\n", err);
		exit(2);
	}
	st_item it;
	st_item_init(&it);
	while (st_reader_next(r, &it) == ST_OK) {
		if (strcmp(it.key, name) == 0) {
			if (drop)
				continue;
			st_tensor *t = st_item_tensor(&it, "value");
			t->shape[0] = (int64_t)st_tensor_numel(t);
			t->ndim = 1;
		}
		if (st_writer_put(w, &it)) {
			printf("rewrite: %s\n", st_writer_error(w));
			exit(2);
		}
	}
	st_item_free(&it);
	st_reader_close(r);
	if (st_writer_close(w, err)) {
		printf("rewrite: %s\n", err);
		exit(2);
	}
}

int main(void)
{
	uint64_t s = 7;
	for (size_t i = 0; i < sizeof x / sizeof *x; i++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		x[i] = (float)(-40 + 30 * ((double)(s >> 11) * 0x1p-53));
	}

	/* parameter count of the full model */
	{
		char err[CNN14_ERRLEN];
		cnn14_config cfg = {3, 1, 0, 1};
		cnn14 *full = cnn14_new(&cfg, err);
		CHECK(full && cnn14_num_params(full) == 79679939ULL, "full width, 3 classes: %llu parameters",
		      full ? (unsigned long long)cnn14_num_params(full) : 0ULL);
		cnn14_free(full);
	}

	/* short input */
	cnn14 *a = make(K, 1);
	int rc = cnn14_forward(a, x, B, 31, 0, NULL);
	CHECK(rc == CNN14_ERR_SHORT && strstr(cnn14_error(a), "31 frames"), "31 frames: rc %d, '%s'", rc,
	      cnn14_error(a));
	CHECK(cnn14_backward(a, labels, weights, NULL) == CNN14_ERR_STATE, "backward without a forward accepted");
	{
		cnn14 *o = make(K, 1);
		int badl[B] = {0, 3, 1};
		cnn14_forward(o, x, B, T, CNN14_TRAIN, NULL);
		rc = cnn14_backward(o, badl, weights, NULL);
		CHECK(rc == CNN14_ERR_ARG && strstr(cnn14_error(o), "label 3"), "bad label: '%s'", cnn14_error(o));
		cnn14_free(o);
	}

	/* determinism with dropout; checkpoint round trip */
	cnn14 *b = make(K, 1);
	train(a, 3, 0);
	train(b, 3, 0);
	long d = first_diff(a, b, "");
	CHECK(d < 0, "same seed and threads, different results at %s", cnn14_tensor_at(a, (size_t)d).name);
	{
		/* work is split into units that do not depend on the thread count */
		cnn14 *one = make(K, 1);
		cnn14_set_threads(one, 1);
		train(one, 3, 0);
		d = first_diff(a, one, "");
		CHECK(d < 0, "1 and 2 threads differ at %s", cnn14_tensor_at(a, (size_t)d).name);
		cnn14_free(one);
	}
	CHECK(cnn14_save(a, "a.ckpt", "t-nn-model", 0, NULL) == 0, "save: %s", cnn14_error(a));
	CHECK(cnn14_save(a, "a2.ckpt", "t-nn-model", 0, NULL) == 0, "save: %s", cnn14_error(a));
	size_t l1 = 0, l2 = 0;
	char *f1 = slurp("a.ckpt", &l1), *f2 = slurp("a2.ckpt", &l2);
	CHECK(f1 && f2 && l1 == l2 && memcmp(f1, f2, l1) == 0, "two saves of one model differ");
	free(f1);
	free(f2);
	char err[CNN14_ERRLEN];
	cnn14 *c = cnn14_open("a.ckpt", 2, err);
	CHECK(c != NULL, "open: %s", err);
	if (c) {
		d = first_diff(a, c, "");
		CHECK(d < 0, "round trip differs at %s", cnn14_tensor_at(a, (size_t)d).name);
		float la[B * K], lc[B * K];
		cnn14_forward(a, x, B, T, 0, la);
		cnn14_forward(c, x, B, T, 0, lc);
		CHECK(memcmp(la, lc, sizeof la) == 0, "forward after round trip differs");
		cnn14_free(c);
	}

	/* a new batch shape replans; evaluation is per sample */
	{
		float l3[B * K], l2[2 * K], l3b[B * K];
		cnn14_forward(a, x, B, T, 0, l3);
		rc = cnn14_forward(a, x, 2, T, 0, l2);
		CHECK(rc == 0, "batch of 2: %s", cnn14_error(a));
		cnn14_forward(a, x, B, T, 0, l3b);
		/* relative: this model's log-probabilities are ~ -1900, where one
		 * float rounding step is 1.2e-4 */
		float worst = 0;
		for (int i = 0; i < 2 * K; i++)
			worst = fmaxf(worst, fabsf(l2[i] - l3[i]) / fmaxf(1.0f, fabsf(l3[i])));
		CHECK(worst <= 1e-5f, "the same samples in batches of 2 and 3 differ by %g relative", worst);
		CHECK(memcmp(l3, l3b, sizeof l3) == 0, "replanning changed the result");
		/* a plan reuses the buffers of the previous one when they are large
		 * enough (cnn14.c, plan_alloc): what ran before must not matter */
		float r1[K], r2[K], scratch[K];
		cnn14_forward(a, x, 1, 100, 0, r1);
		cnn14_forward(a, x, 1, 33, 0, scratch);
		cnn14_forward(a, x, 1, 120, 0, scratch);
		cnn14_forward(a, x, 1, 100, 0, r2);
		CHECK(memcmp(r1, r2, sizeof r1) == 0, "the result of one shape depends on the shapes planned before it");
	}

	/* an inference forward reads Winograd kernels transformed ahead (block 5's
	 * second convolution here); they follow the weights: after a training
	 * step, a write through cnn14_tensor_at and a load, the forward equals
	 * a fresh model's with the same weights */
	{
		float y0[B * K], y1[B * K], y2[B * K], yw1[B * K];
		cnn14 *m = make(K, 41);
		cnn14_forward(m, x, B, T, 0, y0);
		CHECK(cnn14_save(m, "w0.ckpt", "t-nn-model", 0, NULL) == 0, "save: %s", cnn14_error(m));
		train(m, 1, CNN14_NO_DROPOUT);
		cnn14_forward(m, x, B, T, 0, y1);
		CHECK(cnn14_save(m, "w1.ckpt", "t-nn-model", 0, NULL) == 0, "save: %s", cnn14_error(m));
		cnn14 *fresh = cnn14_open("w1.ckpt", 2, err);
		NEED(fresh);
		cnn14_forward(fresh, x, B, T, 0, yw1);
		CHECK(memcmp(y1, yw1, sizeof y1) == 0 && memcmp(y0, y1, sizeof y0) != 0,
		      "after a step, the inference forward is not that of the new weights");
		long conv = cnn14_tensor_find(m, "conv_block5.conv2.weight");
		for (int k = 0; k < 2; k++) {
			cnn14_tensor t = cnn14_tensor_at(k ? fresh : m, (size_t)conv);
			for (size_t i = 0; i < t.numel; i++)
				t.data[i] *= -0.5f;
		}
		cnn14_forward(m, x, B, T, 0, y0);
		cnn14_forward(fresh, x, B, T, 0, y2);
		CHECK(memcmp(y0, y2, sizeof y0) == 0 && memcmp(y0, y1, sizeof y0) != 0,
		      "after a write through cnn14_tensor_at, the inference forward is not that of the new weights");
		CHECK(cnn14_load(m, "w1.ckpt", 0) == 0, "load: %s", cnn14_error(m));
		cnn14_forward(m, x, B, T, 0, y0);
		CHECK(memcmp(y0, yw1, sizeof y0) == 0, "after a load, the inference forward is not that of the loaded weights");
		cnn14_free(fresh);
		cnn14_free(m);
	}

	/* mismatches */
	cnn14 *e = make(K + 2, 5);
	rc = cnn14_load(e, "a.ckpt", 0);
	CHECK(rc == CNN14_ERR_MISMATCH && strstr(cnn14_error(e), "3 classes in the checkpoint, 5 in the model"),
	      "class count: '%s'", cnn14_error(e));
	cnn14_tensor head_before = cnn14_tensor_at(e, (size_t)cnn14_tensor_find(e, "fc_transfer.weight"));
	float *hb = malloc(head_before.numel * sizeof *hb);
	memcpy(hb, head_before.data, head_before.numel * sizeof *hb);
	rc = cnn14_load(e, "a.ckpt", CNN14_LOAD_BODY);
	CHECK(rc == 0, "body into a new head: %s", cnn14_error(e));
	CHECK(memcmp(hb, head_before.data, head_before.numel * sizeof *hb) == 0, "body load changed the new head");
	long fc1 = cnn14_tensor_find(e, "fc1.weight");
	cnn14_tensor t1 = cnn14_tensor_at(e, (size_t)fc1), t2 = cnn14_tensor_at(a, (size_t)fc1);
	CHECK(memcmp(t1.data, t2.data, t1.numel * 4) == 0, "body load did not load fc1");
	free(hb);
	cnn14_free(e);
	{
		char err2[CNN14_ERRLEN];
		cnn14_config cfg = {K, 16, 0, 1};
		cnn14 *w16 = cnn14_new(&cfg, err2);
		rc = cnn14_load(w16, "a.ckpt", 0);
		CHECK(rc == CNN14_ERR_MISMATCH && strstr(cnn14_error(w16), "width divisor 32 in the checkpoint, 16"),
		      "width: '%s'", cnn14_error(w16));
		cnn14_free(w16);
	}
	rewrite("a.ckpt", "shape.ckpt", "conv_block3.conv2.weight", false);
	cnn14 *f = make(K, 9);
	rc = cnn14_load(f, "shape.ckpt", 0);
	CHECK(rc == CNN14_ERR_MISMATCH &&
	          strstr(cnn14_error(f), "conv_block3.conv2.weight: shape (576,) in the checkpoint, (8, 8, 3, 3)"),
	      "shape: '%s'", cnn14_error(f));
	rewrite("a.ckpt", "missing.ckpt", "conv_block2.bn1.running_var", true);
	rc = cnn14_load(f, "missing.ckpt", 0);
	CHECK(rc == CNN14_ERR_MISMATCH && strstr(cnn14_error(f), "lacks 'conv_block2.bn1.running_var'"),
	      "missing: '%s'", cnn14_error(f));
	rc = cnn14_load(f, "nonexistent.ckpt", 0);
	CHECK(rc == CNN14_ERR_IO && strstr(cnn14_error(f), "nonexistent.ckpt"), "no file: '%s'", cnn14_error(f));
	cnn14_free(f);

	/* gradient accumulation: two backward passes without zeroing = twice one */
	{
		cnn14 *g = make(K, 3);
		cnn14_forward(g, x, B, T, CNN14_TRAIN | CNN14_NO_DROPOUT, NULL);
		cnn14_backward(g, labels, weights, NULL);
		long i = cnn14_tensor_find(g, "conv_block2.conv1.weight");
		cnn14_tensor t = cnn14_tensor_at(g, (size_t)i);
		float *once = malloc(t.numel * sizeof *once);
		memcpy(once, t.grad, t.numel * sizeof *once);
		cnn14_forward(g, x, B, T, CNN14_TRAIN | CNN14_NO_DROPOUT | 0, NULL);
		cnn14_backward(g, labels, weights, NULL);
		size_t bad = 0;
		for (size_t j = 0; j < t.numel; j++)
			bad += t.grad[j] != 2 * once[j] && fabsf(t.grad[j] - 2 * once[j]) > 1e-5f * fabsf(once[j]) + 1e-12f;
		CHECK(bad == 0, "accumulated gradient is not twice the single one (%zu values)", bad);
		cnn14_zero_grad(g);
		t = cnn14_tensor_at(g, (size_t)i);
		bad = 0;
		for (size_t j = 0; j < t.numel; j++)
			bad += t.grad[j] != 0;
		CHECK(bad == 0, "zero_grad left %zu values", bad);
		free(once);
		cnn14_free(g);
	}

	/* linear-only: the body stays bitwise, BN statistics move unless frozen */
	for (int freeze = 0; freeze < 2; freeze++) {
		cnn14 *lin = make(K, 11), *ref = make(K, 11);
		cnn14_set_finetune(lin, CNN14_FINETUNE_LINEAR, freeze);
		train(lin, 2, 0);
		d = first_diff(lin, ref, "conv_block");
		bool only_stats = true;
		for (size_t i = 0; i < cnn14_num_tensors(lin); i++) {
			cnn14_tensor tl = cnn14_tensor_at(lin, i), tr = cnn14_tensor_at(ref, i);
			bool same = tl.is_int64 ? *tl.data_i64 == *tr.data_i64 : memcmp(tl.data, tr.data, tl.numel * 4) == 0;
			bool is_fc = strncmp(tl.name, "fc", 2) == 0;
			if (tl.trainable && !is_fc && !same)
				CHECK(0, "linear-only training changed %s", tl.name);
			if (tl.trainable && is_fc && same)
				CHECK(0, "linear-only training left %s unchanged", tl.name);
			if (!tl.trainable && !same)
				only_stats = false;
			if (!tl.trainable && freeze && !same)
				CHECK(0, "frozen BN statistics changed: %s", tl.name);
		}
		if (!freeze)
			CHECK(!only_stats || d >= 0, "BN running statistics did not update under linear-only training");
		long nb = cnn14_tensor_find(lin, "conv_block1.bn1.num_batches_tracked");
		CHECK(*cnn14_tensor_at(lin, (size_t)nb).data_i64 == (freeze ? 0 : 2), "num_batches_tracked %lld",
		      (long long)*cnn14_tensor_at(lin, (size_t)nb).data_i64);
		cnn14_free(lin);
		cnn14_free(ref);
	}

	/* backward + step fused: bitwise the separate calls, for every optimiser
	 * setting and fine-tuning mode, with and without dropout; and a step of
	 * another size does differ (the comparison has teeth) */
	{
		const cnn14_sgd opts[] = {{0.05, 0.9, 1e-3, true}, {0.05, 0.9, 0, false}, {0.02, 0, 0, false}};
		for (int o = 0; o < 3; o++)
			for (int mode = 0; mode < 3; mode++) {
				cnn14 *sep = make_tuned(mode == 2), *fus = make_tuned(mode == 2);
				unsigned flags = mode == 1 ? CNN14_NO_DROPOUT : 0;
				train_with(sep, 3, flags, &opts[o], false);
				train_with(fus, 3, flags, &opts[o], true);
				d = first_diff(sep, fus, "");
				CHECK(d < 0, "fused step (settings %d, mode %d) differs at %s", o, mode,
				      cnn14_tensor_at(sep, (size_t)d).name);
				CHECK(cnn14_steps(fus) == 3, "fused step count %llu", (unsigned long long)cnn14_steps(fus));
				cnn14_sgd other = opts[o];
				other.lr *= 1.5;
				cnn14 *oth = make_tuned(mode == 2);
				train_with(oth, 3, flags, &other, true);
				CHECK(first_diff(sep, oth, "") >= 0, "a larger step gave the same parameters");
				cnn14_free(sep);
				cnn14_free(fus);
				cnn14_free(oth);
			}
		cnn14 *f = make(K, 31);
		cnn14_sgd bad = {0.05, -1, 0, false};
		rc = cnn14_forward(f, x, B, T, CNN14_TRAIN, NULL);
		CHECK(!rc && cnn14_backward_step(f, labels, weights, NULL, &bad) == CNN14_ERR_ARG,
		      "fused step with a negative momentum accepted");
		CHECK(cnn14_backward_step(f, labels, weights, NULL, &sgd) == CNN14_OK,
		      "fused step after a refused one: %s", cnn14_error(f));
		cnn14_free(f);
	}

	/* resume: 2 + 2 steps through saved state equal 4 uninterrupted (dropout on) */
	{
		cnn14 *u = make(K, 21), *p = make(K, 21);
		train(u, 4, 0);
		train(p, 2, 0);
		CHECK(cnn14_save(p, "p.ckpt", "t", 0, NULL) == 0, "save: %s", cnn14_error(p));
		CHECK(cnn14_save_optimizer(p, "p.opt", "t", 0, NULL) == 0, "save optimizer: %s", cnn14_error(p));
		cnn14 *q = cnn14_open("p.ckpt", 2, err);
		CHECK(q != NULL, "open: %s", err);
		if (q) {
			rc = cnn14_load_optimizer(q, "p.opt");
			CHECK(rc == 0, "load optimizer: %s", cnn14_error(q));
			train(q, 2, 0);
			d = first_diff(u, q, "");
			CHECK(d < 0, "resumed run differs at %s", cnn14_tensor_at(u, (size_t)d).name);
			CHECK(cnn14_steps(q) == 4, "step count %llu", (unsigned long long)cnn14_steps(q));
			/* and without the optimiser state it does differ (the check has teeth) */
			cnn14 *r = cnn14_open("p.ckpt", 2, err);
			train(r, 2, 0);
			CHECK(first_diff(u, r, "") >= 0, "resuming without the optimiser state gave the same result");
			cnn14_free(r);
			cnn14_free(q);
		}
		cnn14 *wrong = make(K + 1, 1);
		rc = cnn14_load_optimizer(wrong, "p.opt");
		CHECK(rc == CNN14_ERR_MISMATCH, "optimizer state of another model accepted: %s", cnn14_error(wrong));
		cnn14_free(wrong);
		cnn14_free(u);
		cnn14_free(p);
	}

	cnn14_free(a);
	cnn14_free(b);
	return check_done();
}
