#version 450
/* k-means step 1: c_m = x[init_index[m]] for every (head, K/V) list; clears the stop flags. */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "kmeans_common.glsl"

void main()
{
    uint hk = gl_WorkGroupID.y;
    uint e = gl_GlobalInvocationID.x;
    if (e == 0u) scr[pc.done_off + hk] = 0u;
    if (e >= pc.M * D) return;
    uint m = e / D, i = e % D;
    uint t = scr[pc.init_off + hk * pc.M + m];
    scr[pc.cent_off + (hk * pc.M + m) * D + i] = floatBitsToUint(token_x(hk, t, i));
}
