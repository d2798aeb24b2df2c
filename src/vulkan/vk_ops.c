/* The three ops of the backend interface on Vulkan: prefill mining, window flush and attention.
 * Each op uploads its tables to the scratch buffer, records its dispatches (all kv heads of the
 * layer in each dispatch) into one command buffer, submits once and waits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn_plan.h"
#include "internal.h"
#include "profile.h"
#include "patternkv_vulkan.h"
#include "vk_internal.h"

#define WG_SMALL 64u
#define WG_BLOCK 128u
#define UDESC_WORDS 16u
/* Scratch of one mining submission (its layers are grouped to stay below it); PKV_VULKAN_MINE_BYTES
 * overrides it. The device's largest storage buffer bounds it too. */
#define MINE_BYTES_DEFAULT (1ull << 30)

/* Scratch sections in 32-bit words, each 64-byte aligned. */
typedef struct scratch_plan { size_t words; } scratch_plan;
static uint32_t take(scratch_plan *p, size_t words)
{
    size_t at = p->words;
    p->words += (words + 15) & ~(size_t)15;
    return (uint32_t)at;
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

/* block_common.glsl's push constants */
typedef struct quant_push {
    uint32_t block[10];
    uint32_t chunk_words, window_words, R, from_window, tok_off, n, n_src_layers;
    uint32_t udesc_off, block_slot_off, n_blocks;
    float gate_k2, inv_maxq_k, inv_maxq_v;
    uint32_t H;
    uint32_t assign_off, n_assign;
    uint32_t search_off;
} quant_push;

/* kmeans_common.glsl's push constants */
typedef struct kmeans_push {
    uint32_t n, H, M, n_src_layers, tok_off, init_off, rcp_off, cent_off, part_off, cnt_off, assign_off, flags_off,
        udesc_off, chunk_words, n_chunks, n_assign, lists, n_tok;
    float tol2, gate_k2;
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

/* ---- the pipelines of the write path ---------------------------------------------------------- */

enum { WP_KM_INIT, WP_KM_ASSIGN, WP_KM_FINAL, WP_KM_PARTIAL, WP_KM_REDUCE, WP_KM_FINISH, WP_KM_STORE, WP_ASSIGN,
       WP_SEARCH, WP_QUANT, WP_CENTRE, WP_WINDOW, WP_COUNT };

/* Records quant_search over n_blocks x units (the push's sections set), then the barrier quant_block needs. */
static pkv_status record_search(pkv_vk *vk, const pkv_geom *g, VkPipeline p, pkv_buf **bufs, const quant_push *q,
                                uint32_t units)
{
    pkv_status s = pkv_vk_dispatch(vk, p, bufs, q, sizeof *q, q->n_blocks, 2 * units,
                                   ceil_div(pkv_geom_mse_run_max(g), pkv_geom_mse_runs_per_group(g)));
    if (s == PKV_OK) pkv_vk_barrier(vk);
    return s;
}

/* Whether kmeans_partial keeps the M x D sums in shared memory. */
static int partial_shared(const pkv_vk *vk, const pkv_geom *g)
{
    size_t bytes = (size_t)g->M * g->d * 4 + 2 * PKV_KMEANS_CHUNK * 4 + 256 * 4;
    return bytes <= vk->props.limits.maxComputeSharedMemorySize;
}

/* The (kernel, specialization) of each write-path pipeline for a geometry: the ops and prepare use
 * the same ones. Returns 0 when the pipeline does not apply to the mode. */
static int wp_spec(const pkv_vk *vk, const pkv_geom *g, int which, int *kernel, uint32_t spec[PKV_VK_SPEC_MAX])
{
    memset(spec, 0, PKV_VK_SPEC_MAX * sizeof *spec);
    const int pattern = g->mode == PKV_MODE_PATTERN;
    const uint32_t d = g->d, wgc = d < WG_BLOCK ? d : WG_BLOCK;
    uint32_t mb = 4096 / d; /* centroids per shared block: 16 KiB of them */
    if (mb > g->M) mb = g->M;
    spec[1] = d;
    switch (which) {
    case WP_KM_INIT: *kernel = PKV_K_KMEANS_INIT, spec[0] = WG_SMALL; return pattern;
    case WP_KM_ASSIGN:
    case WP_KM_FINAL:
        *kernel = PKV_K_KMEANS_ASSIGN, spec[0] = WG_SMALL, spec[2] = mb, spec[3] = which == WP_KM_FINAL;
        return pattern;
    case WP_KM_PARTIAL: {
        int sh = partial_shared(vk, g);
        *kernel = PKV_K_KMEANS_PARTIAL, spec[0] = wgc, spec[2] = sh ? g->M : 1, spec[3] = (uint32_t)sh;
        return pattern;
    }
    case WP_KM_REDUCE: *kernel = PKV_K_KMEANS_REDUCE, spec[0] = wgc; return pattern;
    case WP_KM_FINISH: *kernel = PKV_K_KMEANS_FINISH, spec[0] = WG_SMALL; return pattern;
    case WP_KM_STORE: *kernel = PKV_K_KMEANS_STORE, spec[0] = WG_SMALL; return pattern;
    case WP_ASSIGN: /* patterns per shared block: 16 KiB of fp32, at most 32 running spans */
        *kernel = PKV_K_ASSIGN, spec[0] = WG_SMALL, spec[2] = 4096 / d < 32 ? (4096 / d ? 4096 / d : 1) : 32;
        return pattern;
    case WP_CENTRE: *kernel = PKV_K_FLUSH_CENTRE, spec[0] = WG_SMALL; return pattern;
    case WP_WINDOW: *kernel = PKV_K_WINDOW_WRITE, spec[0] = WG_SMALL; return 1;
    case WP_SEARCH:
    case WP_QUANT:
        *kernel = which == WP_SEARCH ? PKV_K_QUANT_SEARCH : PKV_K_QUANT_BLOCK;
        spec[0] = which == WP_SEARCH ? pkv_geom_mse_runs_per_group(g) * PKV_MSE_COARSE : WG_BLOCK;
        spec[2] = g->G, spec[3] = g->k_bits, spec[4] = g->v_bits, spec[5] = g->mode, spec[6] = pkv_geom_mse_halves(g);
        spec[7] = pkv_geom_mse_runs_per_group(g);
        return which == WP_QUANT || pkv_geom_mse_halves(g) != 0;
    }
    return 0;
}

static pkv_status wp_pipeline(pkv_vk *vk, const pkv_geom *g, int which, VkPipeline *out)
{
    int kernel;
    uint32_t spec[PKV_VK_SPEC_MAX];
    wp_spec(vk, g, which, &kernel, spec);
    return pkv_vk_pipeline(vk, kernel, spec, out);
}

/* attn_specs' most pipelines: per rows-per-workgroup value (1, 2, 4, 8) q.C, merge, and per op size (few,
 * some, many chunks) its decode (or split attention's values pass) and split attention's logits pass */
#define ATTN_SPECS_MAX (4 * 8)
static void attn_specs(pkv_backend *be, const pkv_geom *g, uint32_t n_q_heads, uint32_t max_q_len, int *kernels,
                       uint32_t (*specs)[PKV_VK_SPEC_MAX], uint32_t *n);

/* The first use of a geometry (a cache created or loaded): the write path's pipelines, created
 * together, one thread each; before them, only where vk->eager_attention is set
 * (PKV_VULKAN_EAGER_PIPELINES=1; off by default since session 9: on the H200 those compiles slowed
 * the write path's more than they saved), attention's for every rows-per-workgroup it can pick
 * (q_len 1 .. 8 of one query head per KV head gives 1, 2, 4 and 8 rows: any q_len and GQA group)
 * started on background threads: the first attention then waits for what is left of its own compile,
 * which ran alongside the write path's and the first prompt, not after them. */
pkv_status pkv_vk_prepare(pkv_backend *be, const pkv_geom *g)
{
    pkv_vk *vk = pkv_vk_of(be);
    int kernels[WP_COUNT], ak[ATTN_SPECS_MAX];
    uint32_t specs[WP_COUNT][PKV_VK_SPEC_MAX], as[ATTN_SPECS_MAX][PKV_VK_SPEC_MAX];
    uint32_t n = 0, na = 0;
    for (int w = 0; w < WP_COUNT; w++)
        if (wp_spec(vk, g, w, &kernels[n], specs[n])) n++;
    if (vk->eager_attention) attn_specs(be, g, g->H, 8, ak, as, &na);
    pthread_mutex_lock(&vk->lock);
    pkv_vk_pipelines_start(vk, na, ak, (const uint32_t(*)[PKV_VK_SPEC_MAX])as);
    pkv_status s = pkv_vk_pipelines_create(vk, n, kernels, specs);
    pthread_mutex_unlock(&vk->lock);
    return s;
}

/* ---- timing --------------------------------------------------------------------------------- */

/* Device timestamps around each op (when the queue has them) for last_op_ms. */
static void op_timestamp(pkv_vk *vk, int end)
{
    if (!vk->query_pool || vk->external || pkv_vk_begin(vk) != PKV_OK) return;
    if (!end) vk->f.vkCmdResetQueryPool(vk->cb, vk->query_pool, 0, 2);
    /* bottom of pipe for both: the start stamp waits for the uploads recorded before it */
    vk->f.vkCmdWriteTimestamp(vk->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, vk->query_pool, end ? 1 : 0);
}

/* Submits and waits; returns the device time between the op's two stamps in *ms (< 0 unknown). */
static pkv_status op_end_timed(pkv_vk *vk, pkv_status s, double *ms)
{
    *ms = -1.0;
    if (s != PKV_OK) {
        pkv_vk_abandon(vk);
        return s;
    }
    s = pkv_vk_finish(vk);
    uint64_t ts[2];
    if (s == PKV_OK && vk->query_pool && !vk->external &&
        vk->f.vkGetQueryPoolResults(vk->device, vk->query_pool, 0, 2, sizeof ts, ts, 8,
                                    VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) == VK_SUCCESS)
        *ms = (double)((ts[1] - ts[0]) & vk->ts_mask) * vk->props.limits.timestampPeriod * 1e-6;
    return s;
}

static pkv_status op_end(pkv_vk *vk, pkv_status s)
{
    double ms;
    s = op_end_timed(vk, s, &ms);
    vk->last_op_ms = ms;
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

/* ---- mine ----------------------------------------------------------------------------------- */

/* The scratch of a mining submission of `layers` layers. */
typedef struct mine_plan {
    kmeans_push kp;
    uint32_t udesc_off, bslot_off, nblk, search_off;
    size_t words;
} mine_plan;

static void plan_mine(const pkv_geom *g, const pkv_mine_op *op, uint32_t layers, mine_plan *mp)
{
    const uint32_t H = g->H, d = g->d, M = g->M, n = op->n_sample, nt = op->n_tokens, units = layers * H, lists = 2 * units;
    const uint32_t nc = ceil_div(n, PKV_KMEANS_CHUNK);
    scratch_plan plan = {0};
    kmeans_push *kp = &mp->kp;
    memset(mp, 0, sizeof *mp);
    kp->n = n, kp->n_tok = nt, kp->H = H, kp->M = M, kp->n_src_layers = layers, kp->chunk_words = g->chunk_bytes / 4;
    kp->n_chunks = nc, kp->n_assign = op->n_quant, kp->lists = lists, kp->tol2 = op->tol2, kp->gate_k2 = g->gate_k2;
    mp->nblk = op->n_quant / g->G;
    kp->tok_off = take(&plan, (size_t)layers * nt * H * d); /* K and V, fp16 */
    kp->udesc_off = mp->udesc_off = take(&plan, (size_t)units * UDESC_WORDS);
    mp->bslot_off = take(&plan, (size_t)units * mp->nblk + 1);
    kp->init_off = take(&plan, (size_t)lists * M);
    kp->rcp_off = take(&plan, (size_t)n + 1);
    kp->cent_off = take(&plan, (size_t)lists * M * d);
    kp->part_off = take(&plan, (size_t)lists * nc * M * d);
    kp->cnt_off = take(&plan, (size_t)lists * nc * M);
    kp->assign_off = take(&plan, (size_t)lists * (n > op->n_quant ? n : op->n_quant)); /* k-means, then final */
    kp->flags_off = take(&plan, (size_t)lists * 2);
    if (pkv_geom_mse_halves(g)) mp->search_off = take(&plan, (size_t)lists * mp->nblk * pkv_geom_mse_run_max(g));
    mp->words = plan.words;
}

/* One submission: k-means of layers [l0, l0 + nl) of the op, their patterns and blocks. */
static pkv_status mine_group(pkv_vk *vk, const pkv_store *st, const pkv_mine_op *op, uint32_t l0, uint32_t nl,
                             double *ms)
{
    const pkv_geom *g = st->g;
    const uint32_t H = g->H, d = g->d, M = g->M, n = op->n_sample, nt = op->n_tokens, units = nl * H, lists = 2 * units;
    mine_plan mp;
    plan_mine(g, op, nl, &mp);
    kmeans_push *kp = &mp.kp;
    VkPipeline p[WP_COUNT];
    pkv_status s = PKV_OK;
    for (int w = WP_KM_INIT; w <= WP_QUANT && s == PKV_OK; w++)
        if (w != WP_ASSIGN && (w != WP_SEARCH || pkv_geom_mse_halves(g))) s = wp_pipeline(vk, g, w, &p[w]);
    if (s == PKV_OK) s = pkv_vk_scratch_reserve(vk, mp.words * 4);
    if (s != PKV_OK) return s;
    pkv_vk_op_start(vk);
    pkv_vk_scratch_written(vk);
    pkv_buf *bufs[4] = {vk->scratch, st->blocks, st->chunks, st->windows};
    /* uploads: tokens, unit descriptors, block slots, initial indices, reciprocals */
    const size_t layer_halves = (size_t)nt * H * d;
    for (uint32_t l = 0; l < nl && s == PKV_OK; l++) {
        const size_t k_at = (size_t)kp->tok_off * 4 + l * layer_halves * 2, v_at = k_at + (size_t)nl * layer_halves * 2;
        if (op->tokens_k) {
            s = pkv_vk_upload(vk, vk->scratch, k_at, op->tokens_k[l0 + l], layer_halves * 2);
            if (s == PKV_OK) s = pkv_vk_upload(vk, vk->scratch, v_at, op->tokens_v[l0 + l], layer_halves * 2);
        } else {
            s = copy_in_device(vk, op->tokens_buf, op->tokens_off, vk->scratch, k_at, 2 * layer_halves * 2);
        }
    }
    uint32_t *tab = malloc(((size_t)units * (UDESC_WORDS + mp.nblk) + (size_t)lists * M + 1) * sizeof *tab);
    if (!tab && s == PKV_OK) s = pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "vulkan mine: out of host memory");
    if (s == PKV_OK) {
        uint32_t *ud = tab, *bs = tab + (size_t)units * UDESC_WORDS, *in = bs + (size_t)units * mp.nblk;
        memset(ud, 0, (size_t)units * UDESC_WORDS * sizeof *ud);
        for (uint32_t l = 0; l < nl; l++) {
            const pkv_mine_layer *ml = &op->layers[l0 + l];
            for (uint32_t h = 0; h < H; h++) {
                uint32_t *u = ud + ((size_t)l * H + h) * UDESC_WORDS;
                u[1] = M;
                memcpy(u + 4, ml->chunk_table + (size_t)h * PKV_MAX_CHUNKS, PKV_MAX_CHUNKS * sizeof *u);
            }
            memcpy(bs + (size_t)l * H * mp.nblk, ml->block_slot, (size_t)H * mp.nblk * sizeof *bs);
            memcpy(in + (size_t)l * H * 2 * M, ml->init_index, (size_t)H * 2 * M * sizeof *in);
        }
        s = pkv_vk_upload(vk, vk->scratch, (size_t)mp.udesc_off * 4, ud, (size_t)units * UDESC_WORDS * 4);
        if (s == PKV_OK && mp.nblk) s = pkv_vk_upload(vk, vk->scratch, (size_t)mp.bslot_off * 4, bs, (size_t)units * mp.nblk * 4);
        if (s == PKV_OK) s = pkv_vk_upload(vk, vk->scratch, (size_t)kp->init_off * 4, in, (size_t)lists * M * 4);
        if (s == PKV_OK) s = pkv_vk_upload(vk, vk->scratch, (size_t)kp->rcp_off * 4, op->rcp, ((size_t)n + 1) * 4);
    }
    free(tab);
    if (s == PKV_OK) {
        pkv_vk_barrier(vk);
        op_timestamp(vk, 0);
        s = pkv_vk_dispatch(vk, p[WP_KM_INIT], bufs, kp, sizeof *kp, ceil_div(M * d, WG_SMALL), lists, 1);
    }
    for (uint32_t it = 0; s == PKV_OK && it < op->max_iters; it++) {
        pkv_vk_barrier(vk);
        s = pkv_vk_dispatch(vk, p[WP_KM_ASSIGN], bufs, kp, sizeof *kp, ceil_div(n, WG_SMALL), lists, 1);
        if (s == PKV_OK) {
            pkv_vk_barrier(vk);
            s = pkv_vk_dispatch(vk, p[WP_KM_PARTIAL], bufs, kp, sizeof *kp, kp->n_chunks, lists, 1);
        }
        if (s == PKV_OK) {
            pkv_vk_barrier(vk);
            s = pkv_vk_dispatch(vk, p[WP_KM_REDUCE], bufs, kp, sizeof *kp, M, lists, 1);
        }
        if (s == PKV_OK) {
            pkv_vk_barrier(vk);
            s = pkv_vk_dispatch(vk, p[WP_KM_FINISH], bufs, kp, sizeof *kp, ceil_div(lists, WG_SMALL), 1, 1);
        }
    }
    if (s == PKV_OK) {
        pkv_vk_barrier(vk);
        s = pkv_vk_dispatch(vk, p[WP_KM_STORE], bufs, kp, sizeof *kp, ceil_div(M * d / 2, WG_SMALL), lists, 1);
    }
    if (s == PKV_OK && mp.nblk) { /* the final assignment against the stored patterns, then the blocks */
        pkv_vk_barrier(vk);
        s = pkv_vk_dispatch(vk, p[WP_KM_FINAL], bufs, kp, sizeof *kp, ceil_div(op->n_quant, WG_SMALL), lists, 1);
        quant_push q;
        quant_push_init(g, &q);
        q.tok_off = kp->tok_off, q.n = nt, q.n_src_layers = nl;
        q.udesc_off = mp.udesc_off, q.block_slot_off = mp.bslot_off, q.n_blocks = mp.nblk;
        q.assign_off = kp->assign_off, q.n_assign = op->n_quant, q.search_off = mp.search_off;
        if (s == PKV_OK) pkv_vk_barrier(vk);
        if (s == PKV_OK && pkv_geom_mse_halves(g)) s = record_search(vk, g, p[WP_SEARCH], bufs, &q, units);
        if (s == PKV_OK) {
            s = pkv_vk_dispatch(vk, p[WP_QUANT], bufs, &q, sizeof q, mp.nblk, 2 * units, 1); /* K, V halves */
        }
    }
    if (s == PKV_OK) op_timestamp(vk, 1);
    return op_end_timed(vk, s, ms);
}

pkv_status pkv_vk_mine(pkv_backend *be, const pkv_store *st, const pkv_mine_op *op)
{
    pkv_vk *vk = pkv_vk_of(be);
    const pkv_geom *g = st->g;
    const uint32_t n = op->n_tokens;
    if (ceil_div(n, WG_SMALL) > 65535)
        return pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "vulkan mine: %u prefill tokens exceed one dispatch (%u)", n, 65535u * WG_SMALL);
    /* layers per submission: as many as fit in the scratch budget (at least one) */
    const char *env = getenv("PKV_VULKAN_MINE_BYTES");
    uint64_t budget = env && *env ? strtoull(env, NULL, 10) : MINE_BYTES_DEFAULT;
    if (budget > vk->props.limits.maxStorageBufferRange) budget = vk->props.limits.maxStorageBufferRange;
    uint32_t per = 1;
    while (per < op->n_layers && 2 * (per + 1) * g->H <= 65535) {
        mine_plan mp;
        plan_mine(g, op, per + 1, &mp);
        if (mp.words * 4 > budget) break;
        per++;
    }
    pthread_mutex_lock(&vk->lock);
    pkv_status s = pkv_vk_stage_settle(vk); /* a recorded first prompt: its K/V into vk->staged */
    double total = 0.0;
    for (uint32_t l0 = 0; l0 < op->n_layers && s == PKV_OK; l0 += per) {
        double ms = -1.0;
        s = mine_group(vk, st, op, l0, op->n_layers - l0 < per ? op->n_layers - l0 : per, &ms);
        total = total < 0 || ms < 0 ? -1.0 : total + ms;
    }
    vk->last_op_ms = s == PKV_OK ? total : -1.0;
    pthread_mutex_unlock(&vk->lock);
    return s;
}

/* ---- flush ---------------------------------------------------------------------------------- */

pkv_status pkv_vk_flush(pkv_backend *be, const pkv_store *st, const pkv_flush_op *op)
{
    pkv_vk *vk = pkv_vk_of(be);
    const pkv_geom *g = st->g;
    const uint32_t H = g->H, nblk = g->R / g->G, units = op->n_layers * H;
    const int pattern = g->mode == PKV_MODE_PATTERN;
    if (units > 32767) return pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "vulkan flush: %u layers x heads exceed one dispatch", units);
    scratch_plan plan = {0};
    quant_push q;
    quant_push_init(g, &q);
    q.from_window = 1;
    q.udesc_off = take(&plan, (size_t)units * UDESC_WORDS);
    q.block_slot_off = take(&plan, (size_t)units * nblk);
    q.n_blocks = nblk;
    q.assign_off = take(&plan, (size_t)2 * units * g->R);
    q.n_assign = g->R;
    if (pkv_geom_mse_halves(g)) q.search_off = take(&plan, (size_t)2 * units * nblk * pkv_geom_mse_run_max(g));
    int any_centre = 0;
    for (uint32_t l = 0; l < op->n_layers; l++) any_centre |= pattern && op->layers[l].append_pattern;

    pthread_mutex_lock(&vk->lock);
    /* chained: an earlier shard's flush of this call is recorded and not submitted (op->more); this
     * one goes into the same submission, after a barrier (it reuses the scratch sections) */
    const int chained = vk->flush_chained, defer = op->more && !vk->external;
    vk->flush_chained = 0;
    VkPipeline p_centre = VK_NULL_HANDLE, p_assign = VK_NULL_HANDLE, p_search = VK_NULL_HANDLE, p_quant;
    pkv_status s = pkv_vk_stage_settle(vk);
    if (s == PKV_OK) s = wp_pipeline(vk, g, WP_QUANT, &p_quant);
    if (s == PKV_OK && pkv_geom_mse_halves(g)) s = wp_pipeline(vk, g, WP_SEARCH, &p_search);
    if (s == PKV_OK && pattern) s = wp_pipeline(vk, g, WP_ASSIGN, &p_assign);
    if (s == PKV_OK && any_centre) s = wp_pipeline(vk, g, WP_CENTRE, &p_centre);
    if (s == PKV_OK) s = pkv_vk_scratch_reserve(vk, plan.words * 4);
    pkv_vk_scratch_written(vk);
    uint32_t *tab = s == PKV_OK ? calloc((size_t)units * (UDESC_WORDS + nblk), sizeof *tab) : NULL;
    if (s == PKV_OK && !tab) s = pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "vulkan flush: out of host memory");
    if (s != PKV_OK) { /* nothing recorded: deferred writes (and a chained flush) stay queued */
        pthread_mutex_unlock(&vk->lock);
        return s;
    }
    /* the window writes recorded before (deferred) go in the same submission */
    pkv_vk_op_start(vk);
    if (chained) pkv_vk_barrier(vk);
    pkv_buf *bufs[4] = {vk->scratch, st->blocks, st->chunks, st->windows};
    uint32_t *ud = tab, *bs = tab + (size_t)units * UDESC_WORDS;
    for (uint32_t l = 0; l < op->n_layers; l++) {
        const pkv_flush_layer *fl = &op->layers[l];
        for (uint32_t h = 0; h < H; h++) {
            uint32_t *u = ud + ((size_t)l * H + h) * UDESC_WORDS;
            u[0] = fl->window_slot[h];
            if (pattern) {
                u[1] = fl->bank_count + fl->append_pattern, u[2] = fl->bank_count, u[3] = fl->append_pattern;
                memcpy(u + 4, fl->chunk_table + (size_t)h * PKV_MAX_CHUNKS, PKV_MAX_CHUNKS * sizeof *u);
            }
        }
        memcpy(bs + (size_t)l * H * nblk, fl->block_slot, (size_t)H * nblk * sizeof *bs);
    }
    s = pkv_vk_upload(vk, vk->scratch, (size_t)q.udesc_off * 4, tab, (size_t)units * (UDESC_WORDS + nblk) * 4);
    free(tab);
    /* one dispatch per phase over every layer and head, a barrier only where a phase reads what the
     * one before wrote: the upload (and the deferred window writes) | centre | assign | search | quant */
    if (s == PKV_OK) {
        pkv_vk_barrier(vk);
        if (!chained) op_timestamp(vk, 0); /* chained: the first flush's stamp starts the time of all */
    }
    if (s == PKV_OK && p_centre) {
        s = pkv_vk_dispatch(vk, p_centre, bufs, &q, sizeof q, ceil_div(g->d / 2, WG_SMALL), 2 * units, 1);
        if (s == PKV_OK) pkv_vk_barrier(vk); /* assign reads the new patterns */
    }
    if (s == PKV_OK && pattern) {
        s = pkv_vk_dispatch(vk, p_assign, bufs, &q, sizeof q, ceil_div(g->R, WG_SMALL), 2 * units, 1);
        if (s == PKV_OK) pkv_vk_barrier(vk); /* search and quant read the assignments */
    }
    if (s == PKV_OK && p_search) s = record_search(vk, g, p_search, bufs, &q, units);
    if (s == PKV_OK) s = pkv_vk_dispatch(vk, p_quant, bufs, &q, sizeof q, nblk, 2 * units, 1); /* K, V halves */
    if (s == PKV_OK && defer) { /* the next shard's flush submits it (its time: 0 here, all of it there) */
        vk->flush_chained = 1, vk->last_op_ms = 0.0;
        pthread_mutex_unlock(&vk->lock);
        return s;
    }
    if (s != PKV_OK && chained) { /* the earlier shards' flushes are done for the core: run them (this op's
                                   * partial commands write only slots the core releases) */
        const pkv_status s2 = pkv_vk_finish(vk);
        (void)s2;
        vk->last_op_ms = -1.0;
        pthread_mutex_unlock(&vk->lock);
        return s;
    }
    if (s == PKV_OK) op_timestamp(vk, 1);
    s = op_end(vk, s);
    pthread_mutex_unlock(&vk->lock);
    return s;
}

