/* Unit test of the checkpoint rules (common/ckpt_check.h): the tensor table
 * derived from a header is the model's own (cnn14.c), and each rule refuses
 * a checkpoint that breaks it, naming the tensor: a duplicate, an extra or
 * a missing tensor, a header class count that disagrees with the shapes, a
 * wrong num_batches_tracked shape, NaN and infinite weights, a negative
 * running variance, classes at the limit and one past it (30,000 too).
 * cnn14_open must refuse the same files (it uses the same rules). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ckpt_check.h"
#include "cnn14.h"
#include "stream.h"

enum mutation { NONE, DUP, EXTRA, MISSING, HDR_CLASSES, NBT_SHAPE, NAN_W, INF_W, NEG_VAR, NEG_NBT, SUBSET };

/* Copies ok.ckpt to out with one mutation applied to it. */
static void mutate(const char *out, enum mutation what, int64_t classes)
{
	char err[ST_ERRLEN];
	st_reader *r = st_reader_open("ok.ckpt", 0, 0, err);
	CHECK(r, "%s", err);
	sv *h = sv_copy(st_reader_header(r));
	sv *mm = sv_get(sv_get(h, "params"), "model");
	if (what == HDR_CLASSES) {
		sv_set(mm, "classes", sv_int(classes));
		sv_unset(mm, "class_names");
	}
	st_writer *w = st_writer_open(out, h, err);
	CHECK(w, "%s", err);
	st_item it;
	st_item_init(&it);
	while (st_reader_next(r, &it) == ST_OK) {
		st_tensor *v = st_item_tensor(&it, "value");
		bool conv = strcmp(it.key, "conv_block2.conv1.weight") == 0;
		if (what == MISSING && strcmp(it.key, "conv_block3.bn2.running_var") == 0)
			continue;
		if ((what == SUBSET) && strncmp(it.key, "fc_transfer.", 12) == 0)
			continue;
		if (what == NAN_W && conv)
			((float *)v->data)[5] = NAN;
		if (what == INF_W && conv)
			((float *)v->data)[0] = -INFINITY;
		if (what == NEG_VAR && strcmp(it.key, "bn0.running_var") == 0)
			((float *)v->data)[7] = -0.5f;
		if (what == NEG_NBT && strcmp(it.key, "bn0.num_batches_tracked") == 0)
			*(int64_t *)v->data = -1;
		if (what == NBT_SHAPE && strcmp(it.key, "bn0.num_batches_tracked") == 0) {
			int64_t one[1] = {1}, x = 0;
			st_item_remove_tensor(&it, "value");
			st_item_add_tensor(&it, "value", ST_I64, 1, one, &x);
		}
		CHECK(st_writer_put(w, &it) == 0, "put");
		if ((what == DUP && conv) || (what == EXTRA && conv)) {
			if (what == EXTRA)
				st_item_set_key(&it, "conv_block2.conv3.weight");
			CHECK(st_writer_put(w, &it) == 0, "put");
		}
	}
	CHECK(st_writer_close(w, err) == 0, "%s", err);
	st_item_free(&it);
	st_reader_close(r);
	sv_free(h);
}

/* ckpt_validate and cnn14_open both refuse the file with a message holding want. */
static void refused(enum mutation what, int64_t classes, const char *want)
{
	char err[ST_ERRLEN], cerr[CNN14_ERRLEN];
	mutate("bad.ckpt", what, classes);
	int rc = ckpt_validate("bad.ckpt", 0, 0, err, sizeof err);
	CHECK(rc == -1 && strstr(err, want), "mutation %d: rc %d, '%s', want '%s'", what, rc, rc ? err : "", want);
	cnn14 *m = cnn14_open("bad.ckpt", 1, cerr);
	CHECK(!m && strstr(cerr, want), "mutation %d: cnn14_open: '%s', want '%s'", what, m ? "" : cerr, want);
	cnn14_free(m);
}

