/* pkv_append and pkv_append_layers: validation, then prefill mining or window fill and flush
 * (SPEC.md section 2), for one layer or several layers of one sequence at once.
 *
 * Everything that can fail for a reason of the caller's (bad input, budget, device memory) is
 * checked before any state changes, so such a failed append leaves the sequence as it was. The
 * device work runs in rounds over all the call's layers: round 0 mines every layer that starts
 * with a prompt (one mine op for all of them), then every round writes each layer's next window
 * rows (one window op) and flushes the layers whose windows are full (one flush op). A decode step
 * (one token per layer) is one round; a prompt is one round; only an append longer than the window
 * into layers that already hold tokens takes several.
 *
 * All or nothing: a call that fails at any point (a host or device allocation, a device error) leaves
 * every layer of the call as it was before the call: the blocks and bank chunks it added and the
 * window slots it took go back, the window length and bank size are restored (rows and patterns
 * written past them are ignored), and where a later round would overwrite window rows the call
 * started with (a long append into a partly filled window) those rows are kept on the host first and
 * written back. A token is counted only once every step of the call succeeded. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "append_job.h"
#include "f16.h"
#include "internal.h"
#include "parallel.h"
#include "profile.h"

/* The input check (fp16: no NaN or Inf) or conversion (fp32 -> fp16: finite and within fp16 range)
 * of a call's 2 x nl arrays of `count` values, in pieces of at most PIECE values; a large call's pieces
 * run on several threads (a 32K-token prompt of 32 layers is 2 G values: one thread reading it takes
 * longer than the device's whole prefill). The failure reported is the serial one: the first array in
 * order (layer, then K before V) with a bad value, and its first bad index. */
#define PIECE ((size_t)1 << 20)

typedef struct check_job {
    const void *const *k, *const *v; /* per array of the call: the caller's input */
    uint16_t *conv;                  /* fp32 input: the fp16 output, [nl][K | V][count]; NULL for fp16 */
    size_t count, per_array;         /* values per array, pieces per array */
    size_t *bad;                     /* [2 nl]: the first bad index found per array, count if none */
    pthread_mutex_t lock;
} check_job;

static void check_piece(void *arg, uint32_t p)
{
    check_job *j = arg;
    const uint32_t a = (uint32_t)(p / j->per_array); /* array: layer a / 2, K or V */
    const size_t lo = (p % j->per_array) * PIECE, n = j->count - lo < PIECE ? j->count - lo : PIECE;
    const void *src = (a & 1 ? j->v : j->k)[a / 2];
    size_t i;
    if (j->conv) i = pkv_f32_to_f16_finite((const float *)src + lo, j->conv + (size_t)a * j->count + lo, n);
    else i = pkv_f16_find_nonfinite((const uint16_t *)src + lo, n);
    if (i < n) {
        pthread_mutex_lock(&j->lock);
        if (lo + i < j->bad[a]) j->bad[a] = lo + i;
        pthread_mutex_unlock(&j->lock);
    }
}

static pkv_status check_input(pkv_cache *c, uint32_t first, uint32_t nl, size_t count, const void *const *k,
                              const void *const *v, uint16_t *conv)
{
    size_t bad_local[128], *bad = 2 * nl <= 128 ? bad_local : malloc(2 * nl * sizeof *bad);
    if (!bad) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_append: out of host memory");
    check_job j = {.k = k, .v = v, .conv = conv, .count = count, .per_array = (count + PIECE - 1) / PIECE, .bad = bad};
    for (uint32_t a = 0; a < 2 * nl; a++) bad[a] = count;
    pthread_mutex_init(&j.lock, NULL);
    pkv_parallel_for((uint32_t)(2 * nl * j.per_array), 2 * nl * count * (conv ? 6 : 2), check_piece, &j);
    pthread_mutex_destroy(&j.lock);
    pkv_status st = PKV_OK;
    for (uint32_t a = 0; a < 2 * nl && st == PKV_OK; a++) {
        if (bad[a] == count) continue;
        const char *what = a & 1 ? "v" : "k";
        const uint32_t layer = first + a / 2;
        if (conv) {
            const float x = ((const float *)(a & 1 ? v : k)[a / 2])[bad[a]];
            st = pkv_fail(c->ctx, PKV_ERR_NONFINITE, "pkv_append: %s[%zu] = %g of layer %u is not finite or beyond fp16 range",
                          what, bad[a], (double)x, layer);
        } else {
            st = pkv_fail(c->ctx, PKV_ERR_NONFINITE, "pkv_append: %s[%zu] of layer %u is NaN or Inf", what, bad[a], layer);
        }
    }
    if (bad != bad_local) free(bad);
    return st;
}

static uint32_t chunk_slot(const pkv_layer_state *L, uint32_t h, uint32_t ci)
{
    return L->chunks ? L->chunks[h * PKV_MAX_CHUNKS + ci] : PKV_NO_SLOT;
}