/* ---- window writes -------------------------------------------------------------------------- */

/* Recorded, not submitted: they run with the next op (one submission for a decode step). Host rows
 * go through the staging ring, the rows back to back then each row's window row, and one
 * window_write dispatch per ring section copies them all (one invocation per 16 bytes; a run longer
 * than the ring's room is split); device rows (engine integration) are copied in place, one copy
 * region per run. */
static pkv_status window_from_host(pkv_vk *vk, const pkv_store *st, const pkv_window_op *op)
{
    const size_t row = (size_t)st->g->d * 2, unit = row + 4 + 16;
    VkPipeline pipe;
    pkv_status s = wp_pipeline(vk, st->g, WP_WINDOW, &pipe);
    pkv_buf *bufs[4] = {&vk->ring_view, NULL, NULL, st->windows};
    uint32_t r = 0, done_rows = 0; /* run r, rows of it already written */
    while (s == PKV_OK && r < op->n_runs) {
        size_t want = 16; /* the remaining rows, 4 bytes of table each, the table's alignment */
        for (uint32_t k = r; k < op->n_runs; k++) want += (size_t)(op->runs[3 * k + 2] - (k == r ? done_rows : 0)) * (row + 4);
        VkDeviceSize roff;
        size_t got; /* at least one row with its entry */
        s = pkv_vk_ring_take(vk, want, unit, &roff, &got);
        if (s != PKV_OK) break;
        const size_t n_rows = (got - 16) / (row + 4);
        const size_t table_at = (roff + n_rows * row + 15) & ~(size_t)15;
        const double tc = pkv_prof_start();
        uint32_t *table = (uint32_t *)(vk->ring_map + table_at);
        size_t at = 0;
        while (at < n_rows && r < op->n_runs) {
            const uint32_t *run = op->runs + 3 * (size_t)r;
            uint32_t rows = run[2] - done_rows;
            if (rows > n_rows - at) rows = (uint32_t)(n_rows - at);
            memcpy(vk->ring_map + roff + at * row, op->rows + ((size_t)run[0] + done_rows) * st->g->d, rows * row);
            for (uint32_t t = 0; t < rows; t++) table[at + t] = run[1] + done_rows + t;
            at += rows, done_rows += rows;
            if (done_rows == run[2]) r++, done_rows = 0;
        }
        pkv_prof_add(PKV_PROF_STAGE, tc);
        const uint32_t push[3] = {(uint32_t)(table_at / 4), (uint32_t)(roff / 16), (uint32_t)at};
        const uint32_t groups = ceil_div((uint32_t)at * (st->g->d / 8), WG_SMALL), gx = groups < 65535 ? groups : 65535;
        if (groups) s = pkv_vk_dispatch(vk, pipe, bufs, push, sizeof push, gx, ceil_div(groups, gx), 1); /* runs of 0 rows: none */
    }
    return s;
}

