/* cnn-predict - apply a trained Cnn14 checkpoint to log-Mel streams, labelled or not. */
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "cli.h"
#include "cnn14.h"
#include "evaluate.h"
#include "feature_params.h"
#include "nn_pool.h"
#include "opts.h"
#include "stream.h"

static const char *prog = "cnn-predict";

static const char usage[] =
	"Usage: cnn-predict [OPTION]... CKPT [STREAM]\n"
	"Apply the checkpoint CKPT to every item of a log-Mel stream (melspec output;\n"
	"default stdin), labelled or not: each item is scored whole, alone, in\n"
	"evaluation mode, as it arrives (memory: one item).  Writes one TSV line per\n"
	"item: key, predicted class, then the posterior of each class (header line\n"
	"'key predicted p_NAME...').  With --stream, an item stream instead: per item\n"
	"the tensor 'posteriors' (in the order of params.predict.classes) and the\n"
	"field 'predicted'; the item's other fields (e.g. a label) are kept.\n"
	"\n";

static const char epilog[] =
	"\n"
	"Example (one recording to a prediction):\n"
	"  audio-read talk.wav | melspec | cnn-predict runs/all/best.ckpt\n"
	"Example (embeddings of a corpus, for other classifiers):\n"
	"  cnn-predict --stream --embedding best.ckpt feats.msgpack > emb.msgpack\n";

typedef struct {
	const char *ckpt, *input, *output;
	bool stream, embedding, pad_short, progress, quiet;
	int threads;
	size_t max_record;
} options;

#define F(field) offsetof(options, field)
static const opt_desc options_table[] = {
	{"output", 'o', OPT_STRING, F(output), .arg = "FILE", .help = "write to FILE atomically (default stdout)"},
	{"stream", 0, OPT_FLAG, F(stream), .help = "write an item stream instead of TSV"},
	{"embedding", 0, OPT_FLAG, F(embedding),
	 .help = "with --stream: also the tensor 'embedding', PANNs'\nembedding output ReLU(fc1), 2048 values at full width"},
	{"pad-short", 0, OPT_FLAG, F(pad_short),
	 .help = "pad items shorter than 32 frames (0.32 s) with the\nlog-Mel of digital silence (else they are an error)"},
	OPT_MODEL_THREADS(options),
	OPT_MAX_RECORD(options),
	OPT_PROGRESS_QUIET(options),
	OPT_END,
};
#undef F

static const opts_spec spec = {"cnn-predict", options_table, usage, epilog};

static void parse_args(int argc, char **argv, options *o)
{
	memset(o, 0, sizeof *o);
	opts_defaults(&spec, o);
	int first = opts_parse(&spec, o, argc, argv, NULL);
	opts_ckpt_and_stream(&spec, first, argc, argv, &o->ckpt, &o->input);
	if (o->embedding && !o->stream)
		cli_usage_error(prog, "--embedding: embeddings are tensors, they need --stream");
}

/* The predictor's state, SoX-effect style: start, flow per item, stop. */
typedef struct {
	const options *o;
	cnn14 *model;
	st_reader *in;
	st_writer *out;          /* --stream */
	atomic_output tsv;       /* otherwise */
	int classes, emb_size;
	const char **names;
	char (*numbers)[24];     /* "0", "1", ... for unnamed classes */
	float pad_value;
	float *x;                /* a short item padded to the minimum length */
	float *logp, *emb;       /* the current item's log-posteriors, embedding */
	st_item item, result;
	cli_progress progress;
} predictor;

static void predictor_free(predictor *p)
{
	if (p->out)
		st_writer_abort(p->out);
	atomic_output_abort(&p->tsv);
	if (p->in)
		st_reader_close(p->in);
	cnn14_free(p->model);
	st_item_free(&p->item);
	st_item_free(&p->result);
	free(p->names);
	free(p->numbers);
	free(p->x);
	free(p->logp);
	free(p->emb);
	memset(p, 0, sizeof *p);
}

static predictor held; /* released at exit, so that every error path frees as success does */
static void release(void)
{
	predictor_free(&held);
}

