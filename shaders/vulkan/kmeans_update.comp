#version 450
/* k-means: new centroid element (m, i) = (sum over tokens t ascending with a_t = m of x_t,i) * rcp[count_m].
 * One invocation per channel walks all tokens in order (the order the CPU reference sums in),
 * adding into its own column of a [M][channels] table in shared memory. */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "kmeans_common.glsl"

layout(constant_id = 2) const uint MC = 32; /* patterns (= pc.M) */

shared float sum_s[MC][gl_WorkGroupSize.x];
shared uint count_s[MC];

void main()
{
    uint hk = gl_WorkGroupID.y, lid = gl_LocalInvocationID.x;
    uint i = gl_WorkGroupID.x * gl_WorkGroupSize.x + lid;
    if (scr[pc.done_off + hk] != 0u) return; /* uniform across the workgroup */
    for (uint m = 0u; m < MC; m++) sum_s[m][lid] = 0.0;
    for (uint m = lid; m < MC; m += gl_WorkGroupSize.x) count_s[m] = 0u;
    barrier();
    uint abase = pc.assign_off + hk * pc.n;
    for (uint t = 0u; t < pc.n; t++) {
        uint a = scr[abase + t];
        if (i < D) {
            precise float s = sum_s[a][lid] + token_x(hk, t, i);
            sum_s[a][lid] = s;
        }
        if (lid == 0u) count_s[a] += 1u;
    }
    barrier();
    if (i >= D) return;
    for (uint m = 0u; m < MC; m++) {
        uint at = (hk * pc.M + m) * D + i;
        uint count = count_s[m];
        precise float v = sum_s[m][lid] * scr_f(pc.rcp_off + count);
        scr[pc.new_off + at] = floatBitsToUint(count > 0u ? v : scr_f(pc.cent_off + at));
    }
}
