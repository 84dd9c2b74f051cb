/* cnn-tool - drives common/cnn14 for the tests and the benchmark
 * (interface: init, forward, grad, step, bench; see usage). */
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"
#include "cnn14.h"
#include "nn_pool.h"
#include "stream.h"

static const char *prog = "cnn-tool";

static const char usage[] =
	"Usage: cnn-tool COMMAND [OPTION]... \n"
	"Test and benchmark driver of the C Cnn14 (common/cnn14.h).  A batch is a\n"
	"stream whose items carry a float32 tensor 'logmel' (T, 64), all of one T,\n"
	"and for grad/step an int field 'label'; all items form ONE batch.\n"
	"\n"
	"  init --classes K --width-div D --seed S [-o FILE]   a fresh checkpoint\n"
	"  forward [--train-bn] CKPT < batch > out   items with tensor 'logprob' (K,);\n"
	"        eval-mode BN unless --train-bn (batch statistics); dropout off\n"
	"  grad CKPT --class-weights W0,W1,... < batch > grads   training-mode BN,\n"
	"        dropout off; header params.loss; one item per trainable parameter\n"
	"        with tensor 'grad'\n"
	"  step CKPT --steps N --lr LR --momentum M [--nesterov] [--weight-decay WD]\n"
	"        [--finetune all|linear] [--freeze-bn-stats] --class-weights ...\n"
	"        [--save-optimizer FILE] [--load-optimizer FILE] < batch > ckpt\n"
	"        N SGD steps on the batch, training mode, dropout off (--dropout: on)\n"
	"  bench --width-div D --batch B --frames T --classes K --iters N\n"
	"        [--mode train|infer|both]\n"
	"        prints throughput (also per CPU second: robust on a busy machine),\n"
	"        GFLOPS, sgemm peak, peak RSS, OpenBLAS core\n"
	"\n"
	"  --threads N   threads (default: online CPUs)\n"
	"\n"
	"Example:\n"
	"  cnn-tool init --classes 3 --width-div 8 --seed 1 -o m.ckpt\n"
	"  cnn-tool forward m.ckpt < batch.msgpack > logp.msgpack\n";

typedef struct {
	float *x;
	int batch, frames;
	int *labels;
	st_item *items;
	sv *header;
} batch_t;

static void read_batch(const char *path, bool need_labels, batch_t *b)
{
	char err[ST_ERRLEN];
	st_reader *r = st_reader_open(path, 0, ST_READ_FINITE, err);
	if (!r)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	memset(b, 0, sizeof *b);
	b->header = sv_copy(st_reader_header(r));
	size_t cap = 0;
	for (;;) {
		if ((size_t)b->batch == cap) {
			cap = cap ? 2 * cap : 16;
			b->items = realloc(b->items, cap * sizeof *b->items);
			if (!b->items)
				cli_die(prog, EXIT_RUNTIME, "out of memory");
		}
		st_item *it = &b->items[b->batch];
		if (st_item_init(it))
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		int rc = st_reader_next(r, it);
		if (rc == ST_END) {
			st_item_free(it);
			break;
		}
		if (rc)
			cli_die(prog, EXIT_RUNTIME, "%s", st_reader_error(r));
		const st_tensor *t = st_item_tensor(it, "logmel");
		if (!t || t->dtype != ST_F32 || t->ndim != 2 || t->shape[1] != CNN14_N_MELS)
			cli_die(prog, EXIT_RUNTIME, "%s: item '%s': needs a float32 tensor 'logmel' (T, %d)", st_reader_name(r),
			        it->key, CNN14_N_MELS);
		if (b->batch == 0)
			b->frames = (int)t->shape[0];
		else if (t->shape[0] != b->frames)
			cli_die(prog, EXIT_RUNTIME, "%s: item '%s': %lld frames, the batch has %d", st_reader_name(r), it->key,
			        (long long)t->shape[0], b->frames);
		b->batch++;
	}
	st_reader_close(r);
	if (b->batch == 0)
		cli_die(prog, EXIT_RUNTIME, "%s: empty batch", path ? path : "stdin");
	size_t per = (size_t)b->frames * CNN14_N_MELS;
	b->x = malloc((size_t)b->batch * per * sizeof *b->x);
	b->labels = malloc((size_t)b->batch * sizeof *b->labels);
	if (!b->x || !b->labels)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	for (int i = 0; i < b->batch; i++) {
		memcpy(b->x + (size_t)i * per, st_item_tensor(&b->items[i], "logmel")->data, per * sizeof *b->x);
		int64_t l = 0;
		if (need_labels && !sv_get_int(b->items[i].fields, "label", &l))
			cli_die(prog, EXIT_RUNTIME, "item '%s': no integer field 'label'", b->items[i].key);
		b->labels[i] = (int)l;
	}
}