static plan make_plan(const pkv_cache *c, uint32_t layer, const pkv_layer_state *L, uint32_t n)
{
    const pkv_geom *g = &c->g;
    plan p = {0};
    uint32_t total = L->n_blocks * g->G + L->n_window, pos = 0, nw = L->n_window, bc = L->bank_count;
    if (!L->window_slot) p.windows = g->H;
    if (g->mode == PKV_MODE_PATTERN && total == 0 && n >= g->M) {
        p.mine = 1;
        p.n_quant = n / g->G * g->G;
        p.new_groups += p.n_quant / g->G;
        p.chunks += (g->M + PKV_CHUNK_PATTERNS - 1) / PKV_CHUNK_PATTERNS * g->H;
        pos = p.n_quant;
        bc = g->M;
    }
    int touched_shared_chunk = 0;
    while (pos < n || nw == g->R) {
        uint32_t take = g->R - nw < n - pos ? g->R - nw : n - pos;
        nw += take;
        pos += take;
        if (nw < g->R) break;
        nw = 0;
        p.new_groups += g->R / g->G;
        if (g->mode == PKV_MODE_PATTERN && bc < g->capacity) {
            uint32_t ci = bc / PKV_CHUNK_PATTERNS;
            for (uint32_t h = 0; h < g->H; h++) {
                uint32_t s = p.mine ? PKV_NO_SLOT : chunk_slot(L, h, ci);
                if (bc % PKV_CHUNK_PATTERNS == 0) p.chunks++; /* a chunk exists iff it holds a pattern */
                else if (s != PKV_NO_SLOT && !touched_shared_chunk && pkv_shard_of(c, layer)->chunks.refcount[s] > 1) p.chunks++;
            }
            touched_shared_chunk = 1;
            bc++;
        }
    }
    p.blocks = p.new_groups * g->H;
    return p;
}

/* Makes the chunk that receives pattern bank_count private to this sequence (copy-on-write). */
static pkv_status own_chunk(pkv_cache *c, pkv_shard *sh, pkv_layer_state *L, uint32_t h, uint32_t ci)
{
    uint32_t *slot = &L->chunks[h * PKV_MAX_CHUNKS + ci];
    if (*slot == PKV_NO_SLOT) {
        *slot = pkv_arena_take(&sh->chunks);
        return PKV_OK;
    }
    if (sh->chunks.refcount[*slot] <= 1) return PKV_OK;
    uint32_t fresh = pkv_arena_take(&sh->chunks);
    pkv_backend *be = c->ctx->be;
    pkv_status st = be->iface->buf_copy(be, sh->chunks.buf, (size_t)fresh * c->g.chunk_bytes, sh->chunks.buf,
                                        (size_t)*slot * c->g.chunk_bytes, c->g.chunk_bytes);
    if (st != PKV_OK) {
        pkv_arena_release(&sh->chunks, fresh);
        return st;
    }
    pkv_arena_release(&sh->chunks, *slot);
    *slot = fresh;
    return PKV_OK;
}

/* Host-side arrays the append will need, allocated up front so that nothing fails halfway. */
static pkv_status reserve_host(pkv_cache *c, pkv_layer_state *L, const plan *p)
{
    const uint32_t H = c->g.H;
    if (L->n_blocks + p->new_groups > L->cap_blocks) {
        uint32_t cap = L->n_blocks + p->new_groups;
        if (cap < 2 * L->cap_blocks) cap = 2 * L->cap_blocks;
        uint32_t *nb = realloc(L->blocks, (size_t)cap * H * sizeof *nb);
        if (!nb) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        L->blocks = nb;
        L->cap_blocks = cap;
    }
    if (c->g.mode == PKV_MODE_PATTERN && !L->chunks) {
        L->chunks = malloc((size_t)H * PKV_MAX_CHUNKS * sizeof *L->chunks);
        if (!L->chunks) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        for (uint32_t i = 0; i < H * PKV_MAX_CHUNKS; i++) L->chunks[i] = PKV_NO_SLOT;
    }
    if (!L->window_slot) {
        L->window_slot = malloc(H * sizeof *L->window_slot);
        if (!L->window_slot) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        for (uint32_t h = 0; h < H; h++) L->window_slot[h] = PKV_NO_SLOT;
    }
    return PKV_OK;
}

static uint32_t *flush_slots(const pkv_cache *c, const layer_job *jb, uint32_t f)
{
    const uint32_t H = c->g.H;
    return jb->slots + (size_t)jb->p.n_quant / c->g.G * H + (size_t)f * H * (c->g.R / c->g.G);
}

