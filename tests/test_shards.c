/* A cache whose pool is split into shards (docs/FORMAT.md "The pool": layers share a buffer per arena
 * only as far as the device's largest buffer allows; PKV_MAX_BUFFER_BYTES lowers that limit, as here)
 * behaves exactly as a cache of one buffer per arena, on the backend PKV_TEST_BACKEND names: multi-layer
 * and one-layer appends (mining, window writes, flushes), forks (shared blocks, copied bank chunks),
 * attention with and without the queries' own K/V, statistics, the budget, save and load in every
 * combination (a sharded cache's file loads into an unsharded cache and back, slot for slot). A layer
 * whose slots outgrow the buffer limit fails with PKV_ERR_OUT_OF_DEVICE_MEMORY and changes nothing. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

enum { L = 4, H = 2, D = 64, G = 32, T = 400, QH = 4 };

static pkv_cache_config config(uint64_t budget)
{
    pkv_cache_config cfg = tu_config(L, H, D, 2, G, PKV_MODE_PATTERN);
    cfg.n_patterns = 8;
    cfg.kmeans_iters = 8;
    cfg.memory_budget = budget;
    return cfg;
}

/* A cache created with the buffer limit `limit` (NULL: the device's own). */
static pkv_cache *create(pkv_context *ctx, const pkv_cache_config *cfg, const char *limit)
{
    if (limit) setenv("PKV_MAX_BUFFER_BYTES", limit, 1);
    pkv_cache *c = NULL;
    TU_OK(pkv_cache_create(ctx, cfg, &c));
    unsetenv("PKV_MAX_BUFFER_BYTES");
    return c;
}

static pkv_cache *load(pkv_context *ctx, const char *path, const char *limit)
{
    if (limit) setenv("PKV_MAX_BUFFER_BYTES", limit, 1);
    pkv_cache *c = NULL;
    TU_OK(pkv_cache_load(ctx, path, &c));
    unsetenv("PKV_MAX_BUFFER_BYTES");
    return c;
}

static const float *at(const float *x, uint32_t l, uint32_t t) { return x + ((size_t)l * T + t) * H * D; }

/* Tokens [t0, t0 + n) of every layer, in one call or per layer; the status of the (first failing) call. */
static pkv_status append(pkv_cache *c, pkv_seq s, const float *k, const float *v, uint32_t t0, uint32_t n, int per_layer)
{
    if (per_layer) {
        for (uint32_t l = 0; l < L; l++) {
            pkv_status st = pkv_append(c, s, l, n, at(k, l, t0), at(v, l, t0), PKV_F32);
            if (st != PKV_OK) return st;
        }
        return PKV_OK;
    }
    const void *kp[L], *vp[L];
    for (uint32_t l = 0; l < L; l++) kp[l] = at(k, l, t0), vp[l] = at(v, l, t0);
    pkv_append_params p = pkv_append_params_default();
    p.seq = s;
    p.n_tokens = n;
    return pkv_append_layers(c, &p, kp, vp);
}

/* Every layer of every sequence (same ids) reads back the same; the same statistics. */
static void expect_same(pkv_cache *a, pkv_cache *b)
{
    assert_int_equal(a->n_seqs, b->n_seqs);
    for (uint32_t i = 0; i < a->n_seqs; i++) {
        const pkv_seq s = a->seqs[i]->id;
        for (uint32_t l = 0; l < L; l++) {
            uint32_t na, nb;
            TU_OK(pkv_seq_length(a, s, l, &na));
            TU_OK(pkv_seq_length(b, s, l, &nb));
            assert_int_equal(na, nb);
            const size_t bytes = (size_t)na * H * D * sizeof(float) + 4;
            float *ka = malloc(bytes), *va = malloc(bytes), *kb = malloc(bytes), *vb = malloc(bytes);
            TU_OK(pkv_read_kv(a, s, l, ka, va));
            TU_OK(pkv_read_kv(b, s, l, kb, vb));
            assert_memory_equal(ka, kb, bytes - 4);
            assert_memory_equal(va, vb, bytes - 4);
            free(ka), free(va), free(kb), free(vb);
        }
    }
    pkv_cache_stats sa = {.struct_size = sizeof sa}, sb = {.struct_size = sizeof sb};
    TU_OK(pkv_cache_stats_get(a, &sa));
    TU_OK(pkv_cache_stats_get(b, &sb));
    assert_int_equal(sa.bytes_reserved, sb.bytes_reserved);
    assert_int_equal(sa.blocks_used, sb.blocks_used);
    assert_int_equal(sa.blocks_shared, sb.blocks_shared);
    assert_int_equal(sa.bytes_patterns, sb.bytes_patterns);
    assert_int_equal(sa.bytes_window, sb.bytes_window);
}

