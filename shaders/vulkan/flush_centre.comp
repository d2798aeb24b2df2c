#version 450
/* Flush step 1: the Chebyshev centre (per channel (max + min) / 2 over the R window tokens) of the
 * window of each unit whose bank takes a new pattern, K and V, stored as pattern `bank_count` in
 * fp16. One invocation per channel pair; exact spans (the zero's sign is stored). */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "block_common.glsl"

float centre(uint base, uint i)
{
    pkv_span s = pkv_span_of(win_h(base + i));
    for (uint t = 1u; t < pc.R; t++) s = pkv_span_add(s, win_h(base + t * D + i));
    return pkv_centre(s.lo, s.hi);
}

void main()
{
    uint hk = gl_WorkGroupID.y, kv = hk & 1u;
    unit = hk >> 1;
    uint i = gl_GlobalInvocationID.x * 2u;
    if (i >= D || udesc(3u) == 0u) return;
    uint base = udesc(0u) * pc.window_words * 2u + kv * pc.R * D;
    uint lo = pkv_f32_to_f16(centre(base, i)), hi = pkv_f32_to_f16(centre(base, i + 1u));
    uint m = udesc(2u);
    uint chunk = udesc(4u + m / 32u);
    chk[chunk * pc.chunk_words + (kv * 32u * D + (m % 32u) * D + i) / 2u] = lo | (hi << 16);
}