static void class_names(predictor *p)
{
	p->names = malloc((size_t)p->classes * sizeof *p->names);
	p->numbers = malloc((size_t)p->classes * sizeof *p->numbers);
	if (!p->names || !p->numbers)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	for (int k = 0; k < p->classes; k++) {
		snprintf(p->numbers[k], sizeof p->numbers[k], "%d", k);
		const char *n = cnn14_class_name(p->model, k);
		p->names[k] = n ? n : p->numbers[k];
	}
}

static void open_output(predictor *p, int argc, char **argv)
{
	char err[ST_ERRLEN];
	if (!p->o->stream) {
		if (atomic_output_open(&p->tsv, p->o->output, err, sizeof err))
			cli_die(prog, EXIT_RUNTIME, "%s", err);
		fputs("key\tpredicted", p->tsv.f);
		for (int k = 0; k < p->classes; k++)
			fprintf(p->tsv.f, "\tp_%s", p->names[k]);
		fputc('\n', p->tsv.f);
		return;
	}
	/* params.predict: the model's class names (the posteriors' order) and
	 * checkpoint; params.classes, the labels' names if any, stay as they are */
	sv *h = st_header_derive(st_reader_header(p->in), prog, argc, argv);
	sv *pred = sv_map();
	if (!h || !pred || sv_set(pred, "checkpoint", sv_str(p->o->ckpt)) ||
	    sv_set(pred, "classes", sv_strlist(p->names, (size_t)p->classes)) ||
	    sv_set(pred, "embedding", sv_bool(p->o->embedding))) {
		sv_free(pred);
		pred = NULL;
	}
	if (!pred || sv_set(st_header_params(h), "predict", pred))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	p->out = st_writer_open(p->o->output, h, err);
	sv_free(h);
	if (!p->out)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
}

static void predictor_start(predictor *p, const options *o, int argc, char **argv)
{
	char err[CNN14_ERRLEN > ST_ERRLEN ? CNN14_ERRLEN : ST_ERRLEN];
	p->o = o;
	if (st_item_init(&p->item) || st_item_init(&p->result))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	p->model = cnn14_open(o->ckpt, o->threads, err);
	if (!p->model)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	p->in = st_reader_open(o->input, o->max_record, ST_READ_FINITE, err);
	if (!p->in)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	const sv *params = st_reader_params(p->in);
	const sv *mel = sv_get(params, "melspec");
	if (!mel)
		cli_die(prog, EXIT_RUNTIME, "%s: no params.melspec in the header: is it melspec's output?",
		        st_reader_name(p->in));
	char msg[2048];
	if (!feature_params_match(mel, sv_get(cnn14_params(p->model), "melspec"), "stream", "checkpoint", msg,
	                          sizeof msg))
		cli_die(prog, EXIT_RUNTIME, "%s: melspec settings differ from those %s was trained on: %s",
		        st_reader_name(p->in), o->ckpt, msg);
	p->classes = cnn14_classes(p->model);
	p->emb_size = cnn14_embedding_size(p->model);
	p->pad_value = evaluate_silence_value(params);
	p->logp = malloc((size_t)p->classes * sizeof *p->logp);
	p->emb = malloc((size_t)p->emb_size * sizeof *p->emb);
	if (!p->logp || !p->emb)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	class_names(p);
	open_output(p, argc, argv);
	cli_progress_init(&p->progress, prog, o->progress, o->quiet);
}

/* The item's log-Mel as network input: the tensor itself, or a copy padded
 * to the minimum length when it is shorter and padding is allowed.  Its
 * frame count goes to *frames_out. */
