/*
 * Truncation at every byte offset of a small multi-item stream, read from a
 * regular file and from a pipe: always ST_ERR_TRUNCATED naming the record
 * (header, or the item being read), never a shorter stream.  Then every byte
 * flipped three ways: any outcome but a crash or a leak (ASan run).  Then
 * declared lengths of 4 GiB on a tiny input with the record limit raised to
 * 8 GiB: an error, not an allocation (address space limited to 2 GiB in the
 * optimised build).
 */
#define _GNU_SOURCE /* memfd_create */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"
#include "stream.h"

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f || fseek(f, 0, SEEK_END) || (*len = (size_t)ftell(f), fseek(f, 0, SEEK_SET)))
		exit((perror(path), 1));
	unsigned char *p = malloc(*len ? *len : 1);
	if (!p || fread(p, 1, *len, f) != *len)
		exit((perror(path), 1));
	fclose(f);
	return p;
}

/* Opens bytes as a regular file or through a pipe (/dev/fd/N reopens either). */
static st_reader *open_bytes(const unsigned char *p, size_t n, bool piped, size_t max_record, unsigned flags,
                             char *err)
{
	char path[32];
	if (!piped) {
		/* a memfd is a regular file without ext4's flush on truncate-and-rewrite */
		int fd = memfd_create("prefix", 0);
		if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n))
			exit((perror("memfd"), 1));
		snprintf(path, sizeof path, "/dev/fd/%d", fd);
		st_reader *r = st_reader_open(path, max_record, flags, err);
		close(fd);
		return r;
	}
	int fds[2];
	if (pipe(fds))
		exit((perror("pipe"), 1));
	/* everything here fits the pipe's buffer: no writer process needed */
	if (n > 60000 || (n && write(fds[1], p, n) != (ssize_t)n))
		exit((perror("pipe write"), 1));
	close(fds[1]);
	snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
	st_reader *r = st_reader_open(path, max_record, flags, err);
	close(fds[0]);
	return r;
}

static void make_stream(const char *path)
{
	char err[ST_ERRLEN];
	char *argv[] = {"t-stream-truncate", "x"};
	sv *h = st_header_new("t-stream-truncate", 2, argv);
	if (!h || sv_set(st_header_params(h), "sample_rate", sv_int(16000)))
		exit(1);
	st_writer *w = st_writer_open(path, h, err);
	if (!w)
		exit((fprintf(stderr, "%s\n", err), 1));
	st_item it;
	st_item_init(&it);
	for (int k = 0; k < 4; k++) {
		char key[16];
		snprintf(key, sizeof key, "utt%d", k);
		st_item_clear(&it);
		st_item_set_key(&it, key);
		int64_t n = 3 + k, shape2[2] = {2, k};
		float x[8];
		for (int i = 0; i < 8; i++)
			x[i] = (float)(i * k) - 1.5f;
		st_item_add_tensor(&it, "wave", ST_F32, 1, &n, x);
		st_item_add_tensor(&it, "m", ST_I64, 2, shape2, NULL);
		st_item_set_field(&it, "label", sv_int(k));
		st_item_set_field(&it, "split", sv_str("Train"));
		if (st_writer_put(w, &it))
			exit((fprintf(stderr, "%s\n", st_writer_error(w)), 1));
	}
	st_item_free(&it);
	if (st_writer_close(w, err))
		exit((fprintf(stderr, "%s\n", err), 1));
	sv_free(h);
}

/* Reads everything; returns the final code, the items read and the message. */
static int read_all(st_reader *r, uint64_t *items)
{
	st_item it;
	st_item_init(&it);
	int rc;
	*items = 0;
	while ((rc = st_reader_next(r, &it)) == ST_OK)
		(*items)++;
	st_item_free(&it);
	return rc;
}

static void every_prefix(const unsigned char *s, size_t size, const uint64_t *ends, int nitems, bool piped)
{
	char err[ST_ERRLEN], want[64];
	const char *mode = piped ? "pipe" : "file";
	for (size_t len = 0; len < size; len++) {
		st_reader *r = open_bytes(s, len, piped, 0, 0, err);
		if (len < ends[0]) {
			CHECK(!r, "%s: prefix %zu inside the header was accepted", mode, len);
			if (r) {
				st_reader_close(r);
				continue;
			}
			const char *need = len == 0 ? "empty input" : "header: truncated record";
			CHECK(strstr(err, need), "%s: prefix %zu: message '%s' lacks '%s'", mode, len, err, need);
			continue;
		}
		CHECK(r != NULL, "%s: prefix %zu: header not read: %s", mode, len, err);
		if (!r)
			continue;
		uint64_t got;
		int rc = read_all(r, &got);
		/* items whose records end within the prefix are read; the next fails */
		int whole = 0;
		while (whole < nitems && ends[whole + 1] <= len)
			whole++;
		CHECK(rc == ST_ERR_TRUNCATED, "%s: prefix %zu of %zu: %s (%s)", mode, len, size, st_strerror(rc),
		      st_reader_error(r));
		CHECK(got == (uint64_t)whole, "%s: prefix %zu: %llu items read, %d whole", mode, len,
		      (unsigned long long)got, whole);
		/* inside the end record: "item N+1" until its type is read, then "end record" */
		snprintf(want, sizeof want, ": item %d: ", whole + 1);
		bool named = strstr(st_reader_error(r), want) ||
		             (whole == nitems && strstr(st_reader_error(r), ": end record: ") && len - ends[nitems] > 6);
		CHECK(named, "%s: prefix %zu: message '%s' lacks '%s'", mode, len, st_reader_error(r), want);
		CHECK(strstr(st_reader_error(r), "truncated"), "%s: prefix %zu: message '%s'", mode, len,
		      st_reader_error(r));
		st_reader_close(r);
	}
	st_reader *r = open_bytes(s, size, piped, 0, 0, err);
	uint64_t got = 0;
	CHECK(r && read_all(r, &got) == ST_END && got == (uint64_t)nitems, "%s: the whole stream is not read", mode);
	st_reader_close(r);
}

