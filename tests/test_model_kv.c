/* Fidelity on real KV: the post-RoPE keys, values and queries of the trained tiny model
 * (data/tinyllm/kv_fixture.safetensors). A prefill of 512 tokens mines the banks, the rest is appended
 * in steps of 128 tokens, and after the prefill and each step the last position's real queries attend
 * over the cache (q_len 1), against fp64 attention over the uncompressed fixture. PATTERN at 2 bits
 * must reconstruct K better and attend more accurately than DIRECT at 2 bits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_model_fixture.h"
#include "testutil.h"

#define PREFILL 512u
#define STEP 128u

typedef struct fidelity {
    double k_rel_mse, v_rel_mse; /* sum of squared errors / sum of squares, all layers and heads */
    double k_prefill, k_decode;  /* K's, over the tokens of the prefill / appended after it */
    double attn_rel_err;         /* mean over layers, query points and q heads of ||o - o_ref|| / ||o_ref|| */
    double bits_per_element;
} fidelity;

static fixture fx;

static int setup(void **state)
{
    (void)state;
    return fixture_load(PKV_FIXTURE_PATH, &fx);
}

static int teardown(void **state)
{
    (void)state;
    fixture_free(&fx);
    return 0;
}

/* The fixture's layer as the append layout [T][H][d]. */
static void layer_tokens(const float *base, uint32_t layer, float *out)
{
    const uint32_t H = fx.kv_heads, d = fx.head_dim;
    for (uint32_t t = 0; t < fx.tokens; t++)
        for (uint32_t h = 0; h < H; h++)
            memcpy(out + ((size_t)t * H + h) * d, fixture_row(&fx, base, H, layer, h, t), d * sizeof(float));
}

/* Whether PKV_TEST_BACKEND is the CPU (or unset); if not, says why the test has nothing to do there. */
static int on_cpu(const char *why_not)
{
    const char *b = getenv("PKV_TEST_BACKEND");
    if (b && *b && strcmp(b, "cpu") != 0) {
        printf("  %s\n", why_not);
        return 0;
    }
    return 1;
}

