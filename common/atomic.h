/*
 * atomic.h - outputs that appear whole or not at all.
 *
 * A file is written under a temporary name in its target directory
 * (".NAME.XXXXXX", keeping NAME's extension so that format-by-extension
 * writers such as libsox still work) and renamed over the target only after
 * every write, fflush, fsync and fclose has succeeded.  A failed or aborted
 * output leaves no file behind and the previous target, if any, untouched.
 *
 * A target that exists and is not a regular file (/dev/null, /dev/full, a
 * FIFO) is written in place: renaming over it would replace the device.
 */
#ifndef SERTOOLS_ATOMIC_H
#define SERTOOLS_ATOMIC_H

#include <stdio.h>

typedef struct {
	FILE *f;      /* open for writing on the temp file (atomic_open only) */
	char *path;   /* the target */
	char *tmp;    /* the temporary name (the target itself when direct) */
	int direct;   /* the target is not a regular file: written in place */
} atomic_file;

/* Creates the temp file and opens it as af->f.  0, or -1 with a message in
 * err (errlen bytes). */
int atomic_open(atomic_file *af, const char *path, char *err, size_t errlen);
/* Creates the temp file but leaves writing to someone else (af->f is NULL):
 * write af->tmp, then atomic_commit. */
int atomic_reserve(atomic_file *af, const char *path, char *err, size_t errlen);
/* Flushes, syncs, closes and renames.  0, or -1 with a message (the temp
 * file is removed). */
int atomic_commit(atomic_file *af, char *err, size_t errlen);
/* Closes and removes the temp file. */
void atomic_abort(atomic_file *af);

/* A program's "-o FILE, or stdout" output: a FILE (path neither NULL nor
 * "-") is an atomic_file, anything else is stdout.  Write to o->f.
 *     atomic_output out;
 *     if (atomic_output_open(&out, path, err, sizeof err)) die(err);
 *     fprintf(out.f, ...);
 *     if (atomic_output_commit(&out, err, sizeof err)) die(err);
 * Commit fails when any write failed (ferror), whatever the target: a
 * file is then removed; stdout is flushed (not closed: cli_close_stdout). */
typedef struct {
	FILE *f;
	atomic_file file;  /* file.path is set while a file target is open */
} atomic_output;

int atomic_output_open(atomic_output *o, const char *path, char *err, size_t errlen);
int atomic_output_commit(atomic_output *o, char *err, size_t errlen);
/* Drops a file target (no file appears); nothing for stdout.  Safe on a
 * zeroed or committed output. */
void atomic_output_abort(atomic_output *o);

#endif
