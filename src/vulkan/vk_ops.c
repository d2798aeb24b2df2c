/* The three ops of the backend interface on Vulkan: prefill mining, window flush and attention.
 * Each op uploads its tables to the scratch buffer, records its dispatches (all kv heads of the
 * layer in each dispatch) into one command buffer, submits once and waits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn_plan.h"
#include "internal.h"
#include "vk_internal.h"

#define WG_SMALL 64u
#define WG_BLOCK 128u
#define UPDATE_CHANNELS 16u /* k-means update: channels per workgroup (shared table M x 16 floats) */
#define ROWS_PER_DIM 32768u

/* Scratch sections in 32-bit words, each 64-byte aligned. */
typedef struct scratch_plan { uint32_t words; } scratch_plan;
static uint32_t take(scratch_plan *p, size_t words)
{
    uint32_t at = p->words;
    p->words += (uint32_t)((words + 15) & ~(size_t)15);
    return at;
}

static uint32_t ceil_div(uint32_t a, uint32_t b) { return (a + b - 1) / b; }

/* Block section offsets in words, in the order the shaders' push constants expect. */
static void block_offsets(const pkv_geom *g, uint32_t o[10])
{
    const int fp16 = g->mode == PKV_MODE_FP16;
    o[0] = g->block_bytes / 4;
    o[1] = (fp16 ? g->off_kfp16 : g->off_kcodes) / 4;
    o[2] = g->off_kscale / 4, o[3] = g->off_kzero / 4;
    o[4] = (fp16 ? g->off_vfp16 : g->off_vcodes) / 4;
    o[5] = g->off_vscale / 4, o[6] = g->off_vzero / 4;
    o[7] = g->off_kidx / 4, o[8] = g->off_vidx / 4, o[9] = g->off_vmask / 4;
}

typedef struct quant_push {
    uint32_t block[10];
    uint32_t chunk_words, window_words, R, from_window, tok_off, n;
    uint32_t window_slot_off, chunk_off, block_slot_off, n_blocks, n_patterns, minmax;
    float gate_k2, inv_maxq_k, inv_maxq_v;
    uint32_t H;
    uint32_t assign_off, n_assign;
} quant_push;

typedef struct kmeans_push {
    uint32_t n, H, M, tok_off, init_off, rcp_off, cent_off, new_off, assign_off, done_off, chunk_off, chunk_words;
    float tol2;
} kmeans_push;

static void quant_push_init(const pkv_geom *g, quant_push *q)
{
    memset(q, 0, sizeof *q);
    block_offsets(g, q->block);
    q->chunk_words = g->chunk_bytes / 4;
    q->window_words = g->window_bytes / 4;
    q->R = g->R;
    q->gate_k2 = g->gate_k2;
    q->inv_maxq_k = g->inv_maxq_k;
    q->inv_maxq_v = g->inv_maxq_v;
    q->H = g->H;
}

static pkv_status quant_pipeline(pkv_vk *vk, const pkv_geom *g, VkPipeline *p)
{
    uint32_t spec[PKV_VK_SPEC_MAX] = {WG_BLOCK, g->d, g->G, g->k_bits, g->v_bits, g->mode};
    return pkv_vk_pipeline(vk, PKV_K_QUANT_BLOCK, spec, p);
}

/* Records the assignment of q->n_assign tokens per head (K and V) and then the blocks. */
static pkv_status record_blocks(pkv_vk *vk, const pkv_geom *g, pkv_buf *const bufs[4], const quant_push *q)
{
    pkv_status s = PKV_OK;
    if (g->mode == PKV_MODE_PATTERN) {
        VkPipeline p_assign;
        uint32_t spec[PKV_VK_SPEC_MAX] = {WG_SMALL, g->d};
        s = pkv_vk_pipeline(vk, PKV_K_ASSIGN, spec, &p_assign);
        const uint32_t lo = q->n_assign < ROWS_PER_DIM ? q->n_assign : ROWS_PER_DIM;
        if (s == PKV_OK) {
            pkv_vk_barrier(vk);
            s = pkv_vk_dispatch(vk, p_assign, bufs, q, sizeof *q, lo, 2 * g->H, ceil_div(q->n_assign, ROWS_PER_DIM));
        }
    }
    VkPipeline p_quant;
    if (s == PKV_OK) s = quant_pipeline(vk, g, &p_quant);
    if (s == PKV_OK) {
        pkv_vk_barrier(vk);
        s = pkv_vk_dispatch(vk, p_quant, bufs, q, sizeof *q, q->n_blocks, g->H, 1);
    }
    return s;
}