/* The fidelity of a cache of configuration cfg (its shape and bits set here) on the fixture. */
static fidelity measure_cfg(pkv_cache_config cfg, uint32_t bits)
{
    const uint32_t L = fx.layers, H = fx.kv_heads, Hq = fx.q_heads, d = fx.head_dim, T = fx.tokens, gq = Hq / H;
    const pkv_mode mode = cfg.mode;
    pkv_context *ctx = tu_context();
    cfg.n_layers = L, cfg.n_kv_heads = H, cfg.head_dim = d, cfg.k_bits = bits, cfg.v_bits = bits;
    pkv_cache *cache;
    pkv_seq seq;
    TU_OK(pkv_cache_create(ctx, &cfg, &cache));
    TU_OK(pkv_seq_create(cache, &seq));
    float *k = malloc((size_t)T * H * d * sizeof *k), *v = malloc((size_t)T * H * d * sizeof *v);
    float *kr = malloc((size_t)T * H * d * sizeof *kr), *vr = malloc((size_t)T * H * d * sizeof *vr);
    float *q = malloc((size_t)Hq * d * sizeof *q), *out = malloc((size_t)Hq * d * sizeof *out);
    double *ref = malloc(d * sizeof *ref);
    assert_non_null(k), assert_non_null(v), assert_non_null(kr), assert_non_null(vr);
    assert_non_null(q), assert_non_null(out), assert_non_null(ref);
    fidelity r = {0};
    double ke = 0, ks = 0, ve = 0, vs = 0, kpe = 0, kps = 0;
    uint32_t n_attn = 0;
    for (uint32_t l = 0; l < L; l++) {
        layer_tokens(fx.k, l, k);
        layer_tokens(fx.v, l, v);
        for (uint32_t len = 0; len < T;) {
            uint32_t n = len == 0 ? PREFILL : (T - len < STEP ? T - len : STEP);
            TU_OK(pkv_append(cache, seq, l, n, k + (size_t)len * H * d, v + (size_t)len * H * d, PKV_F32));
            len += n;
            for (uint32_t qh = 0; qh < Hq; qh++)
                memcpy(q + (size_t)qh * d, fixture_row(&fx, fx.q, Hq, l, qh, len - 1), d * sizeof(float));
            pkv_attention_params p = {.struct_size = sizeof(pkv_attention_params), .seqs = &seq, .n_seqs = 1, .layer = l, .q_len = 1, .n_q_heads = Hq,
                                      .q_dtype = PKV_F32};
            TU_OK(pkv_attention(cache, &p, q, out));
            for (uint32_t qh = 0; qh < Hq; qh++) {
                uint32_t h = qh / gq;
                ref_attention(q + (size_t)qh * d, k + (size_t)h * d, v + (size_t)h * d, len, d, (size_t)H * d,
                              1.0 / sqrt((double)d), ref);
                r.attn_rel_err += ref_rel_err(out + (size_t)qh * d, ref, d);
                n_attn++;
            }
        }
        uint32_t stored;
        TU_OK(pkv_seq_length(cache, seq, l, &stored));
        assert_int_equal(stored, T);
        TU_OK(pkv_read_kv(cache, seq, l, kr, vr));
        for (size_t i = 0; i < (size_t)T * H * d; i++) {
            double e = ((double)kr[i] - k[i]) * ((double)kr[i] - k[i]);
            ke += e;
            ks += (double)k[i] * k[i];
            if (i < (size_t)PREFILL * H * d) kpe += e, kps += (double)k[i] * k[i];
            ve += ((double)vr[i] - v[i]) * ((double)vr[i] - v[i]);
            vs += (double)v[i] * v[i];
        }
    }
    pkv_cache_stats stats = {.struct_size = sizeof stats};
    TU_OK(pkv_cache_stats_get(cache, &stats));
    r.bits_per_element = stats.bits_per_element;
    r.k_rel_mse = ke / ks;
    r.k_prefill = kpe / kps;
    r.k_decode = (ke - kpe) / (ks - kps);
    r.v_rel_mse = ve / vs;
    r.attn_rel_err /= n_attn;
    pkv_cache_config rc = {.struct_size = sizeof rc}; /* as resolved (pkv_cache_config_resolve) */
    TU_OK(pkv_cache_get_config(cache, &rc));
    TU_OK(pkv_cache_free(cache));
    TU_OK(pkv_context_free(ctx));
    free(k), free(v), free(kr), free(vr), free(q), free(out), free(ref);
    printf("  %-7s %-6s %-6s G%-3u c%-3u %u bits: K rel MSE %.5f (prefill %.5f, decode %.5f)  V rel MSE %.5f  "
           "attention rel err %.5f  (%.2f bits/element)\n", pkv_mode_name(mode),
           mode == PKV_MODE_PATTERN ? pkv_k_assign_name((pkv_k_assign)rc.k_assign) : "",
           pkv_quantizer_name((pkv_quantizer)rc.quantizer), rc.group_size, rc.bank_capacity, bits, r.k_rel_mse, r.k_prefill, r.k_decode, r.v_rel_mse, r.attn_rel_err, r.bits_per_element);
    return r;
}

/* The paper's method (pkv_cache_config_paper: G 128, M 32, growing banks) with a key assignment and
 * quantizer */
static fidelity measure_q(pkv_mode mode, uint32_t bits, pkv_k_assign ka, pkv_quantizer quantizer)
{
    pkv_cache_config cfg = pkv_cache_config_paper();
    cfg.mode = mode, cfg.k_assign = ka, cfg.quantizer = quantizer;
    return measure_cfg(cfg, bits);
}

