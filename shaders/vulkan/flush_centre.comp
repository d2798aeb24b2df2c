#version 450
/* Flush step 1: the Chebyshev centre (per channel (max + min) / 2 over the R window tokens) of the
 * window of each unit whose bank takes a new pattern, K and V, stored as pattern `bank_count` in
 * fp16. One invocation per channel pair (one word load per token for both); exact spans (the zero's
 * sign is stored). */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "block_common.glsl"

void main()
{
    uint hk = gl_WorkGroupID.y, kv = hk & 1u;
    unit = hk >> 1;
    uint i = gl_GlobalInvocationID.x * 2u;
    if (i >= D || udesc(3u) == 0u) return;
    uint base = udesc(0u) * pc.window_words + (kv * pc.R * D + i) / 2u; /* words: channels i, i + 1 of token 0 */
    uint w = win[base];
    pkv_span s0 = pkv_span_of(pkv_f16_to_f32(w & 0xffffu)), s1 = pkv_span_of(pkv_f16_to_f32(w >> 16));
    for (uint t = 1u; t < pc.R; t++) { /* one word load for both channels, tokens in order */
        w = win[base + t * (D / 2u)];
        s0 = pkv_span_add(s0, pkv_f16_to_f32(w & 0xffffu));
        s1 = pkv_span_add(s1, pkv_f16_to_f32(w >> 16));
    }
    uint lo = pkv_f32_to_f16(pkv_centre(s0.lo, s0.hi)), hi = pkv_f32_to_f16(pkv_centre(s1.lo, s1.hi));
    uint m = udesc(2u);
    uint chunk = udesc(4u + m / 32u);
    chk[chunk * pc.chunk_words + (kv * 32u * D + (m % 32u) * D + i) / 2u] = lo | (hi << 16);
}
