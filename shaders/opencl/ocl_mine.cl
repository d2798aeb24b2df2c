/* Prefill mining: k-means (L2) per head, separately for K and V (hk = head * 2 + K|V), as a chain
 * of launches the host enqueues without waiting: init, then max_iters times (assign, update), then
 * store. done[hk] turns later iterations of a converged head into no-ops, so the iteration count is
 * exactly the CPU's. Scratch (global): cent, sums [2H][M][d] fp32, counts [2H][M], assign [2H][n],
 * done [2H]. Sums run per channel in ascending token order (docs/NUMERICS.md); they live in local
 * memory (lsum, M*d floats) when P[PP_KM_LOCAL] says they fit. */

OCL_HELPER __global const ushort *km_tokens(__constant uint *P, __global const ushort *tokens, uint hk)
{
    const uint d = P[PP_D], H = P[PP_H], n = P[PP_N_TOKENS];
    return tokens + (size_t)(hk & 1u) * n * H * d + (size_t)(hk >> 1) * d; /* token t at + t * H * d */
}

/* c = x[init[m]], done = 0. One work-item per centroid value. */
__kernel void ocl_km_init(__constant uint *P, __global const ushort *tokens, __global const uint *init_index,
                          __global float *cent, __global uint *done)
{
    const uint d = P[PP_D], H = P[PP_H], M = P[PP_M];
    const size_t j = get_global_id(0);
    if (j >= (size_t)2 * H * M * d) return;
    const uint hk = (uint)(j / ((size_t)M * d)), m = (uint)(j % ((size_t)M * d) / d), i = (uint)(j % d);
    __global const ushort *x = km_tokens(P, tokens, hk);
    cent[j] = pkv_f16_to_f32(x[(size_t)init_index[hk * M + m] * H * d + i]);
    if (j % ((size_t)M * d) == 0) done[hk] = 0u;
}

/* a_t = argmin_m L2(x_t, c_m). Work-groups of tokens of one hk. */
__kernel void ocl_km_assign(__constant uint *P, __global const ushort *tokens, __global const float *cent,
                            __global const uint *done, __global uint *assign)
{
    const uint d = P[PP_D], H = P[PP_H], M = P[PP_M], n = P[PP_N_TOKENS];
    const uint tiles = (n + get_local_size(0) - 1) / get_local_size(0);
    const uint hk = get_group_id(0) / tiles;
    const uint t = get_group_id(0) % tiles * get_local_size(0) + get_local_id(0);
    if (done[hk] || t >= n) return;
    __global const ushort *x = km_tokens(P, tokens, hk) + (size_t)t * H * d;
    __global const float *c = cent + (size_t)hk * M * d;
    uint best = 0;
    float bestd = 0.0f;
    for (uint m = 0; m < M; m++) {
        float dist = dist_l2_f32(x, c + (size_t)m * d, d);
        if (m == 0 || dist < bestd) { best = m; bestd = dist; }
    }
    assign[(size_t)hk * n + t] = best;
}

/* New centroids from the sums, the largest shift, and the stop test. One work-group per hk. */
__kernel void ocl_km_update(__constant uint *P, __global const ushort *tokens, __global const float *rcp,
                            __global float *cent, __global float *sums, __global uint *counts,
                            __global const uint *assign, __global uint *done, __local float *lsum)
{
    const uint d = P[PP_D], H = P[PP_H], M = P[PP_M], n = P[PP_N_TOKENS];
    const uint hk = get_group_id(0), lid = get_local_id(0), L = get_local_size(0);
    if (done[hk]) return; /* the same for the whole work-group */
    const size_t xs = (size_t)H * d;
    __global const ushort *x = km_tokens(P, tokens, hk);
    __global float *c = cent + (size_t)hk * M * d;
    __global float *s = sums + (size_t)hk * M * d;
    __global uint *cnt = counts + (size_t)hk * M;
    __global const uint *a = assign + (size_t)hk * n;
    __local float shift[MAX_BANK];

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
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0u) {
        float shift2 = 0.0f;
        for (uint m = 0; m < M; m++) shift2 = shift[m] > shift2 ? shift[m] : shift2;
        if (shift2 < as_float(P[PP_TOL2])) done[hk] = 1u;
    }
}

/* Bank patterns 0..M-1 = f16(c). One work-item per value. */
__kernel void ocl_km_store(__constant uint *P, __global const float *cent, __global const uint *chunk_table,
                           __global uchar *chunks)
{
    const uint d = P[PP_D], H = P[PP_H], M = P[PP_M];
    const size_t j = get_global_id(0);
    if (j >= (size_t)2 * H * M * d) return;
    const uint hk = (uint)(j / ((size_t)M * d)), m = (uint)(j % ((size_t)M * d) / d), i = (uint)(j % d);
    __global ushort *p = (__global ushort *)pattern_ptr(chunks, chunk_table + (size_t)(hk >> 1) * PKV_OCL_MAX_CHUNKS,
                                                       P[PP_CHUNK_BYTES], d, hk & 1u, m);
    p[i] = (ushort)pkv_f32_to_f16(cent[j]);
}
