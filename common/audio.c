#include "audio.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sox.h>

#include "atomic.h"
#include "value.h"

/* Samples handed to libsox's encoder per call when writing. */
#define WRITE_CHUNK 16384

static void libsox_message(unsigned level, const char *source, const char *fmt, va_list ap)
{
	static const char *const what[] = {"", "error", "warning", "info", "debug", "debug"};
	(void)source;
	if (level > sox_globals.verbosity) /* libsox leaves the filtering to the handler */
		return;
	fprintf(stderr, "libsox: %s: ", what[level < 6 ? level : 5]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int audio_init(bool verbose, char *err, size_t errlen)
{
	/* before sox_init: it loads the format plugins and may already complain */
	sox_globals.verbosity = verbose ? 2 : 0;
	sox_globals.output_message_handler = libsox_message;
	if (sox_init() != SOX_SUCCESS) {
		snprintf(err, errlen, "libsox: initialisation failed");
		return -1;
	}
	return 0;
}

void audio_quit(void)
{
	sox_quit();
}

/* ---- decoding ---- */

typedef struct {
	float *buf;
	size_t n, cap, max;
	uint64_t clipped;
	enum { SINK_OK, SINK_NOMEM, SINK_TOO_LONG } failed;
} sink_state;

/* As sox's f32 writer (SOX_SAMPLE_TO_FLOAT_32BIT): round half up to 25
 * significant bits, which float holds exactly; saturate at +1. */
static inline float sample_to_float(sox_sample_t s, uint64_t *clipped)
{
	if (s > INT32_MAX - 64) {
		++*clipped;
		return 1.0f;
	}
	return (float)((double)((s + 64) & -128) * (1.0 / 2147483648.0));
}

/* A long file's wave is held whole in memory, and filling fresh pages one
 * fault at a time is most of the decoder's system time: when the length is
 * known, the pages are faulted in by one call (Linux 5.14+; only a hint, so
 * its failure does not matter).  Not 2 MiB pages (MADV_HUGEPAGE): with THP's
 * default "madvise" defrag the kernel compacts memory to find them, and on
 * a 2-core AMD EPYC that made an hour of 16 kHz (230 MB) cost 0.18-0.44 s of
 * faults against 0.10 s with 4 KiB pages - audio-read 1.11x the sox
 * command's wall time instead of 1.03x. */
static void prefault(void *p, size_t len)
{
#ifdef MADV_POPULATE_WRITE
	const uintptr_t page = 4096;
	uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1), hi = ((uintptr_t)p + len) & ~(page - 1);
	if (hi > lo)
		(void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
#else
	(void)p, (void)len;
#endif
}

/* Room for need samples: exactly that many, or (while streaming) doubling. */
static int sink_grow(sink_state *s, size_t need, bool exact)
{
	if (s->max && need > s->max) {
		s->failed = SINK_TOO_LONG;
		return -1;
	}
	size_t cap = exact ? need : s->cap ? s->cap : 1 << 16;
	while (cap < need)
		cap = cap > SIZE_MAX / 8 ? need : 2 * cap;
	if (s->max && cap > s->max)
		cap = s->max;
	float *p = cap <= SIZE_MAX / sizeof *p ? sv_aligned_alloc(cap * sizeof *p) : NULL;
	if (!p) {
		s->failed = SINK_NOMEM;
		return -1;
	}
	if (exact)
		prefault(p, cap * sizeof *p);
	if (s->n)
		memcpy(p, s->buf, s->n * sizeof *p);
	free(s->buf);
	s->buf = p;
	s->cap = cap;
	return 0;
}

/* The last effect of the decoding chain: it keeps what reaches it. */
static int sink_flow(sox_effect_t *effp, const sox_sample_t *ibuf, sox_sample_t *obuf, size_t *isamp, size_t *osamp)
{
	(void)obuf;
	sink_state *s = *(sink_state **)effp->priv;
	size_t len = *isamp;
	*osamp = 0;
	if (len == 0) /* s->buf may still be NULL: no pointer arithmetic on it */
		return SOX_SUCCESS;
	if (s->n + len > s->cap && sink_grow(s, s->n + len, false))
		return SOX_EOF;
	float *out = s->buf + s->n;
	for (size_t i = 0; i < len; i++)
		out[i] = sample_to_float(ibuf[i], &s->clipped);
	s->n += len;
	return SOX_SUCCESS;
}

static const sox_effect_handler_t sink_handler = {
	"sertools-sink", NULL, SOX_EFF_MCHAN, NULL, NULL, sink_flow, NULL, NULL, NULL, sizeof(sink_state *),
};

/* libsox reads "|command" and URLs through popen; a path is a file here. */
static const char *as_file_path(const char *path, char *buf, size_t len)
{
	size_t scheme = strspn(path, "abcdefghijklmnopqrstuvwxyz");
	if (path[0] != '|' && !(scheme && strncmp(path + scheme, "://", 3) == 0))
		return path;
	snprintf(buf, len, "./%s", path);
	return buf;
}

/* libsox is silenced, so say why sox_open_read failed from what the file is. */
static void explain_open_failure(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: %s", path, strerror(EISDIR));
		return;
	}
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return;
	}
	int c = fgetc(f);
	int e = ferror(f) ? errno : 0;
	fclose(f);
	if (e)
		snprintf(err, errlen, "%s: %s", path, strerror(e));
	else if (c == EOF)
		snprintf(err, errlen, "%s: empty file", path);
	else
		snprintf(err, errlen, "%s: not audio that libsox can decode (unknown format or bad header)", path);
}

