#version 450
/* Attention over the compressed cache in one pass (flash-decoding), q_len = 1 and q_len > 1 alike.
 *
 * Workgroup (item, tile, kv head): an item is a run of chunks of one sequence, a chunk being one
 * compressed block (G tokens) or up to G tokens of the fp16 window. The workgroup serves the NR
 * query rows of its tile (the GQA heads of the kv head, times the query positions), so every byte
 * of the cache is read once per tile. It walks its item in steps of BPS = WG / G chunks, one token
 * per invocation, so that the fixed costs of a step (barriers, reductions) are shared by BPS chunks.
 * Per step:
 *   0. every load of the step is issued at once, before the previous step's work (PREFETCH; one
 *      memory round trip, not one per phase): K scales and zeros, per-token V scale, zero, pattern
 *      indices and gate bit, the token's K code row, and the invocation's share of the V codes
 *      (staged into shared memory after step 2);
 *   1. qs_i = q_i * s_K,i per chunk (times the power of two of the code conversion below) and the
 *      zero-point terms q.z_K (partial per invocation);
 *   2. logits: sum_i qs_i code_i + qc[a_t] (+ q.z_K once it is reduced), codes made exact floats
 *      without a conversion instruction (bits | 0x4B000000 is the float 2^23 + bits);
 *   3. the chunks' maxima and the running max (which moves only when it grows by more than 2^8, so
 *      rescaling is rare), weights p = 2^(logit - m); per invocation the sums l and sum p z_t; the V
 *      histogram S[r][a_t] += p for gated tokens (shared atomics);
 *   4. V: invocation (channel group, token slice) accumulates p s_t code_t,i in registers.
 * At the end of the item: the slices' sums + sum_m S[m] P_V[m] + sum_t p_t z_t make a partial
 * (m, l, o[D]), merged by the last workgroup of its (sequence, kv head, tile) to finish, or by
 * attn_merge.comp. Logits are in log2 units (q is prescaled by scale * log2(e)). The q.C_K table
 * comes from attn_qc.comp. Arithmetic is free (FMA, any order): attention is judged against an fp64
 * reference within a tolerance (docs/NUMERICS.md), not bit for bit. */
#extension GL_EXT_control_flow_attributes : require
#include "pkv_math.h"
#define PKV_ARENAS_READONLY
#include "pkv_buffers.glsl"
#include "attn_common.glsl"
#include "attn_codes.glsl"

/* TEAMS > 1: the workgroup holds TEAMS teams of BPS * G invocations, each on its own item of one
 * (sequence, kv head, tile), which share q and the q.C table and meet at every barrier. The point is
 * the register budget: NVIDIA's compiler fits a workgroup of 512 in 128 registers per invocation (16
 * warps per SM) where it gives one of 128 up to 255 (8); Vulkan has no other way to ask for fewer. */
layout(constant_id = 14) const uint TEAMS = 1;
const uint WG = gl_WorkGroupSize.x / TEAMS; /* a team: the host makes it BPS * G, one token per invocation */
const uint BPS = WG / G;            /* chunks per step */
const uint NZ = NR * BPS;           /* one value per row and chunk of a step */
const uint CH = VCH;                /* channels per invocation in the V phase */
const uint NG = (D + CH - 1u) / CH; /* channel groups */
const uint NS = WG / NG;            /* token slices */
const uint CE = (D + WG - 1u) / WG; /* channels per invocation in per-channel loops */
const uint CEB = (D + G - 1u) / G;  /* (chunk, channel) pairs per invocation in a step's metadata */
const uint SCAP = MODE == 0u ? CAP : 1u;
const uint KQ = (KRW + 3u) / 4u;    /* 16-byte words of a K code row */
/* the row is loaded at the step's start (as integers: glslang mis-optimises && of spec constants) */
const uint K_REGS_U = (STAGE_K == 0u ? 1u : 0u) * (KRW % 4u == 0u ? 1u : 0u) * (KQ <= 4u ? 1u : 0u);
const bool K_IN_REGS = K_REGS_U != 0u;
/* 16-byte words of a chunk's staged K: its code section, or (fp16) its G rows of D halves */
const uint KSEC4 = MODE == 2u ? G * D / 8u : (G * KRW + 3u) / 4u;
const uint KD8 = D / 8u; /* fp16: 16-byte words of a K row */
/* fp16 staged K: word k of row t sits at k ^ (t & KSWZ) so that 8 invocations reading word k of 8
 * consecutive rows hit 8 different 16-byte bank groups */
