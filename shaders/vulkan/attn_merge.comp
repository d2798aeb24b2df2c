#version 450
/* Merge pass of attention, when attn_decode.comp leaves the merge to a second dispatch: one
 * workgroup per (tile, sequence x kv head) of a sequence split in several items. */
#extension GL_EXT_control_flow_attributes : require
#include "pkv_math.h"
#define PKV_ARENAS_READONLY
#include "pkv_buffers.glsl"
#include "attn_common.glsl"
#include "wg_reduce.glsl"

shared float w_s[4096]; /* two floats per item and row: the planner's limit */

#define PART_WORD(i) scr[i]
#define PART_VEC4(i) scr4[(i) / 4u]
#define MERGE_GET(k) w_s[k]
#define MERGE_SET(k, v) w_s[k] = (v)
#include "attn_merge.glsl"

void main()
{
    uint seq = gl_WorkGroupID.y / pc.H, head = gl_WorkGroupID.y % pc.H;
    uint nsplit = seq_n_items(seq);
    if (nsplit > 1u) merge_rows(seq, head, gl_WorkGroupID.x, nsplit); /* else the decode kernel wrote out */
}
