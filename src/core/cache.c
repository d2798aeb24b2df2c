/* Caches and sequences: configuration, creation, fork and free. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "profile.h"

static pkv_cache_config config_defaults(void)
{
    pkv_cache_config c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    c.n_layers = 1;
    c.n_kv_heads = 1;
    c.head_dim = 128;
    c.k_bits = 2;
    c.v_bits = 2;
    c.group_size = 0;    /* the mode's: config_resolve */
    c.window = 0;
    c.n_patterns = 24;
    c.bank_capacity = 0; /* n_patterns: frozen banks */
    c.mode = PKV_MODE_PATTERN;
    c.memory_budget = 256ull << 20;
    c.kmeans_iters = 30;
    c.kmeans_tol = 1e-4f;
    c.seed = 0x5EED;
    c.k_assign = PKV_K_ASSIGN_MINMAX;
    c.mining = PKV_MINING_AT_M;
    c.quantizer = PKV_QUANTIZER_AUTO; /* MSE for PATTERN, MINMAX for DIRECT (include/patternkv.h) */
    c.kmeans_sample = PKV_KMEANS_SAMPLE_DEFAULT;
    return c;
}

pkv_status pkv_cache_config_init(pkv_cache_config *c, size_t struct_size)
{
    const pkv_cache_config d = config_defaults();
    return pkv_abi_init(&pkv_abi_cache_config, &d, c, struct_size);
}

pkv_status pkv_cache_config_init_paper(pkv_cache_config *c, size_t struct_size)
{
    pkv_cache_config d = config_defaults();
    d.group_size = 128, d.n_patterns = 32, d.bank_capacity = 256;
    d.quantizer = PKV_QUANTIZER_MINMAX, d.k_assign = PKV_K_ASSIGN_MINMAX;
    return pkv_abi_init(&pkv_abi_cache_config, &d, c, struct_size);
}

/* The defaults that depend on the mode (issue 14, bench/RESULTS.md 2026-12-05): PATTERN G 64 with a
 * 128-token window and its banks frozen at the mined patterns, which at equal memory beats DIRECT G 32;
 * DIRECT and FP16 G 128 (KIVI as published). */
static void config_resolve(pkv_cache_config *c)
{
    if (!c->group_size) { /* the window stays 128 tokens (G 64 with a 64-token window loses: RESULTS) */
        c->group_size = c->mode == PKV_MODE_PATTERN ? 64 : 128;
        if (!c->window) c->window = 128;
    }
    if (!c->bank_capacity) c->bank_capacity = c->n_patterns ? c->n_patterns : 1;
    c->quantizer = pkv_quantizer_resolve(c->mode, c->quantizer);
}

pkv_status pkv_cache_config_resolve(pkv_cache_config *c)
{
    if (!c) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_cache_config_resolve: null argument");
    const pkv_cache_config d = config_defaults();
    pkv_cache_config cfg;
    pkv_status st = pkv_abi_read(NULL, &pkv_abi_cache_config, c, &d, &cfg);
    if (st != PKV_OK) return st;
    config_resolve(&cfg);
    return pkv_abi_write(NULL, &pkv_abi_cache_config, &cfg, c);
}

const char *pkv_k_assign_name(pkv_k_assign a)
{
    return a == PKV_K_ASSIGN_MINMAX ? "minmax" : a == PKV_K_ASSIGN_L2 ? "l2" : a == PKV_K_ASSIGN_RANGE ? "range"
         : a == PKV_K_ASSIGN_NONE  ? "none"
                                   : "?";
}

const char *pkv_quantizer_name(pkv_quantizer q)
{
    return q == PKV_QUANTIZER_MINMAX ? "minmax"
         : q == PKV_QUANTIZER_MSE    ? "mse"
         : q == PKV_QUANTIZER_MSE_K  ? "mse-k"
         : q == PKV_QUANTIZER_MSE_V  ? "mse-v"
         : q == PKV_QUANTIZER_AUTO   ? "auto"
                                     : "?";
}

