/* Merging the partial results (m, l, -, -, o[D]) of a (sequence, kv head, tile) split in nsplit
 * items, all rows at once: out = sum_k 2^(m_k - M) o_k / sum_k 2^(m_k - M) l_k. Included by
 * attn_decode.comp (the last workgroup to finish merges, reading through the coherent alias) and by
 * attn_merge.comp (a second dispatch). The includer defines PART_WORD(i) and PART_VEC4(i) (the
 * partials, i a multiple of 4 for the latter) and MERGE_GET(k) / MERGE_SET(k, v) (shared floats, at least 2 NR nsplit);
 * wg_reduce.glsl comes first. With RED_TEAMS > 1 every team merges (its own MERGE_GET/SET) and
 * the first writes out; MERGE_ITEMS is the items a workgroup finishes at once (its teams). */
#ifndef MERGE_ITEMS
#define MERGE_ITEMS 1u
#endif
float merge_pick(float a[RED_N], uint r)
{
    float v = a[0];
    [[unroll]] for (uint j = 1u; j < NR; j++) v = r == j ? a[j] : v;
    return v;
}

void merge_rows(uint seq, uint head, uint tile, uint nsplit)
{
    const uint WGS = RED_WG;
    bool writer = gl_LocalInvocationID.x < RED_WG; /* the first team */
    uint lid = gl_LocalInvocationID.x % RED_WG, step = part_step(), p0 = part_slot(seq, 0u, head, tile, 0u);
    uint n = nsplit * NR, r0 = lid % NR; /* entry e = (split e / NR, row e % NR); mine all have row r0 */
    float M[RED_N], L[RED_N]; /* rows 0..NR-1 used */
    [[unroll]] for (uint r = 0u; r < RED_N; r++) M[r] = PKV_NEG_INF, L[r] = 0.0;
    for (uint e = lid; e < n; e += WGS) {
        uint p = p0 + (e / NR) * step + r0 * PSTRIDE;
        float m = uintBitsToFloat(PART_WORD(p));
        MERGE_SET(e, m);
        MERGE_SET(n + e, uintBitsToFloat(PART_WORD(p + 1u)));
        [[unroll]] for (uint r = 0u; r < NR; r++) M[r] = r == r0 ? max(M[r], m) : M[r];
    }
    wg_reduce2(M, true, L, false);
    barrier();
    float Mr = merge_pick(M, r0);
    for (uint e = lid; e < n; e += WGS) {
        float m = MERGE_GET(e), w = m == PKV_NEG_INF ? 0.0 : exp2(m - Mr);
        MERGE_SET(e, w);
        [[unroll]] for (uint r = 0u; r < NR; r++) L[r] += r == r0 ? w * MERGE_GET(n + e) : 0.0;
    }
    wg_reduce2(L, false, M, true);
    barrier();
    for (uint e = lid; e < NR * (D / 4u); e += WGS) {
        uint r = e / (D / 4u), i = 4u * (e % (D / 4u));
        if (!tile_row_real(tile, r) || !writer) continue;
        vec4 sum = vec4(0.0);
        for (uint k0 = 0u; k0 < nsplit; k0 += 8u) { /* 8 partials' loads at once */
            vec4 x[8];
            [[unroll]] for (uint u = 0u; u < 8u; u++) x[u] = PART_VEC4(p0 + min(k0 + u, nsplit - 1u) * step + r * PSTRIDE + 4u + i);
            [[unroll]] for (uint u = 0u; u < 8u; u++)
                if (k0 + u < nsplit) sum += MERGE_GET((k0 + u) * NR + r) * x[u];
        }
        float Lr = merge_pick(L, r);
        scr4[(pc.out_off + tile_row(seq, head, tile, r) * D + i) / 4u] = sum * (Lr > 0.0 ? 1.0 / Lr : 0.0);
    }
}

/* After this workgroup wrote its partials: the last item of its (sequence, kv head, tile) to finish
 * merges all of them (attn_decode.comp). */
shared uint last_s;
void merge_if_last(uint seq, uint head, uint tile, uint nsplit)
{
    uint lid = gl_LocalInvocationID.x;
    memoryBarrierBuffer();
    barrier();
    uint cnt = pc.cnt_off + (seq * pc.H + head) * pc.tiles + tile;
    if (lid == 0u) last_s = atomicAdd(scrc[cnt], MERGE_ITEMS) == nsplit - MERGE_ITEMS ? 1u : 0u;
    barrier();
    if (last_s == 0u) return;
    memoryBarrierBuffer();
    merge_rows(seq, head, tile, nsplit);
    if (lid == 0u) scrc[cnt] = 0u; /* ready for the next call */
}