static const float *input_of(predictor *p, const st_item *it, int *frames_out)
{
	const st_tensor *t = st_item_tensor(it, "logmel");
	const char *name = st_reader_name(p->in);
	uint64_t n = st_reader_items(p->in);
	if (!t || t->dtype != ST_F32 || t->ndim != 2 || t->shape[1] != CNN14_N_MELS)
		cli_die(prog, EXIT_RUNTIME, "%s: item %llu ('%s'): no float32 tensor 'logmel' of shape (frames, %d)",
		        name, (unsigned long long)n, it->key, CNN14_N_MELS);
	int64_t frames = t->shape[0];
	if (frames > INT32_MAX / CNN14_N_MELS)
		cli_die(prog, EXIT_RUNTIME, "%s: item %llu ('%s'): %lld frames is too long", name, (unsigned long long)n,
		        it->key, (long long)frames);
	if (frames >= CNN14_MIN_FRAMES) {
		*frames_out = (int)frames;
		return t->data;
	}
	if (!p->o->pad_short)
		cli_die(prog, EXIT_RUNTIME, "%s: item %llu ('%s'): %lld frames, the network needs at least %d (pad it: --pad-short)",
		        name, (unsigned long long)n, it->key, (long long)frames, CNN14_MIN_FRAMES);
	/* the padded copy has a fixed size: CNN14_MIN_FRAMES x CNN14_N_MELS */
	const size_t need = (size_t)CNN14_MIN_FRAMES * CNN14_N_MELS, have = (size_t)frames * CNN14_N_MELS;
	if (!p->x && !(p->x = malloc(need * sizeof *p->x)))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	memcpy(p->x, t->data, have * sizeof *p->x);
	for (size_t i = have; i < need; i++)
		p->x[i] = p->pad_value;
	*frames_out = CNN14_MIN_FRAMES;
	return p->x;
}

static void write_tsv(predictor *p, const char *key, int best)
{
	FILE *f = p->tsv.f;
	fprintf(f, "%s\t%s", key, p->names[best]);
	for (int k = 0; k < p->classes; k++)
		fprintf(f, "\t%.6g", exp(p->logp[k]));
	fputc('\n', f);
}

static void write_item(predictor *p, const st_item *it, int best)
{
	st_item *r = &p->result;
	if (st_item_copy(r, it))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	st_item_remove_tensor(r, "logmel");
	int64_t shape[1] = {p->classes};
	st_tensor *post = st_item_add_tensor(r, "posteriors", ST_F32, 1, shape, NULL);
	if (!post || st_item_set_field(r, "predicted", sv_str(p->names[best])))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	for (int k = 0; k < p->classes; k++)
		((float *)post->data)[k] = expf(p->logp[k]);
	if (p->o->embedding) {
		shape[0] = p->emb_size;
		if (!st_item_add_tensor(r, "embedding", ST_F32, 1, shape, p->emb))
			cli_die(prog, EXIT_RUNTIME, "out of memory");
	}
	if (st_writer_put(p->out, r))
		cli_die(prog, EXIT_RUNTIME, "%s", st_writer_error(p->out));
}

static void predictor_flow(predictor *p, const st_item *it)
{
	int frames;
	const float *x = input_of(p, it, &frames);
	if (cnn14_forward(p->model, x, 1, frames, 0, p->logp) != CNN14_OK ||
	    (p->o->embedding && cnn14_embedding(p->model, p->emb) != CNN14_OK))
		cli_die(prog, EXIT_RUNTIME, "%s: item '%s': %s", st_reader_name(p->in), it->key, cnn14_error(p->model));
	int best = 0;
	for (int k = 1; k < p->classes; k++)
		if (p->logp[k] > p->logp[best])
			best = k;
	if (p->out)
		write_item(p, it, best);
	else
		write_tsv(p, it->key, best);
}

static void predictor_stop(predictor *p)
{
	char err[ST_ERRLEN];
	cli_progress_done(&p->progress, st_reader_items(p->in), "items");
	if (p->out) {
		st_writer *w = p->out;
		p->out = NULL; /* closed, or freed on failure, here */
		if (st_writer_close(w, err))
			cli_die(prog, EXIT_RUNTIME, "%s", err);
	} else if (atomic_output_commit(&p->tsv, err, sizeof err)) {
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	}
}

int main(int argc, char **argv)
{
	options o;
	parse_args(argc, argv, &o);
	cli_stdout_init();
	atexit(release);
	predictor *p = &held;
	predictor_start(p, &o, argc, argv);
	int rc;
	while ((rc = st_reader_next(p->in, &p->item)) == ST_OK) {
		predictor_flow(p, &p->item);
		cli_progress_update(&p->progress, st_reader_items(p->in), 0, "items");
	}
	if (rc != ST_END)
		cli_die(prog, EXIT_RUNTIME, "%s", st_reader_error(p->in));
	predictor_stop(p);
	release();
	cli_close_stdout(prog);
	return 0;
}
