/* Prefill mining of one or more layers at once: k-means (L2) per list (unit = layer of the op and
 * kv head, then K or V: q = unit * 2 + kv), as a chain of launches the host enqueues without
 * waiting: init, then max_iters times (assign, partial, reduce, finish), then store and the final
 * assignment. The stop flag turns later iterations of a converged list into no-ops, so the
 * iteration count is exactly the CPU's. Sums follow docs/NUMERICS.md: per chunk of
 * PKV_KMEANS_CHUNK tokens in ascending order, then the chunk sums pairwise, level by level. k-means
 * runs over the PP_N_SAMPLE tokens pkv_sample_token picks (km_sample), the final assignment over all.
 * Buffers: P (parameters), tokens (fp16 K [layers][n][H][d] then V), tab (uploaded tables),
 * work (device scratch, uint words at the PP_W_* offsets). */

#define MB_MAX 32u

OCL_HELPER size_t km_token(__constant uint *P, uint q, uint t) /* index of x_t,0 of list q */
{
    const uint H = P[PP_H], unit = q >> 1, kv = q & 1u, layer = unit / H, h = unit % H;
    return ((((size_t)kv * P[PP_N_SRC_LAYERS] + layer) * P[PP_N_TOKENS] + t) * H + h) * P[PP_D];
}

OCL_HELPER size_t km_sample(__constant uint *P, uint q, uint j) /* index of x_t,0 of sample j of list q */
{
    return km_token(P, q, pkv_sample_token(j, P[PP_N_TOKENS], P[PP_N_SAMPLE]));
}

OCL_HELPER int km_done(__constant uint *P, __global const uint *work, uint q) { return work[P[PP_W_FLAGS] + 2u * q] != 0u; }

/* Stored pattern m of list q (its unit's bank, K or V). */
OCL_HELPER __global const ushort *km_pattern(__constant uint *P, __global const uint *tab, __global const uchar *chunks,
                                              uint q, uint m)
{
    return pattern_ptr(chunks, tab + P[PP_T_UDESC] + (q >> 1) * UDESC_WORDS + 4u, P[PP_CHUNK_BYTES], P[PP_D], q & 1u, m);
}

/* c = x[init[m]] (sample positions), flags cleared. One work-item per centroid value. */
#if PKV_OCL_GROUP == 0 || PKV_OCL_GROUP == 1
__kernel void ocl_km_init(__constant uint *P, __global const ushort *tokens, __global const uint *tab,
                          __global uint *work)
{
    const uint d = P[PP_D], M = P[PP_M], lists = 2u * P[PP_UNITS];
    const size_t j = get_global_id(0);
    if (j >= (size_t)lists * M * d) return;
    const uint q = (uint)(j / ((size_t)M * d)), m = (uint)(j % ((size_t)M * d) / d), i = (uint)(j % d);
    const uint t = tab[P[PP_T_INIT] + q * M + m];
    work[P[PP_W_CENT] + j] = as_uint(pkv_f16_to_f32(tokens[km_sample(P, q, t) + i]));
    if (m == 0u && i == 0u) {
        work[P[PP_W_FLAGS] + 2u * q] = 0u;
        work[P[PP_W_FLAGS] + 2u * q + 1u] = 0u;
    }
}
#endif

/* Each token of a list to its L2-nearest centroid, ties to the lowest index: one work-group per
 * (tile of tokens, list), one token per work-item, the centroids through local memory in blocks of
 * PP_MB (<= MB_MAX), one running distance per centroid summed over channels in ascending order.
 * bank = 1: the final assignment against the stored fp16 patterns with the V gate: index | gate << 8
 * for the first N_ASSIGN tokens. */