pkv_status pkv_vk_write_window(pkv_backend *be, const pkv_store *st, const pkv_window_op *op)
{
    pkv_vk *vk = pkv_vk_of(be);
    const size_t row = (size_t)st->g->d * 2;
    pthread_mutex_lock(&vk->lock);
    if (pkv_vk_stage_scatters(vk, op)) {
        pkv_status s = pkv_vk_stage_scatter(vk, st->windows, op->runs, op->n_runs);
        pthread_mutex_unlock(&vk->lock);
        return s;
    }
    pkv_status s = pkv_vk_stage_settle(vk);
    if (s == PKV_OK) s = pkv_vk_begin(vk);
    pkv_vk_op_start(vk);
    if (s == PKV_OK && op->rows) {
        s = window_from_host(vk, st, op);
    } else if (s == PKV_OK) {
        const VkDeviceSize dst0 = st->windows->off;
        s = pkv_vk_regions_reserve(vk, op->n_runs);
        for (uint32_t r = 0; s == PKV_OK && r < op->n_runs; r++) {
            const uint32_t *run = op->runs + 3 * (size_t)r;
            vk->regions[r] = (VkBufferCopy){op->rows_buf->off + op->rows_off + (VkDeviceSize)run[0] * row,
                                            dst0 + (VkDeviceSize)run[1] * row, run[2] * row};
        }
        if (s == PKV_OK && op->n_runs)
            vk->f.vkCmdCopyBuffer(vk->cb, op->rows_buf->page->buf, st->windows->page->buf, op->n_runs, vk->regions);
    }
    if (s == PKV_OK) {
        pkv_vk_op_end_barrier(vk);
        vk->deferred_windows++;
        s = pkv_vk_kick(vk);
    } else
        pkv_vk_abandon(vk);
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
    uint32_t q_status, q_layer; /* ATTN_Q_RAW: the status word and the layer a failed check reports */
    uint32_t lg_off;            /* split attention's logit records */
} attn_push;
_Static_assert(sizeof(attn_push) <= PKV_VK_PUSH_BYTES, "attention's push constants");
/* attn_common.glsl's: q at q_off is a recorded call's raw q, converted and checked where it is read */
#define ATTN_Q_RAW (1u << 16)
#define ATTN_Q_F16 (1u << 17)
_Static_assert(PKV_VULKAN_STATUS_Q_NONFINITE == 2u, "attn_common.glsl's STATUS_Q_NONFINITE");

