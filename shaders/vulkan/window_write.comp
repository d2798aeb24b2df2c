#version 450
/* Window writes from host memory: runs of consecutive fp16 K or V rows, staged in the host-visible
 * ring (binding 0: rows, then a table of runs), copied into the windows arena (binding 3), one
 * workgroup per run. A run is (first source row, first window row, rows); window rows are counted
 * from the arena's start (slot * 2R + K|V * R + position). One dispatch writes every layer and head of
 * a call, where copy regions of one row each cost drivers a command per row. */
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128; /* head_dim: a row is D / 8 16-byte words */

layout(std430, set = 0, binding = 0) readonly buffer Ring { uint ring[]; };
layout(std430, set = 0, binding = 0) readonly buffer Ring4 { uvec4 ring4[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Windows4 { uvec4 win4[]; };
layout(push_constant) uniform Push {
    uint runs_off;  /* words */
    uint rows_off4; /* 16-byte words */
    uint n_runs;
} pc;

void main()
{
    const uint r = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (r >= pc.n_runs) return;
    const uint RV = D / 8u;
    const uint src = pc.rows_off4 + ring[pc.runs_off + 3u * r] * RV, dst = ring[pc.runs_off + 3u * r + 1u] * RV;
    const uint n = ring[pc.runs_off + 3u * r + 2u] * RV;
    for (uint i = gl_LocalInvocationID.x; i < n; i += gl_WorkGroupSize.x) win4[dst + i] = ring4[src + i];
}
