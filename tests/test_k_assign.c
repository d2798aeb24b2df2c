/* Key assignment variants (pkv_k_assign, src/cpu/cpu_k_assign.c) against fp64 references:
 * - L2: every key's pattern is its L2-nearest in fp64 (up to float rounding on near ties);
 * - RANGE: per group, the fp64 cost sum_i range_i(x_t - P[a_t])^2 is no larger than with every token
 *   on one pattern (DIRECT's ranges) nor than with the L2 assignment, and no single token's move
 *   lowers it (a local optimum of the coordinate descent), on every CPU SIMD level;
 * - through the API on the backend of PKV_TEST_BACKEND: a backend without the variant refuses the
 *   cache with PKV_ERR_UNSUPPORTED; on the CPU, attention over the cache equals fp64 attention over
 *   the tokens it stores (read back), and the stored keys are closer to the input than with the
 *   paper's assignment on structured data; pkv_cache_save refuses the variant (no field in the file format). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu/cpu_k_assign.h"
#include "testutil.h"

/* fp64 cost of one group's assignment. */
static double cost64(const float *x, uint32_t G, uint32_t d, const float *P, const uint8_t *a)
{
    double c = 0.0;
    for (uint32_t i = 0; i < d; i++) {
        double hi = -INFINITY, lo = INFINITY;
        for (uint32_t t = 0; t < G; t++) {
            double r = (double)x[(size_t)t * d + i] - P[(size_t)a[t] * d + i];
            hi = r > hi ? r : hi, lo = r < lo ? r : lo;
        }
        c += (hi - lo) * (hi - lo);
    }
    return c;
}

static void random_problem(tu_rng *r, uint32_t n, uint32_t d, uint32_t M, float *x, float *P)
{
    tu_structured_kv(r, n, 1, d, 6, 0.3f, x);
    for (uint32_t m = 0; m < M; m++) { /* patterns: data points plus noise, some far away */
        uint32_t t = (uint32_t)(tu_uniform(r) * n);
        for (uint32_t i = 0; i < d; i++)
            P[(size_t)m * d + i] = x[(size_t)t * d + i] + (float)(tu_normal(r) * (m % 4 == 3 ? 2.0 : 0.2));
    }
}

static void range_is_a_local_optimum_below_direct_and_l2(void **state)
{
    (void)state;
    const pkv_simd_level levels[] = {PKV_SIMD_SCALAR, pkv_cpu_simd_best()};
    tu_rng r = {0xA551};
    for (int li = 0; li < 2; li++) {
        const pkv_cpu_kernels *k = pkv_cpu_kernels_for(levels[li]);
        for (int trial = 0; trial < 6; trial++) {
            const uint32_t d = trial % 2 ? 128 : 64, G = trial < 2 ? 32 : trial < 4 ? 64 : 128, M = 3 + 13 * trial;
            const uint32_t n = 2 * G;
            float *x = malloc((size_t)n * d * sizeof *x), *P = malloc((size_t)M * d * sizeof *P);
            uint8_t *a = malloc(n), *b = malloc(n);
            uint32_t *l2 = malloc(n * sizeof *l2);
            assert_non_null(x), assert_non_null(P), assert_non_null(a), assert_non_null(b), assert_non_null(l2);
            random_problem(&r, n, d, M, x, P);
            assert_int_equal(pkv_cpu_assign_k(k, PKV_K_ASSIGN_RANGE, 1, x, n, G, d, P, M, a), 0);
            k->argmin_l2(x, n, d, P, M, l2);
            for (uint32_t g0 = 0; g0 < n; g0 += G) {
                const float *xg = x + (size_t)g0 * d;
                double c = cost64(xg, G, d, P, a + g0), tol = 1e-5 * c + 1e-12;
                for (uint32_t t = 0; t < G; t++) b[t] = (uint8_t)l2[g0 + t];
                assert_true(c <= cost64(xg, G, d, P, b) + tol);
                for (uint32_t m = 0; m < M; m++) { /* one pattern for all: DIRECT's ranges */
                    memset(b, (int)m, G);
                    assert_true(c <= cost64(xg, G, d, P, b) + tol);
                }
                memcpy(b, a + g0, G);
                for (uint32_t t = 0; t < G; t++) /* no single move improves it */
                    for (uint32_t m = 0; m < M; m++) {
                        b[t] = (uint8_t)m;
                        assert_true(cost64(xg, G, d, P, b) >= c - tol);
                        b[t] = a[g0 + t];
                    }
            }
            /* L2 at a flush: the fp64 nearest, up to float rounding */
            assert_int_equal(pkv_cpu_assign_k(k, PKV_K_ASSIGN_L2, 1, x, n, G, d, P, M, a), 0);
            for (uint32_t t = 0; t < n; t++) {
                double best = INFINITY, got = 0;
                for (uint32_t m = 0; m < M; m++) {
                    double s = 0;
                    for (uint32_t i = 0; i < d; i++) {
                        double e = (double)x[(size_t)t * d + i] - P[(size_t)m * d + i];
                        s += e * e;
                    }
                    best = s < best ? s : best;
                    if (m == a[t]) got = s;
                }
                assert_true(got <= best * (1 + 1e-5) + 1e-9);
            }
            free(x), free(P), free(a), free(b), free(l2);
        }
    }
}

