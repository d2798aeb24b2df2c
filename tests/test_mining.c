/* When a PATTERN sequence mines (pkv_cache_config.mining, README "Mining and chunked prefill"), on the
 * backend of PKV_TEST_BACKEND (the API suite: CPU, Vulkan, OpenCL):
 * - PKV_MINING_AT_M (default): a prompt appended in chunks whose first ones hold fewer than M tokens
 *   mines when the layer first holds >= M tokens, over all of them: the cache is byte for byte (its
 *   saved file) the one a single append of those tokens gives, through the decode steps after it;
 *   with layers at different window lengths in one pkv_append_layers call (one mine op per length);
 *   and from an empty sequence decoded one token at a time;
 * - attention over such a cache against the fp64 reference over its dequantized K/V;
 * - save and load of a cache before its late mining (the loaded cache mines as the original) and after;
 * - PKV_MINING_FIRST_APPEND (the paper's reference): a short first append never mines; its cache is
 *   refused by pkv_cache_save (the file format does not record the option); bad values refused.
 * Small shapes: lavapipe and PoCL run this in CI. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

enum { L = 2, H = 2, D = 32, G = 32, M = 8, N = 120, NQ = 4 };
#define TOK ((size_t)H * D)

static float *K, *V; /* [N][H][D], the same stream for every layer */

static int setup(void **state)
{
    (void)state;
    tu_rng r = {77};
    K = malloc(N * TOK * sizeof *K), V = malloc(N * TOK * sizeof *V);
    tu_structured_kv(&r, N, H, D, 5, 0.1f, K);
    tu_random(&r, N * TOK, 1.0f, V);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(K), free(V);
    return 0;
}

static pkv_cache *new_cache(pkv_context *ctx, pkv_mining mining)
{
    pkv_cache_config cfg = tu_config(L, H, D, 2, G, PKV_MODE_PATTERN);
    cfg.mining = mining;
    pkv_cache *c;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    return c;
}

/* Tokens [from, from + n) of the stream into every layer, in one call. */
static void append_all(pkv_cache *c, pkv_seq s, uint32_t from, uint32_t n)
{
    const void *k[L], *v[L];
    for (int l = 0; l < L; l++) k[l] = K + from * TOK, v[l] = V + from * TOK;
    pkv_append_params p = pkv_append_params_default();
    p.seq = s, p.n_tokens = n;
    TU_OK(pkv_append_layers(c, &p, k, v));
}

/* The saved file of a cache. */
static uint8_t *saved(pkv_cache *c, size_t *n)
{
    char path[] = "/tmp/pkv_test_mining_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    TU_OK(pkv_cache_save(c, path));
    uint8_t *b = tu_slurp(path, n);
    remove(path);
    return b;
}