const uint KSWZ = KD8 % 8u == 0u ? 7u : 0u;
/* whether a step has loads to issue ahead: compressed chunks, or staged fp16 K (as integers, as above) */
/* fp16 mode's K rows staged (the fp16 window chunks of the other modes never are) */
const bool FP16_STAGED = (MODE == 2u ? 1u : 0u) * (STAGE_K != 0u ? 1u : 0u) != 0u; /* (as integers, as above) */
const bool STEP_LOADS = (MODE != 2u ? 1u : 0u) + (STAGE_K != 0u ? 1u : 0u) != 0u;
const uint KQS = STAGE_K != 0u ? (BPS * KSEC4 + WG - 1u) / WG : 1u; /* 16-byte loads per invocation to stage K */
const uint VSEC = MODE == 2u || STAGE_V == 0u ? 4u : G * VRW; /* words of a chunk's staged V code section */
const uint VQ = (BPS * VSEC / 4u + WG - 1u) / WG; /* 16-byte loads per invocation to stage them */
const float LAZY = 8.0;
#ifdef PKV_COOPMAT
const uint CM_SCALAR = 0u; /* the scalar step's shared arrays are not used */
#else
const uint CM_SCALAR = 1u;
#endif
const uint VQR = (VRW + 3u) / 4u; /* 16-byte words of a V code row */

/* (one team: the plain ids, so that its build is the one-item kernel's) */
uint team_id() { return TEAMS == 1u ? 0u : gl_LocalInvocationID.x / WG; }
uint team_lid() { return TEAMS == 1u ? gl_LocalInvocationID.x : gl_LocalInvocationID.x % WG; }
#define LID team_lid()

shared vec4 q_s[D * NRV];        /* q * scale * log2(e), [channel][row set] */
shared vec4 qc_s[SCAP * NRV];    /* q . P_K[m] of the tile's rows */
shared uint vw_s[TEAMS * BPS * VSEC]; /* per step: the chunks' V codes */
shared uvec4 kq_s[STAGE_K != 0u ? TEAMS * BPS * KSEC4 : 1u]; /* per step: the chunks' K codes (STAGE_K) */
shared uint S_s[TEAMS * NR * SCAP]; /* V histogram, [row][pattern]: float bits, or the low words (HIST_FIXED) */
shared uint Sh_s[HIST_FIXED != 0u ? TEAMS * NR * SCAP : 1u]; /* HIST_FIXED: the high words */
/* Per team: qs (per step: q * s_K * 2^-shift of each chunk) and w (per step: p * s_V, or p in fp16
 * mode) in one pool, and acc (end of item: the slices' sums of one row; the fold's; merge: weights):
 * with several teams over the pool (a barrier apart; shared memory is scarce), with one in acc_s
 * (the one-item kernel's layout, which measured faster for DIRECT 8-bit). */
const uint QS_N = CM_SCALAR * BPS * D * NRV, W_N = CM_SCALAR * WG * NRV;
const uint ACC_N = WG * CH > NR * D ? WG * CH : NR * D;
const uint ACC_POOL = TEAMS > 1u ? (ACC_N + 3u) / 4u : 0u;
const uint POOL_N = QS_N + W_N > ACC_POOL ? QS_N + W_N : ACC_POOL;
shared vec4 pool_s[TEAMS * POOL_N + 1u]; /* + 1: never empty (the cooperative-matrix build, one team) */
shared float acc_s[TEAMS == 1u ? ACC_N : 1u];
#define VW0_T (team_id() * BPS * VSEC)
#define KQ0_T (team_id() * BPS * KSEC4)
#define QS_S(i) pool_s[team_id() * POOL_N + (i)]
#define W_S(i) pool_s[team_id() * POOL_N + QS_N + (i)]
float acc_get(uint k) { return TEAMS == 1u ? acc_s[k] : pool_s[team_id() * POOL_N + k / 4u][k % 4u]; }
void acc_set(uint k, float v)
{
    if (TEAMS == 1u) acc_s[k] = v;
    else pool_s[team_id() * POOL_N + k / 4u][k % 4u] = v;
}
shared uint vchunk_s[8];         /* the V bank's chunk slots */


#define RED_N NZ
#define RED_TEAMS TEAMS
#include "wg_reduce.glsl"
#define PART_WORD(i) scrc[i]
#define PART_VEC4(i) uintBitsToFloat(scrc4[(i) / 4u])
#define MERGE_GET(k) acc_get(k)
#define MERGE_SET(k, v) acc_set(k, v)
#define MERGE_ITEMS TEAMS
#include "attn_merge.glsl"

/* The state of one item: per row the running max, this invocation's sums of p and p z_t, and its
 * V accumulators (rows x the channels of its group). */
struct item_state {
    float m[NR], l[NR], pz[NR];
    float acc[NR][CH];
    uint limit[NR]; /* causal: the last token each row sees */
};

/* The chunks of a step: what each is (none, compressed block, fp16 block, fp16 window), where, how
 * many tokens, the first token's position. Uniform over the workgroup. */
