/*
 * nn_pool.h - a fixed team of threads for the network code.
 *
 * nn_pool_run(pool, fn, ctx) calls fn(ctx, tid, nthreads) once on each of
 * the pool's threads (the caller is thread 0) and returns when all have
 * finished.  Work is split statically by tid, never by who comes first, so
 * results do not depend on scheduling.  Inside fn every thread may call
 * nn_pool_barrier; all threads must reach each barrier.
 *
 * Idle workers sleep on a condition variable (see SPIN_ROUNDS in
 * nn_pool.c), so the pool never competes with other work for the cores
 * between parallel regions.
 * The pool owns no global state; several pools may coexist.
 */
#ifndef SERTOOLS_NN_POOL_H
#define SERTOOLS_NN_POOL_H

#include <stddef.h>

/* A sanity bound on the thread count of one pool, not a table size: every
 * per-thread structure is allocated for the count asked for.  Programs
 * refuse more with a message that names this limit. */
#define NN_MAX_THREADS 1024

typedef struct nn_pool nn_pool;
typedef void (*nn_task)(void *ctx, int tid, int nthreads);

/* 1 <= nthreads <= NN_MAX_THREADS (values outside are brought inside).
 * NULL when out of memory or when a thread cannot be started. */
nn_pool *nn_pool_new(int nthreads);
void nn_pool_free(nn_pool *pool);
int nn_pool_threads(const nn_pool *pool);
void nn_pool_run(nn_pool *pool, nn_task fn, void *ctx);
void nn_pool_barrier(nn_pool *pool);

/* The half-open share [*lo, *hi) of n items for thread tid of nth, in
 * contiguous blocks that are multiples of align (the last one excepted). */
void nn_split(size_t n, size_t align, int tid, int nth, size_t *lo, size_t *hi);

/* The number of CPUs this process may use: those of its affinity mask
 * (taskset, cpusets), further limited by a cgroup v2 CPU quota (cpu.max,
 * rounded up), at least 1 and at most NN_MAX_THREADS.  The default thread
 * count of every program. */
int nn_cpu_count(void);

#endif
