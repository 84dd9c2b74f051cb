/* cnn14_io.c - Cnn14 checkpoints and optimiser state as sertools streams
 * (formats/checkpoint.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_check.h"
#include "cnn14_impl.h"
#include "stream.h"

static sv *model_map(const cnn14 *m)
{
	sv *mm = sv_map(), *names = sv_array();
	if (!mm || !names) {
		sv_free(mm);
		sv_free(names);
		return NULL;
	}
	int bad = 0;
	for (int k = 0; k < m->classes; k++) {
		char num[24];
		snprintf(num, sizeof num, "%d", k);
		bad |= sv_push(names, sv_str(m->class_names[k] ? m->class_names[k] : num));
	}
	bad |= sv_set(mm, "arch", sv_str(CNN14_ARCH));
	bad |= sv_set(mm, "classes", sv_int(m->classes));
	bad |= sv_set(mm, "class_names", names);
	bad |= sv_set(mm, "width_div", sv_int(m->width_div));
	bad |= sv_set(mm, "n_mels", sv_int(CNN14_N_MELS));
	if (bad) {
		sv_free(mm);
		return NULL;
	}
	return mm;
}

static int adopt_names(cnn14 *m, const sv *names)
{
	if (!names)
		return CNN14_OK;
	const char *list[m->classes];
	for (int i = 0; i < m->classes; i++)
		list[i] = names->u.arr.items[i]->u.str.ptr;
	return cnn14_set_class_names(m, list, m->classes);
}

bool cnn14_is_output_layer(const char *tensor_name)
{
	return strncmp(tensor_name, "fc_transfer.", 12) == 0 || strncmp(tensor_name, "fc_audioset.", 12) == 0;
}

/* The items, checked by the one set of checkpoint rules (ckpt_check.h)
 * against the table the header describes, which is the model's own when
 * the width (and, for a whole checkpoint, the class count) agree. */
static int load_items(cnn14 *m, st_reader *r, const ckpt_model *cm, unsigned flags)
{
	const unsigned cflags = flags & CNN14_LOAD_BODY ? CKPT_SKIP_OUTPUT : 0;
	ckpt_seen seen = {{false}};
	st_item it;
	if (st_item_init(&it))
		return cnn14_fail(m, CNN14_ERR_NOMEM, "out of memory");
	int rc, ret = CNN14_OK;
	char why[ST_ERRLEN];
	while ((rc = st_reader_next(r, &it)) == ST_OK) {
		const st_tensor *v = st_item_tensor(&it, "value");
		if (ckpt_check_item(cm, &seen, it.key, v, cflags, why, sizeof why)) {
			ret = cnn14_fail(m, CNN14_ERR_MISMATCH, "%s: %s", st_reader_name(r), why);
			break;
		}
		long i = cnn14_tensor_find(m, it.key);
		if ((cflags & CKPT_SKIP_OUTPUT) && cnn14_is_output_layer(it.key))
			continue;
		if (i < 0) { /* the tables agree (t-ckpt-check): not reached */
			ret = cnn14_fail(m, CNN14_ERR_MISMATCH, "%s: tensor '%s' is not part of the model", st_reader_name(r),
			                 it.key);
			break;
		}
		const ctensor *t = &m->t[i];
		if (t->kind == CT_INT64)
			memcpy(cnn14_pnbt(m, (int)i), v->data, sizeof(int64_t));
		else
			memcpy(cnn14_pdata(m, (int)i), v->data, t->numel * sizeof(float));
	}
	if (ret == CNN14_OK && rc != ST_END)
		ret = cnn14_fail(m, CNN14_ERR_IO, "%s", st_reader_error(r));
	if (ret == CNN14_OK && ckpt_check_complete(cm, &seen, cflags, why, sizeof why))
		ret = cnn14_fail(m, CNN14_ERR_MISMATCH, "%s: %s", st_reader_name(r), why);
	st_item_free(&it);
	return ret;
}

/* Everything after the reader's header was read: checks, tensors, params. */
static int load_from(cnn14 *m, st_reader *r, unsigned flags)
{
	const sv *header = st_reader_header(r);
	int rc;
	char why[256];
	ckpt_model cm;
	if (ckpt_read_header(header, &cm, why, sizeof why))
		return cnn14_fail(m, CNN14_ERR_FORMAT, "%s: %s", st_reader_name(r), why);
	const int classes = cm.classes, wd = cm.width_div;
	const sv *names = cm.class_names;
	if (wd != m->width_div)
		return cnn14_fail(m, CNN14_ERR_MISMATCH, "%s: width divisor %d in the checkpoint, %d in the model",
		                  st_reader_name(r), wd, m->width_div);
	const bool body = flags & CNN14_LOAD_BODY;
	if (!body && classes != m->classes)
		return cnn14_fail(m, CNN14_ERR_MISMATCH,
		                  "%s: %d classes in the checkpoint, %d in the model (load the body only for a new head)",
		                  st_reader_name(r), classes, m->classes);
	if ((rc = load_items(m, r, &cm, flags)))
		return rc;
	if (!body && (rc = adopt_names(m, names)))
		return rc;
	sv *params = sv_copy(st_reader_params(r)), *hdr = sv_copy(header);
	if (!params || !hdr) {
		sv_free(params);
		sv_free(hdr);
		return cnn14_fail(m, CNN14_ERR_NOMEM, "out of memory");
	}
	sv_unset(params, "model");
	if (body)
		sv_unset(params, "training");
	sv_free(m->params);
	m->params = params;
	sv_free(m->loaded_header);
	m->loaded_header = hdr;
	m->have_forward = false;
	m->embedding_batch = 0;
	return CNN14_OK;
}

