/* cnn14.c - the Cnn14 model: parameters, planning, forward, backward, SGD.
 * Checkpoint I/O is in cnn14_io.c, the layer kernels in nn_layers.c. */
#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnn14_impl.h"
#include "cpu.h"
#include "value.h"

static const int base_channels[CNN14_BLOCKS] = {64, 128, 256, 512, 1024, 2048};

const char *cnn14_strerror(int code)
{
	switch (code) {
	case CNN14_OK: return "success";
	case CNN14_ERR_NOMEM: return "out of memory";
	case CNN14_ERR_ARG: return "invalid argument";
	case CNN14_ERR_SHORT: return "input too short";
	case CNN14_ERR_STATE: return "call out of order";
	case CNN14_ERR_IO: return "input/output error";
	case CNN14_ERR_FORMAT: return "not a Cnn14 checkpoint";
	case CNN14_ERR_MISMATCH: return "checkpoint does not match the model";
	default: return "unknown error";
	}
}

int cnn14_fail(cnn14 *m, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->err, sizeof m->err, fmt, ap);
	va_end(ap);
	return code;
}

const char *cnn14_error(const cnn14 *m)
{
	return m->err[0] ? m->err : "no error";
}

/* ---- the tensor table ---- */

static int add_tensor(cnn14 *m, const char *name, int ndim, const int64_t *shape, int kind)
{
	if (m->ntensors == CNN14_MAX_TENSORS)
		return -1;
	ctensor *t = &m->t[m->ntensors++];
	snprintf(t->name, sizeof t->name, "%s", name);
	t->ndim = ndim;
	t->numel = 1;
	for (int d = 0; d < ndim; d++) {
		t->shape[d] = shape[d];
		t->numel *= (size_t)shape[d];
	}
	t->kind = kind;
	if (kind == CT_PARAM) {
		t->off = m->nparam;
		m->nparam += t->numel;
	} else if (kind == CT_BUFFER) {
		t->off = m->nbuf;
		m->nbuf += t->numel;
	} else {
		t->off = m->nnbt++;
	}
	return (int)(m->ntensors - 1);
}

static void add_bn(cnn14 *m, const char *prefix, int c, bn_ref *bn)
{
	char name[CNN14_NAME_MAX];
	int64_t shape[1] = {c};
	snprintf(name, sizeof name, "%s.weight", prefix);
	bn->w = add_tensor(m, name, 1, shape, CT_PARAM);
	snprintf(name, sizeof name, "%s.bias", prefix);
	bn->b = add_tensor(m, name, 1, shape, CT_PARAM);
	snprintf(name, sizeof name, "%s.running_mean", prefix);
	bn->rm = add_tensor(m, name, 1, shape, CT_BUFFER);
	snprintf(name, sizeof name, "%s.running_var", prefix);
	bn->rv = add_tensor(m, name, 1, shape, CT_BUFFER);
	snprintf(name, sizeof name, "%s.num_batches_tracked", prefix);
	bn->nbt = add_tensor(m, name, 0, shape, CT_INT64);
	bn->c = c;
}

float *cnn14_pdata(cnn14 *m, int i)
{
	ctensor *t = &m->t[i];
	return t->kind == CT_PARAM ? m->param + t->off : t->kind == CT_BUFFER ? m->buf + t->off : NULL;
}

float *cnn14_pgrad(cnn14 *m, int i)
{
	return m->t[i].kind == CT_PARAM ? m->grad + m->t[i].off : NULL;
}

int64_t *cnn14_pnbt(cnn14 *m, int i)
{
	return m->t[i].kind == CT_INT64 ? &m->nbt[m->t[i].off] : NULL;
}

static void build_table(cnn14 *m)
{
	char name[CNN14_NAME_MAX];
	add_bn(m, "bn0", CNN14_N_MELS, &m->bn0);
	int cin = 1;
	for (int b = 0; b < CNN14_BLOCKS; b++) {
		int c = m->ch[b];
		int64_t shape1[4] = {c, cin, 3, 3}, shape2[4] = {c, c, 3, 3};
		snprintf(name, sizeof name, "conv_block%d.conv1.weight", b + 1);
		m->blk[b].conv1 = add_tensor(m, name, 4, shape1, CT_PARAM);
		snprintf(name, sizeof name, "conv_block%d.conv2.weight", b + 1);
		m->blk[b].conv2 = add_tensor(m, name, 4, shape2, CT_PARAM);
		snprintf(name, sizeof name, "conv_block%d.bn1", b + 1);
		add_bn(m, name, c, &m->blk[b].bn1);
		snprintf(name, sizeof name, "conv_block%d.bn2", b + 1);
		add_bn(m, name, c, &m->blk[b].bn2);
		cin = c;
	}
	int c6 = m->ch[CNN14_BLOCKS - 1], k = m->classes;
	int64_t s_fc1w[2] = {c6, c6}, s_fc1b[1] = {c6}, s_fcw[2] = {k, c6}, s_fcb[1] = {k};
	m->fc1_w = add_tensor(m, "fc1.weight", 2, s_fc1w, CT_PARAM);
	m->fc1_b = add_tensor(m, "fc1.bias", 1, s_fc1b, CT_PARAM);
	m->fc_w = add_tensor(m, "fc_transfer.weight", 2, s_fcw, CT_PARAM);
	m->fc_b = add_tensor(m, "fc_transfer.bias", 1, s_fcb, CT_PARAM);
	m->body_end = m->fc_w; /* tensors [0, body_end) form the body */
}

/* ---- initialisation ---- */

typedef struct {
	float *data;
	size_t n;
	uint64_t base;
	float bound;
} init_ctx;

