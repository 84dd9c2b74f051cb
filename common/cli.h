/*
 * cli.h - the conventions every sertools program follows.
 *
 *   - messages on stderr as "prog: what: why";
 *   - exit 0 on success, 1 on a usage error, 2 on a runtime error;
 *   - --help and --version print to stdout and exit 0;
 *   - stdin/stdout by default, "-" names either explicitly;
 *   - progress on stderr: on a terminal a live line; off a terminal (a log
 *     file, nohup, a batch system) a plain line every 10 s, no carriage
 *     returns, so a run shorter than that stays silent unless --progress is
 *     given (which adds the closing count); never with -q/--quiet;
 *   - stdout is closed and checked before exit (a full disk is an error).
 */
#ifndef SERTOOLS_CLI_H
#define SERTOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EXIT_USAGE 1
#define EXIT_RUNTIME 2

/* Prints "prog: message" and exits with code. */
_Noreturn void cli_die(const char *prog, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prints "prog: message" and "Try 'prog --help'." and exits 1. */
_Noreturn void cli_usage_error(const char *prog, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void cli_warn(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "prog (sertools) VERSION" to stdout and exits 0. */
_Noreturn void cli_version(const char *prog);
/* Prints text to stdout and exits 0 (for --help). */
_Noreturn void cli_help(const char *text);

/* Makes stdout fully buffered; call first in main of stream producers. */
void cli_stdout_init(void);
/* Flushes and closes stdout; on failure dies with "prog: stdout: why" (2). */
void cli_close_stdout(const char *prog);

/* Strict number parsing: the whole string, finite, within [min, max]. */
bool cli_parse_double(const char *s, double min, double max, double *out);
bool cli_parse_long(const char *s, long min, long max, long *out);
/* Bytes with an optional K, M or G suffix. */
bool cli_parse_size(const char *s, size_t *out);

/* Progress on stderr, at most a few lines a second. */
typedef struct {
	const char *prog;
	bool enabled, tty, forced, printed;
	double start, last;
} cli_progress;
/* forced: --progress; quiet: -q (nothing at all). */
void cli_progress_init(cli_progress *p, const char *prog, bool forced, bool quiet);
/* total 0 when unknown.  what e.g. "items". */
void cli_progress_update(cli_progress *p, uint64_t done, uint64_t total, const char *what);
/* The closing count: on a terminal, with --progress, or after a run long
 * enough to have printed a line. */
void cli_progress_done(cli_progress *p, uint64_t done, const char *what);

/* Monotonic seconds. */
double cli_now(void);

#endif
