/* Counter-based random numbers for the CLI: every value is a pure function of (seed, counters),
 * so the synthetic data of token t can be generated without generating tokens 0..t-1. */
#ifndef PKV_CLI_COUNTER_RNG_H
#define PKV_CLI_COUNTER_RNG_H

#include <math.h>
#include <stdint.h>

#include "splitmix64.h"

/* One splitmix64 output from the state x: a 64-bit mixing function. */
static inline uint64_t cli_mix64(uint64_t x) { return pkv_splitmix64(&x); }

static inline uint64_t cli_hash(uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    return cli_mix64(cli_mix64(cli_mix64(seed ^ a) ^ b) ^ c);
}

/* Uniform in (0, 1). */
static inline double cli_unit(uint64_t h) { return ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

/* Standard normal from one hash (Box-Muller on its two halves re-mixed). */
static inline double cli_gauss(uint64_t h)
{
    double u1 = cli_unit(h), u2 = cli_unit(cli_mix64(h));
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
