#version 450
/* Attention over the compressed cache (PATTERN, DIRECT), one warp per item: the workgroup is W = 32
 * invocations (one subgroup on NVIDIA and AMD's wave32; shared memory and barriers elsewhere), serving
 * the NR query rows of its tile over a run of chunks of one sequence (an item of src/core/attn_plan.h),
 * in groups of W tokens:
 *   - per chunk: q * s_K of every channel (times the code conversion's power of two) into shared
 *     memory, each invocation its D / W channels, and the zero-point terms q.z_K summed over the warp;
 *   - per group, invocation = token: its K and V code rows and metadata were loaded during the
 *     previous group (one group ahead); the logit is q_s . codes + q.z_K + qc[a_t] (PATTERN), the
 *     warp's maximum moves the running max lazily (only when it grows by more than 2^LAZY), then
 *     p = 2^(logit - m), the V histogram S[a_t] += p for gated tokens (PATTERN), and p * s_V and the V
 *     code row go to shared memory;
 *   - per group, invocation = D / W channels: the V sums over the group's W tokens in registers.
 * At the end: sum_t p z_t + sum_m S[m] P_V[m] (PATTERN) added, and the partial (m, l, o[D]) written or
 * merged (attn_merge.glsl) as attn_decode.comp does. The aim was few registers per warp, so that many
 * warps per compute unit hide memory latency; NVIDIA's compiler gave it 178-237 registers and it is
 * slower than attn_decode.comp on the H200 (bench/RESULTS.md, session 9), so it is opt-in
 * (PKV_ATTN_WARP=1), kept for its pieces and as the base of the next design. Needs D in
 * {32, 64, 128, 256} and G a multiple of 32 (the host checks). */
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_memory_scope_semantics : require
#include "pkv_math.h"
#define PKV_ARENAS_READONLY
#include "pkv_buffers.glsl"
#include "attn_common.glsl"
#include "attn_codes.glsl"

const uint W = 32u;               /* invocations (gl_WorkGroupSize.x) */
const uint CPL = D / W;           /* channels per invocation in the per-channel phases */
const uint GPC = G / W;           /* groups per chunk */
const uint SCAP = MODE == 0u ? CAP : 1u;
const uint KMASK = (1u << KPB) - 1u, VMASK = (1u << VPB) - 1u;
const uint LB = CPL * VPB;        /* plane-0 bits of an invocation's V channels (4..64) */
const uint RW = KRW > VRW ? KRW : VRW;
const uint KSW = (CPL + 1u) / 2u; /* words holding an invocation's CPL K scales (zeros likewise) */
const float LAZY = 8.0;
const uint MERGE_CAP = 1024u;     /* two floats per row and item of the merge: the host's max_splits */

shared vec4 q_s[D * NRV];         /* q * scale * log2(e), [channel][row set] */
shared vec4 qs_s[D * NRV];        /* per chunk: q * s_K * 2^-shift (compressed) or q (fp16 window) */
shared vec4 qc_s[SCAP * NRV];     /* PATTERN: q . P_K[m] of the tile's rows */
shared vec4 w_s[W * NRV];         /* per group: p * s_V (compressed) or p (fp16), [token][row set] */
shared uint vrow_s[W * VRW];      /* per group: the tokens' V code rows */
/* STAGE_K: per group, each invocation's own K code row, [word][invocation], so that the logit's loop
 * over the row's words need not be unrolled (fewer registers) */
shared uint krow_s[STAGE_K != 0u ? KRW * W : 1u];
/* The V histogram [pattern][row] (attn_hist.glsl: S_s, then Sh_s with HIST_FIXED), and at the end,
 * when the histogram is folded, the merge's floats: one array. */
const uint HIST_WORDS = NR * SCAP * (HIST_FIXED != 0u ? 2u : 1u);
shared uint big_s[HIST_WORDS > MERGE_CAP ? HIST_WORDS : MERGE_CAP];
#define S_AT(i) big_s[i]
#define SH_AT(i) big_s[NR * SCAP + (i)]
shared uint vchunk_s[8];          /* the V bank's chunk slots */

#define RED_N NR
#include "wg_reduce.glsl"
#define PART_WORD(i) scrc[i]
#define PART_VEC4(i) uintBitsToFloat(scrc4[(i) / 4u])
#define MERGE_GET(k) uintBitsToFloat(big_s[k])
#define MERGE_SET(k, v) big_s[k] = floatBitsToUint(v)
#include "attn_merge.glsl"
#include "attn_hist.glsl"

