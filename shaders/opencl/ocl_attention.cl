/* Attention over the compressed cache in one pass (flash-decoding): the OpenCL twin of
 * shaders/vulkan/attn_decode.comp, which explains the algorithm; the host cuts the op into items the
 * same way (src/core/attn_plan.c). Built once per cache shape with the shape as defines:
 * D, G (= WG, the work-group size), KBITS, VBITS, MODE (0 pattern, 1 direct, 2 fp16), NR (query
 * rows per work-group), CAP (bank capacity), STAGE_V and STAGE_K (V, K codes staged in local memory), PREFETCH
 * (the next step's loads issued ahead), VB (fp16 V rows in flight per work-item),
 * VCH (channels per work-item in the V phase), BPS (chunks per step: the work-group is BPS * G
 * work-items). Work-group g
 * serves head g % H, tile (g / H) % tiles, item g / (H tiles). Arithmetic is free here (contraction
 * on): attention is judged against an fp64 reference within a tolerance (docs/NUMERICS.md). */
#pragma OPENCL FP_CONTRACT ON

#define WG (BPS * G)                   /* one token per work-item; a step is BPS chunks */
#define NZ (NR * BPS)
#define NRV ((NR + 3) / 4)
#define CH VCH                         /* channels per work-item in the V phase */
#define NG ((D + CH - 1) / CH)         /* channel groups */
#define NS (WG / NG)                   /* token slices */
#define CE ((D + WG - 1) / WG)         /* channels per work-item in per-channel loops */
#define CEB ((D + G - 1) / G)          /* (chunk, channel) pairs per work-item in a step's metadata */
#define SCAP (MODE == 0 ? CAP : 1)
#define KPB (KBITS == 3 ? 2 : KBITS)
#define VPB (VBITS == 3 ? 2 : VBITS)
#define KW0 ((D * KPB + 31) / 32)
#define VW0 ((D * VPB + 31) / 32)
#define KRW (KBITS == 3 ? KW0 + (D + 31) / 32 : KW0)
#define VRW (VBITS == 3 ? VW0 + (D + 31) / 32 : VW0)
#define KQ ((KRW + 3) / 4)
#define K_IN_REGS (!STAGE_K && KRW % 4 == 0 && KQ <= 4)
#define KSEC4 (MODE == 2 ? G * D / 8 : (G * KRW + 3) / 4) /* 16-byte words of a chunk's staged K: codes, or fp16 rows */
#define KD8 (D / 8)                    /* fp16: 16-byte words of a K row */
#define KSWZ (KD8 % 8 == 0 ? 7u : 0u)  /* fp16 staged K: word k of row t at k ^ (t & KSWZ) (local memory banks) */
#define KQS (STAGE_K ? (BPS * KSEC4 + WG - 1) / WG : 1)
#define VSEC (MODE == 2 || !STAGE_V ? 4 : G * VRW)
#define VQ ((BPS * VSEC / 4 + WG - 1) / WG)
#define PSTRIDE (D + 4)                /* a partial result: m, l, 2 unused, o[D] */
#define NQ4 (D / 4)                    /* channel quads, for the pattern fold */
#define PS_M (WG / NQ4 < WG * CH / (NR * D) ? WG / NQ4 : WG * CH / (NR * D))
#define PS (PS_M > 1 ? PS_M : 1)       /* pattern slices of the fold */
#define ACC_N (WG * CH > NR * D ? WG * CH : NR * D)
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
#define A_FLAGS 20  /* PKV_ATTN_* of src/core/attn_plan.h */
#define A_QC_BLOCKS 21 /* work-groups of 64 patterns per (sequence, head, tile) in ocl_attn_qc */
#define F_SEPARATE_MERGE 1u
#define F_SKIP_V 2u
#define F_SKIP_HIST 4u
#define F_SKIP_MERGE 8u
#define F_SKIP_K 16u

/* Exact float of code * 2^(sh % 16) from word w (wh = w >> 16): bits | 0x4B000000 is 2^23 + bits. */
OCL_HELPER float code_float(uint w, uint wh, uint sh, uint mask)
{
    uint src = sh < 16u ? w : wh;
    return as_float((src & (mask << (sh % 16u))) | 0x4B000000u) - 8388608.0f;
}
OCL_HELPER float int_float(uint code) { return as_float(code | 0x4B000000u) - 8388608.0f; }
/* The power of two code_float leaves on channel c of a b-bit row (3-bit codes: none). */
OCL_HELPER uint code_shift(uint c, uint bits) { return MODE == 2 || bits == 3u ? 0u : (c * bits) % 16u; }
OCL_HELPER float code_factor(uint c, uint bits) { return as_float((127u - code_shift(c, bits)) << 23); }
OCL_HELPER float code_unfactor(uint c, uint bits) { return as_float((127u + code_shift(c, bits)) << 23); }

/* 8 halves of an fp16 row at a multiple of 8 halves: rows start 16-byte aligned when D % 8 == 0, so
 * one 16-byte load (vload_half8 may split into 2-byte loads when it cannot prove the alignment). */
OCL_HELPER float8 load_half8(__global const half *p)
{
#if D % 8 == 0
    return vloada_half8(0, p);
#else
    return vload_half8(0, p);
#endif
}

/* The CH halves of channels c0.. of an fp16 row at p (0 past D, or all 0 when !ok) */
OCL_HELPER void load_halves(__global const half *p, int ok, uint c0, float *x)
{
#if D % 8 == 0 && CH % 8 == 0
    for (uint c8 = 0; c8 < CH / 8; c8++) {
        float8 v = ok && c0 + 8 * c8 < D ? load_half8(p + 8 * c8) : (float8)(0.0f);
        x[8 * c8] = v.s0, x[8 * c8 + 1] = v.s1, x[8 * c8 + 2] = v.s2, x[8 * c8 + 3] = v.s3;
        x[8 * c8 + 4] = v.s4, x[8 * c8 + 5] = v.s5, x[8 * c8 + 6] = v.s6, x[8 * c8 + 7] = v.s7;
    }
#else
    for (uint c = 0; c < CH; c++) x[c] = ok && c0 + c < D ? vload_half(c, p) : 0.0f;
#endif
}

OCL_HELPER float f16_at(__global const uint *buf, uint half_index) { return vload_half(half_index, (__global const half *)buf); }
/* a[j] for a chunk index known only at run time (keeps a[] in registers) */
OCL_HELPER uint chunk_pick(const uint *a, uint j)
{
    uint v = a[0];
    for (uint b = 1; b < BPS; b++) v = j == b ? a[b] : v;
    return v;
}

OCL_HELPER float pick(const float *a, uint r)
{
    float v = a[0];
    for (uint j = 1; j < NR; j++) v = r == j ? a[j] : v;
    return v;
}

/* Reduces a[0..n) and b[0..n) over the work-group (max where a_max / b_max, else sum; n <= NZ);
 * every work-item gets the results. Ends with a barrier. */
OCL_HELPER void group_reduce2(float *a, int a_max, float *b, int b_max, __local float2 *red, uint n)
{
    const uint lid = get_local_id(0);
    for (uint r = 0; r < n; r++) red[lid * n + r] = (float2)(a[r], b[r]);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (lid < s)
            for (uint r = 0; r < n; r++) {
                float2 t = red[lid * n + r], u = red[(lid + s) * n + r];
                red[lid * n + r] = (float2)(a_max ? fmax(t.x, u.x) : t.x + u.x, b_max ? fmax(t.y, u.y) : t.y + u.y);
            }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (uint r = 0; r < n; r++) a[r] = red[r].x, b[r] = red[r].y;
    barrier(CLK_LOCAL_MEM_FENCE);
}