/* Takes the job's slots (see layer_job); copy-on-write copies of shared chunks happen here. */
static pkv_status take_slots(pkv_cache *c, layer_job *jb)
{
    const pkv_geom *g = &c->g;
    const uint32_t H = g->H, groups = g->R / g->G, n = jb->n;
    pkv_layer_state *L = jb->L;
    pkv_shard *sh = pkv_shard_of(c, jb->layer);
    if (jb->late) L->n_window = 0; /* its rows are the first of the source now (restored by roll_back) */
    for (uint32_t h = 0; h < H; h++)
        if (L->window_slot[h] == PKV_NO_SLOT) L->window_slot[h] = pkv_arena_take(&sh->windows);
    uint32_t pos = 0, nw = L->n_window, bc = L->bank_count, f = 0;
    if (jb->p.mine) {
        for (uint32_t h = 0; h < H; h++)
            for (uint32_t ci = 0; ci * PKV_CHUNK_PATTERNS < g->M; ci++) L->chunks[h * PKV_MAX_CHUNKS + ci] = pkv_arena_take(&sh->chunks);
        const uint32_t mg = jb->p.n_quant / g->G;
        for (uint32_t gi = 0; gi < mg; gi++)
            for (uint32_t h = 0; h < H; h++) jb->slots[h * mg + gi] = pkv_arena_take(&sh->blocks);
        jb->mine_slots = 1;
        pos = jb->p.n_quant, bc = g->M;
    }
    while (pos < n || nw == g->R) {
        uint32_t take = g->R - nw < n - pos ? g->R - nw : n - pos;
        nw += take, pos += take;
        if (nw < g->R) break;
        if (g->mode == PKV_MODE_PATTERN && bc < g->capacity) {
            const uint32_t ci = bc / PKV_CHUNK_PATTERNS;
            for (uint32_t h = 0; h < H; h++) {
                uint32_t had = L->chunks[h * PKV_MAX_CHUNKS + ci];
                pkv_status st = own_chunk(c, sh, L, h, ci);
                if (st != PKV_OK) return st;
                if (had != PKV_NO_SLOT && L->chunks[h * PKV_MAX_CHUNKS + ci] != had) jb->cow[h] = had;
                if (had == PKV_NO_SLOT && f > 0) { /* only a later flush makes it hold a pattern */
                    jb->fresh[jb->n_fresh][0] = f, jb->fresh[jb->n_fresh][1] = h, jb->fresh[jb->n_fresh][2] = ci;
                    jb->n_fresh++;
                }
            }
            bc++;
        }
        uint32_t *fs = flush_slots(c, jb, f);
        for (uint32_t gi = 0; gi < groups; gi++)
            for (uint32_t h = 0; h < H; h++) fs[h * groups + gi] = pkv_arena_take(&sh->blocks);
        nw = 0, jb->n_flush = ++f;
    }
    return PKV_OK;
}

/* After a failure: the slots of flushes that did not run go back (a chunk taken for the failed
 * flush's own pattern stays, as a one-layer append leaves it). */
static void release_unused(pkv_cache *c, layer_job *jb)
{
    pkv_shard *sh = pkv_shard_of(c, jb->layer);
    const uint32_t H = c->g.H, groups = c->g.R / c->g.G;
    if (jb->mine_slots) { /* the mining did not run */
        for (uint32_t b = 0; b < H * (jb->p.n_quant / c->g.G); b++) pkv_arena_release(&sh->blocks, jb->slots[b]);
        for (uint32_t b = 0; b < H * PKV_MAX_CHUNKS; b++) {
            pkv_arena_release(&sh->chunks, jb->L->chunks[b]);
            jb->L->chunks[b] = PKV_NO_SLOT;
        }
        jb->mine_slots = 0;
    }
    for (uint32_t f = jb->done; f < jb->n_flush; f++) {
        uint32_t *fs = flush_slots(c, jb, f);
        for (uint32_t b = 0; b < H * groups; b++) pkv_arena_release(&sh->blocks, fs[b]);
    }
    for (uint32_t i = 0; i < jb->n_fresh; i++)
        if (jb->fresh[i][0] > jb->done) {
            uint32_t *slot = &jb->L->chunks[jb->fresh[i][1] * PKV_MAX_CHUNKS + jb->fresh[i][2]];
            pkv_arena_release(&sh->chunks, *slot);
            *slot = PKV_NO_SLOT;
        }
    jb->n_flush = jb->done, jb->n_fresh = 0;
}

/* After a failure: the layer as it was before the call (release_unused has run). */
static void roll_back(pkv_cache *c, layer_job *jb)
{
    pkv_shard *sh = pkv_shard_of(c, jb->layer);
    const uint32_t H = c->g.H;
    pkv_layer_state *L = jb->L;
    for (size_t b = (size_t)jb->start_blocks * H; b < (size_t)L->n_blocks * H; b++) pkv_arena_release(&sh->blocks, L->blocks[b]);
    L->n_blocks = jb->start_blocks;
    if (L->tab.synced > L->n_blocks) L->tab.synced = L->n_blocks; /* slots past it may be taken again */
    if (L->chunks) /* chunks past those of the starting bank; a copy-on-write copy of one holds the same patterns */
        for (uint32_t h = 0; h < H; h++)
            for (uint32_t ci = (jb->start_bank + PKV_CHUNK_PATTERNS - 1) / PKV_CHUNK_PATTERNS; ci < PKV_MAX_CHUNKS; ci++) {
                pkv_arena_release(&sh->chunks, L->chunks[h * PKV_MAX_CHUNKS + ci]);
                L->chunks[h * PKV_MAX_CHUNKS + ci] = PKV_NO_SLOT;
            }
    if (L->chunks && jb->cow)
        for (uint32_t h = 0; h < H; h++)
            if (jb->cow[h] != PKV_NO_SLOT) { /* the shared chunk back in place of its copy (still held by others) */
                uint32_t *slot = &L->chunks[h * PKV_MAX_CHUNKS + jb->start_bank / PKV_CHUNK_PATTERNS];
                pkv_arena_release(&sh->chunks, *slot);
                pkv_arena_retain(&sh->chunks, jb->cow[h]);
                *slot = jb->cow[h];
            }
    L->bank_count = jb->start_bank;
    L->n_window = jb->start_window;
    if (!jb->had_windows && L->window_slot)
        for (uint32_t h = 0; h < H; h++) {
            pkv_arena_release(&sh->windows, L->window_slot[h]);
            L->window_slot[h] = PKV_NO_SLOT;
        }
    if (jb->saved_window) {
        pkv_backend *be = c->ctx->be;
        for (uint32_t h = 0; h < H; h++)
            if (be->iface->buf_write(be, sh->windows.buf, (size_t)L->window_slot[h] * c->g.window_bytes,
                                     jb->saved_window + (size_t)h * c->g.window_bytes, c->g.window_bytes) != PKV_OK)
                pkv_log(c->ctx, PKV_LOG_ERROR, "pkv_append: restoring the window of layer %u failed", jb->layer);
    }
}