static void init_task(void *arg, int tid, int nth)
{
	const init_ctx *c = arg;
	size_t lo, hi;
	nn_split(c->n, 64, tid, nth, &lo, &hi);
	for (size_t i = lo; i < hi; i++) {
		double u = (double)(rng_mix64(c->base + (i + 1) * RNG_GOLDEN) >> 11) * 0x1p-53;
		c->data[i] = (float)(c->bound * (2 * u - 1));
	}
}

/* Xavier-uniform for conv and linear weights, zero biases, BN 1/0, running 0/1. */
static void init_params(cnn14 *m, uint64_t seed)
{
	for (size_t i = 0; i < m->ntensors; i++) {
		ctensor *t = &m->t[i];
		float *d = cnn14_pdata(m, (int)i);
		const char *tail = strrchr(t->name, '.');
		if (t->kind == CT_INT64) {
			m->nbt[t->off] = 0;
		} else if (t->ndim >= 2) {
			size_t rf = t->ndim == 4 ? 9 : 1;
			double fan_in = (double)t->shape[1] * (double)rf, fan_out = (double)t->shape[0] * (double)rf;
			init_ctx c = {d, t->numel, rng_mix64(seed ^ rng_mix64(0x1000 + i)),
			              (float)sqrt(6.0 / (fan_in + fan_out))};
			nn_pool_run(m->pool, init_task, &c);
		} else {
			bool is_bn = strncmp(t->name, "bn0", 3) == 0 || strstr(t->name, ".bn") != NULL;
			float v = 0;
			if (is_bn && (strcmp(tail, ".weight") == 0 || strcmp(tail, ".running_var") == 0))
				v = 1;
			for (size_t j = 0; j < t->numel; j++)
				d[j] = v;
		}
	}
}

/* ---- creation ---- */

cnn14 *cnn14_new(const cnn14_config *cfg, char *err)
{
	char dummy[CNN14_ERRLEN];
	if (!err)
		err = dummy;
	err[0] = 0;
	if (cfg->classes < 1 || cfg->classes > 1000000) {
		snprintf(err, CNN14_ERRLEN, "classes %d: must be at least 1", cfg->classes);
		return NULL;
	}
	if (cfg->width_div < 1 || 64 % cfg->width_div != 0) {
		snprintf(err, CNN14_ERRLEN, "width divisor %d: must divide 64", cfg->width_div);
		return NULL;
	}
	cnn14 *m = calloc(1, sizeof *m);
	if (!m) {
		snprintf(err, CNN14_ERRLEN, "out of memory");
		return NULL;
	}
	m->classes = cfg->classes;
	m->width_div = cfg->width_div;
	m->seed = cfg->seed;
	for (int b = 0; b < CNN14_BLOCKS; b++)
		m->ch[b] = base_channels[b] / cfg->width_div;
	build_table(m);
	m->threads = cfg->threads > 0 ? cfg->threads : nn_cpu_count();
	if (m->threads > NN_MAX_THREADS) {
		snprintf(err, CNN14_ERRLEN, "%d threads: more than the limit of %d", m->threads, NN_MAX_THREADS);
		free(m);
		return NULL;
	}
	openblas_set_num_threads(1);
	m->pool = nn_pool_new(m->threads);
	m->param = sv_aligned_alloc(m->nparam * sizeof(float));
	m->grad = sv_aligned_alloc(m->nparam * sizeof(float));
	m->mom = sv_aligned_alloc(m->nparam * sizeof(float));
	m->buf = sv_aligned_alloc(m->nbuf * sizeof(float));
	m->class_names = calloc((size_t)m->classes, sizeof *m->class_names);
	m->params = sv_map();
	if (!m->pool || !m->param || !m->grad || !m->mom || !m->buf || !m->class_names || !m->params) {
		cnn14_free(m);
		snprintf(err, CNN14_ERRLEN, "out of memory");
		return NULL;
	}
	/* logically zero, cleared when first read: a process that never trains
	 * never touches (never makes resident) the gradient array, 319 MB at
	 * full width */
	cnn14_zero_grad(m);
	init_params(m, cfg->seed);
	return m;
}

void cnn14_weights_changed(cnn14 *m)
{
	for (int b = 0; b < CNN14_BLOCKS; b++)
		for (int j = 0; j < 2; j++) {
			free(m->ahead[b][j]);
			m->ahead[b][j] = NULL;
		}
}

void cnn14_free(cnn14 *m)
{
	if (!m)
		return;
	cnn14_weights_changed(m);
	cnn14_plan_free(m);
	nn_pool_free(m->pool);
	free(m->param);
	free(m->grad);
	free(m->mom);
	free(m->buf);
	free(m->gscratch);
	if (m->class_names)
		for (int k = 0; k < m->classes; k++)
			free(m->class_names[k]);
	free(m->class_names);
	sv_free(m->params);
	sv_free(m->loaded_header);
	free(m);
}

int cnn14_classes(const cnn14 *m) { return m->classes; }
int cnn14_width_div(const cnn14 *m) { return m->width_div; }
int cnn14_threads(const cnn14 *m) { return m->threads; }
uint64_t cnn14_steps(const cnn14 *m) { return m->steps; }
sv *cnn14_params(cnn14 *m) { return m->params; }

void cnn14_set_seed(cnn14 *m, uint64_t seed)
{
	m->seed = seed;
	m->dropout_counter = 0;
}

const char *cnn14_class_name(const cnn14 *m, int k)
{
	return k >= 0 && k < m->classes ? m->class_names[k] : NULL;
}

