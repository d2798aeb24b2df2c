/* Window flush and block encoding of one or more layers at once, per unit (layer of the op and kv
 * head, described by tab[PP_T_UDESC + unit * 16]: window slot, patterns, new pattern index, append
 * flag, bank chunk slots): ocl_centre appends the new pattern (Chebyshev centre of the window),
 * ocl_assign picks each window token's pattern (min-max distance) and V gate, ocl_encode turns G
 * tokens of one unit into one block (src/core/block.c is the reference: per-channel K and per-token
 * V quantization, min-max or the MSE quantizer's range search, bit-plane packing); ocl_window_write copies appended rows into the windows. */

OCL_HELPER __global const uint *udesc(__constant uint *P, __global const uint *tab, uint unit)
{
    return tab + P[PP_T_UDESC] + unit * UDESC_WORDS;
}

/* One work-group per (unit, K|V) whose bank takes a new pattern. Exact spans (the zero's sign is stored). */
#if PKV_OCL_GROUP == 0 || PKV_OCL_GROUP == 2
__kernel void ocl_centre(__constant uint *P, __global const ushort *windows, __global const uint *tab,
                         __global uchar *chunks)
{
    const uint d = P[PP_D], R = P[PP_R];
    const uint gid = get_group_id(0), unit = gid >> 1, kv = gid & 1u;
    __global const uint *u = udesc(P, tab, unit);
    if (!u[3]) return;
    __global const ushort *x = windows + (size_t)u[0] * (P[PP_WINDOW_BYTES] / 2u) + (size_t)kv * R * d;
    __global ushort *p = (__global ushort *)pattern_ptr(chunks, u + 4, P[PP_CHUNK_BYTES], d, kv, u[2]);
    for (uint i = get_local_id(0); i < d; i += get_local_size(0)) {
        pkv_span s = pkv_span_of(pkv_f16_to_f32(x[i]));
        for (uint t = 1; t < R; t++) s = pkv_span_add(s, pkv_f16_to_f32(x[(size_t)t * d + i]));
        p[i] = (ushort)pkv_f32_to_f16(pkv_centre(s.lo, s.hi));
    }
}
#endif

/* Residual of value x of channel i against pattern row p (NULL: no residual). */
OCL_HELPER float resid(__global const ushort *x, __global const ushort *p, uint i)
{
    return p ? pkv_f16_to_f32(x[i]) - pkv_f16_to_f32(p[i]) : pkv_f16_to_f32(x[i]);
}

/* Row of token t (0 .. N_ASSIGN-1) of a unit, K (kv 0) or V (kv 1): the token upload (prefill:
 * K [layers][n][H][d] then V) or the unit's window slot (flush: K [R][d] then V [R][d]). */
OCL_HELPER __global const ushort *token_row(__constant uint *P, __global const ushort *src, __global const uint *u,
                                            uint unit, uint kv, uint t)
{
    const uint d = P[PP_D], H = P[PP_H];
    if (P[PP_SRC_WINDOW]) return src + (size_t)u[0] * (P[PP_WINDOW_BYTES] / 2u) + ((size_t)kv * P[PP_R] + t) * d;
    return src + ((((size_t)kv * P[PP_N_SRC_LAYERS] + unit / H) * P[PP_N_TOKENS] + t) * H + unit % H) * d;
}

/* A flush: the min-max-nearest pattern of every window token, K and V, and V's gate: one work-group
 * per (tile of tokens, unit, K|V), one token per work-item. The unit's bank passes through local
 * memory (c_s, PP_MB patterns of d floats) in blocks; each work-item reads its token once per block
 * and keeps PP_MB (<= MB_MAX) running (min, max) of the residual x - c, so a pattern is read from
 * global memory once per work-group and block (it was once per token and pattern, 16 lanes on 16
 * pattern rows). The patterns are scanned in ascending order with a strict < (ties to the lowest
 * index: the CPU's scan). The distances use the hardware min/max: they can differ from
 * docs/NUMERICS.md's exact span only in the sign of a zero, which neither comparisons nor the gate
 * (squares) see; the gate's A is the chosen pattern's distance, B the token's range.
 * work[PP_W_ASSIGN]: [unit][2][N_ASSIGN]. */