/* Keeps the window rows the call starts with on the host when a later round would overwrite them. */
static pkv_status save_window(pkv_cache *c, layer_job *jb, uint8_t **next)
{
    const pkv_shard *sh = pkv_shard_of(c, jb->layer);
    const pkv_geom *g = &c->g;
    if (!jb->had_windows || jb->start_window == 0 || (!jb->late && jb->n <= g->R - jb->start_window)) return PKV_OK;
    uint8_t *dst = *next;
    *next += (size_t)g->H * g->window_bytes;
    pkv_backend *be = c->ctx->be;
    for (uint32_t h = 0; h < g->H; h++) {
        pkv_status st = be->iface->buf_read(be, sh->windows.buf, (size_t)jb->L->window_slot[h] * g->window_bytes,
                                            dst + (size_t)h * g->window_bytes, g->window_bytes);
        if (st != PKV_OK && jb->late) { /* e.g. a recorded call (patternkv_vulkan.h) */
            char why[256];
            snprintf(why, sizeof why, "%s", pkv_last_error());
            return pkv_fail(c->ctx, st, "pkv_append: layer %u mines now, over its %u window tokens and the call's, which "
                            "reads the window back; this call cannot (%s)", jb->layer, jb->start_window, why);
        }
        if (st != PKV_OK) return st;
    }
    jb->saved_window = dst; /* only once read: roll_back writes it back */
    return PKV_OK;
}

/* Accumulates the device time of the call's ops (pkv_last_op_time). */
void pkv_add_op_time(pkv_cache *c, double *acc)
{
    pkv_backend *be = c->ctx->be;
    double t = be->iface->last_op_ms ? be->iface->last_op_ms(be) : -1.0;
    *acc = *acc < 0 || t < 0 ? -1.0 : *acc + t;
}

/* The jobs from j0 on whose layers share jobs[j0]'s shard: returns the end of the run. */
static uint32_t shard_run(const pkv_cache *c, const layer_job *jobs, uint32_t j0, uint32_t nj)
{
    uint32_t j1 = j0 + 1;
    while (j1 < nj && pkv_shard_of(c, jobs[j1].layer) == pkv_shard_of(c, jobs[j0].layer)) j1++;
    return j1;
}

/* The window rows of this round for jobs [j0, j1) of one shard: one window op, one run per (layer,
 * head, K|V). */
static pkv_status window_part(pkv_cache *c, layer_job *jobs, uint32_t j0, uint32_t j1, const token_src *src)
{
    const pkv_geom *g = &c->g;
    const uint32_t H = g->H, d = g->d, n = src->n;
    size_t rows = 0, runs = 0;
    for (uint32_t j = j0; j < j1; j++)
        if (jobs[j].take) rows += (size_t)jobs[j].take * H * 2, runs += (size_t)H * 2;
    if (!runs) return PKV_OK;
    /* host: runs, then the rows gathered contiguously; device: one run per row, read in place */
    const size_t n_runs = src->k ? runs : rows;
    const size_t run_bytes = (n_runs * 3 * sizeof(uint32_t) + 15) & ~(size_t)15;
    uint8_t *tmp = pkv_scratch_get(&c->rows_tmp, run_bytes + (src->k ? rows * d * 2 : 0));
    if (!tmp) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_append: out of host memory");
    uint32_t *run = (uint32_t *)tmp;
    uint16_t *gather = (uint16_t *)(tmp + run_bytes);
    size_t r = 0, row = 0;
    const uint32_t R = g->R;
    for (uint32_t j = j0; j < j1; j++) {
        const layer_job *jb = &jobs[j];
        /* in locals: the stores into run[] could alias the layer's state (a decode step of a batch
         * is this loop, 2 H rows per sequence) */
        const uint32_t take = jb->take, pos = jb->pos, idx = jb->idx, nw = jb->L->n_window;
        const uint32_t *ws = jb->L->window_slot;
        if (!take) continue;
        if (!src->k) { /* device rows read in place: one run per row */
            const uint32_t k0 = (uint32_t)(((size_t)idx * 2 * n + pos) * H), v0 = k0 + n * H;
            /* every head's K rows, then every head's V rows (a decode step's one token: source order):
             * row t of head h is run h * take + t of the K runs, the same of the V runs after them */
            uint32_t *rk = run + 3 * r, *rv = rk + 3 * (size_t)H * take;
            for (uint32_t h = 0; h < H; h++) {
                const uint32_t dst = ws[h] * 2 * R + nw; /* its K row; V's R rows on */
                for (uint32_t t = 0; t < take; t++, rk += 3, rv += 3) {
                    rk[0] = k0 + h + t * H, rk[1] = dst + t, rk[2] = 1;
                    rv[0] = v0 + h + t * H, rv[1] = dst + R + t, rv[2] = 1;
                }
            }
            r += 2 * (size_t)H * take;
            continue;
        }
        for (uint32_t h = 0; h < H; h++)
            for (uint32_t kv = 0; kv < 2; kv++) {
                const uint32_t dst = ws[h] * 2 * R + kv * R + nw;
                const uint16_t *x = (kv ? src->v : src->k)[idx];
                for (uint32_t t = 0; t < take; t++)
                    memcpy(gather + (row + t) * d, x + ((size_t)(pos + t) * H + h) * d, (size_t)d * 2);
                run[3 * r] = (uint32_t)row, run[3 * r + 1] = dst, run[3 * r + 2] = take;
                r++;
                row += take;
            }
    }
    pkv_window_op op = {.rows = src->k ? gather : NULL, .rows_buf = src->dev, .rows_off = src->dev_off,
                        .n_src_rows = src->k ? (uint32_t)rows : 2 * n * H * (src->n_src ? src->n_src : 1), .n_runs = (uint32_t)n_runs, .runs = run,
                        .n_rows = (uint32_t)rows};
    return c->ctx->be->iface->write_window(c->ctx->be, &pkv_shard_of(c, jobs[j0].layer)->store, &op);
}

