#version 450
/* Assignment of tokens to their nearest pattern (L2 at prefill, min-max at a flush), one workgroup
 * per (token, head, K/V): the invocations split the bank, then the argmin is reduced with ties to
 * the lowest index (the same result as the CPU's ascending scan). For V also the gate bit. */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "block_common.glsl"

const uint NONE = 0xffffffffu;

shared float x_s[D];
shared float best_d[gl_WorkGroupSize.x];
shared uint best_m[gl_WorkGroupSize.x];

float minmax_dist(uint kv, uint m)
{
    precise float r0 = x_s[0] - pattern(kv, m, 0u);
    pkv_span s = pkv_span_of(r0);
    for (uint i = 1u; i < D; i++) {
        precise float r = x_s[i] - pattern(kv, m, i);
        s = pkv_span_add(s, r);
    }
    return pkv_span_width(s);
}

float l2_dist(uint kv, uint m)
{
    float acc = 0.0;
    for (uint i = 0u; i < D; i++) acc = pkv_l2_step(acc, x_s[i], pattern(kv, m, i));
    return acc;
}

void main()
{
    uint tok = gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x;
    uint hk = gl_WorkGroupID.y, kv = hk & 1u, lid = gl_LocalInvocationID.x;
    head = hk >> 1;
    if (tok >= pc.n_assign) return; /* uniform across the workgroup */
    for (uint i = lid; i < D; i += gl_WorkGroupSize.x) x_s[i] = src_x(kv, tok, i);
    load_chunks(lid);
    barrier();
    float bd = 0.0;
    uint bm = NONE;
    for (uint m = lid; m < pc.n_patterns; m += gl_WorkGroupSize.x) {
        float dd = pc.minmax != 0u ? minmax_dist(kv, m) : l2_dist(kv, m);
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
            pkv_span xs = pkv_span_of(x_s[0]);
            for (uint i = 1u; i < D; i++) xs = pkv_span_add(xs, x_s[i]);
            float B = pkv_span_width(xs);
            gate = pkv_v_gate(A, B, pc.gate_k2) ? 1u : 0u;
        }
        scr[pc.assign_off + hk * pc.n_assign + tok] = a | (gate << 8);
    }
}