/* Device timestamps around each op (when the queue has them) for last_op_ms. */
static void op_timestamp(pkv_vk *vk, int end)
{
    if (!vk->query_pool || pkv_vk_begin(vk) != PKV_OK) return;
    if (!end) vk->f.vkCmdResetQueryPool(vk->cb, vk->query_pool, 0, 2);
    /* bottom of pipe for both: the start stamp waits for the uploads recorded before it */
    vk->f.vkCmdWriteTimestamp(vk->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, vk->query_pool, end ? 1 : 0);
}

static pkv_status op_end(pkv_vk *vk, pkv_status s)
{
    if (s != PKV_OK) {
        pkv_vk_abandon(vk);
        return s;
    }
    s = pkv_vk_finish(vk);
    uint64_t ts[2];
    vk->last_op_ms = -1.0;
    if (s == PKV_OK && vk->query_pool &&
        vk->f.vkGetQueryPoolResults(vk->device, vk->query_pool, 0, 2, sizeof ts, ts, 8,
                                    VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) == VK_SUCCESS)
        vk->last_op_ms = (double)((ts[1] - ts[0]) & vk->ts_mask) * vk->props.limits.timestampPeriod * 1e-6;
    return s;
}

/* Records a device-to-device copy (engine integration: data that never visits the host). */
static pkv_status copy_in_device(pkv_vk *vk, pkv_buf *src, size_t src_off, pkv_buf *dst, size_t dst_off, size_t bytes)
{
    pkv_status s = pkv_vk_begin(vk);
    if (s != PKV_OK) return s;
    VkBufferCopy c = {src->off + src_off, dst->off + dst_off, bytes};
    vk->f.vkCmdCopyBuffer(vk->cb, src->page->buf, dst->page->buf, 1, &c);
    return PKV_OK;
}