/* Appends effect h (with options argv) to chain; signal becomes its output. */
static int add_effect(sox_effects_chain_t *chain, const sox_effect_handler_t *h, int argc, char **argv,
                      sox_signalinfo_t *signal, const sox_signalinfo_t *target, sink_state *sink)
{
	sox_effect_t *e = h ? sox_create_effect(h) : NULL;
	if (!e)
		return -1;
	if (sink)
		*(sink_state **)e->priv = sink;
	if (sox_effect_options(e, argc, argv) != SOX_SUCCESS) {
		free(e->priv);
		free(e);
		return -1;
	}
	if (sox_add_effect(chain, e, signal, target) != SOX_SUCCESS) {
		free(e->priv);
		free(e);
		return -1;
	}
	free(e); /* the chain holds a copy, and e->priv */
	return 0;
}

/* The effects chain input -> [channels] -> [rate] -> sink of an open file,
 * in the order the sox command uses (fewer channels first, then the rate),
 * the sink's buffer sized once from the length libsox expects.  NULL with
 * a message when libsox refuses or memory runs out. */
static sox_effects_chain_t *decode_chain(sox_format_t *in, int rate, sink_state *sink, const char *path, char *err,
                                         size_t errlen)
{
	sox_encodinginfo_t f32;
	sox_init_encodinginfo(&f32);
	f32.encoding = SOX_ENCODING_FLOAT;
	f32.bits_per_sample = 32;
	sox_signalinfo_t signal = in->signal, target = in->signal;
	target.channels = 1;
	target.rate = rate;
	sox_effects_chain_t *chain = sox_create_effects_chain(&in->encoding, &f32);
	char *input_args[] = {(char *)in};
	int bad = !chain || add_effect(chain, sox_find_effect("input"), 1, input_args, &signal, &in->signal, NULL);
	if (!bad && signal.channels != 1)
		bad = add_effect(chain, sox_find_effect("channels"), 0, NULL, &signal, &target, NULL);
	if (!bad && signal.rate != target.rate)
		bad = add_effect(chain, sox_find_effect("rate"), 0, NULL, &signal, &target, NULL);
	if (bad) {
		snprintf(err, errlen, "%s: libsox could not set up decoding (%u channels, %g Hz to %d Hz)", path,
		         in->signal.channels, in->signal.rate, rate);
		goto fail;
	}
	/* the length libsox expects (exact for most formats, an estimate for some)
	 * sizes the buffer once; the sink enforces max_samples on what arrives */
	if (signal.length != SOX_UNSPEC && signal.length != SOX_UNKNOWN_LEN && signal.length < ((uint64_t)1 << 40)) {
		size_t expect = (size_t)signal.length + 64;
		if (sink->max && expect > sink->max)
			expect = sink->max;
		if (sink_grow(sink, expect, true)) {
			snprintf(err, errlen, "%s: out of memory", path);
			goto fail;
		}
	}
	if (add_effect(chain, &sink_handler, 0, NULL, &signal, &target, sink)) {
		snprintf(err, errlen, "%s: libsox could not set up decoding", path);
		goto fail;
	}
	return chain;
fail:
	if (chain)
		sox_delete_effects_chain(chain);
	return NULL;
}

