/* audio-read - decode audio files into a stream of mono waveforms. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audio.h"
#include "cli.h"
#include "keyset.h"
#include "opts.h"
#include "stream.h"

static const char *prog = "audio-read";

static const char usage[] =
	"Usage: audio-read [OPTION]... FILE...\n"
	"  or:  audio-read [OPTION]... -l LIST\n"
	"Decode audio files (any format libsox reads) into a sertools stream of mono\n"
	"float32 waveforms at one sample rate: channels are averaged and the rate is\n"
	"converted exactly as 'sox FILE -r RATE -c 1 -t f32 -' does.  Each item's key\n"
	"is the file's base name without its extension, or the LIST's first word.\n"
	"\n";

static const char epilog[] =
	"\n"
	"Examples:\n"
	"  audio-read *.wav | bandpass --width 100 | melspec > feats.msgpack\n"
	"  audio-read -l wav.scp -k train.keys -o train-wave.msgpack\n"
	"  echo 'k1 sox x.flac -t wav - trim 0 3 |' | audio-read -l -\n";

typedef struct {
	const char *list, *keys, *output;
	bool missing_ok, skip_bad, verbose, progress, quiet;
	int rate;
	size_t max_record;
} options;

#define F(field) offsetof(options, field)
static const opt_desc options_table[] = {
	{"list", 'l', OPT_STRING, F(list), .arg = "FILE",
	 .help = "read 'key path' lines from FILE ('-': stdin), Kaldi\nscp style; blank lines and '#' lines skipped; a\nline ending in '|' is a command whose output is read"},
	{"keys", 'k', OPT_STRING, F(keys), .arg = "FILE",
	 .help = "decode only the keys listed in FILE (first word per\nline); a listed key not among the inputs is an error"},
	{"missing-ok", 0, OPT_FLAG, F(missing_ok), .help = "...unless this is given (then counted on stderr)"},
	{"rate", 'r', OPT_INT, F(rate), .min = 1000, .max = 768000, .def = "16000", .arg = "HZ",
	 .help = "output sample rate"},
	{"output", 'o', OPT_STRING, F(output), .arg = "FILE", .help = "write the stream to FILE atomically (default stdout)"},
	{"skip-bad", 0, OPT_FLAG, F(skip_bad),
	 .help = "skip files that cannot be decoded, with a warning\neach and a count at the end (default: an error)"},
	{"verbose", 'v', OPT_FLAG, F(verbose), .help = "also pass on libsox's own messages"},
	{"max-record", 0, OPT_SIZE, F(max_record), .arg = "N",
	 .help = "record size limit in bytes (K/M/G suffix; default\n256M, or $SERTOOLS_MAX_RECORD); a longer file is\nan error"},
	OPT_PROGRESS_QUIET(options),
	OPT_END,
};
#undef F

static const opts_spec spec = {"audio-read", options_table, usage, epilog};

/* path is a file name, or (pipe) a shell command whose standard output is
 * the audio, as in Kaldi's "key sox x.wav -t wav - |" entries. */
typedef struct {
	char *key, *path;
	bool pipe;
} job;

typedef struct {
	job *v;
	size_t n, cap;
} jobs;

static void add_job(jobs *j, const char *key, const char *path)
{
	if (j->n == j->cap) {
		j->cap = j->cap ? 2 * j->cap : 64;
		if (!(j->v = realloc(j->v, j->cap * sizeof *j->v)))
			cli_die(prog, EXIT_RUNTIME, "out of memory");
	}
	job *x = &j->v[j->n++];
	x->key = strdup(key);
	x->path = strdup(path);
	if (!x->key || !x->path)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	x->pipe = false;
}

/* "dir/a.b.wav" -> "a.b" (st_key_from_path). */
static void add_file(jobs *j, const char *path)
{
	const char *base;
	size_t len = st_key_from_path(path, strlen(path), &base);
	if (len == 0)
		cli_die(prog, EXIT_RUNTIME, "%s: no file name to make a key from", path);
	char *key = strndup(base, len);
	if (!key)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	add_job(j, key, path);
	free(key);
}

