#version 450
/* k-means, one workgroup per list: shift2 = max_m sum_i (new - c)^2, then c = new, and the stop
 * flag when shift2 < tol2. */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "kmeans_common.glsl"

shared float shift_s[gl_WorkGroupSize.x];

void main()
{
    uint hk = gl_WorkGroupID.y;
    uint lid = gl_LocalInvocationID.x;
    if (scr[pc.done_off + hk] != 0u) return; /* uniform across the workgroup */
    float mx = 0.0;
    for (uint m = lid; m < pc.M; m += gl_WorkGroupSize.x) {
        uint base = (hk * pc.M + m) * D;
        float acc = 0.0;
        for (uint i = 0u; i < D; i++) acc = pkv_l2_step(acc, scr_f(pc.new_off + base + i), scr_f(pc.cent_off + base + i));
        mx = max(mx, acc);
    }
    shift_s[lid] = mx;
    barrier();
    for (uint e = lid; e < pc.M * D; e += gl_WorkGroupSize.x)
        scr[pc.cent_off + hk * pc.M * D + e] = scr[pc.new_off + hk * pc.M * D + e];
    if (lid == 0u) {
        float shift2 = 0.0;
        for (uint k = 0u; k < gl_WorkGroupSize.x; k++) shift2 = max(shift2, shift_s[k]);
        if (shift2 < pc.tol2) scr[pc.done_off + hk] = 1u;
    }
}
