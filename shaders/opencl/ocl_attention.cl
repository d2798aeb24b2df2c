/* Attention over the compressed cache in one pass (flash-decoding): the OpenCL twin of
 * shaders/vulkan/attn_decode.comp, which explains the algorithm; the host cuts the op into items the
 * same way (src/core/attn_plan.c). Built once per cache shape with the shape as defines:
 * D, G (= WG, the work-group size), KBITS, VBITS, MODE (0 pattern, 1 direct, 2 fp16), NR (query
 * rows per work-group), CAP (bank capacity). Work-group g serves head g % H, tile (g / H) % tiles,
 * item g / (H tiles). Arithmetic is free here (contraction on): attention is judged against an
 * fp64 reference within a tolerance (docs/NUMERICS.md). */
#pragma OPENCL FP_CONTRACT ON

#define WG G
#define NRV ((NR + 3) / 4)
#define CH (NR > 4 ? 8 : 16)           /* channels per work-item in the V phase */
#define NG ((D + CH - 1) / CH)         /* channel groups */
#define NS (WG / NG)                   /* token slices */
#define CE ((D + WG - 1) / WG)         /* channels per work-item in per-channel loops */
#define SCAP (MODE == 0 ? CAP : 1)
#define KPB (KBITS == 3 ? 2 : KBITS)
#define VPB (VBITS == 3 ? 2 : VBITS)
#define KW0 ((D * KPB + 31) / 32)
#define VW0 ((D * VPB + 31) / 32)
#define KRW (KBITS == 3 ? KW0 + (D + 31) / 32 : KW0)
#define VRW (VBITS == 3 ? VW0 + (D + 31) / 32 : VW0)
#define PSTRIDE (D + 2)
#define LAZY 8.0f
#define NEG_INF (-INFINITY)

/* The op's parameters (P) and per-sequence words (seqd, src/core/attn_plan.h). */
#define A_H 0
#define A_NQH 1
#define A_QLEN 2
#define A_GQA 3
#define A_TILES 4
#define A_CPS 5
#define A_BLOCK 6   /* block bytes, then the section offsets in bytes: kcodes kscale kzero vcodes vscale vzero kidx vidx vmask */
#define A_CHUNK 16  /* chunk bytes */
#define A_WINDOW 17 /* window slot bytes */
#define A_R 18
#define A_SCALE 19  /* float bits: scale * log2(e) */

/* Exact float of code * 2^(sh % 16) from word w (wh = w >> 16): bits | 0x4B000000 is 2^23 + bits. */
OCL_HELPER float code_float(uint w, uint wh, uint sh, uint mask)
{
    uint src = sh < 16u ? w : wh;
    return as_float((src & (mask << (sh % 16u))) | 0x4B000000u) - 8388608.0f;
}
OCL_HELPER float int_float(uint code) { return as_float(code | 0x4B000000u) - 8388608.0f; }
/* The power of two code_float leaves on channel c of a b-bit row (3-bit codes: none). */
OCL_HELPER uint code_shift(uint c, uint bits) { return bits == 3u || MODE == 2 ? 0u : (c * bits) % 16u; }
OCL_HELPER float code_factor(uint c, uint bits) { return as_float((127u - code_shift(c, bits)) << 23); }
OCL_HELPER float code_unfactor(uint c, uint bits) { return as_float((127u + code_shift(c, bits)) << 23); }

OCL_HELPER float f16_at(__global const uint *buf, uint half_index) { return vload_half(half_index, (__global const half *)buf); }

/* Reduces a and b over the work-group for each row (max where a_max / b_max, else sum); every
 * work-item gets the results. Ends with a barrier. */
OCL_HELPER void group_reduce2(float *a, int a_max, float *b, int b_max, __local float2 *red)
{
    const uint lid = get_local_id(0);
    for (uint r = 0; r < NR; r++) red[lid * NR + r] = (float2)(a[r], b[r]);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (lid < s)
            for (uint r = 0; r < NR; r++) {
                float2 t = red[lid * NR + r], u = red[(lid + s) * NR + r];
                red[lid * NR + r] = (float2)(a_max ? fmax(t.x, u.x) : t.x + u.x, b_max ? fmax(t.y, u.y) : t.y + u.y);
            }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (uint r = 0; r < NR; r++) a[r] = red[r].x, b[r] = red[r].y;
    barrier(CLK_LOCAL_MEM_FENCE);
}

OCL_HELPER void hist_add(volatile __local uint *S, uint idx, float v)
{
    uint old = S[idx];
    for (;;) {
        uint prev = atomic_cmpxchg(&S[idx], old, as_uint(as_float(old) + v));
        if (prev == old) break;
        old = prev;
    }
}

