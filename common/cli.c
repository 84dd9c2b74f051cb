#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "version.h"

/* "prog: message\n" on stderr: the one place that formats a diagnostic. */
static void vmessage(const char *prog, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void cli_die(const char *prog, int code, const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	va_start(ap, fmt);
	vmessage(prog, fmt, ap);
	va_end(ap);
	exit(code);
}

void cli_usage_error(const char *prog, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage(prog, fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s --help'.\n", prog);
	exit(EXIT_USAGE);
}

void cli_warn(const char *prog, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage(prog, fmt, ap);
	va_end(ap);
}

void cli_close_stdout(const char *prog)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		int e = errno;
		fclose(stdout);
		cli_die(prog, EXIT_RUNTIME, "stdout: %s", e ? strerror(e) : "write error");
	}
	if (fclose(stdout) != 0)
		cli_die(prog, EXIT_RUNTIME, "stdout: %s", strerror(errno));
}

void cli_version(const char *prog)
{
	printf("%s (sertools) %s\n", prog, SERTOOLS_VERSION);
	cli_close_stdout(prog);
	exit(0);
}

void cli_help(const char *text)
{
	fputs(text, stdout);
	if (fflush(stdout) != 0)
		exit(EXIT_RUNTIME);
	exit(0);
}

void cli_stdout_init(void)
{
	/* Full buffering even on a terminal-less stdout; glibc picks the buffer
	 * (and frees it at fclose).  Tensor payloads larger than the buffer go
	 * straight to write(2), so a bigger buffer buys nothing. */
	setvbuf(stdout, NULL, _IOFBF, 0);
}

bool cli_parse_double(const char *s, double min, double max, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (!*s || *end || errno || !isfinite(v) || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool cli_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool cli_parse_size(const char *s, size_t *out)
{
	char *end;
	errno = 0;
	/* digits first: strtoull would accept a sign or leading space */
	if (*s < '0' || *s > '9')
		return false;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned long long mul = 1;
	if (*end == 'K' || *end == 'k')
		mul = 1ull << 10, end++;
	else if (*end == 'M' || *end == 'm')
		mul = 1ull << 20, end++;
	else if (*end == 'G' || *end == 'g')
		mul = 1ull << 30, end++;
	if (errno || *end || v == 0 || v > SIZE_MAX / mul)
		return false;
	*out = (size_t)(v * mul);
	return true;
}

double cli_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cli_progress_init(cli_progress *p, const char *prog, bool forced, bool quiet)
{
	p->prog = prog;
	p->tty = isatty(STDERR_FILENO);
	p->forced = forced;
	p->printed = false;
	p->enabled = !quiet;
	p->start = p->last = cli_now();
}

void cli_progress_update(cli_progress *p, uint64_t done, uint64_t total, const char *what)
{
	if (!p->enabled)
		return;
	double now = cli_now();
	/* a log file (nohup, a batch system) gets a line every 10 s, a terminal a live line */
	if (now - p->last < (p->tty ? 0.25 : 10.0))
		return;
	p->last = now;
	p->printed = true;
	double el = now - p->start;
	const char *lead = p->tty ? "\r" : "", *tail = p->tty ? "   " : "\n";
	if (total) {
		double eta = done ? el * (double)(total - done) / (double)done : 0;
		fprintf(stderr, "%s%s: %llu/%llu %s (%.0f%%) ETA %d:%02d%s", lead, p->prog, (unsigned long long)done,
		        (unsigned long long)total, what, 100.0 * (double)done / (double)total, (int)eta / 60, (int)eta % 60,
		        tail);
	} else {
		fprintf(stderr, "%s%s: %llu %s, %.1f/s%s", lead, p->prog, (unsigned long long)done, what,
		        el > 0 ? (double)done / el : 0.0, tail);
	}
}

void cli_progress_done(cli_progress *p, uint64_t done, const char *what)
{
	if (!p->enabled || (!p->tty && !p->forced && !p->printed))
		return;
	double el = cli_now() - p->start;
	fprintf(stderr, "%s%s: %llu %s in %.1f s%s\n", p->tty ? "\r" : "", p->prog, (unsigned long long)done, what, el,
	        p->tty ? "            " : "");
}
