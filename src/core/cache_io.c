#define _POSIX_C_SOURCE 200809L
/* Saving and loading a cache. Format (little-endian), version 3 (docs/FORMAT.md; versions 1 and 2
 * load too):
 *   header  : "PKVCACHE", u32 version, 17 x u32/u64 config and geometry fields, u32 n_seqs,
 *             u32 n_blocks, u32 n_chunks, u32 n_windows, u32 kmeans_sample (version >= 2), u32
 *             quantizer (version 3), u32 crc32 of the header bytes before it
 *   seqs    : per sequence u32 id, per layer u32 n_blocks, n_window, bank_count, then blocks[n_blocks*H],
 *             chunks[H*8] (PATTERN mode only), windows[H] as file indices (0xFFFFFFFF = none); u32 crc32
 *   arenas  : blocks, chunks, windows: n * slot bytes each, each followed by its u32 crc32
 * Slots are renumbered densely in the file (shard after shard); shared slots are stored once. A
 * loaded slot goes to the shard of the layers that reference it (place_slots).
 *
 * A cache file is input from disk: pkv_cache_load checks every field against the configuration and
 * against the other fields before anything is stored on the device, so that a file with correct
 * checksums cannot make any backend read or write out of bounds (load_check below): sequence ids
 * below PKV_SEQ_ID_LIMIT and distinct; lengths within the window and the 2^30-token limit; every slot
 * index below its arena's count; every stored slot referenced (the reference counts are the counted
 * references); a window slot owned by one layer of one sequence; a layer's window and bank tables
 * either all set or all empty, bank chunks exactly those of its bank_count; and in PATTERN mode every
 * K and V pattern index of every block below the bank size of each layer that references it (so a
 * block needs a bank). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "crc32.h"
#include "internal.h"

/* 2 adds kmeans_sample to the header (version 1 files load with kmeans_sample 0), 3 the quantizer
 * (versions 1 and 2 load with MINMAX, the only one they could hold) */
#define FORMAT_VERSION 3u

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
    int oom;
} wbuf;

static void put(wbuf *w, const void *src, size_t n)
{
    if (w->oom) return;
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->n + n) cap *= 2;
        uint8_t *np = realloc(w->p, cap);
        if (!np) {
            w->oom = 1;
            return;
        }
        w->p = np;
        w->cap = cap;
    }
    memcpy(w->p + w->n, src, n);
    w->n += n;
}
static void put32(wbuf *w, uint32_t v) { uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)}; put(w, b, 4); }
static void put64(wbuf *w, uint64_t v) { put32(w, (uint32_t)v), put32(w, (uint32_t)(v >> 32)); }
static void put_crc(wbuf *w, size_t from) { put32(w, w->oom ? 0 : pkv_crc32(0, w->p + from, w->n - from)); }

typedef struct rbuf {
    const uint8_t *p;
    size_t n, pos;
    int bad;
} rbuf;

static uint32_t get32(rbuf *r)
{
    if (r->pos + 4 > r->n) {
        r->bad = 1;
        return 0;
    }
    const uint8_t *b = r->p + r->pos;
    r->pos += 4;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static uint64_t get64(rbuf *r) { uint64_t lo = get32(r); return lo | (uint64_t)get32(r) << 32; }
static int check_crc(rbuf *r, size_t from)
{
    if (r->bad || r->pos > r->n) return 0;
    uint32_t want = pkv_crc32(0, r->p + from, r->pos - from);
    return get32(r) == want && !r->bad;
}

static void put_config(wbuf *w, const pkv_cache *c)
{
    const pkv_cache_config *k = &c->cfg;
    uint32_t tol;
    memcpy(&tol, &k->kmeans_tol, 4);
    uint32_t f[] = {k->n_layers, k->n_kv_heads, k->head_dim, k->k_bits, k->v_bits, k->group_size, k->window,
                    k->n_patterns, k->bank_capacity, (uint32_t)k->mode, k->kmeans_iters, tol,
                    c->g.block_bytes, c->g.chunk_bytes, c->g.window_bytes};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) put32(w, f[i]);
    put64(w, k->seed);
    put64(w, k->memory_budget);
}

