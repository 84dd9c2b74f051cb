/* Unit test of the run-directory store (common/rundir.h): a state written,
 * committed and published as hard links; the next one carrying an unchanged
 * file over and pruning the older; a crash between the steps simulated by
 * leaving a temporary state and a half-made link, which resume ignores and
 * rundir_remove_leftovers removes (and nothing else); a position committed
 * twice; numeric ordering of the newest state; the errors.  Runs in the
 * current directory (tests/run.sh gives each test a fresh one). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "rundir.h"

static char err[RUNDIR_ERRLEN];

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static ino_t inode(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_ino : 0;
}

static void put(const char *dir, const char *name, const char *text)
{
	char *p = rundir_path(dir, name);
	NEED(p);
	NEED(rundir_write_text(p, text, err) == 0);
	free(p);
}

/* The file's text, "" when unreadable (static buffer). */
static const char *get(const char *path)
{
	static char buf[256];
	char *s = rundir_read_text(path, err);
	snprintf(buf, sizeof buf, "%s", s ? s : "");
	free(s);
	return buf;
}

static const char *const published[] = {"last.ckpt", "log.tsv", "best.ckpt"};

/* A state at (e, b) holding last.ckpt and log.tsv with text, best.ckpt when best. */
static int save(const char *run, int e, int b, const char *text, bool best, char **state_dir)
{
	rundir_state st;
	if (rundir_state_begin(&st, run, e, b, err))
		return -1;
	put(st.tmp, "last.ckpt", text);
	put(st.tmp, "log.tsv", text);
	if (best)
		put(st.tmp, "best.ckpt", text);
	if (rundir_state_carry(&st, *state_dir, "best.ckpt", err)) {
		rundir_state_abort(&st);
		return -1;
	}
	return rundir_state_commit(&st, run, published, 3, state_dir, err);
}

static void test_commit_and_carry(char **state_dir)
{
	int e = -1, b = -1;
	NEED(mkdir("run", 0777) == 0);
	CHECK(rundir_newest("run", &e, &b, err) == 0, "an empty run has no state");
	CHECK(save("run", 1, 0, "one", true, state_dir) == 0, "first state: %s", err);
	CHECK(*state_dir && strcmp(*state_dir, "run/state-1-0") == 0, "state_dir %s", *state_dir);
	CHECK(!exists("run/.state-1-0.tmp"), "the temporary state is gone");
	for (int i = 0; i < 3; i++) {
		char a[64], s[64];
		snprintf(a, sizeof a, "run/%s", published[i]);
		snprintf(s, sizeof s, "run/state-1-0/%s", published[i]);
		CHECK(inode(a) && inode(a) == inode(s), "%s is a link to the state's", a);
	}
	CHECK(save("run", 1, 7, "mid", false, state_dir) == 0, "mid-epoch state: %s", err);
	CHECK(inode("run/state-1-7/best.ckpt") == inode("run/state-1-0/best.ckpt") || !exists("run/state-1-0"),
	      "best.ckpt carried as a link");
	CHECK(strcmp(get("run/state-1-7/best.ckpt"), "one") == 0, "carried best.ckpt: %s", get("run/state-1-7/best.ckpt"));
	CHECK(!exists("run/state-1-0"), "the older state is pruned");
	CHECK(strcmp(get("run/last.ckpt"), "mid") == 0 && strcmp(get("run/best.ckpt"), "one") == 0, "published texts");
	CHECK(inode("run/best.ckpt") == inode("run/state-1-7/best.ckpt"), "best.ckpt published from the new state");
	CHECK(rundir_newest("run", &e, &b, err) == 1 && e == 1 && b == 7, "newest (%d, %d)", e, b);
}

static void test_crash(char **state_dir)
{
	/* a save killed after writing some files, and a publish killed after its link */
	rundir_state st;
	NEED(rundir_state_begin(&st, "run", 2, 0, err) == 0);
	put(st.tmp, "last.ckpt", "half");
	free(st.tmp);
	free(st.final);
	NEED(link("run/state-1-7/log.tsv", "run/.log.tsv.link") == 0);
	put("run", ".other", "not ours");
	put("run", "notes.txt", "the user's");
	int e = -1, b = -1;
	CHECK(rundir_newest("run", &e, &b, err) == 1 && e == 1 && b == 7, "resume ignores the unfinished state: (%d, %d)",
	      e, b);
	/* a new save at the same position fails until the leftovers are removed */
	CHECK(save("run", 2, 0, "two", false, state_dir) == -1 && strstr(err, "run/.state-2-0.tmp"),
	      "begin over a leftover: %s", err);
	rundir_remove_leftovers("run");
	CHECK(!exists("run/.state-2-0.tmp") && !exists("run/.log.tsv.link"), "leftovers removed");
	CHECK(exists("run/.other") && exists("run/notes.txt") && exists("run/state-1-7/last.ckpt"), "nothing else removed");
	CHECK(save("run", 2, 0, "two", true, state_dir) == 0, "save after cleanup: %s", err);
	CHECK(strcmp(get("run/last.ckpt"), "two") == 0 && strcmp(get("run/best.ckpt"), "two") == 0, "published after resume");
}

static void test_same_position(char **state_dir)
{
	char *before = strdup(*state_dir);
	CHECK(save("run", 2, 0, "again", false, state_dir) == 0, "second commit of a position: %s", err);
	CHECK(strcmp(*state_dir, before) == 0, "state_dir unchanged: %s", *state_dir);
	CHECK(strcmp(get("run/state-2-0/last.ckpt"), "two") == 0, "the committed copy is kept");
	CHECK(!exists("run/.state-2-0.tmp"), "the temporary copy is removed");
	free(before);
}

static void test_newest_and_prune(void)
{
	NEED(mkdir("order", 0777) == 0);
	const char *dirs[] = {"order/state-2-10", "order/state-10-1", "order/state-9-99", "order/state-11-0x",
	                      "order/.state-12-0.tmp", "order/state-10-0"};
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
		NEED(mkdir(dirs[i], 0777) == 0);
	put("order/state-2-10", "last.ckpt", "x");
	int e = -1, b = -1;
	CHECK(rundir_newest("order", &e, &b, err) == 1 && e == 10 && b == 1, "numeric order: (%d, %d)", e, b);
	rundir_prune("order", 10, 1);
	CHECK(exists("order/state-10-1") && !exists("order/state-2-10") && !exists("order/state-9-99") &&
	          !exists("order/state-10-0"),
	      "prune keeps only the given state");
	CHECK(rundir_newest("missing", &e, &b, err) == -1 && strstr(err, "missing: "), "unreadable: %s", err);
}

static void test_errors(void)
{
	CHECK(rundir_publish("run", "run/state-2-0", "nothing.ckpt", err) == -1 && strstr(err, "run/nothing.ckpt: "),
	      "publish of a missing file: %s", err);
	CHECK(rundir_read_text("run/none", err) == NULL && strstr(err, "run/none: "), "read of a missing file: %s", err);
	CHECK(rundir_write_text("nodir/x", "x", err) == -1 && strstr(err, "nodir"), "write into a missing dir: %s", err);
}

int main(void)
{
	char *state_dir = NULL;
	test_commit_and_carry(&state_dir);
	test_crash(&state_dir);
	test_same_position(&state_dir);
	test_newest_and_prune();
	test_errors();
	free(state_dir);
	return check_done();
}
