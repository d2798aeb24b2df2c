#version 450
/* k-means: new centroid m of list q, one workgroup per (m, list). The chunk sums combine pairwise,
 * level by level (element k of a level = elements 2k + 2k+1 of the one below, an odd last element
 * moving up unchanged: docs/NUMERICS.md), in place in the part buffer, one channel per invocation;
 * new = sum * rcp[count] when count > 0, else the old centroid. The centroid's shift sum_i (new - old)^2
 * (channels ascending) goes into the list's running maximum (kmeans_finish tests it). */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "kmeans_common.glsl"

shared float new_s[D], old_s[D];
shared uint count_s;

void main()
{
    uint m = gl_WorkGroupID.x, q = gl_WorkGroupID.y, lid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
    if (list_done(q)) return; /* uniform across the workgroup */
    if (lid == 0u) {
        uint c = 0u;
        for (uint j = 0u; j < pc.n_chunks; j++) c += scr[pc.cnt_off + (q * pc.n_chunks + j) * pc.M + m];
        count_s = c;
    }
    barrier();
    uint count = count_s;
    uint stride = pc.M * D;
    for (uint i = lid; i < D; i += wg) {
        uint base = pc.part_off + (q * pc.n_chunks * pc.M + m) * D + i;
        for (uint len = pc.n_chunks; len > 1u; len = (len + 1u) / 2u) {
            for (uint k = 0u; k < len / 2u; k++) {
                precise float v = scr_f(base + 2u * k * stride) + scr_f(base + (2u * k + 1u) * stride);
                scr[base + k * stride] = floatBitsToUint(v);
            }
            if ((len & 1u) != 0u) scr[base + (len / 2u) * stride] = scr[base + (len - 1u) * stride];
        }
        uint at = pc.cent_off + (q * pc.M + m) * D + i;
        float old = scr_f(at);
        precise float nv = scr_f(base) * scr_f(pc.rcp_off + count);
        float v = count > 0u ? nv : old;
        new_s[i] = v;
        old_s[i] = old;
        scr[at] = floatBitsToUint(v);
    }
    barrier();
    if (lid == 0u && count > 0u) {
        float acc = 0.0;
        for (uint i = 0u; i < D; i++) acc = pkv_l2_step(acc, new_s[i], old_s[i]);
        atomicMax(scr[pc.flags_off + 2u * q + 1u], floatBitsToUint(acc)); /* acc >= 0: its bits order like it */
    }
}