/* Warp-wide maxima / sums of two sets of NR values: subgroup arithmetic when the workgroup is one
 * subgroup, else wg_reduce2 (whose callers pass a barrier before the next reduction). */
void warp_reduce2(inout float a[NR], bool a_max, inout float b[NR], bool b_max)
{
#ifdef PKV_SUBGROUPS
    if (gl_NumSubgroups == 1u) {
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            a[r] = a_max ? subgroupMax(a[r]) : subgroupAdd(a[r]);
            b[r] = b_max ? subgroupMax(b[r]) : subgroupAdd(b[r]);
        }
        return;
    }
#endif
    wg_reduce2(a, a_max, b, b_max);
}
void warp_reduce(inout float a[NR], bool take_max)
{
#ifdef PKV_SUBGROUPS
    if (gl_NumSubgroups == 1u) {
        [[unroll]] for (uint r = 0u; r < NR; r++) a[r] = take_max ? subgroupMax(a[r]) : subgroupAdd(a[r]);
        return;
    }
#endif
    float b[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) b[r] = 0.0;
    wg_reduce2(a, take_max, b, false);
}

/* The group loop's execution and shared-memory barrier: the subgroup's own where the workgroup is one
 * subgroup, else barrier(). (Tried in case a workgroup barrier made NVIDIA wait for the loads in
 * flight: no faster on an H100, bench/RESULTS.md session 17.) */
void warp_barrier()
{
#ifdef PKV_SUBGROUPS
    if (gl_NumSubgroups == 1u) { /* shared memory only (subgroupBarrier() would order buffer memory too) */
        controlBarrier(gl_ScopeSubgroup, gl_ScopeSubgroup, gl_StorageSemanticsShared, gl_SemanticsAcquireRelease);
        return;
    }
#endif
    barrier();
}

const uint CK_NONE = 0u, CK_CODES = 1u, CK_WINDOW = 3u;
struct chunk_desc {
    uint kind, base, kh, vh, count, tok0; /* base: block word; kh, vh: window half indices */
};

chunk_desc describe_chunk(uint c, uint c1, uint nb, uint nw, uint slot, uint wb)
{
    chunk_desc d;
    d.kind = CK_NONE, d.base = 0u, d.kh = 0u, d.vh = 0u, d.count = 0u, d.tok0 = c * G;
    if (c >= c1) return d;
    if (c < nb) {
        d.kind = CK_CODES, d.base = slot * pc.block_words, d.count = G;
    } else {
        uint w0 = (c - nb) * G;
        d.kind = CK_WINDOW, d.kh = wb + w0 * D, d.vh = wb + (pc.R + w0) * D, d.count = min(G, nw - w0);
    }
    return d;
}

/* What one invocation loads for a group of a compressed chunk: its token's rows and metadata, and at
 * a chunk's first group its channels' K scales and zeros. */
struct group_loads {
    uint krow[KRW], vrow[VRW];
    uint ksw[KSW], kzw[KSW]; /* a chunk's first group: this invocation's channels' K scales and zeros, as halves */
    float vs, vz;
    uint ka, va, gate;
};

void load_row(uint w0, uint n, out uint row[RW])
{
    if (n % 4u == 0u) {
        [[unroll]] for (uint q = 0u; q < n / 4u; q++) {
            uvec4 x = blk4[w0 / 4u + q];
            row[4u * q] = x.x, row[4u * q + 1u] = x.y, row[4u * q + 2u] = x.z, row[4u * q + 3u] = x.w;
        }
    } else {
        [[unroll]] for (uint k = 0u; k < n; k++) row[k] = blk[w0 + k];
    }
}