int cnn14_set_class_names(cnn14 *m, const char *const *names, int n)
{
	if (n != m->classes)
		return cnn14_fail(m, CNN14_ERR_ARG, "%d class names for %d classes", n, m->classes);
	for (int k = 0; k < n; k++) {
		char *s = names[k] ? strdup(names[k]) : NULL;
		if (names[k] && !s)
			return cnn14_fail(m, CNN14_ERR_NOMEM, "out of memory");
		free(m->class_names[k]);
		m->class_names[k] = s;
	}
	return CNN14_OK;
}

int cnn14_set_threads(cnn14 *m, int threads)
{
	if (threads <= 0)
		threads = nn_cpu_count();
	if (threads > NN_MAX_THREADS)
		return cnn14_fail(m, CNN14_ERR_ARG, "%d threads: more than the limit of %d", threads, NN_MAX_THREADS);
	if (threads == m->threads)
		return CNN14_OK;
	nn_pool *p = nn_pool_new(threads);
	if (!p)
		return cnn14_fail(m, CNN14_ERR_NOMEM, "cannot start %d threads", threads);
	nn_pool_free(m->pool);
	m->pool = p;
	m->threads = threads;
	cnn14_plan_free(m); /* per-thread scratch depends on the count */
	return CNN14_OK;
}

void cnn14_set_finetune(cnn14 *m, cnn14_finetune mode, bool freeze_bn_stats)
{
	m->finetune = mode;
	m->freeze_bn = freeze_bn_stats;
}

static bool trainable(const cnn14 *m, int i)
{
	if (m->t[i].kind != CT_PARAM)
		return false;
	return m->finetune == CNN14_FINETUNE_ALL || i >= m->fc1_w;
}

size_t cnn14_num_tensors(const cnn14 *m) { return m->ntensors; }

long cnn14_tensor_find(const cnn14 *m, const char *name)
{
	for (size_t i = 0; i < m->ntensors; i++)
		if (strcmp(m->t[i].name, name) == 0)
			return (long)i;
	return -1;
}

/* A gradient marked zero by cnn14_zero_grad is cleared only when read. */
static void materialise_grad(cnn14 *m, int i)
{
	if (m->t[i].kind == CT_PARAM && m->t[i].grad_zero) {
		memset(cnn14_pgrad(m, i), 0, m->t[i].numel * sizeof(float));
		m->t[i].grad_zero = false;
	}
}

cnn14_tensor cnn14_tensor_at(cnn14 *m, size_t i)
{
	ctensor *t = &m->t[i];
	cnn14_weights_changed(m); /* the caller may write through the pointers */
	cnn14_tensor o;
	memset(&o, 0, sizeof o);
	o.name = t->name;
	o.ndim = t->ndim;
	for (int d = 0; d < t->ndim; d++)
		o.shape[d] = t->shape[d];
	o.numel = t->numel;
	o.trainable = t->kind == CT_PARAM;
	o.is_int64 = t->kind == CT_INT64;
	if (o.is_int64) {
		o.data_i64 = cnn14_pnbt(m, (int)i);
	} else {
		o.data = cnn14_pdata(m, (int)i);
		if (t->kind == CT_PARAM) {
			materialise_grad(m, (int)i);
			o.grad = cnn14_pgrad(m, (int)i);
		}
	}
	return o;
}

uint64_t cnn14_num_params(const cnn14 *m)
{
	return m->nparam;
}

double cnn14_forward_flops(const cnn14 *m, int frames)
{
	double macs = 0;
	int h = frames, w = CNN14_N_MELS, cin = 1;
	for (int b = 0; b < CNN14_BLOCKS; b++) {
		int c = m->ch[b];
		macs += 9.0 * ((double)cin * c + (double)c * c) * h * w;
		if (b < CNN14_BLOCKS - 1) {
			h /= 2;
			w /= 2;
		}
		cin = c;
	}
	int c6 = m->ch[CNN14_BLOCKS - 1];
	macs += (double)c6 * c6 + (double)c6 * m->classes;
	return 2 * macs;
}

/* ---- planning: every buffer a batch shape needs, allocated once ---- */

/* Buffers are slots that outlive a plan: a new plan of the same mode takes
 * the slots in the same order and keeps each one that is large enough, so
 * scoring items of varying length does not free, map and fault in every
 * buffer again per item (~7 % of a narrow model's scoring time).  A slot
 * that must grow gets a quarter more than asked, so a run of growing
 * lengths settles after a few items. */
static void *plan_alloc(cnn14 *m, size_t bytes)
{
	if (bytes == 0)
		bytes = 64;
	cnn14_plan *pl = &m->plan;
	if (pl->nused == pl->nslots) {
		if (pl->nslots == pl->cap) {
			size_t cap = pl->cap ? 2 * pl->cap : 64;
			plan_slot *a = realloc(pl->slots, cap * sizeof *a);
			if (!a)
				return NULL;
			pl->slots = a;
			pl->cap = cap;
		}
		pl->slots[pl->nslots++] = (plan_slot){NULL, 0};
	}
	plan_slot *sl = &pl->slots[pl->nused];
	if (sl->bytes < bytes) {
		if (sl->bytes > 0 && bytes <= SIZE_MAX - bytes / 4)
			bytes += bytes / 4;
		free(sl->p);
		sl->p = sv_aligned_alloc(bytes);
		sl->bytes = sl->p ? bytes : 0;
		if (!sl->p)
			return NULL;
	}
	pl->nused++;
	return sl->p;
}

/* Forgets the plan; its slots are freed unless keep_slots. */
static void plan_reset(cnn14 *m, bool keep_slots)
{
	cnn14_plan *pl = &m->plan;
	plan_slot *slots = pl->slots;
	size_t nslots = pl->nslots, cap = pl->cap;
	if (!keep_slots) {
		for (size_t i = 0; i < nslots; i++)
			free(slots[i].p);
		free(slots);
		slots = NULL;
		nslots = cap = 0;
	}
	memset(pl, 0, sizeof *pl);
	pl->slots = slots;
	pl->nslots = nslots;
	pl->cap = cap;
	m->have_forward = false;
	m->embedding_batch = 0;
}

