#version 450
/* k-means: each token to its L2-nearest centroid (ties: lowest index). */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "kmeans_common.glsl"

void main()
{
    uint hk = gl_WorkGroupID.y;
    uint t = gl_GlobalInvocationID.x;
    if (t >= pc.n || scr[pc.done_off + hk] != 0u) return;
    uint best = 0u;
    float best_d = 0.0;
    for (uint m = 0u; m < pc.M; m++) {
        uint cbase = pc.cent_off + (hk * pc.M + m) * D;
        float acc = 0.0;
        for (uint i = 0u; i < D; i++) acc = pkv_l2_step(acc, token_x(hk, t, i), scr_f(cbase + i));
        if (m == 0u || acc < best_d) { best_d = acc; best = m; }
    }
    scr[pc.assign_off + hk * pc.n + t] = best;
}
