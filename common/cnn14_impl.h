/* cnn14_impl.h - the inside of a cnn14 model, shared by cnn14.c and
 * cnn14_io.c only (not part of the API). */
#ifndef SERTOOLS_CNN14_IMPL_H
#define SERTOOLS_CNN14_IMPL_H

#include "cnn14.h"
#include "nn_layers.h"
#include "nn_pool.h"

#define CNN14_BLOCKS 6
#define CNN14_MAX_TENSORS 96
#define CNN14_NAME_MAX 48
#define CNN14_BN_EPS 1e-5
#define CNN14_BN_MOMENTUM 0.1
#define CNN14_DROP_BLOCK 0.2
#define CNN14_DROP_HEAD 0.5

enum { CT_PARAM, CT_BUFFER, CT_INT64 };

typedef struct {
	char name[CNN14_NAME_MAX];
	int ndim;
	int64_t shape[4];
	size_t numel, off;  /* offset into param, buf or nbt by kind */
	int kind;
	bool grad_zero;     /* gradient logically zero (cleared lazily) */
	bool has_buf;       /* momentum buffer exists (SGD has stepped it) */
} ctensor;

typedef struct {
	int w, b, rm, rv, nbt, c;  /* tensor indices; channels */
} bn_ref;

typedef struct {
	int conv1, conv2;
	bn_ref bn1, bn2;
} block_ref;

typedef struct {
	int h, w, k;             /* input image, pooling */
	size_t p, pout;          /* positions in, out (whole batch) */
	nn_conv cv1, cv2;
	float *x, *z1, *a1, *z2, *out;
	float *bnf;              /* bn1 then bn2: mean, invstd, scale, shift */
	uint8_t *mask;           /* dropout after the block */
	float *keep1, *keep2;    /* im2col kept for the backward pass (whole-batch convs) */
} block_plan;

typedef struct {
	void *p;
	size_t bytes;
} plan_slot;

typedef struct {
	bool ready, train, dropout, batch_stats;
	int batch, frames;
	float *xin, *bn0f;
	block_plan blk[CNN14_BLOCKS];
	float *feat, *h1, *hd, *logits;
	int *argmax;
	uint8_t *mask_feat, *mask_h;
	float *s2;               /* the gradient flowing down between layers */
	float *gtmp;             /* BN backward's per-thread channel scratch */
	float *dlogits, *dh, *dfeat;
	nn_conv_ws ws;
	plan_slot *slots;        /* every buffer above, kept across plans (plan_alloc) */
	size_t nslots, nused, cap;
} cnn14_plan;

struct cnn14 {
	int classes, width_div, ch[CNN14_BLOCKS];
	int threads;
	nn_pool *pool;
	char err[CNN14_ERRLEN];
	ctensor t[CNN14_MAX_TENSORS];
	size_t ntensors, nparam, nbuf, nnbt;
	float *param, *grad, *mom, *buf;
	int64_t nbt[16];
	bn_ref bn0;
	block_ref blk[CNN14_BLOCKS];
	int fc1_w, fc1_b, fc_w, fc_b, body_end;
	char **class_names;
	sv *params;              /* header params besides "model" */
	sv *loaded_header;       /* of the checkpoint loaded, for the history */
	uint64_t seed, dropout_counter, steps;
	cnn14_finetune finetune;
	bool freeze_bn;
	bool have_forward;
	const cnn14_sgd *fused;   /* during cnn14_backward_step: its settings */
	float *gscratch;          /* cnn14_backward_step's gradients, one parameter (pair) at a time */
	size_t gscratch_len;
	int embedding_batch;      /* samples of the last forward whose fc1 output (plan.hd) is readable, or 0 */
	cnn14_plan plan;
	/* the Winograd transform of each convolution's kernels for inference
	 * plans (nn_conv_plan_inference), or NULL: made by the first forward
	 * that reads it, freed when the weights change (cnn14_weights_changed),
	 * so one that exists is always current */
	float *ahead[CNN14_BLOCKS][2];
};

int cnn14_fail(cnn14 *m, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
float *cnn14_pdata(cnn14 *m, int i);
float *cnn14_pgrad(cnn14 *m, int i);
int64_t *cnn14_pnbt(cnn14 *m, int i);
void cnn14_plan_free(cnn14 *m);
/* Every writer of the weights calls this: it frees the kernels transformed
 * ahead (they are made again by the next inference forward), so no forward
 * uses the transform of older weights, and training never holds them. */
void cnn14_weights_changed(cnn14 *m);

#endif
