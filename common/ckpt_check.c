/* ckpt_check.c - the checkpoint rules of ckpt_check.h. */
#include "ckpt_check.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void add(ckpt_model *m, const char *name, st_dtype dtype, int ndim, int64_t d0, int64_t d1, int64_t d2,
                int64_t d3)
{
	ckpt_spec *s = &m->t[m->ntensors++];
	snprintf(s->name, sizeof s->name, "%s", name);
	s->dtype = dtype;
	s->ndim = ndim;
	int64_t d[4] = {d0, d1, d2, d3};
	memcpy(s->shape, d, sizeof d);
}

static void add_bn(ckpt_model *m, const char *prefix, int64_t c)
{
	static const char *const part[] = {"weight", "bias", "running_mean", "running_var"};
	char name[CKPT_NAME_MAX];
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof name, "%s.%s", prefix, part[i]);
		add(m, name, ST_F32, 1, c, 0, 0, 0);
	}
	snprintf(name, sizeof name, "%s.num_batches_tracked", prefix);
	add(m, name, ST_I64, 0, 0, 0, 0, 0);
}

void ckpt_model_table(ckpt_model *m, int classes, int width_div)
{
	char name[CKPT_NAME_MAX];
	m->classes = classes;
	m->width_div = width_div;
	m->ntensors = 0;
	add_bn(m, "bn0", 64);
	int64_t cin = 1, c = 64 / width_div;
	for (int b = 1; b <= 6; b++, cin = c, c *= 2) {
		snprintf(name, sizeof name, "conv_block%d.conv1.weight", b);
		add(m, name, ST_F32, 4, c, cin, 3, 3);
		snprintf(name, sizeof name, "conv_block%d.conv2.weight", b);
		add(m, name, ST_F32, 4, c, c, 3, 3);
		snprintf(name, sizeof name, "conv_block%d.bn1", b);
		add_bn(m, name, c);
		snprintf(name, sizeof name, "conv_block%d.bn2", b);
		add_bn(m, name, c);
	}
	add(m, "fc1.weight", ST_F32, 2, cin, cin, 0, 0);
	add(m, "fc1.bias", ST_F32, 1, cin, 0, 0, 0);
	m->body_end = m->ntensors;
	add(m, "fc_transfer.weight", ST_F32, 2, classes, cin, 0, 0);
	add(m, "fc_transfer.bias", ST_F32, 1, classes, 0, 0, 0);
}

int ckpt_read_header(const sv *header, ckpt_model *m, char *why, size_t len)
{
	const sv *params = sv_get(header, "params");
	const sv *mm = params ? sv_get(params, "model") : NULL;
	int64_t k, wd, mels = 64;
	if (!mm || mm->kind != SV_MAP) {
		snprintf(why, len, "no params.model in the header: not a Cnn14 checkpoint");
		return -1;
	}
	const char *arch = sv_get_str(mm, "arch");
	if (!arch || strcmp(arch, "Cnn14") != 0) {
		snprintf(why, len, "architecture '%.100s', not Cnn14", arch ? arch : "(none)");
		return -1;
	}
	if (!sv_get_int(mm, "classes", &k) || !sv_get_int(mm, "width_div", &wd) || wd < 1 || wd > 64 || 64 % wd != 0) {
		snprintf(why, len, "params.model needs integer classes and a width_div dividing 64");
		return -1;
	}
	if (k < 1 || k > CKPT_MAX_CLASSES) {
		snprintf(why, len, "%lld classes in params.model, outside [1, %d] (formats/limits.md)", (long long)k,
		         CKPT_MAX_CLASSES);
		return -1;
	}
	if (sv_get(mm, "n_mels") && (!sv_get_int(mm, "n_mels", &mels) || mels != 64)) {
		snprintf(why, len, "n_mels %lld: this Cnn14 reads 64 mel bins", (long long)mels);
		return -1;
	}
	ckpt_model_table(m, (int)k, (int)wd);
	m->class_names = sv_get_strlist(mm, "class_names");
	if (m->class_names && m->class_names->u.arr.n != (size_t)k)
		m->class_names = NULL;
	return 0;
}

int ckpt_find(const ckpt_model *m, const char *name)
{
	for (int i = 0; i < m->ntensors; i++)
		if (strcmp(m->t[i].name, name) == 0)
			return i;
	return -1;
}

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
	size_t o = (size_t)snprintf(buf, len, "(");
	for (int d = 0; d < ndim && o < len; d++)
		o += (size_t)snprintf(buf + o, len - o, d ? ", %lld" : "%lld", (long long)shape[d]);
	if (o < len)
		snprintf(buf + o, len - o, ndim == 1 ? ",)" : ")");
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);
	return n >= t && strcmp(s + n - t, tail) == 0;
}