/* The V histogram S[r][m]: the sum of p over a pattern's gated tokens (attn_decode.comp says why).
 * HIST_FIXED: 64-bit fixed point in units of 2^-32, low words in S, high words in Sh, added with
 * integer atomics; else float bits added by compare-and-swap. */
#define HIST_ONE 4294967296.0f
OCL_HELPER void hist_add(volatile __local uint *S, volatile __local uint *Sh, uint idx, float v)
{
#if HIST_FIXED
    uint hi = (uint)v, lo = (uint)((v - (float)hi) * HIST_ONE);
    uint old = atomic_add(&S[idx], lo);
    hi += old + lo < old ? 1u : 0u;
    if (hi != 0u) atomic_add(&Sh[idx], hi);
#else
    (void)Sh;
    uint old = S[idx];
    for (;;) {
        uint prev = atomic_cmpxchg(&S[idx], old, as_uint(as_float(old) + v));
        if (prev == old) break;
        old = prev;
    }
#endif
}
OCL_HELPER float hist_get(__local const uint *S, __local const uint *Sh, uint idx)
{
#if HIST_FIXED
    return (float)Sh[idx] + (float)S[idx] * (1.0f / HIST_ONE);
#else
    (void)Sh;
    return as_float(S[idx]);
#endif
}
OCL_HELPER void hist_set(__local uint *S, __local uint *Sh, uint idx, float v)
{
#if HIST_FIXED
    uint hi = (uint)v;
    Sh[idx] = hi;
    S[idx] = (uint)((v - (float)hi) * HIST_ONE);
#else
    (void)Sh;
    S[idx] = as_uint(v);
#endif
}

/* The work-group's private state: running max, per-item sums, the V phase's accumulators. */
typedef struct attn_state {
    uint limit[NR];
    float m[NR], l[NR], pz[NR];
    float acc[NR][CH];
} attn_state;

/* The chunks of a step: what each is, where, how many tokens, the first token's position. */
#define CK_NONE 0u
#define CK_CODES 1u
#define CK_FP16 2u
#define CK_WINDOW 3u
typedef struct step_desc {
    uint kind[BPS], base[BPS], kh[BPS], vh[BPS], count[BPS], tok0[BPS];
} step_desc;

/* What one work-item loads for a step, all at once (one memory round trip). */
typedef struct step_loads {
    uint4 krow[KQ];  /* its token's K code row (K_IN_REGS) */
    uint4 kq[KQS];   /* its share of the K codes, staged to local memory (STAGE_K) */
    uint4 vq[VQ];    /* its share of the V codes, staged to local memory */
    float ks[CEB], kz[CEB], vs, vz;
    uint ka, va, gate;
} step_loads;

typedef struct attn_local {
    float4 q[D * NRV];    /* q * scale * log2(e), [channel][row set] */
    float4 qs[BPS * D * NRV]; /* per step: q * s_K * 2^-shift of each chunk */
    float4 qc[SCAP * NRV]; /* q . P_K[m] of the tile's rows */
    float4 w[WG * NRV];   /* per step: p * s_V (compressed) or p (fp16) */
    uint vw[BPS * VSEC];  /* per step: the chunks' V codes */
    uint4 kq[STAGE_K ? BPS * KSEC4 : 1]; /* per step: the chunks' K codes (STAGE_K) */
    uint S[NR * SCAP];    /* V histogram: float bits, or the low words (HIST_FIXED) */
    uint Sh[HIST_FIXED ? NR * SCAP : 1]; /* HIST_FIXED: the high words */
    float acc[ACC_N];     /* end of item: the slices' sums of one row; the fold's; merge: weights */
    uint vchunk[8];       /* the V bank's chunk slots */
    float2 red[WG * NZ];
    uint last;
} attn_local;

/* Chunk c of the item's sequence (nb compressed blocks of slots tbl_blocks, nw window tokens from
 * half index wb) into step slot b of sd. */
OCL_HELPER void describe_chunk(step_desc *sd, uint b, uint c, uint c1, uint nb, uint nw, __global const uint *tbl_blocks,
                               uint wb, __constant uint *P)
{
    sd->kind[b] = CK_NONE, sd->base[b] = 0, sd->kh[b] = 0, sd->vh[b] = 0, sd->count[b] = 0, sd->tok0[b] = c * G;
    if (c >= c1) return;
    if (c < nb) {
        uint base = tbl_blocks[c * P[A_H]] * (P[A_BLOCK] / 4); /* [nb][H] from the head's */
        sd->kind[b] = MODE == 2 ? CK_FP16 : CK_CODES;
        sd->base[b] = base;
        sd->kh[b] = base * 2 + P[A_BLOCK + 1] / 2, sd->vh[b] = base * 2 + P[A_BLOCK + 4] / 2;
        sd->count[b] = G;
    } else {
        uint w0 = (c - nb) * G;
        sd->kind[b] = CK_WINDOW;
        sd->kh[b] = wb + w0 * D, sd->vh[b] = wb + (P[A_R] + w0) * D;
        sd->count[b] = min((uint)G, nw - w0);
    }
}

/* Every load of a step (only compressed chunks have any) */
OCL_HELPER void load_step(step_loads *L, const step_desc *sd, __global const uint *blocks, __global const uint *windows,
                          __constant uint *P)
{
    const uint lid = get_local_id(0), j = lid / G, t = lid % G;
    __global const uint4 *b4 = (__global const uint4 *)blocks;
    for (uint e = 0; e < CEB; e++) { /* (chunk, channel) pair lid + e WG */
        uint pj = min((lid + e * WG) / D, (uint)BPS - 1), i = (lid + e * WG) % D, b = chunk_pick(sd->base, pj);
        int ok = chunk_pick(sd->kind, pj) == CK_CODES;
        L->ks[e] = ok ? f16_at(blocks, b * 2 + P[A_BLOCK + 2] / 2 + i) : 0.0f;
        L->kz[e] = ok ? f16_at(blocks, b * 2 + P[A_BLOCK + 3] / 2 + i) : 0.0f;
    }
    const uint base = chunk_pick(sd->base, j);
    if (chunk_pick(sd->kind, j) == CK_CODES) {
        L->vs = f16_at(blocks, base * 2 + P[A_BLOCK + 5] / 2 + t);
        L->vz = f16_at(blocks, base * 2 + P[A_BLOCK + 6] / 2 + t);
        L->ka = MODE == 0 ? (blocks[base + P[A_BLOCK + 7] / 4 + t / 4] >> (8 * (t % 4))) & 255u : 0u;
        L->va = MODE == 0 ? (blocks[base + P[A_BLOCK + 8] / 4 + t / 4] >> (8 * (t % 4))) & 255u : 0u;
        L->gate = MODE == 0 ? (blocks[base + P[A_BLOCK + 9] / 4 + t / 32] >> (t % 32)) & 1u : 0u;
        if (K_IN_REGS)
            for (uint k = 0; k < KQ; k++) L->krow[k] = b4[(base + P[A_BLOCK + 1] / 4) / 4 + t * KQ + k];
    } else {
        L->vs = 1.0f, L->vz = 0.0f, L->ka = L->va = L->gate = 0u;
    }
    if (STAGE_K)
        for (uint q = 0; q < KQS; q++) {
            uint e = min(lid + q * WG, (uint)(BPS * KSEC4) - 1), ej = e / KSEC4, kind = chunk_pick(sd->kind, ej);
            if (MODE == 2) { /* fp16 rows, read whole by consecutive work-items (coalesced) */
                uint x = e % KSEC4, h8 = chunk_pick(sd->kh, ej) / 8 + x;
                __global const uint4 *src = (__global const uint4 *)(kind == CK_WINDOW ? windows : blocks);
                L->kq[q] = x / KD8 < chunk_pick(sd->count, ej) ? src[h8] : (uint4)(0u);
            } else {
                L->kq[q] = kind == CK_CODES ? b4[(chunk_pick(sd->base, ej) + P[A_BLOCK + 1] / 4) / 4 + e % KSEC4] : (uint4)(0u);
            }
        }
    if (STAGE_V)
        for (uint q = 0; q < VQ; q++) {
            uint e = min(lid + q * WG, (uint)(BPS * VSEC / 4) - 1), ej = e / (VSEC / 4);
            L->vq[q] = chunk_pick(sd->kind, ej) == CK_CODES ? b4[(chunk_pick(sd->base, ej) + P[A_BLOCK + 4] / 4) / 4 + e % (VSEC / 4)] : (uint4)(0u);
        }
}

