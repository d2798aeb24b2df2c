/* pkv_read_kv: dequantizes one sequence's layer on the host from the backend's bytes. */
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "f16.h"
#include "internal.h"

pkv_status pkv_read_kv(pkv_cache *c, pkv_seq seq, uint32_t layer, float *k, float *v)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(c));
    if (!c || !k || !v) return pkv_fail(c ? c->ctx : NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_read_kv: null argument");
    pkv_sequence *s = pkv_find_seq(c, seq);
    if (!s) return pkv_fail(c->ctx, PKV_ERR_UNKNOWN_SEQUENCE, "pkv_read_kv: sequence %u does not exist", seq);
    if (layer >= c->cfg.n_layers)
        return pkv_fail(c->ctx, PKV_ERR_LAYER_RANGE, "pkv_read_kv: layer %u out of range (n_layers = %u)", layer,
                        c->cfg.n_layers);
    const pkv_geom *g = &c->g;
    const pkv_layer_state *L = &s->layers[layer];
    const uint32_t H = g->H, d = g->d, G = g->G, nb = L->bank_count;
    pkv_backend *be = c->ctx->be;
    const pkv_shard *sh = pkv_shard_of(c, layer);
    uint8_t *blk = malloc(g->block_bytes), *chunk_bytes = malloc((size_t)PKV_MAX_CHUNKS * g->chunk_bytes + g->window_bytes);
    float *PK = malloc(((size_t)nb * d + 1) * sizeof(float)), *PV = malloc(((size_t)nb * d + 1) * sizeof(float));
    float *kb = malloc((size_t)G * d * sizeof(float)), *vb = malloc((size_t)G * d * sizeof(float));
    pkv_status st = PKV_OK;
    if (!blk || !chunk_bytes || !PK || !PV || !kb || !vb) {
        st = pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_read_kv: out of host memory");
        goto done;
    }
    for (uint32_t h = 0; h < H && st == PKV_OK; h++) {
        const uint8_t *cp[PKV_MAX_CHUNKS];
        for (uint32_t ci = 0; ci * PKV_CHUNK_PATTERNS < nb && st == PKV_OK; ci++) {
            cp[ci] = chunk_bytes + (size_t)ci * g->chunk_bytes;
            st = be->iface->buf_read(be, sh->chunks.buf, (size_t)L->chunks[h * PKV_MAX_CHUNKS + ci] * g->chunk_bytes,
                                     chunk_bytes + (size_t)ci * g->chunk_bytes, g->chunk_bytes);
        }
        if (st == PKV_OK && nb) pkv_bank_load(g, cp, nb, PK, PV);
        for (uint32_t b = 0; b < L->n_blocks && st == PKV_OK; b++) {
            st = be->iface->buf_read(be, sh->blocks.buf, (size_t)L->blocks[(size_t)b * H + h] * g->block_bytes, blk,
                                     g->block_bytes);
            if (st != PKV_OK) break;
            pkv_block_decode(g, blk, PK, PV, kb, vb);
            for (uint32_t t = 0; t < G; t++) {
                size_t o = ((size_t)(b * G + t) * H + h) * d;
                memcpy(k + o, kb + (size_t)t * d, d * sizeof(float));
                memcpy(v + o, vb + (size_t)t * d, d * sizeof(float));
            }
        }
        if (st == PKV_OK && L->n_window) {
            uint8_t *win = chunk_bytes + (size_t)PKV_MAX_CHUNKS * g->chunk_bytes;
            st = be->iface->buf_read(be, sh->windows.buf, (size_t)L->window_slot[h] * g->window_bytes, win, g->window_bytes);
            for (uint32_t t = 0; t < L->n_window && st == PKV_OK; t++) {
                size_t o = ((size_t)(L->n_blocks * G + t) * H + h) * d;
                for (uint32_t i = 0; i < d; i++) {
                    k[o + i] = pkv_f16_to_f32(pkv_rd16(win + 2 * ((size_t)t * d + i)));
                    v[o + i] = pkv_f16_to_f32(pkv_rd16(win + 2 * ((size_t)(g->R + t) * d + i)));
                }
            }
        }
    }
done:
    free(blk), free(chunk_bytes), free(PK), free(PV), free(kb), free(vb);
    return st;
}
