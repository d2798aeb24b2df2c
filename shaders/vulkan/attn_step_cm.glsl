/* attn_decode.comp's step on cooperative matrices (compiled with PKV_COOPMAT, used where the device has
 * VK_NV_cooperative_matrix): the logits q'.codes of a chunk and its V sum p'.codes are two small
 * matrix products on the tensor cores instead of ~1,000 scalar multiply-adds per token.
 *
 * Shape (the host picks this kernel only for it): one chunk of G = 128 tokens per step (BPS = 1), one
 * token per invocation, D = 128, subgroups of 32 (4 per workgroup), 2- or 4-bit codes, at most 16 rows.
 *   K: S[16 x G] = A[16 x D] B[D x G], A = q * s_K per channel (fp16; rows past NR zero), B = the codes.
 *      Subgroup w owns tokens 32w..32w+31: it converts their rows and multiplies them alone (no
 *      workgroup barrier), in two rounds of D/2 channels so the tile fits in shared memory.
 *   V: O[16 x D] = P[16 x G] Vc[G x D], P = p * s_V per token (fp16). Subgroup w owns channels
 *      16w.. of each round; the rounds' accumulators stay in registers until both are done.
 * Codes become fp16 without conversion instructions: the pair (code c, code c + PER/2) of a word is
 * (w >> b c) & mask, two fp16 subnormals code * 2^-24, exact; the products are scaled
 * back by 2^24 in fp32. So a word's channels sit in the tile in the order c, c + PER/2, c + 1, ...
 * (cm_pos), and A (K) and the output (V) use the same order. fp16 window chunks are fp16 rows in
 * their natural order, with A = q and P = p. Numerics: docs/NUMERICS.md. */
#include "attn_cm.glsl"

const uint CM_TLD = (D / 2u + 8u) / 8u; /* a tile row: D / 2 halves + 8 of padding, in 16-byte words */
const uint CM_NW = WG / 32u;            /* subgroups */
const uint CM_PER = 32u / KPB;          /* K codes per word */
const uint CM_VPER = 32u / VPB;         /* V codes per word */
shared uvec4 cm_tile[G * CM_TLD];       /* a round's D / 2 channels of the chunk's G rows (K, then V) */
/* A of K (q', rows of D halves) and A of V (p', rows of G) take turns in one array */
const uint CM_LDAB = (D > G ? D : G) + 8u;
shared float16_t cm_ab[16u * CM_LDAB];
shared float cm_out[16u * (G > D ? G : D)]; /* the logits S, then the output O */

/* Row t of the tile, round r: its token's codes (words[] of KPB- or VPB-bit codes), or the fp16 row at
 * half index h of the windows (blocks never hold fp16 rows in these modes), or zeros. */
void cm_stage_codes(uint t, uint round, uvec4 words[4], uint bits)
{
    const uint PER = 32u / bits, HALF = PER / 2u;
    const uint WPR = D * bits / 64u; /* code words per round */
    uint pr[D / 4u];
    [[unroll]] for (uint k = 0u; k < WPR; k++) {
        uint kw = round * WPR + k, w = words[kw / 4u][kw % 4u];
        [[unroll]] for (uint c = 0u; c < HALF; c++) pr[k * HALF + c] = cm_pair(w, c, bits);
    }
    [[unroll]] for (uint q = 0u; q < D / 16u; q++) cm_tile[t * CM_TLD + q] = uvec4(pr[4u * q], pr[4u * q + 1u], pr[4u * q + 2u], pr[4u * q + 3u]);
}
void cm_stage_fp16(uint t, uint round, bool ok, uint h)
{
    [[unroll]] for (uint q = 0u; q < D / 16u; q++) cm_tile[t * CM_TLD + q] = ok ? win4[h / 8u + round * (D / 16u) + q] : uvec4(0u);
}

/* Row t of the tile for a chunk of this kind: codes (words), the fp16 window row at h (when the token
 * is there: ok), or zeros */
void cm_stage(uint t, uint round, uint kind, bool ok, uint h, uvec4 words[4], uint bits)
{
    if (kind == CK_CODES) cm_stage_codes(t, round, words, bits);
    else cm_stage_fp16(t, round, ok && kind == CK_WINDOW, h);
}

