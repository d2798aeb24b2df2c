#version 450
/* Attention pre-pass (PATTERN): the q.C_K table of every (sequence, kv head, tile),
 * qc[m][r] = q_r . P_K[m] in the decode kernel's log2 units, for the patterns of the bank. */
#extension GL_EXT_control_flow_attributes : require
#include "pkv_math.h"
#define PKV_ARENAS_READONLY
#include "pkv_buffers.glsl"
#include "attn_common.glsl"

const uint WG = gl_WorkGroupSize.x;
shared vec4 q_s[D * NRV];

void main()
{
    uint lid = gl_LocalInvocationID.x, tile = gl_WorkGroupID.y;
    uint seq = gl_WorkGroupID.z / pc.H, head = gl_WorkGroupID.z % pc.H;
    for (uint e = lid; e < D * NR; e += WG) {
        uint i = e / NR, r = e % NR;
        float q = tile_row_real(tile, r) ? q_value(tile_row(seq, head, tile, r), i) * pc.scale : 0.0;
        q_s[i * NRV + r / 4u][r % 4u] = q;
    }
    for (uint e = lid; e < D * NRV * 4u; e += WG)
        if (e % (NRV * 4u) >= NR) q_s[e / 4u][e % 4u] = 0.0; /* rows a tile does not have */
    barrier();
    uint bank = seq_bank(seq);
    for (uint m = gl_WorkGroupID.x * WG + lid; m < bank; m += WG * gl_NumWorkGroups.x) {
        uint pb = pattern_base(seq, head, 0u, m) / 8u; /* rows of D halves start on 16 bytes */
        vec4 dot[2] = vec4[2](vec4(0.0), vec4(0.0));
        for (uint k = 0u; k < D / 8u; k++) {
            uvec4 w = chk4[pb + k];
            [[unroll]] for (uint j = 0u; j < 4u; j++) {
                vec2 x = unpackHalf2x16(w[j]);
                uint i = 8u * k + 2u * j;
                [[unroll]] for (uint v = 0u; v < NRV; v++)
                    dot[v] += q_s[i * NRV + v] * x.x + q_s[(i + 1u) * NRV + v] * x.y;
            }
        }
        uint at = qc_index(seq, head, tile, m);
        [[unroll]] for (uint v = 0u; v < NRV; v++) scr4[at + v] = dot[v];
    }
}