const uint CK_NONE = 0u, CK_CODES = 1u, CK_FP16 = 2u, CK_WINDOW = 3u;
struct step_desc {
    uint kind[BPS], base[BPS], kh[BPS], vh[BPS], count[BPS], tok0[BPS];
};

/* a[j] for a chunk index known only at run time (keeps a[] in registers) */
uint chunk_pick(uint a[BPS], uint j)
{
    uint v = a[0];
    [[unroll]] for (uint b = 1u; b < BPS; b++) v = j == b ? a[b] : v;
    return v;
}

/* What one invocation loads for a step, all at once. */
struct step_loads {
    uvec4 krow[KQ];   /* its token's K code row (K_IN_REGS) */
#ifdef PKV_COOPMAT
    uvec4 vrow[VQR];  /* its token's V code row */
#endif
    uvec4 vq[VQ];     /* its share of the V codes, staged to vw_s */
    uvec4 kq[KQS];    /* its share of the K codes, staged to kq_s (STAGE_K) */
    float ks[CEB], kz[CEB];
    float vs, vz;
    uint ka, va, gate;
};


#define S_AT(i) S_s[team_id() * (NR * SCAP) + (i)]
#define SH_AT(i) Sh_s[team_id() * (NR * SCAP) + (i)]
#include "attn_hist.glsl"

/* The V histogram's adds of one step: S[r][key] += p[r] for this invocation's gated token (key
 * HIST_NONE: none). */
const uint HIST_NONE = 0xffffffffu;
void hist_step(uint key, float p[NR])
{
    if (key != HIST_NONE)
        [[unroll]] for (uint r = 0u; r < NR; r++)
            if (p[r] != 0.0) hist_add(r * SCAP + key, p[r]);
}

/* Chunk c of the item's sequence (nb compressed blocks, nw window tokens; `slot` the block slot of
 * a compressed chunk, loaded ahead by the caller; the window at half index wb). */
void describe_chunk(uint c, uint c1, uint nb, uint nw, uint slot, uint wb, out uint kind, out uint base, out uint kh,
                    out uint vh, out uint count, out uint tok0)
{
    kind = CK_NONE, base = 0u, kh = 0u, vh = 0u, count = 0u, tok0 = c * G;
    if (c >= c1) return;
    if (c < nb) {
        base = slot * pc.block_words;
        kind = MODE == 2u ? CK_FP16 : CK_CODES;
        kh = base * 2u + pc.o_kcodes * 2u, vh = base * 2u + pc.o_vcodes * 2u;
        count = G;
    } else {
        uint w0 = (c - nb) * G;
        kind = CK_WINDOW;
        kh = wb + w0 * D, vh = wb + (pc.R + w0) * D;
        count = min(G, nw - w0);
    }
}

/* The block slots of the BPS chunks from c on (0 past the compressed blocks) */
void load_slots(uint c, uint c1, uint nb, uint slots, out uint sl[BPS])
{
    [[unroll]] for (uint b = 0u; b < BPS; b++) sl[b] = c + b < min(c1, nb) ? scr[slots + (c + b) * pc.H] : 0u;
}

void describe_step(uint c, uint c1, uint nb, uint nw, uint sl[BPS], uint wb, out step_desc sd)
{
    [[unroll]] for (uint b = 0u; b < BPS; b++)
        describe_chunk(c + b, c1, nb, nw, sl[b], wb, sd.kind[b], sd.base[b], sd.kh[b], sd.vh[b], sd.count[b], sd.tok0[b]);
}

