#include "atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The process's umask without changing it (Linux >= 4.7 shows it in
 * /proc/self/status); elsewhere the set-and-restore, which a file created
 * by another thread in between could see. */
static mode_t current_umask(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned mask;
	int found = 0;
	while (f && !found && fgets(line, sizeof line, f))
		found = sscanf(line, "Umask: %o", &mask) == 1;
	if (f)
		fclose(f);
	if (found)
		return (mode_t)mask;
	mode_t um = umask(0);
	umask(um);
	return um;
}

static int make_temp(atomic_file *af, const char *path, char *err, size_t errlen)
{
	memset(af, 0, sizeof *af);
	struct stat st;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		if (S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "%s: is a directory", path);
			return -1;
		}
		af->direct = 1;
		af->path = strdup(path);
		af->tmp = strdup(path);
		if (!af->path || !af->tmp) {
			snprintf(err, errlen, "%s: out of memory", path);
			free(af->path);
			free(af->tmp);
			memset(af, 0, sizeof *af);
			return -1;
		}
		return 0;
	}
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	const char *dot = strrchr(base, '.');
	size_t dirlen = (size_t)(base - path);
	size_t extlen = dot && dot != base ? strlen(dot) : 0;
	size_t stemlen = strlen(base) - extlen;
	af->path = strdup(path);
	af->tmp = malloc(strlen(path) + 16);
	if (!af->path || !af->tmp) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	/* .stem.XXXXXX.ext */
	snprintf(af->tmp, strlen(path) + 16, "%.*s.%.*s.XXXXXX%s", (int)dirlen, path, (int)stemlen, base,
	         extlen ? dot : "");
	int fd = mkstemps(af->tmp, (int)extlen);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot create temporary file: %s", path, strerror(errno));
		goto fail;
	}
	/* mkstemp makes 0600; outputs are ordinary files for the user's umask */
	if (fchmod(fd, 0666 & ~current_umask()) != 0 || close(fd) != 0) {
		snprintf(err, errlen, "%s: %s", af->tmp, strerror(errno));
		unlink(af->tmp);
		goto fail;
	}
	return 0;
fail:
	free(af->path);
	free(af->tmp);
	memset(af, 0, sizeof *af);
	return -1;
}

int atomic_reserve(atomic_file *af, const char *path, char *err, size_t errlen)
{
	return make_temp(af, path, err, errlen);
}

int atomic_open(atomic_file *af, const char *path, char *err, size_t errlen)
{
	if (make_temp(af, path, err, errlen))
		return -1;
	af->f = fopen(af->tmp, "wb");
	if (!af->f) {
		snprintf(err, errlen, "%s: %s", af->tmp, strerror(errno));
		atomic_abort(af);
		return -1;
	}
	return 0;
}

int atomic_commit(atomic_file *af, char *err, size_t errlen)
{
	int rc = 0;
	if (af->direct) {
		if (af->f && (fflush(af->f) != 0 || ferror(af->f))) {
			snprintf(err, errlen, "%s: %s", af->path, strerror(errno));
			rc = -1;
		}
		if (af->f && fclose(af->f) != 0 && rc == 0) {
			snprintf(err, errlen, "%s: %s", af->path, strerror(errno));
			rc = -1;
		}
		free(af->path);
		free(af->tmp);
		memset(af, 0, sizeof *af);
		return rc;
	}
	if (af->f) {
		if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0) {
			snprintf(err, errlen, "%s: %s", af->path, strerror(errno));
			rc = -1;
		}
		if (fclose(af->f) != 0 && rc == 0) {
			snprintf(err, errlen, "%s: %s", af->path, strerror(errno));
			rc = -1;
		}
		af->f = NULL;
	} else {
		int fd = open(af->tmp, O_RDONLY);
		if (fd < 0 || fsync(fd) != 0) {
			snprintf(err, errlen, "%s: %s", af->path, strerror(errno));
			rc = -1;
		}
		if (fd >= 0)
			close(fd);
	}
	if (rc == 0 && rename(af->tmp, af->path) != 0) {
		snprintf(err, errlen, "%s: %s", af->path, strerror(errno));
		rc = -1;
	}
	if (rc != 0)
		unlink(af->tmp);
	free(af->path);
	free(af->tmp);
	af->path = af->tmp = NULL;
	return rc;
}

void atomic_abort(atomic_file *af)
{
	if (af->f)
		fclose(af->f);
	if (af->tmp && !af->direct)
		unlink(af->tmp);
	free(af->path);
	free(af->tmp);
	memset(af, 0, sizeof *af);
}

int atomic_output_open(atomic_output *o, const char *path, char *err, size_t errlen)
{
	memset(o, 0, sizeof *o);
	if (!path || strcmp(path, "-") == 0) {
		o->f = stdout;
		return 0;
	}
	if (atomic_open(&o->file, path, err, errlen))
		return -1;
	o->f = o->file.f;
	return 0;
}

int atomic_output_commit(atomic_output *o, char *err, size_t errlen)
{
	if (!o->file.path) {
		int rc = o->f && (fflush(o->f) != 0 || ferror(o->f)) ? -1 : 0;
		if (rc)
			snprintf(err, errlen, "stdout: write error");
		o->f = NULL;
		return rc;
	}
	if (ferror(o->file.f)) {
		snprintf(err, errlen, "%s: write error", o->file.path);
		atomic_output_abort(o);
		return -1;
	}
	o->f = NULL;
	return atomic_commit(&o->file, err, errlen);
}

void atomic_output_abort(atomic_output *o)
{
	if (o->file.path)
		atomic_abort(&o->file);
	o->f = NULL;
}