/* A cache of every variant over structured data: prompt of 256 (mined), then appends of 40. */
static void api_on_the_test_backend(void **state)
{
    (void)state;
    pkv_context *ctx = tu_context();
    const uint32_t H = 2, d = 64, T = 640, L = 1;
    float *k = malloc((size_t)T * H * d * sizeof *k), *v = malloc((size_t)T * H * d * sizeof *v);
    float *kr = malloc((size_t)T * H * d * sizeof *kr), *vr = malloc((size_t)T * H * d * sizeof *vr);
    float q[4 * 64], out[4 * 64];
    double ref[64];
    assert_non_null(k), assert_non_null(v), assert_non_null(kr), assert_non_null(vr);
    tu_rng r = {0xC0DE};
    tu_structured_kv(&r, T, H, d, 12, 0.25f, k);
    tu_structured_kv(&r, T, H, d, 12, 0.25f, v);
    tu_random(&r, 4 * 64, 1.0f, q);
    double kerr[4] = {0};
    pkv_device_info dev = {.struct_size = sizeof dev};
    char why[256];
    TU_OK(pkv_context_device(ctx, &dev, why, sizeof why));
    const int cpu = dev.backend == PKV_BACKEND_CPU;
    for (uint32_t ka = PKV_K_ASSIGN_MINMAX; ka <= PKV_K_ASSIGN_NONE; ka++) {
        pkv_cache_config cfg = pkv_cache_config_default();
        cfg.n_layers = L, cfg.n_kv_heads = H, cfg.head_dim = d, cfg.group_size = 32, cfg.window = 64;
        cfg.k_assign = ka;
        pkv_cache *c = NULL;
        pkv_status s = pkv_cache_create(ctx, &cfg, &c);
        if (ka != PKV_K_ASSIGN_MINMAX && !cpu) {
            assert_int_equal(s, PKV_ERR_UNSUPPORTED);
            assert_non_null(strstr(pkv_last_error(), pkv_k_assign_name((pkv_k_assign)ka)));
            cfg.mode = PKV_MODE_DIRECT; /* meaningless outside PATTERN: accepted */
            TU_OK(pkv_cache_create(ctx, &cfg, &c));
            TU_OK(pkv_cache_free(c));
            continue;
        }
        TU_OK(s);
        pkv_cache_config back = {.struct_size = sizeof back};
        TU_OK(pkv_cache_get_config(c, &back));
        assert_int_equal(back.k_assign, ka);
        pkv_seq seq;
        TU_OK(pkv_seq_create(c, &seq));
        for (uint32_t len = 0; len < T;) {
            uint32_t n = len == 0 ? 256 : (T - len < 40 ? T - len : 40);
            TU_OK(pkv_append(c, seq, 0, n, k + (size_t)len * H * d, v + (size_t)len * H * d, PKV_F32));
            len += n;
            /* attention over the cache = fp64 attention over what it stores */
            TU_OK(pkv_read_kv(c, seq, 0, kr, vr));
            pkv_attention_params p = {.struct_size = sizeof p, .seqs = &seq, .n_seqs = 1, .layer = 0, .q_len = 1,
                                      .n_q_heads = 4, .q_dtype = PKV_F32};
            TU_OK(pkv_attention(c, &p, q, out));
            for (uint32_t qh = 0; qh < 4; qh++) {
                uint32_t h = qh / 2;
                ref_attention(q + qh * d, kr + h * d, vr + h * d, len, d, (size_t)H * d, 1.0 / sqrt((double)d), ref);
                assert_true(ref_rel_err(out + qh * d, ref, d) < 2e-3);
            }
        }
        double e = 0, s2 = 0;
        for (size_t i = (size_t)256 * H * d; i < (size_t)T * H * d; i++) { /* the keys flushed after the prompt */
            e += ((double)kr[i] - k[i]) * ((double)kr[i] - k[i]);
            s2 += (double)k[i] * k[i];
        }
        kerr[ka] = e / s2;
        char path[] = "/tmp/pkv_test_k_assign_XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        s = pkv_cache_save(c, path);
        remove(path);
        assert_int_equal(s, ka == PKV_K_ASSIGN_MINMAX ? PKV_OK : PKV_ERR_UNSUPPORTED);
        TU_OK(pkv_cache_free(c));
        printf("  k_assign %-6s: K relative MSE of the flushed keys %.5f\n", pkv_k_assign_name((pkv_k_assign)ka),
               kerr[ka]);
    }
    if (cpu) {
        assert_true(kerr[PKV_K_ASSIGN_L2] < kerr[PKV_K_ASSIGN_MINMAX]);
        assert_true(kerr[PKV_K_ASSIGN_RANGE] < kerr[PKV_K_ASSIGN_MINMAX]);
    }
    pkv_cache_config bad = pkv_cache_config_default();
    bad.k_assign = 4;
    pkv_cache *c = NULL;
    assert_int_equal(pkv_cache_create(ctx, &bad, &c), PKV_ERR_INVALID_CONFIG);
    TU_OK(pkv_context_free(ctx));
    free(k), free(v), free(kr), free(vr);
}

