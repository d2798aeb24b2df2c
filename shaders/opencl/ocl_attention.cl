/* Attention on the compressed cache, split-K (flash-decoding). ocl_attn_qc makes the q.C_K table
 * of each query once; ocl_attn gives one partial softmax (running max, sum, unnormalised output,
 * and in PATTERN mode the histogram S[m] of softmax weights per V pattern) per (split item, query,
 * query head); ocl_reduce merges a sequence's items and adds sum_m S[m] C_V[m] once. An item is a
 * run of blocks or a run of window tokens. q_len > 1 uses the same kernels with the causal limit:
 * query i of a sequence with T tokens sees tokens 0 .. T - q_len + i.
 *
 * One ocl_attn work-group serves P[PP_HPW] query heads of one GQA group (at most OCL_HPW_MAX, a
 * build option chosen from the device's local memory), so the codes of a block are read and
 * unpacked once for all of them. Work-group size: a power of two, at most 128. */

#define NEG_INF (-INFINITY)
#ifndef OCL_HPW_MAX
#define OCL_HPW_MAX 1
#endif

/* Reduces v[0..hpw) over the work-group (sum, or max when is_max); red holds OCL_HPW_MAX * MAX_WG
 * floats. Ends with a barrier, so local writes made before it are visible after it. */
OCL_HELPER void group_reduce(float *v, uint hpw, int is_max, __local float *red)
{
    const uint lid = get_local_id(0), L = get_local_size(0);
    for (uint j = 0; j < OCL_HPW_MAX; j++)
        if (j < hpw) red[j * MAX_WG + lid] = v[j];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = L / 2u; s > 0u; s >>= 1) {
        if (lid < s)
            for (uint j = 0; j < OCL_HPW_MAX; j++)
                if (j < hpw) {
                    float a = red[j * MAX_WG + lid], b = red[j * MAX_WG + lid + s];
                    red[j * MAX_WG + lid] = is_max ? fmax(a, b) : a + b;
                }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (uint j = 0; j < OCL_HPW_MAX; j++)
        if (j < hpw) v[j] = red[j * MAX_WG];
    barrier(CLK_LOCAL_MEM_FENCE);
}

/* Online-softmax step over n logits per head (lg: [head][MAX_G], NEG_INF = masked; each work-item
 * owns tokens lid, lid + L, ...): turns lg into weights p = exp(lg - m_new), updates the running
 * max and sum of each head and gives the factor alpha for its old sums. */
OCL_HELPER void softmax_step(__local float *lg, uint n, uint hpw, float *m_run, float *l_run, float *alpha,
                             __local float *red)
{
    const uint lid = get_local_id(0), L = get_local_size(0);
    float v[OCL_HPW_MAX], m_new[OCL_HPW_MAX];
    for (uint j = 0; j < OCL_HPW_MAX; j++) v[j] = NEG_INF;
    for (uint t = lid; t < n; t += L)
        for (uint j = 0; j < OCL_HPW_MAX; j++)
            if (j < hpw) v[j] = fmax(v[j], lg[j * MAX_G + t]);
    group_reduce(v, hpw, 1, red);
    for (uint j = 0; j < OCL_HPW_MAX; j++) {
        m_new[j] = fmax(m_run[j], v[j]);
        alpha[j] = m_run[j] == NEG_INF ? 0.0f : exp(m_run[j] - m_new[j]);
        v[j] = 0.0f;
    }
    for (uint t = lid; t < n; t += L)
        for (uint j = 0; j < OCL_HPW_MAX; j++)
            if (j < hpw) {
                float x = lg[j * MAX_G + t];
                float p = x == NEG_INF ? 0.0f : exp(x - m_new[j]);
                lg[j * MAX_G + t] = p;
                v[j] += p;
            }
    group_reduce(v, hpw, 0, red);
    for (uint j = 0; j < OCL_HPW_MAX; j++) {
        l_run[j] = l_run[j] * alpha[j] + v[j];
        if (m_new[j] != NEG_INF) m_run[j] = m_new[j];
    }
}

/* Tokens in fp16 rows (window, or FP16-mode blocks): n tokens, K rows k, V rows v (stride d),
 * first token index tok0, visible up to `limit`. */