/* The work-group's private state: running max, per-item sums, the V phase's accumulators. */
typedef struct attn_state {
    uint limit[NR];
    float m_run[NR], l_part[NR], pz_part[NR];
    float acc[NR][CH];
} attn_state;

typedef struct attn_local {
    float4 q[D * NRV];    /* q * scale * log2(e), [channel][row set] */
    float4 qs[D * NRV];   /* per chunk: q * s_K * 2^-shift */
    float4 w[G * NRV];    /* per chunk: p * s_V (quantized) or p (fp16) */
    uint S[NR * SCAP];    /* V histogram, float bits */
    float acc[WG * CH];   /* end of item: the slices' sums of one row */
    float2 red[WG * NR];
    uint last;
} attn_local;

/* One chunk of `count` tokens from token tok0: a quantized block at byte `blk_off` of blocks, or
 * fp16 K rows from half kh0 and V rows from half vh0 of `rows` (blocks or windows). */
OCL_HELPER void do_chunk(__local attn_local *L, attn_state *st, __global const uint *blocks,
                         __global const uint *rows, __global const float4 *qc_row, int quant, uint blk_off,
                         uint kh0, uint vh0, uint count, uint tok0, __constant uint *P)
{
    const uint lid = get_local_id(0), t = lid;
    const uint base = blk_off / 4;
    float zt[NR], lg[NR], vz = 0.0f, vs = 1.0f;
    uint va = 0, gate = 0;
    for (uint r = 0; r < NR; r++) zt[r] = 0.0f;
    if (quant) { /* 1. metadata */
        for (uint e = 0; e < CE; e++) {
            uint i = lid + e * WG;
            if (i < D) {
                float s = f16_at(blocks, base * 2 + P[A_BLOCK + 2] / 2 + i) * code_factor(i, KBITS);
                float z = f16_at(blocks, base * 2 + P[A_BLOCK + 3] / 2 + i);
                for (uint v = 0; v < NRV; v++) {
                    float4 q = L->q[i * NRV + v];
                    L->qs[i * NRV + v] = q * s;
                    float qa[4] = {q.x, q.y, q.z, q.w};
                    for (uint j = 0; j < 4; j++)
                        if (4 * v + j < NR) zt[4 * v + j] += qa[j] * z;
                }
            }
        }
        if (t < count) {
            vs = f16_at(blocks, base * 2 + P[A_BLOCK + 5] / 2 + t);
            vz = f16_at(blocks, base * 2 + P[A_BLOCK + 6] / 2 + t);
            if (MODE == 0) {
                va = (blocks[base + P[A_BLOCK + 8] / 4 + t / 4] >> (8 * (t % 4))) & 255u;
                gate = (blocks[base + P[A_BLOCK + 9] / 4 + t / 32] >> (t % 32)) & 1u;
            }
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    /* 2. logits of token t */
    float4 dot[2] = {(float4)(0.0f), (float4)(0.0f)};
    if (t < count) {
        if (quant) {
            __global const uint *row = blocks + base + P[A_BLOCK + 1] / 4 + t * KRW;
            const uint PER = 32 / KPB, MASK = (1u << KPB) - 1u;
            for (uint k = 0; k < KW0; k++) {
                uint w = row[k], wh = w >> 16;
                uint hi = KBITS == 3 ? row[KW0 + k / 2] >> ((k % 2) * 16) : 0u;

                for (uint c = 0; c < PER; c++) {
                    uint i = k * PER + c;
                    if (i < D) {
                        float cf = KBITS == 3 ? int_float(((w >> (2 * c)) & 3u) | (((hi >> c) & 1u) << 2))
                                              : code_float(w, wh, c * KPB, MASK);
                        for (uint v = 0; v < NRV; v++) dot[v] += L->qs[i * NRV + v] * cf;
                    }
                }
            }
            if (MODE == 0) {
                uint ka = (blocks[base + P[A_BLOCK + 7] / 4 + t / 4] >> (8 * (t % 4))) & 255u;
                for (uint v = 0; v < NRV; v++) dot[v] += qc_row[ka * NRV + v];
            }
        } else {
            for (uint k = 0; k < D / 8; k++) {
                float8 x = vload_half8(0, (__global const half *)rows + kh0 + t * D + 8 * k);
                float xa[8] = {x.s0, x.s1, x.s2, x.s3, x.s4, x.s5, x.s6, x.s7};

                for (uint j = 0; j < 8; j++)
                    for (uint v = 0; v < NRV; v++) dot[v] += L->q[(8 * k + j) * NRV + v] * xa[j];
            }
        }
    }
    for (uint r = 0; r < NR; r++) {
        float4 d4 = dot[r / 4];
        float da[4] = {d4.x, d4.y, d4.z, d4.w};
        lg[r] = t >= count || tok0 + t > st->limit[r] ? NEG_INF : da[r % 4];
    }
    /* 3. softmax bookkeeping: the chunk max (with the zero-point term), the lazy running max */
    float bm[NR];
    for (uint r = 0; r < NR; r++) bm[r] = lg[r];
    group_reduce2(bm, 1, zt, 0, L->red);
    int rescale = 0;
    float alpha[NR];
    for (uint r = 0; r < NR; r++) {
        float top = bm[r] + zt[r];
        alpha[r] = 1.0f;
        if (top > st->m_run[r] + LAZY) {
            alpha[r] = exp2(st->m_run[r] - top);
            st->m_run[r] = top;
            rescale = 1;
            st->l_part[r] *= alpha[r];
            st->pz_part[r] *= alpha[r];
            for (uint c = 0; c < CH; c++) st->acc[r][c] *= alpha[r];
        }
        float p = lg[r] == NEG_INF ? 0.0f : exp2(lg[r] + zt[r] - st->m_run[r]);
        lg[r] = p;
        st->l_part[r] += p;
        st->pz_part[r] += p * vz;
    }
    if (MODE == 0 && rescale) { /* uniform: every work-item saw the same maxima */
        for (uint e = lid; e < NR * SCAP; e += WG) L->S[e] = as_uint(as_float(L->S[e]) * alpha[e / SCAP]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (t < count) {
        float wa[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (uint r = 0; r < NR; r++) wa[r] = lg[r] * vs;
        for (uint v = 0; v < NRV; v++) L->w[t * NRV + v] = (float4)(wa[4 * v], wa[4 * v + 1], wa[4 * v + 2], wa[4 * v + 3]);
        if (MODE == 0 && quant && gate)
            for (uint r = 0; r < NR; r++)
                if (lg[r] != 0.0f) hist_add(L->S, r * SCAP + va, lg[r]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    /* 4. V: channel group g over the tokens of slice s */
    const uint g = lid % NG, s = lid / NG;
    if (s >= NS) return;
    for (uint tt = s; tt < count; tt += NS) {
        float wt[8];
        for (uint v = 0; v < NRV; v++) {
            float4 w4 = L->w[tt * NRV + v];
            wt[4 * v] = w4.x, wt[4 * v + 1] = w4.y, wt[4 * v + 2] = w4.z, wt[4 * v + 3] = w4.w;
        }
        if (quant) {
            const uint MASK = (1u << VPB) - 1u, WPG = (CH * VPB + 31) / 32, bit0 = g * CH * VPB, hbit = g * CH;
            __global const uint *row = blocks + base + P[A_BLOCK + 4] / 4 + tt * VRW;
            uint wv[4];
            for (uint j = 0; j < WPG; j++) wv[j] = row[bit0 / 32 + j] >> (bit0 % 32);
            uint hi = VBITS == 3 ? row[VW0 + hbit / 32] >> (hbit % 32) : 0u;

            for (uint c = 0; c < CH; c++) {
                uint sh = c * VPB;
                float cf = VBITS == 3 ? int_float(((wv[0] >> sh) & 3u) | (((hi >> c) & 1u) << 2))
                                      : code_float(wv[sh / 32], wv[sh / 32] >> 16, sh % 32, MASK);
                for (uint r = 0; r < NR; r++) st->acc[r][c] += wt[r] * cf;
            }
        } else {
            __global const half *x = (__global const half *)rows + vh0 + tt * D + g * CH;

            for (uint c = 0; c < CH; c++) {
                float xv = g * CH + c < D ? vload_half(c, x) * code_unfactor(g * CH + c, VBITS) : 0.0f;
                for (uint r = 0; r < NR; r++) st->acc[r][c] += wt[r] * xv;
            }
        }
    }
}

__kernel void ocl_attn_qc(__constant uint *P, __global const uint *seqd, __global const uint *table,
                          __global const float *q, __global const ushort *chunks, __global float4 *qc)
{
    __local float4 q_s[D * NRV];
    const uint lid = get_local_id(0), grp = get_group_id(0);
    const uint H = P[A_H], tiles = P[A_TILES], head = grp % H, tile = (grp / H) % tiles, seq = grp / (H * tiles);
    const uint gqa = P[A_GQA], q_len = P[A_QLEN], nqh = P[A_NQH], rows = q_len * gqa;
    const float scale = as_float(P[A_SCALE]);
    for (uint e = lid; e < D * NRV * 4; e += get_local_size(0)) {
        uint i = e / (NRV * 4), r = e % (NRV * 4), gr = tile * NR + r;
        float x = 0.0f;
        if (r < NR && gr < rows) x = q[((seq * q_len + gr / gqa) * nqh + head * gqa + gr % gqa) * D + i] * scale;
        ((__local float *)q_s)[e] = x;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    __global const uint *sd = seqd + seq * 8;
    __global const uint *ct = table + sd[3] + H * sd[0] + head * PKV_OCL_MAX_CHUNKS;
    for (uint m = lid; m < sd[2]; m += get_local_size(0)) {
        __global const ushort *pat = pattern_ptr((__global const uchar *)chunks, ct, P[A_CHUNK], D, 0, m);
        float4 dot[2] = {(float4)(0.0f), (float4)(0.0f)};
        for (uint i = 0; i < D; i++) {
            float x = vload_half(i, (__global const half *)pat);
            for (uint v = 0; v < NRV; v++) dot[v] += q_s[i * NRV + v] * x;
        }
        for (uint v = 0; v < NRV; v++) qc[((seq * H + head) * tiles + tile) * CAP * NRV + m * NRV + v] = dot[v];
    }
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void ocl_attn(__constant uint *P, __global const uint *seqd, __global const uint *items, __global const uint *table,
              __global const float *q, __global const uint *blocks, __global const uint *windows,
              __global const ushort *chunks, __global const float4 *qc, volatile __global uint *part,
              volatile __global uint *cnt, __global float *out)
{
    __local attn_local L;
    const uint lid = get_local_id(0), grp = get_group_id(0);
    const uint H = P[A_H], tiles = P[A_TILES], head = grp % H, tile = (grp / H) % tiles, item = grp / (H * tiles);
    const uint gqa = P[A_GQA], q_len = P[A_QLEN], nqh = P[A_NQH], rows = q_len * gqa;
    const uint seq = items[2 * item], split = items[2 * item + 1];
    __global const uint *sd = seqd + seq * 8;
    const uint nb = sd[0], nw = sd[1], bank = sd[2], nsplit = sd[4];
    __global const uint *tbl = table + sd[3];
    const uint T = nb * G + nw, n_chunks = nb + (nw + G - 1) / G;
    const float scale = as_float(P[A_SCALE]);

    attn_state st;
    uint row_of[NR];
    for (uint r = 0; r < NR; r++) {
        uint gr = min(tile * NR + r, rows - 1);
        row_of[r] = (seq * q_len + gr / gqa) * nqh + head * gqa + gr % gqa;
        st.limit[r] = T - q_len + gr / gqa;
        st.m_run[r] = NEG_INF;
        st.l_part[r] = st.pz_part[r] = 0.0f;
        for (uint c = 0; c < CH; c++) st.acc[r][c] = 0.0f;
    }
    for (uint e = lid; e < D * NRV * 4; e += WG) {
        uint i = e / (NRV * 4), r = e % (NRV * 4);
        ((__local float *)L.q)[e] = r < NR && tile * NR + r < rows ? q[row_of[r] * D + i] * scale : 0.0f;
    }
    if (MODE == 0)
        for (uint e = lid; e < NR * SCAP; e += WG) L.S[e] = 0u;
    barrier(CLK_LOCAL_MEM_FENCE);

    __global const float4 *qc_row = qc + ((seq * H + head) * tiles + tile) * CAP * NRV;
    const uint c1 = min(n_chunks, (split + 1) * P[A_CPS]);
    for (uint c = split * P[A_CPS]; c < c1; c++) {
        if (c < nb) {
            uint off = tbl[head * nb + c] * P[A_BLOCK];
            if (MODE == 2) do_chunk(&L, &st, blocks, blocks, qc_row, 0, 0, off / 2 + P[A_BLOCK + 1] / 2, off / 2 + P[A_BLOCK + 4] / 2, G, c * G, P);
            else do_chunk(&L, &st, blocks, blocks, qc_row, 1, off, 0, 0, G, c * G, P);
        } else {
            uint w0 = (c - nb) * G, wb = tbl[H * nb + H * PKV_OCL_MAX_CHUNKS + head] * (P[A_WINDOW] / 2);
            do_chunk(&L, &st, blocks, windows, qc_row, 0, 0, wb + w0 * D, wb + (P[A_R] + w0) * D, min((uint)G, nw - w0), c * G, P);
        }
    }

    /* the item's partial: l and the zero-point sums, the slices' V sums, the pattern fold */
    float l_tot[NR], pz_tot[NR];
    for (uint r = 0; r < NR; r++) l_tot[r] = st.l_part[r], pz_tot[r] = st.pz_part[r];
    group_reduce2(l_tot, 0, pz_tot, 0, L.red);
    float o[NR][CE];
    const uint g = lid % NG, s = lid / NG;
    for (uint r = 0; r < NR; r++) {
        if (s < NS)
            for (uint c = 0; c < CH; c++) {
                uint i = g * CH + c;
                if (i < D) L.acc[s * D + i] = st.acc[r][c] * code_factor(i, VBITS);
            }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint e = 0; e < CE; e++) {
            uint i = lid + e * WG;
            float sum = pz_tot[r];
            if (i < D)
                for (uint k = 0; k < NS; k++) sum += L.acc[k * D + i];
            o[r][e] = sum;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (MODE == 0) { /* + sum_m S[m] P_V[m], over the patterns this item's tokens used */
        __global const uint *ct = tbl + H * nb + head * PKV_OCL_MAX_CHUNKS;
        for (uint m = 0; m < bank; m++) {
            float Sm[NR];
            int any = 0;
            for (uint r = 0; r < NR; r++) {
                Sm[r] = as_float(L.S[r * SCAP + m]);
                any |= Sm[r] != 0.0f;
            }
            if (!any) continue;
            __global const ushort *pat = pattern_ptr((__global const uchar *)chunks, ct, P[A_CHUNK], D, 1, m);
            for (uint e = 0; e < CE; e++) {
                uint i = lid + e * WG;
                if (i < D) {
                    float x = vload_half(i, (__global const half *)pat);
                    for (uint r = 0; r < NR; r++) o[r][e] += Sm[r] * x;
                }
            }
        }
    }

    if (nsplit == 1) { /* the whole sequence in one item: normalise and write out */
        for (uint r = 0; r < NR && tile * NR + r < rows; r++) {
            float inv = l_tot[r] > 0.0f ? 1.0f / l_tot[r] : 0.0f;
            for (uint e = 0; e < CE; e++) {
                uint i = lid + e * WG;
                if (i < D) out[row_of[r] * D + i] = o[r][e] * inv;
            }
        }
        return;
    }
    const uint slot = (((sd[5] + split) * H + head) * tiles + tile) * NR;
    for (uint r = 0; r < NR; r++) {
        volatile __global uint *p = part + (slot + r) * PSTRIDE;
        if (lid == 0) p[0] = as_uint(st.m_run[r]), p[1] = as_uint(l_tot[r]);
        for (uint e = 0; e < CE; e++) {
            uint i = lid + e * WG;
            if (i < D) p[2 + i] = as_uint(o[r][e]);
        }
    }
    /* the last item of this (sequence, kv head, tile) to finish merges all of them */
    mem_fence(CLK_GLOBAL_MEM_FENCE);
    barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
    volatile __global uint *counter = cnt + (seq * H + head) * tiles + tile;
    if (lid == 0) L.last = atomic_inc(counter) == nsplit - 1 ? 1u : 0u;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (!L.last) return;
    mem_fence(CLK_GLOBAL_MEM_FENCE);
    const uint first = ((sd[5] * H + head) * tiles + tile) * NR, step = H * tiles * NR * PSTRIDE;
    for (uint r = 0; r < NR && tile * NR + r < rows; r++) {
        volatile __global uint *p0 = part + (first + r) * PSTRIDE;
        float M = NEG_INF, Lsum = 0.0f;
        for (uint k = 0; k < nsplit; k++) M = fmax(M, as_float(p0[k * step]));
        for (uint k = lid; k < nsplit; k += WG) {
            float mk = as_float(p0[k * step]);
            L.acc[k] = mk == NEG_INF ? 0.0f : exp2(mk - M);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint k = 0; k < nsplit; k++) Lsum += L.acc[k] * as_float(p0[k * step + 1]);
        float inv = Lsum > 0.0f ? 1.0f / Lsum : 0.0f;
        for (uint e = 0; e < CE; e++) {
            uint i = lid + e * WG;
            if (i < D) {
                float sum = 0.0f;
                for (uint k = 0; k < nsplit; k++) sum += L.acc[k] * as_float(p0[k * step + 2 + i]);
                out[row_of[r] * D + i] = sum * inv;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) *counter = 0u; /* ready for the next call */
}