/* The window rows of this round: one window op per shard. */
static pkv_status run_window(pkv_cache *c, layer_job *jobs, uint32_t nj, const token_src *src)
{
    for (uint32_t j0 = 0, j1; j0 < nj; j0 = j1) {
        j1 = shard_run(c, jobs, j0, nj);
        pkv_status st = window_part(c, jobs, j0, j1, src);
        if (st != PKV_OK) return st;
    }
    for (uint32_t j = 0; j < nj; j++) {
        jobs[j].L->n_window += jobs[j].take;
        jobs[j].pos += jobs[j].take;
    }
    return PKV_OK;
}

/* The flushes of this round for jobs [j0, j1) of one shard: one flush op. */
static pkv_status flush_part(pkv_cache *c, layer_job *jobs, uint32_t j0, uint32_t j1, pkv_flush_layer *f, uint32_t more,
                             double *op_ms)
{
    const pkv_geom *g = &c->g;
    const uint32_t H = g->H, groups = g->R / g->G;
    uint32_t nf = 0;
    for (uint32_t j = j0; j < j1; j++) {
        if (!jobs[j].flush) continue;
        const pkv_layer_state *L = jobs[j].L;
        uint32_t append = g->mode == PKV_MODE_PATTERN && L->bank_count < g->capacity;
        f[nf++] = (pkv_flush_layer){.window_slot = L->window_slot, .chunk_table = L->chunks, .bank_count = L->bank_count,
                                    .append_pattern = append, .block_slot = flush_slots(c, &jobs[j], jobs[j].done)};
    }
    if (!nf) return PKV_OK;
    pkv_flush_op op = {.n_layers = nf, .layers = f, .more = more};
    pkv_status st = c->ctx->be->iface->flush(c->ctx->be, &pkv_shard_of(c, jobs[j0].layer)->store, &op);
    if (st != PKV_OK) return st;
    pkv_add_op_time(c, op_ms);
    for (uint32_t j = j0, i = 0; j < j1; j++) {
        if (!jobs[j].flush) continue;
        pkv_layer_state *L = jobs[j].L;
        const uint32_t *fs = flush_slots(c, &jobs[j], jobs[j].done);
        for (uint32_t gi = 0; gi < groups; gi++)
            for (uint32_t h = 0; h < H; h++) L->blocks[(size_t)(L->n_blocks + gi) * H + h] = fs[h * groups + gi];
        L->n_blocks += groups;
        L->bank_count += f[i++].append_pattern;
        L->n_window = 0;
        jobs[j].done++;
    }
    return PKV_OK;
}

/* The flushes of this round: one flush op per shard (a failure leaves the earlier shards' done). */
static pkv_status run_flushes(pkv_cache *c, layer_job *jobs, uint32_t nj, uint32_t nf, double *op_ms)
{
    pkv_flush_layer fl[64], *f = nf <= 64 ? fl : malloc(nf * sizeof *f);
    if (!f) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_append: out of host memory");
    pkv_status st = PKV_OK;
    uint32_t last = 0; /* the first job of the last shard run that flushes: the ops before it say more follow */
    for (uint32_t j0 = 0, j1; j0 < nj; j0 = j1) {
        j1 = shard_run(c, jobs, j0, nj);
        for (uint32_t j = j0; j < j1; j++)
            if (jobs[j].flush) {
                last = j0;
                break;
            }
    }
    for (uint32_t j0 = 0, j1; j0 < nj && st == PKV_OK; j0 = j1) {
        j1 = shard_run(c, jobs, j0, nj);
        st = flush_part(c, jobs, j0, j1, f, j0 < last, op_ms);
    }
    if (f != fl) free(f);
    return st;
}

/* A call's jobs up to this size live in the cache's reused buffer (c->job_tmp). */
#define JOB_REUSE_BYTES ((size_t)64 << 10)

/* What one job of a call appends to: a layer of a sequence. The jobs of a call are in source order
 * (job j reads source j of the call's tokens). */
typedef struct append_target {
    pkv_layer_state *L;
    uint32_t layer;
} append_target;

/* Decode appends: one token into each job's window, which it does not fill (no flush, no mining, no
 * new slot, no budget change), up to this many jobs: append_decode instead of the general rounds. */
