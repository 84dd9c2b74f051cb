/* cnn14_io.c - Cnn14 checkpoints and optimiser state as sertools streams
 * (formats/checkpoint.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnn14_impl.h"
#include "stream.h"

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
	size_t o = (size_t)snprintf(buf, len, "(");
	for (int d = 0; d < ndim && o < len; d++)
		o += (size_t)snprintf(buf + o, len - o, d ? ", %lld" : "%lld", (long long)shape[d]);
	if (o < len)
		snprintf(buf + o, len - o, ndim == 1 ? ",)" : ")");
}

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

/* The architecture in a header: 0, or -1 with a message in why. */
static int read_model_map(const sv *header, int *classes, int *width_div, const sv **names, char *why, size_t len)
{
	const sv *params = sv_get(header, "params");
	const sv *mm = params ? sv_get(params, "model") : NULL;
	int64_t k, wd, mels = CNN14_N_MELS;
	if (!mm || mm->kind != SV_MAP) {
		snprintf(why, len, "no params.model in the header: not a Cnn14 checkpoint");
		return -1;
	}
	const char *arch = sv_get_str(mm, "arch");
	if (!arch || strcmp(arch, CNN14_ARCH) != 0) {
		snprintf(why, len, "architecture '%s', not " CNN14_ARCH, arch ? arch : "(none)");
		return -1;
	}
	if (!sv_get_int(mm, "classes", &k) || k < 1 || k > 1000000 || !sv_get_int(mm, "width_div", &wd) || wd < 1 ||
	    wd > 64 || 64 % wd != 0) {
		snprintf(why, len, "params.model needs integer classes and a width_div dividing 64");
		return -1;
	}
	if (sv_get(mm, "n_mels") && (!sv_get_int(mm, "n_mels", &mels) || mels != CNN14_N_MELS)) {
		snprintf(why, len, "n_mels %lld: this Cnn14 reads %d mel bins", (long long)mels, CNN14_N_MELS);
		return -1;
	}
	*classes = (int)k;
	*width_div = (int)wd;
	*names = sv_get_strlist(mm, "class_names");
	if (*names && (*names)->u.arr.n != (size_t)k)
		*names = NULL;
	return 0;
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

static int load_items(cnn14 *m, st_reader *r, unsigned flags)
{
	const bool body = flags & CNN14_LOAD_BODY;
	const size_t want = body ? (size_t)m->body_end : m->ntensors;
	bool seen[CNN14_MAX_TENSORS] = {false};
	st_item it;
	if (st_item_init(&it))
		return cnn14_fail(m, CNN14_ERR_NOMEM, "out of memory");
	int rc, ret = CNN14_OK;
	char s1[96], s2[96];
	while ((rc = st_reader_next(r, &it)) == ST_OK) {
		long i = cnn14_tensor_find(m, it.key);
		if (body && (cnn14_is_output_layer(it.key) || (i >= 0 && (size_t)i >= want)))
			continue;
		if (i < 0) {
			ret = cnn14_fail(m, CNN14_ERR_MISMATCH, "%s: tensor '%s' is not part of the model", st_reader_name(r),
			                 it.key);
			break;
		}
		if (seen[i]) {
			ret = cnn14_fail(m, CNN14_ERR_FORMAT, "%s: tensor '%s' appears twice", st_reader_name(r), it.key);
			break;
		}
		seen[i] = true;
		const ctensor *t = &m->t[i];
		const st_tensor *v = st_item_tensor(&it, "value");
		st_dtype want_dtype = t->kind == CT_INT64 ? ST_I64 : ST_F32;
		if (!v) {
			ret = cnn14_fail(m, CNN14_ERR_FORMAT, "%s: item '%s' has no tensor 'value'", st_reader_name(r), it.key);
			break;
		}
		if (v->dtype != want_dtype) {
			ret = cnn14_fail(m, CNN14_ERR_MISMATCH, "%s: %s: dtype %s in the checkpoint, %s in the model",
			                 st_reader_name(r), it.key, st_dtype_str(v->dtype), st_dtype_str(want_dtype));
			break;
		}
		bool same = v->ndim == t->ndim;
		for (int d = 0; same && d < t->ndim; d++)
			same = v->shape[d] == t->shape[d];
		if (!same) {
			shape_str(s1, sizeof s1, v->ndim, v->shape);
			shape_str(s2, sizeof s2, t->ndim, t->shape);
			ret = cnn14_fail(m, CNN14_ERR_MISMATCH, "%s: %s: shape %s in the checkpoint, %s in the model",
			                 st_reader_name(r), it.key, s1, s2);
			break;
		}
		if (t->kind == CT_INT64)
			memcpy(cnn14_pnbt(m, (int)i), v->data, sizeof(int64_t));
		else
			memcpy(cnn14_pdata(m, (int)i), v->data, t->numel * sizeof(float));
	}
	if (ret == CNN14_OK && rc != ST_END)
		ret = cnn14_fail(m, CNN14_ERR_IO, "%s", st_reader_error(r));
	for (size_t i = 0; ret == CNN14_OK && i < want; i++)
		if (!seen[i])
			ret = cnn14_fail(m, CNN14_ERR_MISMATCH, "%s: the checkpoint lacks '%s'", st_reader_name(r),
			                 m->t[i].name);
	st_item_free(&it);
	return ret;
}

/* Everything after the reader's header was read: checks, tensors, params. */
static int load_from(cnn14 *m, st_reader *r, unsigned flags)
{
	const sv *header = st_reader_header(r);
	int classes, wd, rc;
	const sv *names;
	char why[256];
	if (read_model_map(header, &classes, &wd, &names, why, sizeof why))
		return cnn14_fail(m, CNN14_ERR_FORMAT, "%s: %s", st_reader_name(r), why);
	if (wd != m->width_div)
		return cnn14_fail(m, CNN14_ERR_MISMATCH, "%s: width divisor %d in the checkpoint, %d in the model",
		                  st_reader_name(r), wd, m->width_div);
	const bool body = flags & CNN14_LOAD_BODY;
	if (!body && classes != m->classes)
		return cnn14_fail(m, CNN14_ERR_MISMATCH,
		                  "%s: %d classes in the checkpoint, %d in the model (load the body only for a new head)",
		                  st_reader_name(r), classes, m->classes);
	if ((rc = load_items(m, r, flags)))
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
	const sv *names;
	if (read_model_map(st_reader_header(r), &cfg.classes, &cfg.width_div, &names, why, sizeof why)) {
		snprintf(err, CNN14_ERRLEN, "%s: %s", st_reader_name(r), why);
		st_reader_close(r);
		return NULL;
	}
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
	int classes, wd, ret = CNN14_OK, rc;
	const sv *names;
	const sv *o = sv_get(st_reader_params(r), "optimizer");
	int64_t steps, seed, counter;
	const char *type = o ? sv_get_str(o, "type") : NULL;
	if (read_model_map(st_reader_header(r), &classes, &wd, &names, why, sizeof why))
		ret = cnn14_fail(m, CNN14_ERR_FORMAT, "%s: %s", st_reader_name(r), why);
	else if (!type || strcmp(type, "sgd") != 0 || !sv_get_int(o, "steps", &steps) ||
	         !sv_get_int(o, "dropout_seed", &seed) || !sv_get_int(o, "dropout_counter", &counter))
		ret = cnn14_fail(m, CNN14_ERR_FORMAT, "%s: no SGD state in params.optimizer", st_reader_name(r));
	else if (classes != m->classes || wd != m->width_div)
		ret = cnn14_fail(m, CNN14_ERR_MISMATCH,
		                 "%s: optimiser state of a model with %d classes and width divisor %d, not %d and %d",
		                 st_reader_name(r), classes, wd, m->classes, m->width_div);
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