void cnn14_plan_free(cnn14 *m) { plan_reset(m, false); }

#define ALLOC(ptr, count) ok = ok && ((ptr) = plan_alloc(m, (size_t)(count) * sizeof *(ptr))) != NULL

/* The largest scratch any layer of a plan needs. */
typedef struct {
	nn_conv_sizes ws;
	size_t scratch, positions; /* c x n*h*w; n*h*w */
} plan_max;

static void keep_max(size_t *a, size_t b)
{
	*a = b > *a ? b : *a;
}

/* Whether a whole-batch convolution keeps its forward im2col matrix for the
 * backward pass rather than rebuilding it there.  Rebuilding is one memory
 * pass over 9 x cin x P floats against the 9 x cin x P x cout multiply-adds
 * of the layer's GEMMs, so it is worth avoiding only for few output channels;
 * wide layers rebuild it and free the memory (at full width, batch 8 x 300
 * frames, blocks 4-6 held 113 MB of these, 7 % of the training step's peak
 * RSS), and no kept matrix may exceed the cap. */
#ifndef CNN14_KEEP_IM2COL_MAX_COUT
#define CNN14_KEEP_IM2COL_MAX_COUT 256
#endif
#ifndef CNN14_KEEP_IM2COL_MAX
#define CNN14_KEEP_IM2COL_MAX ((size_t)4 << 20) /* floats: 16 MB */
#endif
static bool keep_im2col(const nn_conv *cv)
{
	return cv->strategy == NN_CONV_WHOLE_BATCH && cv->cout <= CNN14_KEEP_IM2COL_MAX_COUT &&
	       9 * (size_t)cv->cin * (size_t)cv->n * (size_t)cv->h * (size_t)cv->w <= CNN14_KEEP_IM2COL_MAX;
}

/* Block b of a batch of n at h x w with cin input channels: its convolutions
 * and buffers.  false when out of memory. */
static bool plan_block(cnn14 *m, int b, int n, int h, int w, int cin, plan_max *mx)
{
	cnn14_plan *pl = &m->plan;
	block_plan *bp = &pl->blk[b];
	const bool train = pl->train;
	int c = m->ch[b], k = b < CNN14_BLOCKS - 1 ? 2 : 1;
	bool ok = true;
	bp->h = h;
	bp->w = w;
	bp->k = k;
	bp->p = (size_t)n * (size_t)h * (size_t)w;
	bp->pout = (size_t)n * (size_t)(h / k) * (size_t)(w / k);
	void (*conv_plan)(nn_conv *, int, int, int, int, int) = train ? nn_conv_plan : nn_conv_plan_inference;
	conv_plan(&bp->cv1, cin, c, n, h, w);
	conv_plan(&bp->cv2, c, c, n, h, w);
	if (b == 0)
		ALLOC(bp->x, bp->p);
	else
		bp->x = pl->blk[b - 1].out;
	ALLOC(bp->out, (size_t)c * bp->pout);
	ALLOC(bp->bnf, 8 * (size_t)c);
	if (train) { /* the backward pass reads z1, a1, z2; an inference plan shares two (plan_rest) */
		ALLOC(bp->z1, (size_t)c * bp->p);
		ALLOC(bp->a1, (size_t)c * bp->p);
		ALLOC(bp->z2, (size_t)c * bp->p);
		ALLOC(bp->mask, (size_t)c * bp->pout);
		if (keep_im2col(&bp->cv1))
			ALLOC(bp->keep1, 9 * (size_t)cin * bp->p);
		if (keep_im2col(&bp->cv2))
			ALLOC(bp->keep2, 9 * (size_t)c * bp->p);
	}
	for (int j = 0; j < 2; j++) {
		nn_conv_sizes s = nn_conv_ws_size(j ? &bp->cv2 : &bp->cv1, train);
		keep_max(&mx->ws.col, s.col);
		keep_max(&mx->ws.dw, s.dw);
		keep_max(&mx->ws.wflip, s.wflip);
		keep_max(&mx->ws.full, s.full);
	}
	keep_max(&mx->scratch, (size_t)c * bp->p);
	keep_max(&mx->positions, bp->p);
	return ok;
}

/* The head, the training buffers and the convolutions' shared workspace. */
static bool plan_rest(cnn14 *m, size_t n, const plan_max *mx)
{
	cnn14_plan *pl = &m->plan;
	const bool train = pl->train;
	const size_t c6 = (size_t)m->ch[CNN14_BLOCKS - 1];
	bool ok = true;
	ALLOC(pl->bn0f, 8 * CNN14_N_MELS);
	ALLOC(pl->feat, n * c6);
	ALLOC(pl->argmax, n * c6);
	ALLOC(pl->h1, n * c6);
	ALLOC(pl->hd, n * c6);
	ALLOC(pl->logits, n * (size_t)m->classes);
	if (!train) {
		/* inference keeps no activation for later: a block's z1 is dead once
		 * a1 is made from it, so z2 takes its place, and every block uses the
		 * same two buffers (at full width, batch 8 x 300 frames, 78 MB
		 * instead of 231 MB) */
		float *z, *a;
		ALLOC(z, mx->scratch);
		ALLOC(a, mx->scratch);
		for (int b = 0; ok && b < CNN14_BLOCKS; b++) {
			pl->blk[b].z1 = pl->blk[b].z2 = z;
			pl->blk[b].a1 = a;
		}
	}
	if (train) {
		ALLOC(pl->s2, mx->scratch);
		ALLOC(pl->gtmp, (size_t)m->threads * mx->positions);
		ALLOC(pl->mask_feat, n * c6);
		ALLOC(pl->mask_h, n * c6);
		ALLOC(pl->dlogits, n * (size_t)m->classes);
		ALLOC(pl->dh, n * c6);
		ALLOC(pl->dfeat, n * c6);
	}
	ALLOC(pl->ws.col, m->threads);
	for (int t = 0; ok && t < m->threads; t++)
		ALLOC(pl->ws.col[t], mx->ws.col);
	if (train) {
		ALLOC(pl->ws.dw[0], mx->ws.dw);
		ALLOC(pl->ws.wflip, mx->ws.wflip);
	}
	ALLOC(pl->ws.full, mx->ws.full);
	return ok;
}