int ckpt_check_values(const char *name, const st_tensor *v, char *why, size_t len)
{
	size_t n = st_tensor_numel(v);
	if (v->dtype == ST_I64) {
		for (size_t i = 0; i < n; i++) {
			int64_t x;
			memcpy(&x, (const char *)v->data + 8 * i, 8);
			if (x < 0) {
				snprintf(why, len, "%s: negative count %lld", name, (long long)x);
				return -1;
			}
		}
		return 0;
	}
	if (v->dtype != ST_F32)
		return 0;
	const float *x = v->data;
	const bool var = ends_with(name, ".running_var");
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(x[i])) {
			snprintf(why, len, "%s: element %zu is %s", name, i, isnan(x[i]) ? "NaN" : "infinite");
			return -1;
		}
		if (var && x[i] < 0) {
			snprintf(why, len, "%s: element %zu is a negative variance (%g)", name, i, (double)x[i]);
			return -1;
		}
	}
	return 0;
}

static bool is_output(const char *name)
{
	return strncmp(name, "fc_transfer.", 12) == 0 || strncmp(name, "fc_audioset.", 12) == 0;
}

int ckpt_check_item(const ckpt_model *m, ckpt_seen *seen, const char *name, const st_tensor *v, unsigned flags,
                    char *why, size_t len)
{
	if ((flags & CKPT_SKIP_OUTPUT) && is_output(name))
		return 0;
	int i = ckpt_find(m, name);
	if (i < 0) {
		snprintf(why, len, "tensor '%.200s' is not part of the model", name);
		return -1;
	}
	if (seen->seen[i]) {
		snprintf(why, len, "tensor '%s' appears twice", name);
		return -1;
	}
	seen->seen[i] = true;
	const ckpt_spec *s = &m->t[i];
	if (!v) {
		snprintf(why, len, "item '%s' has no tensor 'value'", name);
		return -1;
	}
	if (v->dtype != s->dtype) {
		snprintf(why, len, "%s: dtype %s in the checkpoint, %s in the model", name, st_dtype_str(v->dtype),
		         st_dtype_str(s->dtype));
		return -1;
	}
	bool same = v->ndim == s->ndim;
	for (int d = 0; same && d < s->ndim; d++)
		same = v->shape[d] == s->shape[d];
	if (!same) {
		char s1[96], s2[96];
		shape_str(s1, sizeof s1, v->ndim, v->shape);
		shape_str(s2, sizeof s2, s->ndim, s->shape);
		snprintf(why, len, "%s: shape %s in the checkpoint, %s in the model", name, s1, s2);
		return -1;
	}
	return ckpt_check_values(name, v, why, len);
}

int ckpt_check_complete(const ckpt_model *m, const ckpt_seen *seen, unsigned flags, char *why, size_t len)
{
	if (flags & CKPT_SUBSET)
		return 0;
	int end = flags & CKPT_SKIP_OUTPUT ? m->body_end : m->ntensors;
	for (int i = 0; i < end; i++)
		if (!seen->seen[i]) {
			snprintf(why, len, "the checkpoint lacks '%s'", m->t[i].name);
			return -1;
		}
	return 0;
}

uint64_t ckpt_payload_bytes(const ckpt_model *m, unsigned flags)
{
	uint64_t total = 0;
	int end = flags & CKPT_SKIP_OUTPUT ? m->body_end : m->ntensors;
	for (int i = 0; i < end; i++) {
		uint64_t n = st_dtype_size(m->t[i].dtype);
		for (int d = 0; d < m->t[i].ndim; d++)
			n *= (uint64_t)m->t[i].shape[d];
		total += n;
	}
	return total;
}

int ckpt_check_size(const ckpt_model *m, const char *path, unsigned flags, char *why, size_t len)
{
	struct stat st;
	if (!path || strcmp(path, "-") == 0 || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return 0;
	uint64_t need = ckpt_payload_bytes(m, flags);
	if ((uint64_t)st.st_size < need) {
		snprintf(why, len, "%lld bytes, too short for the %llu bytes of tensors its header declares (%d classes, "
		         "width divisor %d)", (long long)st.st_size, (unsigned long long)need, m->classes, m->width_div);
		return -1;
	}
	return 0;
}

int ckpt_validate(const char *path, size_t max_record, unsigned flags, char *err, size_t errlen)
{
	char why[ST_ERRLEN];
	st_reader *r = st_reader_open(path, max_record, 0, err);
	if (!r)
		return -1;
	ckpt_model cm;
	ckpt_seen seen = {{false}};
	st_item it;
	int rc = ST_OK, bad = ckpt_read_header(st_reader_header(r), &cm, why, sizeof why);
	if (!bad && !(flags & CKPT_SUBSET)) /* the message cnn14_open gives, before reading any tensor */
		bad = ckpt_check_size(&cm, path, flags, why, sizeof why);
	if (!bad && st_item_init(&it) == 0) {
		while (!bad && (rc = st_reader_next(r, &it)) == ST_OK)
			bad = ckpt_check_item(&cm, &seen, it.key, st_item_tensor(&it, "value"), flags, why, sizeof why);
		st_item_free(&it);
		if (!bad && rc != ST_END) {
			snprintf(err, errlen, "%s", st_reader_error(r));
			st_reader_close(r);
			return -1;
		}
		if (!bad)
			bad = ckpt_check_complete(&cm, &seen, flags, why, sizeof why);
	} else if (!bad) {
		snprintf(why, sizeof why, "out of memory");
		bad = -1;
	}
	if (bad)
		snprintf(err, errlen, "%.200s: %s", st_reader_name(r), why);
	st_reader_close(r);
	return bad ? -1 : 0;
}
