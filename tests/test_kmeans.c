/* Prefill mining, assignments, Chebyshev centres and bounded banks, through the public API. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "f16.h"
#include "rng.h"
#include "testutil.h"

/* Tokens around `nc` planted centres (far apart), noise `eps`. Returns the centres [H][nc][d]. */
static float *planted(tu_rng *r, uint32_t n, uint32_t H, uint32_t d, uint32_t nc, float eps, float *x)
{
    float *cent = malloc((size_t)H * nc * d * sizeof(float));
    tu_random(r, (size_t)H * nc * d, 4.0f, cent);
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t h = 0; h < H; h++) {
            uint32_t m = (uint32_t)(tu_uniform(r) * nc);
            for (uint32_t i = 0; i < d; i++)
                x[((size_t)t * H + h) * d + i] = cent[((size_t)h * nc + m) * d + i] + eps * (float)tu_normal(r);
        }
    return cent;
}

static void kmeans_finds_planted_clusters(void **state)
{
    (void)state;
    const uint32_t H = 2, d = 32, n = 512, nc = 4;
    tu_rng r = {2024};
    float *k = malloc((size_t)n * H * d * sizeof(float)), *v = malloc((size_t)n * H * d * sizeof(float));
    float *ck = planted(&r, n, H, d, nc, 0.01f, k), *cv = planted(&r, n, H, d, nc, 0.01f, v);
    pkv_context *ctx = tu_context();
    pkv_cache_config cfg = tu_config(1, H, d, 4, 64, PKV_MODE_PATTERN);
    cfg.n_patterns = 16;
    pkv_cache *c;
    pkv_seq s;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    TU_OK(pkv_seq_create(c, &s));
    TU_OK(pkv_append(c, s, 0, n, k, v, PKV_F32));
    float PK[16 * 32], PV[16 * 32];
    for (uint32_t h = 0; h < H; h++) {
        assert_int_equal(tu_read_bank(c, s, 0, h, PK, PV), 16);
        for (int kv = 0; kv < 2; kv++) {
            const float *cent = (kv ? cv : ck) + (size_t)h * nc * d, *P = kv ? PV : PK;
            for (uint32_t m = 0; m < nc; m++) { /* every planted centre has a pattern on it */
                double best = 1e30;
                for (uint32_t p = 0; p < 16; p++) {
                    double dist = 0;
                    for (uint32_t i = 0; i < d; i++) dist += pow(P[p * d + i] - cent[m * d + i], 2);
                    best = fmin(best, sqrt(dist));
                }
                assert_true(best < 0.05);
            }
        }
        /* Stored K indices equal the brute-force L2 argmin over the stored patterns. */
        const pkv_geom *g = tu_geom(c);
        uint8_t *blk = malloc(g->block_bytes);
        for (uint32_t b = 0; b < n / g->G; b++) {
            tu_read_block(c, s, 0, h, b, blk);
            for (uint32_t t = 0; t < g->G; t++) {
                const float *x = k + ((size_t)(b * g->G + t) * H + h) * d;
                uint32_t best = 0;
                double bd = 1e300, second = 1e300;
                for (uint32_t p = 0; p < 16; p++) {
                    double dist = 0; /* the library sees the fp16 value of x */
                    for (uint32_t i = 0; i < d; i++) dist += pow((double)pkv_f16_to_f32(pkv_f32_to_f16(x[i])) - PK[p * d + i], 2);
                    if (dist < bd) second = bd, bd = dist, best = p;
                    else if (dist < second) second = dist;
                }
                if (second - bd > 1e-4 * bd) assert_int_equal(blk[g->off_kidx + t], best);
            }
        }
        free(blk);
    }
    pkv_cache_free(c);
    pkv_context_free(ctx);
    free(k), free(v), free(ck), free(cv);
}

