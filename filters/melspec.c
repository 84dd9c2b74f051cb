/* melspec - waveform items in, log-Mel spectrogram items out (PANNs Cnn14 front end). */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "cli.h"
#include "melspec.h"
#include "nn_pool.h"
#include "omap.h"
#include "opts.h"
#include "stream.h"
#include "wave_check.h"

static const char *prog = "melspec";

static const char usage[] =
	"Usage: melspec [OPTION]... [STREAM]\n"
	"Replace each item's 'wave' tensor (float32, (samples,)) by its log-Mel\n"
	"spectrogram 'logmel' (float32, (frames, mels)); other tensors and fields pass\n"
	"through.  Defaults are the 16 kHz front end of PANNs' Cnn14 and equal\n"
	"torchaudio's MelSpectrogram(16000, n_fft=512, hop_length=160, f_min=50,\n"
	"f_max=8000, n_mels=64, norm='slaney', mel_scale='slaney', pad_mode='reflect')\n"
	"followed by AmplitudeToDB(top_db=None).  The sample rate comes from the\n"
	"stream header; an item of N samples gives 1 + floor(N / hop) frames.\n"
	"\n";

static const char epilog[] =
	"\n"
	"Examples:\n"
	"  audio-read *.wav | bandpass --width 100 | melspec > feats.msgpack\n"
	"  melspec --threads 2 -o feats.msgpack wave.msgpack\n";

/* What every worker shares, read-only. */
typedef struct {
	const char *in_name;  /* the input's name, for messages */
	const char *out_name; /* "logmel" or "mel" */
	bool pad_short;
} job;

/* One worker's own state (omap.h): its FFT plan and --pad-short buffer. */
typedef struct {
	const job *job;
	melspec *m;
	float *padded; /* --pad-short copy, min_samples long */
} worker;

/* Replaces the item's wave by its spectrogram (an omap_fn).  0, or -1 with msg. */
static int transform(void *ctx, st_item *it, uint64_t seq, char *msg)
{
	worker *wk = ctx;
	const job *jb = wk->job;
	const melspec_config *c = melspec_get_config(wk->m);
	char where[ST_ERRLEN];
	snprintf(where, sizeof where, "%s: item %llu: key '%s'", jb->in_name, (unsigned long long)seq + 1,
	         it->key);
	const st_tensor *t = st_item_tensor(it, "wave");
	if (!t) {
		snprintf(msg, OMAP_MSGLEN, "%s: no 'wave' tensor", where);
		return -1;
	}
	if (t->dtype != ST_F32 || t->ndim != 1) {
		snprintf(msg, OMAP_MSGLEN, "%s: tensor 'wave' is %s with %d dimensions; expected float32 (<f4) of shape (samples,)",
		         where, st_dtype_str(t->dtype), t->ndim);
		return -1;
	}
	if (st_item_tensor(it, jb->out_name)) {
		snprintf(msg, OMAP_MSGLEN, "%s: already has a '%s' tensor", where, jb->out_name);
		return -1;
	}
	size_t n = (size_t)t->shape[0], need = melspec_min_samples(wk->m);
	const float *x = t->data;
	if (n == 0) {
		snprintf(msg, OMAP_MSGLEN, "%s: empty waveform", where);
		return -1;
	}
	if (n < need) {
		if (!jb->pad_short) {
			snprintf(msg, OMAP_MSGLEN,
			         "%s: %zu samples is too short: reflect padding by n_fft/2 = %zu needs at least %zu "
			         "(--pad-short zero-pads)",
			         where, n, need - 1, need);
			return -1;
		}
		memcpy(wk->padded, x, n * sizeof *x);
		memset(wk->padded + n, 0, (need - n) * sizeof *x);
		x = wk->padded;
		n = need;
	}
	char bad[160];
	if (wave_check_samples(x, n, bad, sizeof bad)) { /* never a silent -100 dB or NaN (issue 13) */
		snprintf(msg, OMAP_MSGLEN, "%s: %s", where, bad);
		return -1;
	}
	size_t frames = melspec_frames(wk->m, n);
	float *out = sv_aligned_alloc(frames * (size_t)c->n_mels * sizeof *out);
	if (!out) {
		snprintf(msg, OMAP_MSGLEN, "%s: out of memory for %zu frames", where, frames);
		return -1;
	}
	if (melspec_compute(wk->m, x, n, out)) { /* cannot happen: n >= need */
		free(out);
		snprintf(msg, OMAP_MSGLEN, "%s: %zu samples is too short", where, n);
		return -1;
	}
	st_item_remove_tensor(it, "wave");
	int64_t shape[2] = {(int64_t)frames, c->n_mels};
	if (!st_item_take_tensor(it, jb->out_name, ST_F32, 2, shape, out)) {
		free(out);
		snprintf(msg, OMAP_MSGLEN, "%s: out of memory", where);
		return -1;
	}
	return 0;
}