/* Attention of every layer over all sequences, then with the queries' own K/V: the same out, bit for bit. */
static void expect_same_attention(pkv_cache *a, pkv_cache *b)
{
    tu_rng r = {99};
    const uint32_t n = a->n_seqs;
    pkv_seq seqs[8];
    for (uint32_t i = 0; i < n; i++) seqs[i] = a->seqs[i]->id;
    const size_t q_n = (size_t)n * QH * D, kv_n = (size_t)n * H * D;
    float *q = malloc(q_n * sizeof *q), *oa = malloc(q_n * sizeof *oa), *ob = malloc(q_n * sizeof *ob);
    float *kn = malloc(kv_n * sizeof *kn), *vn = malloc(kv_n * sizeof *vn);
    tu_random(&r, q_n, 1.0f, q);
    tu_random(&r, kv_n, 1.0f, kn);
    tu_random(&r, kv_n, 1.0f, vn);
    for (uint32_t own = 0; own < 2; own++)
        for (uint32_t l = 0; l < L; l++) {
            pkv_attention_params p = pkv_attention_params_default();
            p.seqs = seqs, p.n_seqs = n, p.layer = l, p.n_q_heads = QH;
            if (own) p.k_new = kn, p.v_new = vn;
            TU_OK(pkv_attention(a, &p, q, oa));
            TU_OK(pkv_attention(b, &p, q, ob));
            assert_memory_equal(oa, ob, q_n * sizeof *oa);
        }
    free(q), free(oa), free(ob), free(kn), free(vn);
}

static void save(pkv_cache *c, char *path, size_t len, const char *tag)
{
    snprintf(path, len, "/tmp/pkv_shards_%s_%d.pkv", tag, (int)getpid());
    TU_OK(pkv_cache_save(c, path));
}

/* The same calls on an unsharded cache and on one of `want` shards. */
static void run_case(const char *limit, uint32_t want)
{
    tu_rng r = {7};
    float *k = malloc((size_t)L * T * H * D * sizeof(float)), *v = malloc((size_t)L * T * H * D * sizeof(float));
    for (uint32_t l = 0; l < L; l++) tu_structured_kv(&r, T, H, D, 5, 0.3f, k + (size_t)l * T * H * D);
    tu_random(&r, (size_t)L * T * H * D, 1.2f, v);
    pkv_context *ctx = tu_context();
    const pkv_cache_config cfg = config(4u << 20);
    pkv_cache *a = create(ctx, &cfg, NULL), *b = create(ctx, &cfg, limit);
    assert_int_equal(a->n_shards, 1);
    assert_int_equal(b->n_shards, want);
    pkv_cache *both[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        pkv_cache *c = both[i];
        pkv_seq s, s2, child;
        TU_OK(pkv_seq_create(c, &s));
        TU_OK(append(c, s, k, v, 0, 150, 0)); /* mining, blocks, a window */
        for (uint32_t t = 150; t < 190; t++) TU_OK(append(c, s, k, v, t, 1, 0)); /* a flush */
        TU_OK(append(c, s, k, v, 190, 20, 1));
        TU_OK(pkv_seq_fork(c, s, &child));
        TU_OK(append(c, child, k, v, 210, 40, 1)); /* copies of shared bank chunks */
        TU_OK(pkv_seq_create(c, &s2));
        TU_OK(append(c, s2, k, v, 0, 5, 0)); /* late mining at M */
        TU_OK(append(c, s2, k, v, 5, 70, 1));
    }
    assert_true(b->shards[want - 1].blocks.buf != b->shards[0].blocks.buf);
    expect_same(a, b);
    expect_same_attention(a, b);

    char fa[64], fb[64], fc[64];
    save(a, fa, sizeof fa, "a");
    save(b, fb, sizeof fb, "b");
    pkv_cache *from_a = load(ctx, fa, limit), *from_b = load(ctx, fb, NULL), *again = load(ctx, fb, limit);
    assert_int_equal(from_a->n_shards, want);
    assert_int_equal(from_b->n_shards, 1);
    expect_same(a, from_a);
    expect_same(a, from_b);
    expect_same(a, again);
    expect_same_attention(a, from_a);
    expect_same_attention(a, from_b);
    save(again, fc, sizeof fc, "c"); /* a sharded cache's file loads back slot for slot */
    size_t nb, nc;
    uint8_t *xb = tu_slurp(fb, &nb), *xc = tu_slurp(fc, &nc);
    assert_int_equal(nb, nc);
    assert_memory_equal(xb, xc, nb);
    free(xb), free(xc);
    /* appends go on in the loaded caches as in the original */
    pkv_cache *go[3] = {a, from_a, from_b};
    for (int i = 0; i < 3; i++) TU_OK(append(go[i], a->seqs[0]->id, k, v, 210, 100, 0));
    expect_same(a, from_a);
    expect_same(a, from_b);
    remove(fa), remove(fb), remove(fc);
    TU_OK(pkv_cache_free(from_a));
    TU_OK(pkv_cache_free(from_b));
    TU_OK(pkv_cache_free(again));
    TU_OK(pkv_cache_free(a));
    TU_OK(pkv_cache_free(b));
    TU_OK(pkv_context_free(ctx));
    free(k), free(v);
}

