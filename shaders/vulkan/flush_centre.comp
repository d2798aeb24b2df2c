#version 450
/* Flush step 1: the Chebyshev centre (per channel (max + min) / 2 over the R window tokens) of each
 * head's window, K and V, stored as pattern `bank_count` in fp16. One invocation per channel pair. */
#include "pkv_math.h"
#include "pkv_buffers.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128;

layout(push_constant) uniform Push {
    uint window_words, R, chunk_words, bank_count;
    uint window_slot_off, chunk_off;
} pc;

float centre(uint base, uint i)
{
    pkv_span s = pkv_span_of(win_h(base + i));
    for (uint t = 1u; t < pc.R; t++) s = pkv_span_add(s, win_h(base + t * D + i));
    return pkv_centre(s.lo, s.hi);
}

void main()
{
    uint hk = gl_WorkGroupID.y, h = hk >> 1, kv = hk & 1u;
    uint i = gl_GlobalInvocationID.x * 2u;
    if (i >= D) return;
    uint base = scr[pc.window_slot_off + h] * pc.window_words * 2u + kv * pc.R * D;
    uint lo = pkv_f32_to_f16(centre(base, i)), hi = pkv_f32_to_f16(centre(base, i + 1u));
    uint m = pc.bank_count;
    uint chunk = scr[pc.chunk_off + h * 8u + m / 32u];
    chk[chunk * pc.chunk_words + (kv * 32u * D + (m % 32u) * D + i) / 2u] = lo | (hi << 16);
}