/* Bytes of shared memory attn_decode.comp declares for nr rows, with or without the V codes staged
 * (its arrays, in its order): q and the q.C table once, the rest per team, qs and w sharing a pool
 * with the end of an item's sums. */
static size_t decode_shared_bytes(const pkv_geom *g, pkv_attn_shape sh, uint32_t nr, int stage_v, int subgroups)
{
    const size_t nrv = (nr + 3) / 4, wg = sh.bps * g->G, teams = sh.teams, ch = sh.vch;
    const size_t cap = g->mode == PKV_MODE_PATTERN ? g->capacity : 1;
    const size_t vsec = sh.bps * (g->mode == PKV_MODE_FP16 || !stage_v ? 4 : (size_t)g->G * g->v_row_words);
    const size_t ksec = !sh.stage_k               ? 16
                        : g->mode == PKV_MODE_FP16 ? sh.bps * g->G * g->d * 2
                                                   : sh.bps * (((size_t)g->G * g->k_row_words + 3) / 4 * 16);
    const size_t acc = wg * ch > nr * g->d ? wg * ch : nr * g->d, steps = 16 * nrv * (sh.bps * g->d + wg);
    const size_t pool = teams == 1 ? steps + 4 * acc : steps > 4 * acc ? steps : 4 * acc;
    const size_t hist = 4 * nr * cap + (sh.hist_fixed ? 4 * nr * cap : 0), red = 8 * nr * sh.bps * (subgroups ? 32 : wg);
    const size_t shared = 16 * nrv * (g->d + cap) + 32 + 4 + 16 + (sh.stage_k ? 0 : 16) + (sh.hist_fixed ? 0 : 4);
    return shared + teams * (4 * vsec + (sh.stage_k ? ksec : 0) + hist + pool + red);
}