static pkv_arena *arena_of(pkv_shard *sh, int kind) { return kind == 0 ? &sh->blocks : kind == 1 ? &sh->chunks : &sh->windows; }

/* Dense file index of every used slot of one kind, shard after shard: map[at[i] + slot] for a slot of
 * shard i (at: [n_shards]). */
typedef struct slot_index {
    uint32_t *map;
    size_t *at;
} slot_index;

static int index_slots(const pkv_cache *c, int kind, slot_index *x)
{
    size_t total = 1;
    for (uint32_t i = 0; i < c->n_shards; i++) total += arena_of(&c->shards[i], kind)->capacity;
    x->map = malloc(total * sizeof *x->map);
    x->at = malloc(c->n_shards * sizeof *x->at);
    if (!x->map || !x->at) return 0;
    uint32_t n = 0;
    size_t at = 0;
    for (uint32_t i = 0; i < c->n_shards; i++) {
        const pkv_arena *a = arena_of(&c->shards[i], kind);
        x->at[i] = at;
        for (uint32_t s = 0; s < a->capacity; s++) x->map[at + s] = a->refcount[s] ? n++ : PKV_NO_SLOT;
        at += a->capacity;
    }
    return 1;
}

static uint32_t mapped(const pkv_cache *c, const slot_index *x, uint32_t layer, uint32_t slot)
{
    return slot == PKV_NO_SLOT ? PKV_NO_SLOT : x->map[x->at[layer / c->shard_layers] + slot];
}

/* used: per slot (indexed as in slot_index), the rows (window: tokens; chunk: patterns) in use; the
 * rest is written as zeros, so that the file depends only on the cache's contents (not on rows a
 * failed call, or an attention with its own K/V, left past a window's end, nor a pattern a failed
 * flush left past a bank's end). */
static pkv_status put_arena(wbuf *w, const pkv_cache *c, int kind, const uint32_t *used, uint32_t rows)
{
    const uint32_t slot_bytes = arena_of(&c->shards[0], kind)->slot_bytes;
    uint8_t *tmp = malloc(slot_bytes);
    if (!tmp) return pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_cache_save: out of host memory");
    size_t from = w->n, at = 0;
    pkv_status st = PKV_OK;
    const size_t row = (size_t)c->g.d * 2;
    for (uint32_t i = 0; i < c->n_shards && st == PKV_OK; i++) {
        const pkv_arena *a = arena_of(&c->shards[i], kind);
        for (uint32_t s = 0; s < a->capacity && st == PKV_OK; s++) {
            if (!a->refcount[s]) continue;
            st = c->ctx->be->iface->buf_read(c->ctx->be, a->buf, (size_t)s * slot_bytes, tmp, slot_bytes);
            if (used)
                for (uint32_t kv = 0; kv < 2; kv++)
                    memset(tmp + (kv * (size_t)rows + used[at + s]) * row, 0, (rows - used[at + s]) * row);
            put(w, tmp, slot_bytes);
        }
        at += a->capacity;
    }
    free(tmp);
    put_crc(w, from);
    return st;
}

static pkv_status write_file(const pkv_cache *c, const char *path, const wbuf *w)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return pkv_fail(c->ctx, PKV_ERR_IO, "pkv_cache_save: cannot create %s", tmp);
    int ok = fwrite(w->p, 1, w->n, f) == w->n;
    ok = (fflush(f) == 0) && ok;
    ok = (fsync(fileno(f)) == 0) && ok;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return pkv_fail(c->ctx, PKV_ERR_IO, "pkv_cache_save: cannot write %s", path);
    }
    return PKV_OK;
}