int cnn14_load(cnn14 *m, const char *path, unsigned flags)
{
	char err[ST_ERRLEN];
	m->err[0] = 0;
	st_reader *r = st_reader_open(path, 0, 0, err);
	if (!r)
		return cnn14_fail(m, CNN14_ERR_IO, "%s", err);
	cnn14_weights_changed(m);
	int rc = load_from(m, r, flags);
	st_reader_close(r);
	return rc;
}

cnn14 *cnn14_open(const char *path, int threads, char *err)
{
	char dummy[CNN14_ERRLEN], serr[ST_ERRLEN], why[256];
	if (!err)
		err = dummy;
	st_reader *r = st_reader_open(path, 0, 0, serr);
	if (!r) {
		snprintf(err, CNN14_ERRLEN, "%s", serr);
		return NULL;
	}
	cnn14_config cfg = {0, 0, 0, threads};
	ckpt_model cm;
	if (ckpt_read_header(st_reader_header(r), &cm, why, sizeof why)) {
		snprintf(err, CNN14_ERRLEN, "%s: %s", st_reader_name(r), why);
		st_reader_close(r);
		return NULL;
	}
	if (ckpt_check_size(&cm, path, 0, why, sizeof why)) {
		snprintf(err, CNN14_ERRLEN, "%s: %s", st_reader_name(r), why);
		st_reader_close(r);
		return NULL;
	}
	cfg.classes = cm.classes;
	cfg.width_div = cm.width_div;
	cnn14 *m = cnn14_new(&cfg, err);
	if (m && load_from(m, r, 0)) {
		snprintf(err, CNN14_ERRLEN, "%s", m->err);
		cnn14_free(m);
		m = NULL;
	}
	st_reader_close(r);
	return m;
}

/* A header for a stream of this model, its params and extra. */
static sv *make_header(cnn14 *m, const char *producer, int argc, char **argv, const char *extra_key, sv *extra)
{
	sv *h = m->loaded_header ? st_header_derive(m->loaded_header, producer, argc, argv)
	                         : st_header_new(producer, argc, argv);
	if (!h || sv_set(h, "params", sv_copy(m->params)) || sv_set(st_header_params(h), "model", model_map(m)) ||
	    (extra_key && sv_set(st_header_params(h), extra_key, extra))) {
		sv_free(h);
		return NULL;
	}
	return h;
}

static int write_stream(cnn14 *m, const char *path, sv *header, bool optimizer)
{
	char err[ST_ERRLEN];
	st_writer *w = st_writer_open(path && strcmp(path, "-") ? path : NULL, header, err);
	sv_free(header);
	if (!w)
		return cnn14_fail(m, CNN14_ERR_IO, "%s", err);
	st_item it;
	if (st_item_init(&it)) {
		st_writer_abort(w);
		return cnn14_fail(m, CNN14_ERR_NOMEM, "out of memory");
	}
	int ret = CNN14_OK;
	for (size_t i = 0; i < m->ntensors; i++) {
		const ctensor *t = &m->t[i];
		if (optimizer && !(t->kind == CT_PARAM && t->has_buf))
			continue;
		st_item_clear(&it);
		const void *data = optimizer ? (const void *)(m->mom + t->off)
		                   : t->kind == CT_INT64 ? (const void *)cnn14_pnbt(m, (int)i)
		                                         : (const void *)cnn14_pdata(m, (int)i);
		if (st_item_set_key(&it, t->name) ||
		    !st_item_add_tensor(&it, optimizer ? "momentum_buffer" : "value",
		                        t->kind == CT_INT64 ? ST_I64 : ST_F32, t->ndim, t->shape, data)) {
			ret = cnn14_fail(m, CNN14_ERR_NOMEM, "out of memory");
			break;
		}
		if (st_writer_put(w, &it)) {
			ret = cnn14_fail(m, CNN14_ERR_IO, "%s", st_writer_error(w));
			break;
		}
	}
	st_item_free(&it);
	if (ret) {
		st_writer_abort(w);
		return ret;
	}
	if (st_writer_close(w, err))
		return cnn14_fail(m, CNN14_ERR_IO, "%s", err);
	return CNN14_OK;
}

