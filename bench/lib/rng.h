/* rng.h - the benchmarks' random numbers: splitmix64, small, fast and well
 * mixed, which is all arrival times and token draws need; seeded runs are
 * reproducible on every machine.  Header-only: each benchmark is one
 * program. */
#ifndef GP_BENCH_RNG_H
#define GP_BENCH_RNG_H

#include <stdint.h>

static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in (0, 1]. */
static inline double rng_unit(uint64_t *s)
{
	return ((double)(rng_next(s) >> 11) + 1.0) / 9007199254740992.0;
}

#endif