static void free_batch(batch_t *b)
{
	for (int i = 0; i < b->batch; i++)
		st_item_free(&b->items[i]);
	free(b->items);
	free(b->x);
	free(b->labels);
	sv_free(b->header);
}

static float *parse_weights(const char *s, int classes)
{
	float *w = malloc((size_t)classes * sizeof *w);
	if (!w)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	int k = 0;
	const char *p = s;
	while (*p) {
		char *end;
		double v = strtod(p, &end);
		if (end == p || !isfinite(v) || v < 0 || k == classes)
			cli_usage_error(prog, "--class-weights '%s': need %d non-negative numbers", s, classes);
		w[k++] = (float)v;
		p = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			cli_usage_error(prog, "--class-weights '%s': need %d non-negative numbers", s, classes);
	}
	if (k != classes)
		cli_usage_error(prog, "--class-weights '%s': need %d non-negative numbers", s, classes);
	return w;
}

static cnn14 *open_model(const char *path, int threads)
{
	char err[CNN14_ERRLEN];
	cnn14 *m = cnn14_open(path, threads, err);
	if (!m)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	return m;
}

static void check(cnn14 *m, int rc)
{
	if (rc)
		cli_die(prog, EXIT_RUNTIME, "%s", cnn14_error(m));
}

/* ---- bench ---- */

/* CPU seconds of the whole process (all threads). */
static double cpu_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

typedef struct {
	const float *a, *b;
	float *c;
	int n;
} sgemm_ctx;

static void sgemm_task(void *arg, int tid, int nth)
{
	const sgemm_ctx *s = arg;
	size_t lo, hi;
	nn_split((size_t)s->n, 16, tid, nth, &lo, &hi);
	if (hi > lo)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->n, (int)(hi - lo), s->n, 1, s->a, s->n, s->b + lo,
		            s->n, 0, s->c + lo, s->n);
}

/* sgemm peak as the model uses it: one single-threaded product per thread. */
static double sgemm_peak(int threads)
{
	const int n = 2048;
	float *a = sv_aligned_alloc((size_t)n * n * sizeof *a), *b = sv_aligned_alloc((size_t)n * n * sizeof *b);
	float *c = sv_aligned_alloc((size_t)n * n * sizeof *c);
	nn_pool *pool = nn_pool_new(threads);
	if (!a || !b || !c || !pool)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	for (size_t i = 0; i < (size_t)n * n; i++)
		a[i] = b[i] = (float)((i % 17) * 0.01);
	sgemm_ctx s = {a, b, c, n};
	double best = 1e30;
	for (int rep = 0; rep < 4; rep++) {
		double t0 = cli_now();
		nn_pool_run(pool, sgemm_task, &s);
		double t = cli_now() - t0;
		if (rep && t < best)
			best = t;
	}
	nn_pool_free(pool);
	free(a);
	free(b);
	free(c);
	return 2.0 * n * n * (double)n / best / 1e9;
}

