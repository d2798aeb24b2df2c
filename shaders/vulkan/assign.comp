#version 450
/* A flush's assignment of each window token to its min-max-nearest pattern, one workgroup per
 * (token, unit, K/V): the invocations split the bank, then the argmin is reduced with ties to the
 * lowest index (the same result as the CPU's ascending scan). For V also the gate bit. The
 * distances use the hardware min/max: they can differ from docs/NUMERICS.md's exact spans only in
 * the sign of a zero, which neither the comparisons nor the gate (squares) see. */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "block_common.glsl"

const uint NONE = 0xffffffffu;

shared float x_s[D];
shared float best_d[gl_WorkGroupSize.x];
shared uint best_m[gl_WorkGroupSize.x];

float minmax_dist(uint kv, uint m)
{
    uint base = chunk_s[m / 32u] * pc.chunk_words + (kv * 32u * D + (m % 32u) * D) / 2u;
    float lo = 0.0, hi = 0.0;
    for (uint w = 0u; w < D / 2u; w++) {
        uint p = chk[base + w];
        precise float r0 = x_s[2u * w] - pkv_f16_to_f32(p & 0xffffu);
        precise float r1 = x_s[2u * w + 1u] - pkv_f16_to_f32(p >> 16);
        if (w == 0u) lo = hi = r0;
        lo = min(lo, min(r0, r1));
        hi = max(hi, max(r0, r1));
    }
    precise float width = hi - lo;
    return width;
}

void main()
{
    uint tok = gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x;
    uint hk = gl_WorkGroupID.y, kv = hk & 1u, lid = gl_LocalInvocationID.x;
    unit = hk >> 1;
    if (tok >= pc.n_assign) return; /* uniform across the workgroup */
    uint n_patterns = udesc(1u);
    for (uint i = lid; i < D; i += gl_WorkGroupSize.x) x_s[i] = src_x(kv, tok, i);
    load_chunks(lid);
    barrier();
    float bd = 0.0;
    uint bm = NONE;
    for (uint m = lid; m < n_patterns; m += gl_WorkGroupSize.x) {
        float dd = minmax_dist(kv, m);
        if (bm == NONE || dd < bd) { bd = dd; bm = m; }
    }
    best_d[lid] = bd;
    best_m[lid] = bm;
    barrier();
    for (uint s = gl_WorkGroupSize.x / 2u; s > 0u; s >>= 1) {
        if (lid < s) {
            float od = best_d[lid + s];
            uint om = best_m[lid + s];
            if (om != NONE && (best_m[lid] == NONE || od < best_d[lid] || (od == best_d[lid] && om < best_m[lid]))) {
                best_d[lid] = od;
                best_m[lid] = om;
            }
        }
        barrier();
    }
    if (lid == 0u) {
        uint a = best_m[0], gate = 0u;
        if (kv == 1u) { /* residualise V only where it narrows the range enough */
            float A = minmax_dist(1u, a);
            float lo = x_s[0], hi = x_s[0];
            for (uint i = 1u; i < D; i++) lo = min(lo, x_s[i]), hi = max(hi, x_s[i]);
            precise float B = hi - lo;
            gate = pkv_v_gate(A, B, pc.gate_k2) ? 1u : 0u;
        }
        scr[pc.assign_off + hk * pc.n_assign + tok] = a | (gate << 8);
    }
}