/* One step of one chunk (sd.kind[0]), its loads in L. */
void do_step_cm(inout item_state st, step_desc sd, step_loads L)
{
    uint lid = gl_LocalInvocationID.x, t = lid, w = lid / 32u;
    uint kind = sd.kind[0];
    bool codes = kind == CK_CODES, mine = t < sd.count[0];
    float zt[NZ], mx[NZ], lg[NR];
    [[unroll]] for (uint e = 0u; e < NZ; e++) zt[e] = 0.0, mx[e] = PKV_NEG_INF;
    /* A of K: q * s_K (codes, tile order) or q (fp16 window); the zero-point terms q.z_K */
    {
        uint i = lid; /* D == WG */
        float s = codes ? L.ks[0] : 1.0;
        uint pos = codes ? cm_pos(i, CM_PER) : i;
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            float q = q_s[i * NRV + r / 4u][r % 4u];
            cm_ab[r * CM_LDAB + pos] = float16_t(q * s);
            zt[r] = codes ? q * L.kz[0] : 0.0;
        }
    }
    /* K: two rounds of D / 2 channels, each subgroup over its own 32 tokens */
    fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> sacc[2];
    [[unroll]] for (uint n = 0u; n < 2u; n++) sacc[n] = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);
    uint kh = sd.kh[0] + t * D;
    bool skip_k = (pc.flags & ATTN_SKIP_K) != 0u, skip_v = (pc.flags & ATTN_SKIP_V) != 0u; /* timing aids */
    if (skip_k) barrier();
    else [[unroll]] for (uint round = 0u; round < 2u; round++) {
        uvec4 words[4];
        [[unroll]] for (uint k = 0u; k < 4u; k++) words[k] = k < KQ ? L.krow[min(k, KQ - 1u)] : uvec4(0u);
        cm_stage(t, round, kind, mine, kh, words, KPB);
        if (round == 0u) barrier(); /* q' (cm_ab) from every invocation; the tile rows are the subgroup's own */
        else subgroupBarrier();
        [[unroll]] for (uint j = 0u; j < D / 32u; j++) {
            fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> a, b;
            coopMatLoadNV(a, cm_ab, round * (D / 2u) + 16u * j, CM_LDAB, false);
            [[unroll]] for (uint n = 0u; n < 2u; n++) {
                coopMatLoadNV(b, cm_tile, (32u * w + 16u * n) * CM_TLD + 2u * j, CM_TLD, true);
                sacc[n] = coopMatMulAddNV(a, b, sacc[n]);
            }
        }
        subgroupBarrier(); /* the subgroup's rows are read before the next round (or V) writes them */
    }
    [[unroll]] for (uint n = 0u; n < 2u; n++) coopMatStoreNV(sacc[n], cm_out, 32u * w + 16u * n, G, false);
    subgroupBarrier();
    /* the logits of this invocation's token */
    float kunit = codes ? CM_UNIT : 1.0;
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        lg[r] = cm_out[r * G + t] * kunit;
        if (MODE == 0u && codes) lg[r] += qc_s[L.ka * NRV + r / 4u][r % 4u];
        if (!mine || sd.tok0[0] + t > st.limit[r]) lg[r] = PKV_NEG_INF;
        mx[r] = lg[r];
    }
    wg_reduce2(mx, true, zt, false);
    bool rescale = false;
    float alpha[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        float top = mx[r] + zt[r];
        alpha[r] = 1.0;
        if (top > st.m[r] + LAZY) {
            alpha[r] = exp2(st.m[r] - top);
            st.m[r] = top;
            rescale = true;
            st.l[r] *= alpha[r];
            st.pz[r] *= alpha[r];
            [[unroll]] for (uint c = 0u; c < CH; c++) st.acc[r][c] *= alpha[r];
        }
        float p = lg[r] == PKV_NEG_INF ? 0.0 : exp2(lg[r] + zt[r] - st.m[r]);
        lg[r] = p;
        st.l[r] += p;
        st.pz[r] += p * (codes ? L.vz : 0.0);
        cm_ab[r * CM_LDAB + t] = float16_t(p * (codes ? L.vs : 1.0));
    }
    if (MODE == 0u && rescale) { /* uniform: every invocation saw the same maxima */
        for (uint e = lid; e < NR * SCAP; e += WG) hist_set(e, hist_get(e) * pick(alpha, e / SCAP));
        barrier();
    }
    if (MODE == 0u)
        hist_step(codes && mine && L.gate != 0u && (pc.flags & ATTN_SKIP_HIST) == 0u ? L.va : HIST_NONE, lg);
    /* V: two rounds of D / 2 channels; subgroup w owns the 16 channels 16w.. of each */
    fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> oacc[2];
    uint vh = sd.vh[0] + t * D;
    oacc[0] = oacc[1] = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);
    if (!skip_v) [[unroll]] for (uint round = 0u; round < 2u; round++) {
        if (round == 1u) barrier(); /* every subgroup has read round 0's tile */
        uvec4 words[4];
        [[unroll]] for (uint k = 0u; k < 4u; k++) words[k] = k < VQR ? L.vrow[min(k, VQR - 1u)] : uvec4(0u);
        cm_stage(t, round, kind, mine, vh, words, VPB);
        barrier(); /* the tile and p' (cm_ab) */
        [[unroll]] for (uint j = 0u; j < G / 16u; j++) {
            fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> a, b;
            coopMatLoadNV(a, cm_ab, 16u * j, CM_LDAB, false);
            coopMatLoadNV(b, cm_tile, 16u * j * CM_TLD + 2u * w, CM_TLD, false);
            oacc[round] = coopMatMulAddNV(a, b, oacc[round]);
        }
    }
    [[unroll]] for (uint round = 0u; round < 2u; round++) coopMatStoreNV(oacc[round], cm_out, round * (D / 2u) + 16u * w, D, false);
    barrier();
    /* the chunk's O into the accumulators of (channel group g, slice 0), in their units */
    uint g = lid % NG, s = lid / NG;
    float vunit = codes ? CM_UNIT : 1.0;
    if (s == 0u)
        [[unroll]] for (uint c = 0u; c < CH; c++) {
            uint i = g * CH + c, src = codes ? cm_pos(i, CM_VPER) : i;
            [[unroll]] for (uint r = 0u; r < NR; r++) st.acc[r][c] += cm_out[r * D + src] * vunit * code_unfactor(c, VBITS);
        }
    barrier(); /* cm_out and the tile are free for the next step */
}

/* cm_ab's rows past NR stay zero */
void cm_init()
{
    for (uint e = gl_LocalInvocationID.x; e < 16u * CM_LDAB; e += WG) cm_ab[e] = float16_t(0.0);
}