/* Four shards of one layer (each a buffer per arena), then two of two layers (a multi-layer op splits
 * at the shard boundary). */
static void one_layer_per_shard(void **state)
{
    (void)state;
    run_case("262144", 4);
}

static void two_layers_per_shard(void **state)
{
    (void)state;
    run_case("2097152", 2);
}

/* The budget counts slots over all shards as over one buffer: appends fail with PKV_ERR_OUT_OF_BUDGET
 * at the same call, leaving the same cache. */
static void budget_counts_all_shards(void **state)
{
    (void)state;
    tu_rng r = {8};
    float *k = malloc((size_t)L * T * H * D * sizeof(float)), *v = malloc((size_t)L * T * H * D * sizeof(float));
    tu_random(&r, (size_t)L * T * H * D, 1.0f, k);
    tu_random(&r, (size_t)L * T * H * D, 1.0f, v);
    pkv_context *ctx = tu_context();
    const pkv_cache_config cfg = config(256u << 10);
    pkv_cache *a = create(ctx, &cfg, NULL), *b = create(ctx, &cfg, "98304");
    assert_int_equal(b->n_shards, 4);
    pkv_seq sa, sb;
    TU_OK(pkv_seq_create(a, &sa));
    TU_OK(pkv_seq_create(b, &sb));
    uint32_t t = 0;
    pkv_status st = PKV_OK;
    for (; t + 16 <= T && st == PKV_OK; t += 16) {
        st = append(a, sa, k, v, t, 16, 0);
        assert_int_equal(append(b, sb, k, v, t, 16, 0), st);
    }
    assert_int_equal(st, PKV_ERR_OUT_OF_BUDGET);
    expect_same(a, b);
    TU_OK(pkv_cache_free(a));
    TU_OK(pkv_cache_free(b));
    TU_OK(pkv_context_free(ctx));
    free(k), free(v);
}

/* A layer whose windows outgrow the buffer limit (16 KiB: two heads' windows of 8 KiB) fails with
 * PKV_ERR_OUT_OF_DEVICE_MEMORY; nothing changed, the first sequence still attends as before. */
static void a_layer_beyond_the_limit_fails_cleanly(void **state)
{
    (void)state;
    tu_rng r = {9};
    float *k = malloc((size_t)L * T * H * D * sizeof(float)), *v = malloc((size_t)L * T * H * D * sizeof(float));
    tu_random(&r, (size_t)L * T * H * D, 1.0f, k);
    tu_random(&r, (size_t)L * T * H * D, 1.0f, v);
    pkv_context *ctx = tu_context();
    const pkv_cache_config cfg = config(4u << 20);
    pkv_cache *a = create(ctx, &cfg, NULL), *b = create(ctx, &cfg, "16384");
    assert_int_equal(tu_geom(b)->window_bytes, 8192);
    pkv_seq sa, sb, s2, s3;
    TU_OK(pkv_seq_create(a, &sa));
    TU_OK(pkv_seq_create(b, &sb));
    TU_OK(append(a, sa, k, v, 0, 40, 0));
    TU_OK(append(b, sb, k, v, 0, 40, 0));
    TU_OK(pkv_seq_create(b, &s2));
    assert_int_equal(append(b, s2, k, v, 0, 3, 0), PKV_ERR_OUT_OF_DEVICE_MEMORY);
    assert_non_null(strstr(pkv_last_error(), "largest buffer"));
    assert_int_equal(pkv_seq_fork(b, sb, &s3), PKV_ERR_OUT_OF_DEVICE_MEMORY);
    TU_OK(pkv_seq_free(b, s2)); /* the empty second sequence */
    expect_same(a, b);
    expect_same_attention(a, b);
    TU_OK(pkv_cache_free(a));
    TU_OK(pkv_cache_free(b));
    TU_OK(pkv_context_free(ctx));
    free(k), free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_layer_per_shard),
        cmocka_unit_test(two_layers_per_shard),
        cmocka_unit_test(budget_counts_all_shards),
        cmocka_unit_test(a_layer_beyond_the_limit_fails_cleanly),
    };
    return tu_run_tests(tests, NULL, NULL);
}
