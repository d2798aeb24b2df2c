#version 450
/* A flush's assignment of each window token to its min-max-nearest pattern, K and V, and for V the
 * gate bit: one workgroup per (tile of window tokens, unit, K|V), one token per invocation. The
 * unit's bank passes through shared memory in blocks of MB patterns (fp32 pairs); each invocation
 * reads its own token row once per block and keeps MB running (min, max) of the residual, so a
 * pattern word is read from the arena once per workgroup and block (it was once per token and
 * pattern, each lane of a warp on its own pattern row: uncoalesced). The argmin scans the patterns
 * in ascending order with a strict < (ties to the lowest index, the CPU's scan). The distances use
 * the hardware min/max in any channel order: they can differ from docs/NUMERICS.md's exact spans
 * only in the sign of a zero, which neither the comparisons nor the gate (squares) see; so the
 * gate's A is the chosen pattern's distance and B the token's range, folded on the way. */
#extension GL_EXT_control_flow_attributes : enable
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "block_common.glsl"

layout(constant_id = 2) const uint MB = 32; /* patterns per block in shared memory */

const uint D2 = D / 2u;
shared vec2 p_s[MB * D2];

void main()
{
    uint hk = gl_WorkGroupID.y, kv = hk & 1u, lid = gl_LocalInvocationID.x;
    unit = hk >> 1;
    uint tok = gl_WorkGroupID.x * gl_WorkGroupSize.x + lid;
    uint n_patterns = udesc(1u);
    uint row = udesc(0u) * pc.window_words + (kv * pc.R + min(tok, pc.n_assign - 1u)) * D2; /* words */
    uint bank = kv * 32u * D2;      /* the K or V half of a chunk, in words */
    const float INF = uintBitsToFloat(0x7f800000u);
    float bd = 0.0, xlo = INF, xhi = -INF;
    uint bm = 0u;
    for (uint m0 = 0u; m0 < n_patterns; m0 += MB) {
        barrier();
        for (uint e = lid; e < MB * D2; e += gl_WorkGroupSize.x) {
            uint m = m0 + e / D2;
            vec2 c = vec2(0.0);
            if (m < n_patterns) {
                uint p = chk[udesc(4u + m / 32u) * pc.chunk_words + bank + (m % 32u) * D2 + e % D2];
                c = vec2(pkv_f16_to_f32(p & 0xffffu), pkv_f16_to_f32(p >> 16));
            }
            p_s[e] = c;
        }
        barrier();
        float lo[MB], hi[MB];
        [[unroll]] for (uint m = 0u; m < MB; m++) lo[m] = INF, hi[m] = -INF;
        for (uint w = 0u; w < D2; w++) {
            uint xv = win[row + w];
            float x0 = pkv_f16_to_f32(xv & 0xffffu), x1 = pkv_f16_to_f32(xv >> 16);
            xlo = min(xlo, min(x0, x1)), xhi = max(xhi, max(x0, x1));
            [[unroll]] for (uint m = 0u; m < MB; m++) {
                vec2 c = p_s[m * D2 + w];
                precise float r0 = x0 - c.x;
                precise float r1 = x1 - c.y;
                lo[m] = min(lo[m], min(r0, r1));
                hi[m] = max(hi[m], max(r0, r1));
            }
        }
        [[unroll]] for (uint m = 0u; m < MB; m++) {
            precise float dd = hi[m] - lo[m];
            if (m0 + m < n_patterns && (m0 + m == 0u || dd < bd)) {
                bd = dd;
                bm = m0 + m;
            }
        }
    }
    if (tok >= pc.n_assign) return;
    uint gate = 0u;
    if (kv == 1u) { /* residualise V only where it narrows the range enough */
        precise float B = xhi - xlo;
        gate = pkv_v_gate(bd, B, pc.gate_k2) ? 1u : 0u;
    }
    scr[pc.assign_off + hk * pc.n_assign + tok] = bm | (gate << 8);
}