const char *pkv_mining_name(pkv_mining m)
{
    return m == PKV_MINING_AT_M ? "at-m" : m == PKV_MINING_FIRST_APPEND ? "first-append" : "?";
}

static int valid_bits(uint32_t b) { return b == 2 || b == 3 || b == 4 || b == 8; }

pkv_status pkv_validate_config(const pkv_cache_config *c)
{
#define BAD(...) return pkv_fail(NULL, PKV_ERR_INVALID_CONFIG, __VA_ARGS__)
    if (c->n_layers < 1 || c->n_layers > 4096) BAD("n_layers must be in [1, 4096], got %u", c->n_layers);
    if (c->n_kv_heads < 1 || c->n_kv_heads > 1024) BAD("n_kv_heads must be in [1, 1024], got %u", c->n_kv_heads);
    if (c->head_dim < 32 || c->head_dim > 256 || c->head_dim % 8)
        BAD("head_dim must be a multiple of 8 in [32, 256], got %u", c->head_dim);
    if ((unsigned)c->mode > PKV_MODE_FP16) BAD("mode must be PATTERN, DIRECT or FP16, got %d", (int)c->mode);
    if (!valid_bits(c->k_bits) || !valid_bits(c->v_bits))
        BAD("k_bits and v_bits must be 2, 3, 4 or 8, got %u and %u", c->k_bits, c->v_bits);
    if (c->group_size != 32 && c->group_size != 64 && c->group_size != 128)
        BAD("group_size must be 32, 64 or 128, got %u", c->group_size);
    uint32_t R = c->window ? c->window : c->group_size;
    if (R % c->group_size || R > 8 * c->group_size)
        BAD("window must be a multiple of group_size (at most 8 groups), got %u", c->window);
    if (c->bank_capacity < 1 || c->bank_capacity > 256) BAD("bank_capacity must be in [1, 256], got %u", c->bank_capacity);
    if (c->n_patterns < 1 || c->n_patterns > c->bank_capacity)
        BAD("n_patterns must be in [1, bank_capacity=%u], got %u", c->bank_capacity, c->n_patterns);
    if (c->kmeans_iters < 1 || c->kmeans_iters > 1000) BAD("kmeans_iters must be in [1, 1000], got %u", c->kmeans_iters);
    if (!(c->kmeans_tol >= 0.0f) || c->kmeans_tol > 1e30f) BAD("kmeans_tol must be finite and >= 0");
    if (c->memory_budget == 0) BAD("memory_budget must be > 0");
    if (c->k_assign > PKV_K_ASSIGN_NONE) BAD("k_assign must be MINMAX, L2, RANGE or NONE, got %u", c->k_assign);
    if (c->quantizer > PKV_QUANTIZER_AUTO) BAD("quantizer must be MINMAX, MSE, MSE_K, MSE_V or AUTO, got %u", c->quantizer);
    if (c->mining > PKV_MINING_FIRST_APPEND) BAD("mining must be AT_M or FIRST_APPEND, got %u", c->mining);
    if (c->kmeans_sample > PKV_KMEANS_SAMPLE_MAX || (c->kmeans_sample && c->kmeans_sample < c->n_patterns))
        BAD("kmeans_sample must be 0 (all tokens) or in [n_patterns=%u, %u], got %u", c->n_patterns,
            PKV_KMEANS_SAMPLE_MAX, c->kmeans_sample);
#undef BAD
    return PKV_OK;
}