/* Bytes of shared memory attn_decode.comp declares with PKV_COOPMAT (attn_step_cm.glsl; bps 1, V codes
 * not staged, CH 4) for nr rows: the arrays of the scalar step it keeps, then the tiles. */
static size_t decode_cm_shared_bytes(const pkv_geom *g, pkv_attn_shape sh, uint32_t nr)
{
    const size_t nrv = (nr + 3) / 4, d = g->d, G = g->G, cap = g->mode == PKV_MODE_PATTERN ? g->capacity : 1;
    const size_t hist = 4 * nr * cap + (sh.hist_fixed ? 4 * nr * cap : 4);
    const size_t acc = G * 4 > nr * d ? G * 4 : nr * d;
    const size_t scalar = 16 * nrv * (d + cap) + 32 + 16 + 16 + hist + 4 * acc + 32 + 8 * nr * 32;
    return scalar + G * (d / 2 + 8) * 2 + 2 * 16 * ((G > d ? G : d) + 8) + 4 * 16 * (G > d ? G : d);
}

/* Whether the cooperative-matrix step serves this shape: asked for (PKV_ATTN_COOPMAT=1), a device with
 * cooperative matrices and subgroups of 32, the one tile shape it has (128 tokens x head_dim 128, 2- or
 * 4-bit codes, up to 16 rows), and its shared memory fits. */
static int decode_cm_fits(const pkv_vk *vk, const pkv_geom *g, pkv_attn_shape sh, uint32_t nr)
{
    const int bits_ok = (g->k_bits == 2 || g->k_bits == 4) && (g->v_bits == 2 || g->v_bits == 4);
    return sh.coopmat == 1 && vk->coopmat && vk->subgroup_arith && vk->subgroup_size == 32 && g->mode != PKV_MODE_FP16 &&
           bits_ok && g->d == 128 && g->G == 128 && nr <= 16 &&
           decode_cm_shared_bytes(g, sh, nr) <= vk->props.limits.maxComputeSharedMemorySize;
}

/* attn_warp.comp: its merge keeps two floats per row and item in MERGE_CAP floats */
#define WARP_WG 32u
#define WARP_MERGE_CAP 1024u
/* Workgroups of attn_warp.comp per compute unit the planner aims for (PKV_ATTN_GROUPS overrides). */
#define WARP_GROUPS_PER_CU 16u

/* Bytes of shared memory attn_warp.comp declares for nr rows (its arrays, in its order). */
static size_t warp_shared_bytes(const pkv_geom *g, pkv_attn_shape sh, uint32_t nr)
{
    const size_t nrv = (nr + 3) / 4, cap = g->mode == PKV_MODE_PATTERN ? g->capacity : 1;
    const size_t hist = nr * cap * (sh.hist_fixed ? 2 : 1), big = hist > WARP_MERGE_CAP ? hist : WARP_MERGE_CAP;
    const size_t krow = sh.stage_k ? 4 * WARP_WG * g->k_row_words : 4;
    return 16 * nrv * (2 * g->d + cap + WARP_WG) + 4 * WARP_WG * g->v_row_words + krow + 4 * big + 32 + 8 * nr * WARP_WG + 16;
}

/* Whether attn_warp.comp serves this shape: asked for, a compressed mode, head_dim 32, 64, 128 or 256
 * (an invocation's V channels then sit in one or two whole words), groups of 32 tokens, and its shared
 * memory fits. */
static int warp_fits(const pkv_vk *vk, const pkv_geom *g, pkv_attn_shape sh, uint32_t nr)
{
    const int d_ok = g->d == 32 || g->d == 64 || g->d == 128 || g->d == 256;
    return sh.warp && g->mode != PKV_MODE_FP16 && d_ok && g->G % WARP_WG == 0 &&
           warp_shared_bytes(g, sh, nr) <= vk->props.limits.maxComputeSharedMemorySize;
}

/* Split attention (attn_logits.comp, attn_values.comp): one token per invocation, workgroups of G */
#define SPLIT_GROUPS_PER_CU 8u /* the planner's wave: few registers, many workgroups per compute unit */
static size_t split_acc_floats(const pkv_geom *g, uint32_t ch, uint32_t nr)
{
    return (size_t)g->G * ch > (size_t)nr * g->d ? (size_t)g->G * ch : (size_t)nr * g->d;
}

/* Bytes of shared memory the larger of the two passes declares for nr rows (their arrays, in order). */
static size_t split_shared_bytes(const pkv_geom *g, pkv_attn_shape sh, uint32_t nr, int subgroups)
{
    const size_t nrv = (nr + 3) / 4, G = g->G, cap = g->mode == PKV_MODE_PATTERN ? g->capacity : 1;
    const size_t red = 8 * nr * (subgroups ? 32 : G) + 4;
    const int fp16 = g->mode == PKV_MODE_FP16;
    const size_t logits = 16 * g->d * nrv + 4 * G * (fp16 ? 1 : g->k_row_words + 1) + red;
    const size_t values = 4 * G * (fp16 ? 1 : g->v_row_words) + 16 * G * nrv + 8 * nr * cap + 4 +
                          4 * split_acc_floats(g, sh.vch, nr) + 32 + red;
    return logits > values ? logits : values;
}

/* Whether split attention serves this shape (pkv_attn_split_serves; FP16 mode too) and its shared memory fits. */
static int split_fits(const pkv_vk *vk, const pkv_geom *g, pkv_attn_shape sh, uint32_t nr)
{
    return pkv_attn_split_serves(g, sh, vk->props.limits.maxComputeWorkGroupSize[0], 1) &&
           split_shared_bytes(g, sh, nr, vk->subgroup_arith) <= vk->props.limits.maxComputeSharedMemorySize;
}

/* Bytes of shared memory the larger of the two passes declares with PKV_COOPMAT (attn_split_cm.glsl;
 * subgroups of 32, G 128) for nr rows: A (fp16; fp32 where emulated), then attn_logits' tile (32
 * channels + 8 per token) and S, or attn_values' staged code rows, tiles (32 tokens x 24 halves per
 * subgroup), histogram and acc_s (which also holds O). */
static size_t split_cm_shared_bytes(const pkv_geom *g, pkv_attn_shape sh, uint32_t nr)
{
    const size_t G = g->G, d = g->d, cap = g->mode == PKV_MODE_PATTERN ? g->capacity : 1;
    const size_t a = (sh.coopmat == 2 ? 4 : 2) * 16 * ((d > G ? d : G) + 8), red = 8 * nr * 32 + 4;
    const size_t acc = split_acc_floats(g, sh.vch, nr);
    const size_t logits = a + G * 5 * 16 + 4 * 16 * G + red;
    const size_t values = a + (G / 32) * 32 * 3 * 16 + 4 * G * (g->v_row_words + 1) + 8 * nr * cap + 4 +
                          4 * (acc > 16 * d ? acc : 16 * d) + 32 + red;
    return logits > values ? logits : values;
}