static void flush_appends_the_chebyshev_centre_and_reassigns_by_minmax(void **state)
{
    (void)state;
    const uint32_t H = 1, d = 40, G = 32;
    tu_rng r = {31337};
    float k[4 * 32 * 40], v[4 * 32 * 40];
    tu_random(&r, sizeof k / sizeof k[0], 1.0f, k);
    tu_random(&r, sizeof v / sizeof v[0], 1.0f, v);
    pkv_context *ctx = tu_context();
    pkv_cache_config cfg = tu_config(1, H, d, 2, G, PKV_MODE_PATTERN);
    cfg.n_patterns = 8;
    pkv_cache *c;
    pkv_seq s;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    TU_OK(pkv_seq_create(c, &s));
    TU_OK(pkv_append(c, s, 0, 2 * G, k, v, PKV_F32));   /* mining: 8 patterns, 2 blocks */
    TU_OK(pkv_append(c, s, 0, G - 1, k + 2 * G * d, v + 2 * G * d, PKV_F32)); /* window, no flush */
    float PK[16 * 40], PV[16 * 40];
    assert_int_equal(tu_read_bank(c, s, 0, 0, PK, PV), 8);
    TU_OK(pkv_append(c, s, 0, 1, k + (3 * G - 1) * d, v + (3 * G - 1) * d, PKV_F32)); /* flush */
    assert_int_equal(tu_read_bank(c, s, 0, 0, PK, PV), 9);
    /* Pattern 8 is the per-channel (max + min) / 2 of the window, as fp16 (window values are fp16). */
    for (int kv = 0; kv < 2; kv++) {
        const float *x = (kv ? v : k) + 2 * G * d, *P = (kv ? PV : PK) + 8 * d;
        for (uint32_t i = 0; i < d; i++) {
            double mn = 1e30, mx = -1e30;
            for (uint32_t t = 0; t < G; t++) mn = fmin(mn, x[t * d + i]), mx = fmax(mx, x[t * d + i]);
            assert_true(fabs(P[i] - (mn + mx) / 2) <= 1e-3 * (fabs(mn) + fabs(mx)) + 1e-6);
        }
    }
    /* Each window token's K index is the min-max-distance argmin over the 9 patterns. */
    const pkv_geom *g = tu_geom(c);
    uint8_t *blk = malloc(g->block_bytes);
    tu_read_block(c, s, 0, 0, 2, blk);
    for (uint32_t t = 0; t < G; t++) {
        const float *x = k + (2 * G + t) * d;
        double best = 1e300, second = 1e300;
        uint32_t arg = 0;
        for (uint32_t p = 0; p < 9; p++) {
            double mn = 1e30, mx = -1e30;
            for (uint32_t i = 0; i < d; i++) {
                double rr = (double)x[i] - PK[p * d + i];
                mn = fmin(mn, rr), mx = fmax(mx, rr);
            }
            if (mx - mn < best) second = best, best = mx - mn, arg = p;
            else if (mx - mn < second) second = mx - mn;
        }
        if (second - best > 1e-2) assert_int_equal(blk[g->off_kidx + t], arg);
    }
    free(blk);
    pkv_cache_free(c);
    pkv_context_free(ctx);
}

static void bank_capacity_is_honoured_over_a_long_append(void **state)
{
    (void)state;
    const uint32_t H = 1, d = 32, G = 32, n = 100000, chunk = 4096;
    tu_rng r = {55};
    pkv_context *ctx = tu_context();
    pkv_cache_config cfg = tu_config(1, H, d, 2, G, PKV_MODE_PATTERN);
    cfg.n_patterns = 8;
    cfg.bank_capacity = 40;
    cfg.memory_budget = 32ull << 20;
    pkv_cache *c;
    pkv_seq s;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    TU_OK(pkv_seq_create(c, &s));
    float *k = malloc((size_t)chunk * d * sizeof(float)), *v = malloc((size_t)chunk * d * sizeof(float));
    pkv_cache_stats st = {.struct_size = sizeof st};
    uint64_t patterns_at_half = 0;
    for (uint32_t done = 0; done < n; done += chunk) {
        uint32_t m = n - done < chunk ? n - done : chunk;
        tu_random(&r, (size_t)m * d, 1.0f, k);
        tu_random(&r, (size_t)m * d, 1.0f, v);
        TU_OK(pkv_append(c, s, 0, m, k, v, PKV_F32));
        TU_OK(pkv_cache_stats_get(c, &st));
        if (done >= n / 2 && !patterns_at_half) patterns_at_half = st.bytes_patterns;
    }
    float *PK = malloc(256 * d * sizeof(float)), *PV = malloc(256 * d * sizeof(float));
    assert_int_equal(tu_read_bank(c, s, 0, 0, PK, PV), 40);
    TU_OK(pkv_cache_stats_get(c, &st));
    assert_int_equal(st.bytes_patterns, 40ull * d * 2 * 2);
    assert_int_equal(st.bytes_patterns, patterns_at_half); /* frozen: no growth in the second half */
    uint32_t len;
    TU_OK(pkv_seq_length(c, s, 0, &len));
    assert_int_equal(len, n);
    assert_true(st.bits_per_element < 3.5 && st.bits_per_element > 2.0);
    free(k), free(v), free(PK), free(PV);
    pkv_cache_free(c);
    pkv_context_free(ctx);
}

