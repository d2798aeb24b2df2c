/* The split of an attention op into workgroups: see attn_plan.h. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "attn_plan.h"
#include "internal.h"

static uint32_t ceil_div(uint32_t a, uint32_t b) { return (a + b - 1) / b; }

static uint32_t env_u32(const char *name)
{
    const char *e = getenv(name);
    return e && atoi(e) > 0 ? (uint32_t)atoi(e) : 0;
}

void pkv_attn_env_read(pkv_attn_env *e)
{
    memset(e, 0, sizeof *e);
    e->max_rows = env_u32("PKV_ATTN_MAX_ROWS");
    e->groups = env_u32("PKV_ATTN_GROUPS");
    e->chunks_per_item = env_u32("PKV_ATTN_CHUNKS_PER_ITEM");
    const char *sep = getenv("PKV_ATTN_SEPARATE_MERGE"), *dbg = getenv("PKV_ATTN_DEBUG");
    e->flags = sep && atoi(sep) > 0 ? PKV_ATTN_SEPARATE_MERGE : 0;
    if (dbg) e->flags |= (uint32_t)strtoul(dbg, NULL, 0) & ~(uint32_t)PKV_ATTN_SEPARATE_MERGE;
    const uint32_t bps = env_u32("PKV_ATTN_STEP_BLOCKS"), vch = env_u32("PKV_ATTN_VCH");
    if (bps == 1 || bps == 2 || bps == 4) e->step_blocks = bps;
    if (vch == 4 || vch == 8 || vch == 16) e->vch = vch;
    const char *sk = getenv("PKV_ATTN_STAGE_K"), *pf = getenv("PKV_ATTN_PREFETCH");
    if (sk && *sk) e->stage_k = atoi(sk) > 0 ? 2 : 1;
    if (pf && *pf) e->prefetch = atoi(pf) > 0 ? 2 : 1;
    const uint32_t vb = env_u32("PKV_ATTN_VB");
    if (vb == 4 || vb == 8 || vb == 16) e->vb = vb;
    const char *hf = getenv("PKV_ATTN_HIST_FIXED");
    if (hf && *hf) e->hist_fixed = atoi(hf) > 0 ? 2 : 1;
    const char *cm = getenv("PKV_ATTN_COOPMAT");
    if (cm && *cm) e->coopmat = strcmp(cm, "emu") == 0 ? 3 : atoi(cm) > 0 ? 2 : 1;
    const char *wp = getenv("PKV_ATTN_WARP");
    if (wp && *wp) e->warp = atoi(wp) > 0 ? 2 : 1;
    const uint32_t teams = env_u32("PKV_ATTN_TEAMS");
    if (teams >= 1 && teams <= 4) e->teams = teams;
    const char *sp = getenv("PKV_ATTN_SPLIT");
    if (sp && *sp) e->split = atoi(sp) > 0 ? 2 : 1;
    const uint32_t tpt = env_u32("PKV_ATTN_TPT");
    if (tpt == 1 || tpt == 2 || tpt == 4) e->tpt = tpt;
    const uint32_t lpc = env_u32("PKV_ATTN_LPC");
    if (lpc >= 1 && lpc <= 16) e->lpc = lpc;
    const char *ku = getenv("PKV_ATTN_KUNROLL");
    if (ku && *ku) e->kunroll = atoi(ku) > 0 ? 2 : 1;
}

void pkv_attn_env_reload(pkv_context *ctx)
{
    if (ctx && ctx->be) pkv_attn_env_read(&ctx->be->attn_env);
}

uint32_t pkv_attn_rows_per_group(const pkv_attn_op *op, uint32_t n_kv_heads, uint32_t max_nr, const pkv_attn_env *env)
{
    const uint32_t rows = op->q_len * (op->n_q_heads / n_kv_heads);
    if (env->max_rows >= 1 && env->max_rows < max_nr) max_nr = env->max_rows; /* tests: tiles of fewer rows */
    uint32_t nr = 1;
    while (nr < rows && nr < max_nr) nr *= 2;
    return nr;
}

/* a sequence's items of cps chunks, rounded up to a multiple of per */
static uint32_t seq_items(const pkv_attn_seq *s, uint32_t G, uint32_t cps, uint32_t per)
{
    return ceil_div(ceil_div(pkv_attn_seq_chunks(s, G), cps), per) * per;
}