static void read_list(const char *name, jobs *j)
{
	bool is_stdin = strcmp(name, "-") == 0;
	const char *shown = is_stdin ? "stdin" : name;
	FILE *f = is_stdin ? stdin : fopen(name, "r");
	if (!f)
		cli_die(prog, EXIT_RUNTIME, "%s: %s", name, strerror(errno));
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (len > 0 && strchr(" \t\r\n", line[len - 1]))
			line[--len] = '\0';
		char *key = line + strspn(line, " \t");
		if (!*key || *key == '#')
			continue;
		char *sep = key + strcspn(key, " \t");
		if (!*sep)
			cli_die(prog, EXIT_RUNTIME, "%s: line %zu: no path after the key '%s'", shown, lineno, key);
		*sep++ = '\0';
		add_job(j, key, sep + strspn(sep, " \t"));
		job *x = &j->v[j->n - 1];
		size_t plen = strlen(x->path);
		if (plen && x->path[plen - 1] == '|') {
			x->pipe = true;
			x->path[--plen] = '\0';
			while (plen && strchr(" \t", x->path[plen - 1]))
				x->path[--plen] = '\0';
			if (!plen)
				cli_die(prog, EXIT_RUNTIME, "%s: line %zu: key '%s': an empty command before '|'", shown, lineno, key);
		}
	}
	if (ferror(f))
		cli_die(prog, EXIT_RUNTIME, "%s: %s", shown, strerror(errno));
	free(line);
	if (!is_stdin)
		fclose(f);
}

/* Duplicate keys are refused, and --keys narrows the list, before any decoding. */
static void select_jobs(jobs *j, const char *keys_file, bool missing_ok)
{
	char err[ST_ERRLEN];
	keyset *seen = keyset_new();
	if (!seen)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	for (size_t i = 0; i < j->n; i++) {
		int r = keyset_add(seen, j->v[i].key);
		if (r < 0)
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		if (r == 0)
			cli_die(prog, EXIT_RUNTIME, "%s: duplicate key '%s'", j->v[i].path, j->v[i].key);
	}
	keyset_free(seen);
	if (!keys_file)
		return;
	keyset *keys = keyset_load(keys_file, err, sizeof err);
	if (!keys)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	size_t kept = 0;
	for (size_t i = 0; i < j->n; i++) {
		if (keyset_mark(keys, j->v[i].key)) {
			j->v[kept++] = j->v[i];
		} else {
			free(j->v[i].key);
			free(j->v[i].path);
		}
	}
	j->n = kept;
	size_t missing = keyset_unmarked(keys, err, sizeof err);
	if (missing && !missing_ok)
		cli_die(prog, EXIT_RUNTIME, "%s: %zu listed keys are not among the inputs (%s)", keys_file, missing, err);
	if (missing)
		cli_warn(prog, "%s: %zu listed keys are not among the inputs", keys_file, missing);
	keyset_free(keys);
}

static _Noreturn void die_abort(st_writer *w, const char *err)
{
	st_writer_abort(w);
	cli_die(prog, EXIT_RUNTIME, "%s", err);
}

/* The path with each byte that is not part of valid UTF-8 as \xNN. */
static void escape_path(const char *s, char *buf, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; s[i] && o + 4 < len;) {
		size_t n = 1;
		while (n < 4 && s[i + n] && !sv_utf8_valid(s + i, n))
			n++;
		if (sv_utf8_valid(s + i, n)) {
			memcpy(buf + o, s + i, n);
			o += n;
			i += n;
		} else {
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", (unsigned char)s[i]);
			i++;
		}
	}
	buf[o] = '\0';
}

/* Stream strings are UTF-8: a path or key that is not is refused (the file
 * is skipped under --skip-bad), its bytes shown escaped.  */
