/* Workgroup-wide reductions of two value sets at once (RED_N values each: one per row, NR, unless
 * the includer defines RED_N first): every invocation gets the results. Subgroup arithmetic where the device has it (PKV_SUBGROUPS), a shared-memory
 * tree otherwise. Call from uniform control flow. The subgroup path ends without a barrier: a
 * caller must pass another barrier before the next reduction (attention always does). */
#ifndef RED_N
#define RED_N NR
#endif
#ifdef PKV_SUBGROUPS
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
const uint RED_SLOTS = 32u; /* subgroups per workgroup, at most (subgroups of >= 4 invocations) */
#else
const uint RED_SLOTS = gl_WorkGroupSize.x;
#endif
shared vec2 red_s[RED_SLOTS * RED_N];

float red_op(float x, float y, bool take_max) { return take_max ? max(x, y) : x + y; }

void wg_reduce2(inout float a[RED_N], bool a_max, inout float b[RED_N], bool b_max)
{
#ifdef PKV_SUBGROUPS
    [[unroll]] for (uint r = 0u; r < RED_N; r++) {
        a[r] = a_max ? subgroupMax(a[r]) : subgroupAdd(a[r]);
        b[r] = b_max ? subgroupMax(b[r]) : subgroupAdd(b[r]);
    }
    if (subgroupElect())
        [[unroll]] for (uint r = 0u; r < RED_N; r++) red_s[gl_SubgroupID * RED_N + r] = vec2(a[r], b[r]);
    barrier();
    [[unroll]] for (uint r = 0u; r < RED_N; r++) {
        vec2 t = red_s[r];
        for (uint k = 1u; k < gl_NumSubgroups; k++) {
            vec2 u = red_s[k * RED_N + r];
            t = vec2(red_op(t.x, u.x, a_max), red_op(t.y, u.y, b_max));
        }
        a[r] = t.x;
        b[r] = t.y;
    }
#else
    uint lid = gl_LocalInvocationID.x;
    [[unroll]] for (uint r = 0u; r < RED_N; r++) red_s[lid * RED_N + r] = vec2(a[r], b[r]);
    barrier();
    for (uint s = gl_WorkGroupSize.x / 2u; s > 0u; s >>= 1) {
        if (lid < s)
            [[unroll]] for (uint r = 0u; r < RED_N; r++) {
                vec2 t = red_s[lid * RED_N + r], u = red_s[(lid + s) * RED_N + r];
                red_s[lid * RED_N + r] = vec2(red_op(t.x, u.x, a_max), red_op(t.y, u.y, b_max));
            }
        barrier();
    }
    [[unroll]] for (uint r = 0u; r < RED_N; r++) {
        a[r] = red_s[r].x;
        b[r] = red_s[r].y;
    }
    barrier();
#endif
}

void wg_max_sum(inout float a[RED_N], inout float b[RED_N]) { wg_reduce2(a, true, b, false); }
void wg_sum_sum(inout float a[RED_N], inout float b[RED_N]) { wg_reduce2(a, false, b, false); }
