#version 450
/* Engine integration: the application's K/V (or q), copied raw into the scratch buffer, become the
 * fp16 K/V (or fp32 q) the ops read, rounded as the host path rounds (pkv_math.h). A value that is
 * NaN, Inf or beyond max_abs is stored as 0 (with its pair) and sets `flag` in the status word
 * (st[status_word]) and lowers st[status_word + 1] to `layer`. Two values per invocation.
 * row_tab != 0xFFFFFFFF (fp16 output only): the output goes to rows of row_pairs words, source row r
 * to row scr[row_tab + r] of `dst` (0xFFFFFFFF: not written): a recorded append's K/V straight into
 * their window rows (vk_stage.c); row_tab == 0xFFFFFFFE: the table is tab[] below (up to 20 rows: a
 * decode step's of one sequence, no upload); row_tab == 0xFFFFFFFD: tab[] holds a rule (vk_stage.c's
 * table_rule: stride, V offset, rows per source, sources per half, then a base per source). */
#include "pkv_math.h"

layout(local_size_x_id = 0) in;
layout(std430, set = 0, binding = 0) buffer Scratch { uint scr[]; };
layout(std430, set = 0, binding = 1) buffer Out { uint dst[]; };
layout(std430, set = 0, binding = 2) buffer Status { uint st[]; };
layout(push_constant) uniform Push {
    uint n_pairs, in_f16, out_f32, raw_off, out_off, status_word;
    float max_abs;
    uint flag, layer, row_tab, row_pairs;
    uint tab[20];
} pc;

bool bad_f32(float x) { return (floatBitsToUint(x) & 0x7F800000u) == 0x7F800000u || abs(x) > pc.max_abs; }

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= pc.n_pairs) return;
    float x0, x1;
    bool bad;
    if (pc.in_f16 != 0u) {
        uint w = scr[pc.raw_off + i];
        bad = (w & 0x7C00u) == 0x7C00u || (w & 0x7C000000u) == 0x7C000000u;
        x0 = pkv_f16_to_f32(w & 0xFFFFu);
        x1 = pkv_f16_to_f32(w >> 16);
    } else {
        x0 = uintBitsToFloat(scr[pc.raw_off + 2u * i]);
        x1 = uintBitsToFloat(scr[pc.raw_off + 2u * i + 1u]);
        bad = bad_f32(x0) || bad_f32(x1);
    }
    if (bad) {
        atomicOr(st[pc.status_word], pc.flag);
        atomicMin(st[pc.status_word + 1u], pc.layer);
        x0 = 0.0;
        x1 = 0.0;
    }
    if (pc.out_f32 != 0u) {
        dst[pc.out_off + 2u * i] = floatBitsToUint(x0);
        dst[pc.out_off + 2u * i + 1u] = floatBitsToUint(x1);
    } else if (pc.row_tab != 0xFFFFFFFFu) {
        uint r = i / pc.row_pairs, row;
        if (pc.row_tab == 0xFFFFFFFEu) {
            row = pc.tab[r];
        } else if (pc.row_tab == 0xFFFFFFFDu) {
            uint j = r / pc.tab[2], kvh = pc.tab[3];
            row = pc.tab[4u + j % kvh] + (r % pc.tab[2]) * pc.tab[0] + (j >= kvh ? pc.tab[1] : 0u);
        } else {
            row = scr[pc.row_tab + r];
        }
        if (row != 0xFFFFFFFFu) dst[pc.out_off + row * pc.row_pairs + i % pc.row_pairs] = pkv_f32_to_f16(x0) | (pkv_f32_to_f16(x1) << 16);
    } else {
        dst[pc.out_off + i] = pkv_f32_to_f16(x0) | (pkv_f32_to_f16(x1) << 16);
    }
}
