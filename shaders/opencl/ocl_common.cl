/* Addressing shared by the kernels: arenas are byte buffers of fixed-size slots (src/core/layout.h). */

/* The write path's kernels are built as three programs (-DPKV_OCL_GROUP=1 mining, 2 flush and block
 * encoding and window writes, 3 the rest; 0 all), in parallel (ocl_program.c). */
#ifndef PKV_OCL_GROUP
#define PKV_OCL_GROUP 0
#endif

#define MAX_D 256
#define MAX_G 128
#define MAX_BANK 256
#define MAX_WG 128 /* work-group size limit of the kernels (the host never uses more), but ocl_quant_search's 144 */

/* Pattern m of bank kv (0 = K, 1 = V) of one head, whose chunk table row is `ct`. */
OCL_HELPER __global const ushort *pattern_ptr(__global const uchar *chunks, __global const uint *ct,
                                                 uint chunk_bytes, uint d, uint kv, uint m)
{
    __global const uchar *chunk = chunks + (size_t)ct[m / PKV_OCL_CHUNK_PATTERNS] * chunk_bytes;
    return (__global const ushort *)chunk + (size_t)(kv * PKV_OCL_CHUNK_PATTERNS + m % PKV_OCL_CHUNK_PATTERNS) * d;
}

/* L2 distance of fp16 vectors x (stride 1) and fp32 centroid c, in channel order. */
OCL_HELPER float dist_l2_f32(__global const ushort *x, __global const float *c, uint d)
{
    float acc = 0.0f;
    for (uint i = 0; i < d; i++) {
        acc = pkv_l2_step(acc, pkv_f16_to_f32(x[i]), c[i]);
    }
    return acc;
}

OCL_HELPER float dist_l2_f16(__global const ushort *x, __global const ushort *c, uint d)
{
    float acc = 0.0f;
    for (uint i = 0; i < d; i++) {
        acc = pkv_l2_step(acc, pkv_f16_to_f32(x[i]), pkv_f16_to_f32(c[i]));
    }
    return acc;
}

/* max_i (x_i - c_i) - min_i (x_i - c_i); c NULL means range(x). */
OCL_HELPER float dist_minmax_f16(__global const ushort *x, __global const ushort *c, uint d)
{
    pkv_span s = pkv_span_of(c ? pkv_f16_to_f32(x[0]) - pkv_f16_to_f32(c[0]) : pkv_f16_to_f32(x[0]));
    for (uint i = 1; i < d; i++)
        s = pkv_span_add(s, c ? pkv_f16_to_f32(x[i]) - pkv_f16_to_f32(c[i]) : pkv_f16_to_f32(x[i]));
    return pkv_span_width(s);
}

/* The code of channel c in a row of `bits`-bit codes stored as bit planes. */
OCL_HELPER uint row_code(__global const uint *row, uint d, uint bits, uint c)
{
    uint pb = pkv_plane_bits(bits, 0u);
    uint v = (row[(c * pb) >> 5] >> ((c * pb) & 31u)) & ((1u << pb) - 1u);
    if (bits == 3u) v |= ((row[pkv_plane_words(d, 2u) + (c >> 5)] >> (c & 31u)) & 1u) << 2;
    return v;
}
