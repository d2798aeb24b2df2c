#version 450
/* Window writes from host memory: fp16 K or V rows staged in the host-visible ring (binding 0: the
 * rows back to back, then a table of each row's window row), copied into the windows arena
 * (binding 3), one invocation per 16 bytes. Window rows are counted from the arena's start
 * (slot * 2R + K|V * R + position). One dispatch writes every layer and head of a call, where copy
 * regions of one row each cost drivers a command per row. */
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 128; /* head_dim: a row is D / 8 16-byte words */

layout(std430, set = 0, binding = 0) readonly buffer Ring { uint ring[]; };
layout(std430, set = 0, binding = 0) readonly buffer Ring4 { uvec4 ring4[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Windows4 { uvec4 win4[]; };
layout(push_constant) uniform Push {
    uint table_off; /* words */
    uint rows_off4; /* 16-byte words */
    uint n_rows;
} pc;

void main()
{
    const uint RV = D / 8u;
    const uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    const uint row = i / RV, w = i - row * RV;
    if (row >= pc.n_rows) return;
    win4[ring[pc.table_off + row] * RV + w] = ring4[pc.rows_off4 + i];
}
