#version 450
/* k-means result: bank patterns 0..M-1 of each unit = f16(c_m), two channels per word. */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "kmeans_common.glsl"

void main()
{
    uint q = gl_WorkGroupID.y;
    uint e = gl_GlobalInvocationID.x;
    if (e >= pc.M * (D / 2u)) return;
    uint m = e / (D / 2u), i = (e % (D / 2u)) * 2u;
    uint base = pc.cent_off + (q * pc.M + m) * D + i;
    uint lo = pkv_f32_to_f16(scr_f(base)), hi = pkv_f32_to_f16(scr_f(base + 1u));
    uint chunk = scr[pc.udesc_off + (q >> 1) * 16u + 4u + m / 32u];
    uint half_idx = (q & 1u) * 32u * D + (m % 32u) * D + i;
    chk[chunk * pc.chunk_words + half_idx / 2u] = lo | (hi << 16);
}