#if PKV_OCL_GROUP == 0 || PKV_OCL_GROUP == 1
__kernel void ocl_km_assign(__constant uint *P, __global const ushort *tokens, __global const uint *tab,
                            __global const uchar *chunks, __global uint *work, __local float *c_s, uint bank)
{
    const uint d = P[PP_D], M = P[PP_M], mb = P[PP_MB], lid = get_local_id(0), L = get_local_size(0);
    const uint ntok = bank ? P[PP_N_ASSIGN] : P[PP_N_SAMPLE];
    const uint tiles = (ntok + L - 1u) / L, q = get_group_id(0) / tiles;
    const uint t = get_group_id(0) % tiles * L + lid;
    if (!bank && km_done(P, work, q)) return; /* the same for the whole work-group */
    const uint tc = t < ntok ? t : ntok - 1u;
    __global const ushort *x = tokens + (bank ? km_token(P, q, tc) : km_sample(P, q, tc));
    float acc[MB_MAX];
    float best_d = 0.0f;
    uint best = 0u;
    for (uint m0 = 0u; m0 < M; m0 += mb) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint e = lid; e < mb * d; e += L) {
            const uint m = m0 + e / d, i = e % d;
            float c = 0.0f;
            if (m < M) c = bank ? pkv_f16_to_f32(km_pattern(P, tab, chunks, q, m)[i]) : as_float(work[P[PP_W_CENT] + (q * M + m) * d + i]);
            c_s[e] = c;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint m = 0u; m < MB_MAX; m++) acc[m] = 0.0f;
        for (uint i = 0u; i < d; i++) {
            const float xi = pkv_f16_to_f32(x[i]);
            for (uint m = 0u; m < MB_MAX; m++)
                if (m < mb) acc[m] = pkv_l2_step(acc[m], xi, c_s[m * d + i]);
        }
        for (uint m = 0u; m < MB_MAX; m++)
            if (m < mb && m0 + m < M && (m0 + m == 0u || acc[m] < best_d)) {
                best_d = acc[m];
                best = m0 + m;
            }
    }
    if (t >= ntok) return;
    if (!bank) {
        work[P[PP_W_KASSIGN] + q * P[PP_N_SAMPLE] + t] = best;
        return;
    }
    uint gate = 0u;
    if (q & 1u) { /* the distances' zero signs do not matter: squared in the gate */
        __global const ushort *p = km_pattern(P, tab, chunks, q, best);
        float x0 = pkv_f16_to_f32(x[0]), r0 = x0 - pkv_f16_to_f32(p[0]);
        float xlo = x0, xhi = x0, rlo = r0, rhi = r0;
        for (uint i = 1u; i < d; i++) {
            float xi = pkv_f16_to_f32(x[i]), r = xi - pkv_f16_to_f32(p[i]);
            xlo = fmin(xlo, xi), xhi = fmax(xhi, xi), rlo = fmin(rlo, r), rhi = fmax(rhi, r);
        }
        gate = (uint)pkv_v_gate(rhi - rlo, xhi - xlo, as_float(P[PP_GATE_K2]));
    }
    work[P[PP_W_ASSIGN] + q * P[PP_N_ASSIGN] + t] = best | (gate << 8);
}
#endif

/* The chunk sums: one work-group per (chunk of the sample, list); per channel, the chunk's tokens in ascending
 * order into sum[a_t], from +0, in local memory (lsum, M*d floats) when P[PP_KM_LOCAL] says they
 * fit, else straight in the work buffer; and the chunk's counts. */
#if PKV_OCL_GROUP == 0 || PKV_OCL_GROUP == 1
__kernel void ocl_km_partial(__constant uint *P, __global const ushort *tokens, __global uint *work,
                             __local float *lsum)
{
    const uint d = P[PP_D], M = P[PP_M], H = P[PP_H], n = P[PP_N_SAMPLE], nc = P[PP_NC];
    const uint lid = get_local_id(0), L = get_local_size(0), q = get_group_id(0) / nc, j = get_group_id(0) % nc;
    if (km_done(P, work, q)) return;
    __local uint a_s[PKV_KMEANS_CHUNK];
    __local uint b_s[PKV_KMEANS_CHUNK]; /* the chunk's tokens (pkv_sample_token) */
    __local uint cnt[MAX_BANK];
    const uint t0 = j * PKV_KMEANS_CHUNK, nt = min((uint)PKV_KMEANS_CHUNK, n - t0);
    const size_t part = P[PP_W_PART] + ((size_t)q * nc + j) * M * d;
    const int loc = P[PP_KM_LOCAL] != 0u;
    for (uint m = lid; m < M; m += L) cnt[m] = 0u;
    for (uint e = lid; e < M * d; e += L) {
        if (loc) lsum[e] = 0.0f;
        else work[part + e] = 0u;
    }
    barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);
    for (uint e = lid; e < nt; e += L) {
        uint a = work[P[PP_W_KASSIGN] + q * n + t0 + e];
        a_s[e] = a;
        b_s[e] = pkv_sample_token(t0 + e, P[PP_N_TOKENS], n);
        atomic_inc(&cnt[a]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    __global const ushort *x = tokens + km_token(P, q, 0u);
    for (uint i = lid; i < d; i += L)
        for (uint e = 0u; e < nt; e++) {
            const uint a = a_s[e];
            const float v = pkv_f16_to_f32(x[(size_t)b_s[e] * H * d + i]);
            if (loc) lsum[a * d + i] += v;
            else work[part + a * d + i] = as_uint(as_float(work[part + a * d + i]) + v);
        }
    barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);
    if (loc)
        for (uint e = lid; e < M * d; e += L) work[part + e] = as_uint(lsum[e]);
    for (uint m = lid; m < M; m += L) work[P[PP_W_CNT] + ((size_t)q * nc + j) * M + m] = cnt[m];
}
#endif

