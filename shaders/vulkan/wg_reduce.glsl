/* Workgroup-wide reductions of two value sets at once (RED_N values each: one per row, NR, unless
 * the includer defines RED_N first): every invocation gets the results. Subgroup arithmetic where the device has it (PKV_SUBGROUPS), a shared-memory
 * tree otherwise. Call from uniform control flow. The subgroup path ends without a barrier: a
 * caller must pass another barrier before the next reduction (attention always does). */
#ifndef RED_N
#define RED_N NR
#endif
/* RED_TEAMS > 1: the workgroup is that many teams of equal size, each reducing its own values (every
 * team still passes every barrier) */
#ifndef RED_TEAMS
#define RED_TEAMS 1u
#endif
const uint RED_WG = gl_WorkGroupSize.x / RED_TEAMS; /* invocations of a team */
#ifdef PKV_SUBGROUPS
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
/* subgroups per workgroup, at most (subgroups of >= 4 invocations, at most 32 of them per team) */
const uint RED_SLOTS = RED_TEAMS * 32u;
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
    uint sg_n = gl_NumSubgroups / RED_TEAMS, sg0 = gl_SubgroupID / sg_n * sg_n; /* the team's subgroups */
    [[unroll]] for (uint r = 0u; r < RED_N; r++) {
        vec2 t = red_s[sg0 * RED_N + r];
        for (uint k = 1u; k < sg_n; k++) {
            vec2 u = red_s[(sg0 + k) * RED_N + r];
            t = vec2(red_op(t.x, u.x, a_max), red_op(t.y, u.y, b_max));
        }
        a[r] = t.x;
        b[r] = t.y;
    }
#else
    uint all = gl_LocalInvocationID.x, lid = all % RED_WG, t0 = all - lid; /* t0: the team's first */
    [[unroll]] for (uint r = 0u; r < RED_N; r++) red_s[all * RED_N + r] = vec2(a[r], b[r]);
    barrier();
    for (uint s = RED_WG / 2u; s > 0u; s >>= 1) {
        if (lid < s)
            [[unroll]] for (uint r = 0u; r < RED_N; r++) {
                vec2 t = red_s[all * RED_N + r], u = red_s[(all + s) * RED_N + r];
                red_s[all * RED_N + r] = vec2(red_op(t.x, u.x, a_max), red_op(t.y, u.y, b_max));
            }
        barrier();
    }
    [[unroll]] for (uint r = 0u; r < RED_N; r++) {
        a[r] = red_s[t0 * RED_N + r].x;
        b[r] = red_s[t0 * RED_N + r].y;
    }
    barrier();
#endif
}

void wg_max_sum(inout float a[RED_N], inout float b[RED_N]) { wg_reduce2(a, true, b, false); }
void wg_sum_sum(inout float a[RED_N], inout float b[RED_N]) { wg_reduce2(a, false, b, false); }
