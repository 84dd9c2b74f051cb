/*
 * fuzz_file.h - the fuzzer's input as a file, for the readers that take a
 * path (the stream reader, the checkpoint validator, the label table).
 *
 * One memfd per process, rewritten for each input and opened by path
 * through /proc/self/fd: a regular file, so the readers' file-size checks
 * run as they do on a real file, without touching the disk.  libFuzzer
 * runs inputs one at a time in one thread, hence the static state (this is
 * test code, not common/).
 */
#ifndef SERTOOLS_FUZZ_FILE_H
#define SERTOOLS_FUZZ_FILE_H

#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* The path of a file holding data[0..size); aborts when the memfd fails
 * (a harness that cannot run must not look like one that found nothing). */
static const char *fuzz_file(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	if (fd < 0) {
		fd = memfd_create("sertools-fuzz", 0);
		if (fd < 0) {
			perror("fuzz_file: memfd_create");
			abort();
		}
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) {
		perror("fuzz_file: write");
		abort();
	}
	return path;
}

#endif