pkv_status pkv_vk_mine(pkv_backend *be, const pkv_store *st, const pkv_mine_op *op)
{
    pkv_vk *vk = pkv_vk_of(be);
    const pkv_geom *g = st->g;
    const uint32_t H = g->H, d = g->d, M = g->M, n = op->n_tokens, nblk = op->n_quant / g->G;
    if (ceil_div(n, WG_SMALL) > 65535)
        return pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "vulkan mine: %u prefill tokens exceed one dispatch (%u)", n, 65535u * WG_SMALL);
    scratch_plan plan = {0};
    kmeans_push kp = {.n = n, .H = H, .M = M, .chunk_words = g->chunk_bytes / 4, .tol2 = op->tol2};
    kp.tok_off = take(&plan, (size_t)n * H * d);
    kp.init_off = take(&plan, (size_t)H * 2 * M);
    kp.rcp_off = take(&plan, n + 1);
    kp.chunk_off = take(&plan, (size_t)H * PKV_MAX_CHUNKS);
    uint32_t bslot_off = take(&plan, (size_t)H * nblk + 1);
    kp.cent_off = take(&plan, (size_t)2 * H * M * d);
    kp.new_off = take(&plan, (size_t)2 * H * M * d);
    kp.assign_off = take(&plan, (size_t)2 * H * n);
    kp.done_off = take(&plan, 2 * H);
    uint32_t assign_off = take(&plan, (size_t)2 * H * op->n_quant + 1);

    pthread_mutex_lock(&vk->lock);
    pkv_status s = vk->recording ? pkv_vk_finish(vk) : PKV_OK; /* deferred writes first: a failed op drops nothing else */
    if (s == PKV_OK) s = pkv_vk_scratch_reserve(vk, (size_t)plan.words * 4);
    pkv_buf *bufs[4] = {vk->scratch, st->blocks, st->chunks, st->windows};
    VkPipeline p_init, p_assign, p_update, p_finish, p_store;
    uint32_t spec[PKV_VK_SPEC_MAX] = {WG_SMALL, d};
    if (s == PKV_OK) s = pkv_vk_pipeline(vk, PKV_K_KMEANS_INIT, spec, &p_init);
    if (s == PKV_OK) s = pkv_vk_pipeline(vk, PKV_K_KMEANS_ASSIGN, spec, &p_assign);
    /* update: one invocation per channel, a [M][16] shared table per workgroup */
    uint32_t spec_update[PKV_VK_SPEC_MAX] = {UPDATE_CHANNELS, d, M};
    if (s == PKV_OK) s = pkv_vk_pipeline(vk, PKV_K_KMEANS_UPDATE, spec_update, &p_update);
    if (s == PKV_OK) s = pkv_vk_pipeline(vk, PKV_K_KMEANS_FINISH, spec, &p_finish);
    if (s == PKV_OK) s = pkv_vk_pipeline(vk, PKV_K_KMEANS_STORE, spec, &p_store);
    const size_t tok_bytes = (size_t)2 * n * H * d * 2;
    if (s == PKV_OK && op->tokens) s = pkv_vk_upload(vk, vk->scratch, (size_t)kp.tok_off * 4, op->tokens, tok_bytes);
    else if (s == PKV_OK) s = copy_in_device(vk, op->tokens_buf, op->tokens_off, vk->scratch, (size_t)kp.tok_off * 4, tok_bytes);
    if (s == PKV_OK) s = pkv_vk_upload(vk, vk->scratch, (size_t)kp.init_off * 4, op->init_index, (size_t)H * 2 * M * 4);
    if (s == PKV_OK) s = pkv_vk_upload(vk, vk->scratch, (size_t)kp.rcp_off * 4, op->rcp, (size_t)(n + 1) * 4);
    if (s == PKV_OK) s = pkv_vk_upload(vk, vk->scratch, (size_t)kp.chunk_off * 4, op->chunk_table, (size_t)H * PKV_MAX_CHUNKS * 4);
    if (s == PKV_OK && nblk) s = pkv_vk_upload(vk, vk->scratch, (size_t)bslot_off * 4, op->block_slot, (size_t)H * nblk * 4);
    if (s == PKV_OK) {
        pkv_vk_barrier(vk);
        op_timestamp(vk, 0);
        s = pkv_vk_dispatch(vk, p_init, bufs, &kp, sizeof kp, ceil_div(M * d, WG_SMALL), 2 * H, 1);
    }
    for (uint32_t it = 0; s == PKV_OK && it < op->max_iters; it++) {
        pkv_vk_barrier(vk);
        s = pkv_vk_dispatch(vk, p_assign, bufs, &kp, sizeof kp, ceil_div(n, WG_SMALL), 2 * H, 1);
        if (s == PKV_OK) {
            pkv_vk_barrier(vk);
            s = pkv_vk_dispatch(vk, p_update, bufs, &kp, sizeof kp, ceil_div(d, UPDATE_CHANNELS), 2 * H, 1);
        }
        if (s == PKV_OK) {
            pkv_vk_barrier(vk);
            s = pkv_vk_dispatch(vk, p_finish, bufs, &kp, sizeof kp, 1, 2 * H, 1);
        }
    }
    if (s == PKV_OK) {
        pkv_vk_barrier(vk);
        s = pkv_vk_dispatch(vk, p_store, bufs, &kp, sizeof kp, ceil_div(M * d / 2, WG_SMALL), 2 * H, 1);
    }
    if (s == PKV_OK && nblk) {
        quant_push q;
        quant_push_init(g, &q);
        q.tok_off = kp.tok_off;
        q.n = n;
        q.chunk_off = kp.chunk_off;
        q.block_slot_off = bslot_off;
        q.n_blocks = nblk;
        q.n_patterns = M;
        q.minmax = 0;
        q.assign_off = assign_off;
        q.n_assign = op->n_quant;
        s = record_blocks(vk, g, bufs, &q);
    }
    if (s == PKV_OK) op_timestamp(vk, 1);
    s = op_end(vk, s);
    pthread_mutex_unlock(&vk->lock);
    return s;
}

