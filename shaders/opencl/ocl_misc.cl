/* Streaming read of n4 uint4 (read bandwidth of the device, for the bench): each work-item folds a
 * strided share and writes one word so the reads cannot be optimised away. */
#if PKV_OCL_GROUP == 0 || PKV_OCL_GROUP == 3
__kernel void ocl_stream_read(__global const uint4 *src, uint n4, __global uint *out)
{
    const uint gid = get_global_id(0), gs = get_global_size(0);
    uint4 acc = (uint4)(0u);
    for (uint i = gid; i < n4; i += gs) acc ^= src[i];
    out[gid] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}
#endif

/* out[0] = a * b + c as written, out[1] with fma: equal only if the compiler fused the first. */
#if PKV_OCL_GROUP == 0 || PKV_OCL_GROUP == 3
__kernel void ocl_fma_probe(__global const float *in, __global float *out)
{
    if (get_global_id(0) != 0u) return;
    out[0] = ocl_mul(in[0], in[1]) + in[2];
    out[1] = fma(in[0], in[1], in[2]);
}
#endif

/* Engine integration (ocl_external_io.c): the application's K/V (to fp16) or q (to fp32), copied raw
 * into the scratch buffer `raw`, converted as the host path rounds (pkv_math.h) into `dst` at word
 * out_off. A value that is NaN, Inf or beyond max_abs is stored as 0 (with its pair), ORs `flag` into
 * st[status_word] and lowers st[status_word + 1] to `layer`. Two values per work-item (the Vulkan
 * twin is stage_input.comp). */
#if PKV_OCL_GROUP == 0 || PKV_OCL_GROUP == 3
__kernel void ocl_stage(__global const uint *raw, uint raw_off, uint n_pairs, uint in_f16, uint out_f32, __global uint *dst,
                        uint out_off, __global uint *st, uint status_word, float max_abs, uint flag, uint layer)
{
    const uint i = get_global_id(0);
    if (i >= n_pairs) return;
    float x0, x1;
    bool bad;
    if (in_f16 != 0u) {
        const uint w = raw[raw_off + i];
        bad = (w & 0x7C00u) == 0x7C00u || (w & 0x7C000000u) == 0x7C000000u;
        x0 = pkv_f16_to_f32(w & 0xFFFFu);
        x1 = pkv_f16_to_f32(w >> 16);
    } else {
        x0 = as_float(raw[raw_off + 2u * i]);
        x1 = as_float(raw[raw_off + 2u * i + 1u]);
        bad = (as_uint(x0) & 0x7F800000u) == 0x7F800000u || (as_uint(x1) & 0x7F800000u) == 0x7F800000u ||
              fabs(x0) > max_abs || fabs(x1) > max_abs;
    }
    if (bad) {
        atomic_or(&st[status_word], flag);
        atomic_min(&st[status_word + 1u], layer);
        x0 = 0.0f;
        x1 = 0.0f;
    }
    if (out_f32 != 0u) {
        dst[out_off + 2u * i] = as_uint(x0);
        dst[out_off + 2u * i + 1u] = as_uint(x1);
    } else {
        dst[out_off + i] = pkv_f32_to_f16(x0) | (pkv_f32_to_f16(x1) << 16);
    }
}
#endif
