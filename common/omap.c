#include "omap.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
	st_reader *r;
	st_writer *w;
	omap_fn fn;
	cli_progress *progress;
	pthread_mutex_t rlock;  /* the reader and next_read */
	uint64_t next_read;
	bool eof;
	pthread_mutex_t wlock;  /* the writer, next_write and the error */
	pthread_cond_t turn;
	uint64_t next_write;
	atomic_bool stop;
	bool failed;
	uint64_t err_seq;
	char err[OMAP_MSGLEN];
} shared;

typedef struct {
	shared *sh;
	void *ctx;
	st_item it;
	pthread_t thread;
} worker;

/* The earliest failure by item order wins, whichever worker sees it first. */
static void set_error(shared *sh, uint64_t seq, const char *msg)
{
	pthread_mutex_lock(&sh->wlock);
	if (!sh->failed || seq < sh->err_seq) {
		sh->failed = true;
		sh->err_seq = seq;
		snprintf(sh->err, sizeof sh->err, "%s", msg);
	}
	atomic_store(&sh->stop, true);
	pthread_cond_broadcast(&sh->turn);
	pthread_mutex_unlock(&sh->wlock);
}

/* Waits for item seq's turn and writes it (unless the run stopped). */
static void write_in_turn(shared *sh, const st_item *it, uint64_t seq)
{
	pthread_mutex_lock(&sh->wlock);
	while (sh->next_write != seq && !atomic_load(&sh->stop))
		pthread_cond_wait(&sh->turn, &sh->wlock);
	if (!atomic_load(&sh->stop)) {
		if (st_writer_put(sh->w, it)) {
			sh->failed = true;
			sh->err_seq = seq;
			snprintf(sh->err, sizeof sh->err, "%s", st_writer_error(sh->w));
			atomic_store(&sh->stop, true);
		} else {
			sh->next_write++;
			if (sh->progress)
				cli_progress_update(sh->progress, sh->next_write, 0, "items");
		}
		pthread_cond_broadcast(&sh->turn);
	}
	pthread_mutex_unlock(&sh->wlock);
}

static void *work(void *arg)
{
	worker *wk = arg;
	shared *sh = wk->sh;
	char msg[OMAP_MSGLEN];
	for (;;) {
		pthread_mutex_lock(&sh->rlock);
		if (sh->eof || atomic_load(&sh->stop)) {
			pthread_mutex_unlock(&sh->rlock);
			break;
		}
		uint64_t seq = sh->next_read++;
		int rc = st_reader_next(sh->r, &wk->it);
		if (rc != ST_OK) {
			sh->eof = true;
			if (rc != ST_END)
				snprintf(msg, sizeof msg, "%s", st_reader_error(sh->r));
		}
		pthread_mutex_unlock(&sh->rlock);
		if (rc == ST_END)
			break;
		if (rc != ST_OK || sh->fn(wk->ctx, &wk->it, seq, msg)) {
			set_error(sh, seq, msg);
			break;
		}
		write_in_turn(sh, &wk->it, seq);
		st_item_clear(&wk->it);
	}
	return NULL;
}

int omap_run(st_reader *r, st_writer *w, int nworkers, omap_fn fn, void *states, size_t state_size,
             cli_progress *progress, char *err)
{
	worker *wk = calloc((size_t)(nworkers > 0 ? nworkers : 1), sizeof *wk);
	int ready = 0;
	while (wk && ready < nworkers && st_item_init(&wk[ready].it) == ST_OK)
		ready++;
	if (!wk || ready < nworkers || nworkers < 1) {
		snprintf(err, OMAP_MSGLEN, nworkers < 1 ? "omap: no workers" : "out of memory");
		for (int i = 0; i < ready; i++)
			st_item_free(&wk[i].it);
		free(wk);
		return -1;
	}
	shared sh = {.r = r, .w = w, .fn = fn, .progress = progress};
	pthread_mutex_init(&sh.rlock, NULL);
	pthread_mutex_init(&sh.wlock, NULL);
	pthread_cond_init(&sh.turn, NULL);
	atomic_init(&sh.stop, false);
	for (int i = 0; i < nworkers; i++) {
		wk[i].sh = &sh;
		wk[i].ctx = (char *)states + (size_t)i * state_size;
	}
	int started = 1;
	for (; started < nworkers; started++)
		if (pthread_create(&wk[started].thread, NULL, work, &wk[started]))
			break;
	if (started < nworkers)
		set_error(&sh, 0, "cannot start worker threads");
	work(&wk[0]);
	for (int i = 1; i < started; i++)
		pthread_join(wk[i].thread, NULL);
	for (int i = 0; i < nworkers; i++)
		st_item_free(&wk[i].it);
	free(wk);
	pthread_mutex_destroy(&sh.rlock);
	pthread_mutex_destroy(&sh.wlock);
	pthread_cond_destroy(&sh.turn);
	if (sh.failed)
		snprintf(err, OMAP_MSGLEN, "%s", sh.err);
	return sh.failed ? -1 : 0;
}