pkv_status pkv_vk_flush(pkv_backend *be, const pkv_store *st, const pkv_flush_op *op)
{
    pkv_vk *vk = pkv_vk_of(be);
    const pkv_geom *g = st->g;
    const uint32_t H = g->H, nblk = g->R / g->G;
    const int pattern = g->mode == PKV_MODE_PATTERN;
    scratch_plan plan = {0};
    quant_push q;
    quant_push_init(g, &q);
    q.from_window = 1;
    q.window_slot_off = take(&plan, H);
    q.chunk_off = take(&plan, (size_t)H * PKV_MAX_CHUNKS);
    q.block_slot_off = take(&plan, (size_t)H * nblk);
    q.n_blocks = nblk;
    q.n_patterns = pattern ? op->bank_count + op->append_pattern : 0;
    q.minmax = 1;
    q.assign_off = take(&plan, (size_t)2 * H * g->R);
    q.n_assign = g->R;

    pthread_mutex_lock(&vk->lock);
    pkv_status s = vk->recording ? pkv_vk_finish(vk) : PKV_OK; /* deferred writes first */
    if (s == PKV_OK) s = pkv_vk_scratch_reserve(vk, (size_t)plan.words * 4);
    pkv_buf *bufs[4] = {vk->scratch, st->blocks, st->chunks, st->windows};
    VkPipeline p_centre = VK_NULL_HANDLE;
    if (s == PKV_OK && pattern && op->append_pattern) {
        uint32_t spec[PKV_VK_SPEC_MAX] = {WG_SMALL, g->d};
        s = pkv_vk_pipeline(vk, PKV_K_FLUSH_CENTRE, spec, &p_centre);
    }
    if (s == PKV_OK) s = pkv_vk_upload(vk, vk->scratch, (size_t)q.window_slot_off * 4, op->window_slot, (size_t)H * 4);
    if (s == PKV_OK && pattern)
        s = pkv_vk_upload(vk, vk->scratch, (size_t)q.chunk_off * 4, op->chunk_table, (size_t)H * PKV_MAX_CHUNKS * 4);
    if (s == PKV_OK) s = pkv_vk_upload(vk, vk->scratch, (size_t)q.block_slot_off * 4, op->block_slot, (size_t)H * nblk * 4);
    if (s == PKV_OK) {
        pkv_vk_barrier(vk);
        op_timestamp(vk, 0);
    }
    if (s == PKV_OK && p_centre) {
        struct { uint32_t window_words, R, chunk_words, bank_count, window_slot_off, chunk_off; } cp = {
            g->window_bytes / 4, g->R, g->chunk_bytes / 4, op->bank_count, q.window_slot_off, q.chunk_off};
        pkv_vk_barrier(vk);
        s = pkv_vk_dispatch(vk, p_centre, bufs, &cp, sizeof cp, ceil_div(g->d / 2, WG_SMALL), 2 * H, 1);
    }
    if (s == PKV_OK) s = record_blocks(vk, g, bufs, &q);
    if (s == PKV_OK) op_timestamp(vk, 1);
    s = op_end(vk, s);
    pthread_mutex_unlock(&vk->lock);
    return s;
}

typedef struct attn_push {
    uint32_t H, n_q_heads, q_len, gqa, tiles, cps;
    uint32_t block[10];
    uint32_t chunk_words, window_words, R;
    uint32_t q_off, seq_off, item_off, table_off, qc_off, part_off, cnt_off, out_off;
    float scale;
    uint32_t flags;
} attn_push;

/* Bytes of shared memory attn_decode.comp declares for nr rows, with or without the V codes staged
 * (its arrays, in its order). */
static size_t decode_shared_bytes(const pkv_geom *g, uint32_t nr, int stage_v, int subgroups)
{
    const pkv_attn_shape sh = pkv_attn_shape_for(nr, g);
    const size_t nrv = (nr + 3) / 4, wg = g->G, ch = sh.vch;
    const size_t ksec = sh.stage_k && g->mode != PKV_MODE_FP16 ? ((size_t)g->G * g->k_row_words + 3) / 4 * 16 : 16;
    const size_t cap = g->mode == PKV_MODE_PATTERN ? g->capacity : 1;
    const size_t vsec = g->mode == PKV_MODE_FP16 || !stage_v ? 4 : (size_t)g->G * g->v_row_words;
    const size_t acc = wg * ch > nr * g->d ? wg * ch : nr * g->d;
    return 16 * nrv * (2 * g->d + cap + g->G) + 4 * vsec + ksec + 4 * nr * cap + 4 * acc + 4 + 32 +
           8 * nr * (subgroups ? 32 : wg);
}

