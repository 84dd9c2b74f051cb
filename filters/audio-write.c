/* audio-write - write the waveforms of a stream as audio files. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audio.h"
#include "cli.h"
#include "keyset.h"
#include "stream.h"

static const char *prog = "audio-write";

static const char usage[] =
	"Usage: audio-write [OPTION]... [STREAM]\n"
	"Write each item's 'wave' tensor (float32, mono) from STREAM (default stdin) as\n"
	"an audio file DIR/KEY.EXT at the stream's sample rate.  Each file appears\n"
	"atomically, complete or not at all.  Values outside [-1, 1] are clipped (and\n"
	"counted); the rest are rounded to the nearest sample, without dither.\n"
	"\n"
	"  -d, --dir DIR        directory for the files (default .; created if missing)\n"
	"  -t, --type EXT       file extension and format, any libsox writes: wav, flac,\n"
	"                       ogg, mp3, aiff, au, ... (default wav)\n"
	"  -b, --bits N         bits per sample (default 16 where the format has sizes;\n"
	"                       lossy formats such as ogg and mp3 take none)\n"
	"      --progress       show progress on stderr even when it is not a terminal\n"
	"  -v, --verbose        also pass on libsox's own messages\n"
	"      --max-record N   record size limit in bytes (K/M/G suffix; default 256M,\n"
	"                       or $SERTOOLS_MAX_RECORD)\n"
	"      --help           show this help\n"
	"      --version        show the version\n"
	"\n"
	"A key containing '/' or starting with '.' is an error (no file outside DIR,\n"
	"no hidden files), as is a key seen twice.\n"
	"\n"
	"Examples:\n"
	"  audio-write -d listen/ < filtered.msgpack\n"
	"  audio-read a.wav | bandpass --width 100 | audio-write -t flac -b 24\n";

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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, 0, 'd'},        {"type", required_argument, 0, 't'},
		{"bits", required_argument, 0, 'b'},       {"progress", no_argument, 0, 'P'},
		{"verbose", no_argument, 0, 'v'},          {"max-record", required_argument, 0, 'R'},
		{"help", no_argument, 0, 'h'},             {"version", no_argument, 0, 'V'},
		{0, 0, 0, 0},
	};
	const char *dir = ".", *type = "wav";
	long bits = -1;
	bool progress = false, verbose = false;
	size_t max_record = 0;
	int c;
	while ((c = getopt_long(argc, argv, "d:t:b:v", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 't': type = optarg; break;
		case 'b':
			if (!cli_parse_long(optarg, 1, 64, &bits))
				cli_usage_error(prog, "--bits: '%s' is not a sample size", optarg);
			break;
		case 'P': progress = true; break;
		case 'v': verbose = true; break;
		case 'R':
			if (!cli_parse_size(optarg, &max_record))
				cli_usage_error(prog, "--max-record: '%s' is not a size", optarg);
			break;
		case 'h': cli_help(usage);
		case 'V': cli_version(prog);
		default: cli_usage_error(prog, "unknown option");
		}
	}
	if (argc - optind > 1)
		cli_usage_error(prog, "one input stream at most");
	if (!*dir)
		cli_usage_error(prog, "--dir: empty directory name");
	if (!*type || strchr(type, '/') || strchr(type, '.'))
		cli_usage_error(prog, "--type: '%s' is not a file extension", type);
	char err[ST_ERRLEN];
	if (audio_init(verbose, err, sizeof err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	if (!audio_can_write(type, 0))
		cli_usage_error(prog, "--type: libsox cannot write '%s' files", type);
	if (bits < 0)
		bits = audio_can_write(type, 16) ? 16 : 0;
	else if (!audio_can_write(type, (unsigned)bits))
		cli_usage_error(prog, "--bits: libsox cannot write %ld-bit '%s' files", bits, type);

	st_reader *r = st_reader_open(optind < argc ? argv[optind] : "-", max_record, ST_READ_FINITE, err);
	if (!r)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	long rate;
	if (st_wave_rate(r, &rate, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	ensure_dir(dir);

	keyset *seen = keyset_new();
	st_item it;
	if (!seen || st_item_init(&it))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	cli_progress pr;
	cli_progress_init(&pr, prog, progress);
	uint64_t clipped_total = 0, clipped_files = 0;
	int rc;
	while ((rc = st_reader_next(r, &it)) == ST_OK) {
		const st_tensor *t = item_wave(r, &it);
		int added = keyset_add(seen, it.key);
		if (added < 0)
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		if (added == 0)
			cli_die(prog, EXIT_RUNTIME, "%s: item '%s': duplicate key", st_reader_name(r), it.key);
		size_t len = strlen(dir) + strlen(it.key) + strlen(type) + 3;
		char *path = malloc(len);
		if (!path)
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		snprintf(path, len, "%s%s%s.%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", it.key, type);
		uint64_t clipped;
		if (audio_write_file(path, type, t->data, (size_t)t->shape[0], (int)rate, (unsigned)bits, &clipped, err,
		                     sizeof err))
			cli_die(prog, EXIT_RUNTIME, "%s", err);
		if (clipped) {
			cli_warn(prog, "%s: %llu samples outside [-1, 1] clipped", path, (unsigned long long)clipped);
			clipped_total += clipped;
			clipped_files++;
		}
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