static int plan(cnn14 *m, int batch, int frames, bool train)
{
	cnn14_plan *pl = &m->plan;
	/* an inference forward never reuses a training plan: their convolutions
	 * may differ (nn_conv_plan_inference), and a result must not depend on
	 * what ran before */
	if (pl->ready && pl->batch == batch && pl->frames == frames && pl->train == train)
		return CNN14_OK;
	/* the slots of a plan of the other mode are freed: the two lay out their
	 * buffers differently, and keeping both would hold the sum of the two */
	plan_reset(m, pl->ready && pl->train == train);
	if (train) /* training changes the weights anyway; do not hold both */
		cnn14_weights_changed(m);
	pl->batch = batch;
	pl->frames = frames;
	pl->train = train;
	int h = frames, w = CNN14_N_MELS, cin = 1;
	plan_max mx = {{0, 0, 0, 0}, 0, 0};
	bool ok = true;
	ALLOC(pl->xin, (size_t)batch * (size_t)frames * CNN14_N_MELS);
	for (int b = 0; ok && b < CNN14_BLOCKS; b++) {
		ok = plan_block(m, b, batch, h, w, cin, &mx);
		if (b < CNN14_BLOCKS - 1) {
			h /= 2;
			w /= 2;
		}
		cin = m->ch[b];
	}
	ok = ok && plan_rest(m, (size_t)batch, &mx);
	if (!ok) {
		cnn14_plan_free(m);
		return cnn14_fail(m, CNN14_ERR_NOMEM, "out of memory planning a batch of %d x %d frames", batch,
		                  frames);
	}
	pl->ready = true;
	return CNN14_OK;
}
#undef ALLOC

/* ---- forward ---- */

/* The per-channel affine of one BatchNorm for this pass; bnf holds
 * mean, invstd, scale, shift (C floats each). */
static void bn_prepare(cnn14 *m, const bn_ref *bn, const double *mean, const double *var, size_t count,
                       bool batch_stats, bool update, float *bnf)
{
	const int c = bn->c;
	float *gamma = cnn14_pdata(m, bn->w), *beta = cnn14_pdata(m, bn->b);
	float *rm = cnn14_pdata(m, bn->rm), *rv = cnn14_pdata(m, bn->rv);
	float *fm = bnf, *fi = bnf + c, *fs = bnf + 2 * c, *ft = bnf + 3 * c;
	for (int j = 0; j < c; j++) {
		double mu = batch_stats ? mean[j] : rm[j], v = batch_stats ? var[j] : rv[j];
		double is = 1.0 / sqrt(v + CNN14_BN_EPS);
		fm[j] = (float)mu;
		fi[j] = (float)is;
		fs[j] = (float)(gamma[j] * is);
		ft[j] = (float)(beta[j] - mu * gamma[j] * is);
		if (update) {
			double unbiased = count > 1 ? var[j] * (double)count / (double)(count - 1) : var[j];
			rm[j] = (float)((1 - CNN14_BN_MOMENTUM) * rm[j] + CNN14_BN_MOMENTUM * mean[j]);
			rv[j] = (float)((1 - CNN14_BN_MOMENTUM) * rv[j] + CNN14_BN_MOMENTUM * unbiased);
		}
	}
	if (update)
		m->nbt[m->t[bn->nbt].off]++;
}

/* The head of a forward pass: pooled features -> dropout -> fc1 + ReLU
 * (plan.hd, the embedding) -> dropout -> fc_transfer logits (plan.logits). */
static void head_forward(cnn14 *m, int batch, bool dropout)
{
	cnn14_plan *pl = &m->plan;
	const size_t n = (size_t)batch;
	const block_plan *b6 = &pl->blk[CNN14_BLOCKS - 1];
	const int c6 = m->ch[CNN14_BLOCKS - 1], k = m->classes;
	nn_head_forward(c6, batch, b6->h, b6->w, b6->out, pl->feat, pl->argmax);
	const float half = (float)(1 / (1 - CNN14_DROP_HEAD));
	if (dropout) {
		nn_dropout_mask(m->pool, m->seed, m->dropout_counter, 7, CNN14_DROP_HEAD, pl->mask_feat, n * (size_t)c6);
		nn_dropout_apply(n * (size_t)c6, pl->feat, pl->mask_feat, half);
	}
	nn_linear_forward(batch, c6, c6, pl->feat, cnn14_pdata(m, m->fc1_w), cnn14_pdata(m, m->fc1_b), pl->h1);
	for (size_t i = 0; i < n * (size_t)c6; i++)
		pl->hd[i] = pl->h1[i] > 0 ? pl->h1[i] : 0;
	if (dropout) {
		nn_dropout_mask(m->pool, m->seed, m->dropout_counter, 8, CNN14_DROP_HEAD, pl->mask_h, n * (size_t)c6);
		nn_dropout_apply(n * (size_t)c6, pl->hd, pl->mask_h, half);
	}
	nn_linear_forward(batch, c6, k, pl->hd, cnn14_pdata(m, m->fc_w), cnn14_pdata(m, m->fc_b), pl->logits);
}

