/*
 * cnn14.h - PANNs' Cnn14 in C: forward, backward and SGD, equal to PyTorch.
 *
 * The network (Kong et al., PANNs, 16 kHz variant) reads (batch, frames,
 * n_mels = 64) log-Mel features:
 *   bn0 (BatchNorm over the 64 mel bins)
 *   6 x ConvBlock: conv3x3 -> BN -> ReLU -> conv3x3 -> BN -> ReLU
 *                  -> avgpool 2x2 (none in block 6) -> dropout 0.2
 *       channels 64, 128, 256, 512, 1024, 2048 (each divided by width_div)
 *   mean over mel; max + mean over time; dropout 0.5; fc1 + ReLU;
 *   dropout 0.5; fc_transfer (-> classes); log-softmax.
 * No SpecAugment, no mixup.  Parameter names and shapes are PANNs' state
 * dict (bn0.*, conv_block1.conv1.weight, conv_block1.bn1.running_mean, ...,
 * fc1.*), so released weights map one to one; the output layer is
 * fc_transfer.  Full width with 3 classes: 79,679,939 parameters.
 *
 * Semantics are PyTorch's: BatchNorm in training mode normalises with the
 * biased batch variance over (batch, time, frequency) and updates the
 * running mean and the unbiased running variance with momentum 0.1, eps
 * 1e-5, num_batches_tracked += 1; in evaluation it uses the running
 * statistics.  Dropout keeps a unit with probability 1-p and scales it by
 * 1/(1-p); its masks come from a counter-based generator (seed, counter),
 * so a run is reproducible and resumable and does not depend on the thread
 * count.  The loss is the class-weighted NLL with PyTorch's mean reduction;
 * the optimiser is torch.optim.SGD (momentum buffer = gradient on the first
 * step; Nesterov: p -= lr*(g + m*buf); weight decay added to g).
 *
 * Inputs need at least CNN14_MIN_FRAMES frames (five 2x2 poolings); the
 * caller pads shorter ones.
 *
 * Threads: the model runs its own team of threads (cnn14_set_threads;
 * default: the online CPUs) and calls OpenBLAS single-threaded from each
 * of them; cnn14_new therefore sets OpenBLAS to one thread for the whole
 * process (openblas_set_num_threads(1)), so that the two never
 * oversubscribe the cores.  Work is cut into units that depend on the
 * layer only and every unit writes its own part of a result (partial
 * weight gradients are summed in a fixed order), so a run is bitwise
 * reproducible for a seed whatever the thread count and scheduling.
 *
 * Speed: convolutions are im2col + sgemm, over chunks of about 1024
 * positions for the large early layers and over the whole batch for the
 * small late ones (those of at most 256 output channels keep the im2col
 * matrix for the backward pass); the first layer (one input channel) is
 * computed directly; wide layers with enough 2x2 tiles run all three
 * passes by Winograd's minimal filtering (nn_conv.h says which).  ReLU,
 * pooling and dropout are fused with the BatchNorm affine into one pass
 * after the statistics; the backward of all four takes two passes and
 * writes its gradient over the saved input.
 *
 * Memory for a batch shape is planned at the first forward pass with that
 * shape (batch, frames, training or not) and kept; a new shape replans.
 * An inference-only model touches no gradient memory (gradients start
 * logically zero and are cleared when first read) and keeps no activation
 * for a backward pass: at full width a forward of 8 x 300 frames peaks at
 * 537 MB resident instead of 937 MB (the weights alone are 319 MB).  An
 * inference forward (a plan of its own, never a training plan's) keeps the
 * Winograd transform of the kernels it convolves with, made once instead
 * of at every call, until the weights change (a step, a load, or any
 * cnn14_tensor_at, whose pointers may write): 16/9 of those weights but
 * for the widest layers' (nn_conv.c, WINOGRAD_AHEAD_MAX), at full width
 * 134 MB more (717 MB for 8 x 300 frames; PyTorch's inference takes 971
 * MB) for 1.13x the speed; a training plan frees it.
 *
 * Errors: functions return CNN14_OK (0) or a negative cnn14_status;
 * cnn14_error(model) gives the detailed message (e.g. which tensor of a
 * checkpoint differs), cnn14_strerror(code) the generic one.  A model is
 * not safe for concurrent use from several threads.
 */
#ifndef SERTOOLS_CNN14_H
#define SERTOOLS_CNN14_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "value.h"

#define CNN14_N_MELS 64
#define CNN14_MIN_FRAMES 32
#define CNN14_ARCH "Cnn14"

