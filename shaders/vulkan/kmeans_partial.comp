#version 450
/* k-means: the chunk sums of docs/NUMERICS.md, one workgroup per (chunk of PKV_KMEANS_CHUNK tokens,
 * list; tokens of the sample): per channel (one invocation), sum_m,i over the chunk's tokens in ascending order with
 * a_t = m, from +0, in shared memory when the M x D table fits (else straight in the part buffer);
 * and the chunk's token count per centroid. */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "kmeans_common.glsl"

layout(constant_id = 2) const uint SM = 32;     /* rows of the shared table: M, or 1 when it does not fit */
layout(constant_id = 3) const uint SHARED = 1u; /* 0: sums in the part buffer */

shared float s_s[SM * D];
shared uint a_s[PKV_KMEANS_CHUNK];
shared uint b_s[PKV_KMEANS_CHUNK]; /* the tokens' value 0 (sample_base) */
shared uint cnt_s[256];

void main()
{
    uint j = gl_WorkGroupID.x, q = gl_WorkGroupID.y, lid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
    if (list_done(q)) return; /* uniform across the workgroup */
    uint t0 = j * PKV_KMEANS_CHUNK, nt = min(PKV_KMEANS_CHUNK, pc.n - t0);
    uint part = pc.part_off + (q * pc.n_chunks + j) * pc.M * D;
    for (uint m = lid; m < pc.M; m += wg) cnt_s[m] = 0u;
    if (SHARED != 0u)
        for (uint e = lid; e < pc.M * D; e += wg) s_s[e] = 0.0;
    else
        for (uint e = lid; e < pc.M * D; e += wg) scr[part + e] = 0u;
    barrier();
    for (uint e = lid; e < nt; e += wg) {
        uint a = scr[pc.assign_off + q * pc.n + t0 + e];
        a_s[e] = a;
        b_s[e] = sample_base(q, t0 + e);
        atomicAdd(cnt_s[a], 1u);
    }
    barrier();
    for (uint i = lid; i < D; i += wg) {
        for (uint e = 0u; e < nt; e++) {
            uint a = a_s[e];
            float x = scr_h(b_s[e] + i);
            if (SHARED != 0u) {
                precise float v = s_s[a * D + i] + x;
                s_s[a * D + i] = v;
            } else {
                precise float v = scr_f(part + a * D + i) + x;
                scr[part + a * D + i] = floatBitsToUint(v);
            }
        }
    }
    barrier();
    if (SHARED != 0u)
        for (uint e = lid; e < pc.M * D; e += wg) scr[part + e] = floatBitsToUint(s_s[e]);
    for (uint m = lid; m < pc.M; m += wg) scr[pc.cnt_off + (q * pc.n_chunks + j) * pc.M + m] = cnt_s[m];
}
