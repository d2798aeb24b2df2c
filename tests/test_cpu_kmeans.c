/* The CPU backend's bounded k-means (src/cpu/cpu_kmeans.c) against a plain Lloyd iteration written
 * here from docs/NUMERICS.md (every distance, every chunk summed, the pairwise tree): centroids,
 * iteration stop and the final assignment against the fp16 patterns bit for bit, at every SIMD level,
 * with the bounds on and off, on clustered data (where the bounds skip most tokens), on structureless
 * data (where they skip few), on duplicate tokens (ties), at lengths around the 512-token chunk, and
 * on the real KV fixture (data/tinyllm); and the sampled run (k-means over the evenly strided sample of
 * pkv_sample_token, then every token assigned to the patterns: pkv_kmeans_assign with same = 0). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_kmeans.h"
#include "f16.h"
#include "layout.h"
#include "quant.h"
#include "test_model_fixture.h"
#include "testutil.h"

static const pkv_simd_level levels[] = {PKV_SIMD_SCALAR, PKV_SIMD_NEON, PKV_SIMD_AVX2, PKV_SIMD_AVX512, PKV_SIMD_AVX512VNNI};

/* docs/NUMERICS.md k-means, written plainly; returns the iterations run. */
static uint32_t lloyd(const float *x, uint32_t n, uint32_t d, uint32_t M, const uint32_t *init, const float *rcp,
                      uint32_t iters, float tol2, float *c)
{
    const uint32_t nc = (n + PKV_KMEANS_CHUNK - 1) / PKV_KMEANS_CHUNK;
    uint32_t *a = malloc(n * sizeof *a), *cnt = malloc(M * sizeof *cnt);
    float *part = malloc((size_t)nc * M * d * sizeof *part);
    for (uint32_t m = 0; m < M; m++) memcpy(c + (size_t)m * d, x + (size_t)init[m] * d, d * sizeof *c);
    uint32_t it = 0;
    while (it < iters) {
        it++;
        pkv_cpu_kernels_scalar.argmin_l2(x, n, d, c, M, a);
        memset(cnt, 0, M * sizeof *cnt);
        memset(part, 0, (size_t)nc * M * d * sizeof *part);
        for (uint32_t t = 0; t < n; t++) {
            cnt[a[t]]++;
            float *s = part + ((size_t)(t / PKV_KMEANS_CHUNK) * M + a[t]) * d;
            for (uint32_t i = 0; i < d; i++) s[i] = s[i] + x[(size_t)t * d + i];
        }
        for (uint32_t len = nc; len > 1; len = (len + 1) / 2) {
            for (uint32_t q = 0; q < len / 2; q++)
                for (size_t e = 0; e < (size_t)M * d; e++)
                    part[q * M * d + e] = part[2 * q * M * d + e] + part[(2 * q + 1) * M * d + e];
            if (len & 1) memmove(part + (len / 2) * M * d, part + (len - 1) * M * d, (size_t)M * d * sizeof *part);
        }
        float shift2 = 0.0f;
        for (uint32_t m = 0; m < M; m++) {
            if (!cnt[m]) continue;
            float acc = 0.0f;
            for (uint32_t i = 0; i < d; i++) {
                float nv = part[(size_t)m * d + i] * rcp[cnt[m]];
                acc = pkv_l2_step(acc, nv, c[(size_t)m * d + i]);
                c[(size_t)m * d + i] = nv;
            }
            if (acc > shift2) shift2 = acc;
        }
        if (shift2 < tol2) break;
    }
    free(a), free(cnt), free(part);
    return it;
}

/* One case: the reference, then the bounded and the plain run at every supported level; with
 * sample > 0, k-means over that many tokens of x (pkv_sample_token), the assignment over all. */
static void check_sampled(const float *xa, uint32_t na, uint32_t d, uint32_t M, uint32_t iters, float tol2, tu_rng *r,
                          uint32_t sample)
{
    const uint32_t n = pkv_sample_count(na, sample);
    float *xs = malloc((size_t)n * d * sizeof *xs);
    for (uint32_t j = 0; j < n; j++) memcpy(xs + (size_t)j * d, xa + (size_t)pkv_sample_token(j, na, n) * d, d * sizeof *xs);
    const float *x = xs;
    uint32_t *init = malloc(n * sizeof *init), *ref_a = malloc(na * sizeof *ref_a), *a = malloc(na * sizeof *a);
    float *rcp = malloc((n + 1) * sizeof *rcp), *ref = malloc((size_t)M * d * sizeof *ref);
    float *c = malloc((size_t)M * d * sizeof *c), *P = malloc((size_t)M * d * sizeof *P);
    for (uint32_t t = 0; t < n; t++) init[t] = t;
    for (uint32_t m = 0; m < M; m++) { /* partial Fisher-Yates: M distinct tokens */
        uint32_t j = m + (uint32_t)(tu_uniform(r) * (n - m));
        uint32_t s = init[m];
        init[m] = init[j], init[j] = s;
    }
    rcp[0] = 0.0f;
    for (uint32_t i = 1; i <= n; i++) rcp[i] = (float)(1.0 / i);
    uint32_t its = lloyd(x, n, d, M, init, rcp, iters, tol2, ref);
    for (size_t e = 0; e < (size_t)M * d; e++) P[e] = pkv_f16_to_f32(pkv_f32_to_f16(ref[e]));
    const uint32_t nq = na - na % 3;
    pkv_cpu_kernels_scalar.argmin_l2(xa, nq, d, P, M, ref_a);
    const pkv_simd_level best = pkv_cpu_simd_best();
    uint64_t fast = 0, exact = 0, steps = 1;
    for (size_t li = 0; li < sizeof levels / sizeof *levels; li++) {
        if (!pkv_cpu_simd_supported(levels[li])) continue;
        const pkv_cpu_kernels *k = pkv_cpu_kernels_for(levels[li]);
        for (int plain = 0; plain < 2; plain++) {
            pkv_kmeans km;
            assert_int_equal(pkv_kmeans_init(&km, na, d, M, plain), 0);
            pkv_kmeans_run(&km, k, x, n, init, rcp, iters, tol2, c);
            assert_memory_equal(c, ref, (size_t)M * d * sizeof *c);
            pkv_kmeans_assign(&km, k, xa, nq, n == na, c, P, a);
            assert_memory_equal(a, ref_a, nq * sizeof *a);
            if (plain) assert_true(km.n_exact == km.n_steps);
            else if (levels[li] == PKV_SIMD_SCALAR) assert_true(km.n_fast == 0);
            else if (levels[li] == best) fast = km.n_fast, exact = km.n_exact, steps = km.n_steps;
            pkv_kmeans_free(&km);
        }
    }
    printf("  n %u (sample %u) d %u M %u: %u iterations, identical at every level, bounds on and off; %s: %.0f%% of the "
           "assignments through dots, %.2f%% exact\n", na, n, d, M, its, pkv_cpu_simd_name(best), 100.0 * fast / steps,
           100.0 * exact / steps);
    free(init), free(ref_a), free(a), free(rcp), free(ref), free(c), free(P), free(xs);
}

