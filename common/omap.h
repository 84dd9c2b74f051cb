/*
 * omap.h - an ordered parallel map over the items of a stream: N workers
 * each read an item, transform it in place, and write it, and the output
 * keeps the input's order whatever N is and however long each item takes.
 *
 * How: a worker takes the next item from the reader under one lock (the
 * item's sequence number is its position in the input), transforms it
 * without locks, then waits until every earlier item is written and writes
 * its own.  So at most N items are in memory, and one slow item holds the
 * others back at most until its own turn.
 *
 * Guarantees:
 *   - output order = input order, bytes independent of N (as long as fn
 *     depends only on its item and its worker's state);
 *   - on failure the message is that of the earliest failing item in input
 *     order (a transform error, a read error, or a write error), the same
 *     for any N; the other workers stop after their current item and are
 *     joined before omap_run returns: no thread outlives the call;
 *   - the writer is left to the caller: st_writer_close on success,
 *     st_writer_abort on failure (so a file output never appears half).
 *
 * Usage (melspec.c):
 *     static int fn(void *ctx, st_item *it, uint64_t seq, char *msg) {
 *         ...transform it; on error snprintf(msg, OMAP_MSGLEN, ...), return -1...
 *     }
 *     state st[N] = {...one state per worker...};
 *     if (omap_run(r, w, N, fn, st, sizeof *st, &progress, err)) { st_writer_abort(w); die(err); }
 *     st_writer_close(w, err);
 */
#ifndef SERTOOLS_OMAP_H
#define SERTOOLS_OMAP_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "stream.h"

/* Room for a message: a stream error plus what the transform adds. */
#define OMAP_MSGLEN (ST_ERRLEN + 256)

/* Transforms item it (number seq from 0, in input order) in place, with ctx,
 * the calling worker's own state.  0, or -1 with a message in msg
 * (OMAP_MSGLEN bytes). */
typedef int (*omap_fn)(void *ctx, st_item *it, uint64_t seq, char *msg);

/* Reads r to its end record, applying fn with nworkers threads (the calling
 * thread is one of them; nworkers >= 1) and writing each item to w in input
 * order.  states is an array of nworkers per-worker states of state_size
 * bytes each; worker i's fn gets (char *)states + i * state_size.
 * progress, when not NULL, is updated with the items written.  0, or -1
 * with the message of the earliest failure in err (OMAP_MSGLEN bytes). */
int omap_run(st_reader *r, st_writer *w, int nworkers, omap_fn fn, void *states, size_t state_size,
             cli_progress *progress, char *err);

#endif