#define DECODE_JOBS 64u

static int decode_only(const pkv_cache *c, const append_target *tg, uint32_t nl, uint32_t n)
{
    if (n != 1 || nl > DECODE_JOBS || c->general_appends) return 0;
    for (uint32_t j = 0; j < nl; j++) {
        const pkv_layer_state *L = tg[j].L;
        /* a window to write into, room after the token (else the window flushes), and no mining now:
         * neither the first prompt's (an empty layer, n >= M) nor a late one (pkv_mines_late) */
        if (!L->window_slot || L->window_slot[0] == PKV_NO_SLOT || L->n_window + 1 >= c->g.R ||
            (L->n_blocks == 0 && L->n_window == 0) || pkv_mines_late(c, L, 1))
            return 0;
    }
    return 1;
}

/* The decode step's append (decode_only): the general path's first and only round without its plans,
 * job buffer, slots and pool check: the same window op (window_part), so the same rows in the same
 * slots. Nothing changes before the op succeeds. */
static pkv_status append_decode(pkv_cache *c, const append_target *tg, uint32_t nl, const token_src *src)
{
    layer_job jobs[DECODE_JOBS];
    for (uint32_t j = 0; j < nl; j++) jobs[j] = (layer_job){.layer = tg[j].layer, .idx = j, .L = tg[j].L, .n = 1, .take = 1};
    return run_window(c, jobs, nl, src);
}

/* Everything after the values were checked and made fp16: budget, slots, then the rounds, over nl jobs:
 * several layers of one sequence, or one layer of several sequences. */
static pkv_status append_run(pkv_cache *c, const append_target *tg, uint32_t nl, const token_src *src)
{
    const pkv_geom *g = &c->g;
    const uint32_t H = g->H, n = src->n;
    if (decode_only(c, tg, nl, n)) return append_decode(c, tg, nl, src);
    /* one allocation: the jobs, then each job's slots and fresh-chunk records (a decode step's, small,
     * in the cache's reused buffer: no allocation per call) */
    size_t words = 0;
    plan plans_local[64], *plans = nl <= 64 ? plans_local : malloc(nl * sizeof *plans);
    if (!plans) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_append: out of host memory");
    uint32_t n_late = 0;
    uint8_t late_local[64], *late = nl <= 64 ? late_local : malloc(nl);
    if (!late) {
        if (plans != plans_local) free(plans);
        return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_append: out of host memory");
    }
    for (uint32_t j = 0; j < nl; j++) {
        const pkv_layer_state *L = tg[j].L;
        late[j] = (uint8_t)pkv_mines_late(c, L, n);
        if (late[j]) { /* planned as the first append of the window's tokens and the call's */
            pkv_layer_state empty = *L;
            empty.n_window = 0;
            plans[j] = make_plan(c, tg[j].layer, &empty, L->n_window + n);
            n_late++;
        } else
            plans[j] = make_plan(c, tg[j].layer, L, n);
        const uint32_t flush_groups = plans[j].new_groups - plans[j].n_quant / g->G;
        words += plans[j].blocks + 1 + 3 * ((size_t)flush_groups * H + 1) + H;
    }
    size_t save_bytes = 0;
    for (uint32_t j = 0; j < nl; j++) {
        const pkv_layer_state *L = tg[j].L;
        if (L->window_slot && L->window_slot[0] != PKV_NO_SLOT && L->n_window &&
            (n > g->R - L->n_window || late[j]))
            save_bytes += (size_t)H * g->window_bytes;
    }
    const size_t job_bytes = nl * sizeof(layer_job) + words * sizeof(uint32_t) + save_bytes;
    const int reuse = job_bytes <= JOB_REUSE_BYTES;
    layer_job *jobs = reuse ? pkv_scratch_get(&c->job_tmp, job_bytes) : malloc(job_bytes);
    if (jobs) memset(jobs, 0, job_bytes);
    uint8_t *save_next = jobs ? (uint8_t *)jobs + nl * sizeof *jobs + words * sizeof(uint32_t) : NULL;
    pkv_status st = PKV_OK;
    if (!jobs) {
        if (plans != plans_local) free(plans);
        if (late != late_local) free(late);
        return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_append: out of host memory");
    }
    uint32_t *next = (uint32_t *)(jobs + nl);
    for (uint32_t j = 0; j < nl; j++) {
        layer_job *jb = &jobs[j];
        jb->layer = tg[j].layer, jb->idx = j, jb->L = tg[j].L;
        jb->p = plans[j];
        jb->late = late[j];
        jb->n = jb->late ? jb->L->n_window + n : n;
        jb->start_blocks = jb->L->n_blocks, jb->start_window = jb->L->n_window, jb->start_bank = jb->L->bank_count;
        jb->had_windows = jb->L->window_slot && jb->L->window_slot[0] != PKV_NO_SLOT;
        const uint32_t flush_groups = jb->p.new_groups - jb->p.n_quant / g->G; /* >= the flushes' fresh chunks / H */
        jb->slots = next;
        next += jb->p.blocks + 1;
        jb->fresh = (uint32_t(*)[3])next;
        next += 3 * ((size_t)flush_groups * H + 1);
        jb->cow = next;
        next += H;
        for (uint32_t h = 0; h < H; h++) jb->cow[h] = PKV_NO_SLOT;
    }
    if (plans != plans_local) free(plans);
    if (late != late_local) free(late);
    for (uint32_t j = 0; j < nl && st == PKV_OK; j++) st = save_window(c, &jobs[j], &save_next);
    token_src joined;
    void *joined_mem = NULL;
    if (st == PKV_OK && n_late) {
        st = pkv_join_late(c, jobs, nl, src, &joined, &joined_mem);
        src = &joined;
    }
    if (st == PKV_OK) {
        for (uint32_t j = 0; j < nl; j++) pkv_pool_want(c, jobs[j].layer, jobs[j].p.blocks, jobs[j].p.chunks, jobs[j].p.windows);
        st = pkv_pool_ensure(c);
    }
    for (uint32_t j = 0; j < nl && st == PKV_OK; j++) st = reserve_host(c, jobs[j].L, &jobs[j].p);
    uint32_t taken = 0;
    for (; taken < nl && st == PKV_OK; taken++) st = take_slots(c, &jobs[taken]);

    double op_ms = 0.0;
    int ran_op = 0;
    for (uint32_t round = 0; st == PKV_OK; round++) {
        uint32_t nf = 0, nw = 0;
        for (uint32_t j = 0; j < nl; j++) {
            layer_job *jb = &jobs[j];
            pkv_layer_state *L = jb->L;
            jb->take = 0, jb->flush = 0;
            if (round == 0 && jb->p.mine) continue; /* mined this round; the rest goes to the window next */
            if (jb->pos >= jb->n && L->n_window < g->R) continue;
            jb->take = g->R - L->n_window < jb->n - jb->pos ? g->R - L->n_window : jb->n - jb->pos;
            nw += jb->take > 0;
            if (L->n_window + jb->take == g->R) jb->flush = 1, nf++;
        }
        if (round == 0)
            for (uint32_t j = 0; j < nl; j++)
                if (jobs[j].p.mine) {
                    st = pkv_run_mines(c, jobs, nl, src, &op_ms);
                    ran_op = 1;
                    break;
                }
        if (st == PKV_OK && nw) st = run_window(c, jobs, nl, src);
        if (st == PKV_OK && nf) {
            st = run_flushes(c, jobs, nl, nf, &op_ms);
            ran_op = 1;
        }
        int more = 0;
        for (uint32_t j = 0; j < nl; j++) more |= jobs[j].pos < jobs[j].n;
        if (!more) break;
    }
    if (st != PKV_OK) {
        for (uint32_t j = 0; j < taken; j++) release_unused(c, &jobs[j]);
        for (uint32_t j = 0; j < nl; j++) roll_back(c, &jobs[j]);
    }
    if (ran_op) c->ctx->last_op_ms = st == PKV_OK ? op_ms : -1.0;
    if (!reuse) free(jobs);
    free(joined_mem);
    return st;
}