void load_group(chunk_desc d, uint sub, out group_loads L)
{
    uint lid = gl_LocalInvocationID.x, t = sub * W + lid, b = d.base;
    [[unroll]] for (uint k = 0u; k < KRW; k++) L.krow[k] = 0u;
    [[unroll]] for (uint k = 0u; k < VRW; k++) L.vrow[k] = 0u;
    L.vs = 1.0, L.vz = 0.0, L.ka = 0u, L.va = 0u, L.gate = 0u;
    [[unroll]] for (uint k = 0u; k < KSW; k++) L.ksw[k] = 0u, L.kzw[k] = 0u;
    if (d.kind != CK_CODES) return;
    uint row[RW];
    load_row(b + pc.o_kcodes + t * KRW, KRW, row);
    [[unroll]] for (uint k = 0u; k < KRW; k++) L.krow[k] = row[k];
    load_row(b + pc.o_vcodes + t * VRW, VRW, row);
    [[unroll]] for (uint k = 0u; k < VRW; k++) L.vrow[k] = row[k];
    if (sub == 0u)
        [[unroll]] for (uint k = 0u; k < KSW; k++) {
            uint h = lid * CPL + 2u * k; /* half index within the section */
            L.ksw[k] = blk[b + pc.o_kscale + h / 2u];
            L.kzw[k] = blk[b + pc.o_kzero + h / 2u];
        }
    L.vs = blk_hf(b * 2u + pc.o_vscale * 2u + t);
    L.vz = blk_hf(b * 2u + pc.o_vzero * 2u + t);
    if (MODE == 0u) {
        L.ka = (blk[b + pc.o_kidx + t / 4u] >> (8u * (t % 4u))) & 255u;
        L.va = (blk[b + pc.o_vidx + t / 4u] >> (8u * (t % 4u))) & 255u;
        L.gate = (blk[b + pc.o_vmask + t / 32u] >> (t % 32u)) & 1u;
    }
}

void copy_loads(group_loads a, out group_loads b)
{
    [[unroll]] for (uint k = 0u; k < KRW; k++) b.krow[k] = a.krow[k];
    [[unroll]] for (uint k = 0u; k < VRW; k++) b.vrow[k] = a.vrow[k];
    [[unroll]] for (uint k = 0u; k < KSW; k++) b.ksw[k] = a.ksw[k], b.kzw[k] = a.kzw[k];
    b.vs = a.vs, b.vz = a.vz, b.ka = a.ka, b.va = a.va, b.gate = a.gate;
}

/* The state of one item: per row the running max, this invocation's sums of p and p z_t, its V sums
 * (rows x its CPL channels, in the units of code_unfactor) and the causal limits. */
struct item_state {
    float m[NR], l[NR], pz[NR];
    float acc[NR][CPL];
    float zt[NR]; /* the current chunk's q.z_K */
    uint limit[NR];
};

/* qs . codes of a K code row */
void code_dot(uint krow[KRW], out vec4 dot[NRV])
{
    [[unroll]] for (uint v = 0u; v < NRV; v++) dot[v] = vec4(0.0);
    [[unroll]] for (uint k = 0u; k < KW0; k++) {
        uint w = krow[k], wh = w >> 16;
        uint hi = KBITS == 3u ? krow[KW0 + k / 2u] >> ((k % 2u) * 16u) : 0u;
        [[unroll]] for (uint c = 0u; c < 32u / KPB; c++) {
            uint i = k * (32u / KPB) + c;
            if (i >= D) break;
            float cf = KBITS == 3u ? int_float(((w >> (2u * c)) & 3u) | (((hi >> c) & 1u) << 2))
                                   : code_float(w, wh, c * KPB, KMASK);
            [[unroll]] for (uint v = 0u; v < NRV; v++) dot[v] += qs_s[i * NRV + v] * cf;
        }
    }
}

/* qs . codes of this invocation's K code row in krow_s (STAGE_K) */
void code_dot_staged(out vec4 dot[NRV])
{
    uint lid = gl_LocalInvocationID.x;
    [[unroll]] for (uint v = 0u; v < NRV; v++) dot[v] = vec4(0.0);
    [[dont_unroll]] for (uint k = 0u; k < KW0; k++) {
        uint w = krow_s[k * W + lid], wh = w >> 16;
        uint hi = KBITS == 3u ? krow_s[(KW0 + k / 2u) * W + lid] >> ((k % 2u) * 16u) : 0u;
        [[unroll]] for (uint c = 0u; c < 32u / KPB; c++) {
            uint i = k * (32u / KPB) + c;
            float cf = KBITS == 3u ? int_float(((w >> (2u * c)) & 3u) | (((hi >> c) & 1u) << 2))
                                   : code_float(w, wh, c * KPB, KMASK);
            [[unroll]] for (uint v = 0u; v < NRV; v++) dot[v] += qs_s[i * NRV + v] * cf;
        }
    }
}