static void check(const float *x, uint32_t n, uint32_t d, uint32_t M, uint32_t iters, float tol2, tu_rng *r)
{
    check_sampled(x, n, d, M, iters, tol2, r, 0);
}

/* Tokens around nc centres (runs of 16 tokens share one), noise eps; fp16 values. */
static void clustered(tu_rng *r, float *x, uint32_t n, uint32_t d, uint32_t nc, float eps)
{
    float *cent = malloc((size_t)nc * d * sizeof *cent);
    tu_random(r, (size_t)nc * d, 2.0f, cent);
    uint32_t m = 0;
    for (uint32_t t = 0; t < n; t++) {
        if (t % 16 == 0) m = (uint32_t)(tu_uniform(r) * nc);
        for (uint32_t i = 0; i < d; i++)
            x[(size_t)t * d + i] = pkv_f16_to_f32(pkv_f32_to_f16(cent[(size_t)m * d + i] + eps * (float)tu_normal(r)));
    }
    free(cent);
}

static void random_and_clustered(void **state)
{
    (void)state;
    tu_rng r = {0xC1A55};
    static const struct { uint32_t n, d, M, nc; float eps; } cases[] = {
        {37, 32, 5, 3, 0.1f},     {300, 128, 1, 4, 0.3f},   {511, 40, 16, 6, 0.2f},  {513, 64, 33, 8, 0.3f},
        {1500, 128, 32, 6, 0.35f}, {1100, 96, 64, 10, 0.5f}, {700, 128, 32, 0, 0.0f}, {2100, 128, 32, 6, 0.35f},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const uint32_t n = cases[ci].n, d = cases[ci].d;
        float *x = malloc((size_t)n * d * sizeof *x);
        if (cases[ci].nc) clustered(&r, x, n, d, cases[ci].nc, cases[ci].eps);
        else tu_random(&r, (size_t)n * d, 1.0f, x); /* no structure: few tokens are skipped */
        for (uint32_t t = 5; t < n; t += 41) memcpy(x + (size_t)t * d, x + (size_t)(t - 5) * d, d * sizeof *x); /* ties */
        check(x, n, d, cases[ci].M, 30, 1e-8f, &r);
        if (ci == 4) check(x, n, d, cases[ci].M, 3, 0.0f, &r); /* stopped by the cap */
        if (ci >= 4) check_sampled(x, n, d, cases[ci].M, 30, 1e-8f, &r, 700); /* n / 700 not whole */
        if (ci == 7) check_sampled(x, n, d, cases[ci].M, 30, 1e-8f, &r, 1050); /* stride 2 */
        free(x);
    }
}

static void fixture_heads(void **state)
{
    (void)state;
    fixture f;
    if (fixture_load(PKV_FIXTURE_PATH, &f)) {
        print_message("fixture missing: skipped\n");
        skip();
    }
    tu_rng r = {0xF1C};
    const uint32_t d = f.head_dim, n = f.tokens;
    float *x = malloc((size_t)n * d * sizeof *x);
    for (uint32_t kv = 0; kv < 2; kv++)
        for (uint32_t l = 0; l < f.layers; l += f.layers > 1 ? f.layers - 1 : 1) {
            for (uint32_t t = 0; t < n; t++)
                for (uint32_t i = 0; i < d; i++) /* fp16 values, as the library mines them */
                    x[(size_t)t * d + i] = pkv_f16_to_f32(pkv_f32_to_f16(fixture_row(&f, kv ? f.v : f.k, f.kv_heads, l, 0, t)[i]));
            check(x, n, d, 32, 30, 1e-8f, &r);
            check_sampled(x, n, d, 32, 30, 1e-8f, &r, n / 3 + 1);
        }
    free(x);
    fixture_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_and_clustered),
        cmocka_unit_test(fixture_heads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