#if PKV_OCL_GROUP == 0 || PKV_OCL_GROUP == 2
__kernel void ocl_assign(__constant uint *P, __global const ushort *src, __global const uint *tab,
                         __global const uchar *chunks, __global uint *work, __local float *c_s)
{
    const uint d = P[PP_D], ntok = P[PP_N_ASSIGN], mb = P[PP_MB], lid = get_local_id(0), L = get_local_size(0);
    const uint tiles = (ntok + L - 1u) / L, q = get_group_id(0) / tiles, unit = q >> 1, kv = q & 1u;
    const uint t = get_group_id(0) % tiles * L + lid;
    __global const uint *u = udesc(P, tab, unit);
    __global const ushort *x = token_row(P, src, u, unit, kv, t < ntok ? t : ntok - 1u);
    const uint np = u[1];
    float bd = 0.0f, xlo = INFINITY, xhi = -INFINITY;
    uint bm = 0u;
    for (uint m0 = 0u; m0 < np; m0 += mb) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint e = lid; e < mb * d; e += L) {
            const uint m = m0 + e / d;
            c_s[e] = m < np ? pkv_f16_to_f32(pattern_ptr(chunks, u + 4, P[PP_CHUNK_BYTES], d, kv, m)[e % d]) : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        float lo[MB_MAX], hi[MB_MAX];
        for (uint m = 0u; m < MB_MAX; m++) lo[m] = INFINITY, hi[m] = -INFINITY;
        for (uint i = 0u; i < d; i++) {
            const float xi = pkv_f16_to_f32(x[i]);
            xlo = fmin(xlo, xi), xhi = fmax(xhi, xi);
            for (uint m = 0u; m < MB_MAX; m++)
                if (m < mb) {
                    const float r = xi - c_s[m * d + i];
                    lo[m] = fmin(lo[m], r), hi[m] = fmax(hi[m], r);
                }
        }
        for (uint m = 0u; m < MB_MAX; m++)
            if (m < mb && m0 + m < np) {
                const float dd = hi[m] - lo[m];
                if (m0 + m == 0u || dd < bd) bd = dd, bm = m0 + m;
            }
    }
    if (t >= ntok) return;
    const uint gate = kv ? (uint)pkv_v_gate(bd, xhi - xlo, as_float(P[PP_GATE_K2])) : 0u;
    work[P[PP_W_ASSIGN] + q * ntok + t] = bm | (gate << 8);
}
#endif

/* Value n of the run that one (scale, zero) covers, as ocl_encode quantizes it: K channel j's token
 * n (is_v 0), or V token j's channel n; residual where a pattern applies (K always in PATTERN mode, V
 * where its gate bit is set). */
OCL_HELPER float run_value(uint is_v, uint j, uint n, __global const ushort *kx, __global const ushort *vx, size_t xs,
                           int pattern, __global const uchar *chunks, __global const uint *ct, uint cb, uint d,
                           __local const uint *ka, __local const uint *va, __local const uint *vm)
{
    if (!is_v) return resid(kx + n * xs, pattern ? pattern_ptr(chunks, ct, cb, d, 0u, ka[n]) : 0, j);
    return resid(vx + j * xs, pattern && vm[j] ? pattern_ptr(chunks, ct, cb, d, 1u, va[j]) : 0, n);
}

/* The assignments and V gates of block b of a unit (PATTERN) into local memory (G tokens). */
OCL_HELPER void load_assign(__constant uint *P, __global const uint *work, uint unit, uint b, __local uint *ka,
                            __local uint *va, __local uint *vm)
{
    const uint G = P[PP_G], ntok = P[PP_N_ASSIGN];
    __global const uint *ak = work + P[PP_W_ASSIGN] + (size_t)(unit * 2u) * ntok + b * G;
    __global const uint *av = ak + ntok;
    for (uint t = get_local_id(0); t < G; t += get_local_size(0)) {
        ka[t] = ak[t] & 255u;
        va[t] = av[t] & 255u;
        vm[t] = (av[t] >> 8) & 1u;
    }
}

/* The MSE quantizer's range search (pkv_math.h pkv_mse_coarse, pkv_mse_fine, pkv_mse_candidate,
 * pkv_quant_err_step; src/core/quant.c pkv_quant_params_mse is the reference), before ocl_encode,
 * which reads its answers. One work-group per (unit, block, part, slice): part 0 the K runs (d
 * channels over G tokens), part 1 the V runs (G tokens over d channels), a slice RUNS of the part's
 * runs, RUNS = local size / PKV_MSE_COARSE (the host's choice: 16, or 8 when a run may hold 256
 * values). The slice's run values (run_value, as ocl_encode quantizes them) are staged once in
 * local memory as floats, [value n][run r], loaded coalesced; then each work-item is one (run r =
 * lid % RUNS, candidate q = lid / RUNS): it folds its run's span in the values' order (the zero's
 * sign depends on it), and sums its candidate's error over the run in the values' order from +0;
 * the q = 0 item of each run picks the first strictly least error among the coarse candidates
 * (skipping a pair equal to the best's), items q < PKV_MSE_FINE sum the neighbours of the coarse
 * best, and the q = 0 item continues the pick over them. Every sum runs to the end (the reference's
 * early stop skips only sums that cannot win): the same bits as the CPU. A part without the MSE
 * bit (P[PP_QMSE]: 1 K, 2 V) or a slice past its part's runs returns at once.
 * work[PP_W_QSEARCH]: [unit][block][d + G], K channels then V tokens, fp16 scale | zero << 16. */
