/* The pool: three arenas of fixed-size slots (blocks, bank chunks, windows) in backend buffers.
 * Arenas grow by allocating a larger buffer, copying and freeing the old one, up to the budget;
 * the budget counts slots in use. Blocks and chunks are reference-counted for forks. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void pkv_arena_init(pkv_arena *a, uint32_t slot_bytes)
{
    memset(a, 0, sizeof *a);
    a->slot_bytes = slot_bytes;
}

void pkv_arena_destroy(pkv_cache *c, pkv_arena *a)
{
    if (a->buf) c->ctx->be->iface->buf_free(c->ctx->be, a->buf);
    free(a->refcount);
    memset(a, 0, sizeof *a);
}

uint64_t pkv_reserved_bytes(const pkv_cache *c)
{
    return (uint64_t)c->blocks.used * c->blocks.slot_bytes + (uint64_t)c->chunks.used * c->chunks.slot_bytes +
           (uint64_t)c->windows.used * c->windows.slot_bytes;
}

static uint64_t held_bytes(const pkv_arena *a) { return (uint64_t)a->capacity * a->slot_bytes; }

/* Grows `a` to hold at least `need` slots, with some headroom, within `limit_bytes` of buffer. */
static pkv_status arena_grow(pkv_cache *c, pkv_arena *a, uint32_t need, uint64_t limit_bytes)
{
    if (need <= a->capacity) return PKV_OK;
    uint64_t limit = limit_bytes / a->slot_bytes;
    if (need > limit) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_BUDGET, "memory budget of %llu bytes is full",
                                      (unsigned long long)c->cfg.memory_budget);
    uint64_t want = (uint64_t)need + (a->capacity / 2 > 16 ? a->capacity / 2 : 16);
    if (want > limit) want = limit;
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
    c->store.blocks = c->blocks.buf;
    c->store.chunks = c->chunks.buf;
    c->store.windows = c->windows.buf;
    return PKV_OK;
}

pkv_status pkv_pool_ensure(pkv_cache *c, uint32_t extra_blocks, uint32_t extra_chunks, uint32_t extra_windows)
{
    uint64_t need = pkv_reserved_bytes(c) + (uint64_t)extra_blocks * c->blocks.slot_bytes +
                    (uint64_t)extra_chunks * c->chunks.slot_bytes + (uint64_t)extra_windows * c->windows.slot_bytes;
    if (need > c->cfg.memory_budget)
        return pkv_fail(c->ctx, PKV_ERR_OUT_OF_BUDGET,
                        "memory budget full: %llu bytes needed, budget %llu (raise pkv_cache_config.memory_budget)",
                        (unsigned long long)need, (unsigned long long)c->cfg.memory_budget);
    pkv_arena *arenas[3] = {&c->blocks, &c->chunks, &c->windows};
    uint32_t extra[3] = {extra_blocks, extra_chunks, extra_windows};
    for (int i = 0; i < 3; i++) {
        uint64_t others = 0;
        for (int j = 0; j < 3; j++)
            if (j != i) others += held_bytes(arenas[j]);
        uint64_t limit = c->cfg.memory_budget > others ? c->cfg.memory_budget - others : 0;
        /* Another arena's unused headroom must not make a request within budget fail. */
        uint64_t floor_bytes = (uint64_t)(arenas[i]->used + extra[i]) * arenas[i]->slot_bytes;
        if (limit < floor_bytes) limit = floor_bytes;
        pkv_status st = arena_grow(c, arenas[i], arenas[i]->used + extra[i], limit);
        if (st != PKV_OK) return st;
    }
    return PKV_OK;
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

void pkv_layer_release(pkv_cache *c, pkv_layer_state *L)
{
    const uint32_t H = c->g.H;
    if (L->blocks) /* NULL with n_blocks set only for a half-read table of a damaged file */
        for (uint32_t i = 0; i < L->n_blocks * H; i++) pkv_arena_release(&c->blocks, L->blocks[i]);
    if (L->window_slot)
        for (uint32_t h = 0; h < H; h++) pkv_arena_release(&c->windows, L->window_slot[h]);
    if (L->chunks)
        for (uint32_t i = 0; i < H * PKV_MAX_CHUNKS; i++) pkv_arena_release(&c->chunks, L->chunks[i]);
    free(L->blocks);
    free(L->window_slot);
    free(L->chunks);
    memset(L, 0, sizeof *L);
}
