/* Attention on the compressed cache, split-K (flash-decoding). ocl_attn_qc makes the q.C_K table
 * of each query once; ocl_attn gives one partial softmax (running max, sum, unnormalised output,
 * and in PATTERN mode the histogram S[m] of softmax weights per V pattern) per (split item, query,
 * query head); ocl_reduce merges a sequence's items and adds sum_m S[m] C_V[m] once. An item is a
 * run of blocks or a run of window tokens. q_len > 1 uses the same kernels with the causal limit:
 * query i of a sequence with T tokens sees tokens 0 .. T - q_len + i. Work-group size: a power of 2. */

#define NEG_INF (-INFINITY)

/* Sum over the work-group of v (power-of-two size); red holds get_local_size(0) floats. */
OCL_HELPER float group_sum(float v, __local float *red)
{
    const uint lid = get_local_id(0), L = get_local_size(0);
    red[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = L / 2u; s > 0u; s >>= 1) {
        if (lid < s) red[lid] += red[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = red[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

/* Online-softmax step over the n logits in lg (NEG_INF = masked): turns lg into weights
 * p = exp(lg - m_new), updates the running max and sum, returns the factor for old sums. */
OCL_HELPER float softmax_step(__local float *lg, uint n, float *m_run, float *l_run)
{
    float mb = NEG_INF;
    for (uint t = 0; t < n; t++) mb = fmax(mb, lg[t]);
    float m_new = fmax(*m_run, mb);
    float alpha = *m_run == NEG_INF ? 0.0f : exp(*m_run - m_new);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint t = get_local_id(0); t < n; t += get_local_size(0))
        lg[t] = lg[t] == NEG_INF ? 0.0f : exp(lg[t] - m_new);
    barrier(CLK_LOCAL_MEM_FENCE);
    float sum = 0.0f;
    for (uint t = 0; t < n; t++) sum += lg[t];
    if (m_new != NEG_INF) *m_run = m_new;
    *l_run = *l_run * alpha + sum;
    return alpha;
}

/* Tokens in fp16 rows (window, or FP16-mode blocks): n tokens, K rows k, V rows v (stride d),
 * first token index tok0, visible up to `limit`. */
OCL_HELPER void fp16_tile(__global const ushort *k, __global const ushort *v, uint n, uint tok0, uint limit, uint d,
                      float sc, __local const float *qv, __local float *lg, __local float *o, float *m_run,
                      float *l_run)
{
    const uint lid = get_local_id(0), L = get_local_size(0);
    for (uint t = lid; t < n; t += L) {
        if (tok0 + t > limit) { lg[t] = NEG_INF; continue; }
        float acc = 0.0f;
        __global const half *row = (__global const half *)(k + (size_t)t * d);
        for (uint j = 0; j < d / 8u; j++) { /* d is a multiple of 8 */
            float8 kv = vload_half8(j, row), qq = vload8(j, qv);
            acc += dot(kv.lo, qq.lo) + dot(kv.hi, qq.hi);
        }
        lg[t] = sc * acc;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    float alpha = softmax_step(lg, n, m_run, l_run);
    for (uint i = lid; i < d; i += L) {
        float acc = o[i] * alpha;
        for (uint t = 0; t < n; t++) acc += lg[t] * ocl_ld_f16(v, (size_t)t * d + i);
        o[i] = acc;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
}

/* Dot of qs with the codes of one K row. */
OCL_HELPER float code_dot(__global const uint *row, __local const float *qs, uint d, uint bits)
{
    const uint pb = pkv_plane_bits(bits, 0u), per = 32u / pb, mask = (1u << pb) - 1u;
    float acc = 0.0f;
    for (uint c0 = 0; c0 < d; c0 += per) {
        uint w = row[c0 / per];
        for (uint k = 0; k < per && c0 + k < d; k++) acc += qs[c0 + k] * (float)((w >> (k * pb)) & mask);
    }
    if (bits == 3u) {
        __global const uint *hi = row + pkv_plane_words(d, 2u);
        for (uint c0 = 0; c0 < d; c0 += 32u) {
            uint w = hi[c0 / 32u];
            for (uint k = 0; k < 32u && c0 + k < d; k++) acc += qs[c0 + k] * (float)(((w >> k) & 1u) << 2);
        }
    }
    return acc;
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
    const uint q_len = P[PP_Q_LEN], nqh = P[PP_NQH];
    const float sc = as_float(P[PP_SCALE]);
    const uint lid = get_local_id(0), L = get_local_size(0);
    const uint gid = get_group_id(0), item = gid / (q_len * nqh), qi = gid % (q_len * nqh) / nqh, qh = gid % nqh;
    const uint seq = items[item * 4u], kind = items[item * 4u + 1u], beg = items[item * 4u + 2u],
               end = items[item * 4u + 3u];
    const uint nb = seqd[seq * 4u], nw = seqd[seq * 4u + 1u], bank = seqd[seq * 4u + 2u], toff = seqd[seq * 4u + 3u];
    const uint kvh = qh / (nqh / H);
    const uint limit = nb * G + nw - q_len + qi;
    const int pattern = mode == 0u;

    __local float qv[MAX_D], qs[MAX_D], o[MAX_D], qc[MAX_BANK], S[MAX_BANK];
    __local float lg[MAX_G], ps[MAX_G], pz[MAX_G], gp[MAX_G], red[256];
    __local uint vb[MAX_G];

    for (uint i = lid; i < d; i += L) {
        qv[i] = q[(((size_t)seq * q_len + qi) * nqh + qh) * d + i];
        o[i] = 0.0f;
    }
    if (pattern)
        for (uint m = lid; m < bank; m += L) S[m] = 0.0f;
    float m_run = NEG_INF, l_run = 0.0f;
    barrier(CLK_LOCAL_MEM_FENCE);

    if (kind == 1u) { /* window tokens beg .. end-1 */
        __global const ushort *wk =
            (__global const ushort *)(windows + (size_t)table[toff + (size_t)H * nb + (size_t)H * PKV_OCL_MAX_CHUNKS + kvh] *
                                                    P[PP_WINDOW_BYTES]);
        __global const ushort *wv = wk + (size_t)R * d;
        for (uint t0 = beg; t0 < end && nb * G + t0 <= limit; t0 += MAX_G) {
            uint n = min((uint)MAX_G, end - t0);
            fp16_tile(wk + (size_t)t0 * d, wv + (size_t)t0 * d, n, nb * G + t0, limit, d, sc, qv, lg, o, &m_run,
                      &l_run);
        }
    } else {
        if (pattern) {
            __global const float *qq = qcg + (((size_t)seq * q_len + qi) * nqh + qh) * P[PP_BANK_STRIDE];
            for (uint m = lid; m < bank; m += L) qc[m] = qq[m];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        for (uint g = beg; g < end && g * G <= limit; g++) {
            __global const uchar *blk = blocks + (size_t)table[toff + (size_t)kvh * nb + g] * P[PP_BLOCK_BYTES];
            if (mode == 2u) {
                fp16_tile((__global const ushort *)(blk + P[PP_OFF_KFP16]), (__global const ushort *)(blk + P[PP_OFF_VFP16]),
                          G, g * G, limit, d, sc, qv, lg, o, &m_run, &l_run);
                continue;
            }
            __global const ushort *kscale = (__global const ushort *)(blk + P[PP_OFF_KSCALE]);
            __global const ushort *kzero = (__global const ushort *)(blk + P[PP_OFF_KZERO]);
            float zpart = 0.0f;
            for (uint i = lid; i < d; i += L) {
                qs[i] = qv[i] * ocl_ld_f16(kscale, i);
                zpart += qv[i] * ocl_ld_f16(kzero, i);
            }
            float zt = group_sum(zpart, red); /* the zero-point term, once per group */
            const uint krow = P[PP_KROW], vrow = P[PP_VROW], vbits = P[PP_VBITS];
            __global const uint *kcodes = (__global const uint *)(blk + P[PP_OFF_KCODES]);
            for (uint t = lid; t < G; t += L) {
                if (g * G + t > limit) { lg[t] = NEG_INF; continue; }
                float acc = code_dot(kcodes + (size_t)t * krow, qs, d, P[PP_KBITS]) + zt;
                if (pattern) acc += qc[blk[P[PP_OFF_KIDX] + t]];
                lg[t] = acc * sc;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            float alpha = softmax_step(lg, G, &m_run, &l_run);
            __global const ushort *vscale = (__global const ushort *)(blk + P[PP_OFF_VSCALE]);
            __global const ushort *vzero = (__global const ushort *)(blk + P[PP_OFF_VZERO]);
            for (uint t = lid; t < G; t += L) {
                ps[t] = lg[t] * ocl_ld_f16(vscale, t);
                pz[t] = lg[t] * ocl_ld_f16(vzero, t);
                if (pattern) { /* weight of a gated token for its V pattern's histogram bin */
                    gp[t] = (blk[P[PP_OFF_VMASK] + t / 8u] >> (t % 8u)) & 1u ? lg[t] : 0.0f;
                    vb[t] = blk[P[PP_OFF_VIDX] + t];
                }
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            if (pattern) /* histogram S[m] of softmax weights: one bin per work-item, deterministic */
                for (uint m = lid; m < bank; m += L) {
                    float acc = S[m] * alpha;
                    for (uint t = 0; t < G; t++) acc += vb[t] == m ? gp[t] : 0.0f;
                    S[m] = acc;
                }
            __global const uint *vcodes = (__global const uint *)(blk + P[PP_OFF_VCODES]);
            for (uint i = lid; i < d; i += L) {
                float acc = o[i] * alpha;
                for (uint t = 0; t < G; t++) acc += ps[t] * (float)row_code(vcodes + (size_t)t * vrow, d, vbits, i) + pz[t];
                o[i] = acc;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
        }
    }

    __global float *out = part + ((size_t)item * q_len * nqh + (size_t)qi * nqh + qh) * P[PP_PSTRIDE];
    if (lid == 0u) {
        out[0] = m_run;
        out[1] = l_run;
    }
    for (uint i = lid; i < d; i += L) out[2u + i] = o[i];
    if (pattern)
        for (uint m = lid; m < bank; m += L) out[2u + d + m] = S[m];
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
