/* bandpass - Butterworth band-pass filter for waveform streams (the paper's corruption). */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "iir.h"
#include "nn_pool.h"
#include "omap.h"
#include "opts.h"
#include "stream.h"
#include "wave_check.h"

static const char *prog = "bandpass";

static const char usage[] =
	"Usage: bandpass [OPTION]... --width HZ [STREAM]\n"
	"       bandpass [OPTION]... --low HZ --high HZ [STREAM]\n"
	"Band-pass filter the 'wave' tensor (float32) of every item of a sertools\n"
	"stream (stdin when none or '-') with a digital Butterworth filter designed\n"
	"as scipy.signal.butter(order, [low, high], 'bandpass', fs=sample_rate,\n"
	"output='sos') and run as cascaded second-order sections (scipy's sosfilt).\n"
	"The sample rate is the stream header's sample_rate.\n"
	"\n";

static const char epilog[] =
	"\n"
	"Edges must satisfy 0 < low < high < sample_rate / 2.  Other tensors and the\n"
	"item fields pass through; items with no samples pass through unchanged\n"
	"(an error with --zero-phase).\n"
	"\n"
	"Examples:\n"
	"  audio-read *.wav | bandpass --width 100 | melspec > feats.msgpack\n"
	"  bandpass --low 300 --high 3400 --zero-phase clean.msgpack -o phone.msgpack\n"
	"  bandpass --threads 1 --width 20 clean.msgpack > narrow.msgpack\n";

/* The filter, shaped like a SoX effect: options, then start (once the
 * input header is known), flow (per item) and stop.  Items are filtered
 * independently, so there is nothing to drain, and the workers of omap.h
 * filter several at once, each with its own copy of the sections. */
typedef struct {
	double center, width, low, high;
	bool by_width;          /* band given as --center/--width */
	long order;
	bool zero_phase;
	double rate;
	size_t padlen;          /* --zero-phase's odd extension at each end */
	double sos[6 * IIR_MAX_ORDER];
	const char *in_name;    /* the input's name, for messages */
} bandpass;

/* One worker's state (omap.h): the sections with their own delay line. */
typedef struct {
	const bandpass *bp;
	iir_sos *filter;
} worker;

typedef struct {
	double center, width, low, high;
	int order, threads;
	bool zero_phase, progress, quiet;
	const char *output;
	size_t max_record;
} options;

#define F(field) offsetof(options, field)
#define HZ .min = -1e12, .max = 1e12, .arg = "HZ", .must = "be a frequency in Hz"
/* -c, -l and -n are hidden: those letters mean --corpus, --list and --head
 * elsewhere (formats/cli.md); they stay accepted for old scripts. */
static const opt_desc options_table[] = {
	{"center", 'c', OPT_DOUBLE, F(center), HZ, .def = "500",
	 .help = "band centre", .flags = OPT_HIDE_LETTER},
	{"width", 'w', OPT_DOUBLE, F(width), HZ, .help = "band width: low = centre - width/2, high = centre +\nwidth/2"},
	{"low", 'l', OPT_DOUBLE, F(low), HZ, .help = "lower -3 dB edge (instead of --center/--width)",
	 .flags = OPT_HIDE_LETTER},
	{"high", 'H', OPT_DOUBLE, F(high), HZ, .help = "upper -3 dB edge"},
	{"order", 'n', OPT_INT, F(order), .min = 1, .max = IIR_MAX_ORDER, .def = "4", .arg = "N",
	 .help = "Butterworth order, that many sections", .flags = OPT_HIDE_LETTER},
	{"zero-phase", 'z', OPT_FLAG, F(zero_phase),
	 .help = "filter forward and backward (scipy's sosfiltfilt);\nitems must be longer than 3 (2 order + 1) samples"},
	{"output", 'o', OPT_STRING, F(output), .arg = "FILE", .help = "write the stream to FILE atomically (default stdout)"},
	{"threads", 0, OPT_INT, F(threads), .min = 0, .max = NN_MAX_THREADS, .def = "0", .arg = "N",
	 .help = "worker threads, each filtering whole items;\n0: the cores this process may use;\noutput bytes do not depend on it"},
	OPT_MAX_RECORD(options),
	OPT_PROGRESS_QUIET(options),
	OPT_END,
};
#undef HZ
#undef F

