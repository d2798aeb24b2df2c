/* PATTERN's pattern fold at the end of an item, shared by the one-pass kernel (attn_decode.comp) and
 * split attention's second pass (attn_values.comp). The includer defines WG (its team's invocations),
 * LID, CH (V channels per invocation), CE (channels per invocation in per-channel loops), acc_get /
 * acc_set (at least WG * CH shared floats), vchunk_s (the V bank's chunk slots) and the histogram
 * (attn_hist.glsl). */
const uint NQ4 = D / 4u;            /* channel quads, for the pattern fold */
const uint PS_A = WG / NQ4, PS_B = WG * CH / (NR * D);
const uint PS_M = PS_A < PS_B ? PS_A : PS_B;
const uint PS = PS_M > 1u ? PS_M : 1u; /* pattern slices of the fold */

/* o += sum_m S[r][m] P_V[m] over the bank, as a small matrix product: invocation (channel quad q,
 * pattern slice ps; several of them when D > 4 WG) sums over the patterns m = ps, ps + PS, ... with
 * 8-byte loads that do not wait for each other; the slices' sums meet in acc_s. (Skipping the patterns
 * with no weight was 0.5-3% slower on the H200: bench/RESULTS.md, session 10.) */
void fold_patterns(uint bank, inout float o[NR][CE])
{
    uint lid = LID;
    barrier(); /* acc_s free */
    for (uint u = lid; u < NQ4 * PS; u += WG) {
        uint q = u % NQ4, ps = u / NQ4;
        vec4 f[NR];
        [[unroll]] for (uint r = 0u; r < NR; r++) f[r] = vec4(0.0);
        for (uint m = ps; m < bank; m += PS) {
            uint h = vchunk_s[m / 32u] * pc.chunk_words * 2u + 32u * D + (m % 32u) * D + 4u * q; /* half index */
            uvec2 w = chk2[h / 4u];
            vec4 x = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
            [[unroll]] for (uint r = 0u; r < NR; r++) f[r] += hist_get(r * SCAP + m) * x;
        }
        [[unroll]] for (uint r = 0u; r < NR; r++)
            [[unroll]] for (uint k = 0u; k < 4u; k++) acc_set((ps * NR + r) * D + 4u * q + k, f[r][k]);
    }
    barrier();
    [[unroll]] for (uint e = 0u; e < CE; e++) {
        uint i = lid + e * WG;
        if (i < D)
            [[unroll]] for (uint r = 0u; r < NR; r++)
                for (uint k = 0u; k < PS; k++) o[r][e] += acc_get((k * NR + r) * D + i);
    }
}
