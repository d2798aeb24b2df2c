#version 450
/* Each token of a list (of its k-means sample) to its L2-nearest centroid (ties: the lowest index), one workgroup per
 * (tile of tokens, list), one token per invocation. The centroids pass through shared memory in
 * blocks of MB; each invocation keeps MB running distances, each summed over the channels in
 * ascending order exactly as docs/NUMERICS.md says (one chain per centroid).
 * BANK = 1: the prefill's final assignment against the stored fp16 patterns of the unit's bank, with
 * the V gate: writes index | gate << 8 for the first n_assign tokens (quant_block reads it). */
#extension GL_EXT_control_flow_attributes : enable
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "kmeans_common.glsl"

layout(constant_id = 2) const uint MB = 32;  /* centroids per block in shared memory */
layout(constant_id = 3) const uint BANK = 0;

const uint D4 = D / 4u;
shared vec4 c_s[MB * D4];

vec4 token4(uint base, uint i4) /* values 4 i4 .. 4 i4 + 3 (base is even) */
{
    uint w = (base >> 1) + 2u * i4, a = scr[w], b = scr[w + 1u];
    return vec4(pkv_f16_to_f32(a & 0xffffu), pkv_f16_to_f32(a >> 16), pkv_f16_to_f32(b & 0xffffu), pkv_f16_to_f32(b >> 16));
}

uint pattern_base(uint q, uint m) /* halves of chk: stored pattern m of list q */
{
    uint chunk = scr[pc.udesc_off + (q >> 1) * 16u + 4u + m / 32u];
    return chunk * pc.chunk_words * 2u + (q & 1u) * 32u * D + (m % 32u) * D;
}

vec4 centroid4(uint q, uint m, uint i4)
{
    if (BANK != 0u) {
        uint w = (pattern_base(q, m) >> 1) + 2u * i4, a = chk[w], b = chk[w + 1u];
        return vec4(pkv_f16_to_f32(a & 0xffffu), pkv_f16_to_f32(a >> 16), pkv_f16_to_f32(b & 0xffffu), pkv_f16_to_f32(b >> 16));
    }
    uint at = pc.cent_off + (q * pc.M + m) * D + 4u * i4;
    return vec4(scr_f(at), scr_f(at + 1u), scr_f(at + 2u), scr_f(at + 3u));
}

void main()
{
    uint q = gl_WorkGroupID.y, lid = gl_LocalInvocationID.x;
    uint ntok = BANK != 0u ? pc.n_assign : pc.n;
    uint t = gl_WorkGroupID.x * gl_WorkGroupSize.x + lid;
    if (BANK == 0u && list_done(q)) return; /* uniform across the workgroup */
    uint base = BANK != 0u ? token_base(q, min(t, ntok - 1u)) : sample_base(q, min(t, ntok - 1u));
    float acc[MB];
    float best_d = 0.0;
    uint best = 0u;
    for (uint m0 = 0u; m0 < pc.M; m0 += MB) {
        barrier();
        for (uint e = lid; e < MB * D4; e += gl_WorkGroupSize.x) {
            uint m = m0 + e / D4;
            c_s[e] = m < pc.M ? centroid4(q, m, e % D4) : vec4(0.0);
        }
        barrier();
        [[unroll]] for (uint m = 0u; m < MB; m++) acc[m] = 0.0;
        for (uint i4 = 0u; i4 < D4; i4++) {
            vec4 x = token4(base, i4);
            [[unroll]] for (uint m = 0u; m < MB; m++) {
                vec4 c = c_s[m * D4 + i4];
                float a = acc[m];
                a = pkv_l2_step(a, x.x, c.x);
                a = pkv_l2_step(a, x.y, c.y);
                a = pkv_l2_step(a, x.z, c.z);
                a = pkv_l2_step(a, x.w, c.w);
                acc[m] = a;
            }
        }
        [[unroll]] for (uint m = 0u; m < MB; m++)
            if (m0 + m < pc.M && (m0 + m == 0u || acc[m] < best_d)) {
                best_d = acc[m];
                best = m0 + m;
            }
    }
    if (t >= ntok) return;
    if (BANK == 0u) {
        scr[pc.assign_off + q * pc.n + t] = best;
        return;
    }
    uint gate = 0u;
    if ((q & 1u) != 0u) { /* residualise V only where it narrows the range enough; the distances' */
        uint pb = pattern_base(q, best);  /* zero signs do not matter (squared in the gate) */
        float x0 = scr_h(base), r0 = x0 - chk_h(pb);
        float xlo = x0, xhi = x0, rlo = r0, rhi = r0;
        for (uint i = 1u; i < D; i++) {
            float x = scr_h(base + i);
            precise float r = x - chk_h(pb + i);
            xlo = min(xlo, x), xhi = max(xhi, x), rlo = min(rlo, r), rhi = max(rhi, r);
        }
        precise float A = rhi - rlo;
        precise float B = xhi - xlo;
        gate = pkv_v_gate(A, B, pc.gate_k2) ? 1u : 0u;
    }
    scr[pc.assign_off + q * pc.n_assign + t] = best | (gate << 8);
}