pkv_status pkv_attn_plan_make(const pkv_attn_op *op, const pkv_geom *g, uint32_t nr, uint32_t target_groups,
                              uint32_t max_splits, uint32_t cps_multiple, uint32_t items_multiple,
                              const pkv_attn_env *env, pkv_attn_plan *plan)
{
    const uint32_t per = items_multiple > 1 ? items_multiple : 1;
    memset(plan, 0, offsetof(pkv_attn_plan, local));
    const uint32_t H = g->H, rows = op->q_len * (op->n_q_heads / H);
    plan->nr = nr;
    plan->tiles = ceil_div(rows, nr);
    uint64_t total = 0;
    uint32_t longest = 0;
    for (uint32_t s = 0; s < op->n_seqs; s++) {
        const uint32_t c = pkv_attn_seq_chunks(&op->seqs[s], g->G);
        if (c == 0) return pkv_fail(NULL, PKV_ERR_SHAPE, "attention: sequence %u holds no tokens", s);
        total += c;
        longest = c > longest ? c : longest;
    }
    /* Items as long as possible while the workgroups still fill the device in one wave: cps grows
     * until the workgroups fit in target_groups (a second, partly filled wave would cost as much as
     * the first; more, shorter items repeat each item's fixed costs). */
    const uint64_t groups_per_item = (uint64_t)plan->tiles * H;
    if (!target_groups) target_groups = 1024;
    if (env->groups) target_groups = env->groups; /* tuning: workgroups to aim for */
    const uint64_t want_items = (target_groups + groups_per_item - 1) / groups_per_item;
    uint64_t cps = (total + want_items - 1) / want_items;
    const uint32_t splits = max_splits >= per ? max_splits / per * per : per; /* a multiple of per */
    if (cps < ceil_div(longest, splits)) cps = ceil_div(longest, splits);
    const int forced = env->chunks_per_item && env->chunks_per_item >= ceil_div(longest, splits);
    if (forced) cps = env->chunks_per_item;
    const uint32_t step = cps_multiple > 1 ? cps_multiple : 1;
    cps = (cps + step - 1) / step * step;
    for (;;) { /* one wave, and at most one dispatch dimension of items */
        uint64_t n = 0;
        for (uint32_t s = 0; s < op->n_seqs; s++) n += seq_items(&op->seqs[s], g->G, (uint32_t)cps, per);
        const int one_wave = forced || n * groups_per_item <= target_groups || cps >= longest;
        if (n <= PKV_ATTN_MAX_ITEMS && one_wave) break;
        cps += step;
    }
    plan->cps = (uint32_t)cps;

    size_t n_items = 0;
    for (uint32_t s = 0; s < op->n_seqs; s++) n_items += seq_items(&op->seqs[s], g->G, plan->cps, per);
    const size_t desc_words = (size_t)op->n_seqs * PKV_ATTN_SEQ_WORDS;
    if (desc_words + n_items * 2 <= PKV_ATTN_PLAN_LOCAL) {
        plan->seq_desc = plan->local, plan->items = plan->local + desc_words;
        memset(plan->seq_desc, 0, desc_words * sizeof *plan->seq_desc);
    } else {
        plan->seq_desc = calloc(desc_words, sizeof *plan->seq_desc);
        plan->items = malloc(n_items * 2 * sizeof *plan->items);
    }
    if (!plan->seq_desc || !plan->items) {
        pkv_attn_plan_free(plan);
        return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "attention: out of host memory");
    }
    uint32_t it = 0, slots = 0;
    for (uint32_t s = 0; s < op->n_seqs; s++) {
        const pkv_attn_seq *q = &op->seqs[s];
        const uint32_t n = seq_items(q, g->G, plan->cps, per);
        uint32_t *d = plan->seq_desc + (size_t)s * PKV_ATTN_SEQ_WORDS;
        d[0] = q->n_blocks, d[1] = q->n_window, d[2] = q->bank_count, d[3] = q->table_offset;
        d[4] = n, d[5] = n > 1 ? slots : 0, d[6] = q->block_offset;
        if (n > 1) slots += n;
        for (uint32_t j = 0; j < n; j++, it++) plan->items[2 * it] = s, plan->items[2 * it + 1] = j;
    }
    plan->n_items = it;
    plan->n_slots = slots;
    return PKV_OK;
}

uint32_t pkv_attn_flags(const pkv_attn_env *env) { return env->flags; }