static fidelity measure_with(pkv_mode mode, uint32_t bits, pkv_k_assign ka)
{
    return measure_q(mode, bits, ka, PKV_QUANTIZER_MINMAX);
}
static fidelity measure(pkv_mode mode, uint32_t bits) { return measure_with(mode, bits, PKV_K_ASSIGN_MINMAX); }

static void test_fixture_shape(void **state)
{
    (void)state;
    assert_true(fx.tokens >= 4096);
    assert_int_equal(fx.head_dim, 64);
    assert_true(fx.q_heads > fx.kv_heads); /* grouped-query attention */
    /* real data, not zeros: every layer's keys vary */
    for (uint32_t l = 0; l < fx.layers; l++) {
        double s = 0;
        for (uint32_t t = 0; t < fx.tokens; t++) s += fabs(fixture_row(&fx, fx.k, fx.kv_heads, l, 0, t)[0]);
        assert_true(s > 0.0);
    }
}

/* The reference and the head mapping are right: the FP16 cache attends like fp64 on the fixture. */
static void test_fp16_matches_reference(void **state)
{
    (void)state;
    fidelity f = measure(PKV_MODE_FP16, 2);
    assert_true(f.attn_rel_err < 1e-4);
    assert_true(f.k_rel_mse < 1e-6);
}

static void test_pattern_beats_direct_at_2_bits(void **state)
{
    (void)state;
    fidelity p = measure(PKV_MODE_PATTERN, 2), dr = measure(PKV_MODE_DIRECT, 2);
    /* Measured on this fixture (CPU backend, G 128, M 32, prefill 512):
     *   attention rel err  PATTERN 0.538  DIRECT 0.622  (0.86x)
     *   V rel MSE          PATTERN 0.144  DIRECT 0.215  (0.67x)
     *   K rel MSE prefill  PATTERN 0.0552 DIRECT 0.0696 (0.79x: the k-means patterns fit these tokens)
     *   K rel MSE decode   PATTERN 0.0736 DIRECT 0.0706 (1.04x: NOT lower; see below)
     *   K rel MSE overall  PATTERN 0.0714 DIRECT 0.0704
     * After the prefill, keys at new positions do not match the banks well (post-RoPE keys move with
     * position), and the min-max reassignment of SPEC.md picks patterns that widen some channels'
     * ranges across a group, so per-channel K quantization gains nothing there. An independent numpy
     * model of the algorithm gives the same numbers. This test asserts what holds and prints the rest;
     * it does not claim a lower K error over the whole sequence, which this model does not show. */
    assert_true(p.attn_rel_err < 0.93 * dr.attn_rel_err);
    assert_true(p.v_rel_mse < 0.8 * dr.v_rel_mse);
    assert_true(p.k_prefill < 0.9 * dr.k_prefill);
    printf("  K rel MSE over all tokens, PATTERN / DIRECT = %.3f (decode part %.3f)\n", p.k_rel_mse / dr.k_rel_mse,
           p.k_decode / dr.k_decode);
}

/* The RANGE key assignment (pkv_k_assign; CPU only) on real keys: over the tokens flushed during
 * decode its K error is below DIRECT's (never a larger per-channel range cost than DIRECT's, by
 * construction), where the paper's min-max assignment is above it. Measured (CPU, 2 bits): K decode
 * rel MSE RANGE 0.0682, MINMAX 0.0736, DIRECT 0.0706; attention rel err RANGE 0.515, MINMAX 0.538. */
static void test_range_assignment_k_error_below_direct(void **state)
{
    (void)state;
    if (!on_cpu("  k_assign RANGE is CPU-only (other backends refuse it: test_k_assign)")) return;
    fidelity rg = measure_with(PKV_MODE_PATTERN, 2, PKV_K_ASSIGN_RANGE), dr = measure(PKV_MODE_DIRECT, 2);
    assert_true(rg.k_decode < dr.k_decode);
    assert_true(rg.k_prefill < 0.9 * dr.k_prefill);
    assert_true(rg.v_rel_mse < 0.8 * dr.v_rel_mse);
    assert_true(rg.attn_rel_err < 0.93 * dr.attn_rel_err);
}