/* q . x of an fp16 window row starting at half index h0 */
void fp16_dot(uint h0, out vec4 dot[NRV])
{
    [[unroll]] for (uint v = 0u; v < NRV; v++) dot[v] = vec4(0.0);
    for (uint k = 0u; k < D / 8u; k++) {
        uvec4 w = win4[h0 / 8u + k];
        [[unroll]] for (uint j = 0u; j < 4u; j++) {
            vec2 x = unpackHalf2x16(w[j]);
            uint i = 8u * k + 2u * j;
            [[unroll]] for (uint v = 0u; v < NRV; v++) dot[v] += qs_s[i * NRV + v] * x.x + qs_s[(i + 1u) * NRV + v] * x.y;
        }
    }
}

/* Half j of an invocation's CPL halves held in words w (CPL = 1: the half of this invocation) */
float lane_half(uint w[KSW], uint j)
{
    vec2 x = unpackHalf2x16(w[j / 2u]);
    return (CPL == 1u ? gl_LocalInvocationID.x : j) % 2u != 0u ? x.y : x.x;
}

/* A chunk's first group: q * s_K (or q) of this invocation's channels into qs_s, and q.z_K. */
void chunk_setup(inout item_state st, chunk_desc d, group_loads L)
{
    uint lid = gl_LocalInvocationID.x;
    bool codes = d.kind == CK_CODES;
    float z[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) z[r] = 0.0;
    [[unroll]] for (uint j = 0u; j < CPL; j++) {
        uint c = lid * CPL + j;
        float s = codes ? lane_half(L.ksw, j) * code_factor(c, KBITS) : 1.0, zk = codes ? lane_half(L.kzw, j) : 0.0;
        [[unroll]] for (uint v = 0u; v < NRV; v++) {
            vec4 q = q_s[c * NRV + v];
            qs_s[c * NRV + v] = q * s;
            [[unroll]] for (uint k = 0u; k < 4u; k++)
                if (4u * v + k < NR) z[4u * v + k] += q[k] * zk;
        }
    }
    warp_reduce(z, false);
    [[unroll]] for (uint r = 0u; r < NR; r++) st.zt[r] = z[r];
}