void load_step(step_desc sd, out step_loads L)
{
    uint lid = LID, j = lid / G, t = lid % G;
    /* only compressed chunks have anything to load (a step may hold window chunks, or none) */
    [[unroll]] for (uint e = 0u; e < CEB; e++) { /* (chunk, channel) pair lid + e WG */
        uint pj = min((lid + e * WG) / D, BPS - 1u), i = (lid + e * WG) % D, b = chunk_pick(sd.base, pj);
        bool ok = chunk_pick(sd.kind, pj) == CK_CODES;
        L.ks[e] = ok ? blk_hf(b * 2u + pc.o_kscale * 2u + i) : 0.0;
        L.kz[e] = ok ? blk_hf(b * 2u + pc.o_kzero * 2u + i) : 0.0;
    }
    uint base = chunk_pick(sd.base, j), tt = min(t, G - 1u);
    if (chunk_pick(sd.kind, j) == CK_CODES) {
        L.vs = blk_hf(base * 2u + pc.o_vscale * 2u + tt);
        L.vz = blk_hf(base * 2u + pc.o_vzero * 2u + tt);
        L.ka = MODE == 0u ? (blk[base + pc.o_kidx + tt / 4u] >> (8u * (tt % 4u))) & 255u : 0u;
        L.va = MODE == 0u ? (blk[base + pc.o_vidx + tt / 4u] >> (8u * (tt % 4u))) & 255u : 0u;
        L.gate = MODE == 0u ? (blk[base + pc.o_vmask + tt / 32u] >> (tt % 32u)) & 1u : 0u;
        if (K_IN_REGS)
            [[unroll]] for (uint k = 0u; k < KQ; k++) L.krow[k] = blk4[(base + pc.o_kcodes) / 4u + tt * KQ + k];
#ifdef PKV_COOPMAT
        [[unroll]] for (uint k = 0u; k < VQR; k++) L.vrow[k] = blk4[(base + pc.o_vcodes) / 4u + tt * VQR + k];
#endif
    } else {
        L.vs = 1.0, L.vz = 0.0, L.ka = 0u, L.va = 0u, L.gate = 0u;
        if (K_IN_REGS) [[unroll]] for (uint k = 0u; k < KQ; k++) L.krow[k] = uvec4(0u);
#ifdef PKV_COOPMAT
        [[unroll]] for (uint k = 0u; k < VQR; k++) L.vrow[k] = uvec4(0u);
#endif
    }
    if (STAGE_K != 0u)
        [[unroll]] for (uint q = 0u; q < KQS; q++) {
            uint e = min(lid + q * WG, BPS * KSEC4 - 1u), ej = e / KSEC4, kind = chunk_pick(sd.kind, ej);
            if (MODE == 2u) { /* fp16 rows, read whole by consecutive invocations (coalesced) */
                uint x = e % KSEC4, h8 = chunk_pick(sd.kh, ej) / 8u + x;
                bool ok = x / KD8 < chunk_pick(sd.count, ej);
                L.kq[q] = ok ? (kind == CK_WINDOW ? win4[h8] : blk4[h8]) : uvec4(0u);
            } else {
                L.kq[q] = kind == CK_CODES ? blk4[(chunk_pick(sd.base, ej) + pc.o_kcodes) / 4u + e % KSEC4] : uvec4(0u);
            }
        }
    if (STAGE_V != 0u && MODE != 2u)
        [[unroll]] for (uint q = 0u; q < VQ; q++) {
            uint e = min(lid + q * WG, BPS * VSEC / 4u - 1u), ej = e / (VSEC / 4u);
            L.vq[q] = chunk_pick(sd.kind, ej) == CK_CODES ? blk4[(chunk_pick(sd.base, ej) + pc.o_vcodes) / 4u + e % (VSEC / 4u)] : uvec4(0u);
        }
}

/* a = b (GLSL does not assign structs holding arrays sized by specialization constants) */
void copy_step(step_desc sa, step_loads la, out step_desc sb, out step_loads lb)
{
    [[unroll]] for (uint b = 0u; b < BPS; b++) {
        sb.kind[b] = sa.kind[b], sb.base[b] = sa.base[b], sb.kh[b] = sa.kh[b];
        sb.vh[b] = sa.vh[b], sb.count[b] = sa.count[b], sb.tok0[b] = sa.tok0[b];
    }
    [[unroll]] for (uint k = 0u; k < KQ; k++) lb.krow[k] = la.krow[k];
#ifdef PKV_COOPMAT
    [[unroll]] for (uint k = 0u; k < VQR; k++) lb.vrow[k] = la.vrow[k];
#endif
    [[unroll]] for (uint q = 0u; q < VQ; q++) lb.vq[q] = la.vq[q];
    [[unroll]] for (uint q = 0u; q < KQS; q++) lb.kq[q] = la.kq[q];
    [[unroll]] for (uint e = 0u; e < CEB; e++) lb.ks[e] = la.ks[e], lb.kz[e] = la.kz[e];
    lb.vs = la.vs, lb.vz = la.vz, lb.ka = la.ka, lb.va = la.va, lb.gate = la.gate;
}

/* Word j of the K code row at word w0 (in kq_s when staged, else in memory), or of the registers. */
uint krow_word(step_loads L, uint w0, uint j)
{
    if (STAGE_K != 0u) return kq_s[KQ0_T + (w0 + j) / 4u][(w0 + j) % 4u];
    return K_IN_REGS ? L.krow[j / 4u][j % 4u] : blk[w0 + j];
}

/* The 4 words from 4 k4 of a K code row: dot += qs . codes (qs of chunk qj of the step) */
void code_quad(step_loads L, uint w0, uint k4, uint qj, inout vec4 dot[2])
{
    const uint PER = 32u / KPB, MASK = (1u << KPB) - 1u;
    [[unroll]] for (uint kk = 0u; kk < 4u; kk++) {
        uint k = 4u * k4 + kk;
        if (k >= KW0) break;
        uint w = krow_word(L, w0, k), wh = w >> 16;
        uint hi = KBITS == 3u ? krow_word(L, w0, KW0 + k / 2u) >> ((k % 2u) * 16u) : 0u;
        [[unroll]] for (uint c = 0u; c < PER; c++) {
            uint i = k * PER + c;
            if (i < D) {
                float cf = KBITS == 3u ? int_float(((w >> (2u * c)) & 3u) | (((hi >> c) & 1u) << 2))
                                       : code_float(w, wh, c * KPB, MASK);
                [[unroll]] for (uint v = 0u; v < NRV; v++) dot[v] += QS_S((qj * D + i) * NRV + v) * cf;
            }
        }
    }
}