/* *u = the kernels transformed ahead that convolution j of block b reads,
 * made now if the weights changed since (NULL when it reads none).  -1
 * when out of memory. */
static int kernels_ahead(cnn14 *m, int b, int j, const nn_conv *cv, int weight, const float **u)
{
	float **a = &m->ahead[b][j];
	size_t size = nn_conv_kernels_size(cv); /* 16 cout cin for this layer, or 0 */
	if (size > 0 && !*a) {
		if (!(*a = sv_aligned_alloc(size * sizeof **a)))
			return -1;
		nn_conv_transform_kernels(m->pool, cv, cnn14_pdata(m, weight), *a);
	}
	*u = size > 0 ? *a : NULL;
	return 0;
}

int cnn14_forward(cnn14 *m, const float *x, int batch, int frames, unsigned mode, float *logp)
{
	m->err[0] = 0;
	m->have_forward = false;
	m->embedding_batch = 0;
	if (batch < 1)
		return cnn14_fail(m, CNN14_ERR_ARG, "batch of %d samples", batch);
	if (frames < CNN14_MIN_FRAMES)
		return cnn14_fail(m, CNN14_ERR_SHORT, "input of %d frames: Cnn14 needs at least %d (pad it)", frames,
		                  CNN14_MIN_FRAMES);
	const bool train = mode & CNN14_TRAIN, dropout = train && !(mode & CNN14_NO_DROPOUT);
	const bool batch_stats = train && !m->freeze_bn, update = batch_stats;
	int rc = plan(m, batch, frames, train);
	if (rc)
		return rc;
	cnn14_plan *pl = &m->plan;
	const size_t n = (size_t)batch, rows = n * (size_t)frames;
	double mean[2048], var[2048];

	/* bn0 over the mel bins */
	memcpy(pl->xin, x, rows * CNN14_N_MELS * sizeof *x);
	if (batch_stats)
		nn_colbn_stats(rows, CNN14_N_MELS, pl->xin, mean, var);
	bn_prepare(m, &m->bn0, mean, var, rows, batch_stats, update, pl->bn0f);
	nn_colbn_apply(m->pool, rows, CNN14_N_MELS, pl->xin, pl->bn0f + 2 * CNN14_N_MELS,
	                 pl->bn0f + 3 * CNN14_N_MELS, pl->blk[0].x);

	if (dropout)
		m->dropout_counter++;
	for (int b = 0; b < CNN14_BLOCKS; b++) {
		block_plan *bp = &pl->blk[b];
		const block_ref *br = &m->blk[b];
		const int c = m->ch[b];
		float *bnf1 = bp->bnf, *bnf2 = bp->bnf + 4 * c;
		const float *u1, *u2;
		if (kernels_ahead(m, b, 0, &bp->cv1, br->conv1, &u1) || kernels_ahead(m, b, 1, &bp->cv2, br->conv2, &u2))
			return cnn14_fail(m, CNN14_ERR_NOMEM, "out of memory for block %d's transformed kernels", b + 1);
		nn_conv_forward(m->pool, &bp->cv1, &pl->ws, bp->x, cnn14_pdata(m, br->conv1), u1, bp->z1,
		                  train ? bp->keep1 : NULL);
		if (batch_stats)
			nn_bn_stats(m->pool, c, bp->p, bp->z1, mean, var);
		bn_prepare(m, &br->bn1, mean, var, bp->p, batch_stats, update, bnf1);
		nn_affine_relu_pool(m->pool, c, batch, bp->h, bp->w, 1, bp->z1, bnf1 + 2 * c, bnf1 + 3 * c, NULL, 1,
		                      bp->a1);
		nn_conv_forward(m->pool, &bp->cv2, &pl->ws, bp->a1, cnn14_pdata(m, br->conv2), u2, bp->z2,
		                  train ? bp->keep2 : NULL);
		if (batch_stats)
			nn_bn_stats(m->pool, c, bp->p, bp->z2, mean, var);
		bn_prepare(m, &br->bn2, mean, var, bp->p, batch_stats, update, bnf2);
		uint8_t *mask = NULL;
		if (dropout) {
			mask = bp->mask;
			nn_dropout_mask(m->pool, m->seed, m->dropout_counter, b + 1, CNN14_DROP_BLOCK, mask,
			                (size_t)c * bp->pout);
		}
		nn_affine_relu_pool(m->pool, c, batch, bp->h, bp->w, bp->k, bp->z2, bnf2 + 2 * c, bnf2 + 3 * c,
		                      mask, (float)(1 / (1 - CNN14_DROP_BLOCK)), bp->out);
	}
	pl->dropout = dropout;

	head_forward(m, batch, dropout);
	const int k = m->classes;
	nn_log_softmax(batch, k, pl->logits, pl->logits);
	if (logp)
		memcpy(logp, pl->logits, n * (size_t)k * sizeof *logp);
	m->have_forward = train;
	m->embedding_batch = dropout ? 0 : batch;
	pl->batch_stats = batch_stats;
	return CNN14_OK;
}

int cnn14_embedding_size(const cnn14 *m)
{
	return m->ch[CNN14_BLOCKS - 1];
}

int cnn14_embedding(cnn14 *m, float *out)
{
	if (!m->embedding_batch)
		return cnn14_fail(m, CNN14_ERR_STATE, "no embedding: it exists after a forward pass without dropout");
	memcpy(out, m->plan.hd, (size_t)m->embedding_batch * (size_t)cnn14_embedding_size(m) * sizeof *out);
	return CNN14_OK;
}

/* ---- backward ---- */

