/* Every bad input returns its documented status and leaves the cache exactly as it was. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

enum { H = 2, D = 32 };
static char snap_a[256], snap_b[256];

static uint8_t *snapshot(pkv_cache *c, const char *path, size_t *n)
{
    TU_OK(pkv_cache_save(c, path));
    return tu_slurp(path, n);
}

static void assert_unchanged(pkv_cache *c, const uint8_t *before, size_t n)
{
    size_t m;
    uint8_t *now = snapshot(c, snap_b, &m);
    assert_int_equal(m, n);
    assert_memory_equal(now, before, n);
    free(now);
}

static void bad_configs_are_rejected(void **state)
{
    (void)state;
    pkv_context *ctx = tu_context();
    pkv_cache *c = NULL;
    pkv_cache_config base = tu_config(1, H, D, 2, 32, PKV_MODE_PATTERN), cfg;
#define EXPECT_BAD(field, value)                                                      \
    cfg = base;                                                                       \
    cfg.field = value;                                                                \
    assert_int_equal(pkv_cache_create(ctx, &cfg, &c), PKV_ERR_INVALID_CONFIG);        \
    assert_null(c);                                                                   \
    assert_true(strstr(pkv_last_error(), #field) != NULL || strlen(pkv_last_error()) > 0);
    EXPECT_BAD(head_dim, 36);
    EXPECT_BAD(head_dim, 24);
    EXPECT_BAD(head_dim, 264);
    EXPECT_BAD(k_bits, 5);
    EXPECT_BAD(v_bits, 1);
    EXPECT_BAD(group_size, 48);
    EXPECT_BAD(window, 40);
    EXPECT_BAD(n_patterns, 0);
    EXPECT_BAD(n_patterns, 300);
    EXPECT_BAD(bank_capacity, 257);
    EXPECT_BAD(n_layers, 0);
    EXPECT_BAD(n_kv_heads, 0);
    EXPECT_BAD(mode, (pkv_mode)7);
    EXPECT_BAD(memory_budget, 0);
    EXPECT_BAD(kmeans_tol, NAN);
#undef EXPECT_BAD
    assert_int_equal(pkv_cache_create(ctx, NULL, &c), PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_cache_create(ctx, &base, NULL), PKV_ERR_INVALID_ARGUMENT);
    pkv_context_params p = pkv_context_params_default();
    p.backend = (pkv_backend_kind)42;
    pkv_context *bad = NULL;
    assert_int_equal(pkv_context_create(&p, &bad), PKV_ERR_INVALID_ARGUMENT);
    assert_null(bad);
    assert_int_equal(pkv_context_create(NULL, NULL), PKV_ERR_INVALID_ARGUMENT);
    pkv_context_free(ctx);
}

static void bad_inputs_leave_the_cache_as_it_was(void **state)
{
    (void)state;
    tu_rng r = {77};
    pkv_context *ctx = tu_context();
    pkv_cache_config cfg = tu_config(2, H, D, 2, 32, PKV_MODE_PATTERN);
    cfg.memory_budget = 64 * 1024;
    pkv_cache *c;
    pkv_seq s, freed;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    TU_OK(pkv_seq_create(c, &s));
    TU_OK(pkv_seq_create(c, &freed));
    TU_OK(pkv_seq_free(c, freed));
    const uint32_t n = 70;
    float *k = malloc(4096 * H * D * sizeof(float)), *v = malloc(4096 * H * D * sizeof(float));
    tu_random(&r, 4096 * H * D, 1.0f, k);
    tu_random(&r, 4096 * H * D, 1.0f, v);
    TU_OK(pkv_append(c, s, 0, n, k, v, PKV_F32));
    size_t len;
    uint8_t *before = snapshot(c, snap_a, &len);

    float saved = k[5];
    k[5] = NAN;
    assert_int_equal(pkv_append(c, s, 0, 10, k, v, PKV_F32), PKV_ERR_NONFINITE);
    k[5] = INFINITY;
    assert_int_equal(pkv_append(c, s, 0, 10, k, v, PKV_F32), PKV_ERR_NONFINITE);
    k[5] = 1e6f; /* beyond fp16 */
    assert_int_equal(pkv_append(c, s, 0, 10, k, v, PKV_F32), PKV_ERR_NONFINITE);
    k[5] = saved;
    saved = v[100];
    v[100] = -INFINITY;
    assert_int_equal(pkv_append(c, s, 1, 100, k, v, PKV_F32), PKV_ERR_NONFINITE);
    v[100] = saved;
    uint16_t hk[2 * H * D], hv[2 * H * D];
    memset(hk, 0, sizeof hk);
    memset(hv, 0, sizeof hv);
    hv[3] = 0x7E00; /* fp16 NaN */
    assert_int_equal(pkv_append(c, s, 0, 2, hk, hv, PKV_F16), PKV_ERR_NONFINITE);
    assert_int_equal(pkv_append(c, s, 0, 10, k, v, (pkv_dtype)9), PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_append(c, s, 0, 10, NULL, v, PKV_F32), PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_append(NULL, s, 0, 10, k, v, PKV_F32), PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_append(c, freed, 0, 10, k, v, PKV_F32), PKV_ERR_UNKNOWN_SEQUENCE);
    assert_int_equal(pkv_append(c, 9999, 0, 10, k, v, PKV_F32), PKV_ERR_UNKNOWN_SEQUENCE);
    assert_int_equal(pkv_append(c, s, 2, 10, k, v, PKV_F32), PKV_ERR_LAYER_RANGE);
    /* Past the memory budget: a large append fails whole. */
    assert_int_equal(pkv_append(c, s, 0, 4096, k, v, PKV_F32), PKV_ERR_OUT_OF_BUDGET);
    pkv_seq f;
    assert_int_equal(pkv_seq_fork(c, freed, &f), PKV_ERR_UNKNOWN_SEQUENCE);
    assert_unchanged(c, before, len);

    /* Attention errors. */
    float q[4 * D], out[4 * D];
    tu_random(&r, 4 * D, 1.0f, q);
    pkv_seq list[2] = {s, freed};
    pkv_attention_params p = {.struct_size = sizeof(pkv_attention_params), .seqs = list, .n_seqs = 1, .layer = 0, .q_len = 1, .n_q_heads = 4, .scale = 0.0f, .q_dtype = PKV_F32};
    TU_OK(pkv_attention(c, &p, q, out));
    for (int i = 0; i < 4 * D; i++) assert_true(isfinite(out[i]));
    p.n_seqs = 2;
    assert_int_equal(pkv_attention(c, &p, q, out), PKV_ERR_UNKNOWN_SEQUENCE);
    p.n_seqs = 1;
    p.n_q_heads = 3;
    assert_int_equal(pkv_attention(c, &p, q, out), PKV_ERR_SHAPE);
    p.n_q_heads = 4;
    p.layer = 5;
    assert_int_equal(pkv_attention(c, &p, q, out), PKV_ERR_LAYER_RANGE);
    p.layer = 1; /* layer 1 is empty: q_len 1 > 0 tokens */
    assert_int_equal(pkv_attention(c, &p, q, out), PKV_ERR_SHAPE);
    p.layer = 0;
    p.q_len = 71;
    assert_int_equal(pkv_attention(c, &p, q, out), PKV_ERR_SHAPE);
    p.q_len = 1;
    q[7] = NAN;
    assert_int_equal(pkv_attention(c, &p, q, out), PKV_ERR_NONFINITE);
    /* Finite but so large that fp32 logits would overflow (NaN output before): a clear error. */
    q[7] = 3e38f;
    assert_int_equal(pkv_attention(c, &p, q, out), PKV_ERR_NONFINITE);
    q[7] = 0.5f;
    p.scale = 3e38f;
    assert_int_equal(pkv_attention(c, &p, q, out), PKV_ERR_INVALID_ARGUMENT);
    p.scale = 1e18f; /* allowed, but |q| * scale must stay <= 2^64 */
    q[7] = 100.0f;
    assert_int_equal(pkv_attention(c, &p, q, out), PKV_ERR_NONFINITE);
    p.scale = 1e10f;
    q[7] = 1e9f; /* within the limit: finite output */
    TU_OK(pkv_attention(c, &p, q, out));
    for (int i = 0; i < 4 * D; i++) assert_true(isfinite(out[i]));
    q[7] = 1e19f; /* |q| <= 2^64 with a small scale */
    p.scale = 0.0f;
    TU_OK(pkv_attention(c, &p, q, out));
    for (int i = 0; i < 4 * D; i++) assert_true(isfinite(out[i]));
    q[7] = -0x1p64f; /* the limit itself is allowed, the next float above it is not, nor Inf */
    TU_OK(pkv_attention(c, &p, q, out));
    q[7] = nextafterf(0x1p64f, INFINITY);
    assert_int_equal(pkv_attention(c, &p, q, out), PKV_ERR_NONFINITE);
    q[7] = -INFINITY;
    assert_int_equal(pkv_attention(c, &p, q, out), PKV_ERR_NONFINITE);
    p.scale = 3.0f; /* 2^64 / 3 is not a float: the largest float below it is allowed, the next is not */
    q[7] = (float)(0x1p64 / 3.0);
    if ((double)q[7] > 0x1p64 / 3.0) q[7] = nextafterf(q[7], 0.0f);
    TU_OK(pkv_attention(c, &p, q, out));
    q[7] = nextafterf(q[7], INFINITY);
    assert_int_equal(pkv_attention(c, &p, q, out), PKV_ERR_NONFINITE);
    p.scale = 0.0f;
    q[7] = 0.5f;
    assert_int_equal(pkv_attention(c, &p, NULL, out), PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_attention(c, NULL, q, out), PKV_ERR_INVALID_ARGUMENT);
    p.n_seqs = 0;
    assert_int_equal(pkv_attention(c, &p, q, out), PKV_ERR_INVALID_ARGUMENT);

    /* Other calls. */
    uint32_t nt;
    assert_int_equal(pkv_seq_length(c, freed, 0, &nt), PKV_ERR_UNKNOWN_SEQUENCE);
    assert_int_equal(pkv_seq_length(c, s, 3, &nt), PKV_ERR_LAYER_RANGE);
    assert_int_equal(pkv_read_kv(c, s, 0, NULL, v), PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_read_kv(c, s, 9, k, v), PKV_ERR_LAYER_RANGE);
    assert_int_equal(pkv_cache_stats_get(c, NULL), PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_seq_free(NULL, s), PKV_ERR_INVALID_ARGUMENT);
    assert_unchanged(c, before, len);

    /* After all that, the cache still works. */
    TU_OK(pkv_append(c, s, 0, 10, k, v, PKV_F32));
    TU_OK(pkv_seq_length(c, s, 0, &nt));
    assert_int_equal(nt, n + 10);
    assert_string_equal(pkv_status_string(PKV_OK), "PKV_OK: success");
    assert_non_null(strstr(pkv_status_string(PKV_ERR_OUT_OF_BUDGET), "budget"));
    assert_non_null(pkv_status_string((pkv_status)1234));
    free(before), free(k), free(v);
    pkv_cache_free(c);
    pkv_context_free(ctx);
}