OCL_HELPER uint krow_word(const step_loads *L, __global const uint *row, __local const uint *krow_local, uint j)
{
    if (STAGE_K) return krow_local[j];
    if (K_IN_REGS) {
        uint4 q = L->krow[j / 4];
        uint qa[4] = {q.x, q.y, q.z, q.w};
        return qa[j % 4];
    }
    return row[j];
}

/* The weights p * s_V of token u (of NRV float4 each in w), one per row */
OCL_HELPER void token_weights_at(__local const float4 *w, uint u, float wt[8])
{
    for (uint v = 0; v < NRV; v++) {
        float4 w4 = w[u * NRV + v];
        wt[4 * v] = w4.x, wt[4 * v + 1] = w4.y, wt[4 * v + 2] = w4.z, wt[4 * v + 3] = w4.w;
    }
}

/* acc += wt * the V codes of a channel group (its CH codes from words wv, shifted to its first bit;
 * 3-bit codes: their high bits in hi) */
OCL_HELPER void v_codes_acc(float acc[NR][CH], const uint *wv, uint hi, const float *wt)
{
    const uint MASK = (1u << VPB) - 1u;
    for (uint c = 0; c < CH; c++) {
        uint sh = c * VPB;
        float cf = VBITS == 3 ? int_float(((wv[0] >> sh) & 3u) | (((hi >> c) & 1u) << 2))
                              : code_float(wv[sh / 32], wv[sh / 32] >> 16, sh % 32, MASK);
        for (uint r = 0; r < NR; r++) acc[r][c] += wt[r] * cf;
    }
}

/* acc += wt * the fp16 V of one window token in a compressed mode (CH halves at p, channel group g),
 * in the units of the compressed chunks' accumulators (their powers of two) */
OCL_HELPER void v_fp16_acc(float acc[NR][CH], __global const half *p, uint g, const float *wt)
{
    float x[CH];
    load_halves(p, 1, g * CH, x);
    for (uint c = 0; c < CH; c++) {
        float xv = x[c] * code_unfactor(c, VBITS);
        for (uint r = 0; r < NR; r++) acc[r][c] += wt[r] * xv;
    }
}

