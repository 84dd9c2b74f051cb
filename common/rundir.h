/*
 * rundir.h - a run directory: resumable state that is always whole.
 *
 * A training run keeps its resumable state in RUNDIR as state directories
 * "state-E-B" (epoch E, batch B: the position of the next step).  A state is
 * written as ".state-E-B.tmp", synced and renamed, so every "state-*"
 * directory is complete by construction and the newest one is a consistent
 * place to resume, whatever moment a kill -9 or a power cut chose.  The
 * files users read (RUNDIR/last.ckpt, log.tsv, best.ckpt, ...) are hard links
 * to the newest state's files, each replaced atomically (link to a temporary
 * name, rename).  Older states are pruned once a newer one is published.
 *
 * Guarantees:
 *   - after rundir_state_commit returns 0, the state is durable (the state
 *     directory and RUNDIR are fsynced) and its published names point to it;
 *   - a crash at any point leaves at most ".state-*.tmp" and ".NAME.link"
 *     leftovers, which rundir_remove_leftovers removes (and nothing else:
 *     it only touches hidden names of the files a run writes);
 *   - rundir_newest never returns an unfinished state.
 * Errors: 0 or -1 with a message in err (RUNDIR_ERRLEN bytes) naming the
 * path and the reason, as "PATH: why".  No global state.
 *
 * Usage sketch (cnn-train's save and resume):
 *
 *     rundir_state st;
 *     if (rundir_state_begin(&st, rundir, epoch, batch, err)) die(err);
 *     write_files_into(st.tmp);                        // last.ckpt, log.tsv, ...
 *     rundir_state_carry(&st, previous_state_dir, "best.ckpt", err);  // unchanged: a link
 *     const char *pub[] = {"last.ckpt", "log.tsv", "best.ckpt"};
 *     if (rundir_state_commit(&st, rundir, pub, 3, &state_dir, err)) die(err);
 *
 *     // on resume
 *     rundir_remove_leftovers(rundir);
 *     if (rundir_newest(rundir, &e, &b, err) == 1) { state_dir = "RUNDIR/state-e-b"; load from it }
 */
#ifndef SERTOOLS_RUNDIR_H
#define SERTOOLS_RUNDIR_H

#include <stdbool.h>
#include <stddef.h>

#define RUNDIR_ERRLEN 512

/* "dir/name", malloc'd; NULL when memory runs out. */
char *rundir_path(const char *dir, const char *name);

/* The newest complete state's (epoch, batch): 1, or 0 when there is none;
 * -1 with err when rundir cannot be read. */
int rundir_newest(const char *rundir, int *epoch, int *batch, char *err);

/* Removes what an interrupted run may have left half-written in dir: hidden
 * temporaries of the files a run writes (".init.XXXXXX.ckpt",
 * ".last.ckpt.link", ...) and unfinished state directories
 * (".state-E-B.tmp"); nothing else. */
void rundir_remove_leftovers(const char *dir);

/* Removes every state directory of rundir but state-E-B. */
void rundir_prune(const char *rundir, int keep_epoch, int keep_batch);

/* Makes rundir/name a hard link to statedir/name, atomically replacing it. */
int rundir_publish(const char *rundir, const char *statedir, const char *name, char *err);

/* fsync of a directory (its entries); errors are ignored, as for a
 * file system that cannot sync directories. */
void rundir_fsync_dir(const char *dir);

/* A state being written. */
typedef struct {
	char *tmp;   /* RUNDIR/.state-E-B.tmp: write the state's files here */
	char *final; /* RUNDIR/state-E-B */
} rundir_state;

/* Creates the temporary state directory (leftovers of a killed save must
 * have been removed: an existing one is an error). */
int rundir_state_begin(rundir_state *s, const char *rundir, int epoch, int batch, char *err);

/* When the new state has no file `name` and the previous state directory
 * prev (NULL: none) has one, links it in: an unchanged file costs nothing. */
int rundir_state_carry(const rundir_state *s, const char *prev, const char *name, char *err);

/* Syncs the state, renames it into place, syncs rundir, publishes each of
 * the n names the state holds, prunes older states, and replaces
 * *state_dir (freed) by the new state's path.  When state-E-B exists
 * already (nothing happened since it was saved) the committed copy is kept,
 * the temporary one removed and *state_dir left alone.  s is freed either
 * way. */
int rundir_state_commit(rundir_state *s, const char *rundir, const char *const *names, size_t n, char **state_dir,
                        char *err);

/* Drops a state being written (after an error): removes the temporary
 * directory and frees s. */
void rundir_state_abort(rundir_state *s);

/* Writes text to path atomically (common/atomic.h). */
int rundir_write_text(const char *path, const char *text, char *err);

/* The whole file as a NUL-terminated string (malloc'd), or NULL with err. */
char *rundir_read_text(const char *path, char *err);

#endif
