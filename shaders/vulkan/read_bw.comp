#version 450
/* Plain streaming read, for measuring the device's read bandwidth: each invocation reads 16-byte
 * vectors at a grid stride and folds them into one word, written only if it is a magic value.
 * LOADS independent loads per iteration keep several requests in flight per invocation (one load
 * per iteration, each waiting for the last fold, read 1.9 TB/s on the H200 where OpenCL's 4.4; the
 * probe uses 4). PAD_KB of shared memory per workgroup, when set, caps how many workgroups a compute
 * unit holds: with LOADS, a way to measure bandwidth against bytes in flight per compute unit, which
 * is what bounds the attention kernels (bench/RESULTS.md, session 9; PKV_READ_BW_LOADS and
 * PKV_READ_BW_PAD_KB, developer switches). */
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint LOADS = 4;
layout(constant_id = 2) const uint PAD_KB = 0;
layout(std430, set = 0, binding = 0) buffer Scratch { uvec4 src[]; };
layout(std430, set = 0, binding = 1) buffer Out { uint dst[]; };
layout(push_constant) uniform Push { uint n_vec4; } pc;

shared uvec4 pad_s[PAD_KB > 0u ? PAD_KB * 64u : 1u];

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x, k = gl_GlobalInvocationID.x;
    uvec4 acc[4] = uvec4[4](uvec4(0u), uvec4(0u), uvec4(0u), uvec4(0u));
    for (; k + (LOADS - 1u) * stride < pc.n_vec4; k += LOADS * stride) {
        uvec4 x[LOADS];
        [[unroll]] for (uint u = 0u; u < LOADS; u++) x[u] = src[k + u * stride];
        [[unroll]] for (uint u = 0u; u < LOADS; u++) acc[u % 4u] ^= x[u];
    }
    for (; k < pc.n_vec4; k += stride) acc[0] ^= src[k];
    uvec4 x = acc[0] ^ acc[1] ^ acc[2] ^ acc[3];
    uint f = x.x ^ x.y ^ x.z ^ x.w;
    if (PAD_KB > 0u) { /* the pad is used, so it is allocated */
        pad_s[gl_LocalInvocationID.x % (PAD_KB * 64u)] = x;
        barrier();
        f ^= pad_s[(gl_LocalInvocationID.x + 1u) % (PAD_KB * 64u)].x;
    }
    if (f == 0x9e3779b9u) dst[0] = f;
}
