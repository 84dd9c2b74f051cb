/*
 * check.h - what every C test program shares (libsamplerate's tests/util.h).
 *
 * A test program checks with CHECK(cond, printf-style message...), which
 * prints "FAIL file:line: cond: message" and counts; after 20 failures it
 * stops (one broken thing should not bury the output).  It ends with
 * `return check_done();`, which prints "ok" and returns 0 when nothing
 * failed, else the count of failures and 1.  A test that cannot run here
 * (a tool or file it needs is missing) calls check_skip("why"), which
 * prints "skip: why" and exits 77: tests/run.sh counts it as skipped.
 * NEED(cond) is for setup that must work for the test to mean anything
 * (an allocation, a pipe): it stops the test at once, as a failure.
 *
 *     #include "check.h"
 *     int main(void)
 *     {
 *         CHECK(1 + 1 == 2, "arithmetic: got %d", 1 + 1);
 *         return check_done();
 *     }
 */
#ifndef SERTOOLS_TESTS_CHECK_H
#define SERTOOLS_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK_MAX_FAILURES 20
#define CHECK_EXIT_SKIP 77

static int check_failures;

#define CHECK(cond, ...)                                                          \
	do {                                                                      \
		if (!(cond)) {                                                    \
			printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
			printf(__VA_ARGS__);                                      \
			putchar('\n');                                            \
			fflush(stdout);                                           \
			if (++check_failures >= CHECK_MAX_FAILURES)               \
				exit(1);                                          \
		}                                                                 \
	} while (0)

#define NEED(cond)                                                                \
	do {                                                                      \
		if (!(cond)) {                                                    \
			printf("FAIL %s:%d: setup: %s\n", __FILE__, __LINE__, #cond); \
			exit(1);                                                  \
		}                                                                 \
	} while (0)

static inline int check_done(void)
{
	if (check_failures) {
		printf("%d failure%s\n", check_failures, check_failures == 1 ? "" : "s");
		return 1;
	}
	puts("ok");
	return 0;
}

static inline void check_skip(const char *why)
{
	printf("skip: %s\n", why);
	exit(CHECK_EXIT_SKIP);
}

#endif