/* The MSE quantizer and V-only patterns (pkv_quantizer, k_assign NONE; here on the CPU only) on real keys, 2 bits:
 * the paper's PATTERN with the MSE quantizer has a K error over the decode-flushed tokens below
 * DIRECT's (KIVI's min-max) and a lower attention error; the rows of DIRECT with the MSE quantizer and
 * of V-only patterns are printed (docs/NUMERICS.md, bench/RESULTS.md 2026-12-03 "phase 3"). */
static void test_mse_quantizer_k_error_below_direct(void **state)
{
    (void)state;
    if (!on_cpu("  the MSE quantizer and k_assign NONE are CPU-only (other backends refuse them)")) return;
    fidelity dr = measure(PKV_MODE_DIRECT, 2), p = measure(PKV_MODE_PATTERN, 2);
    fidelity dm = measure_q(PKV_MODE_DIRECT, 2, PKV_K_ASSIGN_MINMAX, PKV_QUANTIZER_MSE);
    fidelity pm = measure_q(PKV_MODE_PATTERN, 2, PKV_K_ASSIGN_MINMAX, PKV_QUANTIZER_MSE);
    fidelity pn = measure_with(PKV_MODE_PATTERN, 2, PKV_K_ASSIGN_NONE);
    assert_true(pm.k_decode < dr.k_decode);
    assert_true(pm.attn_rel_err < p.attn_rel_err);
    assert_true(pm.v_rel_mse < p.v_rel_mse);
    assert_true(dm.k_decode < dr.k_decode);
    assert_true(pn.k_decode == dr.k_decode); /* DIRECT's keys */
    assert_true(pn.bits_per_element < p.bits_per_element); /* one index per token */
}

/* The defaults (issue 14): PATTERN G 64, banks frozen at the 24 mined patterns, the MSE quantizer. On
 * real KV at 2 bits, against the paper's PATTERN and KIVI as published (DIRECT, G 128, min-max) and
 * against DIRECT with G 32 and the MSE quantizer (which stores more): lower K error over the
 * decode-flushed tokens, lower V error and attention error, in fewer bits per element than DIRECT G 32.
 * Measured (CPU): default K decode 0.0314, V 0.0816, attention 0.3912 at 2.73 b/el; the paper's PATTERN
 * 0.0736 / 0.1436 / 0.5379 at 2.74; KIVI 0.0706 / 0.2146 / 0.6219 at 2.38; DIRECT G 32 MSE 0.0222 /
 * 0.1063 / 0.3933 at 2.75 (finer K scales; the attention error is close: equal memory is the claim). */
static void test_defaults_beat_the_paper_and_direct(void **state)
{
    (void)state;
    if (!on_cpu("  (the CPU backend's figures; test_mse_v_matches_the_cpu_on_real_kv covers the others)")) return;
    fidelity df = measure_cfg(pkv_cache_config_default(), 2);
    fidelity paper = measure(PKV_MODE_PATTERN, 2), kivi = measure(PKV_MODE_DIRECT, 2);
    pkv_cache_config d32 = pkv_cache_config_default();
    d32.mode = PKV_MODE_DIRECT, d32.group_size = 32, d32.quantizer = PKV_QUANTIZER_MSE;
    fidelity dm = measure_cfg(d32, 2);
    assert_true(df.k_decode < kivi.k_decode && df.k_decode < paper.k_decode);
    assert_true(df.attn_rel_err < paper.attn_rel_err && df.attn_rel_err < dm.attn_rel_err);
    assert_true(df.v_rel_mse < dm.v_rel_mse);
    assert_true(df.bits_per_element < dm.bits_per_element);
}

/* The MSE_V quantizer on real KV, on the backend of PKV_TEST_BACKEND against the CPU backend: one layer,
 * the 512-token prefill then two steps of 128 (flushes), PATTERN at 2 bits: the same tokens read back,
 * bit for bit (the blocks are the same bytes; test_parity checks them directly on synthetic data). */