/* Where the gradient of parameter i (with its partner j, or -1: the two
 * are written by one kernel) goes: its place in the gradient array, or
 * under cnn14_backward_step the scratch, i first, j after it. */
static float *grad_out(cnn14 *m, int i, int j, bool second)
{
	if (!m->fused)
		return cnn14_pgrad(m, second ? j : i);
	return second ? m->gscratch + m->t[i].numel : m->gscratch;
}

/* acc flag for the gradients of i (and j, or -1) written by one kernel: 0
 * when they are logically zero, and always under cnn14_backward_step. */
static int grad_acc(cnn14 *m, int i, int j)
{
	if (m->fused)
		return 0;
	if (j < 0) {
		int acc = !m->t[i].grad_zero;
		m->t[i].grad_zero = false;
		return acc;
	}
	if (m->t[i].grad_zero && m->t[j].grad_zero) {
		m->t[i].grad_zero = m->t[j].grad_zero = false;
		return 0;
	}
	materialise_grad(m, i);
	materialise_grad(m, j);
	return 1;
}

static void step_tensors(cnn14 *m, const cnn14_sgd *opt, const int *idx, float *const *grads, int n);

/* Under cnn14_backward_step: the step of i (and j) from the scratch, now
 * that their gradients are final and the layer no longer needs them. */
static void grad_done(cnn14 *m, int i, int j)
{
	if (!m->fused)
		return;
	int idx[2] = {i, j};
	float *g[2] = {grad_out(m, i, j, false), grad_out(m, i, j, true)};
	step_tensors(m, m->fused, idx, g, j < 0 ? 1 : 2);
}

static void bn_backward(cnn14 *m, const bn_ref *bn, const block_plan *bp, int k, const float *bnf,
                        const float *z, const float *dy, float *dz)
{
	/* dz may be z: the gradient overwrites the pre-BN activation in place */
	const int c = bn->c;
	int acc = grad_acc(m, bn->w, bn->b);
	nn_bn_relu_backward(m->pool, c, m->plan.batch, bp->h, bp->w, k, z, bnf, bnf + c, cnn14_pdata(m, bn->w),
	                      bnf + 2 * c, bnf + 3 * c, dy, m->plan.batch_stats, m->plan.gtmp, dz,
	                      grad_out(m, bn->w, bn->b, false), grad_out(m, bn->w, bn->b, true), acc);
	grad_done(m, bn->w, bn->b);
}

int cnn14_backward(cnn14 *m, const int *labels, const float *class_weights, double *loss)
{
	m->err[0] = 0;
	if (!m->have_forward)
		return cnn14_fail(m, CNN14_ERR_STATE, "backward without a training forward pass");
	cnn14_plan *pl = &m->plan;
	const int batch = pl->batch, k = m->classes, c6 = m->ch[CNN14_BLOCKS - 1];
	const size_t n = (size_t)batch;
	for (int i = 0; i < batch; i++)
		if (labels[i] < 0 || labels[i] >= k)
			return cnn14_fail(m, CNN14_ERR_ARG, "label %d of sample %d: not a class of %d", labels[i], i + 1, k);
	double l = nn_weighted_nll(batch, k, pl->logits, labels, class_weights, pl->dlogits);
	if (loss)
		*loss = l;
	const float half = (float)(1 / (1 - CNN14_DROP_HEAD));
	int acc = grad_acc(m, m->fc_w, m->fc_b);
	nn_linear_backward(batch, c6, k, pl->hd, cnn14_pdata(m, m->fc_w), pl->dlogits,
	                     grad_out(m, m->fc_w, m->fc_b, false), grad_out(m, m->fc_w, m->fc_b, true), acc, pl->dh);
	grad_done(m, m->fc_w, m->fc_b);
	if (pl->dropout)
		nn_dropout_apply(n * (size_t)c6, pl->dh, pl->mask_h, half);
	for (size_t i = 0; i < n * (size_t)c6; i++)
		if (!(pl->h1[i] > 0))
			pl->dh[i] = 0;
	const bool body = m->finetune == CNN14_FINETUNE_ALL;
	acc = grad_acc(m, m->fc1_w, m->fc1_b);
	nn_linear_backward(batch, c6, c6, pl->feat, cnn14_pdata(m, m->fc1_w), pl->dh,
	                     grad_out(m, m->fc1_w, m->fc1_b, false), grad_out(m, m->fc1_w, m->fc1_b, true), acc,
	                     body ? pl->dfeat : NULL);
	grad_done(m, m->fc1_w, m->fc1_b);
	if (!body)
		return CNN14_OK;
	if (pl->dropout)
		nn_dropout_apply(n * (size_t)c6, pl->dfeat, pl->mask_feat, half);
	block_plan *b6 = &pl->blk[CNN14_BLOCKS - 1];
	nn_head_backward(c6, batch, b6->h, b6->w, pl->dfeat, pl->argmax, pl->s2);
	for (int b = CNN14_BLOCKS - 1; b >= 0; b--) {
		block_plan *bp = &pl->blk[b];
		const block_ref *br = &m->blk[b];
		const int c = m->ch[b];
		if (pl->dropout)
			nn_dropout_apply((size_t)c * bp->pout, pl->s2, bp->mask, (float)(1 / (1 - CNN14_DROP_BLOCK)));
		/* the gradients w.r.t. z2 and z1 replace them (one buffer of the
		 * largest block's size less); s2 carries the rest */
		bn_backward(m, &br->bn2, bp, bp->k, bp->bnf + 4 * c, bp->z2, pl->s2, bp->z2);
		acc = grad_acc(m, br->conv2, -1);
		nn_conv_backward(m->pool, &bp->cv2, &pl->ws, bp->a1, cnn14_pdata(m, br->conv2), bp->z2,
		                   grad_out(m, br->conv2, -1, false), acc, pl->s2, bp->keep2);
		grad_done(m, br->conv2, -1);
		bn_backward(m, &br->bn1, bp, 1, bp->bnf, bp->z1, pl->s2, bp->z1);
		acc = grad_acc(m, br->conv1, -1);
		nn_conv_backward(m->pool, &bp->cv1, &pl->ws, bp->x, cnn14_pdata(m, br->conv1), bp->z1,
		                   grad_out(m, br->conv1, -1, false), acc, pl->s2, bp->keep1);
		grad_done(m, br->conv1, -1);
	}
	m->have_forward = false; /* z1 and z2 are gone: another backward needs another forward */
	/* bn0: only its own parameters need gradients */
	acc = grad_acc(m, m->bn0.w, m->bn0.b);
	nn_colbn_backward(n * (size_t)pl->frames, CNN14_N_MELS, pl->xin, pl->bn0f, pl->bn0f + CNN14_N_MELS,
	                    cnn14_pdata(m, m->bn0.w), pl->s2, pl->batch_stats, NULL,
	                    grad_out(m, m->bn0.w, m->bn0.b, false), grad_out(m, m->bn0.w, m->bn0.b, true), acc);
	grad_done(m, m->bn0.w, m->bn0.b);
	return CNN14_OK;
}