/* Whether split attention's passes, where split_fits (2-, 4- or 8-bit codes), run on cooperative matrices:
 * asked for (PKV_ATTN_COOPMAT=1: a device with them and subgroups of 32; =emu: emulated, any device with
 * subgroup arithmetic), a compressed mode, head_dim 64 or 128, groups of 128 tokens, at most 8 rows, and
 * the shared memory fits. */
static int split_cm_fits(const pkv_vk *vk, const pkv_geom *g, pkv_attn_shape sh, uint32_t nr)
{
    const int device_ok = sh.coopmat == 2 ? vk->subgroup_arith : sh.coopmat == 1 && vk->coopmat && vk->subgroup_arith && vk->subgroup_size == 32;
    return device_ok && g->mode != PKV_MODE_FP16 && (g->d == 64 || g->d == 128) && g->G == 128 && nr <= 8 &&
           split_cm_shared_bytes(g, sh, nr) <= vk->props.limits.maxComputeSharedMemorySize;
}

typedef pkv_vk_attn_cfg attn_cfg; /* vk_internal.h */

/* How many chunks an op has for the device, its (chunks x KV heads) per compute unit: ATTN_FEW under 8,
 * too few for teams, whose workgroups would leave compute units idle (1 x 4K PATTERN 3-bit: 0.047 ms in
 * one team, 0.058 in two; session 11, run E); ATTN_MANY from 32 on, enough for split attention, whose
 * second dispatch costs more than it wins below that (H200 session 14: 1 x 32K PATTERN 2-bit 0.121 ms
 * split, 0.108 one-pass; 8 x 4K 0.117 / 0.107; 8 x 32K 0.53 / 0.63). A device that reports no compute
 * unit count (lavapipe) has many. */
enum { ATTN_FEW, ATTN_SOME, ATTN_MANY };
static int attn_chunk_class(const pkv_vk *vk, const pkv_geom *g, const pkv_attn_op *op)
{
    const uint64_t pairs = pkv_attn_op_chunk_pairs(op, g->G, g->H);
    return pairs < 8ull * vk->compute_units ? ATTN_FEW : pairs < 32ull * vk->compute_units ? ATTN_SOME : ATTN_MANY;
}

/* size: attn_chunk_class's (few: one item per workgroup; many: split attention where it serves, or
 * where PKV_ATTN_SPLIT=1 asks for it whatever the size) */
static void attn_config(const pkv_vk *vk, const pkv_geom *g, const pkv_attn_op *op, const pkv_attn_env *env, int size,
                        attn_cfg *c)
{
    const int few = size == ATTN_FEW;
    const uint32_t H = g->H, d = g->d, G = g->G;
    const uint32_t cap = g->mode == PKV_MODE_PATTERN ? g->capacity : 1;
    /* the most rows per workgroup that fit in shared memory, with the V codes staged if possible; when
     * one row does not fit even unstaged (head_dim 256, a full bank, no subgroup arithmetic), fewer
     * chunks per step (a smaller workgroup): found by the Vulkan validation layer in CI */
    const size_t limit = vk->props.limits.maxComputeSharedMemorySize;
    pkv_attn_shape shape = pkv_attn_shape_for(g, env, PKV_BACKEND_VULKAN);
    if (few && !env->teams) shape.teams = 1;
    /* the cooperative-matrix step, where asked for and it fits: one chunk per step, V codes not
     * staged, 4 channels per invocation, every row of the group */
    pkv_attn_shape cm = shape;
    cm.bps = 1, cm.vch = 4, cm.stage_k = 0;
    const uint32_t cm_nr = pkv_attn_rows_per_group(op, H, 8, env);
    if (cm.hist_fixed && !decode_cm_fits(vk, g, cm, cm_nr)) cm.hist_fixed = 0; /* the float histogram is smaller */
    pkv_attn_shape sp = shape; /* split attention: 8 V channels per invocation unless asked otherwise */
    if (!env->vch) sp.vch = 8;
    const int use_split = (size == ATTN_MANY || env->split == 2) && split_fits(vk, g, sp, cm_nr);
    const int split_cm = use_split && split_cm_fits(vk, g, sp, cm_nr);
    if (split_cm) sp.tpt = 1; /* its logits pass: one token per invocation */
    if (use_split) shape = sp;
    const int use_cm = !use_split && decode_cm_fits(vk, g, cm, cm_nr);
    const int use_warp = !use_split && !use_cm && warp_fits(vk, g, shape, cm_nr);
    uint32_t nr = cm_nr, stage_v = 0;
    if (use_cm) shape = cm;
    /* teams: where their workgroup fits the device with every row of the group, V codes unstaged */
    if (use_split || use_cm || use_warp || shape.teams * shape.bps * G > vk->props.limits.maxComputeWorkGroupSize[0] ||
        shape.teams * shape.bps * G > vk->props.limits.maxComputeWorkGroupInvocations ||
        decode_shared_bytes(g, shape, cm_nr, 0, vk->subgroup_arith) > limit)
        shape.teams = 1;
    while (!use_split && !use_cm && !use_warp) {
        const int sub = vk->subgroup_arith;
        nr = pkv_attn_rows_per_group(op, H, 8, env), stage_v = shape.teams == 1;
        while (nr > 1 && decode_shared_bytes(g, shape, nr, stage_v, sub) > limit) nr /= 2;
        if (decode_shared_bytes(g, shape, nr, stage_v, sub) > limit) {
            stage_v = 0;
            nr = pkv_attn_rows_per_group(op, H, 8, env);
            while (nr > 1 && decode_shared_bytes(g, shape, nr, stage_v, sub) > limit) nr /= 2;
        }
        if (decode_shared_bytes(g, shape, nr, stage_v, sub) <= limit) break;
        if (shape.stage_k) { /* staged K rows (a speed choice) go first */
            shape.stage_k = 0;
            continue;
        }
        if (shape.bps == 1) break;
        shape.bps /= 2;
    }
    memset(c, 0, sizeof *c);
    if (use_split) shape.bps = 1, shape.teams = 1, shape.stage_k = 0;
    c->nr = nr, c->stage_v = stage_v, c->split = use_split;
    c->emu_refused = use_split && sp.coopmat == 2 && !split_cm;
    c->shape = shape;
    const uint32_t team = use_warp ? WARP_WG : c->shape.bps * G;
    c->wg = team * shape.teams;
    c->cps_multiple = use_warp ? 1 : c->shape.bps;
    /* teams: one workgroup of 512 per compute unit (128 registers), so its items */
    c->groups_per_cu = use_split  ? SPLIT_GROUPS_PER_CU
                       : use_warp ? WARP_GROUPS_PER_CU
                       : shape.teams > 1 ? shape.teams : pkv_attn_groups_per_cu(g->mode);
    /* the merge keeps two floats per item and row: in attn_decode.comp's acc (a team's invocations x V channels) */
    c->max_splits = (use_split ? (uint32_t)split_acc_floats(g, shape.vch, nr) : use_warp ? WARP_MERGE_CAP : team * shape.vch) / (2 * nr);
    const uint32_t base[8] = {0, d, G, g->k_bits, g->v_bits, g->mode, nr, cap};
    for (int i = 0; i < 4; i++) memcpy(c->spec[i], base, sizeof base);
    c->kernel[0] = PKV_K_ATTN_QC, c->spec[0][0] = WG_SMALL;
    const int emu = split_cm && shape.coopmat == 2;
    c->kernel[1] = split_cm   ? (emu ? PKV_K_ATTN_VALUES_CME : PKV_K_ATTN_VALUES_CM)
                   : use_split ? (vk->subgroup_arith ? PKV_K_ATTN_VALUES_SG : PKV_K_ATTN_VALUES)
                   : use_cm   ? PKV_K_ATTN_DECODE_CM
                   : use_warp ? (vk->subgroup_arith ? PKV_K_ATTN_WARP_SG : PKV_K_ATTN_WARP)
                   : vk->subgroup_arith ? PKV_K_ATTN_DECODE_SG : PKV_K_ATTN_DECODE;
    c->spec[1][0] = c->wg, c->spec[1][8] = stage_v, c->spec[1][9] = c->shape.vch, c->spec[1][10] = c->shape.stage_k;
    c->spec[1][11] = c->shape.prefetch, c->spec[1][12] = c->shape.hist_fixed, c->spec[1][13] = c->shape.vb;
    c->spec[1][14] = c->shape.teams;
    c->kernel[2] = PKV_K_ATTN_MERGE, c->spec[2][0] = WG_BLOCK;
    c->kernel[3] = -1;
    if (use_split) {
        c->kernel[3] = split_cm ? (emu ? PKV_K_ATTN_LOGITS_CME : PKV_K_ATTN_LOGITS_CM)
                       : vk->subgroup_arith ? PKV_K_ATTN_LOGITS_SG : PKV_K_ATTN_LOGITS;
        memcpy(c->spec[1], c->spec[3], sizeof c->spec[1]);
        c->spec[1][0] = G, c->spec[1][9] = shape.vch, c->spec[1][11] = shape.prefetch; /* attn_values keeps its own histogram (no HIST_FIXED) */
        c->spec[3][0] = G / shape.tpt, c->spec[3][14] = shape.lpc, c->spec[3][15] = shape.tpt, c->spec[3][16] = shape.kunroll;
    }
}