static bool utf8_job(const job *x, char *err, size_t len)
{
	const bool path_ok = sv_utf8_valid(x->path, strlen(x->path));
	if (path_ok && sv_utf8_valid(x->key, strlen(x->key)))
		return true;
	char shown[1024];
	escape_path(x->path, shown, sizeof shown);
	snprintf(err, len, "%.300s: %s is not valid UTF-8, which the stream's %s field must be", shown,
	         path_ok ? "the key" : "the path", path_ok ? "key" : "source");
	return false;
}

/* The header records the command line, and stream strings are UTF-8: an
 * argument that is not (a file name) is recorded escaped as \xNN. */
static sv *header_new(int argc, char **argv)
{
	char **args = calloc((size_t)argc + 1, sizeof *args);
	for (int i = 0; args && i < argc; i++) {
		size_t len = 4 * strlen(argv[i]) + 1;
		if (!(args[i] = malloc(len)))
			cli_die(prog, EXIT_RUNTIME, "out of memory");
		escape_path(argv[i], args[i], len);
	}
	sv *h = args ? st_header_new(prog, argc, args) : NULL;
	for (int i = 0; args && i < argc; i++)
		free(args[i]);
	free(args);
	return h;
}

/* The files to decode, from the list or the arguments, narrowed by --keys. */
static jobs collect_jobs(const char *list, int nfiles, char **files, const char *keys_file, bool missing_ok)
{
	jobs j = {0};
	if (list)
		read_list(list, &j);
	for (int i = 0; !list && i < nfiles; i++)
		add_file(&j, files[i]);
	select_jobs(&j, keys_file, missing_ok);
	return j;
}

static st_writer *open_output(const char *output, long rate, int argc, char **argv)
{
	char err[ST_ERRLEN];
	sv *header = header_new(argc, argv);
	sv *params = header ? st_header_params(header) : NULL;
	if (!params || sv_set(params, "sample_rate", sv_int(rate)) || sv_set(params, "tensor", sv_str("wave")))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	st_writer *w = st_writer_open(output, header, err);
	if (!w)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	sv_free(header); /* the writer keeps no reference: it wrote it at once */
	return w;
}

/* Runs a list entry's command with sh -c, its standard output into the
 * file tmp (libsox needs to see the audio's header, and may seek).  0, or
 * -1 with "key 'K': command 'C |': why" in err. */