/* New centroid m of list q: the chunk sums pairwise, level by level, in place; new = sum * rcp[count]
 * (count > 0) else old; the shift sum_i (new - old)^2 into the list's maximum. One work-group per
 * (m, list). */
#if PKV_OCL_GROUP == 0 || PKV_OCL_GROUP == 1
__kernel void ocl_km_reduce(__constant uint *P, __global const uint *tab, __global uint *work)
{
    const uint d = P[PP_D], M = P[PP_M], nc = P[PP_NC], lid = get_local_id(0), L = get_local_size(0);
    const uint q = get_group_id(0) / M, m = get_group_id(0) % M;
    if (km_done(P, work, q)) return;
    __local float new_s[MAX_D], old_s[MAX_D];
    __local uint count_s;
    if (lid == 0u) {
        uint c = 0u;
        for (uint j = 0u; j < nc; j++) c += work[P[PP_W_CNT] + ((size_t)q * nc + j) * M + m];
        count_s = c;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const uint count = count_s;
    const size_t stride = (size_t)M * d;
    for (uint i = lid; i < d; i += L) {
        const size_t base = P[PP_W_PART] + ((size_t)q * nc * M + m) * d + i;
        for (uint len = nc; len > 1u; len = (len + 1u) / 2u) {
            for (uint k = 0u; k < len / 2u; k++)
                work[base + k * stride] = as_uint(as_float(work[base + 2u * k * stride]) + as_float(work[base + (2u * k + 1u) * stride]));
            if (len & 1u) work[base + (len / 2u) * stride] = work[base + (len - 1u) * stride];
        }
        const size_t at = P[PP_W_CENT] + ((size_t)q * M + m) * d + i;
        const float old = as_float(work[at]);
        const float nv = count > 0u ? ocl_mul(as_float(work[base]), as_float(tab[P[PP_T_RCP] + count])) : old;
        new_s[i] = nv;
        old_s[i] = old;
        work[at] = as_uint(nv);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0u && count > 0u) {
        float acc = 0.0f;
        for (uint i = 0u; i < d; i++) acc = pkv_l2_step(acc, new_s[i], old_s[i]);
        atomic_max(&work[P[PP_W_FLAGS] + 2u * q + 1u], as_uint(acc)); /* acc >= 0: its bits order like it */
    }
}
#endif

/* After each iteration, one work-item per list: stop when the largest shift is below tol2. */
#if PKV_OCL_GROUP == 0 || PKV_OCL_GROUP == 1
__kernel void ocl_km_finish(__constant uint *P, __global uint *work)
{
    const uint q = get_global_id(0);
    if (q >= 2u * P[PP_UNITS]) return;
    __global uint *f = work + P[PP_W_FLAGS] + 2u * q;
    if (f[0] == 0u && as_float(f[1]) < as_float(P[PP_TOL2])) f[0] = 1u;
    f[1] = 0u;
}
#endif

/* Bank patterns 0..M-1 = f16(c). One work-item per value. */
#if PKV_OCL_GROUP == 0 || PKV_OCL_GROUP == 1
__kernel void ocl_km_store(__constant uint *P, __global const uint *tab, __global const uint *work,
                           __global uchar *chunks)
{
    const uint d = P[PP_D], M = P[PP_M], lists = 2u * P[PP_UNITS];
    const size_t j = get_global_id(0);
    if (j >= (size_t)lists * M * d) return;
    const uint q = (uint)(j / ((size_t)M * d)), m = (uint)(j % ((size_t)M * d) / d), i = (uint)(j % d);
    __global ushort *p = (__global ushort *)km_pattern(P, tab, chunks, q, m);
    p[i] = (ushort)pkv_f32_to_f16(as_float(work[P[PP_W_CENT] + j]));
}
#endif
