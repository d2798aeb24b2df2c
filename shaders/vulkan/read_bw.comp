#version 450
/* Plain streaming read, for measuring the device's read bandwidth: each invocation reads 16-byte
 * vectors at a grid stride and folds them into one word, written only if it is a magic value. */
layout(local_size_x_id = 0) in;
layout(std430, set = 0, binding = 0) buffer Scratch { uvec4 src[]; };
layout(std430, set = 0, binding = 1) buffer Out { uint dst[]; };
layout(push_constant) uniform Push { uint n_vec4; } pc;

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uvec4 x = uvec4(0u);
    for (uint k = gl_GlobalInvocationID.x; k < pc.n_vec4; k += stride) x ^= src[k];
    uint f = x.x ^ x.y ^ x.z ^ x.w;
    if (f == 0x9e3779b9u) dst[0] = f;
}