pkv_status pkv_cache_new(pkv_context *ctx, const pkv_cache_config *cfg, pkv_cache **out)
{
    pkv_cache *c = calloc(1, sizeof *c);
    if (!c) return pkv_fail(ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    c->ctx = ctx;
    c->cfg = *cfg;
    if (!c->cfg.window) c->cfg.window = cfg->group_size;
    pkv_geom_init(&c->g, &c->cfg);
    c->next_id = 1;
    if (pkv_pool_init(c) != PKV_OK) {
        free(c);
        return PKV_ERR_OUT_OF_HOST_MEMORY;
    }
    if (ctx->be->iface->prepare && ctx->be->iface->prepare(ctx->be, &c->g) != PKV_OK) /* retried lazily by the ops */
    {
        pkv_log(ctx, PKV_LOG_INFO, "preparing the write path failed: %s", pkv_last_error());
        pkv_clear_error();
    }
    *out = c;
    return PKV_OK;
}

pkv_status pkv_cache_create(pkv_context *ctx, const pkv_cache_config *config, pkv_cache **out)
{
    PKV_ALLOC_SCOPE(PKV_CTX_ALLOC(ctx));
    if (!ctx || !config || !out) return pkv_fail(ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_cache_create: null argument");
    *out = NULL;
    const pkv_cache_config d = config_defaults();
    pkv_cache_config cfg;
    pkv_status st = pkv_abi_read(ctx, &pkv_abi_cache_config, config, &d, &cfg);
    if (st == PKV_OK) config_resolve(&cfg), st = pkv_validate_config(&cfg);
    if (st == PKV_OK && cfg.mode == PKV_MODE_PATTERN && cfg.k_assign != PKV_K_ASSIGN_MINMAX &&
        !(ctx->be->iface->k_assign_variants & (1u << cfg.k_assign)))
        st = pkv_fail(ctx, PKV_ERR_UNSUPPORTED, "pkv_cache_create: the %s backend does not implement k_assign %s "
                      "(the CPU backend does)", pkv_backend_name(ctx->be->info.backend), pkv_k_assign_name(cfg.k_assign));
    if (st == PKV_OK && cfg.mode != PKV_MODE_FP16 && cfg.quantizer != PKV_QUANTIZER_MINMAX &&
        !(ctx->be->iface->quantizers & (1u << cfg.quantizer)))
        st = pkv_fail(ctx, PKV_ERR_UNSUPPORTED, "pkv_cache_create: the %s backend does not implement quantizer %s "
                      "(the CPU backend does)", pkv_backend_name(ctx->be->info.backend),
                      pkv_quantizer_name((pkv_quantizer)cfg.quantizer));
    if (st != PKV_OK) return st;
    const double t0 = pkv_prof_begin();
    st = pkv_cache_new(ctx, &cfg, out);
    pkv_prof_end("pkv_cache_create", t0, cfg.n_layers, 0);
    return st;
}

void *pkv_scratch_get(pkv_scratch *s, size_t bytes)
{
    if (bytes > s->bytes) {
        size_t want = bytes + bytes / 2 + 4096;
        void *p = realloc(s->p, want);
        if (!p) return NULL;
        s->p = p;
        s->bytes = want;
    }
    return s->p;
}

static void seq_destroy(pkv_cache *c, pkv_sequence *s)
{
    if (!s) return;
    if (s->layers)
        for (uint32_t l = 0; l < c->cfg.n_layers; l++) pkv_layer_release(c, l, &s->layers[l]);
    free(s->layers);
    free(s);
}

pkv_status pkv_cache_free(pkv_cache *c)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(c));
    if (!c) return PKV_OK;
    for (uint32_t i = 0; i < c->n_seqs; i++) seq_destroy(c, c->seqs[i]);
    free(c->seqs);
    pkv_pool_destroy(c);
    free(c->rows_tmp.p), free(c->job_tmp.p), free(c->attn_tmp.p);
    free(c->rcp);
    free(c);
    return PKV_OK;
}

pkv_status pkv_cache_get_config(const pkv_cache *c, pkv_cache_config *out)
{
    if (!c || !out) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_cache_get_config: null argument");
    return pkv_abi_write(c->ctx, &pkv_abi_cache_config, &c->cfg, out);
}

