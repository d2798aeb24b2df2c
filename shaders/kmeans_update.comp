#version 450
/* k-means: new centroid element (m, i) = (sum over tokens t ascending with a_t = m of x_t,i) * rcp[count]. */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "kmeans_common.glsl"

void main()
{
    uint hk = gl_WorkGroupID.y;
    uint e = gl_GlobalInvocationID.x;
    if (e >= pc.M * D || scr[pc.done_off + hk] != 0u) return;
    uint m = e / D, i = e % D;
    precise float sum = 0.0;
    uint count = 0u;
    for (uint t = 0u; t < pc.n; t++) {
        if (scr[pc.assign_off + hk * pc.n + t] == m) {
            sum = sum + token_x(hk, t, i);
            count++;
        }
    }
    uint at = (hk * pc.M + m) * D + i;
    precise float v = sum * scr_f(pc.rcp_off + count);
    scr[pc.new_off + at] = floatBitsToUint(count > 0u ? v : scr_f(pc.cent_off + at));
}