static void every_flip(unsigned char *s, size_t size)
{
	static const unsigned char masks[] = {0x01, 0x80, 0xff};
	char err[ST_ERRLEN];
	for (size_t i = 0; i < size; i++)
		for (size_t m = 0; m < sizeof masks; m++) {
			s[i] ^= masks[m];
			st_reader *r = open_bytes(s, size, i % 2, 0, 0, err);
			if (r) {
				uint64_t got;
				int rc = read_all(r, &got);
				CHECK(rc == ST_END || st_reader_error(r)[0], "flip at %zu: error without a message", i);
				st_reader_close(r);
			} else {
				CHECK(err[0], "flip at %zu: open failed without a message", i);
			}
			s[i] ^= masks[m];
		}
}

/* A header record followed by raw bytes. */
static size_t with_header(unsigned char *buf, const unsigned char *tail, size_t n)
{
	static const char hdr[] = "\x83\xa4type\xa6header\xa6" "format\xaf" "sertools-stream\xa7version\x01";
	size_t h = sizeof hdr - 1;
	memcpy(buf, hdr, h);
	memcpy(buf + h, tail, n);
	return h + n;
}

static void huge_lengths(void)
{
	/* item {type: item, key: k, tensors: {w: <declared 4 GiB>}} */
	static const unsigned char pre[] = "\x83\xa4type\xa4item\xa3key\xa1k\xa7tensors\x81\xa1w";
	static const struct { const char *what; unsigned char bytes[6]; size_t n; } decl[] = {
		{"bin32", {0xc6, 0xff, 0xff, 0xff, 0xf0}, 5},
		{"str32", {0xdb, 0xff, 0xff, 0xff, 0xf0}, 5},
		{"array32", {0xdd, 0xff, 0xff, 0xff, 0xf0}, 5},
		{"map32", {0xdf, 0x7f, 0xff, 0xff, 0xf0}, 5},
	};
	char err[ST_ERRLEN];
	for (size_t d = 0; d < sizeof decl / sizeof *decl; d++)
		for (int piped = 0; piped < 2; piped++)
			for (int small = 0; small < 2; small++) {
				unsigned char tail[128], buf[256];
				size_t n = sizeof pre - 1;
				memcpy(tail, pre, n);
				memcpy(tail + n, decl[d].bytes, decl[d].n);
				n += decl[d].n;
				/* a few bytes of payload: elements, or a key and a value */
				memcpy(tail + n, "\xa1" "a\x01", 3);
				n += 3;
				size_t len = with_header(buf, tail, n);
				size_t limit = small ? 1024 : (size_t)8 << 30;
				st_reader *r = open_bytes(buf, len, piped, limit, 0, err);
				CHECK(r, "%s: header: %s", decl[d].what, err);
				if (!r)
					continue;
				uint64_t got;
				int rc = read_all(r, &got);
				int want = small ? ST_ERR_LIMIT : ST_ERR_TRUNCATED;
				CHECK(rc == want, "%s (%s, limit %zu): %s, expected %s: %s", decl[d].what, piped ? "pipe" : "file",
				      limit, st_strerror(rc), st_strerror(want), st_reader_error(r));
				CHECK(strstr(st_reader_error(r), "item 1: "), "message '%s'", st_reader_error(r));
				st_reader_close(r);
			}
}

int main(void)
{
	make_stream("small.msgpack");
	size_t size;
	unsigned char *s = slurp("small.msgpack", &size);
	char err[ST_ERRLEN];
	/* where each record ends: after the header, after item k */
	uint64_t ends[5];
	st_reader *r = st_reader_open("small.msgpack", 0, 0, err);
	if (!r)
		return fprintf(stderr, "%s\n", err), 1;
	ends[0] = st_reader_offset(r);
	st_item it;
	st_item_init(&it);
	for (int k = 1; k <= 4; k++) {
		CHECK(st_reader_next(r, &it) == ST_OK, "item %d: %s", k, st_reader_error(r));
		ends[k] = st_reader_offset(r);
	}
	CHECK(st_reader_next(r, &it) == ST_END, "end: %s", st_reader_error(r));
	CHECK(st_reader_offset(r) == size, "offset %llu at the end of %zu bytes", (unsigned long long)st_reader_offset(r),
	      size);
	st_item_free(&it);
	st_reader_close(r);

	every_prefix(s, size, ends, 4, false);
	every_prefix(s, size, ends, 4, true);
	every_flip(s, size);
	free(s);

	const char *san = getenv("SERTOOLS_SANITIZE");
	if (!san || strcmp(san, "1") != 0) {
		/* any attempt to allocate the declared 4 GiB now fails, and the test with it */
		struct rlimit rl = {(rlim_t)2 << 30, (rlim_t)2 << 30};
		if (setrlimit(RLIMIT_AS, &rl))
			return perror("setrlimit"), 1;
	}
	huge_lengths();
	printf("%zu-byte stream, every prefix and flip\n", size);
	return check_done();
}