pkv_status pkv_cache_save(const pkv_cache *c, const char *path)
{
    PKV_ALLOC_SCOPE(PKV_CACHE_ALLOC(c));
    if (!c || !path) return pkv_fail(c ? c->ctx : NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_cache_save: null argument");
    if (c->cfg.k_assign != PKV_K_ASSIGN_MINMAX) /* the file format has no field for it */
        return pkv_fail(c->ctx, PKV_ERR_UNSUPPORTED, "pkv_cache_save: the file format does not record k_assign %s yet",
                        pkv_k_assign_name((pkv_k_assign)c->cfg.k_assign));
    if (c->cfg.mining != PKV_MINING_AT_M) /* nor the mining policy: a loaded cache mines at M */
        return pkv_fail(c->ctx, PKV_ERR_UNSUPPORTED, "pkv_cache_save: the file format does not record mining %s yet",
                        pkv_mining_name((pkv_mining)c->cfg.mining));
    const uint32_t H = c->g.H;
    slot_index x[3] = {{NULL, NULL}, {NULL, NULL}, {NULL, NULL}};
    uint32_t used[3] = {0, 0, 0};
    size_t slots[3] = {1, 1, 1};
    for (uint32_t i = 0; i < c->n_shards; i++)
        for (int k = 0; k < 3; k++) {
            used[k] += arena_of(&c->shards[i], k)->used;
            slots[k] += arena_of(&c->shards[i], k)->capacity;
        }
    int ok = index_slots(c, 0, &x[0]) & index_slots(c, 1, &x[1]) & index_slots(c, 2, &x[2]);
    uint32_t *wlen = calloc(slots[2], sizeof *wlen), *clen = calloc(slots[1], sizeof *clen);
    wbuf w = {0};
    pkv_status st = PKV_OK;
    if (!ok || !wlen || !clen) {
        st = pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_cache_save: out of host memory");
        goto done;
    }
    put(&w, "PKVCACHE", 8);
    put32(&w, FORMAT_VERSION);
    put_config(&w, c);
    put32(&w, c->n_seqs);
    for (int k = 0; k < 3; k++) put32(&w, used[k]);
    put32(&w, c->cfg.kmeans_sample);
    put32(&w, c->cfg.quantizer);
    put_crc(&w, 0);
    size_t from = w.n;
    for (uint32_t s = 0; s < c->n_seqs; s++) {
        const pkv_sequence *sq = c->seqs[s];
        put32(&w, sq->id);
        for (uint32_t l = 0; l < c->cfg.n_layers; l++) {
            const pkv_layer_state *L = &sq->layers[l];
            put32(&w, L->n_blocks);
            put32(&w, L->n_window);
            put32(&w, L->bank_count);
            for (uint32_t i = 0; i < L->n_blocks * H; i++) put32(&w, mapped(c, &x[0], l, L->blocks[i]));
            if (c->g.mode == PKV_MODE_PATTERN)
                for (uint32_t i = 0; i < H * PKV_MAX_CHUNKS; i++) put32(&w, L->chunks ? mapped(c, &x[1], l, L->chunks[i]) : PKV_NO_SLOT);
            for (uint32_t h = 0; h < H; h++) put32(&w, L->window_slot ? mapped(c, &x[2], l, L->window_slot[h]) : PKV_NO_SLOT);
        }
    }
    put_crc(&w, from);
    for (uint32_t s = 0; s < c->n_seqs; s++)
        for (uint32_t l = 0; l < c->cfg.n_layers; l++) {
            const pkv_layer_state *L = &c->seqs[s]->layers[l];
            const pkv_shard *sh = pkv_shard_of(c, l);
            const size_t wat = x[2].at[l / c->shard_layers], cat = x[1].at[l / c->shard_layers];
            if (L->window_slot)
                for (uint32_t h = 0; h < H; h++)
                    if (L->window_slot[h] < sh->windows.capacity) wlen[wat + L->window_slot[h]] = L->n_window;
            if (L->chunks)
                for (uint32_t i = 0; i < H * PKV_MAX_CHUNKS; i++) {
                    const uint32_t slot = L->chunks[i], ci = i % PKV_MAX_CHUNKS;
                    if (slot >= sh->chunks.capacity || L->bank_count <= ci * PKV_CHUNK_PATTERNS) continue;
                    uint32_t n = L->bank_count - ci * PKV_CHUNK_PATTERNS;
                    n = n > PKV_CHUNK_PATTERNS ? PKV_CHUNK_PATTERNS : n;
                    if (n > clen[cat + slot]) clen[cat + slot] = n;
                }
        }
    if ((st = put_arena(&w, c, 0, NULL, 0)) == PKV_OK &&
        (st = put_arena(&w, c, 1, c->g.mode == PKV_MODE_PATTERN ? clen : NULL, PKV_CHUNK_PATTERNS)) == PKV_OK)
        st = put_arena(&w, c, 2, wlen, c->g.R);
    if (st == PKV_OK && w.oom) st = pkv_fail(c->ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_cache_save: out of host memory");
    if (st == PKV_OK) st = write_file(c, path, &w);
done:
    for (int k = 0; k < 3; k++) free(x[k].map), free(x[k].at);
    free(wlen), free(clen), free(w.p);
    return st;
}

#define CORRUPT(...) do { st = pkv_fail(ctx, PKV_ERR_CORRUPT_FILE, __VA_ARGS__); goto fail; } while (0)
#define OOM() do { st = pkv_fail(ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_cache_load: out of host memory"); goto fail; } while (0)

/* Reads one slot list, checking every index against its arena's count and counting references.
 * Returns 1, 0 for a damaged list or -1 when out of host memory. */
static int read_slots(rbuf *r, uint32_t n, uint32_t limit, uint32_t **out, uint32_t *refs, int allow_none)
{
    if ((uint64_t)n * 4 > r->n - (r->pos < r->n ? r->pos : r->n)) return 0; /* longer than the file */
    uint32_t *v = malloc(((size_t)n + 1) * sizeof *v);
    if (!v) return -1;
    for (uint32_t i = 0; i < n; i++) {
        v[i] = get32(r);
        if (v[i] == PKV_NO_SLOT && allow_none) continue;
        if (r->bad || v[i] >= limit) {
            free(v);
            return 0;
        }
        refs[v[i]]++;
    }
    *out = v;
    return 1;
}

/* A table of H entries per head that is either all set or all PKV_NO_SLOT (freed to NULL). */
static int all_or_none(uint32_t **table, uint32_t H, uint32_t stride, uint32_t used)
{
    uint32_t set = 0;
    for (uint32_t h = 0; h < H; h++)
        for (uint32_t i = 0; i < stride; i++) {
            uint32_t v = (*table)[h * stride + i];
            if (i < used) set += v != PKV_NO_SLOT;
            else if (v != PKV_NO_SLOT) return 0; /* a chunk past the bank's patterns */
        }
    if (set == 0 && used) {
        free(*table);
        *table = NULL;
        return 1;
    }
    return set == H * used;
}

/* Every K and V pattern index of the layer's blocks below its bank size (PATTERN mode). `blocks`: the
 * file's block arena, already bounds-checked. */
static int indices_in_bank(const pkv_geom *g, const pkv_layer_state *L, const uint8_t *blocks)
{
    for (size_t i = 0; i < (size_t)L->n_blocks * g->H; i++) {
        const uint8_t *blk = blocks + (size_t)L->blocks[i] * g->block_bytes;
        for (uint32_t t = 0; t < g->G; t++)
            if (blk[g->off_kidx + t] >= L->bank_count || blk[g->off_vidx + t] >= L->bank_count) return 0;
    }
    return 1;
}

static pkv_status load_bytes(pkv_context *ctx, const char *path, uint8_t **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return pkv_fail(ctx, PKV_ERR_IO, "pkv_cache_load: cannot open %s", path);
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < 0) {
        fclose(f);
        return pkv_fail(ctx, PKV_ERR_IO, "pkv_cache_load: %s is not a regular file", path);
    }
    const size_t n = (size_t)sb.st_size;
    uint8_t *p = malloc(n + 1);
    if (!p) {
        fclose(f);
        return pkv_fail(ctx, PKV_ERR_OUT_OF_HOST_MEMORY, "pkv_cache_load: out of host memory (%zu bytes for %s)", n + 1, path);
    }
    size_t got = fread(p, 1, n, f);
    int err = ferror(f);
    fclose(f);
    if (got != n || err) {
        free(p);
        return pkv_fail(ctx, PKV_ERR_IO, "pkv_cache_load: cannot read %s (%zu of %zu bytes)", path, got, n);
    }
    *data = p;
    *size = n;
    return PKV_OK;
}

/* Where a loaded file's slots go: each to the shard of the layers that reference it, numbered in file
 * order within its shard (so a file saved by this library loads back slot for slot); the sequences'
 * tables are renumbered from file indices to those slots. A slot referenced from layers of two
 * shards (which this library never writes) sets `conflict`. */
typedef struct slot_place {
    uint32_t *owner[3], *local[3]; /* per file slot: its shard, its slot there */
    uint32_t *per_shard[3];        /* [n_shards]: slots of each shard */
    int conflict;
} slot_place;

static void claim(uint32_t *owner, const uint32_t *table, size_t n, uint32_t shard, int *conflict)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i] == PKV_NO_SLOT) continue;
        if (owner[table[i]] == PKV_NO_SLOT) owner[table[i]] = shard;
        else if (owner[table[i]] != shard) *conflict = 1;
    }
}