/* The default configuration (G 64, bank capacity = n_patterns = 24): the banks hold the mined patterns
 * and nothing more after many flushes; the cache reports the resolved values. */
static void default_banks_are_frozen_at_the_mined_patterns(void **state)
{
    (void)state;
    const uint32_t H = 2, d = 32, n = 64 * 12;
    tu_rng r = {56};
    pkv_context *ctx = tu_context();
    pkv_cache_config cfg = pkv_cache_config_default();
    cfg.n_kv_heads = H, cfg.head_dim = d, cfg.memory_budget = 16ull << 20;
    pkv_cache *c;
    pkv_seq s;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    pkv_cache_config got = {.struct_size = sizeof got};
    TU_OK(pkv_cache_get_config(c, &got));
    assert_int_equal(got.group_size, 64);
    assert_int_equal(got.bank_capacity, 24);
    assert_int_equal(got.n_patterns, 24);
    TU_OK(pkv_seq_create(c, &s));
    float *k = malloc((size_t)n * H * d * sizeof(float)), *v = malloc((size_t)n * H * d * sizeof(float));
    tu_random(&r, (size_t)n * H * d, 1.0f, k);
    tu_random(&r, (size_t)n * H * d, 1.0f, v);
    TU_OK(pkv_append(c, s, 0, 128, k, v, PKV_F32)); /* the prompt: mined */
    for (uint32_t t = 128; t < n; t++) /* decode: 5 flushes of the 128-token window */
        TU_OK(pkv_append(c, s, 0, 1, k + (size_t)t * H * d, v + (size_t)t * H * d, PKV_F32));
    float *PK = malloc(256 * d * sizeof(float)), *PV = malloc(256 * d * sizeof(float));
    for (uint32_t h = 0; h < H; h++) assert_int_equal(tu_read_bank(c, s, 0, h, PK, PV), 24);
    uint32_t len;
    TU_OK(pkv_seq_length(c, s, 0, &len));
    assert_int_equal(len, n);
    free(k), free(v), free(PK), free(PV);
    pkv_cache_free(c);
    pkv_context_free(ctx);
}

/* docs/NUMERICS.md's k-means, written out plainly: chunk sums of PKV_KMEANS_CHUNK tokens, then the
 * chunk sums pairwise level by level (odd last one moves up). x [n][d] fp32 (from fp16). */
static void reference_kmeans(const float *x, uint32_t n, uint32_t d, uint32_t M, const uint32_t *init, uint32_t iters,
                             float tol2, float *c)
{
    const uint32_t nc = (n + PKV_KMEANS_CHUNK - 1) / PKV_KMEANS_CHUNK;
    uint32_t *a = malloc(n * sizeof *a), *count = malloc(M * sizeof *count);
    float *part = malloc((size_t)nc * M * d * sizeof *part);
    for (uint32_t m = 0; m < M; m++) memcpy(c + (size_t)m * d, x + (size_t)init[m] * d, d * sizeof *c);
    for (uint32_t it = 0; it < iters; it++) {
        for (uint32_t t = 0; t < n; t++) {
            float best = 0;
            for (uint32_t m = 0; m < M; m++) {
                float acc = 0;
                for (uint32_t i = 0; i < d; i++) {
                    float diff = x[(size_t)t * d + i] - c[(size_t)m * d + i];
                    float sq = diff * diff;
                    acc = acc + sq;
                }
                if (m == 0 || acc < best) best = acc, a[t] = m;
            }
        }
        memset(part, 0, (size_t)nc * M * d * sizeof *part);
        memset(count, 0, M * sizeof *count);
        for (uint32_t t = 0; t < n; t++) {
            count[a[t]]++;
            float *p = part + ((size_t)(t / PKV_KMEANS_CHUNK) * M + a[t]) * d;
            for (uint32_t i = 0; i < d; i++) p[i] = p[i] + x[(size_t)t * d + i];
        }
        for (uint32_t len = nc; len > 1; len = (len + 1) / 2) {
            for (uint32_t k = 0; k < len / 2; k++)
                for (size_t e = 0; e < (size_t)M * d; e++)
                    part[k * M * d + e] = part[2 * k * M * d + e] + part[(2 * k + 1) * M * d + e];
            if (len % 2) memcpy(part + (size_t)(len / 2) * M * d, part + (size_t)(len - 1) * M * d, (size_t)M * d * sizeof *part);
        }
        float shift2 = 0;
        for (uint32_t m = 0; m < M; m++) {
            if (!count[m]) continue;
            float acc = 0, r = (float)(1.0 / count[m]);
            for (uint32_t i = 0; i < d; i++) {
                float nv = part[(size_t)m * d + i] * r, diff = nv - c[(size_t)m * d + i], sq = diff * diff;
                acc = acc + sq;
                c[(size_t)m * d + i] = nv;
            }
            if (acc > shift2) shift2 = acc;
        }
        if (shift2 < tol2) break;
    }
    free(a), free(count), free(part);
}

