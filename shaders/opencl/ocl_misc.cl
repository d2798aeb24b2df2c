/* Streaming read of n4 uint4 (read bandwidth of the device, for the bench): each work-item folds a
 * strided share and writes one word so the reads cannot be optimised away. */
__kernel void ocl_stream_read(__global const uint4 *src, uint n4, __global uint *out)
{
    const uint gid = get_global_id(0), gs = get_global_size(0);
    uint4 acc = (uint4)(0u);
    for (uint i = gid; i < n4; i += gs) acc ^= src[i];
    out[gid] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}

/* out[0] = a * b + c as written, out[1] with fma: equal only if the compiler fused the first. */
__kernel void ocl_fma_probe(__global const float *in, __global float *out)
{
    if (get_global_id(0) != 0u) return;
    out[0] = ocl_mul(in[0], in[1]) + in[2];
    out[1] = fma(in[0], in[1], in[2]);
}