pkv_sequence *pkv_find_seq(const pkv_cache *c, pkv_seq id)
{
    const uint32_t slot = id % (sizeof c->seq_hint / sizeof c->seq_hint[0]), hint = c->seq_hint[slot];
    if (hint < c->n_seqs && c->seqs[hint]->id == id) return c->seqs[hint];
    for (uint32_t i = 0; i < c->n_seqs; i++)
        if (c->seqs[i]->id == id) {
            ((pkv_cache *)c)->seq_hint[slot] = i; /* caches are never const objects: a lookup memo */
            return c->seqs[i];
        }
    return NULL;
}

pkv_status pkv_seq_insert(pkv_cache *c, pkv_seq id, pkv_sequence **out)
{
    if (c->n_seqs == c->cap_seqs) {
        uint32_t cap = c->cap_seqs ? c->cap_seqs * 2 : 8;
        pkv_sequence **ns = realloc(c->seqs, cap * sizeof *ns);
        if (!ns) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        c->seqs = ns;
        c->cap_seqs = cap;
    }
    pkv_sequence *s = calloc(1, sizeof *s);
    pkv_layer_state *layers = calloc(c->cfg.n_layers, sizeof *layers);
    if (!s || !layers) {
        free(s);
        free(layers);
        return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    s->id = id;
    s->layers = layers;
    c->seqs[c->n_seqs++] = s;
    if (id >= c->next_id && id < PKV_SEQ_ID_LIMIT) c->next_id = id + 1;
    *out = s;
    return PKV_OK;
}

/* The next id: one above the largest ever used while below PKV_SEQ_ID_LIMIT, then the smallest free one
 * (never an id that exists). */
pkv_status pkv_next_seq_id(pkv_cache *c, pkv_seq *id)
{
    if (c->next_id < PKV_SEQ_ID_LIMIT && !pkv_find_seq(c, c->next_id)) {
        *id = c->next_id;
        return PKV_OK;
    }
    for (pkv_seq cand = 1; cand < PKV_SEQ_ID_LIMIT && cand <= c->n_seqs + 1; cand++)
        if (!pkv_find_seq(c, cand)) {
            *id = cand;
            return PKV_OK;
        }
    return pkv_fail(c->ctx, PKV_ERR_OUT_OF_BUDGET, "no free sequence id");
}

pkv_status pkv_seq_create(pkv_cache *c, pkv_seq *out)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(c));
    if (!c || !out) return pkv_fail(c ? c->ctx : NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_seq_create: null argument");
    pkv_sequence *s = NULL;
    pkv_seq id;
    pkv_status st = pkv_next_seq_id(c, &id);
    if (st == PKV_OK) st = pkv_seq_insert(c, id, &s);
    if (st == PKV_OK) *out = s->id;
    return st;
}

static void seq_remove(pkv_cache *c, pkv_sequence *s)
{
    for (uint32_t i = 0; i < c->n_seqs; i++)
        if (c->seqs[i] == s) {
            c->seqs[i] = c->seqs[--c->n_seqs];
            break;
        }
}

pkv_status pkv_seq_free(pkv_cache *c, pkv_seq id)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(c));
    if (!c) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_seq_free: cache is NULL");
    pkv_sequence *s = pkv_find_seq(c, id);
    if (!s) return pkv_fail(c->ctx, PKV_ERR_UNKNOWN_SEQUENCE, "pkv_seq_free: sequence %u does not exist", id);
    seq_remove(c, s);
    seq_destroy(c, s);
    return PKV_OK;
}

static void *dup_array(const uint32_t *src, size_t n)
{
    if (!src || !n) return NULL;
    uint32_t *d = malloc(n * sizeof *d);
    if (d) memcpy(d, src, n * sizeof *d);
    return d;
}