typedef enum {
	CNN14_OK = 0,
	CNN14_ERR_NOMEM = -1,
	CNN14_ERR_ARG = -2,      /* bad configuration or argument (e.g. class index out of range) */
	CNN14_ERR_SHORT = -3,    /* fewer than CNN14_MIN_FRAMES frames */
	CNN14_ERR_STATE = -4,    /* call out of order (e.g. backward without a training forward) */
	CNN14_ERR_IO = -5,       /* reading or writing a stream failed */
	CNN14_ERR_FORMAT = -6,   /* not a Cnn14 checkpoint / optimiser state */
	CNN14_ERR_MISMATCH = -7, /* a tensor's name, shape or dtype differs from the model's */
} cnn14_status;

const char *cnn14_strerror(int code);

typedef struct {
	int classes;     /* >= 1 */
	int width_div;   /* 1, 2, 4, 8, 16, 32 or 64: channels are 64/width_div, ..., 2048/width_div */
	uint64_t seed;   /* initialisation and dropout */
	int threads;     /* 0: nn_cpu_count(); at most NN_MAX_THREADS */
} cnn14_config;

typedef struct cnn14 cnn14;

/* A freshly initialised model: Xavier-uniform conv and linear weights,
 * zero biases, BN weight 1, bias 0, running mean 0, variance 1.  NULL on
 * failure with a message in err (CNN14_ERRLEN bytes) when err is not NULL. */
#define CNN14_ERRLEN 512
cnn14 *cnn14_new(const cnn14_config *cfg, char *err);
void cnn14_free(cnn14 *m);
const char *cnn14_error(const cnn14 *m);

int cnn14_classes(const cnn14 *m);
int cnn14_width_div(const cnn14 *m);
/* Class names (NULL entries for unnamed classes "0", "1", ...). */
const char *cnn14_class_name(const cnn14 *m, int k);
int cnn14_set_class_names(cnn14 *m, const char *const *names, int n);
int cnn14_set_threads(cnn14 *m, int threads);
int cnn14_threads(const cnn14 *m);

/* ---- checkpoints (formats/checkpoint.md) ---- */

/* A model built from a checkpoint's header (classes, class names, width
 * divisor) and loaded from it.  threads 0: nn_cpu_count(). */
cnn14 *cnn14_open(const char *path, int threads, char *err);

enum {
	/* Load the body only (bn0, conv blocks, fc1): the output layer keeps its
	 * current (fresh) values, and the checkpoint's head (fc_transfer, or
	 * PANNs' fc_audioset) may have any class count or be absent.  This is
	 * how a model with a new head starts from another task's weights. */
	CNN14_LOAD_BODY = 1 << 0,
};
/* Whether a checkpoint tensor belongs to the output layer: fc_transfer.*
 * (ours) or fc_audioset.* (the released PANNs weights).  The one rule that
 * the loader and wdist share. */
bool cnn14_is_output_layer(const char *tensor_name);
/* Loads the tensors of the checkpoint at path ("-": stdin): every name must
 * be known and have the model's shape and dtype, and every tensor of the
 * model (of the body, with CNN14_LOAD_BODY) must be present; the first
 * difference is named in cnn14_error.  Header params other than "model" are
 * kept and written again by cnn14_save.  On error the model may be partly
 * loaded. */
int cnn14_load(cnn14 *m, const char *path, unsigned flags);
/* Writes the checkpoint atomically (path "-" or NULL: stdout).  The header
 * is derived from the loaded checkpoint's (if any): params.model describes
 * this model; cnn14_params(m) holds the other params (e.g. "training"). */
int cnn14_save(cnn14 *m, const char *path, const char *producer, int argc, char **argv);
/* The params written beside "model" (never NULL): set e.g.
 * sv_set(cnn14_params(m), "training", map) before cnn14_save. */
sv *cnn14_params(cnn14 *m);

/* ---- the optimiser state (formats/checkpoint.md), for exact resume ---- */

typedef struct {
	double lr, momentum, weight_decay;
	bool nesterov;
} cnn14_sgd;

/* Momentum buffers, step count and dropout generator state, as a stream of
 * its own (conventionally CHECKPOINT.opt). */
int cnn14_save_optimizer(cnn14 *m, const char *path, const char *producer, int argc, char **argv);
int cnn14_load_optimizer(cnn14 *m, const char *path);
/* Optimiser steps taken. */
uint64_t cnn14_steps(const cnn14 *m);
/* Restarts the dropout generator from seed (cnn14_new uses cfg->seed). */
void cnn14_set_seed(cnn14 *m, uint64_t seed);

