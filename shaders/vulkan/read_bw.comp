#version 450
/* Plain streaming read, for measuring the device's read bandwidth: each invocation reads 16-byte
 * vectors at a grid stride and folds them into one word, written only if it is a magic value.
 * Four independent loads per iteration keep several requests in flight per invocation (one load
 * per iteration, each waiting for the last fold, read 1.9 TB/s on the H200 where OpenCL's 4.4). */
layout(local_size_x_id = 0) in;
layout(std430, set = 0, binding = 0) buffer Scratch { uvec4 src[]; };
layout(std430, set = 0, binding = 1) buffer Out { uint dst[]; };
layout(push_constant) uniform Push { uint n_vec4; } pc;

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x, k = gl_GlobalInvocationID.x;
    uvec4 a = uvec4(0u), b = uvec4(0u), c = uvec4(0u), d = uvec4(0u);
    for (; k + 3u * stride < pc.n_vec4; k += 4u * stride) {
        uvec4 x0 = src[k], x1 = src[k + stride], x2 = src[k + 2u * stride], x3 = src[k + 3u * stride];
        a ^= x0, b ^= x1, c ^= x2, d ^= x3;
    }
    for (; k < pc.n_vec4; k += stride) a ^= src[k];
    uvec4 x = a ^ b ^ c ^ d;
    uint f = x.x ^ x.y ^ x.z ^ x.w;
    if (f == 0x9e3779b9u) dst[0] = f;
}
