#version 450
/* Attention pre-pass: qc[row][m] = scale * (q . P_K[m]) for every pattern of the row's bank. */
#include "pkv_math.h"
#include "pkv_buffers.glsl"
#include "attn_common.glsl"

void main()
{
    uint m = gl_GlobalInvocationID.x, row = spilled_row(gl_WorkGroupID.y, gl_WorkGroupID.z, gl_NumWorkGroups.y);
    if (row >= pc.rows_total) return;
    uint qh = row % pc.n_q_heads, s = row / (pc.n_q_heads * pc.q_len);
    if (m >= seq_bank(s)) return;
    uint h = qh / pc.gqa;
    uint pb = pattern_base(s, h, 0u, m);
    float acc = 0.0;
    for (uint i = 0u; i < D; i++) acc += scr_f(pc.q_off + row * D + i) * chk_hf(pb + i);
    scr[pc.qc_off + row * CAP + m] = floatBitsToUint(acc * pc.scale);
}