static int run_pipe(const job *x, const char *tmp, char *err, size_t errlen)
{
	int out = open(tmp, O_WRONLY | O_TRUNC);
	int in = open("/dev/null", O_RDONLY); /* the list itself may be on our stdin */
	if (out < 0 || in < 0) {
		snprintf(err, errlen, "%.300s: %s", tmp, strerror(errno));
		if (out >= 0)
			close(out);
		if (in >= 0)
			close(in);
		return -1;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(in, STDIN_FILENO);
		dup2(out, STDOUT_FILENO);
		execl("/bin/sh", "sh", "-c", x->path, (char *)NULL);
		_exit(127);
	}
	close(in);
	close(out);
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		snprintf(err, errlen, "key '%s': command '%s |': %s", x->key, x->path, strerror(errno));
		return -1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		snprintf(err, errlen, "key '%s': command '%s |' failed with exit status %d", x->key, x->path,
		         WEXITSTATUS(status));
	else
		snprintf(err, errlen, "key '%s': command '%s |' killed by signal %d", x->key, x->path,
		         WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return -1;
}

/* Decodes a file, or a command's output by way of a temporary file. */
static int decode_job(const job *x, long rate, size_t max_samples, audio_wave *wave, char *err, size_t errlen)
{
	if (!x->pipe)
		return audio_decode(x->path, (int)rate, max_samples, wave, err, errlen);
	const char *dir = getenv("TMPDIR");
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s/audio-read.XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(tmp);
	if (fd < 0) {
		snprintf(err, errlen, "key '%s': temporary file in %s: %s", x->key, dir && *dir ? dir : "/tmp",
		         strerror(errno));
		return -1;
	}
	close(fd);
	char why[ST_ERRLEN];
	int rc = run_pipe(x, tmp, err, errlen);
	if (rc == 0 && (rc = audio_decode(tmp, (int)rate, max_samples, wave, why, sizeof why)) != 0) {
		const char *after = strncmp(why, tmp, strlen(tmp)) == 0 ? why + strlen(tmp) : why;
		snprintf(err, errlen, "key '%.100s': command '%.200s |': output%.150s", x->key, x->path, after);
	}
	unlink(tmp);
	return rc;
}

/* Decodes one file into the stream: true, or false when it was skipped
 * (--skip-bad); any other failure ends the run. */
static bool put_file(st_writer *w, st_item *it, const job *x, long rate, size_t max_record, bool skip_bad)
{
	char err[ST_ERRLEN];
	/* the record holds the samples plus the key, the path and a few hundred bytes of framing */
	size_t overhead = 512 + strlen(x->key) + strlen(x->path);
	size_t max_samples = max_record > overhead ? (max_record - overhead) / sizeof(float) : 1;
	audio_wave wave;
	if (!utf8_job(x, err, sizeof err) || decode_job(x, rate, max_samples, &wave, err, sizeof err)) {
		if (!skip_bad)
			die_abort(w, err);
		cli_warn(prog, "%s (skipped)", err);
		return false;
	}
	if (wave.nonfinite)
		cli_warn(prog, "%s: %llu samples are NaN or infinite (read as -1 or +1, as sox reads them)", x->path,
		         (unsigned long long)wave.nonfinite);
	if (wave.clipped)
		cli_warn(prog, "%s: %llu samples clipped while mixing or resampling (as sox clips them)", x->path,
		         (unsigned long long)wave.clipped);
	st_item_clear(it);
	int64_t shape[1] = {(int64_t)wave.n};
	/* a command keeps its '|', as the list wrote it */
	size_t slen = strlen(x->path) + 3;
	char *shown = malloc(slen);
	if (shown)
		snprintf(shown, slen, "%s%s", x->path, x->pipe ? " |" : "");
	sv *source = shown ? sv_str(shown) : NULL;
	free(shown);
	if (st_item_set_key(it, x->key) || !st_item_take_tensor(it, "wave", ST_F32, 1, shape, wave.samples) ||
	    !source || st_item_set_field(it, "source", source))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	if (st_writer_put(w, it)) {
		snprintf(err, sizeof err, "%s", st_writer_error(w));
		die_abort(w, err);
	}
	return true;
}

/* The operands are audio files; argv[*first..] after the call. */
static void parse_args(int argc, char **argv, options *o, int *first)
{
	memset(o, 0, sizeof *o);
	opts_defaults(&spec, o);
	*first = opts_parse(&spec, o, argc, argv, NULL);
	if (o->list && *first < argc)
		cli_usage_error(prog, "give audio files or --list, not both");
	if (!o->list && *first == argc)
		cli_usage_error(prog, "no audio files given");
}

int main(int argc, char **argv)
{
	options o;
	int first;
	parse_args(argc, argv, &o, &first);
	cli_stdout_init();
	char err[ST_ERRLEN];
	if (!o.max_record && st_max_record_env(&o.max_record, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);

	jobs j = collect_jobs(o.list, argc - first, argv + first, o.keys, o.missing_ok);

	if (audio_init(o.verbose, err, sizeof err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	st_writer *w = open_output(o.output, o.rate, argc, argv);

	st_item it;
	if (st_item_init(&it))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	cli_progress pr;
	cli_progress_init(&pr, prog, o.progress, o.quiet);
	size_t skipped = 0;
	for (size_t i = 0; i < j.n; i++) {
		skipped += !put_file(w, &it, &j.v[i], o.rate, o.max_record, o.skip_bad);
		cli_progress_update(&pr, i + 1, j.n, "files");
	}
	cli_progress_done(&pr, j.n, "files");
	if (st_writer_close(w, err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	if (skipped)
		cli_warn(prog, "skipped %zu of %zu files that could not be decoded", skipped, j.n);
	st_item_free(&it);
	for (size_t i = 0; i < j.n; i++) {
		free(j.v[i].key);
		free(j.v[i].path);
	}
	free(j.v);
	audio_quit();
	cli_close_stdout(prog);
	return 0;
}