static const opts_spec spec = {"bandpass", options_table, usage, epilog};

/* Designs the filter for the stream's rate and sets the output header's params. */
static void bp_start(bandpass *bp, const st_reader *r, sv *header)
{
	const sv *params = st_reader_params(r);
	const char *name = st_reader_name(r);
	const char *tensor = sv_get_str(params, "tensor");
	if (tensor && strcmp(tensor, "wave") != 0)
		cli_die(prog, EXIT_RUNTIME, "%s: header: the stream holds '%s' items; bandpass filters waveforms ('wave')",
		        name, tensor);
	long rate;
	char why[ST_ERRLEN];
	if (st_wave_rate(r, &rate, why))
		cli_die(prog, EXIT_RUNTIME, "%s", why);
	bp->rate = (double)rate;
	if (!(bp->high < bp->rate / 2)) /* a runtime error, as melspec's f_max above Nyquist */
		cli_die(prog, EXIT_RUNTIME,
		        "%s: band %g to %g Hz: the high edge must be below the Nyquist frequency, %g Hz at the stream's sample_rate %g",
		        name, bp->low, bp->high, bp->rate / 2, bp->rate);
	char err[256];
	if (iir_butter_bandpass((int)bp->order, bp->low, bp->high, bp->rate, bp->sos, err, sizeof err))
		cli_usage_error(prog, "%s", err);
	bp->padlen = iir_sos_padlen(bp->sos, (int)bp->order);
	bp->in_name = name;

	sv *out = st_header_params(header), *p = sv_map();
	int rc = !p || sv_set(p, "low", sv_float(bp->low)) || sv_set(p, "high", sv_float(bp->high)) ||
	         sv_set(p, "order", sv_int(bp->order)) || sv_set(p, "zero_phase", sv_bool(bp->zero_phase));
	if (!rc && bp->by_width)
		rc = sv_set(p, "center", sv_float(bp->center)) || sv_set(p, "width", sv_float(bp->width));
	/* a stream filtered twice keeps the record of the first filter */
	const sv *earlier = sv_get(params, "bandpass");
	if (!rc && earlier)
		rc = sv_set(p, "previous", sv_copy(earlier));
	if (rc || sv_set(out, "bandpass", p) || sv_set(out, "tensor", sv_str("wave")))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
}

/* Filters one item's wave in place with filter.  NULL, or what is wrong with the item. */
static const char *bp_flow(const bandpass *bp, iir_sos *filter, st_item *it, char *why, size_t len)
{
	st_tensor *t = st_item_tensor(it, "wave");
	if (!t)
		return "no 'wave' tensor";
	if (t->dtype != ST_F32) {
		snprintf(why, len, "tensor 'wave' is %s; bandpass takes float32 (<f4)", st_dtype_str(t->dtype));
		return why;
	}
	if (t->ndim != 1) {
		snprintf(why, len, "tensor 'wave' has %d dimensions; bandpass takes one (samples,)", t->ndim);
		return why;
	}
	size_t n = (size_t)t->shape[0];
	float *x = t->data;
	if (wave_check_samples(x, n, why, len))
		return why;
	if (!bp->zero_phase) {
		iir_sos_reset(filter);
		iir_sos_run_f32(filter, x, x, n);
		return NULL;
	}
	int rc = iir_sos_filtfilt_f32(filter, x, x, n);
	if (rc == -1)
		return "out of memory";
	if (rc == -2) {
		snprintf(why, len, "%zu samples, too short for --zero-phase (it needs more than %zu)", n, bp->padlen);
		return why;
	}
	return NULL;
}

/* bp_flow as an omap_fn; the message names the item as the input counts it. */
static int bp_flow_item(void *ctx, st_item *it, uint64_t seq, char *msg)
{
	worker *wk = ctx;
	char why[256];
	const char *bad = bp_flow(wk->bp, wk->filter, it, why, sizeof why);
	if (!bad)
		return 0;
	snprintf(msg, OMAP_MSGLEN, "%s: item %llu (%s): %s", wk->bp->in_name, (unsigned long long)seq + 1, it->key, bad);
	return -1;
}