pkv_status pkv_seq_fork(pkv_cache *c, pkv_seq parent, pkv_seq *child)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(c));
    if (!c || !child) return pkv_fail(c ? c->ctx : NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_seq_fork: null argument");
    pkv_sequence *p = pkv_find_seq(c, parent);
    if (!p) return pkv_fail(c->ctx, PKV_ERR_UNKNOWN_SEQUENCE, "pkv_seq_fork: sequence %u does not exist", parent);
    const uint32_t H = c->g.H, NL = c->cfg.n_layers;
    for (uint32_t l = 0; l < NL; l++)
        if (p->layers[l].window_slot) pkv_pool_want(c, l, 0, 0, H);
    pkv_status st = pkv_pool_ensure(c);
    if (st != PKV_OK) return st;
    pkv_sequence *s = NULL;
    pkv_seq id;
    const pkv_seq next_id = c->next_id; /* restored on failure: a failed fork uses up no id */
    if ((st = pkv_next_seq_id(c, &id)) != PKV_OK || (st = pkv_seq_insert(c, id, &s)) != PKV_OK) return st;
    pkv_backend *be = c->ctx->be;
    for (uint32_t l = 0; l < NL && st == PKV_OK; l++) {
        const pkv_layer_state *P = &p->layers[l];
        pkv_layer_state *L = &s->layers[l];
        L->n_blocks = L->cap_blocks = P->n_blocks;
        L->n_window = P->n_window;
        L->bank_count = P->bank_count;
        L->blocks = dup_array(P->blocks, (size_t)P->n_blocks * H);
        L->chunks = dup_array(P->chunks, P->chunks ? (size_t)H * PKV_MAX_CHUNKS : 0);
        if ((P->n_blocks && !L->blocks) || (P->chunks && !L->chunks)) {
            free(L->blocks);
            free(L->chunks);
            memset(L, 0, sizeof *L);
            st = pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
            break;
        }
        pkv_shard *sh = pkv_shard_of(c, l);
        for (uint32_t i = 0; i < L->n_blocks * H; i++) pkv_arena_retain(&sh->blocks, L->blocks[i]);
        if (L->chunks)
            for (uint32_t i = 0; i < H * PKV_MAX_CHUNKS; i++)
                if (L->chunks[i] != PKV_NO_SLOT) pkv_arena_retain(&sh->chunks, L->chunks[i]);
        if (P->window_slot) {
            L->window_slot = malloc(H * sizeof *L->window_slot);
            if (!L->window_slot) {
                st = pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
                break;
            }
            for (uint32_t h = 0; h < H; h++) L->window_slot[h] = PKV_NO_SLOT;
            for (uint32_t h = 0; h < H && st == PKV_OK; h++) {
                L->window_slot[h] = pkv_arena_take(&sh->windows);
                st = be->iface->buf_copy(be, sh->windows.buf, (size_t)L->window_slot[h] * c->g.window_bytes,
                                         sh->windows.buf, (size_t)P->window_slot[h] * c->g.window_bytes,
                                         c->g.window_bytes);
            }
        }
    }
    if (st != PKV_OK) {
        seq_remove(c, s);
        seq_destroy(c, s);
        c->next_id = next_id;
        return st;
    }
    *child = s->id;
    return PKV_OK;
}

pkv_status pkv_seq_length(const pkv_cache *c, pkv_seq id, uint32_t layer, uint32_t *n)
{
    if (!c || !n) return pkv_fail(c ? c->ctx : NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_seq_length: null argument");
    pkv_sequence *s = pkv_find_seq(c, id);
    if (!s) return pkv_fail(c->ctx, PKV_ERR_UNKNOWN_SEQUENCE, "sequence %u does not exist", id);
    if (layer >= c->cfg.n_layers)
        return pkv_fail(c->ctx, PKV_ERR_LAYER_RANGE, "layer %u out of range (n_layers = %u)", layer, c->cfg.n_layers);
    const pkv_layer_state *L = &s->layers[layer];
    *n = L->n_blocks * c->g.G + L->n_window;
    return PKV_OK;
}
