/* Prefill mining: k-means (L2) per head, separately for K and V. One work-group per (head, K|V)
 * runs every iteration; sums run per channel in ascending token order, as docs/NUMERICS.md says.
 * Scratch (global): cent, sums [2H][M][d] fp32, counts [2H][M], assign [2H][n]. The sums live in
 * local memory (lsum, M*d floats) when P[PP_KM_LOCAL] says they fit. */
__kernel void ocl_kmeans(__constant uint *P, __global const ushort *tokens, __global const uint *init_index,
                         __global const float *rcp, __global float *cent, __global float *sums,
                         __global uint *counts, __global uint *assign, __global uchar *chunks,
                         __global const uint *chunk_table, __local float *lsum)
{
    const uint d = P[PP_D], H = P[PP_H], n = P[PP_N_TOKENS], M = P[PP_M];
    const uint gid = get_group_id(0), h = gid >> 1, kv = gid & 1u;
    const uint lid = get_local_id(0), L = get_local_size(0);
    const size_t xs = (size_t)H * d; /* token stride */
    __global const ushort *x = tokens + (size_t)kv * n * xs + (size_t)h * d;
    __global float *c = cent + (size_t)gid * M * d;
    __global float *s = sums + (size_t)gid * M * d;
    __global uint *cnt = counts + (size_t)gid * M;
    __global uint *a = assign + (size_t)gid * n;
    __global const uint *init = init_index + (size_t)(h * 2u + kv) * M;
    __local float shift[MAX_BANK];

    for (uint j = lid; j < M * d; j += L) c[j] = pkv_f16_to_f32(x[(size_t)init[j / d] * xs + j % d]);
    barrier(CLK_GLOBAL_MEM_FENCE);

    for (uint it = 0; it < P[PP_MAX_ITERS]; it++) {
        for (uint t = lid; t < n; t += L) {
            uint best = 0;
            float bestd = 0.0f;
            for (uint m = 0; m < M; m++) {
                float dist = dist_l2_f32(x + t * xs, c + (size_t)m * d, d);
                if (m == 0 || dist < bestd) { best = m; bestd = dist; }
            }
            a[t] = best;
        }
        barrier(CLK_GLOBAL_MEM_FENCE);
        for (uint i = lid; i < d; i += L) {
            if (P[PP_KM_LOCAL]) {
                for (uint m = 0; m < M; m++) lsum[m * d + i] = 0.0f;
                for (uint t = 0; t < n; t++) lsum[a[t] * d + i] += pkv_f16_to_f32(x[t * xs + i]);
            } else {
                for (uint m = 0; m < M; m++) s[m * d + i] = 0.0f;
                for (uint t = 0; t < n; t++) s[a[t] * d + i] += pkv_f16_to_f32(x[t * xs + i]);
            }
        }
        if (lid == L - 1u) {
            for (uint m = 0; m < M; m++) cnt[m] = 0;
            for (uint t = 0; t < n; t++) cnt[a[t]]++;
        }
        barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
        for (uint m = lid; m < M; m += L) {
            uint k = cnt[m];
            float r = rcp[k], acc = 0.0f;
            for (uint i = 0; i < d; i++) {
                float old = c[m * d + i];
                float sum = P[PP_KM_LOCAL] ? lsum[m * d + i] : s[m * d + i];
                float nv = k > 0u ? ocl_mul(sum, r) : old;
                acc = pkv_l2_step(acc, nv, old);
                c[m * d + i] = nv;
            }
            shift[m] = acc;
        }
        barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
        float shift2 = shift[0];
        for (uint m = 1; m < M; m++) shift2 = shift[m] > shift2 ? shift[m] : shift2;
        if (shift2 < as_float(P[PP_TOL2])) break; /* the same decision in every work-item */
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    __global const uint *ct = chunk_table + (size_t)h * PKV_OCL_MAX_CHUNKS;
    for (uint j = lid; j < M * d; j += L) {
        __global ushort *p = (__global ushort *)pattern_ptr(chunks, ct, P[PP_CHUNK_BYTES], d, kv, j / d);
        p[j % d] = (ushort)pkv_f32_to_f16(c[j]);
    }
}