void cnn14_zero_grad(cnn14 *m)
{
	for (size_t i = 0; i < m->ntensors; i++)
		if (m->t[i].kind == CT_PARAM)
			m->t[i].grad_zero = true;
}

/* ---- SGD ---- */

typedef struct {
	cnn14 *m;
	const cnn14_sgd *opt;
	const int *idx;       /* the parameters to update */
	float *const *grads;  /* and their gradients */
	int n;
} step_ctx;

SER_KERNEL static void step_task(void *arg, int tid, int nth)
{
	const step_ctx *s = arg;
	cnn14 *m = s->m;
	const float lr = (float)s->opt->lr, mom = (float)s->opt->momentum, wd = (float)s->opt->weight_decay;
	const bool nesterov = s->opt->nesterov;
	for (int k = 0; k < s->n; k++) {
		ctensor *t = &m->t[s->idx[k]];
		float *p = m->param + t->off, *buf = m->mom + t->off;
		const float *g = s->grads[k];
		size_t lo, hi;
		nn_split(t->numel, 16, tid, nth, &lo, &hi);
		for (size_t j = lo; j < hi; j++) {
			float d = g[j];
			if (wd != 0)
				d = d + wd * p[j];
			if (mom != 0) {
				float bj = t->has_buf ? buf[j] * mom + d : d;
				buf[j] = bj;
				d = nesterov ? d + mom * bj : bj;
			}
			p[j] = p[j] + -lr * d;
		}
	}
}

static void step_tensors(cnn14 *m, const cnn14_sgd *opt, const int *idx, float *const *grads, int n)
{
	step_ctx s = {m, opt, idx, grads, n};
	nn_pool_run(m->pool, step_task, &s);
	if (opt->momentum != 0)
		for (int k = 0; k < n; k++)
			m->t[idx[k]].has_buf = true;
}

static int check_sgd(cnn14 *m, const cnn14_sgd *opt)
{
	if (!(opt->lr >= 0) || !(opt->momentum >= 0) || !(opt->weight_decay >= 0))
		return cnn14_fail(m, CNN14_ERR_ARG, "SGD settings must be non-negative");
	if (opt->nesterov && opt->momentum <= 0)
		return cnn14_fail(m, CNN14_ERR_ARG, "Nesterov momentum requires a momentum");
	return CNN14_OK;
}

int cnn14_step(cnn14 *m, const cnn14_sgd *opt)
{
	m->err[0] = 0;
	int rc = check_sgd(m, opt);
	if (rc)
		return rc;
	int idx[CNN14_MAX_TENSORS], n = 0;
	float *grads[CNN14_MAX_TENSORS];
	for (size_t i = 0; i < m->ntensors; i++)
		if (trainable(m, (int)i)) {
			materialise_grad(m, (int)i);
			idx[n] = (int)i;
			grads[n++] = cnn14_pgrad(m, (int)i);
		}
	cnn14_weights_changed(m);
	step_tensors(m, opt, idx, grads, n);
	m->steps++;
	return CNN14_OK;
}

int cnn14_backward_step(cnn14 *m, const int *labels, const float *class_weights, double *loss,
                        const cnn14_sgd *opt)
{
	m->err[0] = 0;
	int rc = check_sgd(m, opt);
	if (rc)
		return rc;
	cnn14_weights_changed(m);
	/* the largest parameter pair a kernel writes at once (grad_out): a weight
	 * and the bias that follows it in the table, or a weight alone */
	size_t need = 0;
	for (size_t i = 0; i < m->ntensors; i++)
		if (trainable(m, (int)i)) {
			size_t pair = m->t[i].numel;
			if (i + 1 < m->ntensors && trainable(m, (int)i + 1))
				pair += m->t[i + 1].numel;
			need = pair > need ? pair : need;
		}
	if (need > m->gscratch_len) {
		float *g = sv_aligned_alloc(need * sizeof *g);
		if (!g)
			return cnn14_fail(m, CNN14_ERR_NOMEM, "out of memory for a gradient of %zu values", need);
		free(m->gscratch);
		m->gscratch = g;
		m->gscratch_len = need;
	}
	m->fused = opt;
	rc = cnn14_backward(m, labels, class_weights, loss);
	m->fused = NULL;
	if (rc)
		return rc;
	m->steps++;
	return CNN14_OK;
}
