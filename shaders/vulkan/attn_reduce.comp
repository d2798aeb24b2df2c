#version 450
/* Attention reduce pass, one workgroup per row: combines the splits' partial results
 * (rescaled to the common max), adds sum_m S[m] * P_V[m], divides by the softmax sum. */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "attn_common.glsl"

shared float w_s[256];
shared float S_tot[MODE == 0u ? CAP : 1u];
shared float L_s;
shared uint chunk_s[8]; /* half index of each V bank chunk's first pattern */

void main()
{
    uint row = spilled_row(gl_WorkGroupID.x, gl_WorkGroupID.y, gl_NumWorkGroups.x), lid = gl_LocalInvocationID.x;
    if (row >= pc.rows_total) return; /* uniform across the workgroup */
    uint qh = row % pc.n_q_heads, s = row / (pc.n_q_heads * pc.q_len), h = qh / pc.gqa;
    uint base = pc.part_off + row * pc.nsplit * PART;
    float M = PKV_NEG_INF;
    for (uint k = 0u; k < pc.nsplit; k++) M = max(M, scr_f(base + k * PART));
    for (uint k = lid; k < pc.nsplit; k += gl_WorkGroupSize.x) {
        float mk = scr_f(base + k * PART);
        w_s[k] = mk == PKV_NEG_INF ? 0.0 : exp(mk - M);
    }
    barrier();
    if (lid == 0u) {
        float L = 0.0;
        for (uint k = 0u; k < pc.nsplit; k++) L += w_s[k] * scr_f(base + k * PART + 1u);
        L_s = L;
    }
    uint bank = seq_bank(s);
    if (MODE == 0u && lid < 8u && lid * 32u < bank) chunk_s[lid] = pattern_base(s, h, 1u, lid * 32u);
    if (MODE == 0u)
        for (uint m = lid; m < bank; m += gl_WorkGroupSize.x) {
            float S = 0.0;
            for (uint k = 0u; k < pc.nsplit_b; k++) S += w_s[k] * scr_f(base + k * PART + 4u + D + m);
            S_tot[m] = S;
        }
    barrier();
    float inv = L_s > 0.0 ? 1.0 / L_s : 0.0;
    for (uint i = lid; i < D; i += gl_WorkGroupSize.x) {
        float o = 0.0;
        for (uint k = 0u; k < pc.nsplit; k++) o += w_s[k] * scr_f(base + k * PART + 4u + i);
        if (MODE == 0u)
            for (uint m = 0u; m < bank; m++) o += S_tot[m] * chk_hf(chunk_s[m / 32u] + (m % 32u) * D + i);
        scr[pc.out_off + row * D + i] = floatBitsToUint(o * inv);
    }
}