/* A 32768-token prompt into two layers at once: every bank is the plain k-means above, bit for bit
 * (64 chunks of 512 tokens summed pairwise), on the backend under test. */
/* sample: pkv_cache_config.kmeans_sample (0: all tokens; else k-means over the strided sample). */
static void mine_32k(uint32_t sample)
{
    enum { NL = 2, H = 1, d = 32, M = 8, n = 32768 };
    tu_rng r = {777};
    float *kv[2][NL];
    for (int l = 0; l < NL; l++) {
        kv[0][l] = malloc((size_t)n * H * d * sizeof(float));
        kv[1][l] = malloc((size_t)n * H * d * sizeof(float));
        tu_structured_kv(&r, n, H, d, 6, 0.3f, kv[0][l]);
        tu_random(&r, (size_t)n * H * d, 1.0f, kv[1][l]);
    }
    pkv_context *ctx = tu_context();
    pkv_cache_config cfg = tu_config(NL, H, d, 2, 32, PKV_MODE_PATTERN);
    cfg.n_patterns = M;
    cfg.kmeans_iters = 12;
    cfg.kmeans_sample = sample;
    cfg.memory_budget = 64u << 20;
    const uint32_t ns = pkv_sample_count(n, sample);
    pkv_cache *c;
    pkv_seq s;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    TU_OK(pkv_seq_create(c, &s));
    pkv_append_params p = pkv_append_params_default();
    p.seq = s;
    p.n_tokens = n;
    TU_OK(pkv_append_layers(c, &p, (const void *const *)kv[0], (const void *const *)kv[1]));
    float *x = malloc((size_t)n * d * sizeof(float)), *xs = malloc((size_t)ns * d * sizeof(float)), cent[M * d];
    float PK[M * d], PV[M * d];
    uint32_t init[M], *scratch = malloc(n * sizeof *scratch);
    for (uint32_t i = 0; i < n; i++) scratch[i] = i;
    for (uint32_t l = 0; l < NL; l++) {
        assert_int_equal(tu_read_bank(c, s, l, 0, PK, PV), M);
        for (uint32_t k = 0; k < 2; k++) {
            for (size_t e = 0; e < (size_t)n * d; e++) x[e] = pkv_f16_to_f32(pkv_f32_to_f16(kv[k][l][e]));
            for (uint32_t j = 0; j < ns; j++)
                memcpy(xs + (size_t)j * d, x + (size_t)pkv_sample_token(j, n, ns) * d, d * sizeof *xs);
            pkv_draw_distinct(pkv_init_seed(cfg.seed, l, 0, k), ns, M, init, scratch);
            reference_kmeans(xs, ns, d, M, init, cfg.kmeans_iters, cfg.kmeans_tol * cfg.kmeans_tol, cent);
            for (uint32_t e = 0; e < M * d; e++) {
                float want = pkv_f16_to_f32(pkv_f32_to_f16(cent[e])), got = k ? PV[e] : PK[e];
                if (memcmp(&want, &got, sizeof want) != 0)
                    fail_msg("layer %u %s pattern %u channel %u: %g, the reference %g", l, k ? "V" : "K", e / d, e % d,
                             (double)got, (double)want);
            }
        }
    }
    uint32_t len;
    TU_OK(pkv_seq_length(c, s, 1, &len));
    assert_int_equal(len, n);
    free(x), free(xs), free(scratch);
    for (int l = 0; l < NL; l++) free(kv[0][l]), free(kv[1][l]);
    TU_OK(pkv_cache_free(c));
    TU_OK(pkv_context_free(ctx));
}

static void mining_a_32k_token_prompt_matches_the_reference(void **state)
{
    (void)state;
    mine_32k(0);    /* every token */
    mine_32k(3000); /* a sample whose stride is not whole (32768 / 3000) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kmeans_finds_planted_clusters),
        cmocka_unit_test(flush_appends_the_chebyshev_centre_and_reassigns_by_minmax),
        cmocka_unit_test(bank_capacity_is_honoured_over_a_long_append),
        cmocka_unit_test(default_banks_are_frozen_at_the_mined_patterns),
        cmocka_unit_test(mining_a_32k_token_prompt_matches_the_reference),
    };
    return tu_run_tests(tests, NULL, NULL);
}