pkv_attn_shape pkv_attn_shape_for(const pkv_geom *g, const pkv_attn_env *env, pkv_backend_kind backend)
{
    pkv_attn_shape sh = {g->G < 128 ? 128 / g->G : 1, 8, 0, 1, 1, 4, 0, 0, 1, 0, 1, 1, 0};
    /* Per-backend defaults measured on the H200 (bench/RESULTS.md). Vulkan: NVIDIA's kernel with the
     * fixed-point histogram is slower at 2 bits even with no adds (8 x 32K 0.62 -> 0.84 ms) and faster
     * at 4 (1.09 -> 0.85), so float compare-and-swap for 2-bit K and V (session 6); FP16 mode keeps 8 V
     * rows in flight (8 x 32K 0.512 -> 0.488 ms) and does not stage its K rows (1.9x slower: 243
     * registers instead of 128; session 7). OpenCL: FP16 mode stages its K rows (1 x 32K 0.207 ->
     * 0.129 ms, 8 x 32K 1.377 -> 0.796; session 7). */
    if (backend == PKV_BACKEND_VULKAN && g->k_bits == 2 && g->v_bits == 2) sh.hist_fixed = 0;
    if (backend == PKV_BACKEND_VULKAN && g->mode == PKV_MODE_FP16) sh.vb = 8;
    /* Vulkan, head_dim 128 and G 128, two blocks per step (a workgroup of 256) where it was faster on
     * every shape measured (session 10, runs D-E: 8 x 32K PATTERN 3-bit 1.054 -> 0.763 ms, 4-bit with 4
     * V channels 0.857 -> 0.735, 8-bit 1.449 -> 1.396, DIRECT 8-bit 1.348 -> 0.803); PATTERN and DIRECT
     * 2-bit and DIRECT 3/4-bit stay at one (slower with two: 0.63 -> 0.89, 0.57 -> 0.72). */
    const int same_bits = g->k_bits == g->v_bits, b = (int)g->k_bits;
    if (backend == PKV_BACKEND_VULKAN && g->d == 128 && g->G == 128 && same_bits &&
        ((g->mode == PKV_MODE_PATTERN && b >= 3) || (g->mode == PKV_MODE_DIRECT && b == 8))) {
        sh.bps = 2;
        if (g->mode == PKV_MODE_PATTERN && b == 4) sh.vch = 4;
        /* PATTERN 3- and 8-bit: two items per workgroup of 512, so NVIDIA's compiler fits 128 registers
         * (session 11, run D: 8 x 32K 3-bit 0.762 -> 0.705 ms, 8-bit 1.377 -> 0.970) */
        if (g->mode == PKV_MODE_PATTERN && (b == 3 || b == 8)) sh.teams = 2;
    }
    if (backend == PKV_BACKEND_OPENCL && g->mode == PKV_MODE_FP16) sh.stage_k = 1;
    /* Vulkan's split attention (where the op has many chunks: vk_ops.c) for the widths it was faster at
     * on the H200 (session 14, run B, 8 x 32K: PATTERN 2-bit 0.627 -> 0.513 ms, DIRECT 2-bit 0.452 ->
     * 0.353, PATTERN 4-bit 0.719 -> 0.582 with 8 V channels); not DIRECT 4-bit (0.464 / 0.470) nor 8-bit
     * (PATTERN 0.983 / 1.154) */
    if (backend == PKV_BACKEND_VULKAN && g->mode != PKV_MODE_FP16 && same_bits && (b == 2 || (g->mode == PKV_MODE_PATTERN && b == 4)))
        sh.split = 1;
    /* OpenCL's split twin for every compressed shape it serves (pkv_attn_split_serves; ocl_ops.c leaves ops
     * of few chunks to the one-pass kernel):
     * on an H100 2.2-2.4x faster than its one-pass kernel at 8 x 32K (PATTERN 2-bit 0.791 -> 0.357 ms,
     * 4-bit 0.917 -> 0.378) and 1.5x at 8 x 4K (0.137 -> 0.093), and faster than Vulkan's split (0.521,
     * 0.592): bench/RESULTS.md, session 17 */
    if (backend == PKV_BACKEND_OPENCL && g->mode != PKV_MODE_FP16) sh.split = 1;
    if (env->step_blocks && env->step_blocks * g->G <= 256) sh.bps = env->step_blocks;
    if (env->vch) sh.vch = env->vch;
    if (env->stage_k) sh.stage_k = env->stage_k == 2;
    if (env->prefetch) sh.prefetch = env->prefetch == 2;
    if (env->vb) sh.vb = env->vb;
    if (env->hist_fixed) sh.hist_fixed = env->hist_fixed == 2;
    if (env->coopmat) sh.coopmat = env->coopmat - 1;
    if (env->warp) sh.warp = env->warp == 2;
    if (env->teams && backend == PKV_BACKEND_VULKAN) sh.teams = env->teams;
    if (env->split) sh.split = env->split == 2;
    if (env->tpt) sh.tpt = env->tpt;
    if (env->lpc) sh.lpc = env->lpc;
    if (env->kunroll) sh.kunroll = env->kunroll == 2;
    while (sh.vch < 16 && (g->d + sh.vch - 1) / sh.vch > sh.bps * g->G) sh.vch *= 2; /* channel groups <= invocations */
    return sh;
}