pkv_status pkv_append_check(pkv_cache *c, pkv_seq seq, uint32_t layer, uint32_t n, pkv_dtype dtype)
{
    if (!c) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_append: cache is NULL");
    pkv_sequence *s = pkv_find_seq(c, seq);
    if (!s) return pkv_fail(c->ctx, PKV_ERR_UNKNOWN_SEQUENCE, "pkv_append: sequence %u does not exist", seq);
    if (layer >= c->cfg.n_layers)
        return pkv_fail(c->ctx, PKV_ERR_LAYER_RANGE, "pkv_append: layer %u out of range (n_layers = %u)", layer,
                        c->cfg.n_layers);
    if (dtype != PKV_F32 && dtype != PKV_F16)
        return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_append: dtype %d is not PKV_F32 or PKV_F16", (int)dtype);
    const pkv_layer_state *L = &s->layers[layer];
    if ((uint64_t)L->n_blocks * c->g.G + L->n_window + n > (1u << 30))
        return pkv_fail(c->ctx, PKV_ERR_SHAPE, "pkv_append: more than 2^30 tokens in one sequence");
    return PKV_OK;
}

/* Host input of nl layers: checked, made fp16 (fp32 input converted into one buffer), then stored. */
static pkv_status append_host(pkv_cache *c, pkv_seq seq, uint32_t first, uint32_t nl, uint32_t n,
                              const void *const *k, const void *const *v, pkv_dtype dtype)
{
    const size_t count = (size_t)n * c->g.H * c->g.d;
    const uint16_t *kp[64], *vp[64], **ks = nl <= 64 ? kp : malloc(nl * sizeof *ks), **vs = nl <= 64 ? vp : malloc(nl * sizeof *vs);
    uint16_t *conv = NULL;
    pkv_status st = PKV_OK;
    if (!ks || !vs) st = pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_append: out of host memory");
    if (st == PKV_OK && dtype == PKV_F32) {
        conv = malloc(2 * nl * count * sizeof *conv);
        if (!conv) st = pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_append: out of host memory");
    }
    const double tc = pkv_prof_start();
    if (st == PKV_OK) st = check_input(c, first, nl, count, k, v, conv);
    for (uint32_t j = 0; j < nl && st == PKV_OK; j++) {
        if (dtype == PKV_F16) ks[j] = k[j], vs[j] = v[j];
        else ks[j] = conv + 2 * j * count, vs[j] = conv + (2 * j + 1) * count;
    }
    pkv_prof_add(PKV_PROF_CHECK, tc);
    token_src src = {ks, vs, NULL, 0, n, 0};
    append_target tl[64], *tg = nl <= 64 ? tl : malloc(nl * sizeof *tg);
    if (st == PKV_OK && !tg) st = pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_append: out of host memory");
    if (st == PKV_OK) {
        pkv_sequence *s = pkv_find_seq(c, seq);
        for (uint32_t j = 0; j < nl; j++) tg[j] = (append_target){&s->layers[first + j], first + j};
        st = append_run(c, tg, nl, &src);
    }
    if (tg != tl) free(tg);
    free(conv);
    if (ks != kp) free((void *)ks);
    if (vs != vp) free((void *)vs);
    return st;
}

