/* pkv_cache_stats_get: bytes by part, shared blocks and chunks counted once. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

pkv_status pkv_cache_stats_get(const pkv_cache *c, pkv_cache_stats *out)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(c));
    if (!c || !out) return pkv_fail(c ? c->ctx : NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_cache_stats_get: null argument");
    const pkv_geom *g = &c->g;
    pkv_cache_stats stats, *o = &stats; /* all fields; out receives those its struct_size covers */
    memset(o, 0, sizeof *o);
    uint64_t nb = 0, chunk_slots = 0;
    for (uint32_t i = 0; i < c->n_shards; i++) {
        const pkv_arena *a = &c->shards[i].blocks;
        nb += a->used;
        for (uint32_t s = 0; s < a->capacity; s++) o->blocks_shared += a->refcount[s] > 1;
        chunk_slots += c->shards[i].chunks.capacity;
    }
    o->blocks_used = nb;
    o->bytes_codes = nb * g->block_payload[0];
    o->bytes_scales = nb * g->block_payload[1];
    o->bytes_indices = nb * g->block_payload[2];
    o->bytes_masks = nb * g->block_payload[3];
    o->bytes_padding = nb * g->block_payload[4];

    /* a chunk slot's index over all shards: its shard's first, then the slot */
    uint8_t *seen = calloc(chunk_slots + 1, 1);
    if (!seen) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_cache_stats_get: out of host memory");
    uint64_t window_tokens = 0;
    for (uint32_t s = 0; s < c->n_seqs; s++)
        for (uint32_t l = 0; l < c->cfg.n_layers; l++) {
            const pkv_layer_state *L = &c->seqs[s]->layers[l];
            o->tokens_stored += (uint64_t)L->n_blocks * g->G + L->n_window;
            o->tokens_compressed += (uint64_t)L->n_blocks * g->G;
            window_tokens += (uint64_t)L->n_window * g->H;
            if (!L->chunks) continue;
            uint64_t first = 0;
            for (uint32_t i = 0; i < l / c->shard_layers; i++) first += c->shards[i].chunks.capacity;
            for (uint32_t h = 0; h < g->H; h++)
                for (uint32_t ci = 0; ci * PKV_CHUNK_PATTERNS < L->bank_count; ci++) {
                    uint32_t slot = L->chunks[h * PKV_MAX_CHUNKS + ci];
                    if (slot == PKV_NO_SLOT || seen[first + slot]) continue;
                    seen[first + slot] = 1;
                    uint32_t in_chunk = L->bank_count - ci * PKV_CHUNK_PATTERNS;
                    if (in_chunk > PKV_CHUNK_PATTERNS) in_chunk = PKV_CHUNK_PATTERNS;
                    o->bytes_patterns += (uint64_t)in_chunk * g->d * 2 * 2;
                }
        }
    free(seen);
    o->bytes_window = window_tokens * g->d * 2 * 2;
    o->bytes_reserved = pkv_reserved_bytes(c);
    o->bytes_budget = c->cfg.memory_budget;
    o->bytes_free = o->bytes_budget > o->bytes_reserved ? o->bytes_budget - o->bytes_reserved : 0;
    o->n_seqs = c->n_seqs;
    /* Elements stored once: every block holds G tokens of one head; window tokens per head. */
    double elements = ((double)nb * g->G + (double)window_tokens) * g->d * 2.0;
    double bytes = (double)(o->bytes_codes + o->bytes_scales + o->bytes_indices + o->bytes_masks + o->bytes_padding +
                            o->bytes_patterns + o->bytes_window);
    o->bits_per_element = elements > 0 ? bytes * 8.0 / elements : 0.0;
    return pkv_abi_write(c->ctx, &pkv_abi_cache_stats, o, out);
}