static sv *melspec_params(const melspec_config *c)
{
	sv *p = sv_map();
	if (!p || sv_set(p, "sample_rate", sv_int(c->sample_rate)) || sv_set(p, "n_fft", sv_int(c->n_fft)) ||
	    sv_set(p, "win_length", sv_int(c->win_length)) || sv_set(p, "hop_length", sv_int(c->hop_length)) ||
	    sv_set(p, "n_mels", sv_int(c->n_mels)) || sv_set(p, "f_min", sv_float(c->f_min)) ||
	    sv_set(p, "f_max", sv_float(c->f_max)) || sv_set(p, "window", sv_str("hann-periodic")) ||
	    sv_set(p, "center", sv_bool(true)) || sv_set(p, "pad_mode", sv_str("reflect")) ||
	    sv_set(p, "power", sv_float(c->power)) || sv_set(p, "mel_scale", sv_str("slaney")) ||
	    sv_set(p, "norm", sv_str("slaney")) || sv_set(p, "db", sv_bool(c->db)) ||
	    sv_set(p, "amin", sv_float(c->amin)) || sv_set(p, "top_db", sv_nil())) {
		sv_free(p);
		return NULL;
	}
	return p;
}

/* OpenBLAS starts its worker threads when it is loaded, and each spins for
 * ~50 ms of CPU before it sleeps, although melspec never gives them work
 * (its own workers are the parallelism).  Only the environment at load time
 * prevents that, so run once more with OPENBLAS_NUM_THREADS=1; if that
 * cannot be done, carry on: it costs time, not correctness. */
static void openblas_quiet(char **argv)
{
	const char *v = getenv("OPENBLAS_NUM_THREADS");
	if (v && strcmp(v, "1") == 0)
		return;
	if (setenv("OPENBLAS_NUM_THREADS", "1", 1) == 0)
		execv("/proc/self/exe", argv);
}

typedef struct {
	melspec_config cfg;
	const char *output, *input;
	int threads;
	bool pad_short, progress, quiet;
	size_t max_record;
} options;

#define F(field) offsetof(options, field)
/* -j and --jobs: the old spellings of --threads, kept for old scripts
 * (pipelines/Makefile uses -j); -j is --json nowhere any more (formats/cli.md). */
static const opt_desc options_table[] = {
	{"output", 'o', OPT_STRING, F(output), .arg = "FILE", .help = "write the stream to FILE atomically (default stdout)"},
	{"threads", 'j', OPT_INT, F(threads), .min = 0, .max = NN_MAX_THREADS, .def = "0", .arg = "N",
	 .help = "worker threads; 0: the cores this process may use;\nitem order and output bytes do not depend on it",
	 .flags = OPT_HIDE_LETTER},
	{"jobs", 0, OPT_INT, F(threads), .min = 0, .max = NN_MAX_THREADS, .arg = "N", .flags = OPT_HIDDEN},
	{"mels", 0, OPT_INT, F(cfg.n_mels), .min = 1, .max = 65536, .def = "64", .arg = "N", .help = "mel bands"},
	{"fmin", 0, OPT_DOUBLE, F(cfg.f_min), .min = 0, .max = 1e9, .def = "50", .arg = "HZ", .help = "lowest mel edge"},
	{"fmax", 0, OPT_DOUBLE, F(cfg.f_max), .min = 0, .max = 1e9, .def = "8000", .arg = "HZ",
	 .help = "highest mel edge, at most half the sample rate"},
	{"nfft", 0, OPT_INT, F(cfg.n_fft), .min = 2, .max = 1 << 24, .def = "512", .arg = "N", .help = "FFT size in samples"},
	{"win", 0, OPT_INT, F(cfg.win_length), .min = 1, .max = 1 << 24, .arg = "N",
	 .help = "periodic Hann window length in samples, <= nfft\n(default: nfft), centred in the FFT frame"},
	{"hop", 0, OPT_INT, F(cfg.hop_length), .min = 1, .max = INT_MAX, .def = "160", .arg = "N",
	 .help = "frame step in samples"},
	{"power", 0, OPT_DOUBLE, F(cfg.power), .min = 1e-3, .max = 16, .def = "2", .arg = "P",
	 .help = "exponent of the magnitude (2: power spectrum)"},
	{"no-db", 0, OPT_UNSET, F(cfg.db),
	 .help = "output the mel spectrogram itself, tensor 'mel'\n(default: (20/P) log10(max(mel, 1e-10)), 'logmel')"},
	{"pad-short", 0, OPT_FLAG, F(pad_short),
	 .help = "zero-pad items of nfft/2 samples or fewer to\nnfft/2 + 1 (default: such an item is an error)"},
	OPT_MAX_RECORD(options),
	OPT_PROGRESS_QUIET(options),
	OPT_END,
};
#undef F

