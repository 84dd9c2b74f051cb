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

/* A decoded file. */
typedef struct {
	float *samples;            /* mono, in [-1, 1]; sv_aligned_alloc'd, the caller frees it */
	size_t n;                  /* number of samples */
	double source_rate;        /* the file's sample rate, Hz */
	unsigned source_channels;
	uint64_t clipped;          /* samples that saturated while mixing, resampling or converting */
} audio_wave;

/* Decodes path (any format libsox reads, recognised by its header or
 * extension) to mono at rate Hz.  A file that libsox cannot open or that
 * holds no samples is an error, as is one that would produce more than
 * max_samples samples (0: no limit), found before the whole file is held
 * in memory.  On error out->samples is NULL. */
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
