/* audio-write - write the waveforms of a stream as audio files. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audio.h"
#include "cli.h"
#include "keyset.h"
#include "opts.h"
#include "stream.h"

static const char *prog = "audio-write";

static const char usage[] =
	"Usage: audio-write [OPTION]... [STREAM]\n"
	"Write each item's 'wave' tensor (float32, mono) from STREAM (default stdin) as\n"
	"an audio file DIR/KEY.EXT at the stream's sample rate.  Each file appears\n"
	"atomically, complete or not at all.  Values outside [-1, 1] are clipped (and\n"
	"counted); the rest are rounded to the nearest sample, without dither.\n"
	"\n";

static const char epilog[] =
	"\n"
	"A key containing '/' or starting with '.' is an error (no file outside DIR,\n"
	"no hidden files), as is a key seen twice.\n"
	"\n"
	"Examples:\n"
	"  audio-write -d listen/ < filtered.msgpack\n"
	"  audio-read a.wav | bandpass --width 100 | audio-write -t flac -b 24\n";

typedef struct {
	const char *dir, *type;
	int bits;
	bool verbose, progress, quiet;
	size_t max_record;
} options;

#define F(field) offsetof(options, field)
static const opt_desc options_table[] = {
	{"dir", 'd', OPT_STRING, F(dir), .def = ".", .arg = "DIR", .help = "directory for the files (created if missing)"},
	{"type", 't', OPT_STRING, F(type), .def = "wav", .arg = "EXT",
	 .help = "file extension and format, any libsox writes: wav,\nflac, ogg, mp3, aiff, au, ..."},
	{"bits", 'b', OPT_INT, F(bits), .min = 1, .max = 64, .arg = "N",
	 .help = "bits per sample (default 16 where the format has\nsizes; lossy formats such as ogg and mp3 take none)"},
	{"verbose", 'v', OPT_FLAG, F(verbose), .help = "also pass on libsox's own messages"},
	OPT_MAX_RECORD(options),
	OPT_PROGRESS_QUIET(options),
	OPT_END,
};
#undef F

static const opts_spec spec = {"audio-write", options_table, usage, epilog};

static void ensure_dir(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) != 0) {
		if (errno != ENOENT || mkdir(dir, 0777) != 0)
			cli_die(prog, EXIT_RUNTIME, "%s: %s", dir, strerror(errno));
	} else if (!S_ISDIR(st.st_mode)) {
		cli_die(prog, EXIT_RUNTIME, "%s: %s", dir, strerror(ENOTDIR));
	}
}

/* The item's wave, or dies naming the key. */
static const st_tensor *item_wave(const st_reader *r, const st_item *it)
{
	const char *name = st_reader_name(r);
	if (strchr(it->key, '/') || it->key[0] == '.')
		cli_die(prog, EXIT_RUNTIME, "%s: item '%s': a key with '/' or a leading '.' cannot name a file", name, it->key);
	const st_tensor *t = st_item_tensor(it, "wave");
	if (!t)
		cli_die(prog, EXIT_RUNTIME, "%s: item '%s': no 'wave' tensor", name, it->key);
	if (t->dtype != ST_F32 || t->ndim != 1)
		cli_die(prog, EXIT_RUNTIME, "%s: item '%s': 'wave' is %s with %d dimensions; float32 (samples,) expected", name,
		        it->key, st_dtype_str(t->dtype), t->ndim);
	if (t->shape[0] == 0)
		cli_die(prog, EXIT_RUNTIME, "%s: item '%s': 'wave' has no samples", name, it->key);
	return t;
}

/* Options, checked against what libsox can write; returns the input's name. */
static const char *parse_args(int argc, char **argv, options *o)
{
	memset(o, 0, sizeof *o);
	opts_defaults(&spec, o);
	o->bits = -1;
	int first = opts_parse(&spec, o, argc, argv, NULL);
	if (argc - first > 1)
		cli_usage_error(prog, "one input stream at most");
	if (!*o->dir)
		cli_usage_error(prog, "--dir: empty directory name");
	if (!*o->type || strchr(o->type, '/') || strchr(o->type, '.'))
		cli_usage_error(prog, "--type: '%s' is not a file extension", o->type);
	char err[ST_ERRLEN];
	if (audio_init(o->verbose, err, sizeof err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	if (!audio_can_write(o->type, 0))
		cli_usage_error(prog, "--type: libsox cannot write '%s' files", o->type);
	if (o->bits < 0)
		o->bits = audio_can_write(o->type, 16) ? 16 : 0;
	else if (!audio_can_write(o->type, (unsigned)o->bits))
		cli_usage_error(prog, "--bits: libsox cannot write %d-bit '%s' files", o->bits, o->type);
	return first < argc ? argv[first] : "-";
}

/* Writes one item's file; returns the samples clipped. */
static uint64_t write_item(const options *o, const st_tensor *t, const char *key, long rate, char *path)
{
	char err[ST_ERRLEN];
	const char *dir = o->dir;
	snprintf(path, strlen(dir) + strlen(key) + strlen(o->type) + 3, "%s%s%s.%s", dir,
	         dir[strlen(dir) - 1] == '/' ? "" : "/", key, o->type);
	uint64_t clipped;
	if (audio_write_file(path, o->type, t->data, (size_t)t->shape[0], (int)rate, (unsigned)o->bits, &clipped, err,
	                     sizeof err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	if (clipped)
		cli_warn(prog, "%s: %llu samples outside [-1, 1] clipped", path, (unsigned long long)clipped);
	return clipped;
}

int main(int argc, char **argv)
{
	options o;
	const char *input = parse_args(argc, argv, &o);
	char err[ST_ERRLEN];
	st_reader *r = st_reader_open(input, o.max_record, ST_READ_FINITE, err);
	if (!r)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	long rate;
	if (st_wave_rate(r, &rate, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	ensure_dir(o.dir);

	keyset *seen = keyset_new();
	st_item it;
	if (!seen || st_item_init(&it))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	cli_progress pr;
	cli_progress_init(&pr, prog, o.progress, o.quiet);
	uint64_t clipped_total = 0, clipped_files = 0;
	int rc;
	while ((rc = st_reader_next(r, &it)) == ST_OK) {
		const st_tensor *t = item_wave(r, &it);
		int added = keyset_add(seen, it.key);
		if (added < 0)
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		if (added == 0)
			cli_die(prog, EXIT_RUNTIME, "%s: item '%s': duplicate key", st_reader_name(r), it.key);
		char *path = malloc(strlen(o.dir) + strlen(it.key) + strlen(o.type) + 3);
		if (!path)
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		uint64_t clipped = write_item(&o, t, it.key, rate, path);
		clipped_total += clipped;
		clipped_files += clipped > 0;
		free(path);
		cli_progress_update(&pr, st_reader_items(r), 0, "files");
	}
	if (rc != ST_END)
		cli_die(prog, EXIT_RUNTIME, "%s", st_reader_error(r));
	cli_progress_done(&pr, st_reader_items(r), "files");
	if (clipped_files > 1)
		cli_warn(prog, "%llu samples clipped in %llu of %llu files", (unsigned long long)clipped_total,
		         (unsigned long long)clipped_files, (unsigned long long)st_reader_items(r));
	st_item_free(&it);
	keyset_free(seen);
	st_reader_close(r);
	audio_quit();
	cli_close_stdout(prog);
	return 0;
}