/* sum_i qs_i code_i over a K code row (at word w0) with the qs of chunk qj */
void code_dot(step_loads L, uint w0, uint qj, out float lg[NR])
{
    vec4 dot[2] = vec4[2](vec4(0.0), vec4(0.0));
    if (K_IN_REGS) {
        [[unroll]] for (uint k4 = 0u; k4 < KQ; k4++) code_quad(L, w0, k4, qj, dot);
    } else {
        for (uint k4 = 0u; k4 < (KW0 + 3u) / 4u; k4++) code_quad(L, w0, k4, qj, dot);
    }
    [[unroll]] for (uint r = 0u; r < NR; r++) lg[r] = dot[r / 4u][r % 4u];
}

/* q.x for an fp16 row of D halves starting at half index h0 of blocks or windows, 4 loads of 16
 * bytes in flight; FP16_STAGED: row t of chunk j of the staged rows */
void fp16_dot(bool window, uint h0, uint j, uint t, out float lg[NR])
{
    vec4 dot[2] = vec4[2](vec4(0.0), vec4(0.0));
    for (uint k0 = 0u; k0 < D / 8u; k0 += 4u) {
        uvec4 w[4];
        [[unroll]] for (uint kk = 0u; kk < 4u; kk++) {
            uint k = min(k0 + kk, D / 8u - 1u);
            if (FP16_STAGED) w[kk] = kq_s[KQ0_T + j * KSEC4 + t * KD8 + (k ^ (t & KSWZ))];
            else w[kk] = window ? win4[h0 / 8u + k] : blk4[h0 / 8u + k];
        }
        [[unroll]] for (uint kk = 0u; kk < 4u; kk++) {
            if (k0 + kk >= D / 8u) break;
            [[unroll]] for (uint j = 0u; j < 4u; j++) {
                vec2 x = unpackHalf2x16(w[kk][j]);
                uint i = 8u * (k0 + kk) + 2u * j;
                [[unroll]] for (uint v = 0u; v < NRV; v++) dot[v] += q_s[i * NRV + v] * x.x + q_s[(i + 1u) * NRV + v] * x.y;
            }
        }
    }
    [[unroll]] for (uint r = 0u; r < NR; r++) lg[r] = dot[r / 4u][r % 4u];
}

/* V of one compressed token: row `t` of chunk j's codes (staged, or in memory at word `row0`) */
void v_codes(inout item_state st, uint j, uint t, uint row0, vec4 wt[2], uint g)
{
    const uint MASK = (1u << VPB) - 1u;
    const uint WPG = (CH * VPB + 31u) / 32u; /* plane-0 words per group (1, 2 or 4; part of a word) */
    uint bit0 = g * CH * VPB, hbit = g * CH, row = t * VRW;
    uint wv[4];
    [[unroll]] for (uint q = 0u; q < WPG; q++) {
        uint a = row + bit0 / 32u + q;
        wv[q] = (STAGE_V != 0u ? vw_s[VW0_T + j * VSEC + a] : blk[row0 + a]) >> (bit0 % 32u);
    }
    uint ah = row + VW0 + hbit / 32u;
    uint hi = VBITS == 3u ? (STAGE_V != 0u ? vw_s[VW0_T + j * VSEC + ah] : blk[row0 + ah]) >> (hbit % 32u) : 0u;
    [[unroll]] for (uint c = 0u; c < CH; c++) {
        uint sh = c * VPB;
        float cf = VBITS == 3u ? int_float(((wv[0] >> sh) & 3u) | (((hi >> c) & 1u) << 2))
                               : code_float(wv[sh / 32u], wv[sh / 32u] >> 16, sh % 32u, MASK);
        [[unroll]] for (uint r = 0u; r < NR; r++) st.acc[r][c] += wt[r / 4u][r % 4u] * cf;
    }
}

/* The CH halves of V of one fp16 token from half index h (blocks or windows) */
void v_fp16_load(bool window, uint h, out uint w[8])
{
    [[unroll]] for (uint k = 0u; k < CH / 2u; k++) w[k] = window ? win[h / 2u + k] : blk[h / 2u + k];
}