static void same_tables(int classes, int width_div)
{
	char err[CNN14_ERRLEN];
	cnn14_config cfg = {classes, width_div, 1, 1};
	cnn14 *m = cnn14_new(&cfg, err);
	CHECK(m, "%s", err);
	ckpt_model cm;
	ckpt_model_table(&cm, classes, width_div);
	CHECK(cnn14_num_tensors(m) == (size_t)cm.ntensors, "%zu tensors, table %d", cnn14_num_tensors(m), cm.ntensors);
	for (int i = 0; i < cm.ntensors && (size_t)i < cnn14_num_tensors(m); i++) {
		cnn14_tensor t = cnn14_tensor_at(m, (size_t)i);
		const ckpt_spec *s = &cm.t[i];
		bool same = strcmp(t.name, s->name) == 0 && t.ndim == s->ndim && t.is_int64 == (s->dtype == ST_I64);
		for (int d = 0; same && d < t.ndim; d++)
			same = t.shape[d] == s->shape[d];
		CHECK(same, "tensor %d: model '%s', table '%s'", i, t.name, s->name);
	}
	CHECK(!cnn14_is_output_layer(cm.t[cm.body_end - 1].name) && cnn14_is_output_layer(cm.t[cm.body_end].name),
	      "body_end %d", cm.body_end);
	cnn14_free(m);
}

int main(void)
{
	same_tables(3, 64);
	same_tables(527, 16);
	same_tables(1, 8);

	char err[CNN14_ERRLEN];
	cnn14_config cfg = {3, 64, 1, 1};
	cnn14 *m = cnn14_new(&cfg, err);
	CHECK(m && cnn14_save(m, "ok.ckpt", "t-ckpt-check", 0, NULL) == CNN14_OK, "save");
	cnn14_free(m);
	CHECK(ckpt_validate("ok.ckpt", 0, 0, err, sizeof err) == 0, "ok.ckpt: %s", err);

	refused(DUP, 0, "tensor 'conv_block2.conv1.weight' appears twice");
	refused(EXTRA, 0, "tensor 'conv_block2.conv3.weight' is not part of the model");
	refused(MISSING, 0, "the checkpoint lacks 'conv_block3.bn2.running_var'");
	refused(HDR_CLASSES, 5, "fc_transfer.weight: shape (3, 32) in the checkpoint, (5, 32) in the model");
	refused(NBT_SHAPE, 0, "bn0.num_batches_tracked: shape (1,) in the checkpoint, () in the model");
	refused(NAN_W, 0, "conv_block2.conv1.weight: element 5 is NaN");
	refused(INF_W, 0, "conv_block2.conv1.weight: element 0 is infinite");
	refused(NEG_VAR, 0, "bn0.running_var: element 7 is a negative variance (-0.5)");
	refused(NEG_NBT, 0, "bn0.num_batches_tracked: negative count -1");
	refused(HDR_CLASSES, CKPT_MAX_CLASSES + 1, "4097 classes in params.model, outside [1, 4096]");
	refused(HDR_CLASSES, 30000, "30000 classes in params.model, outside [1, 4096]");
	refused(HDR_CLASSES, 0, "0 classes in params.model, outside [1, 4096]");

	/* at the class limit the header passes; the file cannot hold what it
	 * declares, found from its size before anything is allocated */
	refused(HDR_CLASSES, CKPT_MAX_CLASSES,
	        "too short for the 621768 bytes of tensors its header declares (4096 classes, width divisor 64)");

	/* CKPT_SUBSET (wdist): tensors may be missing, each present one is checked */
	mutate("sub.ckpt", SUBSET, 0);
	CHECK(ckpt_validate("sub.ckpt", 0, CKPT_SUBSET, err, sizeof err) == 0, "subset: %s", err);
	CHECK(ckpt_validate("sub.ckpt", 0, 0, err, sizeof err) == -1 && strstr(err, "lacks 'fc_transfer.weight'"),
	      "subset without CKPT_SUBSET: %s", err);
	mutate("bad.ckpt", NAN_W, 0);
	CHECK(ckpt_validate("bad.ckpt", 0, CKPT_SUBSET, err, sizeof err) == -1 && strstr(err, "is NaN"),
	      "subset with NaN: %s", err);
	return check_done();
}