static void attn_specs(pkv_backend *be, const pkv_geom *g, uint32_t n_q_heads, uint32_t max_q_len, int *kernels,
                       uint32_t (*specs)[PKV_VK_SPEC_MAX], uint32_t *n)
{
    pkv_vk *vk = pkv_vk_of(be);
    uint32_t seen_nr = 0;
    const uint32_t flags = pkv_attn_flags(&be->attn_env);
    for (uint32_t ql = 1; ql <= max_q_len && ql <= 64; ql++) { /* nr <= 8 from q_len 8 on */
        pkv_attn_op op = {.n_seqs = 1, .q_len = ql, .n_q_heads = n_q_heads};
        attn_cfg c[3];
        for (int size = ATTN_FEW; size <= ATTN_MANY; size++) attn_config(vk, g, &op, &be->attn_env, size, &c[size]);
        if (seen_nr & c[ATTN_SOME].nr) continue; /* nr is a power of two */
        seen_nr |= c[ATTN_SOME].nr;
        /* every size's q.C, decode, merge and logits pipelines, each once */
        for (int size = ATTN_FEW; size <= ATTN_MANY; size++)
            for (int i = 0; i < 4; i++) {
                if (c[size].kernel[i] < 0 || (i == 2 && !(flags & PKV_ATTN_SEPARATE_MERGE))) continue;
                if (i == 0 && (g->mode != PKV_MODE_PATTERN || (flags & PKV_ATTN_SKIP_QC))) continue;
                int known = 0;
                for (uint32_t k = 0; k < *n && !known; k++)
                    known = kernels[k] == c[size].kernel[i] && !memcmp(specs[k], c[size].spec[i], sizeof specs[k]);
                if (known) continue;
                kernels[*n] = c[size].kernel[i];
                memcpy(specs[(*n)++], c[size].spec[i], sizeof specs[0]);
            }
    }
}

pkv_status pkv_vk_prewarm(pkv_backend *be, const pkv_geom *g, uint32_t n_q_heads, uint32_t max_q_len)
{
    pkv_vk *vk = pkv_vk_of(be);
    int kernels[ATTN_SPECS_MAX + 1];
    uint32_t specs[ATTN_SPECS_MAX + 1][PKV_VK_SPEC_MAX];
    uint32_t n = 0;
    attn_specs(be, g, n_q_heads, max_q_len, kernels, specs, &n);
    kernels[n] = PKV_K_STAGE_INPUT; /* engine integration's staging */
    memset(specs[n], 0, sizeof specs[n]);
    specs[n++][0] = 256;
    pthread_mutex_lock(&vk->lock);
    pkv_status s = pkv_vk_pipelines_create(vk, n, kernels, specs);
    pthread_mutex_unlock(&vk->lock);
    return s;
}

/* Whether a recorded op can leave out its upload of the table words (descriptors, items, counters:
 * `words` words at scratch word seq_off, from plan number `made` of the attention memo): a recorded
 * op of an earlier layer left the same plan's there in the same command buffer (vk->attn_tab).
 * layer: the recorded call's (UINT32_MAX: none, never left out). A later layer than the last op's
 * is needed (a new recording of a reused command buffer starts at a lower one, and must upload: the
 * old recording may never have run), and no other write into scratch since (pkv_vk_scratch_written).
 * Notes this op as the last either way (valid only for a recorded call). */
static int attn_tab_kept(pkv_vk *vk, uint32_t layer, uint32_t seq_off, uint32_t words, uint64_t made)
{
    struct pkv_vk_attn_tab *t = &vk->attn_tab;
    const VkBuffer buf = vk->scratch->page->buf;
    const VkDeviceSize off = vk->scratch->off;
    const int rec = vk->external && layer != UINT32_MAX;
    const int kept = rec && t->valid && t->cb == vk->cb && layer > t->layer && t->buf == buf && t->off == off &&
                     t->seq_off == seq_off && t->words == words && t->made == made;
    *t = (struct pkv_vk_attn_tab){rec, vk->cb, buf, off, seq_off, words, layer, made};
    vk->skipped_tables += kept;
    return kept;
}

