#version 450
/* The MSE quantizer's range search of the write path (pkv_math.h pkv_mse_coarse, pkv_mse_fine,
 * pkv_mse_candidate; src/core/quant.c pkv_quant_params_mse is the reference), before quant_block.comp,
 * which packs with the scale and zero chosen here. One workgroup per (block, unit, half, slice of
 * RUNS runs): K runs are channels over the block's G tokens, V runs tokens over the D channels. The
 * slice's values are staged in shared memory once; then each invocation is one (run, candidate) and
 * sums that candidate's error alone, in the values' order, so the result is the reference's bit for
 * bit while a block's 17 x runs sums spread over many workgroups (one invocation per run walking all
 * candidates, as quant_block did before, left most of a GPU idle during a flush). */
#include "pkv_math.h"
#include "pkv_buffers.glsl"

#include "block_common.glsl"

layout(constant_id = 2) const uint G = 128;
layout(constant_id = 3) const uint KBITS = 2;
layout(constant_id = 4) const uint VBITS = 2;
layout(constant_id = 5) const uint MODE = 0; /* 0 pattern, 1 direct */
layout(constant_id = 6) const uint QMSE = 0; /* searched halves: K (bit 0), V (bit 1) */
layout(constant_id = 7) const uint RUNS = 16; /* runs per workgroup; the workgroup is RUNS x PKV_MSE_COARSE */

#include "block_values.glsl"

shared float val_s[SEARCH_RUNS * RUNS]; /* value n of run r at n * RUNS + r */
const uint STAGE = (SEARCH_RUNS * RUNS + RUNS * PKV_MSE_COARSE - 1u) / (RUNS * PKV_MSE_COARSE); /* values per invocation */
shared float err_s[PKV_MSE_COARSE * RUNS];
shared uint cand_s[PKV_MSE_COARSE * RUNS];
shared float best_s[RUNS];
shared uint best_c_s[RUNS], best_k_s[RUNS];

/* Candidate c's squared error over the len values of run r: pkv_quant_err_step from +0 in order. */
float cand_err(uint r, uint len, uint c, uint maxq)
{
    float s = pkv_f16_to_f32(c & 0xFFFFu), z = pkv_f16_to_f32(c >> 16), rs = 1.0 / s;
    float e = 0.0;
    if (maxq == 3u) { /* 2 bits: three comparisons per value, the same term */
        const pkv_levels2 L = pkv_levels2_of(z, s);
        for (uint n = 0u; n < len; n++) e = pkv_quant_err_step2(e, val_s[n * RUNS + r], z, L);
        return e;
    }
    for (uint n = 0u; n < len; n++) e = pkv_quant_err_step(e, val_s[n * RUNS + r], z, s, rs, maxq);
    return e;
}

/* The pick of quant.c's search over the candidates of one stage, in order: the first strictly least
 * error whose (scale, zero) differs from the best so far. */
void pick(uint r, uint n, bool coarse)
{
    float best = best_s[r];
    uint best_c = best_c_s[r], best_k = best_k_s[r];
    for (uint q = 0u; q < n; q++) {
        float e = err_s[q * RUNS + r];
        uint c = cand_s[q * RUNS + r];
        if ((coarse && q == 0u) || (e < best && c != best_c)) {
            best = e; best_c = c;
            if (coarse) best_k = pkv_mse_coarse(q);
        }
    }
    best_s[r] = best; best_c_s[r] = best_c; best_k_s[r] = best_k;
}

void main()
{
    jblk = gl_WorkGroupID.x;
    unit = gl_WorkGroupID.y >> 1;
    const uint kv = gl_WorkGroupID.y & 1u;
    const uint runs = kv == 0u ? D : G, len = kv == 0u ? G : D, r0 = gl_WorkGroupID.z * RUNS;
    if (((QMSE >> kv) & 1u) == 0u || r0 >= runs) return; /* the whole workgroup */
    const uint lid = gl_LocalInvocationID.x;
    if (MODE == 0u) {
        load_assignments(lid);
        load_chunks(lid);
    }
    barrier();
    /* consecutive invocations read consecutive channels of a token row (K: of the slice's runs); an
     * invocation's loads are all issued before the first store (RUNS x len <= STAGE x the workgroup) */
    float x[STAGE];
    for (uint k = 0u; k < STAGE; k++) {
        const uint e = lid + k * gl_WorkGroupSize.x, r = kv == 0u ? e % RUNS : e / len, n = kv == 0u ? e / RUNS : e % len;
        x[k] = e < RUNS * len && r0 + r < runs ? run_value(kv, r0 + r, n) : 0.0;
    }
    for (uint k = 0u; k < STAGE; k++) {
        const uint e = lid + k * gl_WorkGroupSize.x, r = kv == 0u ? e % RUNS : e / len, n = kv == 0u ? e / RUNS : e % len;
        if (e < RUNS * len) val_s[n * RUNS + r] = x[k];
    }
    barrier();

    const uint r = lid % RUNS, q = lid / RUNS;
    const float inv = kv == 0u ? pc.inv_maxq_k : pc.inv_maxq_v;
    const uint maxq = (1u << (kv == 0u ? KBITS : VBITS)) - 1u;
    pkv_span s = pkv_span_of(val_s[r]);
    for (uint n = 1u; n < len; n++) s = pkv_span_add(s, val_s[n * RUNS + r]);

    uint c = pkv_mse_candidate(s, pkv_mse_coarse(q), inv);
    err_s[lid] = cand_err(r, len, c, maxq);
    cand_s[lid] = c;
    barrier();
    if (q == 0u) pick(r, PKV_MSE_COARSE, true);
    barrier();
    if (q < PKV_MSE_FINE) {
        c = pkv_mse_candidate(s, pkv_mse_fine(best_k_s[r], q), inv);
        err_s[lid] = cand_err(r, len, c, maxq);
        cand_s[lid] = c;
    }
    barrier();
    if (q == 0u && r0 + r < runs) {
        pick(r, PKV_MSE_FINE, false);
        scr[search_at(kv, r0 + r)] = best_c_s[r];
    }
}