/* One group of W tokens of chunk d (sub: its index in the chunk), this invocation's loads in L. */
void do_group(inout item_state st, chunk_desc d, uint sub, group_loads L)
{
    uint lid = gl_LocalInvocationID.x, t = sub * W + lid;
    bool codes = d.kind == CK_CODES, mine = t < d.count;
    warp_barrier(); /* the previous group's readers of qs_s, w_s and vrow_s are done */
    if (sub == 0u) {
        chunk_setup(st, d, L);
        warp_barrier();
    }
    /* logits of this invocation's token */
    float lg[NR];
    vec4 dot[NRV];
    if ((pc.flags & ATTN_SKIP_K) != 0u || !mine) {
        [[unroll]] for (uint v = 0u; v < NRV; v++) dot[v] = vec4(0.0);
    } else if (codes) {
        if (STAGE_K != 0u) {
            [[unroll]] for (uint k = 0u; k < KRW; k++) krow_s[k * W + lid] = L.krow[k]; /* read back by this invocation only */
            code_dot_staged(dot);
        } else {
            code_dot(L.krow, dot);
        }
        if (MODE == 0u) [[unroll]] for (uint v = 0u; v < NRV; v++) dot[v] += qc_s[L.ka * NRV + v];
    } else {
        fp16_dot(d.kh + t * D, dot);
    }
    float mx[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        lg[r] = dot[r / 4u][r % 4u] + st.zt[r];
        if (!mine || d.tok0 + t > st.limit[r]) lg[r] = PKV_NEG_INF;
        mx[r] = lg[r];
    }
    warp_reduce(mx, true);
    /* the running max moves only when the group's max exceeds it by 2^LAZY (uniform) */
    bool rescale = false;
    float alpha[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        alpha[r] = 1.0;
        if (mx[r] > st.m[r] + LAZY) {
            alpha[r] = exp2(st.m[r] - mx[r]);
            st.m[r] = mx[r];
            rescale = true;
            st.l[r] *= alpha[r];
            st.pz[r] *= alpha[r];
            [[unroll]] for (uint j = 0u; j < CPL; j++) st.acc[r][j] *= alpha[r];
        }
    }
    if (MODE == 0u && rescale) {
        for (uint e = lid; e < NR * SCAP; e += W) hist_set(e, hist_get(e) * pick(alpha, e % NR));
        warp_barrier();
    }
    vec4 wt[NRV];
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        float p = lg[r] == PKV_NEG_INF ? 0.0 : exp2(lg[r] - st.m[r]);
        st.l[r] += p;
        st.pz[r] += p * L.vz;
        if (MODE == 0u && codes && L.gate != 0u && p != 0.0 && (pc.flags & ATTN_SKIP_HIST) == 0u) hist_add(L.va * NR + r, p);
        wt[r / 4u][r % 4u] = p * L.vs;
    }
    [[unroll]] for (uint v = 0u; v < NRV; v++) w_s[lid * NRV + v] = wt[v];
    if (codes) [[unroll]] for (uint k = 0u; k < VRW; k++) vrow_s[lid * VRW + k] = L.vrow[k];
    warp_barrier();
    if ((pc.flags & ATTN_SKIP_V) != 0u) return;
    /* V: this invocation's CPL channels over the group's tokens */
    uint n = min(W, d.count > sub * W ? d.count - sub * W : 0u);
    if (codes) {
        uint b0 = lid * LB, hb = lid * CPL;
        [[dont_unroll]] for (uint u = 0u; u < W; u++) {
            uint x0 = vrow_s[u * VRW + b0 / 32u] >> (b0 % 32u);
            uint x1 = LB > 32u ? vrow_s[u * VRW + b0 / 32u + 1u] : 0u;
            uint hi = VBITS == 3u ? vrow_s[u * VRW + VW0 + hb / 32u] >> (hb % 32u) : 0u;
            [[unroll]] for (uint v = 0u; v < NRV; v++) wt[v] = w_s[u * NRV + v];
            [[unroll]] for (uint j = 0u; j < CPL; j++) {
                uint sh = j * VPB, x = sh < 32u ? x0 : x1;
                float cf = VBITS == 3u ? int_float(((x0 >> (2u * j)) & 3u) | (((hi >> j) & 1u) << 2))
                                       : code_float(x, x >> 16, sh % 32u, VMASK);
                [[unroll]] for (uint r = 0u; r < NR; r++) st.acc[r][j] += wt[r / 4u][r % 4u] * cf;
            }
        }
    } else {
        for (uint u = 0u; u < n; u++) {
            [[unroll]] for (uint v = 0u; v < NRV; v++) wt[v] = w_s[u * NRV + v];
            [[unroll]] for (uint j = 0u; j < CPL; j++) {
                float x = win_hf(d.vh + (sub * W + u) * D + lid * CPL + j) * code_unfactor(j, VBITS);
                [[unroll]] for (uint r = 0u; r < NR; r++) st.acc[r][j] += wt[r / 4u][r % 4u] * x;
            }
        }
    }
}

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint item = gl_WorkGroupID.x, tile = gl_WorkGroupID.y, head = gl_WorkGroupID.z;
    uint seq = scr[pc.item_off + 2u * item], split = scr[pc.item_off + 2u * item + 1u];
    uint nb = seq_n_blocks(seq), nw = seq_n_window(seq), nsplit = seq_n_items(seq);
    uint T = nb * G + nw, n_chunks = nb + (nw + G - 1u) / G;
    uint slots = seq_blocks(seq) + head; /* the kv head's block slots, pc.H apart */
    uint wb = nw > 0u ? seq_window(seq, head) * pc.window_words * 2u : 0u;
    uint bank = MODE == 0u ? seq_bank(seq) : 0u;

    item_state st;
    uint row_of[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        row_of[r] = tile_row(seq, head, tile, r);
        st.limit[r] = T - pc.q_len + (row_of[r] / pc.n_q_heads) % pc.q_len;
        st.m[r] = PKV_NEG_INF, st.l[r] = 0.0, st.pz[r] = 0.0, st.zt[r] = 0.0;
        [[unroll]] for (uint j = 0u; j < CPL; j++) st.acc[r][j] = 0.0;
    }
    for (uint e = lid; e < D * NRV * 4u; e += W) {
        uint i = e / (NRV * 4u), r = e % (NRV * 4u);
        q_s[i * NRV + r / 4u][r % 4u] = r < NR && tile_row_real(tile, r) ? q_value(tile_row(seq, head, tile, min(r, NR - 1u)), i) * pc.scale : 0.0;
    }
    if (MODE == 0u) {
        if (lid < 8u) vchunk_s[lid] = lid * 32u < bank ? seq_chunk(seq, head, lid) : 0u;
        for (uint e = lid; e < NR * SCAP; e += W) hist_set(e, 0.0);
        for (uint e = lid; e < bank * NRV; e += W) qc_s[e] = scr4[qc_index(seq, head, tile, 0u) + e];
    }

    /* groups of the item's chunks, each group's loads issued one group ahead (PREFETCH; else when the
     * group starts); a chunk's block slot one chunk ahead */
    uint c0 = split * pc.cps, c1 = min(n_chunks, c0 + pc.cps), ng = (c1 - c0) * GPC;
    uint nbc = min(c1, nb);
    chunk_desc cur = describe_chunk(c0, c1, nb, nw, c0 < nbc ? scr[slots + c0 * pc.H] : 0u, wb);
    uint next_slot = c0 + 1u < nbc ? scr[slots + (c0 + 1u) * pc.H] : 0u;
    group_loads L;
    if (PREFETCH != 0u) load_group(cur, 0u, L);
    for (uint gi = 0u; gi < ng; gi++) {
        uint sub = gi % GPC, c = c0 + gi / GPC;
        chunk_desc nxt = cur;
        uint nsub = sub + 1u;
        if (nsub == GPC) {
            nxt = describe_chunk(c + 1u, c1, nb, nw, next_slot, wb);
            nsub = 0u;
            next_slot = c + 2u < nbc ? scr[slots + (c + 2u) * pc.H] : 0u;
        }
        if (PREFETCH != 0u) {
            group_loads Ln;
            if (gi + 1u < ng) load_group(nxt, nsub, Ln);
            do_group(st, cur, sub, L);
            copy_loads(Ln, L);
        } else {
            load_group(cur, sub, L);
            do_group(st, cur, sub, L);
        }
        cur = nxt;
    }

    /* the item's partial: l and sum p z_t over the warp; this invocation's channels of o */
    warp_reduce2(st.l, false, st.pz, false);
    float o[NR][CPL];
    [[unroll]] for (uint r = 0u; r < NR; r++)
        [[unroll]] for (uint j = 0u; j < CPL; j++) o[r][j] = st.acc[r][j] * code_factor(j, VBITS) + st.pz[r];
    if (MODE == 0u && (pc.flags & ATTN_SKIP_FOLD) == 0u) { /* + sum_m S[m] P_V[m], 8 patterns' loads at once */
        barrier();
        for (uint m0 = 0u; m0 < bank; m0 += 8u) {
            float x[8][CPL];
            [[unroll]] for (uint k = 0u; k < 8u; k++) {
                uint m = min(m0 + k, bank - 1u);
                uint h = vchunk_s[m / 32u] * pc.chunk_words * 2u + 32u * D + (m % 32u) * D + lid * CPL;
                [[unroll]] for (uint j = 0u; j < CPL; j++) x[k][j] = chk_hf(h + j);
            }
            [[unroll]] for (uint k = 0u; k < 8u; k++) {
                if (m0 + k >= bank) break;
                [[unroll]] for (uint r = 0u; r < NR; r++) {
                    float s = hist_get((m0 + k) * NR + r);
                    [[unroll]] for (uint j = 0u; j < CPL; j++) o[r][j] += s * x[k][j];
                }
            }
        }
    }
    if (nsplit == 1u) {
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            if (!tile_row_real(tile, r)) break;
            float inv = st.l[r] > 0.0 ? 1.0 / st.l[r] : 0.0;
            [[unroll]] for (uint j = 0u; j < CPL; j++) scr[pc.out_off + row_of[r] * D + lid * CPL + j] = floatBitsToUint(o[r][j] * inv);
        }
        return;
    }
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        uint p = part_slot(seq, split, head, tile, r);
        if (lid == 0u) {
            scrc[p] = floatBitsToUint(st.m[r]);
            scrc[p + 1u] = floatBitsToUint(st.l[r]);
        }
        [[unroll]] for (uint j = 0u; j < CPL; j++) scrc[p + 4u + lid * CPL + j] = floatBitsToUint(o[r][j]);
    }
    if ((pc.flags & (ATTN_SEPARATE_MERGE | ATTN_SKIP_MERGE)) != 0u) return;
    merge_if_last(seq, head, tile, nsplit);
}