static void test_mse_v_matches_the_cpu_on_real_kv(void **state)
{
    (void)state;
    if (tu_backend() == PKV_BACKEND_CPU) {
        printf("  (a GPU backend against the CPU's: nothing to compare on the CPU)\n");
        return;
    }
    const uint32_t H = fx.kv_heads, d = fx.head_dim, T = PREFILL + 2 * STEP;
    const size_t n = (size_t)T * H * d;
    float *k = malloc((size_t)fx.tokens * H * d * sizeof *k), *v = malloc((size_t)fx.tokens * H * d * sizeof *v);
    float *kr[2], *vr[2];
    assert_non_null(k), assert_non_null(v);
    layer_tokens(fx.k, 0, k);
    layer_tokens(fx.v, 0, v);
    pkv_context *ctx[2] = {tu_cpu_context(1), tu_context()};
    for (int b = 0; b < 2; b++) {
        pkv_cache_config cfg = pkv_cache_config_default();
        cfg.n_layers = 1, cfg.n_kv_heads = H, cfg.head_dim = d, cfg.quantizer = PKV_QUANTIZER_MSE_V;
        pkv_cache *c;
        pkv_seq seq;
        TU_OK(pkv_cache_create(ctx[b], &cfg, &c));
        TU_OK(pkv_seq_create(c, &seq));
        for (uint32_t len = 0; len < T;) {
            uint32_t m = len == 0 ? PREFILL : STEP;
            TU_OK(pkv_append(c, seq, 0, m, k + (size_t)len * H * d, v + (size_t)len * H * d, PKV_F32));
            len += m;
        }
        kr[b] = malloc(n * sizeof(float)), vr[b] = malloc(n * sizeof(float));
        assert_non_null(kr[b]), assert_non_null(vr[b]);
        TU_OK(pkv_read_kv(c, seq, 0, kr[b], vr[b]));
        TU_OK(pkv_cache_free(c));
        TU_OK(pkv_context_free(ctx[b]));
    }
    assert_memory_equal(kr[0], kr[1], n * sizeof(float));
    assert_memory_equal(vr[0], vr[1], n * sizeof(float));
    double e = 0, ss = 0;
    for (size_t i = 0; i < (size_t)(T - 128) * H * d; i++) /* the compressed tokens (the window's 128 are fp16) */
        e += ((double)vr[1][i] - v[i]) * ((double)vr[1][i] - v[i]), ss += (double)v[i] * v[i];
    printf("  PATTERN 2-bit MSE_V, layer 0, %u tokens: %s equals the CPU bit for bit (V rel MSE %.5f)\n", T,
           pkv_backend_name(tu_backend()), e / ss);
    for (int b = 0; b < 2; b++) free(kr[b]), free(vr[b]);
    free(k), free(v);
}

static void test_more_bits_less_error(void **state)
{
    (void)state;
    fidelity f[3];
    for (uint32_t b = 2; b <= 4; b++) f[b - 2] = measure(PKV_MODE_PATTERN, b);
    for (int i = 0; i < 2; i++) {
        assert_true(f[i + 1].k_rel_mse < 0.5 * f[i].k_rel_mse);
        assert_true(f[i + 1].attn_rel_err < f[i].attn_rel_err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_shape),
        cmocka_unit_test(test_fp16_matches_reference),
        cmocka_unit_test(test_pattern_beats_direct_at_2_bits),
        cmocka_unit_test(test_range_assignment_k_error_below_direct),
        cmocka_unit_test(test_mse_quantizer_k_error_below_direct),
        cmocka_unit_test(test_defaults_beat_the_paper_and_direct),
        cmocka_unit_test(test_mse_v_matches_the_cpu_on_real_kv),
        cmocka_unit_test(test_more_bits_less_error),
    };
    return tu_run_tests(tests, setup, teardown);
}
