/* splitmix64 (Steele, Lea, Flood 2014), written once: the library draws the k-means
 * initialisation with it (rng.c, docs/NUMERICS.md) and the bench's synthetic data hashes counters
 * with it (bench/pkv/counter_rng.h). Header-only, no dependencies. */
#ifndef PKV_SPLITMIX64_H
#define PKV_SPLITMIX64_H

#include <stdint.h>

/* Advances *state and returns the next 64 random bits. */
static inline uint64_t pkv_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#endif
