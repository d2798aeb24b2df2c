/* Shared by quant_block.comp and quant_search.comp: the values a block's K and V halves quantize
 * (residuals against the assigned patterns in PATTERN mode, V only where its gate passed; raw
 * otherwise). Include after block_common.glsl and the G and MODE constants; set jblk and unit. */
shared uint kidx_s[G], vidx_s[G], vmask_s[G];

uint jblk; /* the block of the op's tokens */

float blk_x(uint kv, uint t, uint i) { return src_x(kv, jblk * G + t, i); } /* token t of this block */

float k_value(uint t, uint i) /* the value K quantizes: residual (PATTERN) or raw */
{
    float x = blk_x(0u, t, i);
    if (MODE != 0u) return x;
    precise float r = x - pattern(0u, kidx_s[t], i);
    return r;
}

float v_value(uint t, uint i)
{
    float x = blk_x(1u, t, i);
    if (MODE != 0u || vmask_s[t] == 0u) return x;
    precise float r = x - pattern(1u, vidx_s[t], i);
    return r;
}

/* Value n of the run that one (scale, zero) covers: K channel j's token n (kv 0), V token j's channel n. */
float run_value(uint kv, uint j, uint n) { return kv == 0u ? k_value(n, j) : v_value(j, n); }

void load_assignments(uint lid) /* made by assign.comp or kmeans_assign.comp; then barrier() */
{
    for (uint t = lid; t < G; t += gl_WorkGroupSize.x) {
        uint tok = jblk * G + t;
        uint ek = scr[pc.assign_off + (unit * 2u) * pc.n_assign + tok];
        uint ev = scr[pc.assign_off + (unit * 2u + 1u) * pc.n_assign + tok];
        kidx_s[t] = ek & 255u;
        vidx_s[t] = ev & 255u;
        vmask_s[t] = (ev >> 8) & 1u;
    }
}

/* Where quant_search.comp leaves the chosen fp16 scale | zero << 16 of run j of a block's half kv. */
const uint SEARCH_RUNS = D > G ? D : G; /* words per (unit, block, half) */
uint search_at(uint kv, uint j) { return pc.search_off + ((unit * pc.n_blocks + jblk) * 2u + kv) * SEARCH_RUNS + j; }