int pkv_attn_split_serves(const pkv_geom *g, pkv_attn_shape sh, uint32_t max_wg, int fp16_ok)
{
    const int bits_ok = (g->k_bits == 2 || g->k_bits == 4 || g->k_bits == 8) &&
                        (g->v_bits == 2 || g->v_bits == 4 || g->v_bits == 8);
    const int codes_ok = g->mode == PKV_MODE_FP16 ? fp16_ok
                                                  : bits_ok && g->k_row_words % 4 == 0 && g->v_row_words % 4 == 0;
    const int d_ok = g->d == 64 || g->d == 128 || g->d == 256;
    const int g_ok = (g->G & (g->G - 1)) == 0 && g->G >= 32 && g->G <= 256 && g->G <= max_wg;
    return sh.split && codes_ok && d_ok && g_ok && sh.vch && g->d % sh.vch == 0 && g->d / sh.vch <= g->G;
}

size_t pkv_attn_decode_local_bytes(const pkv_geom *g, pkv_attn_shape sh, uint32_t nr, int stage_v)
{
    const size_t nrv = (nr + 3) / 4, bps = sh.bps, wg = bps * g->G, ch = sh.vch;
    const size_t ksec = !sh.stage_k               ? 16
                        : g->mode == PKV_MODE_FP16 ? bps * g->G * g->d * 2 /* whole fp16 rows */
                                                   : bps * (((size_t)g->G * g->k_row_words + 3) / 4 * 16);
    const size_t cap = g->mode == PKV_MODE_PATTERN ? g->capacity : 1;
    const size_t vsec = bps * (g->mode == PKV_MODE_FP16 || !stage_v ? 4 : (size_t)g->G * g->v_row_words);
    const size_t acc = wg * ch > nr * g->d ? wg * ch : nr * g->d;
    const size_t hist = 4 * nr * cap + (sh.hist_fixed ? 4 * nr * cap : 4);
    return 16 * nrv * ((1 + bps) * g->d + cap + wg) + 4 * vsec + ksec + hist + 4 * acc + 32;
}

void pkv_attn_plan_free(pkv_attn_plan *plan)
{
    if (plan->seq_desc != plan->local) {
        free(plan->seq_desc);
        free(plan->items);
    }
    plan->seq_desc = plan->items = NULL;
}

pkv_status pkv_attn_plan_memo_get(pkv_attn_plan_memo *m, const pkv_attn_op *op, const pkv_geom *g, uint32_t nr,
                                  uint32_t target_groups, uint32_t max_splits, uint32_t cps_multiple,
                                  uint32_t items_multiple, const pkv_attn_env *env, const pkv_attn_plan **plan)
{
    const uint32_t key[12] = {op->n_seqs, op->q_len, op->n_q_heads, g->H, g->G, nr, target_groups, max_splits,
                              cps_multiple, items_multiple, env->groups, env->chunks_per_item};
    int same = m->valid && memcmp(m->key, key, sizeof key) == 0;
    const uint32_t *d = m->plan.seq_desc;
    for (uint32_t i = 0; same && i < op->n_seqs; i++, d += PKV_ATTN_SEQ_WORDS) { /* what the descriptors hold */
        const pkv_attn_seq *q = &op->seqs[i];
        same = d[0] == q->n_blocks && d[1] == q->n_window && d[2] == q->bank_count && d[3] == q->table_offset &&
               d[6] == q->block_offset;
    }
    *plan = &m->plan;
    if (same) return PKV_OK;
    pkv_attn_plan_free(&m->plan);
    m->valid = 0;
    pkv_status s = pkv_attn_plan_make(op, g, nr, target_groups, max_splits, cps_multiple, items_multiple, env, &m->plan);
    m->made++;
    if (s != PKV_OK) return s;
    memcpy(m->key, key, sizeof key);
    m->valid = 1;
    return PKV_OK;
}

void pkv_attn_plan_memo_free(pkv_attn_plan_memo *m)
{
    pkv_attn_plan_free(&m->plan);
    m->valid = 0;
}
