/* The pool: per shard (a range of consecutive layers) three arenas of fixed-size slots (blocks, bank
 * chunks, windows), one backend buffer each, so that no buffer exceeds what the device can bind as
 * one storage buffer (pkv_backend.max_buffer_bytes, or PKV_MAX_BUFFER_BYTES). Arenas grow by
 * allocating a larger buffer, copying and freeing the old one, up to the budget; the budget counts
 * slots in use over all shards. Blocks and chunks are reference-counted for forks. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void arena_init(pkv_arena *a, uint32_t slot_bytes)
{
    memset(a, 0, sizeof *a);
    a->slot_bytes = slot_bytes;
}

static void arena_destroy(pkv_cache *c, pkv_arena *a)
{
    if (a->buf) c->ctx->be->iface->buf_free(c->ctx->be, a->buf);
    free(a->refcount);
    memset(a, 0, sizeof *a);
}

/* The largest buffer of the cache: the backend's limit, lowered by PKV_MAX_BUFFER_BYTES (tests);
 * 0: none. A multiple of 256 bytes. */
static uint64_t buffer_limit(const pkv_context *ctx)
{
    uint64_t lim = ctx->be->max_buffer_bytes;
    const char *e = getenv("PKV_MAX_BUFFER_BYTES");
    if (e && *e) {
        uint64_t v = strtoull(e, NULL, 10);
        if (v && (!lim || v < lim)) lim = v;
    }
    return lim & ~(uint64_t)255;
}

pkv_status pkv_pool_init(pkv_cache *c)
{
    const uint32_t NL = c->cfg.n_layers;
    c->buffer_limit = buffer_limit(c->ctx);
    uint32_t per = NL;
    if (c->buffer_limit && c->cfg.memory_budget > c->buffer_limit) {
        /* layers of a shard: as many as fit in one buffer if the budget is spread evenly over the layers */
        const uint64_t per_layer = (c->cfg.memory_budget + NL - 1) / NL;
        uint64_t fit = c->buffer_limit / per_layer;
        per = fit < 1 ? 1 : fit > NL ? NL : (uint32_t)fit;
    }
    c->shard_layers = per;
    c->n_shards = (NL + per - 1) / per;
    c->shards = calloc(c->n_shards, sizeof *c->shards);
    if (!c->shards) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t i = 0; i < c->n_shards; i++) {
        pkv_shard *s = &c->shards[i];
        arena_init(&s->blocks, c->g.block_bytes);
        arena_init(&s->chunks, c->g.chunk_bytes);
        arena_init(&s->windows, c->g.window_bytes);
        s->store.g = &c->g;
    }
    return PKV_OK;
}

void pkv_pool_destroy(pkv_cache *c)
{
    for (uint32_t i = 0; c->shards && i < c->n_shards; i++) {
        arena_destroy(c, &c->shards[i].blocks);
        arena_destroy(c, &c->shards[i].chunks);
        arena_destroy(c, &c->shards[i].windows);
    }
    free(c->shards);
    c->shards = NULL;
}

static pkv_arena *arena_of(pkv_shard *s, int kind) { return kind == 0 ? &s->blocks : kind == 1 ? &s->chunks : &s->windows; }

uint64_t pkv_reserved_bytes(const pkv_cache *c)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < c->n_shards; i++)
        for (int k = 0; k < 3; k++) {
            const pkv_arena *a = arena_of(&c->shards[i], k);
            n += (uint64_t)a->used * a->slot_bytes;
        }
    return n;
}

static uint64_t held_bytes(const pkv_arena *a) { return (uint64_t)a->capacity * a->slot_bytes; }

/* Grows `a` to hold at least `need` slots, with some headroom, within `limit_bytes` of buffer
 * (the budget's share) and the buffer limit. */
static pkv_status arena_grow(pkv_cache *c, uint32_t shard, pkv_arena *a, uint32_t need, uint64_t limit_bytes)
{
    if (need <= a->capacity) return PKV_OK;
    uint64_t limit = limit_bytes / a->slot_bytes;
    if (need > limit) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_BUDGET, "memory budget of %llu bytes is full",
                                      (unsigned long long)c->cfg.memory_budget);
    const uint64_t most = c->buffer_limit ? c->buffer_limit / a->slot_bytes : UINT32_MAX;
    if (need > most) {
        const uint32_t l0 = shard * c->shard_layers, n = c->cfg.n_layers - l0;
        return pkv_fail(c->ctx, PKV_ERR_OUT_OF_DEVICE_MEMORY,
                        "layers %u .. %u need %llu bytes of one kind of slot in one buffer; the device's largest "
                        "buffer is %llu bytes (docs/FORMAT.md \"The pool\": the budget sets how many layers share one)",
                        l0, l0 + (n < c->shard_layers ? n : c->shard_layers) - 1,
                        (unsigned long long)need * a->slot_bytes, (unsigned long long)c->buffer_limit);
    }
    /* headroom: half the current capacity, and at least an eighth of what is needed now, so that the
     * decode steps after a long first prompt (an arena sized to the prompt) flush into room that is
     * already there instead of copying the whole arena at the first flush (write-path bench: a
     * 32K-token prompt of 32 layers, then one flush per 128 tokens) */
    uint64_t room = a->capacity / 2 > need / 8 ? a->capacity / 2 : need / 8;
    uint64_t want = (uint64_t)need + (room > 16 ? room : 16);
    if (want > limit) want = limit;
    if (want > most) want = most;
    pkv_backend *be = c->ctx->be;
    uint32_t *rc = calloc(want, sizeof *rc);
    if (!rc) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "out of host memory growing the pool");
    pkv_buf *nb = NULL;
    pkv_status st = be->iface->buf_alloc(be, want * a->slot_bytes, &nb);
    if (st == PKV_OK && a->buf && a->capacity)
        st = be->iface->buf_copy(be, nb, 0, a->buf, 0, held_bytes(a));
    if (st != PKV_OK) {
        if (nb) be->iface->buf_free(be, nb);
        free(rc);
        return st == PKV_ERR_OUT_OF_DEVICE_MEMORY
                   ? pkv_fail(c->ctx, st, "device out of memory growing the pool to %llu bytes",
                              (unsigned long long)(want * a->slot_bytes))
                   : st;
    }
    if (a->refcount) memcpy(rc, a->refcount, (size_t)a->capacity * sizeof *rc);
    free(a->refcount);
    if (a->buf) be->iface->buf_free(be, a->buf);
    a->refcount = rc;
    a->buf = nb;
    a->capacity = (uint32_t)want;
    pkv_shard *s = &c->shards[shard];
    s->store.blocks = s->blocks.buf;
    s->store.chunks = s->chunks.buf;
    s->store.windows = s->windows.buf;
    return PKV_OK;
}

