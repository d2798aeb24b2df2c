/* Save and load: bit-exact round trip; truncated, bit-flipped and foreign files are rejected. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static char path_a[256], path_b[256];

static void spit(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static pkv_cache *filled_cache(pkv_context *ctx, pkv_mode mode, pkv_seq *ids)
{
    tu_rng r = {404};
    pkv_cache_config cfg = tu_config(2, 2, 40, 3, 32, mode);
    pkv_cache *c;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    float *k = malloc(200 * 2 * 40 * sizeof(float)), *v = malloc(200 * 2 * 40 * sizeof(float));
    tu_random(&r, 200 * 2 * 40, 1.0f, k);
    tu_random(&r, 200 * 2 * 40, 1.0f, v);
    TU_OK(pkv_seq_create(c, &ids[0]));
    for (uint32_t l = 0; l < 2; l++) TU_OK(pkv_append(c, ids[0], l, 150, k, v, PKV_F32));
    TU_OK(pkv_seq_fork(c, ids[0], &ids[1]));
    for (uint32_t l = 0; l < 2; l++) TU_OK(pkv_append(c, ids[1], l, 50, k + 150 * 80, v + 150 * 80, PKV_F32));
    free(k), free(v);
    return c;
}

static void save_load_round_trips_bit_exactly(void **state)
{
    (void)state;
    pkv_context *ctx = tu_context();
    for (int mode = 0; mode < 3; mode++) {
        pkv_seq ids[2];
        pkv_cache *c = filled_cache(ctx, (pkv_mode)mode, ids);
        TU_OK(pkv_cache_save(c, path_a));
        pkv_cache *d;
        TU_OK(pkv_cache_load(ctx, path_a, &d));
        TU_OK(pkv_cache_save(d, path_b));
        size_t na, nb;
        uint8_t *a = tu_slurp(path_a, &na), *b = tu_slurp(path_b, &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na);
        free(a), free(b);
        /* Same contents through the API: read-back and attention agree exactly. */
        float *k1 = malloc(200 * 80 * sizeof(float)), *v1 = malloc(200 * 80 * sizeof(float));
        float *k2 = malloc(200 * 80 * sizeof(float)), *v2 = malloc(200 * 80 * sizeof(float));
        TU_OK(pkv_read_kv(c, ids[1], 1, k1, v1));
        TU_OK(pkv_read_kv(d, ids[1], 1, k2, v2));
        assert_memory_equal(k1, k2, 200 * 80 * sizeof(float));
        assert_memory_equal(v1, v2, 200 * 80 * sizeof(float));
        float q[2 * 4 * 40], o1[2 * 4 * 40], o2[2 * 4 * 40];
        tu_rng r = {5};
        tu_random(&r, sizeof q / sizeof q[0], 1.0f, q);
        pkv_attention_params p = {.struct_size = sizeof(pkv_attention_params), .seqs = ids, .n_seqs = 2, .layer = 1, .q_len = 1, .n_q_heads = 4, .scale = 0.0f, .q_dtype = PKV_F32};
        TU_OK(pkv_attention(c, &p, q, o1));
        TU_OK(pkv_attention(d, &p, q, o2));
        assert_memory_equal(o1, o2, sizeof o1);
        /* The loaded cache keeps working: fork and append on it. */
        pkv_seq e;
        TU_OK(pkv_seq_fork(d, ids[1], &e));
        TU_OK(pkv_append(d, e, 0, 20, k1, v1, PKV_F32));
        free(k1), free(v1), free(k2), free(v2);
        pkv_cache_free(c);
        pkv_cache_free(d);
    }
    pkv_context_free(ctx);
}

static void damaged_files_are_rejected(void **state)
{
    (void)state;
    pkv_context *ctx = tu_context();
    pkv_seq ids[2];
    pkv_cache *c = filled_cache(ctx, PKV_MODE_PATTERN, ids);
    TU_OK(pkv_cache_save(c, path_a));
    size_t n;
    uint8_t *good = tu_slurp(path_a, &n);
    pkv_cache *d = NULL;
    /* Truncated anywhere. */
    for (size_t cut = 0; cut < n; cut += n / 37 + 1) {
        spit(path_b, good, cut);
        assert_int_equal(pkv_cache_load(ctx, path_b, &d), PKV_ERR_CORRUPT_FILE);
        assert_null(d);
    }
    /* One flipped bit anywhere. */
    uint8_t *bad = malloc(n);
    tu_rng r = {1};
    for (int trial = 0; trial < 60; trial++) {
        memcpy(bad, good, n);
        size_t at = trial < 10 ? (size_t)trial * 7 : (size_t)(tu_uniform(&r) * n);
        bad[at] ^= (uint8_t)(1u << (trial % 8));
        spit(path_b, bad, n);
        assert_int_equal(pkv_cache_load(ctx, path_b, &d), PKV_ERR_CORRUPT_FILE);
    }
    /* Out-of-range counts and slot indices in the sequence table (it follows the 108-byte header):
     * rejected before its checksum is reached, without touching what was half read. */
    for (size_t word = 0; word < 24; word++) {
        memcpy(bad, good, n);
        bad[108 + 4 * word + 3] ^= 0x40;
        spit(path_b, bad, n);
        assert_int_equal(pkv_cache_load(ctx, path_b, &d), PKV_ERR_CORRUPT_FILE);
    }
    /* Trailing garbage, a foreign file, a missing file. */
    memcpy(bad, good, n);
    spit(path_b, bad, n);
    FILE *f = fopen(path_b, "ab");
    fputs("extra", f);
    fclose(f);
    assert_int_equal(pkv_cache_load(ctx, path_b, &d), PKV_ERR_CORRUPT_FILE);
    spit(path_b, (const uint8_t *)"hello world, not a cache", 24);
    assert_int_equal(pkv_cache_load(ctx, path_b, &d), PKV_ERR_CORRUPT_FILE);
    assert_int_equal(pkv_cache_load(ctx, "/nonexistent/dir/file.pkv", &d), PKV_ERR_IO);
    assert_int_equal(pkv_cache_save(c, "/nonexistent/dir/file.pkv"), PKV_ERR_IO);
    assert_true(strlen(pkv_last_error()) > 0);
    free(good), free(bad);
    pkv_cache_free(c);
    pkv_context_free(ctx);
}

int main(void)
{
    snprintf(path_a, sizeof path_a, "/tmp/pkv_test_io_a_%ld.pkv", (long)getpid());
    snprintf(path_b, sizeof path_b, "/tmp/pkv_test_io_b_%ld.pkv", (long)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(save_load_round_trips_bit_exactly),
        cmocka_unit_test(damaged_files_are_rejected),
    };
    int rc = tu_run_tests(tests, NULL, NULL);
    remove(path_a);
    remove(path_b);
    return rc;
}