static int bench(int wd, int batch, int frames, int classes, int iters, int threads, int what)
{
	cnn14_config cfg = {classes, wd, 1, threads};
	char err[CNN14_ERRLEN];
	cnn14 *m = cnn14_new(&cfg, err);
	if (!m)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	size_t nx = (size_t)batch * (size_t)frames * CNN14_N_MELS;
	float *x = malloc(nx * sizeof *x), *logp = malloc((size_t)batch * (size_t)classes * sizeof *logp);
	int *labels = malloc((size_t)batch * sizeof *labels);
	if (!x || !logp || !labels)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	uint64_t s = 12345;
	for (size_t i = 0; i < nx; i++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		x[i] = (float)(-30.0 + 20.0 * ((double)(s >> 11) * 0x1p-53));
	}
	for (int i = 0; i < batch; i++)
		labels[i] = i % classes;
	cnn14_sgd opt = {0.01, 0.9, 0, true};
	/* one untimed step plans the memory */
	check(m, cnn14_forward(m, x, batch, frames, what & 1 ? CNN14_TRAIN : 0, logp));
	if (what & 1)
		check(m, cnn14_backward_step(m, labels, NULL, NULL, &opt));
	double t0 = cli_now(), c0 = cpu_now();
	for (int it = 0; it < iters && (what & 1); it++) { /* as cnn-train steps */
		check(m, cnn14_forward(m, x, batch, frames, CNN14_TRAIN, logp));
		check(m, cnn14_backward_step(m, labels, NULL, NULL, &opt));
	}
	double train = cli_now() - t0, train_cpu = cpu_now() - c0;
	check(m, cnn14_forward(m, x, batch, frames, 0, logp));
	t0 = cli_now();
	c0 = cpu_now();
	for (int it = 0; it < iters && (what & 2); it++)
		check(m, cnn14_forward(m, x, batch, frames, 0, logp));
	double infer = cli_now() - t0, infer_cpu = cpu_now() - c0;
	double flops = cnn14_forward_flops(m, frames) * batch * iters;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	if (what & 1) {
		printf("train_samples_per_s %.3f\n", batch * iters / train);
		printf("train_gflops %.2f\n", 3 * flops / train / 1e9);
		printf("train_samples_per_cpu_s %.3f\n", batch * iters / train_cpu);
	}
	if (what & 2) {
		printf("infer_samples_per_s %.3f\n", batch * iters / infer);
		printf("infer_gflops %.2f\n", flops / infer / 1e9);
		printf("infer_samples_per_cpu_s %.3f\n", batch * iters / infer_cpu);
	}
	printf("sgemm_peak_gflops %.2f\n", sgemm_peak(cnn14_threads(m)));
	printf("peak_rss_mb %.1f\n", ru.ru_maxrss / 1024.0);
	printf("openblas_core %s\n", openblas_get_corename());
	printf("threads %d\n", cnn14_threads(m));
	cnn14_free(m);
	free(x);
	free(logp);
	free(labels);
	return 0;
}

/* ---- main ---- */