void pkv_pool_want(pkv_cache *c, uint32_t layer, uint32_t blocks, uint32_t chunks, uint32_t windows)
{
    pkv_shard *s = pkv_shard_of(c, layer);
    s->need[0] += blocks, s->need[1] += chunks, s->need[2] += windows;
}

pkv_status pkv_pool_ensure(pkv_cache *c)
{
    uint64_t need = pkv_reserved_bytes(c), held = 0;
    for (uint32_t i = 0; i < c->n_shards; i++)
        for (int k = 0; k < 3; k++) {
            need += (uint64_t)c->shards[i].need[k] * arena_of(&c->shards[i], k)->slot_bytes;
            held += held_bytes(arena_of(&c->shards[i], k));
        }
    pkv_status st = PKV_OK;
    if (need > c->cfg.memory_budget)
        st = pkv_fail(c->ctx, PKV_ERR_OUT_OF_BUDGET,
                      "memory budget full: %llu bytes needed, budget %llu (raise pkv_cache_config.memory_budget)",
                      (unsigned long long)need, (unsigned long long)c->cfg.memory_budget);
    for (uint32_t i = 0; i < c->n_shards && st == PKV_OK; i++)
        for (int k = 0; k < 3 && st == PKV_OK; k++) {
            pkv_arena *a = arena_of(&c->shards[i], k);
            const uint32_t extra = c->shards[i].need[k];
            if (!extra) continue;
            const uint64_t others = held - held_bytes(a);
            uint64_t limit = c->cfg.memory_budget > others ? c->cfg.memory_budget - others : 0;
            /* Another arena's unused headroom must not make a request within budget fail. */
            uint64_t floor_bytes = (uint64_t)(a->used + extra) * a->slot_bytes;
            if (limit < floor_bytes) limit = floor_bytes;
            const uint64_t before = held_bytes(a);
            st = arena_grow(c, i, a, a->used + extra, limit);
            held += held_bytes(a) - before;
        }
    for (uint32_t i = 0; i < c->n_shards; i++) memset(c->shards[i].need, 0, sizeof c->shards[i].need);
    return st;
}

uint32_t pkv_arena_take(pkv_arena *a)
{
    for (uint32_t k = 0; k < a->capacity; k++) {
        uint32_t s = (a->next_free_hint + k) % a->capacity;
        if (a->refcount[s] == 0) {
            a->refcount[s] = 1;
            a->used++;
            a->next_free_hint = s + 1;
            return s;
        }
    }
    return PKV_NO_SLOT; /* unreachable after pkv_pool_ensure */
}

void pkv_arena_retain(pkv_arena *a, uint32_t slot) { a->refcount[slot]++; }

void pkv_arena_release(pkv_arena *a, uint32_t slot)
{
    if (slot == PKV_NO_SLOT || slot >= a->capacity || a->refcount[slot] == 0) return;
    if (--a->refcount[slot] == 0) {
        a->used--;
        if (slot < a->next_free_hint) a->next_free_hint = slot;
    }
}

void pkv_layer_release(pkv_cache *c, uint32_t layer, pkv_layer_state *L)
{
    const uint32_t H = c->g.H;
    pkv_shard *s = pkv_shard_of(c, layer);
    if (L->blocks) /* NULL with n_blocks set only for a half-read table of a damaged file */
        for (uint32_t i = 0; i < L->n_blocks * H; i++) pkv_arena_release(&s->blocks, L->blocks[i]);
    if (L->window_slot)
        for (uint32_t h = 0; h < H; h++) pkv_arena_release(&s->windows, L->window_slot[h]);
    if (L->chunks)
        for (uint32_t i = 0; i < H * PKV_MAX_CHUNKS; i++) pkv_arena_release(&s->chunks, L->chunks[i]);
    if (L->tab.buf) c->ctx->be->iface->buf_free(c->ctx->be, L->tab.buf);
    free(L->tab.fixed);
    free(L->blocks);
    free(L->window_slot);
    free(L->chunks);
    memset(L, 0, sizeof *L);
}