static void renumber(const uint32_t *local, uint32_t *table, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (table[i] != PKV_NO_SLOT) table[i] = local[table[i]];
}

/* `place` is one zeroed allocation with room after the struct for the arrays. */
static void place_slots(pkv_cache *c, const uint32_t counts[3], slot_place *place)
{
    const uint32_t H = c->g.H;
    uint32_t *next = (uint32_t *)(place + 1);
    for (int a = 0; a < 3; a++) {
        place->owner[a] = next, next += counts[a] + 1;
        place->local[a] = next, next += counts[a] + 1;
        place->per_shard[a] = next, next += c->n_shards;
        for (uint32_t i = 0; i < counts[a]; i++) place->owner[a][i] = PKV_NO_SLOT;
    }
    for (uint32_t s = 0; s < c->n_seqs; s++)
        for (uint32_t l = 0; l < c->cfg.n_layers; l++) {
            const pkv_layer_state *L = &c->seqs[s]->layers[l];
            const uint32_t sh = l / c->shard_layers;
            if (L->blocks) claim(place->owner[0], L->blocks, (size_t)L->n_blocks * H, sh, &place->conflict);
            if (L->chunks) claim(place->owner[1], L->chunks, (size_t)H * PKV_MAX_CHUNKS, sh, &place->conflict);
            if (L->window_slot) claim(place->owner[2], L->window_slot, H, sh, &place->conflict);
        }
    if (place->conflict) return;
    for (int a = 0; a < 3; a++) /* every file slot is referenced (checked before) */
        for (uint32_t i = 0; i < counts[a]; i++) place->local[a][i] = place->per_shard[a][place->owner[a][i]]++;
    for (uint32_t s = 0; s < c->n_seqs; s++)
        for (uint32_t l = 0; l < c->cfg.n_layers; l++) {
            pkv_layer_state *L = &c->seqs[s]->layers[l];
            if (L->blocks) renumber(place->local[0], L->blocks, (size_t)L->n_blocks * H);
            if (L->chunks) renumber(place->local[1], L->chunks, (size_t)H * PKV_MAX_CHUNKS);
            if (L->window_slot) renumber(place->local[2], L->window_slot, H);
        }
}