pkv_status pkv_vk_attention(pkv_backend *be, const pkv_store *st, const pkv_attn_op *op)
{
    pkv_vk *vk = pkv_vk_of(be);
    const pkv_geom *g = st->g;
    const uint32_t H = g->H, d = g->d, G = g->G;
    const int pattern = g->mode == PKV_MODE_PATTERN;
    const uint32_t cap = pattern ? g->capacity : 1;
    const uint32_t rows_total = op->n_seqs * op->q_len * op->n_q_heads;
    /* the most rows per workgroup that fit in shared memory, with the V codes staged if possible */
    const size_t limit = vk->props.limits.maxComputeSharedMemorySize;
    uint32_t nr = pkv_attn_rows_per_group(op, H, 8), stage_v = 1;
    while (nr > 1 && decode_shared_bytes(g, nr, stage_v, vk->subgroup_arith) > limit) nr /= 2;
    if (decode_shared_bytes(g, nr, stage_v, vk->subgroup_arith) > limit) {
        stage_v = 0;
        nr = pkv_attn_rows_per_group(op, H, 8);
        while (nr > 1 && decode_shared_bytes(g, nr, stage_v, vk->subgroup_arith) > limit) nr /= 2;
    }
    const pkv_attn_shape shape = pkv_attn_shape_for(nr, g);
    /* The merge keeps two floats per item and row in the acc_s array (G x channels per invocation). */
    const uint32_t max_splits = G * shape.vch / (2 * nr);
    pkv_attn_plan plan;
    pkv_status s = pkv_attn_plan_make(op, g, nr, vk->compute_units * 4, max_splits, &plan);
    if (s != PKV_OK) return s;
    if (plan.tiles > 65535 || H > 65535) {
        pkv_attn_plan_free(&plan);
        return pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "vulkan attention: %u query rows per kv head exceed one dispatch",
                        op->q_len * (op->n_q_heads / H));
    }
    attn_push a = {.H = H, .n_q_heads = op->n_q_heads, .q_len = op->q_len, .gqa = op->n_q_heads / H,
                   .tiles = plan.tiles, .cps = plan.cps, .chunk_words = g->chunk_bytes / 4,
                   .window_words = g->window_bytes / 4, .R = g->R, .scale = op->scale * 1.44269504088896341f,
                   .flags = pkv_attn_flags()};
    block_offsets(g, a.block);
    const size_t nrv = (nr + 3) / 4, groups = (size_t)op->n_seqs * H * plan.tiles;
    scratch_plan sp = {0};
    a.q_off = take(&sp, (size_t)rows_total * d);
    a.seq_off = take(&sp, (size_t)op->n_seqs * PKV_ATTN_SEQ_WORDS);
    a.item_off = take(&sp, (size_t)plan.n_items * 2);
    a.table_off = take(&sp, op->table_len + 1);
    a.qc_off = take(&sp, pattern ? groups * cap * nrv * 4 : 1);
    a.part_off = take(&sp, (size_t)plan.n_slots * H * plan.tiles * nr * (d + 4) + 1);
    a.cnt_off = take(&sp, groups);
    a.out_off = take(&sp, (size_t)rows_total * d);

    pthread_mutex_lock(&vk->lock);
    s = pkv_vk_scratch_reserve(vk, (size_t)sp.words * 4);
    pkv_buf *bufs[4] = {vk->scratch, st->blocks, st->chunks, st->windows};
    uint32_t spec[PKV_VK_SPEC_MAX] = {G, d, G, g->k_bits, g->v_bits, g->mode, nr, cap, stage_v, shape.vch, shape.stage_k};
    uint32_t spec_qc[PKV_VK_SPEC_MAX] = {WG_SMALL, d, G, g->k_bits, g->v_bits, g->mode, nr, cap};
    uint32_t spec_merge[PKV_VK_SPEC_MAX] = {WG_BLOCK, d, G, g->k_bits, g->v_bits, g->mode, nr, cap};
    VkPipeline p_qc = VK_NULL_HANDLE, p_decode, p_merge = VK_NULL_HANDLE;
    if (s == PKV_OK && pattern && !(a.flags & PKV_ATTN_SKIP_QC)) s = pkv_vk_pipeline(vk, PKV_K_ATTN_QC, spec_qc, &p_qc);
    if (s == PKV_OK && (a.flags & PKV_ATTN_SEPARATE_MERGE) && plan.n_slots)
        s = pkv_vk_pipeline(vk, PKV_K_ATTN_MERGE, spec_merge, &p_merge);
    if (s == PKV_OK) s = pkv_vk_pipeline(vk, vk->subgroup_arith ? PKV_K_ATTN_DECODE_SG : PKV_K_ATTN_DECODE, spec, &p_decode);
    if (s != PKV_OK) { /* nothing recorded yet: deferred writes stay queued */
        pkv_attn_plan_free(&plan);
        pthread_mutex_unlock(&vk->lock);
        return s;
    }
    if (op->q) s = pkv_vk_upload(vk, vk->scratch, (size_t)a.q_off * 4, op->q, (size_t)rows_total * d * 4);
    else s = copy_in_device(vk, op->q_buf, op->q_off, vk->scratch, (size_t)a.q_off * 4, (size_t)rows_total * d * 4);
    if (s == PKV_OK)
        s = pkv_vk_upload(vk, vk->scratch, (size_t)a.seq_off * 4, plan.seq_desc, (size_t)op->n_seqs * PKV_ATTN_SEQ_WORDS * 4);
    if (s == PKV_OK) s = pkv_vk_upload(vk, vk->scratch, (size_t)a.item_off * 4, plan.items, (size_t)plan.n_items * 8);
    if (s == PKV_OK && op->table_len)
        s = pkv_vk_upload(vk, vk->scratch, (size_t)a.table_off * 4, op->table, (size_t)op->table_len * 4);
    if (s == PKV_OK) { /* the merge counters start at zero (the last workgroup of each resets its own) */
        s = pkv_vk_begin(vk);
        if (s == PKV_OK)
            vk->f.vkCmdFillBuffer(vk->cb, vk->scratch->page->buf, vk->scratch->off + (VkDeviceSize)a.cnt_off * 4,
                                  (VkDeviceSize)groups * 4, 0);
    }
    if (s == PKV_OK) {
        pkv_vk_barrier(vk);
        op_timestamp(vk, 0);
        uint32_t max_bank = 1; /* one invocation per pattern */
        for (uint32_t i = 0; i < op->n_seqs; i++) max_bank = op->seqs[i].bank_count > max_bank ? op->seqs[i].bank_count : max_bank;
        if (p_qc) s = pkv_vk_dispatch(vk, p_qc, bufs, &a, sizeof a, ceil_div(max_bank, WG_SMALL), plan.tiles, op->n_seqs * H);
    }
    if (s == PKV_OK) {
        pkv_vk_barrier(vk);
        s = pkv_vk_dispatch(vk, p_decode, bufs, &a, sizeof a, plan.n_items, plan.tiles, H);
    }
    if (s == PKV_OK && p_merge) {
        pkv_vk_barrier(vk);
        s = pkv_vk_dispatch(vk, p_merge, bufs, &a, sizeof a, plan.tiles, op->n_seqs * H, 1);
    }
    pkv_attn_plan_free(&plan);
    if (s == PKV_OK) {
        op_timestamp(vk, 1);
        pkv_vk_barrier(vk);
        if (op->out) s = pkv_vk_download(vk, vk->scratch, (size_t)a.out_off * 4, op->out, (size_t)rows_total * d * 4);
        else s = copy_in_device(vk, vk->scratch, (size_t)a.out_off * 4, op->out_buf, op->out_off, (size_t)rows_total * d * 4);
    }
    s = op_end(vk, s);
    if (s == PKV_OK) vk->last_attention_ms = vk->last_op_ms;
    pthread_mutex_unlock(&vk->lock);
    return s;
}