enum { O_CLASSES = 256, O_WD, O_SEED, O_TRAIN_BN, O_CW, O_STEPS, O_LR, O_MOM, O_NEST, O_WDECAY, O_FT, O_FREEZE,
       O_BATCH, O_FRAMES, O_ITERS, O_THREADS, O_SAVE_OPT, O_LOAD_OPT, O_DROPOUT, O_MODE, O_HELP, O_VERSION };

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"classes", 1, 0, O_CLASSES}, {"width-div", 1, 0, O_WD}, {"seed", 1, 0, O_SEED},
		{"train-bn", 0, 0, O_TRAIN_BN}, {"class-weights", 1, 0, O_CW}, {"steps", 1, 0, O_STEPS},
		{"lr", 1, 0, O_LR}, {"momentum", 1, 0, O_MOM}, {"nesterov", 0, 0, O_NEST},
		{"weight-decay", 1, 0, O_WDECAY}, {"finetune", 1, 0, O_FT}, {"freeze-bn-stats", 0, 0, O_FREEZE},
		{"batch", 1, 0, O_BATCH}, {"frames", 1, 0, O_FRAMES}, {"iters", 1, 0, O_ITERS},
		{"threads", 1, 0, O_THREADS}, {"save-optimizer", 1, 0, O_SAVE_OPT},
		{"load-optimizer", 1, 0, O_LOAD_OPT}, {"dropout", 0, 0, O_DROPOUT}, {"mode", 1, 0, O_MODE}, {"output", 1, 0, 'o'},
		{"help", 0, 0, O_HELP}, {"version", 0, 0, O_VERSION}, {0, 0, 0, 0}};
	long classes = 3, wd = 1, seed = 0, steps = 1, batch = 8, frames = 300, iters = 3, threads = 0;
	double lr = 0.01, mom = 0, wdecay = 0;
	bool train_bn = false, nesterov = false, freeze = false, dropout = false;
	const char *cw = NULL, *out = NULL, *save_opt = NULL, *load_opt = NULL;
	cnn14_finetune ft = CNN14_FINETUNE_ALL;
	int c, what = 3;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
		switch (c) {
		case O_CLASSES: if (!cli_parse_long(optarg, 1, 100000, &classes)) cli_usage_error(prog, "--classes '%s'", optarg); break;
		case O_WD: if (!cli_parse_long(optarg, 1, 64, &wd)) cli_usage_error(prog, "--width-div '%s'", optarg); break;
		case O_SEED: if (!cli_parse_long(optarg, 0, 1L << 62, &seed)) cli_usage_error(prog, "--seed '%s'", optarg); break;
		case O_TRAIN_BN: train_bn = true; break;
		case O_CW: cw = optarg; break;
		case O_STEPS: if (!cli_parse_long(optarg, 0, 1000000, &steps)) cli_usage_error(prog, "--steps '%s'", optarg); break;
		case O_LR: if (!cli_parse_double(optarg, 0, 1e6, &lr)) cli_usage_error(prog, "--lr '%s'", optarg); break;
		case O_MOM: if (!cli_parse_double(optarg, 0, 1, &mom)) cli_usage_error(prog, "--momentum '%s'", optarg); break;
		case O_NEST: nesterov = true; break;
		case O_WDECAY: if (!cli_parse_double(optarg, 0, 1e6, &wdecay)) cli_usage_error(prog, "--weight-decay '%s'", optarg); break;
		case O_FT:
			if (strcmp(optarg, "all") == 0)
				ft = CNN14_FINETUNE_ALL;
			else if (strcmp(optarg, "linear") == 0)
				ft = CNN14_FINETUNE_LINEAR;
			else
				cli_usage_error(prog, "--finetune '%s': all or linear", optarg);
			break;
		case O_FREEZE: freeze = true; break;
		case O_BATCH: if (!cli_parse_long(optarg, 1, 100000, &batch)) cli_usage_error(prog, "--batch '%s'", optarg); break;
		case O_FRAMES: if (!cli_parse_long(optarg, 1, 10000000, &frames)) cli_usage_error(prog, "--frames '%s'", optarg); break;
		case O_ITERS: if (!cli_parse_long(optarg, 1, 100000, &iters)) cli_usage_error(prog, "--iters '%s'", optarg); break;
		case O_THREADS: if (!cli_parse_long(optarg, 0, NN_MAX_THREADS, &threads)) cli_usage_error(prog, "--threads '%s'", optarg); break;
		case O_SAVE_OPT: save_opt = optarg; break;
		case O_LOAD_OPT: load_opt = optarg; break;
		case O_DROPOUT: dropout = true; break;
		case O_MODE:
			what = strcmp(optarg, "train") == 0 ? 1 : strcmp(optarg, "infer") == 0 ? 2 : strcmp(optarg, "both") == 0 ? 3 : 0;
			if (!what)
				cli_usage_error(prog, "--mode '%s': train, infer or both", optarg);
			break;
		case 'o': out = optarg; break;
		case O_HELP: cli_help(usage);
		case O_VERSION: cli_version(prog);
		default: cli_usage_error(prog, "unknown option");
		}
	}
	if (optind >= argc)
		cli_usage_error(prog, "no command");
	const char *cmd = argv[optind++];
	cli_stdout_init();
	if (strcmp(cmd, "init") == 0) {
		cnn14_config cfg = {(int)classes, (int)wd, (uint64_t)seed, (int)threads};
		char err[CNN14_ERRLEN];
		cnn14 *m = cnn14_new(&cfg, err);
		if (!m)
			cli_die(prog, EXIT_RUNTIME, "%s", err);
		check(m, cnn14_save(m, out, prog, argc, argv));
		cnn14_free(m);
	} else if (strcmp(cmd, "bench") == 0) {
		bench((int)wd, (int)batch, (int)frames, (int)classes, (int)iters, (int)threads, what);
	} else if (strcmp(cmd, "forward") == 0 || strcmp(cmd, "grad") == 0 || strcmp(cmd, "step") == 0) {
		if (optind >= argc)
			cli_usage_error(prog, "%s: no checkpoint", cmd);
		cnn14 *m = open_model(argv[optind], (int)threads);
		const int k = cnn14_classes(m);
		const bool is_fwd = strcmp(cmd, "forward") == 0, is_grad = strcmp(cmd, "grad") == 0;
		float *w = NULL;
		if (!is_fwd) {
			if (!cw)
				cli_usage_error(prog, "%s needs --class-weights", cmd);
			w = parse_weights(cw, k);
		}
		batch_t b;
		read_batch("-", !is_fwd, &b);
		float *logp = malloc((size_t)b.batch * (size_t)k * sizeof *logp);
		if (!logp)
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		char err[ST_ERRLEN];
		if (is_fwd) {
			check(m, cnn14_forward(m, b.x, b.batch, b.frames, train_bn ? CNN14_TRAIN | CNN14_NO_DROPOUT : 0, logp));
			sv *h = st_header_derive(b.header, prog, argc, argv);
			st_writer *wr = h ? st_writer_open(out, h, err) : NULL;
			sv_free(h);
			if (!wr)
				cli_die(prog, EXIT_RUNTIME, "%s", h ? err : "out of memory");
			for (int i = 0; i < b.batch; i++) {
				st_item *it = &b.items[i];
				int64_t shape[1] = {k};
				st_item_remove_tensor(it, "logmel");
				if (!st_item_add_tensor(it, "logprob", ST_F32, 1, shape, logp + (size_t)i * (size_t)k))
					cli_die(prog, EXIT_RUNTIME, "out of memory");
				if (st_writer_put(wr, it))
					cli_die(prog, EXIT_RUNTIME, "%s", st_writer_error(wr));
			}
			if (st_writer_close(wr, err))
				cli_die(prog, EXIT_RUNTIME, "%s", err);
		} else if (is_grad) {
			double loss;
			check(m, cnn14_forward(m, b.x, b.batch, b.frames, CNN14_TRAIN | CNN14_NO_DROPOUT, logp));
			check(m, cnn14_backward(m, b.labels, w, &loss));
			sv *h = st_header_new(prog, argc, argv);
			if (!h || sv_set(st_header_params(h), "loss", sv_float(loss)))
				cli_die(prog, EXIT_RUNTIME, "out of memory");
			st_writer *wr = st_writer_open(out, h, err);
			sv_free(h);
			if (!wr)
				cli_die(prog, EXIT_RUNTIME, "%s", err);
			st_item it;
			if (st_item_init(&it))
				cli_die(prog, EXIT_RUNTIME, "out of memory");
			for (size_t i = 0; i < cnn14_num_tensors(m); i++) {
				cnn14_tensor t = cnn14_tensor_at(m, i);
				if (!t.trainable)
					continue;
				st_item_clear(&it);
				if (st_item_set_key(&it, t.name) || !st_item_add_tensor(&it, "grad", ST_F32, t.ndim, t.shape, t.grad))
					cli_die(prog, EXIT_RUNTIME, "out of memory");
				if (st_writer_put(wr, &it))
					cli_die(prog, EXIT_RUNTIME, "%s", st_writer_error(wr));
			}
			st_item_free(&it);
			if (st_writer_close(wr, err))
				cli_die(prog, EXIT_RUNTIME, "%s", err);
		} else {
			cnn14_set_finetune(m, ft, freeze);
			if (load_opt)
				check(m, cnn14_load_optimizer(m, load_opt));
			cnn14_sgd opt = {lr, mom, wdecay, nesterov};
			unsigned mode = CNN14_TRAIN | (dropout ? 0 : CNN14_NO_DROPOUT);
			for (long s = 0; s < steps; s++) { /* as cnn-train: fused (t-nn-model: bitwise the separate calls) */
				check(m, cnn14_forward(m, b.x, b.batch, b.frames, mode, logp));
				check(m, cnn14_backward_step(m, b.labels, w, NULL, &opt));
			}
			check(m, cnn14_save(m, out, prog, argc, argv));
			if (save_opt)
				check(m, cnn14_save_optimizer(m, save_opt, prog, argc, argv));
		}
		free(logp);
		free(w);
		free_batch(&b);
		cnn14_free(m);
	} else {
		cli_usage_error(prog, "unknown command '%s'", cmd);
	}
	cli_close_stdout(prog);
	return 0;
}
