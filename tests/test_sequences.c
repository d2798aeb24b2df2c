/* Sequences: fork shares the compressed prefix copy-on-write, both sides diverge correctly, free
 * returns blocks to the pool. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

enum { H = 2, D = 32, G = 32 };

static void append_random(pkv_cache *c, pkv_seq s, uint32_t n, tu_rng *r, float *k, float *v)
{
    tu_random(r, (size_t)n * H * D, 1.0f, k);
    tu_random(r, (size_t)n * H * D, 1.0f, v);
    for (uint32_t l = 0; l < 2; l++) TU_OK(pkv_append(c, s, l, n, k, v, PKV_F32));
}

static void fork_shares_blocks_and_both_sides_diverge(void **state)
{
    (void)state;
    tu_rng r = {8};
    pkv_context *ctx = tu_context();
    pkv_cache_config cfg = tu_config(2, H, D, 2, G, PKV_MODE_PATTERN);
    pkv_cache *c;
    pkv_seq parent, child;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    TU_OK(pkv_seq_create(c, &parent));
    float *k = malloc(400 * H * D * sizeof(float)), *v = malloc(400 * H * D * sizeof(float));
    append_random(c, parent, 150, &r, k, v); /* 4 blocks + 22 in the window, per layer */
    float *pk0 = malloc(400 * H * D * sizeof(float)), *pv0 = malloc(400 * H * D * sizeof(float));
    TU_OK(pkv_read_kv(c, parent, 1, pk0, pv0));
    pkv_cache_stats before = {.struct_size = sizeof before}, after = {.struct_size = sizeof after};
    TU_OK(pkv_cache_stats_get(c, &before));
    TU_OK(pkv_seq_fork(c, parent, &child));
    TU_OK(pkv_cache_stats_get(c, &after));
    assert_int_equal(after.blocks_used, before.blocks_used);   /* nothing copied */
    assert_int_equal(after.blocks_shared, before.blocks_used); /* all shared */
    assert_int_equal(after.n_seqs, 2);

    /* Diverge: different tokens into each, crossing flushes so banks grow copy-on-write. */
    append_random(c, child, 100, &r, k, v);
    float *ck = malloc(400 * H * D * sizeof(float)), *cv = malloc(400 * H * D * sizeof(float));
    memcpy(ck + 150 * H * D, k, 100 * H * D * sizeof(float));
    memcpy(cv + 150 * H * D, v, 100 * H * D * sizeof(float));
    append_random(c, parent, 60, &r, k, v);

    float *pk = malloc(400 * H * D * sizeof(float)), *pv = malloc(400 * H * D * sizeof(float));
    uint32_t np, nc;
    TU_OK(pkv_seq_length(c, parent, 1, &np));
    TU_OK(pkv_seq_length(c, child, 1, &nc));
    assert_int_equal(np, 210);
    assert_int_equal(nc, 250);
    TU_OK(pkv_read_kv(c, parent, 1, pk, pv));
    float *xk = malloc(400 * H * D * sizeof(float)), *xv = malloc(400 * H * D * sizeof(float));
    TU_OK(pkv_read_kv(c, child, 1, xk, xv));
    /* The shared prefix (4 blocks) reads identically from both and from before the fork. */
    assert_memory_equal(pk, pk0, 128 * H * D * sizeof(float));
    assert_memory_equal(xk, pk0, 128 * H * D * sizeof(float));
    assert_memory_equal(xv, pv0, 128 * H * D * sizeof(float));
    /* The child's own tokens are near what it appended (2-bit), the parent's are not affected. */
    double err = 0, ref = 0;
    for (size_t i = 150 * H * D; i < 250 * H * D; i++) err += pow(xv[i] - cv[i], 2), ref += cv[i] * cv[i];
    assert_true(sqrt(err / ref) < 0.6);
    /* Tokens 128..149 were in the window at the fork: each side quantized them in its own flush. */
    double ep = 0, ec = 0, r0 = 0;
    for (size_t i = 128 * H * D; i < 150 * H * D; i++)
        ep += pow(pk[i] - pk0[i], 2), ec += pow(xk[i] - pk0[i], 2), r0 += pk0[i] * pk0[i];
    assert_true(sqrt(ep / r0) < 0.6 && sqrt(ec / r0) < 0.6);
    assert_true(ep > 0 && ec > 0);
    /* Parent and child banks diverged: each appended its own centres. */
    float *PK1 = malloc(256 * D * sizeof(float)), *PV1 = malloc(256 * D * sizeof(float));
    float *PK2 = malloc(256 * D * sizeof(float)), *PV2 = malloc(256 * D * sizeof(float));
    uint32_t b1 = tu_read_bank(c, parent, 1, 0, PK1, PV1), b2 = tu_read_bank(c, child, 1, 0, PK2, PV2);
    assert_int_equal(b1, 8 + 2);
    assert_int_equal(b2, 8 + 3);
    assert_memory_equal(PK1, PK2, 8 * D * sizeof(float)); /* mined patterns shared */
    assert_memory_not_equal(PK1 + 8 * D, PK2 + 8 * D, D * sizeof(float)); /* centres of different windows */

    TU_OK(pkv_seq_free(c, parent));
    TU_OK(pkv_cache_stats_get(c, &after));
    assert_int_equal(after.blocks_shared, 0);
    assert_int_equal(pkv_seq_free(c, parent), PKV_ERR_UNKNOWN_SEQUENCE);
    TU_OK(pkv_seq_free(c, child));
    TU_OK(pkv_cache_stats_get(c, &after));
    assert_int_equal(after.blocks_used, 0);
    assert_int_equal(after.bytes_reserved, 0);
    assert_int_equal(after.bytes_free, after.bytes_budget);
    free(k), free(v), free(pk0), free(pv0), free(ck), free(cv), free(pk), free(pv), free(xk), free(xv);
    free(PK1), free(PV1), free(PK2), free(PV2);
    pkv_cache_free(c);
    pkv_context_free(ctx);
}

static void many_sequences_of_different_lengths_share_one_pool(void **state)
{
    (void)state;
    tu_rng r = {21};
    pkv_context *ctx = tu_context();
    pkv_cache_config cfg = tu_config(2, H, D, 4, G, PKV_MODE_PATTERN);
    pkv_cache *c;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    float *k = malloc(300 * H * D * sizeof(float)), *v = malloc(300 * H * D * sizeof(float));
    pkv_seq ids[24];
    for (uint32_t i = 0; i < 24; i++) {
        TU_OK(pkv_seq_create(c, &ids[i]));
        append_random(c, ids[i], 5 + i * 11, &r, k, v);
    }
    for (uint32_t i = 0; i < 24; i += 2) TU_OK(pkv_seq_free(c, ids[i]));
    for (uint32_t i = 1; i < 24; i += 2) {
        uint32_t n;
        TU_OK(pkv_seq_length(c, ids[i], 0, &n));
        assert_int_equal(n, 5 + i * 11);
    }
    pkv_cache_stats st = {.struct_size = sizeof st};
    TU_OK(pkv_cache_stats_get(c, &st));
    assert_int_equal(st.n_seqs, 12);
    uint64_t expect_blocks = 0;
    for (uint32_t i = 1; i < 24; i += 2) expect_blocks += 2ull * H * ((5 + i * 11) / G);
    assert_int_equal(st.blocks_used, expect_blocks);
    free(k), free(v);
    pkv_cache_free(c);
    pkv_context_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fork_shares_blocks_and_both_sides_diverge),
        cmocka_unit_test(many_sequences_of_different_lengths_share_one_pool),
    };
    return tu_run_tests(tests, NULL, NULL);
}
