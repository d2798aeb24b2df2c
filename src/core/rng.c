#include "rng.h"

void pkv_draw_distinct(uint64_t seed, uint32_t n, uint32_t m, uint32_t *out, uint32_t *scratch)
{
    uint64_t s = seed;
    uint32_t pick[PKV_DRAW_MAX];
    for (uint32_t i = 0; i < m; i++) {
        uint32_t j = i + (uint32_t)(pkv_splitmix64(&s) % (uint64_t)(n - i));
        uint32_t t = scratch[i];
        scratch[i] = scratch[j];
        scratch[j] = t;
        out[i] = scratch[i];
        pick[i] = j;
    }
    for (uint32_t i = m; i-- > 0;) { /* the swaps undone in reverse: the identity again */
        uint32_t t = scratch[i];
        scratch[i] = scratch[pick[i]];
        scratch[pick[i]] = t;
    }
}

uint64_t pkv_init_seed(uint64_t seed, uint32_t layer, uint32_t head, uint32_t kv)
{
    return seed ^ ((uint64_t)layer * 0x9E3779B97F4A7C15ull) ^ (uint64_t)(head * 2u + kv);
}