/* V of one fp16 token: its CH halves w, weighted by wt */
void v_fp16(inout item_state st, uint w[8], vec4 wt[2])
{
    [[unroll]] for (uint k = 0u; k < CH / 2u; k++) {
        vec2 x = unpackHalf2x16(w[k]);
        uint c = 2u * k;
        /* in the units of the compressed chunks' accumulators (their power of two) */
        float f0 = code_unfactor(c, VBITS), f1 = code_unfactor(c + 1u, VBITS);
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            float p = wt[r / 4u][r % 4u];
            st.acc[r][c] += p * (x.x * f0);
            st.acc[r][c + 1u] += p * (x.y * f1);
        }
    }
}

/* One step: the chunks of sd, their loads in L. */
void do_step(inout item_state st, step_desc sd, step_loads L)
{
    uint lid = LID, j = lid / G, t = lid % G;
    uint kind = chunk_pick(sd.kind, j);
    bool codes = kind == CK_CODES, mine = t < chunk_pick(sd.count, j);
    float zt[NZ], mx[NZ], lg[NR];
    [[unroll]] for (uint e = 0u; e < NZ; e++) zt[e] = 0.0, mx[e] = PKV_NEG_INF;
    if (MODE != 2u) /* 1. q * s_K and the zero-point terms of each chunk */
        [[unroll]] for (uint e = 0u; e < CEB; e++) {
            uint pj = (lid + e * WG) / D, i = (lid + e * WG) % D;
            if (pj < BPS && chunk_pick(sd.kind, pj) == CK_CODES) {
                float s = L.ks[e] * code_factor(i, KBITS);
                [[unroll]] for (uint v = 0u; v < NRV; v++) {
                    vec4 q = q_s[i * NRV + v];
                    QS_S((pj * D + i) * NRV + v) = q * s;
                    [[unroll]] for (uint k = 0u; k < 4u; k++)
                        [[unroll]] for (uint b = 0u; b < BPS; b++)
                            if (4u * v + k < NR && b == pj) zt[b * NR + 4u * v + k] += q[k] * L.kz[e];
                }
            }
        }
    if (STAGE_K != 0u) /* the K codes or fp16 rows (waits for their loads) */
        [[unroll]] for (uint q = 0u; q < KQS; q++) {
            uint e = lid + q * WG, x = e % KSEC4, dst = e;
            if (MODE == 2u) dst = e - x + (x / KD8) * KD8 + ((x % KD8) ^ ((x / KD8) & KSWZ)); /* swizzled */
            if (e < BPS * KSEC4) kq_s[KQ0_T + dst] = L.kq[q];
        }
    barrier();
    /* 2. logits of this invocation's token, without the zero-point term */
    if (mine) {
        if ((pc.flags & ATTN_SKIP_K) != 0u) {
            [[unroll]] for (uint r = 0u; r < NR; r++) lg[r] = 0.0;
        } else if (codes) {
            code_dot(L, STAGE_K != 0u ? j * KSEC4 * 4u + t * KRW : chunk_pick(sd.base, j) + pc.o_kcodes + t * KRW, j, lg);
            if (MODE == 0u) [[unroll]] for (uint r = 0u; r < NR; r++) lg[r] += qc_s[L.ka * NRV + r / 4u][r % 4u];
        } else {
            fp16_dot(kind == CK_WINDOW, chunk_pick(sd.kh, j) + t * D, j, t, lg);
        }
    }
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        if (!mine || chunk_pick(sd.tok0, j) + t > st.limit[r]) lg[r] = PKV_NEG_INF;
        [[unroll]] for (uint b = 0u; b < BPS; b++)
            if (b == j) mx[b * NR + r] = lg[r];
    }
    /* 3. the chunks' maxima with their zero-point terms; the running max; weights */
    wg_reduce2(mx, true, zt, false);
    bool rescale = false;
    float alpha[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        float top = PKV_NEG_INF, ztj = 0.0;
        [[unroll]] for (uint b = 0u; b < BPS; b++) {
            top = max(top, mx[b * NR + r] + zt[b * NR + r]);
            ztj = b == j ? zt[b * NR + r] : ztj;
        }
        alpha[r] = 1.0;
        if (top > st.m[r] + LAZY) {
            alpha[r] = exp2(st.m[r] - top);
            st.m[r] = top;
            rescale = true;
            st.l[r] *= alpha[r];
            st.pz[r] *= alpha[r];
            [[unroll]] for (uint c = 0u; c < CH; c++) st.acc[r][c] *= alpha[r];
        }
        float p = lg[r] == PKV_NEG_INF ? 0.0 : exp2(lg[r] + ztj - st.m[r]);
        lg[r] = p;
        st.l[r] += p;
        st.pz[r] += p * (codes ? L.vz : 0.0);
    }
    if (MODE == 0u && (rescale || TEAMS > 1u)) { /* uniform in a team: every invocation saw the same maxima */
        if (rescale)
            for (uint e = lid; e < NR * SCAP; e += WG) hist_set(e, hist_get(e) * pick(alpha, e / SCAP));
        barrier();
    }
    vec4 wt[2];
    [[unroll]] for (uint r = 0u; r < NR; r++) wt[r / 4u][r % 4u] = lg[r] * (codes ? L.vs : 1.0);
    [[unroll]] for (uint v = 0u; v < NRV; v++) W_S(lid * NRV + v) = wt[v];
    if (MODE == 0u)
        hist_step(codes && mine && L.gate != 0u && (pc.flags & ATTN_SKIP_HIST) == 0u ? L.va : HIST_NONE, lg);
    if (STAGE_V != 0u && MODE != 2u) /* the V codes arrived during the K phase */
        [[unroll]] for (uint q = 0u; q < VQ; q++) {
            uint e = lid + q * WG;
            if (e < BPS * VSEC / 4u) {
                uint a = VW0_T + 4u * e;
                vw_s[a] = L.vq[q].x, vw_s[a + 1u] = L.vq[q].y, vw_s[a + 2u] = L.vq[q].z, vw_s[a + 3u] = L.vq[q].w;
            }
        }
    barrier();
    /* 4. V: channel group g over the tokens of slice s */
    uint g = lid % NG, s = lid / NG;
    if (s >= NS || (pc.flags & ATTN_SKIP_V) != 0u) return;
    if (MODE == 2u && PREFETCH != 0u) { /* fp16 only: VB tokens' loads in flight at once */
        for (uint u0 = s; u0 < WG; u0 += VB * NS) {
            uint w[VB][8]; /* CH / 2 <= 8 words used */
            [[unroll]] for (uint k = 0u; k < VB; k++) {
                uint u = min(u0 + k * NS, WG - 1u), uj = u / G, ut = u % G;
                if (ut < chunk_pick(sd.count, uj)) v_fp16_load(chunk_pick(sd.kind, uj) == CK_WINDOW, chunk_pick(sd.vh, uj) + ut * D + g * CH, w[k]);
                else [[unroll]] for (uint q = 0u; q < CH / 2u; q++) w[k][q] = 0u;
            }
            [[unroll]] for (uint k = 0u; k < VB; k++) {
                uint u = u0 + k * NS;
                if (u >= WG) break;
                [[unroll]] for (uint v = 0u; v < NRV; v++) wt[v] = W_S(u * NRV + v);
                v_fp16(st, w[k], wt);
            }
        }
        return;
    }
    for (uint u = s; u < WG; u += NS) {
        uint uj = u / G, ut = u % G, ukind = chunk_pick(sd.kind, uj);
        if (ut >= chunk_pick(sd.count, uj)) continue;
        [[unroll]] for (uint v = 0u; v < NRV; v++) wt[v] = W_S(u * NRV + v);
        if (ukind == CK_CODES) {
            v_codes(st, uj, ut, chunk_pick(sd.base, uj) + pc.o_vcodes, wt, g);
        } else {
            uint w[8];
            v_fp16_load(ukind == CK_WINDOW, chunk_pick(sd.vh, uj) + ut * D + g * CH, w);
            v_fp16(st, w, wt);
        }
    }
}