/* n workers over bp, each with its own sections. */
static worker *bp_workers(const bandpass *bp, int n)
{
	worker *wk = calloc((size_t)n, sizeof *wk);
	if (!wk)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	for (int i = 0; i < n; i++) {
		wk[i].bp = bp;
		if (!(wk[i].filter = iir_sos_new(bp->sos, (int)bp->order)))
			cli_die(prog, EXIT_RUNTIME, "out of memory");
	}
	return wk;
}

static void bp_stop(worker *wk, int n)
{
	for (int i = 0; i < n; i++)
		iir_sos_free(wk[i].filter);
	free(wk);
}

/* The band from the options: --center/--width or --low/--high; returns the input's name. */
static const char *parse_args(int argc, char **argv, options *o, bandpass *bp)
{
	bool given[sizeof options_table / sizeof *options_table];
	memset(o, 0, sizeof *o);
	opts_defaults(&spec, o);
	int first = opts_parse(&spec, o, argc, argv, given);
	bool have_center = opts_was_given(&spec, given, "center"), have_width = opts_was_given(&spec, given, "width");
	bool have_low = opts_was_given(&spec, given, "low"), have_high = opts_was_given(&spec, given, "high");
	*bp = (bandpass){.center = o->center, .width = o->width, .low = o->low, .high = o->high, .order = o->order,
	                 .zero_phase = o->zero_phase};
	if ((have_low || have_high) && (have_center || have_width))
		cli_usage_error(prog, "give the band either as --center/--width or as --low/--high, not both");
	if (have_low != have_high)
		cli_usage_error(prog, "--low and --high go together");
	if (have_center && !have_width)
		cli_usage_error(prog, "--center needs --width");
	if (!have_low && !have_width)
		cli_usage_error(prog, "no band given: use --width HZ (centred on --center, default 500 Hz) or --low HZ --high HZ");
	if (have_width) {
		bp->by_width = true;
		bp->low = bp->center - bp->width / 2;
		bp->high = bp->center + bp->width / 2;
		if (!(bp->width > 0 && bp->low > 0))
			cli_usage_error(prog, "--center %g --width %g gives the band %g to %g Hz; edges must satisfy 0 < low < high < Nyquist",
			                bp->center, bp->width, bp->low, bp->high);
	} else if (!(bp->low > 0 && bp->low < bp->high)) {
		cli_usage_error(prog, "band %g to %g Hz: edges must satisfy 0 < low < high < Nyquist", bp->low, bp->high);
	}
	if (argc - first > 1)
		cli_usage_error(prog, "one input stream at most (join several with stream-cat)");
	if (o->threads == 0)
		o->threads = nn_cpu_count();
	return first < argc ? argv[first] : "-";
}

int main(int argc, char **argv)
{
	options o;
	bandpass bp;
	const char *input = parse_args(argc, argv, &o, &bp);
	cli_stdout_init();

	char err[ST_ERRLEN];
	/* static: the errors found in bp_start and bp_workers exit from inside,
	 * and what the reader holds stays reachable then (LeakSanitizer) */
	static st_reader *r;
	/* no ST_READ_FINITE: the workers' wave_check_samples is the one scan of
	 * the samples, with the reader's words for NaN/Inf (as in melspec); other
	 * tensors pass through unread */
	r = st_reader_open(input, o.max_record, 0, err);
	if (!r)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	sv *header = st_header_derive(st_reader_header(r), prog, argc, argv);
	if (!header)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	bp_start(&bp, r, header);
	st_writer *w = st_writer_open(o.output, header, err);
	if (!w)
		cli_die(prog, EXIT_RUNTIME, "%s", err);

	worker *wk = bp_workers(&bp, o.threads);
	cli_progress pr;
	cli_progress_init(&pr, prog, o.progress, o.quiet);
	char msg[OMAP_MSGLEN];
	if (omap_run(r, w, o.threads, bp_flow_item, wk, sizeof *wk, &pr, msg)) {
		st_writer_abort(w);
		cli_die(prog, EXIT_RUNTIME, "%s", msg);
	}
	uint64_t items = st_writer_items(w);
	if (st_writer_close(w, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	cli_progress_done(&pr, items, "items");
	st_reader_close(r);
	sv_free(header);
	bp_stop(wk, o.threads);
	cli_close_stdout(prog);
	return 0;
}
