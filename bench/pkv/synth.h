/* The built-in synthetic KV generator, built like real post-RoPE attention keys and values.
 *
 * Per layer and KV head, independently (all draws from the seed):
 * - Keys: n_centres = 6 stable centres, each channel ~ N(0, 1). Four channel pairs at the low-frequency
 *   end (the last pairs, which RoPE rotates slowly) carry a large offset of magnitude 4..8 and random
 *   sign shared by all centres (the "massive channels" of real keys). Each centre drifts linearly,
 *   by N(0, 0.3^2) per channel every 4096 tokens. Tokens come in runs of 16 that share a centre,
 *   chosen with Zipf-like weights 1/(j+1); each token adds N(0, 0.35^2) noise per channel. Then
 *   RoPE: the pair (2i, 2i+1) is rotated by the angle t * 10000^(-2i/d), t the token position.
 * - Values: 4 centres with channels ~ N(0, 0.5^2), no offsets, no rotation, noise N(0, 0.6^2),
 *   runs of 16 like the keys (weaker structure, as in real V).
 * - Queries (per query head, mapped to its KV head like GQA): a key centre chosen independently,
 *   noise N(0, 0.5^2), the same large channels at a quarter of their magnitude, rotated like keys.
 * Values stay far inside fp16 range. */
#ifndef PKV_CLI_SYNTH_H
#define PKV_CLI_SYNTH_H

#include <stdint.h>

typedef struct synth_params {
    uint64_t seed;
    uint32_t n_kv_heads, n_q_heads, head_dim;
} synth_params;

/* Keys and values of tokens t0 .. t0+n-1 of one layer and kv head, each [n][head_dim]. */
void synth_kv(const synth_params *p, uint32_t layer, uint32_t head, uint32_t t0, uint32_t n, float *k, float *v);
/* Query of query head qh at position t, [head_dim]. */
void synth_q(const synth_params *p, uint32_t layer, uint32_t qh, uint32_t t, float *q);

#endif