int cnn14_save(cnn14 *m, const char *path, const char *producer, int argc, char **argv)
{
	m->err[0] = 0;
	sv *h = make_header(m, producer, argc, argv, NULL, NULL);
	if (!h)
		return cnn14_fail(m, CNN14_ERR_NOMEM, "out of memory");
	return write_stream(m, path, h, false);
}

int cnn14_save_optimizer(cnn14 *m, const char *path, const char *producer, int argc, char **argv)
{
	m->err[0] = 0;
	sv *o = sv_map();
	if (!o || sv_set(o, "type", sv_str("sgd")) || sv_set(o, "steps", sv_int((int64_t)m->steps)) ||
	    sv_set(o, "dropout_seed", sv_int((int64_t)m->seed)) ||
	    sv_set(o, "dropout_counter", sv_int((int64_t)m->dropout_counter))) {
		sv_free(o);
		return cnn14_fail(m, CNN14_ERR_NOMEM, "out of memory");
	}
	sv *h = make_header(m, producer, argc, argv, "optimizer", o);
	if (!h)
		return cnn14_fail(m, CNN14_ERR_NOMEM, "out of memory");
	return write_stream(m, path, h, true);
}

int cnn14_load_optimizer(cnn14 *m, const char *path)
{
	char err[ST_ERRLEN], why[256];
	m->err[0] = 0;
	st_reader *r = st_reader_open(path, 0, 0, err);
	if (!r)
		return cnn14_fail(m, CNN14_ERR_IO, "%s", err);
	int ret = CNN14_OK, rc;
	ckpt_model cm;
	const sv *o = sv_get(st_reader_params(r), "optimizer");
	int64_t steps, seed, counter;
	const char *type = o ? sv_get_str(o, "type") : NULL;
	if (ckpt_read_header(st_reader_header(r), &cm, why, sizeof why))
		ret = cnn14_fail(m, CNN14_ERR_FORMAT, "%s: %s", st_reader_name(r), why);
	else if (!type || strcmp(type, "sgd") != 0 || !sv_get_int(o, "steps", &steps) ||
	         !sv_get_int(o, "dropout_seed", &seed) || !sv_get_int(o, "dropout_counter", &counter))
		ret = cnn14_fail(m, CNN14_ERR_FORMAT, "%s: no SGD state in params.optimizer", st_reader_name(r));
	else if (cm.classes != m->classes || cm.width_div != m->width_div)
		ret = cnn14_fail(m, CNN14_ERR_MISMATCH,
		                 "%s: optimiser state of a model with %d classes and width divisor %d, not %d and %d",
		                 st_reader_name(r), cm.classes, cm.width_div, m->classes, m->width_div);
	bool seen[CNN14_MAX_TENSORS] = {false};
	st_item it;
	if (!ret && st_item_init(&it))
		ret = cnn14_fail(m, CNN14_ERR_NOMEM, "out of memory");
	if (!ret) {
		while ((rc = st_reader_next(r, &it)) == ST_OK) {
			long i = cnn14_tensor_find(m, it.key);
			const st_tensor *v = st_item_tensor(&it, "momentum_buffer");
			if (i < 0 || m->t[i].kind != CT_PARAM || seen[i]) {
				ret = cnn14_fail(m, CNN14_ERR_MISMATCH, "%s: unexpected momentum buffer '%s'", st_reader_name(r),
				                 it.key);
				break;
			}
			const ctensor *t = &m->t[i];
			bool same = v && v->dtype == ST_F32 && v->ndim == t->ndim;
			for (int d = 0; same && d < t->ndim; d++)
				same = v->shape[d] == t->shape[d];
			if (!same) {
				ret = cnn14_fail(m, CNN14_ERR_MISMATCH, "%s: %s: no float32 momentum_buffer of the model's shape",
				                 st_reader_name(r), it.key);
				break;
			}
			if (ckpt_check_values(it.key, v, why, sizeof why)) {
				ret = cnn14_fail(m, CNN14_ERR_MISMATCH, "%s: momentum buffer %s", st_reader_name(r), why);
				break;
			}
			seen[i] = true;
			memcpy(m->mom + t->off, v->data, t->numel * sizeof(float));
		}
		if (!ret && rc != ST_END)
			ret = cnn14_fail(m, CNN14_ERR_IO, "%s", st_reader_error(r));
		st_item_free(&it);
	}
	st_reader_close(r);
	if (ret)
		return ret;
	for (size_t i = 0; i < m->ntensors; i++)
		m->t[i].has_buf = seen[i];
	m->steps = (uint64_t)steps;
	m->seed = (uint64_t)seed;
	m->dropout_counter = (uint64_t)counter;
	return CNN14_OK;
}
