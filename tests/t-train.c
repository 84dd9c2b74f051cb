/* Unit test of the training loop's pure parts (common/train.h): the epoch
 * plan is a permutation with crop offsets inside each item, a function of
 * (seed, epoch) alone, and an unbiased shuffle (every order of 3 items about
 * equally often over many epochs: an off-by-one Fisher-Yates, which never
 * leaves an item in place, fails that); empty and one-item sets; a
 * position survives save and load to the bit; a position file with an
 * out-of-range epoch is refused; the growing text.  Runs in the current
 * directory (tests/run.sh gives each test a fresh one). */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "stream.h"
#include "train.h"

static char err[TRAIN_ERRLEN];

/* A dataset whose items have the given frame counts (no features: planning
 * reads only the lengths). */
static dataset lengths(const int *frames, size_t n)
{
	dataset ds = {.n = n};
	ds.items = calloc(n ? n : 1, sizeof *ds.items);
	NEED(ds.items);
	for (size_t i = 0; i < n; i++)
		ds.items[i].frames = frames[i];
	return ds;
}

static bool is_permutation(const size_t *order, size_t n)
{
	bool *seen = calloc(n ? n : 1, 1);
	NEED(seen);
	bool ok = true;
	for (size_t i = 0; i < n && ok; i++) {
		ok = order[i] < n && !seen[order[i]];
		if (ok)
			seen[order[i]] = true;
	}
	free(seen);
	return ok;
}

static void plan_shape(void)
{
	enum { N = 100, CROP = 50 };
	int frames[N];
	for (int i = 0; i < N; i++)
		frames[i] = 20 + 3 * i; /* shorter, equal and longer than the crop */
	dataset ds = lengths(frames, N);
	size_t order[N], order2[N], other[N];
	int offsets[N], offsets2[N], other_off[N];
	train_plan_epoch(42, 3, &ds, CROP, order, offsets);
	train_plan_epoch(42, 3, &ds, CROP, order2, offsets2);
	CHECK(is_permutation(order, N), "epoch 3: not a permutation of 0..%d", N - 1);
	CHECK(!memcmp(order, order2, sizeof order) && !memcmp(offsets, offsets2, sizeof offsets),
	      "the same (seed, epoch) planned twice differs");
	for (int i = 0; i < N; i++) {
		int extra = frames[order[i]] - CROP;
		CHECK(offsets[i] >= 0 && offsets[i] <= (extra > 0 ? extra : 0),
		      "position %d (item %zu, %d frames): offset %d outside [0, %d]", i, order[i],
		      frames[order[i]], offsets[i], extra > 0 ? extra : 0);
	}
	train_plan_epoch(42, 4, &ds, CROP, other, other_off);
	CHECK(memcmp(order, other, sizeof order), "epochs 3 and 4 have the same order");
	train_plan_epoch(43, 3, &ds, CROP, other, other_off);
	CHECK(memcmp(order, other, sizeof order), "seeds 42 and 43 have the same order");
	free(ds.items);
}

/* Over 6000 epochs each of the 6 orders of 3 items comes 1000 times on
 * average (sd 29); the bounds are 6 sd, and every offset of an item two
 * frames longer than the crop (0, 1, 2) about a third of the time. */
static void plan_unbiased(void)
{
	int frames[3] = {12, 10, 10};
	dataset ds = lengths(frames, 3);
	int count[6] = {0}, offset_count[3] = {0};
	for (int e = 1; e <= 6000; e++) {
		size_t o[3];
		int off[3];
		train_plan_epoch(7, e, &ds, 10, o, off);
		NEED(is_permutation(o, 3));
		count[o[0] * 2 + (o[1] > o[2] ? 1 : 0)]++;
		for (int i = 0; i < 3; i++)
			if (o[i] == 0)
				offset_count[off[i]]++;
			else
				CHECK(off[i] == 0, "epoch %d: item of the crop's length got offset %d", e, off[i]);
	}
	for (int k = 0; k < 6; k++)
		CHECK(fabs(count[k] - 1000.0) <= 6 * 28.9, "order %d came %d times of 6000 (want 1000 +- 173)", k,
		      count[k]);
	for (int k = 0; k < 3; k++)
		CHECK(fabs(offset_count[k] - 2000.0) <= 6 * 36.5, "offset %d came %d times of 6000 (want 2000 +- 219)",
		      k, offset_count[k]);
	free(ds.items);
}

static void plan_small_sets(void)
{
	int one = 5;
	dataset empty = lengths(NULL, 0), single = lengths(&one, 1);
	size_t order[1] = {99};
	int offsets[1] = {-1};
	train_plan_epoch(1, 1, &empty, 10, order, offsets);
	CHECK(order[0] == 99 && offsets[0] == -1, "an empty set wrote into the plan");
	train_plan_epoch(1, 1, &single, 10, order, offsets);
	CHECK(order[0] == 0 && offsets[0] == 0, "one item: order %zu offset %d", order[0], offsets[0]);
	free(empty.items);
	free(single.items);
}

static void position_roundtrip(void)
{
	train_position p = {.epoch = 7, .batch = 13, .loss_sum = 0.1 + 1e-17, .best_epoch = 5,
			    .best_dev = 2.0 / 3.0, .best_test = NAN, .step_seconds = 1e-300, .train_seconds = 123.456};
	train_position q;
	NEED(train_position_save("pos.msgpack", &p, "t-train", err) == 0);
	CHECK(train_position_load("pos.msgpack", &q, err) == 0, "load: %s", err);
	CHECK(q.epoch == 7 && q.batch == 13 && q.best_epoch == 5, "integers %d %d %d", q.epoch, q.batch,
	      q.best_epoch);
	CHECK(q.loss_sum == p.loss_sum && q.best_dev == p.best_dev && isnan(q.best_test) &&
		      q.step_seconds == p.step_seconds && q.train_seconds == p.train_seconds,
	      "doubles changed: %.17g %.17g %g %g %.17g", q.loss_sum, q.best_dev, q.best_test, q.step_seconds,
	      q.train_seconds);
	CHECK(train_position_load("missing.msgpack", &q, err) == -1 && strstr(err, "missing.msgpack"),
	      "a missing file: '%s'", err);
	p.epoch = 0;
	NEED(train_position_save("zero.msgpack", &p, "t-train", err) == 0);
	CHECK(train_position_load("zero.msgpack", &q, err) == -1 && strstr(err, "epoch"),
	      "epoch 0 accepted ('%s')", err);
}

static void text_grows(void)
{
	train_text t = {0};
	for (int i = 0; i < 2000; i++)
		NEED(train_text_add(&t, "%d\t%s\n", i, "row") == 0);
	CHECK(t.len == strlen(t.s), "len %zu, strlen %zu", t.len, strlen(t.s));
	CHECK(!strncmp(t.s, "0\trow\n1\trow\n", 12) && strstr(t.s, "\n1999\trow\n"), "text wrong");
	free(t.s);
}

int main(void)
{
	plan_shape();
	plan_unbiased();
	plan_small_sets();
	position_roundtrip();
	text_grows();
	return check_done();
}