pkv_status pkv_vk_attention(pkv_backend *be, const pkv_store *st, const pkv_attn_op *op)
{
    pkv_vk *vk = pkv_vk_of(be);
    const pkv_geom *g = st->g;
    const uint32_t H = g->H, d = g->d;
    const int pattern = g->mode == PKV_MODE_PATTERN;
    const uint32_t cap = pattern ? g->capacity : 1;
    const uint32_t rows_total = op->n_seqs * op->q_len * op->n_q_heads;
    attn_cfg cfg;
    pthread_mutex_lock(&vk->lock);
    pkv_vk_attn_memo *m = &vk->attn_memo;
    const int size = attn_chunk_class(vk, g, op);
    if (!m->valid || m->q_len != op->q_len || m->n_q_heads != op->n_q_heads || m->size != size ||
        memcmp(&m->g, g, sizeof *g) != 0 || memcmp(&m->env, &be->attn_env, sizeof m->env) != 0) {
        attn_config(vk, g, op, &be->attn_env, size, &m->cfg);
        memset(m->pipe, 0, sizeof m->pipe);
        memcpy(&m->g, g, sizeof *g), memcpy(&m->env, &be->attn_env, sizeof m->env);
        m->q_len = op->q_len, m->n_q_heads = op->n_q_heads, m->size = size, m->valid = 1;
    }
    cfg = m->cfg;
    const uint32_t nr = cfg.nr;
    const pkv_attn_plan *plan;
    pkv_status s = pkv_attn_plan_memo_get(&m->plan, op, g, nr, vk->compute_units * cfg.groups_per_cu, cfg.max_splits,
                                          cfg.cps_multiple, cfg.shape.teams, &be->attn_env, &plan);
    if (s == PKV_OK && cfg.emu_refused) /* a test's switch: it must not pass on the portable kernels unnoticed */
        s = pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "vulkan attention: PKV_ATTN_COOPMAT=emu, but the emulated cooperative-matrix "
                                                "kernels do not serve this shape (split_cm_fits)");
    if (s == PKV_OK && (plan->tiles > 65535 || H > 65535 || (cfg.split && (uint64_t)H * ceil_div(plan->cps, cfg.shape.lpc) > 65535)))
        s = pkv_fail(NULL, PKV_ERR_UNSUPPORTED, "vulkan attention: %u query rows per kv head exceed one dispatch",
                     op->q_len * (op->n_q_heads / H));
    if (s != PKV_OK) {
        pthread_mutex_unlock(&vk->lock);
        return s;
    }
    attn_push a = {.H = H, .n_q_heads = op->n_q_heads, .q_len = op->q_len, .gqa = op->n_q_heads / H,
                   .tiles = plan->tiles, .cps = plan->cps, .chunk_words = g->chunk_bytes / 4,
                   .window_words = g->window_bytes / 4, .R = g->R, .scale = op->scale * 1.44269504088896341f,
                   .flags = pkv_attn_flags(&be->attn_env)};
    block_offsets(g, a.block);
    const size_t nrv = (nr + 3) / 4, groups = (size_t)op->n_seqs * H * plan->tiles;
    scratch_plan sp = {0};
    a.q_off = take(&sp, (size_t)rows_total * d);
    a.seq_off = take(&sp, (size_t)op->n_seqs * PKV_ATTN_SEQ_WORDS);
    a.item_off = take(&sp, (size_t)plan->n_items * 2);
    a.cnt_off = take(&sp, groups); /* right after the items: uploaded with them */
    a.table_off = take(&sp, op->table_len + 1); /* its chunks and windows uploaded with them too */
    a.qc_off = take(&sp, pattern ? groups * cap * nrv * 4 : 1);
    a.part_off = take(&sp, (size_t)plan->n_slots * H * plan->tiles * nr * (d + 4) + 1);
    a.lg_off = cfg.split ? take(&sp, (size_t)plan->n_items * plan->cps * plan->tiles * H * ((g->G + 1) * nrv + 1) * 4) : 0;
    a.out_off = take(&sp, (size_t)rows_total * d);

    /* a recorded call's q (vk_stage.c): copied raw into the q section (no larger than its fp32 words);
     * the kernels that read q convert and check it there (attn_common.glsl's q_value), so no
     * conversion dispatch and no barrier before it */
    const pkv_vk_stage_in *sq = vk->stage_pending;
    if (sq && !op->q && op->q_buf == vk->staged && op->q_off == 0 && sq->to_f32 && sq->n_src == 1 &&
        sq->n_values == (size_t)rows_total * d && (sq->dtype == PKV_F16 || sq->dtype == PKV_F32)) {
        vk->stage_pending = NULL;
        a.flags |= ATTN_Q_RAW | (sq->dtype == PKV_F16 ? ATTN_Q_F16 : 0u);
        a.q_status = sq->status_word, a.q_layer = sq->layer;
        s = PKV_OK;
    } else {
        sq = NULL;
        s = pkv_vk_stage_settle(vk);
    }
    if (s == PKV_OK) s = pkv_vk_scratch_reserve(vk, (size_t)sp.words * 4);
    if (s == PKV_OK) s = pkv_vk_tables_reserve(vk, H, op);
    pkv_buf *bufs[4] = {vk->scratch, st->blocks, st->chunks, st->windows};
    /* the op's pipelines: known from an earlier op of the same configuration (the memo), looked up,
     * or on first use created together (in parallel) */
    VkPipeline p[4] = {VK_NULL_HANDLE, VK_NULL_HANDLE, VK_NULL_HANDLE, VK_NULL_HANDLE}, got[4], *known = vk->attn_memo.pipe;
    int kernels[4];
    uint32_t specs[4][PKV_VK_SPEC_MAX], which[4], n_pipes = 0;
    for (uint32_t i = 0; i < 4; i++) {
        if (i == 0 && !(pattern && !(a.flags & PKV_ATTN_SKIP_QC))) continue;
        if (i == 2 && !((a.flags & PKV_ATTN_SEPARATE_MERGE) && plan->n_slots)) continue;
        if (i == 3 && !cfg.split) continue;
        if ((p[i] = known[i]) != VK_NULL_HANDLE) continue;
        kernels[n_pipes] = cfg.kernel[i];
        memcpy(specs[n_pipes], cfg.spec[i], sizeof specs[0]);
        which[n_pipes++] = i;
    }
    if (s == PKV_OK && n_pipes) s = pkv_vk_pipelines_get(vk, n_pipes, kernels, (const uint32_t(*)[PKV_VK_SPEC_MAX])specs, got);
    for (uint32_t i = 0; i < n_pipes && s == PKV_OK; i++) p[which[i]] = known[which[i]] = got[i];
    const VkPipeline p_qc = p[0], p_decode = p[1], p_merge = p[2], p_logits = p[3];
    if (s != PKV_OK) { /* nothing recorded yet: deferred writes stay queued */
        pthread_mutex_unlock(&vk->lock);
        return s;
    }
    if (sq) { /* until the barrier after the uploads: scratch and the application's q only */
        pkv_vk_op_start_overlap(vk);
        pkv_vk_stage_copy_to(vk, sq, vk->scratch, a.q_off);
    } else {
        pkv_vk_op_start(vk);
        if (op->q) s = pkv_vk_upload(vk, vk->scratch, (size_t)a.q_off * 4, op->q, (size_t)rows_total * d * 4);
        else s = copy_in_device(vk, op->q_buf, op->q_off, vk->scratch, (size_t)a.q_off * 4, (size_t)rows_total * d * 4);
    }
    /* the sequence descriptors, the items and the merge counters, which start at zero (the last
     * workgroup of each resets its own): consecutive sections, one upload, which a recorded op leaves
     * out when the last recorded attention left the same plan's there (attn_tab_kept); then each sequence's
     * chunks and windows and its block slots, together, from the device's copy (vk_tables.c): the
     * descriptors' table offsets name them (a sequence's fixed part, then its blocks) */
    const size_t tab_words = (size_t)a.table_off - a.seq_off;
    const int kept = s == PKV_OK && attn_tab_kept(vk, sq ? sq->layer : UINT32_MAX, a.seq_off, (uint32_t)tab_words, m->plan.made);
    uint32_t *tab = s != PKV_OK || kept ? NULL : pkv_vk_host_table(vk, tab_words);
    if (s == PKV_OK && !kept && !tab) s = pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "vulkan attention: out of host memory");
    if (tab) {
        memset(tab + (size_t)op->n_seqs * PKV_ATTN_SEQ_WORDS, 0, (tab_words - (size_t)op->n_seqs * PKV_ATTN_SEQ_WORDS) * 4);
        memcpy(tab, plan->seq_desc, (size_t)op->n_seqs * PKV_ATTN_SEQ_WORDS * 4);
        memcpy(tab + (a.item_off - a.seq_off), plan->items, (size_t)plan->n_items * 8);
    }
    if (s == PKV_OK) s = pkv_vk_tables_record(vk, H, op, tab, vk->scratch, a.table_off); /* tab: its offsets */
    if (s == PKV_OK && tab) s = pkv_vk_upload(vk, vk->scratch, (size_t)a.seq_off * 4, tab, tab_words * 4);
    if (s == PKV_OK) {
        pkv_vk_barrier(vk);
        op_timestamp(vk, 0);
        uint32_t max_bank = 1; /* one invocation per pattern */
        for (uint32_t i = 0; i < op->n_seqs; i++) max_bank = op->seqs[i].bank_count > max_bank ? op->seqs[i].bank_count : max_bank;
        if (p_qc) s = pkv_vk_dispatch(vk, p_qc, bufs, &a, sizeof a, ceil_div(max_bank, WG_SMALL), plan->tiles, op->n_seqs * H);
    }
    const uint32_t lpc = cfg.shape.lpc, z_logits = H * ceil_div(plan->cps, lpc);
    if (s == PKV_OK && p_logits && !(a.flags & PKV_ATTN_SKIP_LOGITS)) { /* split attention's first pass: a workgroup per (item, tile, lpc chunks x kv head) */
        pkv_vk_barrier(vk);
        s = pkv_vk_dispatch(vk, p_logits, bufs, &a, sizeof a, plan->n_items, plan->tiles, z_logits);
    }
    if (s == PKV_OK && !(p_logits && (a.flags & PKV_ATTN_SKIP_VALUES))) {
        pkv_vk_barrier(vk);
        s = pkv_vk_dispatch(vk, p_decode, bufs, &a, sizeof a, plan->n_items / cfg.shape.teams, plan->tiles, H);
    }
    if (s == PKV_OK && p_merge) {
        pkv_vk_barrier(vk);
        s = pkv_vk_dispatch(vk, p_merge, bufs, &a, sizeof a, plan->tiles, op->n_seqs * H, 1);
    }
    if (s == PKV_OK) {
        op_timestamp(vk, 1);
        pkv_vk_barrier(vk);
        if (op->out) s = pkv_vk_download(vk, vk->scratch, (size_t)a.out_off * 4, op->out, (size_t)rows_total * d * 4);
        else s = copy_in_device(vk, vk->scratch, (size_t)a.out_off * 4, op->out_buf, op->out_off, (size_t)rows_total * d * 4);
        /* recorded: no barrier after the copy of out; the next append's copies overlap it */
        if (s == PKV_OK && vk->external && !op->out) vk->open_work = PKV_VK_OPEN_COPY_OUT;
    }
    s = op_end(vk, s);
    if (s == PKV_OK) vk->last_attention_ms = vk->last_op_ms;
    else pkv_vk_tables_forget(op), pkv_vk_scratch_written(vk);
    pthread_mutex_unlock(&vk->lock);
    return s;
}
