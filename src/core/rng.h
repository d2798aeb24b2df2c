/* splitmix64 and the k-means initialisation draw (docs/NUMERICS.md). */
#ifndef PKV_RNG_H
#define PKV_RNG_H
#include <stdint.h>

#include "splitmix64.h"

/* Writes m distinct indices from [0, n) (m <= n, m <= PKV_DRAW_MAX) by partial Fisher-Yates. scratch
 * holds n entries, the identity (scratch[i] = i) on entry and again on return: one initialisation
 * serves every draw of a prompt (O(m) each, where a fresh one per draw cost O(n)). */
#define PKV_DRAW_MAX 1024u
void pkv_draw_distinct(uint64_t seed, uint32_t n, uint32_t m, uint32_t *out, uint32_t *scratch);
uint64_t pkv_init_seed(uint64_t seed, uint32_t layer, uint32_t head, uint32_t kv);

#endif
