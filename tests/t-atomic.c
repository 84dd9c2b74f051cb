/* Unit test of atomic outputs (common/atomic.h): a committed file appears
 * whole with the user's umask and no temporary left; an aborted one leaves
 * no file and the previous target untouched; the temporary keeps the
 * target's extension (libsox picks a format by it); a write error (a full
 * device) fails the commit; a missing directory and a directory target are
 * refused with the path in the message; "-" and NULL are stdout.  Runs in
 * the current directory (tests/run.sh gives each test a fresh one). */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "check.h"

static char err[256];

/* The names in "d", other than . and .., joined by spaces (static buffer). */
static const char *listing(void)
{
	static char buf[1024];
	buf[0] = 0;
	DIR *d = opendir("d");
	NEED(d);
	for (struct dirent *e; (e = readdir(d));)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", buf[0] ? " " : "", e->d_name);
	closedir(d);
	return buf;
}

static const char *contents(const char *path)
{
	static char buf[256];
	buf[0] = 0;
	FILE *f = fopen(path, "rb");
	if (f) {
		buf[fread(buf, 1, sizeof buf - 1, f)] = 0;
		fclose(f);
	}
	return buf;
}

static void commit_and_abort(void)
{
	NEED(mkdir("d", 0777) == 0);
	atomic_file af;
	NEED(atomic_open(&af, "d/out.wav", err, sizeof err) == 0);
	const char *tmp = strrchr(af.tmp, '/') + 1;
	CHECK(tmp[0] == '.' && strstr(tmp, "out") && !strcmp(tmp + strlen(tmp) - 4, ".wav"),
	      "temporary name '%s' should be .out.XXXXXX.wav", tmp);
	CHECK(access("d/out.wav", F_OK) != 0, "the target exists before the commit");
	fputs("first", af.f);
	CHECK(atomic_commit(&af, err, sizeof err) == 0, "commit: %s", err);
	CHECK(!strcmp(contents("d/out.wav"), "first"), "committed '%s'", contents("d/out.wav"));
	CHECK(!strcmp(listing(), "out.wav"), "directory after commit: %s", listing());
	struct stat st;
	mode_t um = umask(022);
	NEED(stat("d/out.wav", &st) == 0);
	CHECK((st.st_mode & 0777) == (0666 & ~um), "mode %o, want %o", st.st_mode & 0777, 0666 & ~um);
	umask(um);

	NEED(atomic_open(&af, "d/out.wav", err, sizeof err) == 0);
	fputs("second, never committed", af.f);
	atomic_abort(&af);
	CHECK(!strcmp(contents("d/out.wav"), "first"), "abort changed the target to '%s'", contents("d/out.wav"));
	CHECK(!strcmp(listing(), "out.wav"), "directory after abort: %s", listing());
}

static void output_errors(void)
{
	atomic_output o;
	CHECK(atomic_output_open(&o, "no/such/dir/x.msgpack", err, sizeof err) == -1 &&
		      strstr(err, "no/such/dir/x.msgpack"),
	      "missing directory: '%s'", err);
	CHECK(atomic_output_open(&o, "d", err, sizeof err) == -1 && strstr(err, "directory"),
	      "a directory target: '%s'", err);

	NEED(atomic_output_open(&o, "d/y.tsv", err, sizeof err) == 0);
	fputs("kept?", o.f);
	atomic_output_abort(&o);
	CHECK(access("d/y.tsv", F_OK) != 0, "an aborted output exists");
	atomic_output_abort(&o); /* safe twice */

	NEED(atomic_output_open(&o, "d/z.tsv", err, sizeof err) == 0);
	fputs("text", o.f);
	NEED(atomic_output_commit(&o, err, sizeof err) == 0);
	CHECK(!strcmp(contents("d/z.tsv"), "text"), "d/z.tsv holds '%s'", contents("d/z.tsv"));

	NEED(atomic_output_open(&o, "-", err, sizeof err) == 0);
	CHECK(o.f == stdout, "'-' is not stdout");
	NEED(atomic_output_commit(&o, err, sizeof err) == 0);
	NEED(atomic_output_open(&o, NULL, err, sizeof err) == 0);
	CHECK(o.f == stdout, "NULL is not stdout");
	NEED(atomic_output_commit(&o, err, sizeof err) == 0);

	if (access("/dev/full", W_OK) != 0)
		return;
	NEED(atomic_output_open(&o, "/dev/full", err, sizeof err) == 0);
	for (int i = 0; i < 10000; i++)
		fputs("more than a buffer ", o.f);
	CHECK(atomic_output_commit(&o, err, sizeof err) == -1 && strstr(err, "/dev/full"),
	      "writing /dev/full committed ('%s')", err);
	atomic_output_abort(&o);
}

int main(void)
{
	commit_and_abort();
	output_errors();
	return check_done();
}
