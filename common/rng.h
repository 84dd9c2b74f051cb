/*
 * rng.h - a small seeded generator (splitmix64) for data order and crops,
 * and its mixing function for the network's counter-based draws.
 *
 * Its state is one 64-bit word the caller owns, so a training run derives
 * every epoch's generator from (seed, epoch) alone: the shuffle and crops
 * of an epoch do not depend on what came before, which is what lets a run
 * resume mid-epoch and end bitwise equal to an uninterrupted one.
 */
#ifndef SERTOOLS_RNG_H
#define SERTOOLS_RNG_H

#include <stdint.h>

/* splitmix64's increment, 2^64 / golden ratio. */
#define RNG_GOLDEN 0x9e3779b97f4a7c15ULL

/* splitmix64's finaliser: a bijective mix of one word.  Also used directly
 * as a counter-based generator (value i of a draw = rng_mix64(base + i
 * RNG_GOLDEN)), which is how the network draws its initial weights and
 * dropout masks independently of the thread count (nn_layers.h). */
static inline uint64_t rng_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t rng_next(uint64_t *state)
{
	return rng_mix64(*state += RNG_GOLDEN);
}

/* A generator for stream `stream` (e.g. the epoch) of `seed`. */
static inline uint64_t rng_seed(uint64_t seed, uint64_t stream)
{
	uint64_t s = seed ^ 0x5851f42d4c957f2dULL;
	rng_next(&s);
	s ^= stream * 0xda942042e4dd58b5ULL;
	rng_next(&s);
	return s;
}

/* Uniform in [0, n), n > 0, without modulo bias (rejection). */
static inline uint64_t rng_below(uint64_t *state, uint64_t n)
{
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t x;
	do
		x = rng_next(state);
	while (x >= limit);
	return x % n;
}

#endif