/* One step: the chunks of sd, their loads in Lc; K/V of fp16 chunks from blocks or windows. */
OCL_HELPER void do_step(__local attn_local *L, attn_state *st, const step_desc *sd, const step_loads *Lc,
                        __global const uint *blocks, __global const uint *windows, __constant uint *P)
{
    const uint lid = get_local_id(0), j = lid / G, t = lid % G;
    const uint kind = chunk_pick(sd->kind, j);
    const int codes = kind == CK_CODES, mine = t < chunk_pick(sd->count, j);
    float zt[NZ], mx[NZ], lg[NR];
    for (uint e = 0; e < NZ; e++) zt[e] = 0.0f, mx[e] = NEG_INF;
    if (MODE != 2) /* 1. q * s_K and the zero-point terms of each chunk */
        for (uint e = 0; e < CEB; e++) {
            uint pj = (lid + e * WG) / D, i = (lid + e * WG) % D;
            if (pj < BPS && chunk_pick(sd->kind, pj) == CK_CODES) {
                float s = Lc->ks[e] * code_factor(i, KBITS);
                for (uint v = 0; v < NRV; v++) {
                    float4 q = L->q[i * NRV + v];
                    L->qs[(pj * D + i) * NRV + v] = q * s;
                    float qa[4] = {q.x, q.y, q.z, q.w};
                    for (uint k = 0; k < 4; k++)
                        for (uint b = 0; b < BPS; b++)
                            if (4 * v + k < NR && b == pj) zt[b * NR + 4 * v + k] += qa[k] * Lc->kz[e];
                }
            }
        }
    if (STAGE_K) /* the K codes or fp16 rows (waits for their loads) */
        for (uint q = 0; q < KQS; q++) {
            uint e = lid + q * WG, x = e % KSEC4, t16 = x / KD8;
            if (e < BPS * KSEC4) L->kq[MODE == 2 ? e - x + t16 * KD8 + ((x % KD8) ^ (t16 & KSWZ)) : e] = Lc->kq[q];
        }
    barrier(CLK_LOCAL_MEM_FENCE);
    /* 2. logits of this work-item's token, without the zero-point term */
    float4 dot[2] = {(float4)(0.0f), (float4)(0.0f)};
    if (mine && !(P[A_FLAGS] & F_SKIP_K)) {
        if (codes) {
            __global const uint *row = blocks + chunk_pick(sd->base, j) + P[A_BLOCK + 1] / 4 + t * KRW;
            __local const uint *krow_local = (__local const uint *)L->kq + j * KSEC4 * 4 + t * KRW;
            const uint PER = 32 / KPB, MASK = (1u << KPB) - 1u;
            for (uint k = 0; k < KW0; k++) {
                uint w = krow_word(Lc, row, krow_local, k), wh = w >> 16;
                uint hi = KBITS == 3 ? krow_word(Lc, row, krow_local, KW0 + k / 2) >> ((k % 2) * 16) : 0u;
                for (uint c = 0; c < PER; c++) {
                    uint i = k * PER + c;
                    if (i < D) {
                        float cf = KBITS == 3 ? int_float(((w >> (2 * c)) & 3u) | (((hi >> c) & 1u) << 2))
                                              : code_float(w, wh, c * KPB, MASK);
                        for (uint v = 0; v < NRV; v++) dot[v] += L->qs[(j * D + i) * NRV + v] * cf;
                    }
                }
            }
            if (MODE == 0)
                for (uint v = 0; v < NRV; v++) dot[v] += L->qc[Lc->ka * NRV + v];
        } else {
            __global const uint *rows = kind == CK_WINDOW ? windows : blocks;
            for (uint k = 0; k < D / 8; k++) {
                float8 x = MODE == 2 && STAGE_K ? vload_half8(0, (__local const half *)&L->kq[j * KSEC4 + t * KD8 + (k ^ (t & KSWZ))])
                                   : load_half8((__global const half *)rows + chunk_pick(sd->kh, j) + t * D + 8 * k);
                float xa[8] = {x.s0, x.s1, x.s2, x.s3, x.s4, x.s5, x.s6, x.s7};
                for (uint i = 0; i < 8; i++)
                    for (uint v = 0; v < NRV; v++) dot[v] += L->q[(8 * k + i) * NRV + v] * xa[i];
            }
        }
    }
    for (uint r = 0; r < NR; r++) {
        float4 d4 = dot[r / 4];
        float da[4] = {d4.x, d4.y, d4.z, d4.w};
        lg[r] = !mine || chunk_pick(sd->tok0, j) + t > st->limit[r] ? NEG_INF : da[r % 4];
        for (uint b = 0; b < BPS; b++)
            if (b == j) mx[b * NR + r] = lg[r];
    }
    /* 3. the chunks' maxima with their zero-point terms, the lazy running max, weights */
    group_reduce2(mx, 1, zt, 0, L->red, NZ);
    int rescale = 0;
    float alpha[NR];
    const float vz = codes ? Lc->vz : 0.0f, vs = codes ? Lc->vs : 1.0f;
    for (uint r = 0; r < NR; r++) {
        float top = NEG_INF, ztj = 0.0f;
        for (uint b = 0; b < BPS; b++) {
            top = fmax(top, mx[b * NR + r] + zt[b * NR + r]);
            ztj = b == j ? zt[b * NR + r] : ztj;
        }
        alpha[r] = 1.0f;
        if (top > st->m[r] + LAZY) {
            alpha[r] = exp2(st->m[r] - top);
            st->m[r] = top;
            rescale = 1;
            st->l[r] *= alpha[r];
            st->pz[r] *= alpha[r];
            for (uint c = 0; c < CH; c++) st->acc[r][c] *= alpha[r];
        }
        float p = lg[r] == NEG_INF ? 0.0f : exp2(lg[r] + ztj - st->m[r]);
        lg[r] = p;
        st->l[r] += p;
        st->pz[r] += p * vz;
    }
    if (MODE == 0 && rescale) { /* uniform: every work-item saw the same maxima */
        for (uint e = lid; e < NR * SCAP; e += WG) hist_set(L->S, L->Sh, e, hist_get(L->S, L->Sh, e) * pick(alpha, e / SCAP));
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    {
        float wa[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (uint r = 0; r < NR; r++) wa[r] = lg[r] * vs;
        for (uint v = 0; v < NRV; v++) L->w[lid * NRV + v] = (float4)(wa[4 * v], wa[4 * v + 1], wa[4 * v + 2], wa[4 * v + 3]);
        if (MODE == 0 && codes && mine && Lc->gate && !(P[A_FLAGS] & F_SKIP_HIST))
            for (uint r = 0; r < NR; r++)
                if (lg[r] != 0.0f) hist_add(L->S, L->Sh, r * SCAP + Lc->va, lg[r]);
    }
    if (MODE != 2 && STAGE_V) /* the V codes arrived during the K phase */
        for (uint q = 0; q < VQ; q++) {
            uint e = lid + q * WG;
            if (e < BPS * VSEC / 4) vstore4(Lc->vq[q], e, L->vw);
        }
    barrier(CLK_LOCAL_MEM_FENCE);
    /* 4. V: channel group g over the tokens of slice s */
    const uint g = lid % NG, s = lid / NG;
    if (s >= NS || (P[A_FLAGS] & F_SKIP_V)) return;
    if (MODE == 2 && PREFETCH) { /* fp16 only: the loads of VB tokens in flight at once */
        for (uint u0 = s; u0 < WG; u0 += VB * NS) {
            float x[VB][CH];
            for (uint k = 0; k < VB; k++) {
                const uint u = min(u0 + k * NS, (uint)WG - 1), uj = u / G, ut = u % G;
                const int ok = ut < chunk_pick(sd->count, uj);
                __global const half *xp = (__global const half *)(chunk_pick(sd->kind, uj) == CK_WINDOW ? windows : blocks) +
                                          chunk_pick(sd->vh, uj) + ut * D + g * CH;
                load_halves(xp, ok, g * CH, x[k]);
            }
            for (uint k = 0; k < VB; k++) {
                const uint u = u0 + k * NS;
                if (u >= WG) break;
                float wt[8];
                token_weights_at(L->w, u, wt);
                for (uint c = 0; c < CH; c++)
                    for (uint r = 0; r < NR; r++) st->acc[r][c] += wt[r] * x[k][c];
            }
        }
        return;
    }
    for (uint u = s; u < WG; u += NS) {
        const uint uj = u / G, ut = u % G, ukind = chunk_pick(sd->kind, uj);
        if (ut >= chunk_pick(sd->count, uj)) continue;
        float wt[8];
        token_weights_at(L->w, u, wt);
        if (ukind == CK_CODES) {
            const uint WPG = (CH * VPB + 31) / 32, bit0 = g * CH * VPB, hbit = g * CH;
            __global const uint *vrow = blocks + chunk_pick(sd->base, uj) + P[A_BLOCK + 4] / 4 + ut * VRW;
            const uint row = uj * VSEC + ut * VRW;
            uint wv[4];
            for (uint q = 0; q < WPG; q++) wv[q] = (STAGE_V ? L->vw[row + bit0 / 32 + q] : vrow[bit0 / 32 + q]) >> (bit0 % 32);
            uint hi = VBITS == 3 ? (STAGE_V ? L->vw[row + VW0 + hbit / 32] : vrow[VW0 + hbit / 32]) >> (hbit % 32) : 0u;
            v_codes_acc(st->acc, wv, hi, wt);
        } else {
            v_fp16_acc(st->acc, (__global const half *)(ukind == CK_WINDOW ? windows : blocks) + chunk_pick(sd->vh, uj) + ut * D + g * CH,
                       g, wt);
        }
    }
}

/* Merging the partial results (m, l, -, -, o[D]) of a (sequence, kv head, tile) split in nsplit
 * items, all rows at once: out = sum_k 2^(m_k - M) o_k / sum_k 2^(m_k - M) l_k. Two copies: through a
 * volatile pointer (the last work-group of ocl_attn merges what others wrote in the same launch) and
 * a plain one (ocl_attn_merge, a second launch). w holds 2 NR nsplit floats. */
#define MERGE_ROWS(NAME, QUAL)                                                                              \
    OCL_HELPER void NAME(__constant uint *P, __global const uint *sd, uint seq, uint head, uint tile, uint nsplit, \
                         QUAL __global uint *part, __global float *out, __local float *w, __local float2 *red)  \
    {                                                                                                       \
        const uint lid = get_local_id(0), H = P[A_H], tiles = P[A_TILES], gqa = P[A_GQA], q_len = P[A_QLEN];  \
        const uint rows = q_len * gqa, step = H * tiles * NR * PSTRIDE;                                     \
        QUAL __global uint *p0 = part + ((sd[5] * H + head) * tiles + tile) * NR * PSTRIDE;                 \
        const uint n = nsplit * NR, r0 = lid % NR;                                                          \
        float M[NR], Ls[NR];                                                                                \
        for (uint r = 0; r < NR; r++) M[r] = NEG_INF, Ls[r] = 0.0f;                                         \
        for (uint e = lid; e < n; e += WG) {                                                                \
            QUAL __global uint *p = p0 + (e / NR) * step + r0 * PSTRIDE;                                   \
            float m = as_float(p[0]);                                                                       \
            w[e] = m, w[n + e] = as_float(p[1]);                                                            \
            for (uint r = 0; r < NR; r++) M[r] = r == r0 ? fmax(M[r], m) : M[r];                            \
        }                                                                                                   \
        group_reduce2(M, 1, Ls, 0, red, NR);                                                                \
        const float Mr = pick(M, r0);                                                                       \
        for (uint e = lid; e < n; e += WG) {                                                                \
            float m = w[e], x = m == NEG_INF ? 0.0f : exp2(m - Mr);                                         \
            w[e] = x;                                                                                       \
            for (uint r = 0; r < NR; r++) Ls[r] += r == r0 ? x * w[n + e] : 0.0f;                           \
        }                                                                                                   \
        group_reduce2(Ls, 0, M, 1, red, NR);                                                                    \
        for (uint e = lid; e < NR * (D / 4); e += WG) {                                                     \
            const uint r = e / (D / 4), i = 4 * (e % (D / 4)), gr = tile * NR + r;                          \
            if (gr >= rows) continue;                                                                       \
            float4 sum = (float4)(0.0f);                                                                    \
            for (uint k = 0; k < nsplit; k++) {                                                             \
                QUAL __global uint *p = p0 + k * step + r * PSTRIDE + 4 + i;                                \
                sum += w[k * NR + r] * (float4)(as_float(p[0]), as_float(p[1]), as_float(p[2]), as_float(p[3])); \
            }                                                                                               \
            const float Lr = pick(Ls, r);                                                                   \
            const uint row = (seq * q_len + gr / gqa) * P[A_NQH] + head * gqa + gr % gqa;                   \
            vstore4(sum * (Lr > 0.0f ? 1.0f / Lr : 0.0f), 0, out + row * D + i);                            \
        }                                                                                                   \
    }
MERGE_ROWS(merge_rows_volatile, volatile)
MERGE_ROWS(merge_rows_plain, )

/* The end of an item, in ocl_attn and ocl_attn_values: l and the zero-point sums pz reduced over the
 * work-group, the slices' V sums (acc), the pattern fold (histogram S, Sh; the bank's chunk slots in
 * vchunk), then the output (a sequence in one item) or the partial result (mrow, l, o) and the merge by
 * the last work-group of the (sequence, kv head, tile). Local: lacc (ACC_N floats), red, last. */
OCL_HELPER void item_end(__constant uint *P, __global const uint *sd, uint seq, uint split, uint head, uint tile,
                         const uint *row_of, const float *mrow, float *l, float *pz, float acc[NR][CH], __local float *lacc,
                         __local float2 *red, __local const uint *S, __local const uint *Sh, __local const uint *vchunk,
                         __local uint *last, __global const ushort *chunks, volatile __global uint *part,
                         volatile __global uint *cnt, __global float *out)
{
    const uint lid = get_local_id(0), H = P[A_H], tiles = P[A_TILES], rows = P[A_QLEN] * P[A_GQA];
    const uint bank = sd[2], nsplit = sd[4];
    /* the item's partial: l and the zero-point sums, the slices' V sums, the pattern fold */
    group_reduce2(l, 0, pz, 0, red, NR);
    float o[NR][CE];
    const uint g = lid % NG, s = lid / NG;
    for (uint r = 0; r < NR; r++) {
        if (s < NS)
            for (uint c = 0; c < CH; c++) {
                uint i = g * CH + c;
                if (i < D) lacc[s * D + i] = acc[r][c] * code_factor(c, VBITS);
            }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint e = 0; e < CE; e++) {
            uint i = lid + e * WG;
            float sum = pz[r];
            if (i < D)
                for (uint k = 0; k < NS; k++) sum += lacc[k * D + i];
            o[r][e] = sum;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (MODE == 0) { /* + sum_m S[m] P_V[m] over the bank (attn_decode.comp's fold_patterns) */
        for (uint u = lid; u < NQ4 * PS; u += WG) {
            const uint q4 = u % NQ4, ps = u / NQ4;
            float4 f[NR];
            for (uint r = 0; r < NR; r++) f[r] = (float4)(0.0f);
            for (uint m = ps; m < bank; m += PS) {
                __global const half *pat = (__global const half *)((__global const uchar *)chunks + (size_t)vchunk[m / 32] * P[A_CHUNK]) +
                                           (size_t)(PKV_OCL_CHUNK_PATTERNS + m % 32) * D;
                float4 x = vload_half4(q4, pat);
                for (uint r = 0; r < NR; r++) f[r] += hist_get(S, Sh, r * SCAP + m) * x;
            }
            for (uint r = 0; r < NR; r++) vstore4(f[r], ((ps * NR + r) * D) / 4 + q4, lacc);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint e = 0; e < CE; e++) {
            uint i = lid + e * WG;
            if (i < D)
                for (uint r = 0; r < NR; r++)
                    for (uint k = 0; k < PS; k++) o[r][e] += lacc[(k * NR + r) * D + i];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    if (nsplit == 1) { /* the whole sequence in one item: normalise and write out */
        for (uint r = 0; r < NR && tile * NR + r < rows; r++) {
            float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
            for (uint e = 0; e < CE; e++) {
                uint i = lid + e * WG;
                if (i < D) out[row_of[r] * D + i] = o[r][e] * inv;
            }
        }
        return;
    }
    const uint slot0 = (((sd[5] + split) * H + head) * tiles + tile) * NR;
    for (uint r = 0; r < NR; r++) {
        volatile __global uint *p = part + (slot0 + r) * PSTRIDE;
        if (lid == 0) p[0] = as_uint(mrow[r]), p[1] = as_uint(l[r]);
        for (uint e = 0; e < CE; e++) {
            uint i = lid + e * WG;
            if (i < D) p[4 + i] = as_uint(o[r][e]);
        }
    }
    if (P[A_FLAGS] & (F_SEPARATE_MERGE | F_SKIP_MERGE)) return;
    /* the last item of this (sequence, kv head, tile) to finish merges all of them */
    mem_fence(CLK_GLOBAL_MEM_FENCE);
    barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
    volatile __global uint *counter = cnt + (seq * H + head) * tiles + tile;
    if (lid == 0) *last = atomic_inc(counter) == nsplit - 1 ? 1u : 0u;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (!*last) return;
    mem_fence(CLK_GLOBAL_MEM_FENCE);
    merge_rows_volatile(P, sd, seq, head, tile, nsplit, part, out, lacc, red);
    if (lid == 0) *counter = 0u; /* ready for the next call */
}

/* Each kernel is built as a program of its own (-DPKV_ATTN_KERNEL=1 qc, 2 attn, 3 merge, 4 split attention's logits, 5 its values; 0 all):
 * ocl_program.c builds those a shape needs in parallel. */
#ifndef PKV_ATTN_KERNEL
#define PKV_ATTN_KERNEL 0
#endif
#if PKV_ATTN_KERNEL == 0 || PKV_ATTN_KERNEL == 1
__kernel void ocl_attn_qc(__constant uint *P, __global const uint *seqd, __global const uint *table,
                          __global const float *q, __global const ushort *chunks, __global float4 *qc)
{
    __local float4 q_s[D * NRV];
    const uint lid = get_local_id(0), grp = get_group_id(0);
    /* work-group g: patterns 64 (g % n_blk) ..., head (g / n_blk) % H, tile, sequence */
    const uint H = P[A_H], tiles = P[A_TILES], n_blk = P[A_QC_BLOCKS], blk = grp % n_blk, hg = grp / n_blk;
    const uint head = hg % H, tile = (hg / H) % tiles, seq = hg / (H * tiles);
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
    __global const uint *ct = table + sd[3] + head * PKV_OCL_MAX_CHUNKS;
    for (uint m = blk * get_local_size(0) + lid; m < sd[2]; m += n_blk * get_local_size(0)) {
        __global const ushort *pat = pattern_ptr((__global const uchar *)chunks, ct, P[A_CHUNK], D, 0, m);
        float4 dot[2] = {(float4)(0.0f), (float4)(0.0f)};
        for (uint k = 0; k < D / 8; k++) {
            float8 x = vload_half8(k, (__global const half *)pat);
            float xa[8] = {x.s0, x.s1, x.s2, x.s3, x.s4, x.s5, x.s6, x.s7};
            for (uint j = 0; j < 8; j++)
                for (uint v = 0; v < NRV; v++) dot[v] += q_s[(8 * k + j) * NRV + v] * xa[j];
        }
        for (uint v = 0; v < NRV; v++) qc[((seq * H + head) * tiles + tile) * CAP * NRV + m * NRV + v] = dot[v];
    }
}

#endif
#if PKV_ATTN_KERNEL == 0 || PKV_ATTN_KERNEL == 2
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void ocl_attn(__constant uint *P, __global const uint *seqd, __global const uint *items, __global const uint *table,
              __global const float *q, __global const uint *restrict blocks, __global const uint *restrict windows,
              __global const ushort *restrict chunks, __global const float4 *qc, volatile __global uint *part,
              volatile __global uint *cnt, __global float *out)
{
    __local attn_local L;
    const uint lid = get_local_id(0), grp = get_group_id(0);
    const uint H = P[A_H], tiles = P[A_TILES], head = grp % H, tile = (grp / H) % tiles, item = grp / (H * tiles);
    const uint gqa = P[A_GQA], q_len = P[A_QLEN], nqh = P[A_NQH], rows = q_len * gqa;
    const uint seq = items[2 * item], split = items[2 * item + 1];
    __global const uint *sd = seqd + seq * 8;
    const uint nb = sd[0], nw = sd[1], bank = sd[2], nsplit = sd[4];
    __global const uint *tbl = table + sd[3]; /* chunks [H][MAX], windows [H] */
    const uint T = nb * G + nw, n_chunks = nb + (nw + G - 1) / G;
    const float scale = as_float(P[A_SCALE]);

    attn_state st;
    uint row_of[NR];
    for (uint r = 0; r < NR; r++) {
        uint gr = min(tile * NR + r, rows - 1);
        row_of[r] = (seq * q_len + gr / gqa) * nqh + head * gqa + gr % gqa;
        st.limit[r] = T - q_len + gr / gqa;
        st.m[r] = NEG_INF;
        st.l[r] = st.pz[r] = 0.0f;
        for (uint c = 0; c < CH; c++) st.acc[r][c] = 0.0f;
    }
    for (uint e = lid; e < D * NRV * 4; e += WG) {
        uint i = e / (NRV * 4), r = e % (NRV * 4);
        ((__local float *)L.q)[e] = r < NR && tile * NR + r < rows ? q[row_of[r] * D + i] * scale : 0.0f;
    }
    if (MODE == 0) {
        if (lid < 8) L.vchunk[lid] = lid * 32 < bank ? tbl[head * PKV_OCL_MAX_CHUNKS + lid] : 0u;
        for (uint e = lid; e < NR * SCAP; e += WG) hist_set(L.S, L.Sh, e, 0.0f);
        __global const float4 *qc_row = qc + ((seq * H + head) * tiles + tile) * CAP * NRV;
        for (uint e = lid; e < bank * NRV; e += WG) L.qc[e] = qc_row[e];
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    const uint c0 = split * P[A_CPS], c1 = min(n_chunks, c0 + P[A_CPS]);
    const uint wb = nw ? tbl[H * PKV_OCL_MAX_CHUNKS + head] * (P[A_WINDOW] / 2) : 0u;
    /* With PREFETCH the loads of step n + 1 are issued before the work of step n, so memory latency
     * overlaps arithmetic (the block slot itself is one more load: it is read a step earlier still). */
    __global const uint *slots = table + sd[6] + head; /* block slots [nb][H] */
    step_desc cur;
    step_loads Lc;
    for (uint b = 0; b < BPS; b++) describe_chunk(&cur, b, c0 + b, c1, nb, nw, slots, wb, P);
    if (MODE != 2 || STAGE_K) load_step(&Lc, &cur, blocks, windows, P);
    for (uint c = c0; c < c1; c += BPS) {
        if (PREFETCH) {
            step_desc sn;
            step_loads Ln;
            for (uint b = 0; b < BPS; b++) describe_chunk(&sn, b, c + BPS + b, c1, nb, nw, slots, wb, P);
            if ((MODE != 2 || STAGE_K) && c + BPS < c1) load_step(&Ln, &sn, blocks, windows, P);
            do_step(&L, &st, &cur, &Lc, blocks, windows, P);
            cur = sn;
            Lc = Ln;
        } else {
            do_step(&L, &st, &cur, &Lc, blocks, windows, P);
            for (uint b = 0; b < BPS; b++) describe_chunk(&cur, b, c + BPS + b, c1, nb, nw, slots, wb, P);
            if ((MODE != 2 || STAGE_K) && c + BPS < c1) load_step(&Lc, &cur, blocks, windows, P);
        }
    }

    item_end(P, sd, seq, split, head, tile, row_of, st.m, st.l, st.pz, st.acc, L.acc, L.red, L.S, L.Sh, L.vchunk, &L.last,
             chunks, part, cnt, out);
}

#endif
#if PKV_ATTN_KERNEL == 0 || PKV_ATTN_KERNEL == 3
/* The merge as a second launch (PKV_ATTN_SEPARATE_MERGE): work-group g serves head g % H, tile
 * (g / H) % tiles, sequence g / (H tiles). */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void ocl_attn_merge(__constant uint *P, __global const uint *seqd, __global uint *part, __global float *out)
{
    __local float w[WG * CH];
    __local float2 red[WG * NZ];
    const uint grp = get_group_id(0), H = P[A_H], tiles = P[A_TILES];
    const uint head = grp % H, tile = (grp / H) % tiles, seq = grp / (H * tiles);
    __global const uint *sd = seqd + seq * 8;
    if (sd[4] > 1) merge_rows_plain(P, sd, seq, head, tile, sd[4], part, out, w, red);
}
#endif

/* Split attention (PKV_ATTN_SPLIT=1; the twin of shaders/vulkan/attn_logits.comp and attn_values.comp,
 * which explain it), built with BPS 1 (WG = G, one token per work-item), STAGE_K 0, and the histogram
 * in float (HIST_FIXED 0). The logits pass writes, per (item, chunk j of it, tile, kv head), a logit
 * record of G x NRV float4 (each token's logits of the NR rows, log2 units, -inf past the causal limit
 * or the chunk's tokens) then NRV float4 of the chunk's maxima, at logit_rec(); the values pass reads
 * them. The host requires K and V rows of whole 16-byte words (KRW, VRW multiples of 4). */
#define KST (KRW + 1)                  /* a token's staged K row, padded (local memory banks) */
#define VQW (VRW / 4)                  /* 16-byte words of a V code row */
#define SPLIT_HIST_UNIT 16777216.0f    /* 2^24: a chunk's histogram adds in fixed point (docs/NUMERICS.md) */
OCL_HELPER uint logit_rec(__constant uint *P, uint item, uint j, uint tile, uint head)
{
    return (((item * P[A_CPS] + j) * P[A_TILES] + tile) * P[A_H] + head) * (G + 1) * NRV;
}

#if PKV_ATTN_KERNEL == 0 || PKV_ATTN_KERNEL == 4
/* Pass 1: work-group g serves head g % H, chunk j = (g / H) % cps of its item, tile, item. */
__kernel __attribute__((reqd_work_group_size(G, 1, 1)))
void ocl_attn_logits(__constant uint *P, __global const uint *seqd, __global const uint *items, __global const uint *table,
                     __global const float *q, __global const uint *restrict blocks, __global const uint *restrict windows,
                     __global const float4 *qc, __global float4 *lg)
{
    __local float4 qs[D * NRV];  /* q * scale * s_K * 2^-shift of the chunk (a window chunk: q * scale) */
    __local uint kc[G * KST];    /* the chunk's K code rows */
    __local float2 red[WG * NZ];
    const uint lid = get_local_id(0), grp = get_group_id(0);
    const uint H = P[A_H], cps = P[A_CPS], tiles = P[A_TILES];
    const uint head = grp % H, j = (grp / H) % cps, tile = (grp / (H * cps)) % tiles, item = grp / (H * cps * tiles);
    const uint gqa = P[A_GQA], q_len = P[A_QLEN], nqh = P[A_NQH], rows = q_len * gqa;
    const uint seq = items[2 * item], c = items[2 * item + 1] * cps + j;
    __global const uint *sd = seqd + seq * 8;
    const uint nb = sd[0], nw = sd[1], T = nb * G + nw;
    if (c >= nb + (nw + G - 1) / G) return; /* uniform: past the sequence's chunks */
    const int codes = c < nb;
    const uint base = codes ? table[sd[6] + head + c * H] * (P[A_BLOCK] / 4) : 0u;
    const uint w0 = codes ? 0u : (c - nb) * G, count = codes ? G : min((uint)G, nw - w0);
    const float scale = as_float(P[A_SCALE]);
    uint row_of[NR], ka = 0u;
    for (uint r = 0; r < NR; r++) {
        uint gr = min(tile * NR + r, rows - 1);
        row_of[r] = (seq * q_len + gr / gqa) * nqh + head * gqa + gr % gqa;
    }
    if (codes) { /* this work-item's K code row (and pattern) first: its latency overlaps q * s_K */
        __global const uint4 *b4 = (__global const uint4 *)blocks;
        for (uint k = 0; k < KRW / 4; k++) {
            uint4 w = b4[(base + P[A_BLOCK + 1] / 4) / 4 + lid * (KRW / 4) + k];
            kc[lid * KST + 4 * k] = w.x, kc[lid * KST + 4 * k + 1] = w.y, kc[lid * KST + 4 * k + 2] = w.z, kc[lid * KST + 4 * k + 3] = w.w;
        }
        ka = MODE == 0 ? (blocks[base + P[A_BLOCK + 7] / 4 + lid / 4] >> (8 * (lid % 4))) & 255u : 0u;
    }
    float zt[NR], zmax[NR];
    for (uint r = 0; r < NR; r++) zt[r] = 0.0f, zmax[r] = 0.0f;
    for (uint i = lid; i < D; i += WG) {
        const float s = codes ? f16_at(blocks, base * 2 + P[A_BLOCK + 2] / 2 + i) * code_factor(i, KBITS) : 1.0f;
        const float z = codes ? f16_at(blocks, base * 2 + P[A_BLOCK + 3] / 2 + i) : 0.0f;
        float qa[4 * NRV];
        for (uint r = 0; r < 4 * NRV; r++) {
            float x = r < NR && tile * NR + r < rows ? q[row_of[r] * D + i] * scale : 0.0f;
            qa[r] = x * s;
            if (r < NR) zt[r] += x * z;
        }
        for (uint v = 0; v < NRV; v++) qs[i * NRV + v] = (float4)(qa[4 * v], qa[4 * v + 1], qa[4 * v + 2], qa[4 * v + 3]);
    }
    /* PATTERN's q . P_K[a_t], loaded before the barrier so that it is in flight during the dot
     * products (after them it was one more memory round trip per work-group) */
    float4 qct[2] = {(float4)(0.0f), (float4)(0.0f)};
    if (MODE == 0 && codes) {
        __global const float4 *qc_row = qc + ((seq * H + head) * tiles + tile) * CAP * NRV + ka * NRV;
        for (uint v = 0; v < NRV; v++) qct[v] = qc_row[v];
    }
    group_reduce2(zt, 0, zmax, 0, red, NR); /* its barriers also publish qs and kc */

    float4 dot[2] = {qct[0], qct[1]};
    if (P[A_FLAGS] & F_SKIP_K) {
    } else if (codes) {
        const uint PER = 32 / KBITS, MASK = (1u << KBITS) - 1u;
        for (uint k = 0; k < KRW; k++) {
            const uint w = kc[lid * KST + k], wh = w >> 16;
            for (uint cc = 0; cc < PER; cc++) {
                const float cf = code_float(w, wh, cc * KBITS, MASK);
                for (uint v = 0; v < NRV; v++) dot[v] += qs[(k * PER + cc) * NRV + v] * cf;
            }
        }
    } else { /* the fp16 window: rows of D halves */
        const uint wb = table[sd[3] + H * PKV_OCL_MAX_CHUNKS + head] * (P[A_WINDOW] / 2);
        __global const half *row = (__global const half *)windows + wb + (w0 + min(lid, count - 1)) * D;
        for (uint k = 0; k < D / 8; k++) {
            float8 x = load_half8(row + 8 * k);
            float xa[8] = {x.s0, x.s1, x.s2, x.s3, x.s4, x.s5, x.s6, x.s7};
            for (uint i = 0; i < 8; i++)
                for (uint v = 0; v < NRV; v++) dot[v] += qs[(8 * k + i) * NRV + v] * xa[i];
        }
    }
    const uint at = logit_rec(P, item, j, tile, head);
    float la[4 * NRV];
    for (uint r = 0; r < 4 * NRV; r++) {
        float4 d4 = dot[r / 4];
        float da[4] = {d4.x, d4.y, d4.z, d4.w};
        const uint gr = min(tile * NR + r, rows - 1), limit = T - q_len + gr / gqa; /* causal: the last token row r sees */
        la[r] = r < NR && lid < count && c * G + lid <= limit ? da[r % 4] + (codes ? zt[r] : 0.0f) : NEG_INF;
        if (r < NR) zmax[r] = la[r];
    }
    for (uint v = 0; v < NRV; v++) lg[at + lid * NRV + v] = (float4)(la[4 * v], la[4 * v + 1], la[4 * v + 2], la[4 * v + 3]);
    group_reduce2(zmax, 1, zt, 1, red, NR);
    if (lid == 0) {
        float ma[4 * NRV];
        for (uint r = 0; r < 4 * NRV; r++) ma[r] = r < NR ? pick(zmax, r) : NEG_INF;
        for (uint v = 0; v < NRV; v++) lg[at + G * NRV + v] = (float4)(ma[4 * v], ma[4 * v + 1], ma[4 * v + 2], ma[4 * v + 3]);
    }
}
#endif

#if PKV_ATTN_KERNEL == 0 || PKV_ATTN_KERNEL == 5
/* What a work-item loads for chunk c of its item: its token's logits, and (compressed) its V code row,
 * scale, zero point, pattern and gate; issued one chunk ahead. */
typedef struct split_loads {
    float4 lg[NRV];
    uint4 vrow[VQW];
    float vs, vz;
    uint va, gate;
} split_loads;

OCL_HELPER void split_load(split_loads *Ld, __global const float4 *lg, uint at, __global const uint *blocks,
                           __global const uint *slots, uint c, uint nb, __constant uint *P)
{
    const uint t = get_local_id(0);
    for (uint v = 0; v < NRV; v++) Ld->lg[v] = lg[at + t * NRV + v];
    if (c < nb) {
        const uint b = slots[c * P[A_H]] * (P[A_BLOCK] / 4);
        __global const uint4 *b4 = (__global const uint4 *)blocks;
        for (uint k = 0; k < VQW; k++) Ld->vrow[k] = b4[(b + P[A_BLOCK + 4] / 4) / 4 + t * VQW + k];
        Ld->vs = f16_at(blocks, b * 2 + P[A_BLOCK + 5] / 2 + t);
        Ld->vz = f16_at(blocks, b * 2 + P[A_BLOCK + 6] / 2 + t);
        Ld->va = MODE == 0 ? (blocks[b + P[A_BLOCK + 8] / 4 + t / 4] >> (8 * (t % 4))) & 255u : 0u;
        Ld->gate = MODE == 0 ? (blocks[b + P[A_BLOCK + 9] / 4 + t / 32] >> (t % 32)) & 1u : 0u;
    } else {
        Ld->vs = 1.0f, Ld->vz = 0.0f, Ld->va = Ld->gate = 0u;
    }
}

typedef struct values_local {
    uint vw[G * VRW];    /* the chunk's V code rows */
    float4 w[G * NRV];   /* the chunk's weights p s_V (window: p) */
    uint Sq[NR * SCAP];  /* PATTERN: the chunk's V histogram in fixed point (units 2^-24) */
    uint S[NR * SCAP];   /* the item's V histogram (hist_get) */
    uint Sh[HIST_FIXED ? NR * SCAP : 1];
    float acc[ACC_N];    /* end of item: the slices' sums, the fold's, the merge's weights */
    uint vchunk[8];      /* the V bank's chunk slots */
    float2 red[WG * NZ];
    uint last;
} values_local;

/* Pass 2: work-group g serves head g % H, tile (g / H) % tiles, item g / (H tiles), as ocl_attn. */
__kernel __attribute__((reqd_work_group_size(G, 1, 1)))
void ocl_attn_values(__constant uint *P, __global const uint *seqd, __global const uint *items, __global const uint *table,
                     __global const uint *restrict blocks, __global const uint *restrict windows,
                     __global const ushort *restrict chunks, __global const float4 *lg, volatile __global uint *part,
                     volatile __global uint *cnt, __global float *out)
{
    __local values_local L;
    const uint lid = get_local_id(0), grp = get_group_id(0);
    const uint H = P[A_H], tiles = P[A_TILES], head = grp % H, tile = (grp / H) % tiles, item = grp / (H * tiles);
    const uint gqa = P[A_GQA], q_len = P[A_QLEN], nqh = P[A_NQH], rows = q_len * gqa;
    const uint seq = items[2 * item], split = items[2 * item + 1];
    __global const uint *sd = seqd + seq * 8;
    const uint nb = sd[0], nw = sd[1], bank = sd[2];
    __global const uint *tbl = table + sd[3]; /* chunks [H][MAX], windows [H] */
    const uint n_chunks = nb + (nw + G - 1) / G, c0 = split * P[A_CPS], c1 = min(n_chunks, c0 + P[A_CPS]);
    const uint wb = nw ? tbl[H * PKV_OCL_MAX_CHUNKS + head] * (P[A_WINDOW] / 2) : 0u;
    __global const uint *slots = table + sd[6] + head; /* block slots [nb][H] */
    uint row_of[NR];
    for (uint r = 0; r < NR; r++) {
        uint gr = min(tile * NR + r, rows - 1);
        row_of[r] = (seq * q_len + gr / gqa) * nqh + head * gqa + gr % gqa;
    }
    /* the item's maximum per row, from its chunks' */
    float M[NR], l[NR], pz[NR], acc[NR][CH];
    for (uint r = 0; r < NR; r++) {
        M[r] = NEG_INF, l[r] = pz[r] = 0.0f;
        for (uint c = 0; c < CH; c++) acc[r][c] = 0.0f;
    }
    for (uint c = c0 + lid; c < c1; c += WG) {
        const uint at = logit_rec(P, item, c - c0, tile, head) + G * NRV;
        for (uint r = 0; r < NR; r++) {
            float4 m4 = lg[at + r / 4];
            float ma[4] = {m4.x, m4.y, m4.z, m4.w};
            M[r] = fmax(M[r], ma[r % 4]);
        }
    }
    if (MODE == 0) {
        if (lid < 8) L.vchunk[lid] = lid * 32 < bank ? tbl[head * PKV_OCL_MAX_CHUNKS + lid] : 0u;
        for (uint e = lid; e < NR * SCAP; e += WG) L.Sq[e] = 0u, hist_set(L.S, L.Sh, e, 0.0f);
    }
    group_reduce2(M, 1, l, 0, L.red, NR); /* l stays 0 */

    const uint g = lid % NG, s = lid / NG;
    split_loads cur, nxt;
    if (c0 < c1) split_load(&cur, lg, logit_rec(P, item, 0, tile, head), blocks, slots, c0, nb, P);
    for (uint c = c0; c < c1; c++) {
        const int codes = c < nb;
        if (codes) /* this work-item's token: its V code row staged, its weights */
            for (uint k = 0; k < VQW; k++) vstore4(cur.vrow[k], lid * VQW + k, L.vw);
        float p[NR], wt[4 * NRV];
        for (uint r = 0; r < 4 * NRV; r++) wt[r] = 0.0f;
        for (uint r = 0; r < NR; r++) {
            float4 l4 = cur.lg[r / 4];
            float la[4] = {l4.x, l4.y, l4.z, l4.w};
            p[r] = la[r % 4] == NEG_INF ? 0.0f : exp2(la[r % 4] - M[r]);
            l[r] += p[r];
            pz[r] += codes ? p[r] * cur.vz : 0.0f;
            wt[r] = p[r] * (codes ? cur.vs : 1.0f);
        }
        for (uint v = 0; v < NRV; v++) L.w[lid * NRV + v] = (float4)(wt[4 * v], wt[4 * v + 1], wt[4 * v + 2], wt[4 * v + 3]);
        if (MODE == 0 && codes && cur.gate && !(P[A_FLAGS] & F_SKIP_HIST))
            for (uint r = 0; r < NR; r++) {
                uint qf = (uint)(p[r] * SPLIT_HIST_UNIT + 0.5f);
                if (qf != 0u) atomic_add(&L.Sq[r * SCAP + cur.va], qf); /* the result unused */
            }
        /* the next chunk's loads, in flight during this chunk's V phase */
        if (c + 1 < c1) split_load(&nxt, lg, logit_rec(P, item, c + 1 - c0, tile, head), blocks, slots, c + 1, nb, P);
        barrier(CLK_LOCAL_MEM_FENCE);
        if (MODE == 0 && codes) /* the chunk's histogram into the item's (its adds are done, the next chunk's come after the barrier below) */
            for (uint e = lid; e < NR * SCAP; e += WG) {
                uint qf = L.Sq[e];
                if (qf != 0u) hist_set(L.S, L.Sh, e, hist_get(L.S, L.Sh, e) + (float)qf * (1.0f / SPLIT_HIST_UNIT)), L.Sq[e] = 0u;
            }
        /* V: channel group g over the tokens of slice s */
        const uint count = codes ? G : min((uint)G, nw - (c - nb) * G);
        if (!(P[A_FLAGS] & F_SKIP_V) && s < NS)
            for (uint u = s; u < count; u += NS) {
                float wu[8];
                token_weights_at(L.w, u, wu);
                if (codes) {
                    const uint bit0 = g * CH * VPB;
                    uint wv[4];
                    for (uint k = 0; k < (CH * VPB + 31) / 32; k++) wv[k] = L.vw[u * VRW + bit0 / 32 + k] >> (bit0 % 32);
                    v_codes_acc(acc, wv, 0u, wu);
                } else {
                    v_fp16_acc(acc, (__global const half *)windows + wb + (P[A_R] + (c - nb) * G + u) * D + g * CH, g, wu);
                }
            }
        barrier(CLK_LOCAL_MEM_FENCE);
        cur = nxt;
    }
    item_end(P, sd, seq, split, head, tile, row_of, M, l, pz, acc, L.acc, L.red, L.S, L.Sh, L.vchunk, &L.last, chunks, part,
             cnt, out);
}
#endif