static const opts_spec spec = {"melspec", options_table, usage, epilog};

static void parse_args(int argc, char **argv, options *o)
{
	*o = (options){.cfg = melspec_default_config(0)};
	opts_defaults(&spec, o);
	int first = opts_parse(&spec, o, argc, argv, NULL);
	melspec_config *cfg = &o->cfg;
	if (o->threads == 0)
		o->threads = nn_cpu_count();
	if (cfg->win_length == 0)
		cfg->win_length = cfg->n_fft;
	if (cfg->win_length > cfg->n_fft)
		cli_usage_error(prog, "--win %d is longer than --nfft %d", cfg->win_length, cfg->n_fft);
	if (cfg->f_min >= cfg->f_max)
		cli_usage_error(prog, "--fmin %g must be below --fmax %g", cfg->f_min, cfg->f_max);
	if (argc - first > 1)
		cli_usage_error(prog, "one input stream at most (join streams with stream-cat)");
	o->input = first < argc ? argv[first] : "-";
}

/* The input's sample rate completes the configuration. */
static st_reader *open_input(options *o)
{
	char err[ST_ERRLEN];
	/* no ST_READ_FINITE: the workers' wave_check_samples is the one scan of
	 * the samples (same message); other tensors pass through unread */
	st_reader *r = st_reader_open(o->input, o->max_record, 0, err);
	if (!r)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	if (st_wave_rate(r, &o->cfg.sample_rate, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	const char *in_tensor = sv_get_str(st_reader_params(r), "tensor");
	if (in_tensor && strcmp(in_tensor, "wave") != 0)
		cli_die(prog, EXIT_RUNTIME, "%s: header: the stream holds '%s' tensors, not waveforms ('wave')",
		        st_reader_name(r), in_tensor);
	if (melspec_check(&o->cfg, err, sizeof err))
		cli_die(prog, EXIT_RUNTIME, "%s: %s", st_reader_name(r), err);
	return r;
}

static worker *workers_new(const options *o, const job *jb)
{
	char err[ST_ERRLEN];
	worker *wk = calloc((size_t)o->threads, sizeof *wk);
	if (!wk)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	for (long i = 0; i < o->threads; i++) {
		wk[i].job = jb;
		if (!(wk[i].m = melspec_new(&o->cfg, err, sizeof err)))
			cli_die(prog, EXIT_RUNTIME, "%s", err);
		if (!(wk[i].padded = malloc(melspec_min_samples(wk[i].m) * sizeof *wk[i].padded)))
			cli_die(prog, EXIT_RUNTIME, "out of memory");
	}
	if (melspec_empty_bands(wk[0].m))
		cli_warn(prog, "%d of %d mel bands have all-zero weights: too many mels for n_fft %d",
		         melspec_empty_bands(wk[0].m), o->cfg.n_mels, o->cfg.n_fft);
	return wk;
}

int main(int argc, char **argv)
{
	openblas_quiet(argv);
	options o;
	parse_args(argc, argv, &o);
	cli_stdout_init();
	/* the workers are the parallelism; OpenBLAS threads would only compete with them */
	openblas_set_num_threads(1);

	st_reader *r = open_input(&o);
	job jb = {.in_name = st_reader_name(r), .out_name = o.cfg.db ? "logmel" : "mel", .pad_short = o.pad_short};
	worker *wk = workers_new(&o, &jb);

	char err[OMAP_MSGLEN];
	sv *header = st_header_derive(st_reader_header(r), prog, argc, argv);
	sv *hp = header ? st_header_params(header) : NULL;
	if (!hp || sv_set(hp, "tensor", sv_str(jb.out_name)) || sv_set(hp, "melspec", melspec_params(&o.cfg)))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	st_writer *w = st_writer_open(o.output, header, err);
	if (!w)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	sv_free(header);
	cli_progress progress;
	cli_progress_init(&progress, prog, o.progress, o.quiet);
	if (omap_run(r, w, o.threads, transform, wk, sizeof *wk, &progress, err)) {
		st_writer_abort(w);
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	}
	uint64_t items = st_writer_items(w);
	if (st_writer_close(w, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	cli_progress_done(&progress, items, "items");
	for (long i = 0; i < o.threads; i++) {
		melspec_free(wk[i].m);
		free(wk[i].padded);
	}
	free(wk);
	st_reader_close(r);
	cli_close_stdout(prog);
	return 0;
}