#include "attn_fold.glsl"

#ifdef PKV_COOPMAT
#include "attn_step_cm.glsl"
#define DO_STEP do_step_cm
#else
#define DO_STEP do_step
#endif

void main()
{
    uint lid = LID, all = gl_LocalInvocationID.x; /* in the team, in the workgroup */
    /* the teams' items are of one sequence (the planner makes each sequence's items a multiple of TEAMS) */
    uint item = gl_WorkGroupID.x * TEAMS + team_id(), tile = gl_WorkGroupID.y, head = gl_WorkGroupID.z;
    uint seq = scr[pc.item_off + 2u * item], split = scr[pc.item_off + 2u * item + 1u];
    uint nb = seq_n_blocks(seq), nw = seq_n_window(seq), nsplit = seq_n_items(seq);
    uint T = nb * G + nw, n_chunks = nb + (nw + G - 1u) / G;
    uint slots = seq_blocks(seq) + head; /* the kv head's block slots, pc.H apart */
    uint wb = nw > 0u ? seq_window(seq, head) * pc.window_words * 2u : 0u;

    item_state st;
    uint row_of[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        row_of[r] = tile_row(seq, head, tile, r);
        st.limit[r] = T - pc.q_len + (row_of[r] / pc.n_q_heads) % pc.q_len;
        st.m[r] = PKV_NEG_INF;
        st.l[r] = 0.0;
        st.pz[r] = 0.0;
        [[unroll]] for (uint c = 0u; c < CH; c++) st.acc[r][c] = 0.0;
    }
    for (uint e = all; e < D * NRV * 4u; e += gl_WorkGroupSize.x) {
        uint i = e / (NRV * 4u), r = e % (NRV * 4u);
        float q = r < NR && tile_row_real(tile, r) ? q_value(tile_row(seq, head, tile, r), i) * pc.scale : 0.0;
        q_s[i * NRV + r / 4u][r % 4u] = q;
    }
    if (MODE == 0u) {
        if (all < 8u) vchunk_s[all] = all * 32u < seq_bank(seq) ? seq_chunk(seq, head, all) : 0u;
        for (uint e = lid; e < NR * SCAP; e += WG) hist_set(e, 0.0);
        uint bank = seq_bank(seq);
        for (uint e = all; e < bank * NRV; e += gl_WorkGroupSize.x) qc_s[e] = scr4[qc_index(seq, head, tile, 0u) + e];
    }
#ifdef PKV_COOPMAT
    cm_init();
#endif
    barrier();

    /* Steps from c0 to c1. With PREFETCH the loads of step n + 1 are issued before the work of step n
     * (and the block slots of step n + 2 before that), so memory latency overlaps arithmetic. (Two
     * steps ahead was no faster on the H200: bench/RESULTS.md, session 7.) */
    uint c0 = split * pc.cps, c1 = min(n_chunks, c0 + pc.cps);
    uint sl[BPS];
    load_slots(c0, c1, nb, slots, sl);
    step_desc sd;
    step_loads L;
    describe_step(c0, c1, nb, nw, sl, wb, sd);
    if (STEP_LOADS) load_step(sd, L);
    if (PREFETCH != 0u) load_slots(c0 + BPS, c1, nb, slots, sl);
    /* teams meet at every barrier: each walks cps chunks (those past its item's end are empty) */
    uint c_end = TEAMS > 1u ? c0 + pc.cps : c1;
    for (uint c = c0; c < c_end; c += BPS) {
        if (PREFETCH != 0u) {
            step_desc sn;
            step_loads Ln;
            describe_step(c + BPS, c1, nb, nw, sl, wb, sn);
            if (STEP_LOADS && c + BPS < c1) load_step(sn, Ln);
            load_slots(c + 2u * BPS, c1, nb, slots, sl);
            DO_STEP(st, sd, L);
            copy_step(sn, Ln, sd, L);
        } else {
            DO_STEP(st, sd, L);
            load_slots(c + BPS, c1, nb, slots, sl);
            describe_step(c + BPS, c1, nb, nw, sl, wb, sd);
            if (STEP_LOADS && c + BPS < c1) load_step(sd, L);
        }
    }

    /* the item's partial: l and the zero-point sums over tokens, the slices' V sums */
    {
        float a[NZ], b[NZ];
        [[unroll]] for (uint e = 0u; e < NZ; e++) a[e] = e < NR ? st.l[e] : 0.0, b[e] = e < NR ? st.pz[e] : 0.0;
        wg_sum_sum(a, b);
        [[unroll]] for (uint r = 0u; r < NR; r++) st.l[r] = a[r], st.pz[r] = b[r];
    }
    float o[NR][CE];
    uint g = lid % NG, s = lid / NG;
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        barrier(); /* acc_s free again */
        if (s < NS)
            [[unroll]] for (uint c = 0u; c < CH; c++) {
                uint i = g * CH + c;
                if (i < D) acc_set(s * D + i, st.acc[r][c] * code_factor(c, VBITS));
            }
        barrier();
        [[unroll]] for (uint e = 0u; e < CE; e++) {
            uint i = lid + e * WG;
            float sum = st.pz[r];
            if (i < D)
                for (uint k = 0u; k < NS; k++) sum += acc_get(k * D + i);
            o[r][e] = sum;
        }
    }
    if (MODE == 0u && (pc.flags & ATTN_SKIP_FOLD) == 0u) fold_patterns(seq_bank(seq), o);

    if (nsplit == 1u) { /* the whole sequence in one item: normalise and write out */
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            if (!tile_row_real(tile, r)) break;
            float inv = st.l[r] > 0.0 ? 1.0 / st.l[r] : 0.0;
            [[unroll]] for (uint e = 0u; e < CE; e++) {
                uint i = lid + e * WG;
                if (i < D) scr[pc.out_off + row_of[r] * D + i] = floatBitsToUint(o[r][e] * inv);
            }
        }
        return;
    }
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        uint p = part_slot(seq, split, head, tile, r);
        if (lid == 0u) {
            scrc[p] = floatBitsToUint(st.m[r]);
            scrc[p + 1u] = floatBitsToUint(st.l[r]);
        }
        [[unroll]] for (uint e = 0u; e < CE; e++) {
            uint i = lid + e * WG;
            if (i < D) scrc[p + 4u + i] = floatBitsToUint(o[r][e]);
        }
    }
    if ((pc.flags & (ATTN_SEPARATE_MERGE | ATTN_SKIP_MERGE)) != 0u) return;
    merge_if_last(seq, head, tile, nsplit);
}