pkv_status pkv_cache_load(pkv_context *ctx, const char *path, pkv_cache **out)
{
    PKV_ALLOC_SCOPE(PKV_CTX_ALLOC(ctx));
    if (!ctx || !path || !out) return pkv_fail(ctx, PKV_ERR_INVALID_ARGUMENT, "pkv_cache_load: null argument");
    *out = NULL;
    uint8_t *data = NULL;
    size_t size = 0;
    pkv_status st = load_bytes(ctx, path, &data, &size);
    if (st != PKV_OK) return st;
    pkv_cache *c = NULL;
    uint32_t *refs[3] = {NULL, NULL, NULL};
    slot_place *place = NULL;
    rbuf r = {data, size, 0, 0};
    if (size < 8 || memcmp(data, "PKVCACHE", 8) != 0) CORRUPT("%s is not a PatternKV cache file", path);
    r.pos = 8;
    uint32_t version = get32(&r);
    if (version < 1 || version > FORMAT_VERSION)
        CORRUPT("%s has format version %u; this library reads 1 to %u", path, version, FORMAT_VERSION);
    pkv_cache_config cfg = pkv_cache_config_default();
    uint32_t f[15];
    for (int i = 0; i < 15; i++) f[i] = get32(&r);
    cfg.n_layers = f[0], cfg.n_kv_heads = f[1], cfg.head_dim = f[2], cfg.k_bits = f[3], cfg.v_bits = f[4];
    cfg.group_size = f[5], cfg.window = f[6], cfg.n_patterns = f[7], cfg.bank_capacity = f[8];
    cfg.mode = (pkv_mode)f[9], cfg.kmeans_iters = f[10];
    memcpy(&cfg.kmeans_tol, &f[11], 4);
    cfg.seed = get64(&r);
    cfg.memory_budget = get64(&r);
    uint32_t n_seqs = get32(&r), counts[3] = {get32(&r), get32(&r), get32(&r)};
    cfg.kmeans_sample = version >= 2 ? get32(&r) : 0; /* version 1: k-means over all tokens */
    cfg.quantizer = version >= 3 ? get32(&r) : PKV_QUANTIZER_MINMAX;
    if (!check_crc(&r, 0)) CORRUPT("%s: header is truncated or damaged (checksum mismatch)", path);
    if (pkv_validate_config(&cfg) != PKV_OK) CORRUPT("%s: stored configuration is invalid: %s", path, pkv_last_error());
    cfg.quantizer = pkv_quantizer_resolve(cfg.mode, cfg.quantizer); /* files hold resolved ones; a crafted AUTO */
    if ((st = pkv_cache_new(ctx, &cfg, &c)) != PKV_OK) goto fail;
    if (c->g.block_bytes != f[12] || c->g.chunk_bytes != f[13] || c->g.window_bytes != f[14])
        CORRUPT("%s: block layout differs from this library's", path);
    uint64_t data_bytes = (uint64_t)counts[0] * c->g.block_bytes + (uint64_t)counts[1] * c->g.chunk_bytes +
                          (uint64_t)counts[2] * c->g.window_bytes;
    if (data_bytes > size) CORRUPT("%s is truncated", path);
    for (int a = 0; a < 3; a++)
        if (!(refs[a] = calloc((size_t)counts[a] + 1, sizeof(uint32_t)))) OOM();
    const uint32_t H = c->g.H;
    size_t from = r.pos;
    for (uint32_t s = 0; s < n_seqs; s++) {
        pkv_seq id = get32(&r);
        pkv_sequence *sq;
        if (r.bad || pkv_find_seq(c, id)) CORRUPT("%s: sequence table is damaged", path);
        if (id >= PKV_SEQ_ID_LIMIT) CORRUPT("%s: sequence id %u is not below %u", path, id, PKV_SEQ_ID_LIMIT);
        if ((st = pkv_seq_insert(c, id, &sq)) != PKV_OK) goto fail;
        for (uint32_t l = 0; l < cfg.n_layers; l++) {
            pkv_layer_state *L = &sq->layers[l];
            L->n_blocks = L->cap_blocks = get32(&r);
            L->n_window = get32(&r);
            L->bank_count = get32(&r);
            if (r.bad || L->n_blocks > counts[0] || L->n_window >= c->g.R || L->bank_count > cfg.bank_capacity ||
                (cfg.mode != PKV_MODE_PATTERN && L->bank_count) ||
                (uint64_t)L->n_blocks * c->g.G + L->n_window > (1u << 30)) {
                L->n_blocks = 0;
                CORRUPT("%s: sequence %u layer %u is damaged", path, id, l);
            }
            int ok = read_slots(&r, L->n_blocks * H, counts[0], &L->blocks, refs[0], 0);
            if (ok < 0) OOM();
            if (!ok) {
                L->n_blocks = 0;
                CORRUPT("%s: block table damaged", path);
            }
            if (cfg.mode == PKV_MODE_PATTERN) {
                if ((ok = read_slots(&r, H * PKV_MAX_CHUNKS, counts[1], &L->chunks, refs[1], 1)) < 0) OOM();
                const uint32_t used = (L->bank_count + PKV_CHUNK_PATTERNS - 1) / PKV_CHUNK_PATTERNS;
                if (!ok || !all_or_none(&L->chunks, H, PKV_MAX_CHUNKS, used) || (L->bank_count && !L->chunks))
                    CORRUPT("%s: bank table of sequence %u layer %u damaged", path, id, l);
                if (L->n_blocks && !L->bank_count)
                    CORRUPT("%s: sequence %u layer %u has PATTERN blocks but no bank", path, id, l);
            }
            if ((ok = read_slots(&r, H, counts[2], &L->window_slot, refs[2], 1)) < 0) OOM();
            if (!ok || !all_or_none(&L->window_slot, H, 1, 1) || (L->n_window && !L->window_slot))
                CORRUPT("%s: window table of sequence %u layer %u damaged", path, id, l);
        }
    }
    if (!check_crc(&r, from)) CORRUPT("%s: sequence table is truncated or damaged (checksum mismatch)", path);
    for (int a = 0; a < 3; a++)
        for (uint32_t i = 0; i < counts[a]; i++) {
            if (!refs[a][i]) CORRUPT("%s: unreferenced storage slot", path);
            if (a == 2 && refs[a][i] != 1) CORRUPT("%s: window slot %u is shared by %u layers or sequences", path, i, refs[a][i]);
        }
    /* the arenas: bounds and checksums, then the blocks' pattern indices, before anything is stored */
    size_t at[3];
    for (int a = 0; a < 3; a++) {
        const uint32_t slot_bytes = a == 0 ? c->g.block_bytes : a == 1 ? c->g.chunk_bytes : c->g.window_bytes;
        size_t bytes = (size_t)counts[a] * slot_bytes;
        if (r.pos + bytes + 4 > size) CORRUPT("%s is truncated", path);
        at[a] = r.pos;
        r.pos += bytes;
        if (!check_crc(&r, at[a])) CORRUPT("%s: stored data is damaged (checksum mismatch)", path);
    }
    if (r.pos != size) CORRUPT("%s has trailing bytes", path);
    if (cfg.mode == PKV_MODE_PATTERN)
        for (uint32_t s = 0; s < c->n_seqs; s++)
            for (uint32_t l = 0; l < cfg.n_layers; l++)
                if (!indices_in_bank(&c->g, &c->seqs[s]->layers[l], data + at[0]))
                    CORRUPT("%s: sequence %u layer %u has a pattern index beyond its bank of %u patterns", path,
                            c->seqs[s]->id, l, c->seqs[s]->layers[l].bank_count);
    if (!(place = calloc(1, sizeof *place + ((size_t)counts[0] + counts[1] + counts[2] + 3) * 2 * sizeof(uint32_t) +
                                3 * (size_t)c->n_shards * sizeof(uint32_t))))
        OOM();
    place_slots(c, counts, place);
    if (place->conflict) CORRUPT("%s: a stored slot is referenced by layers of two shards (docs/FORMAT.md \"The pool\")", path);
    for (uint32_t i = 0; i < c->n_shards; i++)
        pkv_pool_want(c, i * c->shard_layers, place->per_shard[0][i], place->per_shard[1][i], place->per_shard[2][i]);
    if ((st = pkv_pool_ensure(c)) != PKV_OK) goto fail;
    for (int a = 0; a < 3; a++) {
        const uint32_t slot_bytes = arena_of(&c->shards[0], a)->slot_bytes;
        for (uint32_t i = 0, j; i < counts[a]; i = j) { /* runs of file slots that go to consecutive slots of one shard */
            pkv_arena *ar = arena_of(&c->shards[place->owner[a][i]], a);
            for (j = i + 1; j < counts[a] && place->owner[a][j] == place->owner[a][i]; j++) {}
            if ((st = ctx->be->iface->buf_write(ctx->be, ar->buf, (size_t)place->local[a][i] * slot_bytes,
                                                data + at[a] + (size_t)i * slot_bytes, (size_t)(j - i) * slot_bytes)) != PKV_OK)
                goto fail;
        }
        for (uint32_t i = 0; i < counts[a]; i++) arena_of(&c->shards[place->owner[a][i]], a)->refcount[place->local[a][i]] = refs[a][i];
        for (uint32_t i = 0; i < c->n_shards; i++) {
            pkv_arena *ar = arena_of(&c->shards[i], a);
            ar->used = ar->next_free_hint = place->per_shard[a][i];
        }
    }
    free(place);
    for (int a = 0; a < 3; a++) free(refs[a]);
    free(data);
    *out = c;
    return PKV_OK;
fail:
    for (int a = 0; a < 3; a++) free(refs[a]);
    free(place);
    free(data);
    pkv_cache_free(c);
    return st;
}
