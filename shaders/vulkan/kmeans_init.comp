#version 450
/* k-means step 1: c_m = x[init_index[m]] (sample positions) for every list; clears the stop flags and shifts. */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "kmeans_common.glsl"

void main()
{
    uint q = gl_WorkGroupID.y;
    uint e = gl_GlobalInvocationID.x;
    if (e == 0u) {
        scr[pc.flags_off + 2u * q] = 0u;
        scr[pc.flags_off + 2u * q + 1u] = 0u;
    }
    if (e >= pc.M * D) return;
    uint m = e / D, i = e % D;
    uint t = scr[pc.init_off + q * pc.M + m];
    scr[pc.cent_off + (q * pc.M + m) * D + i] = floatBitsToUint(sample_x(q, t, i));
}