/* ---- training and inference ---- */

enum {
	CNN14_TRAIN = 1 << 0,      /* training mode: batch-statistics BN (+ running stats update), dropout */
	CNN14_NO_DROPOUT = 1 << 1, /* with CNN14_TRAIN: dropout off (testing against references) */
};

/* x: batch x frames x 64 floats (sample-major, frames then mel bins);
 * logp: batch x classes log-probabilities out (may be NULL).  A training
 * forward keeps what the backward pass needs; any other forward pass
 * before cnn14_backward discards it. */
int cnn14_forward(cnn14 *m, const float *x, int batch, int frames, unsigned mode, float *logp);
/* After a training forward: the class-weighted NLL of labels (class_weights
 * NULL: all 1) into *loss (may be NULL), and its gradients added to the
 * trainable parameters' gradients (PyTorch accumulation semantics).  When
 * it reaches the convolutions it uses up the forward's saved activations:
 * a second backward needs a second training forward (CNN14_ERR_STATE). */
int cnn14_backward(cnn14 *m, const int *labels, const float *class_weights, double *loss);
void cnn14_zero_grad(cnn14 *m);

/* PANNs' "embedding" output of the last forward pass: ReLU(fc1(features)),
 * cnn14_embedding_size(m) floats per sample (2048 at full width), copied
 * to out (batch x size, in the batch's order).  Defined only after a
 * forward pass without dropout (evaluation mode, or CNN14_NO_DROPOUT);
 * CNN14_ERR_STATE otherwise. */
int cnn14_embedding_size(const cnn14 *m);
int cnn14_embedding(cnn14 *m, float *out);
/* One SGD step on the trainable parameters. */
int cnn14_step(cnn14 *m, const cnn14_sgd *opt);
/* cnn14_backward then cnn14_step from zero gradients, the same values bit
 * for bit, with less memory: each parameter is updated as soon as its
 * gradient is known, from a scratch the size of the largest parameter, so
 * the gradient array is never touched (at full width the step's peak is
 * 1 parameter of 151 MB instead of all 319 MB of gradients).  The gradient
 * array is left as it was: cnn14_tensor_at's gradients are not this step's.
 * What training loops call; the separate calls remain for accumulation and
 * for reading gradients. */
int cnn14_backward_step(cnn14 *m, const int *labels, const float *class_weights, double *loss,
                        const cnn14_sgd *opt);

typedef enum {
	CNN14_FINETUNE_ALL = 0,
	CNN14_FINETUNE_LINEAR = 1, /* only fc1 and fc_transfer are trained */
} cnn14_finetune;
/* Which parameters train.  freeze_bn_stats false: BatchNorm in training
 * forwards behaves as under PyTorch's model.train() (batch statistics,
 * running statistics updated) even for frozen layers; true: every BN layer
 * behaves as under bn.eval() during training (running statistics used for
 * normalisation and left unchanged, num_batches_tracked too), like a fully
 * frozen feature extractor. */
void cnn14_set_finetune(cnn14 *m, cnn14_finetune mode, bool freeze_bn_stats);

/* ---- parameters, in state-dict order ---- */

typedef struct {
	const char *name;       /* e.g. "conv_block1.conv1.weight" */
	int ndim;               /* 0..4 */
	int64_t shape[4];
	bool trainable;         /* false: BN running statistics, num_batches_tracked */
	bool is_int64;          /* num_batches_tracked */
	float *data;            /* NULL when is_int64 */
	int64_t *data_i64;      /* NULL unless is_int64 */
	float *grad;            /* trainable tensors: their gradient; else NULL */
	size_t numel;
} cnn14_tensor;

size_t cnn14_num_tensors(const cnn14 *m);
/* i < cnn14_num_tensors(m); the pointers stay valid until cnn14_free (a
 * gradient cleared by cnn14_zero_grad is zeroed here when first read). */
cnn14_tensor cnn14_tensor_at(cnn14 *m, size_t i);
/* Index of a tensor by name, or -1. */
long cnn14_tensor_find(const cnn14 *m, const char *name);
/* The number of trainable parameters (79,679,939 at full width, 3 classes). */
uint64_t cnn14_num_params(const cnn14 *m);
/* Forward multiply-adds of one sample of the given length, x2 (FLOPs). */
double cnn14_forward_flops(const cnn14 *m, int frames);

#endif