/* A prompt large enough that its input check runs on several threads (2 layers x 32768 tokens x 2
 * heads x 32: 4 MiB of fp16 per array, in 1 Mi-value pieces): the error is the serial one (the first
 * array in layer, K-then-V order with a bad value, its lowest bad index, whichever piece or thread
 * found it), and nothing is stored. fp16 and fp32 input. */
static void bad_values_of_a_large_prompt_are_reported_in_order(void **state)
{
    (void)state;
    enum { NL = 2, T = 32768 };
    const size_t count = (size_t)T * H * D;
    pkv_context *ctx = tu_context();
    pkv_cache_config cfg = tu_config(NL, H, D, 2, 32, PKV_MODE_PATTERN);
    cfg.memory_budget = 64u << 20;
    pkv_cache *c;
    pkv_seq s;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    TU_OK(pkv_seq_create(c, &s));
    uint16_t *h = calloc(2 * NL * count, sizeof *h);
    float *f = calloc(2 * NL * count, sizeof *f);
    const void *hk[NL] = {h, h + 2 * count}, *hv[NL] = {h + count, h + 3 * count};
    const void *fk[NL] = {f, f + 2 * count}, *fv[NL] = {f + count, f + 3 * count};
    /* layer 1's K (a later array) and two in layer 0's V, in different pieces: layer 0's v, the lower */
    h[2 * count + 5] = 0x7C00, h[count + count - 3] = 0xFC00, h[count + 700000] = 0x7E01;
    f[2 * count + 5] = NAN, f[count + count - 3] = 1e6f, f[count + 700000] = -INFINITY;
    pkv_append_params p = pkv_append_params_default();
    p.seq = s, p.n_tokens = T;
    for (int fp32 = 0; fp32 < 2; fp32++) {
        p.dtype = fp32 ? PKV_F32 : PKV_F16;
        assert_int_equal(pkv_append_layers(c, &p, fp32 ? fk : hk, fp32 ? fv : hv), PKV_ERR_NONFINITE);
        char want[64];
        snprintf(want, sizeof want, "v[%u]", 700000u);
        if (!strstr(pkv_last_error(), want) || !strstr(pkv_last_error(), "of layer 0"))
            fail_msg("expected %s of layer 0, got: %s", want, pkv_last_error());
        uint32_t len = 1;
        TU_OK(pkv_seq_length(c, s, 0, &len));
        assert_int_equal(len, 0);
    }
    free(h), free(f);
    pkv_cache_free(c);
    pkv_context_free(ctx);
}

int main(void)
{
    snprintf(snap_a, sizeof snap_a, "/tmp/pkv_test_err_a_%ld.pkv", (long)getpid());
    snprintf(snap_b, sizeof snap_b, "/tmp/pkv_test_err_b_%ld.pkv", (long)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_configs_are_rejected),
        cmocka_unit_test(bad_inputs_leave_the_cache_as_it_was),
        cmocka_unit_test(bad_values_of_a_large_prompt_are_reported_in_order),
    };
    int rc = tu_run_tests(tests, NULL, NULL);
    remove(snap_a);
    remove(snap_b);
    return rc;
}
