/* omap.h: the output keeps the input order with workers of random delays
 * (1, 2, 4 and 8 workers); the earliest failing item's message wins for
 * any worker count (a transform error and a truncated input); no thread
 * outlives omap_run. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "omap.h"
#include "rng.h"

#define NITEMS 60

static char dir[64], in_path[128], out_path[128], cut_path[128];

static void write_input(void)
{
	char err[ST_ERRLEN];
	sv *h = st_header_new("t-omap", 0, NULL);
	st_writer *w = h ? st_writer_open(in_path, h, err) : NULL;
	st_item it;
	if (!w || st_item_init(&it))
		exit(2);
	for (int i = 0; i < NITEMS; i++) {
		char key[16];
		snprintf(key, sizeof key, "k%02d", i);
		float x = (float)i;
		int64_t shape[1] = {1};
		st_item_clear(&it);
		if (st_item_set_key(&it, key) || !st_item_add_tensor(&it, "x", ST_F32, 1, shape, &x) ||
		    st_writer_put(w, &it))
			exit(2);
	}
	if (st_writer_close(w, err))
		exit(2);
	st_item_free(&it);
	sv_free(h);
	/* the same stream cut inside item 41's record */
	FILE *f = fopen(in_path, "rb"), *g = fopen(cut_path, "wb");
	char buf[1 << 16];
	size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
	if (!g || n < 200 || fwrite(buf, 1, n * 2 / 3, g) != n * 2 / 3 || fclose(g))
		exit(2);
	fclose(f);
}

typedef struct {
	uint64_t rng;
	long fail_at[2]; /* items whose transform fails; -1 none */
} ctx;

/* Doubles x after a random delay of up to 2 ms (30 ms for fail_at[0]); fails on the chosen items. */
static int fn(void *arg, st_item *it, uint64_t seq, char *msg)
{
	ctx *c = arg;
	/* the later failing item fails last: its error must not replace the earlier one's */
	struct timespec d = {0, (long)seq == c->fail_at[0] ? 30000000 : (long)rng_below(&c->rng, 2000000)};
	nanosleep(&d, NULL);
	if ((long)seq == c->fail_at[0] || (long)seq == c->fail_at[1]) {
		snprintf(msg, OMAP_MSGLEN, "item %llu failed", (unsigned long long)seq);
		return -1;
	}
	st_tensor *t = st_item_tensor(it, "x");
	*(float *)t->data *= 2;
	return st_item_set_field(it, "seq", sv_int((int64_t)seq)) ? -1 : 0;
}

static int threads(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/task");
	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/* The threads of the process before any omap_run: a library may keep
 * threads of its own (OpenBLAS starts its pool when it is loaded, depending
 * on the build). */
static int baseline_threads;

/* threads(), once it equals want or after 2 s.  pthread_join returns when
 * the kernel clears the thread's tid at its exit, and the kernel lists the
 * thread in /proc/self/task until it is reaped a moment later: on a busy
 * machine a joined thread was seen there (CI, 2026-12-07). */
static int threads_settled(int want)
{
	int n = threads();
	for (int i = 0; i < 200 && n != want; i++) {
		nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
		n = threads();
	}
	return n;
}

/* One run; returns omap_run's result and its message in err. */
static int run(const char *input, int nworkers, long fail0, long fail1, char *err)
{
	char e[ST_ERRLEN];
	st_reader *r = st_reader_open(input, 0, 0, e);
	sv *h = st_header_new("t-omap", 0, NULL);
	st_writer *w = r && h ? st_writer_open(out_path, h, e) : NULL;
	CHECK(w, "open: %s", e);
	if (!w)
		exit(1);
	ctx c[8];
	for (int i = 0; i < nworkers; i++)
		c[i] = (ctx){rng_seed(12345, (uint64_t)(i + 10 * nworkers)), {fail0, fail1}};
	int rc = omap_run(r, w, nworkers, fn, c, sizeof *c, NULL, err);
	int after = threads_settled(baseline_threads);
	CHECK(after == baseline_threads, "%d workers: %d threads left after omap_run, %d before any run", nworkers, after,
	      baseline_threads);
	if (rc)
		st_writer_abort(w);
	else
		CHECK(st_writer_close(w, e) == ST_OK, "close: %s", e);
	st_reader_close(r);
	sv_free(h);
	return rc;
}

static void check_output(int nworkers)
{
	char e[ST_ERRLEN];
	st_reader *r = st_reader_open(out_path, 0, 0, e);
	st_item it;
	CHECK(r && st_item_init(&it) == ST_OK, "reopen: %s", e);
	if (!r)
		return;
	int i = 0, rc;
	while ((rc = st_reader_next(r, &it)) == ST_OK) {
		char key[16];
		snprintf(key, sizeof key, "k%02d", i);
		int64_t seq = -1;
		sv_get_int(it.fields, "seq", &seq);
		const st_tensor *t = st_item_tensor(&it, "x");
		CHECK(strcmp(it.key, key) == 0 && seq == i && t && *(float *)t->data == 2.0f * (float)i,
		      "%d workers: item %d is '%s' (seq %lld)", nworkers, i, it.key, (long long)seq);
		i++;
	}
	CHECK(rc == ST_END && i == NITEMS, "%d workers: %d items, end %d", nworkers, i, rc);
	st_item_free(&it);
	st_reader_close(r);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/t-omap.XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
	if (!mkdtemp(dir))
		check_skip("no temporary directory");
	snprintf(in_path, sizeof in_path, "%s/in", dir);
	snprintf(out_path, sizeof out_path, "%s/out", dir);
	snprintf(cut_path, sizeof cut_path, "%s/cut", dir);
	write_input();
	baseline_threads = threads();
	char err[OMAP_MSGLEN];
	static const int counts[] = {1, 2, 4, 8};
	for (int k = 0; k < 4; k++) {
		int n = counts[k];
		CHECK(run(in_path, n, -1, -1, err) == 0, "%d workers: %s", n, err);
		check_output(n);
		/* items 9 and 10 fail, 10 slowly: item 9's message, whichever failed last */
		CHECK(run(in_path, n, 10, 9, err) == -1 && strcmp(err, "item 9 failed") == 0, "%d workers: '%s'", n, err);
		CHECK(access(out_path, F_OK) == 0, "the successful run's output stays");
		/* a truncated input: the reader's message, unless an earlier item fails first */
		CHECK(run(cut_path, n, -1, -1, err) == -1 && strstr(err, "truncated"), "%d workers, cut: '%s'", n, err);
		CHECK(run(cut_path, n, 3, -1, err) == -1 && strcmp(err, "item 3 failed") == 0, "%d workers, cut: '%s'", n,
		      err);
	}
	char e[ST_ERRLEN];
	st_reader *r = st_reader_open(in_path, 0, 0, e);
	CHECK(r && omap_run(r, NULL, 0, fn, NULL, 0, NULL, err) == -1, "no workers is refused");
	st_reader_close(r);
	unlink(in_path);
	unlink(out_path);
	unlink(cut_path);
	rmdir(dir);
	return check_done();
}
