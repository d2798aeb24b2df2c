/* splitmix64 and the k-means initialisation draw (docs/NUMERICS.md). */
#ifndef PKV_RNG_H
#define PKV_RNG_H
#include <stdint.h>

#include "splitmix64.h"

/* Writes m distinct indices from [0, n) (m <= n) by partial Fisher-Yates; scratch holds n entries. */
void pkv_draw_distinct(uint64_t seed, uint32_t n, uint32_t m, uint32_t *out, uint32_t *scratch);
uint64_t pkv_init_seed(uint64_t seed, uint32_t layer, uint32_t head, uint32_t kv);

#endif
