/* nn_pool.c - see nn_pool.h. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "nn_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Waiters may spin this many PAUSE rounds (~28 ns each on Zen 3) before
 * they sleep.  Measured on the shared 2-core machine, 1000 rounds made the
 * width_div 8 network 2-3% slower (the spinning competes with the other
 * processes), so waiters sleep at once; raise it for dedicated machines. */
#define SPIN_ROUNDS 0

struct nn_pool {
	int n;
	pthread_t *threads;       /* n entries; [0] unused (the caller is thread 0) */
	int started;
	pthread_mutex_t mu;
	pthread_cond_t work_cv, done_cv, bar_cv;
	atomic_ulong generation;   /* bumped for every nn_pool_run */
	atomic_int pending;        /* workers still running the current task */
	atomic_int quit;
	nn_task fn;
	void *ctx;
	atomic_int bar_count;
	atomic_ulong bar_gen;
};

typedef struct {
	nn_pool *pool;
	int tid;
} worker_arg;

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static void *worker(void *arg)
{
	nn_pool *p = ((worker_arg *)arg)->pool;
	int tid = ((worker_arg *)arg)->tid;
	free(arg);
	unsigned long seen = 0;
	for (;;) {
		for (int i = 0; i < SPIN_ROUNDS && atomic_load(&p->generation) == seen && !atomic_load(&p->quit); i++)
			relax();
		if (atomic_load(&p->generation) == seen) {
			pthread_mutex_lock(&p->mu);
			while (!atomic_load(&p->quit) && atomic_load(&p->generation) == seen)
				pthread_cond_wait(&p->work_cv, &p->mu);
			pthread_mutex_unlock(&p->mu);
		}
		if (atomic_load(&p->quit))
			break;
		seen = atomic_load(&p->generation);
		p->fn(p->ctx, tid, p->n);
		if (atomic_fetch_sub(&p->pending, 1) == 1) {
			pthread_mutex_lock(&p->mu);
			pthread_cond_signal(&p->done_cv);
			pthread_mutex_unlock(&p->mu);
		}
	}
	return NULL;
}

nn_pool *nn_pool_new(int nthreads)
{
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > NN_MAX_THREADS)
		nthreads = NN_MAX_THREADS;
	nn_pool *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->n = nthreads;
	p->threads = calloc((size_t)nthreads, sizeof *p->threads);
	if (!p->threads) {
		free(p);
		return NULL;
	}
	atomic_init(&p->generation, 0);
	atomic_init(&p->pending, 0);
	atomic_init(&p->quit, 0);
	atomic_init(&p->bar_count, 0);
	atomic_init(&p->bar_gen, 0);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work_cv, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	pthread_cond_init(&p->bar_cv, NULL);
	for (int t = 1; t < nthreads; t++) {
		worker_arg *a = malloc(sizeof *a);
		if (a) {
			a->pool = p;
			a->tid = t;
		}
		if (!a || pthread_create(&p->threads[t], NULL, worker, a) != 0) {
			free(a);
			nn_pool_free(p);
			return NULL;
		}
		p->started = t;
	}
	return p;
}

void nn_pool_free(nn_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->quit, 1);
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
	for (int t = 1; t <= p->started; t++)
		pthread_join(p->threads[t], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work_cv);
	pthread_cond_destroy(&p->done_cv);
	pthread_cond_destroy(&p->bar_cv);
	free(p->threads);
	free(p);
}

int nn_pool_threads(const nn_pool *p)
{
	return p->n;
}

void nn_pool_run(nn_pool *p, nn_task fn, void *ctx)
{
	if (p->n == 1) {
		fn(ctx, 0, 1);
		return;
	}
	p->fn = fn;
	p->ctx = ctx;
	atomic_store(&p->pending, p->n - 1);
	pthread_mutex_lock(&p->mu);
	atomic_fetch_add(&p->generation, 1);
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
	fn(ctx, 0, p->n);
	for (int i = 0; i < SPIN_ROUNDS && atomic_load(&p->pending) > 0; i++)
		relax();
	if (atomic_load(&p->pending) > 0) {
		pthread_mutex_lock(&p->mu);
		while (atomic_load(&p->pending) > 0)
			pthread_cond_wait(&p->done_cv, &p->mu);
		pthread_mutex_unlock(&p->mu);
	}
}

void nn_pool_barrier(nn_pool *p)
{
	if (p->n == 1)
		return;
	unsigned long gen = atomic_load(&p->bar_gen);
	if (atomic_fetch_add(&p->bar_count, 1) == p->n - 1) {
		atomic_store(&p->bar_count, 0);
		pthread_mutex_lock(&p->mu);
		atomic_fetch_add(&p->bar_gen, 1);
		pthread_cond_broadcast(&p->bar_cv);
		pthread_mutex_unlock(&p->mu);
		return;
	}
	for (int i = 0; i < SPIN_ROUNDS && atomic_load(&p->bar_gen) == gen; i++)
		relax();
	if (atomic_load(&p->bar_gen) == gen) {
		pthread_mutex_lock(&p->mu);
		while (atomic_load(&p->bar_gen) == gen)
			pthread_cond_wait(&p->bar_cv, &p->mu);
		pthread_mutex_unlock(&p->mu);
	}
}

void nn_split(size_t n, size_t align, int tid, int nth, size_t *lo, size_t *hi)
{
	if (align < 1)
		align = 1;
	size_t blocks = (n + align - 1) / align;
	size_t b0 = blocks * (size_t)tid / (size_t)nth, b1 = blocks * (size_t)(tid + 1) / (size_t)nth;
	*lo = b0 * align < n ? b0 * align : n;
	*hi = b1 * align < n ? b1 * align : n;
}

/* ceil(quota / period) from a cgroup v2 cpu.max file ("max 100000" or
 * "150000 100000"), or 0 when there is no quota or no such file. */
static long cgroup_quota_cpus(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	char quota[32] = "";
	long period = 0;
	int got = fscanf(f, "%31s %ld", quota, &period);
	fclose(f);
	if (got != 2 || period <= 0 || strcmp(quota, "max") == 0)
		return 0;
	long q = strtol(quota, NULL, 10);
	return q > 0 ? (q + period - 1) / period : 0;
}

/* The cpu.max of this process's own cgroup (v2: the "0::" line of
 * /proc/self/cgroup), or 0. */
static long own_cgroup_quota_cpus(void)
{
	FILE *f = fopen("/proc/self/cgroup", "r");
	if (!f)
		return 0;
	char line[4096], path[4200];
	long n = 0;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		line[strcspn(line, "\n")] = 0;
		snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", line + 3);
		n = cgroup_quota_cpus(path);
		break;
	}
	fclose(f);
	return n;
}

int nn_cpu_count(void)
{
	long n = 0;
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		n = CPU_COUNT(&set);
	if (n < 1)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	long quota = own_cgroup_quota_cpus();
	if (quota > 0 && quota < n)
		n = quota;
	return n < 1 ? 1 : n > NN_MAX_THREADS ? NN_MAX_THREADS : (int)n;
}
