/*
 * audio.h - audio files in and out, through libsox.
 *
 * Decoding runs libsox's own effects chain built the way the sox command
 * builds it for "sox IN -r RATE -c 1 -t f32 OUT": the decoded samples go
 * through the "channels" effect (each output sample is the mean of the
 * input channels) when there is more than one channel, then through the
 * "rate" effect with its defaults (quality 'h': linear phase, 95%
 * bandwidth, 125 dB rejection) when the rates differ, and are turned into
 * floats the way sox's f32 writer does (rounded to 25 significant bits;
 * +1.0 where the integer sample saturates).  The result is bit-identical to
 * that command's output.
 *
 * Encoding writes a mono float waveform in any format libsox writes,
 * chosen by name or file extension ("wav", "flac", "ogg", ...).  There is
 * no dither: values are clipped to [-1, 1] (and counted), then rounded to
 * the nearest sample the encoding can hold.  The file appears atomically
 * (atomic.h): a failed write, a full disk included, leaves no file.
 *
 * libsox keeps global state (sox_globals) and is not thread-safe: call
 * audio_init once before anything else here and audio_quit at the end, from
 * one thread.  This module keeps no state of its own.
 *
 * Plausibility (formats/limits.md): before anything reaches libsox's
 * effects chain, audio_decode refuses a source sample rate outside
 * [AUDIO_MIN_SOURCE_RATE, AUDIO_MAX_SOURCE_RATE] and a resampling ratio
 * (either way) above AUDIO_MAX_RATIO: libsox's rate effect runs out of
 * memory and crashes on absurd ratios (a 0.25 Hz AIFF header), which no
 * caller could catch.  The decoded length is bounded by the file's size:
 * at most AUDIO_MAX_SAMPLES_PER_BYTE source samples per byte of file (more
 * than any codec libsox reads compresses to), times the rate ratio, so a
 * header that lies about its length costs no more memory than that.
 *
 * Errors: functions return 0, or -1 with "FILE: why" in err.
 */
#ifndef SERTOOLS_AUDIO_H
#define SERTOOLS_AUDIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Initialises libsox.  libsox's own messages are silenced (failures come
 * back through err instead), unless verbose: then its failures and warnings
 * go to stderr as "libsox: ...".  0, or -1 with a message in err. */
int audio_init(bool verbose, char *err, size_t errlen);
void audio_quit(void);

#define AUDIO_MIN_SOURCE_RATE 100.0
#define AUDIO_MAX_SOURCE_RATE 1000000.0
#define AUDIO_MAX_RATIO 7680.0 /* 100 Hz to 768 kHz; 1 MHz to 1 kHz is 1000 */
#define AUDIO_MAX_SAMPLES_PER_BYTE 256

/* The header check that runs before libsox opens a file (libsox's own
 * header readers trust what they read: an AU header whose data offset is
 * 2^31 made sox_open_read allocate 2 GB for the "info" text before it).
 * head holds the file's first n bytes (audio_decode maps the whole file),
 * size is the file's size.  For the formats whose headers it knows (WAV,
 * RIFX, AIFF, AIFF-C, AU) it refuses a data offset past the end of the
 * file, a chunk before the audio data that runs past it, no channels, and
 * a sample rate outside the limits above; anything else passes to libsox
 * (and to the same rate limits once libsox has read the header).  Reads
 * only head[0..n).  0, or -1 with the reason in why. */
int audio_header_check(const unsigned char *head, size_t n, uint64_t size, char *why, size_t len);

/* A decoded file. */
typedef struct {
	float *samples;            /* mono, in [-1, 1]; sv_aligned_alloc'd, the caller frees it */
	size_t n;                  /* number of samples */
	double source_rate;        /* the file's sample rate, Hz */
	unsigned source_channels;
	uint64_t clipped;          /* samples that saturated while mixing, resampling or converting */
	uint64_t nonfinite;        /* NaN or infinite samples in a float file (libsox reads them as -1 or +1) */
} audio_wave;

/* Decodes path (any format libsox reads, recognised by its header or
 * extension) to mono at rate Hz.  A file that libsox cannot open or that
 * holds no samples is an error, as is one that would produce more than
 * max_samples samples (0: no limit), found before the whole file is held
 * in memory, and one outside the plausibility limits above (refused before
 * decoding).  Non-finite samples of a float file are counted in
 * out->nonfinite (the caller warns); decoding goes on as sox's does.  On
 * error out->samples is NULL. */
int audio_decode(const char *path, int rate, size_t max_samples, audio_wave *out, char *err, size_t errlen);

/* True when libsox can write format type (a name or extension, "wav") with
 * bits per sample (0: the format's own default). */
bool audio_can_write(const char *type, unsigned bits);

/* Writes x[0..n), mono at rate Hz, to path in format type (NULL: path's
 * extension) with bits per sample (0: the format's default).  Values
 * outside [-1, 1] are clipped; their number goes to *clipped.  The file
 * replaces path atomically, and only when every byte was written. */
int audio_write_file(const char *path, const char *type, const float *x, size_t n, int rate, unsigned bits,
                     uint64_t *clipped, char *err, size_t errlen);

#endif