pkv_status pkv_append(pkv_cache *c, pkv_seq seq, uint32_t layer, uint32_t n, const void *k, const void *v,
                      pkv_dtype dtype)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(c));
    pkv_clear_error();
    pkv_status st = pkv_append_check(c, seq, layer, n, dtype);
    if (st != PKV_OK || n == 0) return st;
    if (!k || !v) return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_append: k or v is NULL");
    const double t0 = pkv_prof_begin();
    st = append_host(c, seq, layer, 1, n, &k, &v, dtype);
    pkv_prof_end("pkv_append", t0, 1, n);
    return st;
}

static pkv_append_params append_defaults(void)
{
    pkv_append_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.dtype = PKV_F32;
    return p;
}

pkv_status pkv_append_params_init(pkv_append_params *p, size_t struct_size)
{
    const pkv_append_params d = append_defaults();
    return pkv_abi_init(&pkv_abi_append_params, &d, p, struct_size);
}

pkv_status pkv_append_layers(pkv_cache *c, const pkv_append_params *params, const void *const *k, const void *const *v)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(c));
    pkv_clear_error();
    if (!c || !params) return pkv_fail(c ? c->ctx : NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_append_layers: null argument");
    const pkv_append_params d = append_defaults();
    pkv_append_params p;
    pkv_status st = pkv_abi_read(c->ctx, &pkv_abi_append_params, params, &d, &p);
    if (st != PKV_OK) return st;
    if (p.first_layer >= c->cfg.n_layers)
        return pkv_fail(c->ctx, PKV_ERR_LAYER_RANGE, "pkv_append_layers: first_layer %u out of range (n_layers = %u)",
                        p.first_layer, c->cfg.n_layers);
    uint32_t nl = p.n_layers ? p.n_layers : c->cfg.n_layers - p.first_layer;
    if (nl > c->cfg.n_layers - p.first_layer)
        return pkv_fail(c->ctx, PKV_ERR_LAYER_RANGE, "pkv_append_layers: layers %u .. %u out of range (n_layers = %u)",
                        p.first_layer, p.first_layer + nl - 1, c->cfg.n_layers);
    for (uint32_t j = 0; j < nl; j++)
        if ((st = pkv_append_check(c, p.seq, p.first_layer + j, p.n_tokens, p.dtype)) != PKV_OK) return st;
    if (p.n_tokens == 0) return PKV_OK;
    if (!k || !v) return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_append_layers: k or v is NULL");
    for (uint32_t j = 0; j < nl; j++)
        if (!k[j] || !v[j])
            return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_append_layers: k[%u] or v[%u] is NULL", j, j);
    const double t0 = pkv_prof_begin();
    st = append_host(c, p.seq, p.first_layer, nl, p.n_tokens, k, v, p.dtype);
    pkv_prof_end("pkv_append_layers", t0, nl, p.n_tokens);
    return st;
}

pkv_status pkv_append_device(pkv_cache *c, const pkv_seq *seqs, uint32_t n_seqs, uint32_t layer, uint32_t n,
                             pkv_buf *tokens, size_t tokens_off)
{
    pkv_status st = PKV_OK; /* the arguments were checked by pkv_append_batch_check (internal.h) */
    if (n == 0 || n_seqs == 0) return st;
    append_target tl[64], *tg = n_seqs <= 64 ? tl : malloc(n_seqs * sizeof *tg);
    if (!tg) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_append: out of host memory");
    for (uint32_t i = 0; i < n_seqs; i++) tg[i] = (append_target){&pkv_find_seq(c, seqs[i])->layers[layer], layer};
    token_src src = {NULL, NULL, tokens, tokens_off, n, n_seqs};
    st = append_run(c, tg, n_seqs, &src);
    if (tg != tl) free(tg);
    return st;
}

pkv_status pkv_append_batch_check(pkv_cache *c, const char *fn, const pkv_seq *seqs, uint32_t n_seqs, uint32_t layer,
                                  uint32_t n, pkv_dtype dtype)
{
    if (!c) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "%s: cache is NULL", fn);
    if (!n_seqs || !seqs) return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: no sequences (seqs NULL or n_seqs 0)", fn);
    for (uint32_t i = 0; i < n_seqs; i++) {
        pkv_status st = pkv_append_check(c, seqs[i], layer, n, dtype);
        if (st != PKV_OK) return st;
        for (uint32_t j = 0; j < i; j++) /* one job per layer state: each sequence once */
            if (seqs[j] == seqs[i])
                return pkv_fail(c->ctx, PKV_ERR_INVALID_ARGUMENT, "%s: sequence %u is given twice (seqs[%u] and seqs[%u])",
                                fn, seqs[i], j, i);
    }
    return PKV_OK;
}
