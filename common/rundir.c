#include "rundir.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"

static int fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, RUNDIR_ERRLEN, fmt, ap);
	va_end(ap);
	return -1;
}

char *rundir_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

int rundir_newest(const char *rundir, int *epoch, int *batch, char *err)
{
	DIR *d = opendir(rundir);
	if (!d)
		return fail(err, "%s: %s", rundir, strerror(errno));
	struct dirent *e;
	int found = 0;
	while ((e = readdir(d))) {
		int ep, b;
		char tail;
		if (sscanf(e->d_name, "state-%d-%d%c", &ep, &b, &tail) == 2 &&
		    (!found || ep > *epoch || (ep == *epoch && b > *batch))) {
			*epoch = ep;
			*batch = b;
			found = 1;
		}
	}
	closedir(d);
	return found;
}

/* Removes dir and the files in it (a state directory holds no subdirectories). */
static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			char *p = rundir_path(dir, e->d_name);
			if (p)
				unlink(p);
			free(p);
		}
	closedir(d);
	rmdir(dir);
}

void rundir_prune(const char *rundir, int keep_epoch, int keep_batch)
{
	DIR *d = opendir(rundir);
	if (!d)
		return;
	struct dirent *e;
	char keep[64];
	snprintf(keep, sizeof keep, "state-%d-%d", keep_epoch, keep_batch);
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "state-", 6) == 0 && strcmp(e->d_name, keep) != 0) {
			char *p = rundir_path(rundir, e->d_name);
			if (p)
				remove_tree(p);
			free(p);
		}
	}
	closedir(d);
}

void rundir_remove_leftovers(const char *dir)
{
	static const char *const ours[] = {"init.", "run.", "last.", "best.", "log.", "summary.", "position.", "state-"};
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] != '.')
			continue;
		for (size_t i = 0; i < sizeof ours / sizeof *ours; i++)
			if (strncmp(e->d_name + 1, ours[i], strlen(ours[i])) == 0) {
				char *p = rundir_path(dir, e->d_name);
				if (p && unlink(p) != 0)
					remove_tree(p);
				free(p);
				break;
			}
	}
	closedir(d);
}

int rundir_publish(const char *rundir, const char *statedir, const char *name, char *err)
{
	char *target = rundir_path(statedir, name), *dest = rundir_path(rundir, name);
	size_t n = strlen(rundir) + strlen(name) + 16;
	char *tmp = malloc(n);
	int rc = 0;
	if (!target || !dest || !tmp) {
		rc = fail(err, "out of memory");
	} else {
		snprintf(tmp, n, "%s/.%s.link", rundir, name);
		unlink(tmp);
		if (link(target, tmp) != 0 || rename(tmp, dest) != 0)
			rc = fail(err, "%s: %s", dest, strerror(errno));
		/* rename() between two links of one file does nothing: drop the spare link */
		unlink(tmp);
	}
	free(target);
	free(dest);
	free(tmp);
	return rc;
}

void rundir_fsync_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		fsync(dirfd(d));
		closedir(d);
	}
}

int rundir_state_begin(rundir_state *s, const char *rundir, int epoch, int batch, char *err)
{
	char name[64];
	snprintf(name, sizeof name, ".state-%d-%d.tmp", epoch, batch);
	s->tmp = rundir_path(rundir, name);
	snprintf(name, sizeof name, "state-%d-%d", epoch, batch);
	s->final = rundir_path(rundir, name);
	if (!s->tmp || !s->final) {
		rundir_state_abort(s);
		return fail(err, "out of memory");
	}
	if (mkdir(s->tmp, 0777) != 0) {
		fail(err, "%s: %s", s->tmp, strerror(errno));
		free(s->tmp);
		free(s->final);
		s->tmp = s->final = NULL;
		return -1;
	}
	return 0;
}

int rundir_state_carry(const rundir_state *s, const char *prev, const char *name, char *err)
{
	char *dest = rundir_path(s->tmp, name), *old = prev ? rundir_path(prev, name) : NULL;
	int rc = 0;
	if (!dest || (prev && !old))
		rc = fail(err, "out of memory");
	else if (access(dest, F_OK) != 0 && old && access(old, F_OK) == 0 && link(old, dest) != 0)
		rc = fail(err, "%s: %s", dest, strerror(errno));
	free(dest);
	free(old);
	return rc;
}

/* Publishes those of names that the committed state holds. */
static int publish_all(const char *rundir, const char *state, const char *const *names, size_t n, char *err)
{
	for (size_t i = 0; i < n; i++) {
		char *p = rundir_path(state, names[i]);
		if (!p)
			return fail(err, "out of memory");
		bool present = access(p, F_OK) == 0;
		free(p);
		if (present && rundir_publish(rundir, state, names[i], err))
			return -1;
	}
	return 0;
}

int rundir_state_commit(rundir_state *s, const char *rundir, const char *const *names, size_t n, char **state_dir,
                        char *err)
{
	rundir_fsync_dir(s->tmp);
	if (access(s->final, F_OK) == 0) {
		/* nothing was trained since this position was saved: keep the committed copy */
		rundir_state_abort(s);
		return 0;
	}
	if (rename(s->tmp, s->final) != 0) {
		fail(err, "%s: %s", s->final, strerror(errno));
		rundir_state_abort(s);
		return -1;
	}
	rundir_fsync_dir(rundir);
	free(s->tmp);
	free(*state_dir);
	*state_dir = s->final;
	s->tmp = s->final = NULL;
	if (publish_all(rundir, *state_dir, names, n, err))
		return -1;
	/* the state's name says its position */
	const char *base = strrchr(*state_dir, '/');
	int epoch, batch;
	if (sscanf(base ? base + 1 : *state_dir, "state-%d-%d", &epoch, &batch) == 2)
		rundir_prune(rundir, epoch, batch);
	return 0;
}

void rundir_state_abort(rundir_state *s)
{
	if (s->tmp)
		remove_tree(s->tmp);
	free(s->tmp);
	free(s->final);
	s->tmp = s->final = NULL;
}

int rundir_write_text(const char *path, const char *text, char *err)
{
	atomic_file af;
	if (atomic_open(&af, path, err, RUNDIR_ERRLEN))
		return -1;
	if (fputs(text, af.f) == EOF) {
		atomic_abort(&af);
		return fail(err, "%s: %s", path, strerror(errno));
	}
	return atomic_commit(&af, err, RUNDIR_ERRLEN);
}

char *rundir_read_text(const char *path, char *err)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fail(err, "%s: %s", path, strerror(errno));
		return NULL;
	}
	size_t len = 0, cap = 4096, n;
	char *s = malloc(cap);
	while (s && (n = fread(s + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len - 1 == 0) {
			char *ns = realloc(s, cap * 2);
			if (!ns) {
				free(s);
				s = NULL;
				break;
			}
			s = ns;
			cap *= 2;
		}
	}
	if (!s || ferror(f)) {
		fail(err, s ? "%s: read error" : "%s: out of memory", path);
		free(s);
		fclose(f);
		return NULL;
	}
	fclose(f);
	s[len] = '\0';
	return s;
}