#define QS_VALUES 2048u  /* staged floats: RUNS * max(d, G) <= 8 KiB */
#define QS_MAX_LOCAL 144u /* 16 runs * PKV_MSE_COARSE */
#if PKV_OCL_GROUP == 0 || PKV_OCL_GROUP == 2
__kernel void ocl_quant_search(__constant uint *P, __global const ushort *src, __global const uint *tab,
                               __global const uchar *chunks, __global uint *work)
{
    const uint d = P[PP_D], G = P[PP_G], nb = P[PP_NB], lid = get_local_id(0), L = get_local_size(0);
    const uint RUNS = L / PKV_MSE_COARSE, slices = (max(d, G) + RUNS - 1u) / RUNS;
    const uint gid = get_group_id(0), slice = gid % slices, part = (gid / slices) & 1u, ub = gid / slices / 2u;
    const uint unit = ub / nb, b = ub % nb, nruns = part ? G : d, len = part ? d : G, r0 = slice * RUNS;
    if (!((P[PP_QMSE] >> part) & 1u) || r0 >= nruns) return;
    const int pattern = P[PP_MODE] == 0u;
    __global const uint *u = udesc(P, tab, unit);
    __global const ushort *kx = token_row(P, src, u, unit, 0u, b * G), *vx = token_row(P, src, u, unit, 1u, b * G);
    const size_t xs = P[PP_SRC_WINDOW] ? d : (size_t)P[PP_H] * d;
    __global const uint *ct = u + 4;
    const uint cb = P[PP_CHUNK_BYTES];
    __local uint ka[MAX_G], va[MAX_G], vm[MAX_G];
    __local float x_s[QS_VALUES], e_s[QS_MAX_LOCAL];
    __local uint c_s[QS_MAX_LOCAL], k_s[QS_MAX_LOCAL / PKV_MSE_COARSE];

    if (pattern) load_assign(P, work, unit, b, ka, va, vm);
    barrier(CLK_LOCAL_MEM_FENCE);
    /* the values: K, consecutive items on consecutive channels of one token; V, on consecutive
     * channels of one token row */
    const uint rn = min(RUNS, nruns - r0);
    for (uint e = lid; e < len * rn; e += L) {
        const uint n = part ? e % len : e / rn, r = part ? e / len : e % rn;
        x_s[n * RUNS + r] = run_value(part, r0 + r, n, kx, vx, xs, pattern, chunks, ct, cb, d, ka, va, vm);
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    const uint r = lid % RUNS, q = lid / RUNS, has = r < rn, maxq = (1u << (part ? P[PP_VBITS] : P[PP_KBITS])) - 1u;
    const float inv = as_float(part ? P[PP_INV_V] : P[PP_INV_K]);
    pkv_span s = pkv_span_of(has ? x_s[r] : 0.0f);
    for (uint n = 1u; has && n < len; n++) s = pkv_span_add(s, x_s[n * RUNS + r]);
    uint best_c = 0u, best_k = 0u;
    float best = 0.0f;
    for (uint stage = 0u; stage < 2u; stage++) {
        const uint nq = stage == 0u ? PKV_MSE_COARSE : PKV_MSE_FINE;
        if (has && q < nq) {
            const uint c = pkv_mse_candidate(s, stage == 0u ? pkv_mse_coarse(q) : pkv_mse_fine(k_s[r], q), inv);
            const float sc = pkv_f16_to_f32(c & 0xFFFFu), z = pkv_f16_to_f32(c >> 16), rs = 1.0f / sc;
            float e = 0.0f;
            if (maxq == 3u) { /* 2 bits: three comparisons per value, the same term */
                const pkv_levels2 lv = pkv_levels2_of(z, sc);
                for (uint n = 0u; n < len; n++) e = pkv_quant_err_step2(e, x_s[n * RUNS + r], z, lv);
            } else {
                for (uint n = 0u; n < len; n++) e = pkv_quant_err_step(e, x_s[n * RUNS + r], z, sc, rs, maxq);
            }
            e_s[lid] = e, c_s[lid] = c;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (has && q == 0u) {
            for (uint i = 0u; i < nq; i++) {
                const float e = e_s[i * RUNS + r];
                const uint c = c_s[i * RUNS + r];
                if ((stage == 0u && i == 0u) || (e < best && c != best_c)) {
                    best = e, best_c = c;
                    if (stage == 0u) best_k = pkv_mse_coarse(i);
                }
            }
            if (stage == 0u) k_s[r] = best_k;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (has && q == 0u) work[P[PP_W_QSEARCH] + (size_t)(unit * nb + b) * (d + G) + part * d + r0 + r] = best_c;
}
#endif

/* One work-group per (unit, block), with the assignments of ocl_assign or ocl_km_assign. */
#if PKV_OCL_GROUP == 0 || PKV_OCL_GROUP == 2
__kernel void ocl_encode(__constant uint *P, __global const ushort *src, __global const uint *tab,
                         __global const uchar *chunks, __global const uint *work, __global uchar *blocks)
{
    const uint d = P[PP_D], G = P[PP_G], mode = P[PP_MODE], nb = P[PP_NB];
    const uint kbits = P[PP_KBITS], vbits = P[PP_VBITS], krow = P[PP_KROW], vrow = P[PP_VROW];
    const uint lid = get_local_id(0), L = get_local_size(0);
    const uint unit = get_group_id(0) / nb, b = get_group_id(0) % nb;
    const int pattern = mode == 0u;
    __global const uint *u = udesc(P, tab, unit);
    __global const ushort *kx = token_row(P, src, u, unit, 0u, b * G), *vx = token_row(P, src, u, unit, 1u, b * G);
    const size_t xs = P[PP_SRC_WINDOW] ? d : (size_t)P[PP_H] * d;
    __global const uint *ct = u + 4;
    const uint cb = P[PP_CHUNK_BYTES];
    __global uchar *blk = blocks + (size_t)tab[P[PP_T_BSLOT] + unit * nb + b] * P[PP_BLOCK_BYTES];

    /* The CPU zeroes the block first; padding must match byte for byte. */
    for (uint w = lid; w < P[PP_BLOCK_BYTES] / 4u; w += L) ((__global uint *)blk)[w] = 0u;
    barrier(CLK_GLOBAL_MEM_FENCE);

    if (mode == 2u) { /* FP16: copy */
        __global ushort *kf = (__global ushort *)(blk + P[PP_OFF_KFP16]);
        __global ushort *vf = (__global ushort *)(blk + P[PP_OFF_VFP16]);
        for (uint j = lid; j < G * d; j += L) {
            kf[j] = kx[(j / d) * xs + j % d];
            vf[j] = vx[(j / d) * xs + j % d];
        }
        return;
    }

    __local uint ka[MAX_G], va[MAX_G], vm[MAX_G];
    __local float ks[MAX_D], kz[MAX_D], vs[MAX_G], vz[MAX_G];

    /* A: the assignments and V gates. */
    if (pattern) load_assign(P, work, unit, b, ka, va, vm);
    barrier(CLK_LOCAL_MEM_FENCE);

    /* B: quantization parameters: K per channel over the G tokens, V per token over d channels,
     * min-max's or ocl_quant_search's (qs: this block's answers). */
    __global const uint *qs = work + P[PP_W_QSEARCH] + (size_t)(unit * nb + b) * (d + G);
    __global ushort *kscale = (__global ushort *)(blk + P[PP_OFF_KSCALE]);
    __global ushort *kzero = (__global ushort *)(blk + P[PP_OFF_KZERO]);
    __global ushort *vscale = (__global ushort *)(blk + P[PP_OFF_VSCALE]);
    __global ushort *vzero = (__global ushort *)(blk + P[PP_OFF_VZERO]);
    for (uint j = lid; j < d + G; j += L) {
        if (j < d) {
            uint sh, zh;
            if (P[PP_QMSE] & 1u) {
                const uint c = qs[j];
                sh = c & 0xFFFFu, zh = c >> 16;
            } else {
                pkv_span s = pkv_span_of(resid(kx, pattern ? pattern_ptr(chunks, ct, cb, d, 0u, ka[0]) : 0, j));
                for (uint t = 1; t < G; t++)
                    s = pkv_span_add(s, resid(kx + t * xs, pattern ? pattern_ptr(chunks, ct, cb, d, 0u, ka[t]) : 0, j));
                sh = pkv_scale_f16(s.lo, s.hi, as_float(P[PP_INV_K])), zh = pkv_zero_f16(s.lo);
            }
            kscale[j] = (ushort)sh;
            kzero[j] = (ushort)zh;
            ks[j] = pkv_f16_to_f32(sh);
            kz[j] = pkv_f16_to_f32(zh);
        } else {
            uint t = j - d;
            uint sh, zh;
            if (P[PP_QMSE] & 2u) {
                const uint c = qs[d + t];
                sh = c & 0xFFFFu, zh = c >> 16;
            } else {
                __global const ushort *p = pattern && vm[t] ? pattern_ptr(chunks, ct, cb, d, 1u, va[t]) : 0;
                pkv_span s = pkv_span_of(resid(vx + t * xs, p, 0));
                for (uint i = 1; i < d; i++) s = pkv_span_add(s, resid(vx + t * xs, p, i));
                sh = pkv_scale_f16(s.lo, s.hi, as_float(P[PP_INV_V])), zh = pkv_zero_f16(s.lo);
            }
            vscale[t] = (ushort)sh;
            vzero[t] = (ushort)zh;
            vs[t] = pkv_f16_to_f32(sh);
            vz[t] = pkv_f16_to_f32(zh);
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);

    /* C: codes, one 32-bit word of one token row per work-item. */
    const uint rows = krow + vrow;
    for (uint j = lid; j < G * rows; j += L) {
        uint t = j / rows, w = j % rows, is_v = w >= krow;
        uint bits = is_v ? vbits : kbits, wr = is_v ? w - krow : w;
        uint pw0 = pkv_plane_words(d, pkv_plane_bits(bits, 0u));
        uint plane = wr < pw0 ? 0u : 1u, wi = plane ? wr - pw0 : wr;
        uint pb = pkv_plane_bits(bits, plane), src_shift = plane ? 2u : 0u, mask = (1u << pb) - 1u;
        uint maxq = (1u << bits) - 1u;
        uint c0 = wi * 32u / pb, c1 = min(d, c0 + 32u / pb);
        __global const ushort *x = (is_v ? vx : kx) + t * xs;
        __global const ushort *p = 0;
        if (pattern && (!is_v || vm[t])) p = pattern_ptr(chunks, ct, cb, d, is_v, is_v ? va[t] : ka[t]);
        uint word = 0u;
        for (uint c = c0; c < c1; c++) {
            float r = resid(x, p, c);
            uint code = is_v ? pkv_quant_code(r, vz[t], vs[t], maxq) : pkv_quant_code(r, kz[c], ks[c], maxq);
            word |= ((code >> src_shift) & mask) << ((c * pb) & 31u);
        }
        __global uint *row = (__global uint *)(blk + (is_v ? P[PP_OFF_VCODES] : P[PP_OFF_KCODES]));
        row[(size_t)t * (is_v ? vrow : krow) + wr] = word;
    }

    /* D: pattern indices and gate bits. */
    if (pattern) {
        for (uint t = lid; t < G; t += L) {
            blk[P[PP_OFF_KIDX] + t] = (uchar)ka[t];
            blk[P[PP_OFF_VIDX] + t] = (uchar)va[t];
        }
        for (uint j = lid; j < G / 8u; j += L) {
            uint byte = 0u;
            for (uint k = 0; k < 8u; k++) byte |= vm[j * 8u + k] << k;
            blk[P[PP_OFF_VMASK] + j] = (uchar)byte;
        }
    }
}
#endif

/* Window writes: one work-group per run (first source row, first destination row, rows) of the
 * upload (runs [n_runs][3] then the rows, fp16, d per row, from word rows_at); words of d / 2. */
#if PKV_OCL_GROUP == 0 || PKV_OCL_GROUP == 2
__kernel void ocl_window_write(__global const uint *up, uint n_runs, uint rows_at, uint row_words,
                               __global uint *windows)
{
    const uint r = get_group_id(0);
    if (r >= n_runs) return;
    __global const uint *run = up + 3u * r;
    const size_t src = (size_t)rows_at + (size_t)run[0] * row_words, dst = (size_t)run[1] * row_words;
    const uint words = run[2] * row_words;
    for (uint w = get_local_id(0); w < words; w += get_local_size(0)) windows[dst + w] = up[src + w];
}
#endif