OCL_HELPER void fp16_tile(__global const ushort *k, __global const ushort *v, uint n, uint tok0, uint limit, uint d,
                          float sc, uint hpw, __local const float *qv, __local float *lg, __local float *o,
                          float *m_run, float *l_run, __local float *red)
{
    const uint lid = get_local_id(0), L = get_local_size(0);
    for (uint t = lid; t < n; t += L) {
        float acc[OCL_HPW_MAX];
        for (uint j = 0; j < OCL_HPW_MAX; j++) acc[j] = tok0 + t > limit ? NEG_INF : 0.0f;
        if (tok0 + t <= limit) {
            __global const half *row = (__global const half *)(k + (size_t)t * d);
            for (uint c = 0; c < d / 8u; c++) { /* d is a multiple of 8 */
                float8 kv = vload_half8(c, row);
                for (uint j = 0; j < OCL_HPW_MAX; j++)
                    if (j < hpw) {
                        float8 qq = vload8(c, qv + j * MAX_D);
                        acc[j] += dot(kv.lo, qq.lo) + dot(kv.hi, qq.hi);
                    }
            }
        }
        for (uint j = 0; j < OCL_HPW_MAX; j++)
            if (j < hpw) lg[j * MAX_G + t] = acc[j] == NEG_INF ? NEG_INF : sc * acc[j];
    }
    float alpha[OCL_HPW_MAX];
    softmax_step(lg, n, hpw, m_run, l_run, alpha, red);
    for (uint i = lid; i < d; i += L) {
        float acc[OCL_HPW_MAX];
        for (uint j = 0; j < OCL_HPW_MAX; j++) acc[j] = j < hpw ? o[j * MAX_D + i] * alpha[j] : 0.0f;
        for (uint t = 0; t < n; t++) {
            float x = ocl_ld_f16(v, (size_t)t * d + i);
            for (uint j = 0; j < OCL_HPW_MAX; j++)
                if (j < hpw) acc[j] += lg[j * MAX_G + t] * x;
        }
        for (uint j = 0; j < OCL_HPW_MAX; j++)
            if (j < hpw) o[j * MAX_D + i] = acc[j];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
}

/* acc[j] = qs[j] . codes of one K row, for each head j (codes unpacked once). */
OCL_HELPER void code_dot(__global const uint *row, __local const float *qs, uint d, uint bits, uint hpw, float *acc)
{
    const uint pb = pkv_plane_bits(bits, 0u), per = 32u / pb, mask = (1u << pb) - 1u;
    for (uint j = 0; j < OCL_HPW_MAX; j++) acc[j] = 0.0f;
    for (uint c0 = 0; c0 < d; c0 += per) {
        uint w = row[c0 / per];
        for (uint k = 0; k < per && c0 + k < d; k++) {
            float code = (float)((w >> (k * pb)) & mask);
            for (uint j = 0; j < OCL_HPW_MAX; j++)
                if (j < hpw) acc[j] += qs[j * MAX_D + c0 + k] * code;
        }
    }
    if (bits == 3u) {
        __global const uint *hi = row + pkv_plane_words(d, 2u);
        for (uint c0 = 0; c0 < d; c0 += 32u) {
            uint w = hi[c0 / 32u];
            for (uint k = 0; k < 32u && c0 + k < d; k++) {
                float code = (float)(((w >> k) & 1u) << 2);
                for (uint j = 0; j < OCL_HPW_MAX; j++)
                    if (j < hpw) acc[j] += qs[j * MAX_D + c0 + k] * code;
            }
        }
    }
}

/* qc[m] = q . C_K[m], one work-group per (sequence, query, query head); qc: [..][bank stride]. */
__kernel void ocl_attn_qc(__constant uint *P, __global const uint *seqd, __global const uint *table,
                          __global const float *q, __global const uchar *chunks, __global float *qc)
{
    const uint d = P[PP_D], H = P[PP_H], q_len = P[PP_Q_LEN], nqh = P[PP_NQH];
    const uint gid = get_group_id(0), seq = gid / (q_len * nqh), qh = gid % nqh;
    const uint nb = seqd[seq * 4u], bank = seqd[seq * 4u + 2u], toff = seqd[seq * 4u + 3u];
    __global const uint *ct = table + toff + (size_t)H * nb + (size_t)(qh / (nqh / H)) * PKV_OCL_MAX_CHUNKS;
    __global const float *qv = q + (size_t)gid * d;
    for (uint m = get_local_id(0); m < bank; m += get_local_size(0)) {
        __global const ushort *pk = pattern_ptr(chunks, ct, P[PP_CHUNK_BYTES], d, 0u, m);
        float acc = 0.0f;
        for (uint i = 0; i < d; i++) acc += qv[i] * ocl_ld_f16(pk, i);
        qc[(size_t)gid * P[PP_BANK_STRIDE] + m] = acc;
    }
}

__kernel void ocl_attn(__constant uint *P, __global const uint *seqd, __global const uint *items,
                       __global const uint *table, __global const float *q, __global const uchar *blocks,
                       __global const uchar *windows, __global const float *qcg, __global float *part)
{
    const uint d = P[PP_D], G = P[PP_G], H = P[PP_H], mode = P[PP_MODE], R = P[PP_R];
    const uint q_len = P[PP_Q_LEN], nqh = P[PP_NQH], hpw = P[PP_HPW], nchunk = nqh / hpw;
    const float sc = as_float(P[PP_SCALE]);
    const uint lid = get_local_id(0), L = get_local_size(0);
    const uint gid = get_group_id(0), item = gid / (q_len * nchunk), qi = gid % (q_len * nchunk) / nchunk;
    const uint qh0 = gid % nchunk * hpw; /* this work-group's query heads: qh0 .. qh0 + hpw - 1 */
    const uint seq = items[item * 4u], kind = items[item * 4u + 1u], beg = items[item * 4u + 2u],
               end = items[item * 4u + 3u];
    const uint nb = seqd[seq * 4u], nw = seqd[seq * 4u + 1u], bank = seqd[seq * 4u + 2u], toff = seqd[seq * 4u + 3u];
    const uint kvh = qh0 / (nqh / H);
    const uint limit = nb * G + nw - q_len + qi;
    const int pattern = mode == 0u;
    const size_t q0 = ((size_t)seq * q_len + qi) * nqh + qh0; /* index of the first query vector */

    __local float qv[OCL_HPW_MAX * MAX_D], qs[OCL_HPW_MAX * MAX_D], o[OCL_HPW_MAX * MAX_D];
    __local float qc[OCL_HPW_MAX * MAX_BANK], S[OCL_HPW_MAX * MAX_BANK];
    __local float lg[OCL_HPW_MAX * MAX_G], ps[OCL_HPW_MAX * MAX_G], pz[OCL_HPW_MAX * MAX_G], gp[OCL_HPW_MAX * MAX_G];
    __local float red[OCL_HPW_MAX * MAX_WG];
    __local uint vb[MAX_G];

    for (uint x = lid; x < hpw * d; x += L) {
        qv[x / d * MAX_D + x % d] = q[q0 * d + x];
        o[x / d * MAX_D + x % d] = 0.0f;
    }
    if (pattern)
        for (uint x = lid; x < hpw * bank; x += L) S[x / bank * MAX_BANK + x % bank] = 0.0f;
    float m_run[OCL_HPW_MAX], l_run[OCL_HPW_MAX];
    for (uint j = 0; j < OCL_HPW_MAX; j++) {
        m_run[j] = NEG_INF;
        l_run[j] = 0.0f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    if (kind == 1u) { /* window tokens beg .. end-1 */
        __global const ushort *wk =
            (__global const ushort *)(windows + (size_t)table[toff + (size_t)H * nb + (size_t)H * PKV_OCL_MAX_CHUNKS + kvh] *
                                                    P[PP_WINDOW_BYTES]);
        __global const ushort *wv = wk + (size_t)R * d;
        for (uint t0 = beg; t0 < end && nb * G + t0 <= limit; t0 += MAX_G) {
            uint n = min((uint)MAX_G, end - t0);
            fp16_tile(wk + (size_t)t0 * d, wv + (size_t)t0 * d, n, nb * G + t0, limit, d, sc, hpw, qv, lg, o, m_run,
                      l_run, red);
        }
    } else {
        /* (barriers stay out of conditionals where possible: PoCL 3.1 mishandles some of them) */
        __global const float *qq = qcg + q0 * P[PP_BANK_STRIDE];
        if (pattern)
            for (uint x = lid; x < hpw * bank; x += L)
                qc[x / bank * MAX_BANK + x % bank] = qq[x / bank * P[PP_BANK_STRIDE] + x % bank];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint g = beg; g < end && g * G <= limit; g++) {
            __global const uchar *blk = blocks + (size_t)table[toff + (size_t)kvh * nb + g] * P[PP_BLOCK_BYTES];
            if (mode == 2u) {
                fp16_tile((__global const ushort *)(blk + P[PP_OFF_KFP16]), (__global const ushort *)(blk + P[PP_OFF_VFP16]),
                          G, g * G, limit, d, sc, hpw, qv, lg, o, m_run, l_run, red);
                continue;
            }
            __global const ushort *kscale = (__global const ushort *)(blk + P[PP_OFF_KSCALE]);
            __global const ushort *kzero = (__global const ushort *)(blk + P[PP_OFF_KZERO]);
            float zt[OCL_HPW_MAX]; /* the zero-point term, once per group */
            for (uint j = 0; j < OCL_HPW_MAX; j++) zt[j] = 0.0f;
            for (uint i = lid; i < d; i += L) {
                float s = ocl_ld_f16(kscale, i), z = ocl_ld_f16(kzero, i);
                for (uint j = 0; j < OCL_HPW_MAX; j++)
                    if (j < hpw) {
                        qs[j * MAX_D + i] = qv[j * MAX_D + i] * s;
                        zt[j] += qv[j * MAX_D + i] * z;
                    }
            }
            group_reduce(zt, hpw, 0, red); /* also publishes qs */
            const uint krow = P[PP_KROW], vrow = P[PP_VROW], vbits = P[PP_VBITS];
            __global const uint *kcodes = (__global const uint *)(blk + P[PP_OFF_KCODES]);
            for (uint t = lid; t < G; t += L) {
                float acc[OCL_HPW_MAX];
                const int visible = g * G + t <= limit;
                if (visible) code_dot(kcodes + (size_t)t * krow, qs, d, P[PP_KBITS], hpw, acc);
                const uint a = pattern ? blk[P[PP_OFF_KIDX] + t] : 0u;
                for (uint j = 0; j < OCL_HPW_MAX; j++)
                    if (j < hpw)
                        lg[j * MAX_G + t] = visible ? (acc[j] + zt[j] + (pattern ? qc[j * MAX_BANK + a] : 0.0f)) * sc : NEG_INF;
            }
            float alpha[OCL_HPW_MAX];
            softmax_step(lg, G, hpw, m_run, l_run, alpha, red);
            __global const ushort *vscale = (__global const ushort *)(blk + P[PP_OFF_VSCALE]);
            __global const ushort *vzero = (__global const ushort *)(blk + P[PP_OFF_VZERO]);
            for (uint t = lid; t < G; t += L) {
                float vs = ocl_ld_f16(vscale, t), vz = ocl_ld_f16(vzero, t);
                int gated = pattern && ((blk[P[PP_OFF_VMASK] + t / 8u] >> (t % 8u)) & 1u);
                vb[t] = pattern ? blk[P[PP_OFF_VIDX] + t] : 0u;
                for (uint j = 0; j < OCL_HPW_MAX; j++)
                    if (j < hpw) {
                        float p = lg[j * MAX_G + t];
                        ps[j * MAX_G + t] = p * vs;
                        pz[j * MAX_G + t] = p * vz;
                        gp[j * MAX_G + t] = gated ? p : 0.0f; /* weight of a gated token for its V pattern */
                    }
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            /* the histogram S[m] of softmax weights per V pattern: rescale, then the first token of
             * each bin adds the bin's tokens in order (deterministic; the cost does not grow with
             * the bank) */
            if (pattern)
                for (uint x = lid; x < hpw * bank; x += L) S[x / bank * MAX_BANK + x % bank] *= alpha[x / bank];
            barrier(CLK_LOCAL_MEM_FENCE);
            if (pattern) {
                for (uint t = lid; t < G; t += L) {
                    const uint m = vb[t];
                    uint first = 1u;
                    for (uint u = 0; u < t; u++) first &= vb[u] != m;
                    if (first) {
                        float acc[OCL_HPW_MAX];
                        for (uint j = 0; j < OCL_HPW_MAX; j++) acc[j] = 0.0f;
                        for (uint u = t; u < G; u++)
                            if (vb[u] == m)
                                for (uint j = 0; j < OCL_HPW_MAX; j++)
                                    if (j < hpw) acc[j] += gp[j * MAX_G + u];
                        for (uint j = 0; j < OCL_HPW_MAX; j++)
                            if (j < hpw) S[j * MAX_BANK + m] += acc[j];
                    }
                }
            }
            __global const uint *vcodes = (__global const uint *)(blk + P[PP_OFF_VCODES]);
            for (uint i = lid; i < d; i += L) {
                float acc[OCL_HPW_MAX];
                for (uint j = 0; j < OCL_HPW_MAX; j++) acc[j] = j < hpw ? o[j * MAX_D + i] * alpha[j] : 0.0f;
                for (uint t = 0; t < G; t++) {
                    float code = (float)row_code(vcodes + (size_t)t * vrow, d, vbits, i);
                    for (uint j = 0; j < OCL_HPW_MAX; j++)
                        if (j < hpw) acc[j] += ps[j * MAX_G + t] * code + pz[j * MAX_G + t];
                }
                for (uint j = 0; j < OCL_HPW_MAX; j++)
                    if (j < hpw) o[j * MAX_D + i] = acc[j];
            }
            barrier(CLK_LOCAL_MEM_FENCE);
        }
    }

    const size_t ps_stride = P[PP_PSTRIDE];
    __global float *out = part + (((size_t)item * q_len + qi) * nqh + qh0) * ps_stride;
    for (uint j = 0; j < OCL_HPW_MAX; j++)
        if (j < hpw && lid == 0u) {
            out[j * ps_stride] = m_run[j];
            out[j * ps_stride + 1u] = l_run[j];
        }
    for (uint x = lid; x < hpw * d; x += L) out[x / d * ps_stride + 2u + x % d] = o[x / d * MAX_D + x % d];
    if (pattern)
        for (uint x = lid; x < hpw * bank; x += L) out[x / bank * ps_stride + 2u + d + x % bank] = S[x / bank * MAX_BANK + x % bank];
}

/* One work-group per (sequence, query, query head): merges the partials of the sequence's items
 * (seq_items: [n_seqs][2] first item, item count), adds the V patterns' share and normalises. */
__kernel void ocl_reduce(__constant uint *P, __global const uint *seq_items, __global const uint *seqd,
                         __global const uint *table, __global const uchar *chunks, __global const float *part,
                         __global float *out)
{
    const uint d = P[PP_D], H = P[PP_H], q_len = P[PP_Q_LEN], nqh = P[PP_NQH], ps = P[PP_PSTRIDE];
    const uint lid = get_local_id(0), L = get_local_size(0);
    const uint gid = get_group_id(0), seq = gid / (q_len * nqh), qi = gid % (q_len * nqh) / nqh, qh = gid % nqh;
    const uint first = seq_items[seq * 2u], count = seq_items[seq * 2u + 1u];
    const uint nb = seqd[seq * 4u], bank = P[PP_MODE] == 0u ? seqd[seq * 4u + 2u] : 0u, toff = seqd[seq * 4u + 3u];
    const size_t stride = (size_t)q_len * nqh * ps, off = ((size_t)qi * nqh + qh) * ps;
    __local float S[MAX_BANK];
    float M = NEG_INF;
    for (uint j = 0; j < count; j++) {
        __global const float *p = part + (first + j) * stride + off;
        if (p[1] > 0.0f) M = fmax(M, p[0]);
    }
    float l = 0.0f;
    for (uint j = 0; j < count; j++) {
        __global const float *p = part + (first + j) * stride + off;
        if (p[1] > 0.0f) l += p[1] * exp(p[0] - M);
    }
    for (uint m = lid; m < bank; m += L) {
        float acc = 0.0f;
        for (uint j = 0; j < count; j++) {
            __global const float *p = part + (first + j) * stride + off;
            if (p[1] > 0.0f) acc += p[2u + d + m] * exp(p[0] - M);
        }
        S[m] = acc;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    __global const uint *ct = table + toff + (size_t)H * nb + (size_t)(qh / (nqh / H)) * PKV_OCL_MAX_CHUNKS;
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (uint i = lid; i < d; i += L) {
        float acc = 0.0f;
        for (uint j = 0; j < count; j++) {
            __global const float *p = part + (first + j) * stride + off;
            if (p[1] > 0.0f) acc += p[2u + i] * exp(p[0] - M);
        }
        for (uint m = 0; m < bank; m++) acc += S[m] * ocl_ld_f16(pattern_ptr(chunks, ct, P[PP_CHUNK_BYTES], d, 1u, m), i);
        out[(((size_t)seq * q_len + qi) * nqh + qh) * d + i] = acc * inv;
    }
}