/* ---- the header check before libsox (audio_header_check) ---- */

static uint32_t get32(const unsigned char *p, bool big)
{
	return big ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
	           : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static unsigned get16(const unsigned char *p, bool big)
{
	return big ? (unsigned)p[0] << 8 | p[1] : (unsigned)p[1] << 8 | p[0];
}

/* The source rate and channel limits of audio.h, for the header check
 * before libsox and check_plausible after it. */
static int rate_plausible(double rate, unsigned channels, char *why, size_t len)
{
	if (channels == 0 || !(rate > 0)) {
		snprintf(why, len, "no channels or no sample rate in the header");
		return -1;
	}
	if (!(rate >= AUDIO_MIN_SOURCE_RATE && rate <= AUDIO_MAX_SOURCE_RATE)) {
		snprintf(why, len, "sample rate %.10g Hz outside [%.10g, %.10g]", rate, AUDIO_MIN_SOURCE_RATE,
		         AUDIO_MAX_SOURCE_RATE);
		return -1;
	}
	return 0;
}

/* Sun/NeXT AU: magic, data offset, data size, encoding, rate, channels;
 * libsox reads (and allocates) everything between byte 24 and the offset. */
static int check_au(const unsigned char *h, size_t n, uint64_t size, char *why, size_t len)
{
	if (n < 24) {
		snprintf(why, len, "AU header: %zu bytes, shorter than its 24", n);
		return -1;
	}
	const bool big = h[0] == '.';
	uint32_t offset = get32(h + 4, big);
	if (offset < 24 || offset > size) {
		snprintf(why, len, "AU header: data offset %lu %s", (unsigned long)offset,
		         offset < 24 ? "inside the 24-byte header" : "past the end of the file");
		return -1;
	}
	return rate_plausible(get32(h + 16, big), get32(h + 20, big), why, len);
}

/* The 80-bit IEEE extended float of AIFF's COMM chunk, as a double (0 for
 * what no sample rate can be: negative, denormal, infinite, NaN). */
static double extended80(const unsigned char *p)
{
	int exponent = (int)((p[0] & 0x7f) << 8 | p[1]);
	uint64_t mantissa = 0;
	for (int i = 0; i < 8; i++)
		mantissa = mantissa << 8 | p[2 + i];
	if ((p[0] & 0x80) || exponent == 0 || exponent == 0x7fff)
		return 0;
	return ldexp((double)mantissa, exponent - 16383 - 63);
}

/* The format chunk's rate and channels (WAV "fmt ", AIFF "COMM"); -1 with
 * why when the chunk is too short to hold them. */
static int check_format_chunk(bool aiff, bool big, const unsigned char *c, uint32_t csize, size_t avail, char *why,
                              size_t len)
{
	const char *fmt = aiff ? "AIFF" : "WAV";
	size_t need = aiff ? 18 : 16;
	if (csize < need) {
		snprintf(why, len, "%s header: %s chunk of %lu bytes, shorter than %zu", fmt, aiff ? "COMM" : "fmt",
		         (unsigned long)csize, need);
		return -1;
	}
	if (avail < need) /* past what was read: libsox checks it */
		return 0;
	if (aiff)
		return rate_plausible(extended80(c + 8), get16(c, true), why, len);
	return rate_plausible(get32(c + 4, big), get16(c + 2, big), why, len);
}

/* RIFF/RIFX WAVE and FORM AIFF/AIFC: the chunks in the first n bytes, up to
 * the audio data.  A chunk before the data that claims more bytes than the
 * file holds is refused: libsox allocates text chunks (AIFF's NAME, ANNO,
 * COMT, ...) at their declared size.  The data chunk itself may run past
 * the end (a truncated recording decodes to what is there). */
static int check_chunks(const unsigned char *h, size_t n, uint64_t size, bool aiff, bool big, char *why,
                        size_t len)
{
	const char *fmt = aiff ? "AIFF" : "WAV";
	const char *format_id = aiff ? "COMM" : "fmt ", *data_id = aiff ? "SSND" : "data";
	for (size_t at = 12; at + 8 <= n;) {
		const unsigned char *id = h + at;
		uint32_t csize = get32(h + at + 4, big);
		if (memcmp(id, format_id, 4) == 0 && check_format_chunk(aiff, big, h + at + 8, csize, n - at - 8, why, len))
			return -1;
		if (memcmp(id, data_id, 4) == 0)
			return 0;
		if ((uint64_t)at + 8 + csize > size) {
			snprintf(why, len, "%s header: chunk '%c%c%c%c' of %lu bytes at offset %zu runs past the end of the file", fmt,
			         isprint(id[0]) ? id[0] : '?', isprint(id[1]) ? id[1] : '?', isprint(id[2]) ? id[2] : '?',
			         isprint(id[3]) ? id[3] : '?', (unsigned long)csize, at);
			return -1;
		}
		at += 8 + (size_t)csize + (csize & 1);
	}
	return 0;
}

int audio_header_check(const unsigned char *head, size_t n, uint64_t size, char *why, size_t len)
{
	if (n < 12)
		return 0;
	if (!memcmp(head, ".snd", 4) || !memcmp(head, ".sd\0", 4) || !memcmp(head, "dns.", 4) || !memcmp(head, "\0ds.", 4))
		return check_au(head, n, size, why, len);
	if ((!memcmp(head, "RIFF", 4) || !memcmp(head, "RIFX", 4)) && !memcmp(head + 8, "WAVE", 4))
		return check_chunks(head, n, size, false, head[3] == 'X', why, len);
	if (!memcmp(head, "FORM", 4) && (!memcmp(head + 8, "AIFF", 4) || !memcmp(head + 8, "AIFC", 4)))
		return check_chunks(head, n, size, true, true, why, len);
	return 0;
}

/* audio_header_check on the whole file, mapped: the chunk walk touches only
 * the pages of chunk headers, wherever they are.  A file that cannot be
 * mapped here is left to libsox, which says why (explain_open_failure). */
static int check_file_header(const char *file, const char *path, char *err, size_t errlen)
{
	char why[256];
	struct stat st;
	if (stat(file, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) /* a pipe is read once, by libsox */
		return 0;
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0 || (uint64_t)st.st_size > SIZE_MAX) {
		close(fd);
		return 0;
	}
	const size_t size = (size_t)st.st_size;
	void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return 0;
	int rc = audio_header_check(map, size, size, why, sizeof why);
	munmap(map, size);
	if (rc == 0)
		return 0;
	snprintf(err, errlen, "%s: %s", path, why);
	return -1;
}

/* The plausibility limits of audio.h, checked on the header alone. */
static int check_plausible(const sox_format_t *in, int rate, const char *path, char *err, size_t errlen)
{
	double src = in->signal.rate;
	char why[160];
	if (rate_plausible(src, in->signal.channels, why, sizeof why)) {
		snprintf(err, errlen, "%s: %s", path, why);
		return -1;
	}
	double ratio = rate > src ? rate / src : src / rate;
	if (ratio > AUDIO_MAX_RATIO) {
		snprintf(err, errlen, "%s: resampling %.10g Hz to %d Hz, a ratio above %.10g", path, src, rate, AUDIO_MAX_RATIO);
		return -1;
	}
	return 0;
}

/* The most output samples a file of this size can decode to (audio.h);
 * SIZE_MAX when its size is unknown. */
static size_t size_bound(const char *path, double src_rate, int rate)
{
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return SIZE_MAX;
	double out = ((double)st.st_size * AUDIO_MAX_SAMPLES_PER_BYTE) * (rate > src_rate ? rate / src_rate : 1.0);
	return out + 4096 < (double)(SIZE_MAX / 2) ? (size_t)out + 4096 : SIZE_MAX;
}

static inline bool finite_bits(uint64_t u, unsigned bits)
{
	return bits == 32 ? ((u >> 23) & 0xff) != 0xff : ((u >> 52) & 0x7ff) != 0x7ff;
}

/* libsox turns a NaN of a float file into -1 and an infinity into +-1
 * silently; this counts them by reading the samples as the file holds them. */
static uint64_t count_nonfinite(const sox_format_t *in, const char *path)
{
	unsigned bits = in->encoding.bits_per_sample;
	if (in->encoding.encoding != SOX_ENCODING_FLOAT || (bits != 32 && bits != 64))
		return 0;
	/* just opened, libsox's FILE stands at the first sample (data_start is
	 * not set by every format handler: WAV leaves it 0) */
	off_t start = in->seekable ? ftello((FILE *)in->fp) : -1;
	FILE *f = start >= 0 ? fopen(path, "rb") : NULL;
	if (!f || fseeko(f, start, SEEK_SET) != 0) {
		if (f)
			fclose(f);
		return 0;
	}
	const bool swap = in->encoding.reverse_bytes == sox_option_yes;
	const size_t size = bits / 8;
	uint64_t left = in->signal.length != SOX_UNSPEC && in->signal.length != SOX_UNKNOWN_LEN ? in->signal.length
	                                                                                        : UINT64_MAX;
	uint64_t bad = 0;
	unsigned char buf[8192];
	size_t got;
	while (left && (got = fread(buf, size, sizeof buf / 8, f)) > 0) {
		for (size_t i = 0; i < got && left; i++, left--) {
			uint64_t u = 0;
			for (size_t b = 0; b < size; b++) /* the file's bytes, in the file's order */
				u |= (uint64_t)buf[i * size + (swap ? b : size - 1 - b)] << (8 * (size - 1 - b));
			bad += !finite_bits(u, bits);
		}
	}
	fclose(f);
	return bad;
}

int audio_decode(const char *path, int rate, size_t max_samples, audio_wave *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	char safe[4096];
	const char *file = as_file_path(path, safe, sizeof safe);
	if (check_file_header(file, path, err, errlen))
		return -1;
	sox_format_t *in = sox_open_read(file, NULL, NULL, NULL);
	if (!in) {
		explain_open_failure(path, err, errlen);
		return -1;
	}
	out->source_rate = in->signal.rate;
	out->source_channels = in->signal.channels;
	if (check_plausible(in, rate, path, err, errlen)) {
		sox_close(in);
		return -1;
	}
	size_t by_size = size_bound(file, in->signal.rate, rate);
	bool size_limits = by_size < (max_samples ? max_samples : SIZE_MAX);
	sink_state sink = {.max = size_limits ? by_size : max_samples};
	out->nonfinite = count_nonfinite(in, file);
	sox_effects_chain_t *chain = decode_chain(in, rate, &sink, path, err, errlen);
	if (!chain)
		goto fail;
	sox_flow_effects(chain, NULL, NULL);
	out->clipped = sink.clipped + sox_effects_clips(chain);
	if (sink.failed == SINK_NOMEM) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	if (sink.failed == SINK_TOO_LONG && size_limits) {
		snprintf(err, errlen, "%s: decodes to more than %zu samples at %d Hz, more than its size allows (%d per byte)",
		         path, by_size, rate, AUDIO_MAX_SAMPLES_PER_BYTE);
		goto fail;
	}
	if (sink.failed == SINK_TOO_LONG) {
		snprintf(err, errlen, "%s: longer than %zu samples (%.0f s at %d Hz), the most one record may hold", path,
		         max_samples, (double)max_samples / rate, rate);
		goto fail;
	}
	if (in->sox_errno) {
		snprintf(err, errlen, "%s: read error: %s", path, in->sox_errstr[0] ? in->sox_errstr : strerror(in->sox_errno));
		goto fail;
	}
	if (sink.n == 0) {
		snprintf(err, errlen, "%s: no audio samples", path);
		goto fail;
	}
	sox_delete_effects_chain(chain);
	sox_close(in);
	out->samples = sink.buf;
	out->n = sink.n;
	return 0;
fail:
	if (chain)
		sox_delete_effects_chain(chain);
	sox_close(in);
	free(sink.buf);
	return -1;
}

/* ---- encoding ---- */

static const sox_format_handler_t *writable_format(const char *type)
{
	const sox_format_handler_t *h = sox_find_format(type, sox_true);
	if (!h || (!h->startwrite && !h->write) ||
	    (h->flags & (SOX_FILE_NOSTDIO | SOX_FILE_DEVICE | SOX_FILE_PHONY)))
		return NULL;
	return h;
}

/* The bit sizes of a handler's write_formats list: {encoding, size..., 0}... 0 */
static bool has_bits(const sox_format_handler_t *h, unsigned bits)
{
	const unsigned *w = h->write_formats;
	while (w && *w) {                 /* an encoding */
		for (w++; *w; w++)        /* its sizes */
			if (*w == bits)
				return true;
		w++;
	}
	return false;
}

bool audio_can_write(const char *type, unsigned bits)
{
	const sox_format_handler_t *h = writable_format(type);
	return h && (bits == 0 || has_bits(h, bits));
}

/* libsox closes its FILE without checking the result, so what an encoder
 * writes in its stopwrite (FLAC's last frames, a WAV header update) could
 * be lost on a full disk unnoticed.  This runs the format's own stopwrite,
 * then flushes and checks the FILE; sox_close passes the result on. */
static int checked_stopwrite(sox_format_t *ft)
{
	const sox_format_handler_t *h = sox_find_format(ft->filetype, sox_true);
	int rc = h && h->stopwrite ? h->stopwrite(ft) : SOX_SUCCESS;
	if (fflush(ft->fp) != 0 || ferror((FILE *)ft->fp)) {
		if (!errno)
			errno = EIO;
		return SOX_EOF;
	}
	if (ft->sox_errno) {
		errno = ft->sox_errno;
		return SOX_EOF;
	}
	errno = 0;
	return rc;
}

/* Clipped to [-1, 1]; then floor, so that libsox's own narrowing (add half
 * a step, shift) rounds the float half up, exactly, to any sample size.
 * (sox_sample_t is int32_t; SOX_SAMPLE_MIN's macro shifts 1 into the sign
 * bit, undefined behaviour, hence INT32_MIN/MAX here.) */
static inline sox_sample_t float_to_sample(float v, uint64_t *clipped)
{
	if (v > 1.0f || v < -1.0f) {
		++*clipped;
		return v > 0 ? INT32_MAX : INT32_MIN;
	}
	double d = floor((double)v * 2147483648.0);
	return d > (double)INT32_MAX ? INT32_MAX : (sox_sample_t)d;
}

int audio_write_file(const char *path, const char *type, const float *x, size_t n, int rate, unsigned bits,
                     uint64_t *clipped, char *err, size_t errlen)
{
	*clipped = 0;
	if (!type) {
		const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path, *dot = strrchr(base, '.');
		if (!dot || dot == base || !dot[1]) {
			snprintf(err, errlen, "%s: no file extension to choose the audio format by", path);
			return -1;
		}
		type = dot + 1;
	}
	if (!audio_can_write(type, bits)) {
		snprintf(err, errlen, "%s: libsox cannot write format '%s'%s", path, type, bits ? " with that sample size" : "");
		return -1;
	}
	atomic_file af;
	if (atomic_reserve(&af, path, err, errlen))
		return -1;
	sox_signalinfo_t signal = {.rate = rate, .channels = 1, .precision = 24, .length = n};
	sox_encodinginfo_t enc;
	sox_init_encodinginfo(&enc);
	enc.bits_per_sample = bits;
	sox_format_t *ft = sox_open_write(af.tmp, &signal, &enc, type, NULL, NULL);
	if (!ft) {
		snprintf(err, errlen, "%s: libsox could not start a %d Hz %s file", path, rate, type);
		atomic_abort(&af);
		return -1;
	}
	if (ft->signal.channels != 1 || ft->signal.rate != rate || (bits && ft->encoding.bits_per_sample != bits)) {
		snprintf(err, errlen, "%s: format '%s' cannot hold %s%d Hz mono audio", path, type, bits ? "this sample size of " : "", rate);
		sox_close(ft);
		atomic_abort(&af);
		return -1;
	}
	if (ft->handler.stopwrite)
		ft->handler.stopwrite = checked_stopwrite;

	sox_sample_t buf[WRITE_CHUNK];
	for (size_t done = 0; done < n;) {
		size_t len = n - done < WRITE_CHUNK ? n - done : WRITE_CHUNK;
		for (size_t i = 0; i < len; i++)
			buf[i] = float_to_sample(x[done + i], clipped);
		if (sox_write(ft, buf, len) != len) {
			snprintf(err, errlen, "%s: %s", path, ft->sox_errno ? strerror(ft->sox_errno) : "write error");
			sox_close(ft);
			atomic_abort(&af);
			return -1;
		}
		done += len;
	}
	/* for formats whose stopwrite sox_close skips (header written up front) */
	if (fflush(ft->fp) != 0 || ferror((FILE *)ft->fp) || ft->sox_errno) {
		int e = ft->sox_errno ? ft->sox_errno : errno ? errno : EIO;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		sox_close(ft);
		atomic_abort(&af);
		return -1;
	}
	errno = 0;
	if (sox_close(ft) != SOX_SUCCESS) {
		snprintf(err, errlen, "%s: %s", path, errno ? strerror(errno) : "the encoder could not finish the file");
		atomic_abort(&af);
		return -1;
	}
	return atomic_commit(&af, err, errlen);
}