/* k_assign NONE (V-only patterns) on the CPU: the keys read back are DIRECT's bit for bit, the values
 * the paper's PATTERN's bit for bit, a block is G bytes smaller, and attention over the cache equals
 * fp64 attention over what it stores (prompt of 256, then appends of 24 across several flushes). */
static void none_is_direct_keys_and_pattern_values(void **state)
{
    (void)state;
    pkv_context *ctx = tu_context();
    pkv_device_info dev = {.struct_size = sizeof dev};
    char why[256];
    TU_OK(pkv_context_device(ctx, &dev, why, sizeof why));
    if (dev.backend != PKV_BACKEND_CPU) { /* refused: api_on_the_test_backend */
        TU_OK(pkv_context_free(ctx));
        return;
    }
    const uint32_t H = 2, d = 64, T = 600;
    const size_t n = (size_t)T * H * d;
    float *k = malloc(n * sizeof *k), *v = malloc(n * sizeof *v), *kr[3], *vr[3];
    assert_non_null(k), assert_non_null(v);
    tu_rng r = {0x0DD};
    tu_structured_kv(&r, T, H, d, 12, 0.25f, k);
    tu_structured_kv(&r, T, H, d, 12, 0.25f, v);
    uint64_t bytes[3];
    for (int c3 = 0; c3 < 3; c3++) { /* DIRECT, PATTERN MINMAX, PATTERN NONE */
        kr[c3] = malloc(n * sizeof(float)), vr[c3] = malloc(n * sizeof(float));
        assert_non_null(kr[c3]), assert_non_null(vr[c3]);
        pkv_cache_config cfg = pkv_cache_config_default();
        cfg.n_layers = 1, cfg.n_kv_heads = H, cfg.head_dim = d, cfg.group_size = 32, cfg.window = 64;
        cfg.mode = c3 == 0 ? PKV_MODE_DIRECT : PKV_MODE_PATTERN;
        cfg.k_assign = c3 == 2 ? PKV_K_ASSIGN_NONE : PKV_K_ASSIGN_MINMAX;
        cfg.quantizer = PKV_QUANTIZER_MSE; /* one quantizer for all three (AUTO differs between the modes) */
        pkv_cache *c = NULL;
        TU_OK(pkv_cache_create(ctx, &cfg, &c));
        pkv_seq seq;
        TU_OK(pkv_seq_create(c, &seq));
        for (uint32_t len = 0; len < T;) {
            uint32_t m = len == 0 ? 256 : (T - len < 24 ? T - len : 24);
            TU_OK(pkv_append(c, seq, 0, m, k + (size_t)len * H * d, v + (size_t)len * H * d, PKV_F32));
            len += m;
            TU_OK(pkv_read_kv(c, seq, 0, kr[c3], vr[c3]));
            float q[4 * 64], out[4 * 64];
            double ref[64];
            tu_random(&r, 4 * 64, 1.0f, q);
            pkv_attention_params p = {.struct_size = sizeof p, .seqs = &seq, .n_seqs = 1, .layer = 0, .q_len = 1,
                                      .n_q_heads = 4, .q_dtype = PKV_F32};
            TU_OK(pkv_attention(c, &p, q, out));
            for (uint32_t qh = 0; qh < 4; qh++) {
                uint32_t h = qh / 2;
                ref_attention(q + qh * d, kr[c3] + h * d, vr[c3] + h * d, len, d, (size_t)H * d, 1.0 / sqrt((double)d), ref);
                assert_true(ref_rel_err(out + qh * d, ref, d) < 2e-3);
            }
        }
        pkv_cache_stats cs = {.struct_size = sizeof cs};
        TU_OK(pkv_cache_stats_get(c, &cs));
        bytes[c3] = cs.bytes_indices;
        TU_OK(pkv_cache_free(c));
    }
    assert_memory_equal(kr[2], kr[0], n * sizeof(float));
    assert_memory_equal(vr[2], vr[1], n * sizeof(float));
    assert_true(bytes[2] < bytes[1]);
    assert_int_equal(bytes[1], 2 * bytes[2]); /* one index per token instead of two */
    for (int c3 = 0; c3 < 3; c3++) free(kr[c3]), free(vr[c3]);
    free(k), free(v);
    TU_OK(pkv_context_free(ctx));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(range_is_a_local_optimum_below_direct_and_l2),
        cmocka_unit_test(api_on_the_test_backend),
        cmocka_unit_test(none_is_direct_keys_and_pattern_values),
    };
    return tu_run_tests(tests, NULL, NULL);
}