static void same_cache(pkv_cache *a, pkv_cache *b)
{
    size_t na, nb;
    uint8_t *fa = saved(a, &na), *fb = saved(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(fa, fb, na);
    free(fa), free(fb);
}

static uint32_t bank_size(pkv_cache *c, pkv_seq s, uint32_t layer)
{
    float *pk = malloc(256 * D * sizeof *pk), *pv = malloc(256 * D * sizeof *pv);
    uint32_t n = tu_read_bank(c, s, layer, 0, pk, pv);
    free(pk), free(pv);
    return n;
}

static void decode(pkv_cache *c, pkv_seq s, uint32_t from, uint32_t to, uint32_t step)
{
    for (uint32_t t = from; t < to; t += step) append_all(c, s, t, to - t < step ? to - t : step);
}

static void chunked_prefill_equals_one_shot(void **state)
{
    (void)state;
    pkv_context *ctx = tu_context();
    pkv_cache *one = new_cache(ctx, PKV_MINING_AT_M), *chunked = new_cache(ctx, PKV_MINING_AT_M);
    pkv_seq a, b;
    TU_OK(pkv_seq_create(one, &a));
    TU_OK(pkv_seq_create(chunked, &b));
    append_all(one, a, 0, 50);
    for (uint32_t l = 0; l < L; l++) TU_OK(pkv_append(chunked, b, l, 3, K, V, PKV_F32)); /* 3 + 2 < M */
    append_all(chunked, b, 3, 2);
    assert_int_equal(bank_size(chunked, b, 1), 0);
    append_all(chunked, b, 5, 45); /* mines over the 5 window tokens and these 45 */
    assert_int_equal(bank_size(chunked, b, 1), M);
    same_cache(one, chunked);
    decode(one, a, 50, N, 7); /* flushes add patterns to both alike */
    decode(chunked, b, 50, N, 7);
    assert_int_equal(bank_size(chunked, b, 0), M + (N / G - 50 / G));
    same_cache(one, chunked);

    /* Layers at different window lengths (3 and 6 tokens) in one call: one mine op each. */
    pkv_cache *mixed = new_cache(ctx, PKV_MINING_AT_M), *ref = new_cache(ctx, PKV_MINING_AT_M);
    pkv_seq m, r;
    TU_OK(pkv_seq_create(mixed, &m));
    TU_OK(pkv_seq_create(ref, &r));
    TU_OK(pkv_append(mixed, m, 0, 3, K, V, PKV_F32));
    TU_OK(pkv_append(mixed, m, 1, 6, K, V, PKV_F32));
    append_all(mixed, m, 6, 34);
    float *jk = malloc(40 * TOK * sizeof *jk), *jv = malloc(40 * TOK * sizeof *jv);
    for (uint32_t l = 0; l < L; l++) { /* layer 0 holds tokens 0-2 then 6-39, layer 1 tokens 0-39 */
        const uint32_t w = l ? 6 : 3;
        memcpy(jk, K, w * TOK * sizeof *jk), memcpy(jv, V, w * TOK * sizeof *jv);
        memcpy(jk + w * TOK, K + 6 * TOK, 34 * TOK * sizeof *jk), memcpy(jv + w * TOK, V + 6 * TOK, 34 * TOK * sizeof *jv);
        TU_OK(pkv_append(ref, r, l, w + 34, jk, jv, PKV_F32));
    }
    same_cache(mixed, ref);
    free(jk), free(jv);
    pkv_cache_free(mixed), pkv_cache_free(ref);

    /* Decode from an empty sequence, one token a call: mines at the M-th token. */
    pkv_cache *dec = new_cache(ctx, PKV_MINING_AT_M), *pre = new_cache(ctx, PKV_MINING_AT_M);
    pkv_seq sd, sp;
    TU_OK(pkv_seq_create(dec, &sd));
    TU_OK(pkv_seq_create(pre, &sp));
    decode(dec, sd, 0, 70, 1);
    append_all(pre, sp, 0, M);
    decode(pre, sp, M, 70, 1);
    assert_int_equal(bank_size(dec, sd, 0), M + 2);
    same_cache(dec, pre);
    pkv_cache_free(dec), pkv_cache_free(pre);

    pkv_cache_free(one), pkv_cache_free(chunked);
    pkv_context_free(ctx);
}

static void late_mined_attention_matches_fp64(void **state)
{
    (void)state;
    pkv_context *ctx = tu_context();
    pkv_cache *c = new_cache(ctx, PKV_MINING_AT_M);
    pkv_seq s;
    TU_OK(pkv_seq_create(c, &s));
    decode(c, s, 0, 90, 4); /* 4 < M: mines at the second call, over 8 tokens */
    assert_int_equal(bank_size(c, s, 1), M + 2);
    float *k = malloc(N * TOK * sizeof *k), *v = malloc(N * TOK * sizeof *v);
    float q[NQ * D], out[NQ * D];
    tu_rng r = {5};
    tu_random(&r, NQ * D, 1.0f, q);
    TU_OK(pkv_read_kv(c, s, 1, k, v));
    pkv_attention_params p = pkv_attention_params_default();
    p.seqs = &s, p.n_seqs = 1, p.layer = 1, p.n_q_heads = NQ;
    TU_OK(pkv_attention(c, &p, q, out));
    const float *kk[1] = {k}, *vv[1] = {v};
    const uint32_t T[1] = {90};
    double e = tu_check_attention(kk, vv, T, 1, 1, NQ, H, D, q, out);
    print_message("attention after a late mining: rel err %.2e against fp64\n", e);
    assert_true(e < tu_attention_bound(ctx));
    free(k), free(v);
    pkv_cache_free(c);
    pkv_context_free(ctx);
}

static void save_and_load_around_late_mining(void **state)
{
    (void)state;
    pkv_context *ctx = tu_context();
    pkv_cache *c = new_cache(ctx, PKV_MINING_AT_M), *one = new_cache(ctx, PKV_MINING_AT_M), *back;
    pkv_seq s, a;
    TU_OK(pkv_seq_create(c, &s));
    TU_OK(pkv_seq_create(one, &a));
    append_all(c, s, 0, 5); /* not mined yet */
    char path[] = "/tmp/pkv_test_mining_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    TU_OK(pkv_cache_save(c, path));
    TU_OK(pkv_cache_load(ctx, path, &back));
    append_all(back, s, 5, 60); /* the loaded cache mines late over its window and these */
    append_all(c, s, 5, 60);
    append_all(one, a, 0, 65);
    assert_int_equal(bank_size(back, s, 0), M); /* 64 tokens in blocks, 1 in the window */
    same_cache(back, one);
    same_cache(c, one);
    pkv_cache_free(back);
    TU_OK(pkv_cache_save(c, path)); /* after: mined late, blocks, a window */
    TU_OK(pkv_cache_load(ctx, path, &back));
    decode(back, s, 65, N, 9);
    decode(c, s, 65, N, 9);
    same_cache(back, c);
    remove(path);
    pkv_cache_free(back), pkv_cache_free(c), pkv_cache_free(one);
    pkv_context_free(ctx);
}

static void first_append_policy_keeps_the_papers_behaviour(void **state)
{
    (void)state;
    pkv_context *ctx = tu_context();
    pkv_cache *c = new_cache(ctx, PKV_MINING_FIRST_APPEND), *p = new_cache(ctx, PKV_MINING_FIRST_APPEND);
    pkv_cache_config back = pkv_cache_config_default();
    TU_OK(pkv_cache_get_config(c, &back));
    assert_int_equal(back.mining, PKV_MINING_FIRST_APPEND);
    assert_string_equal(pkv_mining_name(PKV_MINING_FIRST_APPEND), "first-append");
    assert_string_equal(pkv_mining_name(PKV_MINING_AT_M), "at-m");
    pkv_seq s, t;
    TU_OK(pkv_seq_create(c, &s));
    TU_OK(pkv_seq_create(p, &t));
    append_all(c, s, 0, 5);
    append_all(c, s, 5, 60); /* never mines: two flushes, two Chebyshev patterns */
    assert_int_equal(bank_size(c, s, 0), 2);
    append_all(p, t, 0, 65); /* a first append of >= M tokens mines, as at M */
    assert_int_equal(bank_size(p, t, 0), M);
    char path[] = "/tmp/pkv_test_mining_XXXXXX";
    assert_int_equal(pkv_cache_save(c, path), PKV_ERR_UNSUPPORTED);
    assert_non_null(strstr(pkv_last_error(), "first-append"));
    pkv_cache_config bad = tu_config(1, 1, 32, 2, 32, PKV_MODE_PATTERN);
    bad.mining = 2;
    pkv_cache *none = NULL;
    assert_int_equal(pkv_cache_create(ctx, &bad, &none), PKV_ERR_INVALID_CONFIG);
    assert_null(none);
    pkv_cache_free(c), pkv_cache_free(p);
    pkv_context_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chunked_prefill_equals_one_shot),
        cmocka_unit_test(late_mined_attention_matches_fp64),
        cmocka_unit_test(save_and_load_around_late_mining),
        cmocka_unit_test(first_append_policy_keeps_the_papers_behaviour),
    };
    return tu_run_tests(tests, setup, teardown);
}
