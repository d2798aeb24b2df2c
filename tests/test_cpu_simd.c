/* The CPU backend's instruction-set levels (src/cpu/cpu_simd.h) against its portable scalar path:
 * - encoding kernels (fp16 conversion, L2 and min-max argmin, L2 best and second distance over a row
 *   list, k-means chunk sums, Chebyshev centre, block encoding) byte for byte against the scalar reference, the k-means
 *   bounds' dot products within their rounding bound of fp64, on random data and on ties, constant channels and signed
 *   zeros, for every mode, width, head_dim (odd multiples of 8 too) and group size;
 * - whole caches (prefill mining, flushes, a growing bank) saved byte for byte equal at every level;
 * - attention at every level against the scalar level and the fp64 reference over the dequantized
 *   cache or the stored fp16 values (< 1e-4 relative; avx512vnni < 1e-3, its K products in int16), GQA, q_len 1 and 3, a batch of
 *   sequences of odd lengths; and on the real KV fixture (data/tinyllm) with its model's queries;
 * - the PKV_CPU_SIMD override (a forced level, an unknown name, a level this CPU lacks).
 * Levels this CPU or build does not support are reported and left out. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu/cpu_simd.h"
#include "block.h"
#include "quant.h"
#include "f16.h"
#include "test_model_fixture.h"
#include "testutil.h"

static const pkv_simd_level all_levels[] = {PKV_SIMD_SCALAR, PKV_SIMD_NEON, PKV_SIMD_AVX2, PKV_SIMD_AVX512, PKV_SIMD_AVX512VNNI};
#define N_LEVELS 5

static float f16r(float x) { return pkv_f16_to_f32(pkv_f32_to_f16(x)); }

static pkv_context *level_context(pkv_simd_level l, uint32_t threads)
{
    setenv("PKV_CPU_SIMD", pkv_cpu_simd_name(l), 1);
    pkv_context *ctx = tu_cpu_context(threads);
    unsetenv("PKV_CPU_SIMD");
    pkv_device_info info = {.struct_size = sizeof info};
    TU_OK(pkv_context_device(ctx, &info, NULL, 0));
    assert_non_null(strstr(info.name, pkv_cpu_simd_name(l)));
    return ctx;
}

/* ---- encoding kernels, byte for byte --------------------------------------------------------------- */

static void fill_tricky(tu_rng *r, float *x, size_t n, uint32_t d)
{
    tu_random(r, n, 2.0f, x);
    for (size_t i = 0; i < n; i++) {
        x[i] = f16r(x[i]);
        double u = tu_uniform(r);
        if (u < 0.05) x[i] = 0.0f;
        else if (u < 0.10) x[i] = -0.0f;
        else if (u < 0.13) x[i] = f16r(0.25f * (float)(i % 5));
    }
    (void)d;
}

static void test_f16(const pkv_cpu_kernels *k)
{
    uint16_t *h = malloc(65536 * sizeof *h);
    float *a = malloc(65536 * sizeof *a), *b = malloc(65536 * sizeof *b);
    size_t n = 0;
    for (uint32_t v = 0; v < 65536; v++)
        if (!((v & 0x7c00u) == 0x7c00u && (v & 0x3ffu))) h[n++] = (uint16_t)v; /* every value but NaN */
    for (size_t off = 0; off < 3; off++) { /* odd lengths and offsets */
        pkv_cpu_kernels_scalar.f16_to_f32(h + off, a, n - off - 1);
        k->f16_to_f32(h + off, b, n - off - 1);
        assert_memory_equal(a, b, (n - off - 1) * sizeof(float));
    }
    free(h), free(a), free(b);
}

static void test_argmin(const pkv_cpu_kernels *k, tu_rng *r)
{
    static const uint32_t Ms[] = {1, 5, 16, 32, 33, 100, 256};
    static const uint32_t ds[] = {32, 40, 128, 256};
    for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
        for (size_t di = 0; di < sizeof ds / sizeof *ds; di++) {
            const uint32_t M = Ms[mi], d = ds[di], n = 37;
            float *P = malloc((size_t)M * d * sizeof(float)), *x = malloc((size_t)n * d * sizeof(float));
            fill_tricky(r, P, (size_t)M * d, d);
            fill_tricky(r, x, (size_t)n * d, d);
            if (M > 3) memcpy(P + (size_t)2 * d, P + (size_t)1 * d, d * sizeof(float)); /* duplicate patterns */
            for (uint32_t t = 0; t < n; t += 3) memcpy(x + (size_t)t * d, P + (size_t)(t % M) * d, d * sizeof(float));
            for (uint32_t t = 1; t < n; t += 5) memset(x + (size_t)t * d, 0, d * sizeof(float)); /* ties at 0 */
            uint32_t a32[64], b32[64];
            uint8_t a8[64], b8[64];
            pkv_cpu_kernels_scalar.argmin_l2(x, n, d, P, M, a32);
            k->argmin_l2(x, n, d, P, M, b32);
            assert_memory_equal(a32, b32, n * sizeof *a32);
            /* l2_top2 over a list of rows (repeated, in any order): the argmin and both distances */
            uint32_t idx[64], ni = 0;
            for (uint32_t t = 0; t < n; t += 1 + t % 3) idx[ni++] = (t * 7) % n;
            float ad1[64], ad2[64], bd1[64], bd2[64];
            pkv_cpu_kernels_scalar.l2_top2(x, idx, ni, d, P, M, a32, ad1, ad2);
            k->l2_top2(x, idx, ni, d, P, M, b32, bd1, bd2);
            assert_memory_equal(a32, b32, ni * sizeof *a32);
            assert_memory_equal(ad1, bd1, ni * sizeof *ad1);
            assert_memory_equal(ad2, bd2, ni * sizeof *ad2);
            for (uint32_t j = 0; j < ni; j++) { /* against the plain distances */
                const float *xt = x + (size_t)idx[j] * d;
                float second = INFINITY;
                for (uint32_t m = 0; m < M; m++) {
                    float f = pkv_dist_l2(xt, P + (size_t)m * d, d);
                    if (m < a32[j]) assert_true(f > ad1[j]);
                    else if (m == a32[j]) assert_true(f == ad1[j]);
                    else if (f < second) second = f;
                    if (m < a32[j] && f < second) second = f;
                }
                assert_true(second == ad2[j] || (isinf(second) && isinf(ad2[j])));
            }
            /* dots_top2 (bounds only, any order): every h_m = c2_m - 2 x.c_m within (2.1 d + 8) 2^-24
             * (sum |x_i c_i| + |c2_m|) of fp64 (cpu_kmeans.c's bound), the best one's h and the smallest
             * of the others within those bounds */
            float c2[256], h1[64], h2[64];
            for (uint32_t m = 0; m < M; m++) {
                double s2 = 0.0;
                for (uint32_t i = 0; i < d; i++) s2 += (double)P[(size_t)m * d + i] * P[(size_t)m * d + i];
                c2[m] = (float)s2;
            }
            k->dots_top2(x, idx, ni, d, P, M, c2, b32, h1, h2);
            for (uint32_t j = 0; j < ni; j++) {
                double lo_other = INFINITY, hi_other = INFINITY;
                assert_true(b32[j] < M);
                for (uint32_t m = 0; m < M; m++) {
                    double ref = 0.0, mag = 0.0;
                    for (uint32_t i = 0; i < d; i++) {
                        double p = (double)x[(size_t)idx[j] * d + i] * P[(size_t)m * d + i];
                        ref += p, mag += fabs(p);
                    }
                    const double h = c2[m] - 2.0 * ref, e = (2.1 * d + 8) * 0x1p-24 * (mag + fabs(c2[m])) + 1e-30;
                    assert_true(h1[j] <= h + e);
                    if (m == b32[j]) assert_true(fabs(h1[j] - h) <= e);
                    else if (h - e < lo_other) lo_other = h - e;
                    if (m != b32[j] && h + e < hi_other) hi_other = h + e;
                }
                if (M == 1) assert_true(isinf(h2[j]));
                else assert_true(h2[j] >= lo_other && h2[j] <= hi_other && h2[j] >= h1[j]);
            }
            /* chunk sums: runs of one centroid, some centroids not selected, a range inside */
            uint32_t as[64];
            uint8_t sel[256];
            for (uint32_t t = 0; t < n; t++) as[t] = (t / 4 + (t % 7 == 0)) % M;
            for (uint32_t m = 0; m < M; m++) sel[m] = m % 3 != 1;
            float *sa = malloc((size_t)M * d * sizeof(float)), *sb = malloc((size_t)M * d * sizeof(float));
            fill_tricky(r, sa, (size_t)M * d, d);
            memcpy(sb, sa, (size_t)M * d * sizeof(float));
            pkv_cpu_kernels_scalar.sums(x, as, 3, n - 2, d, sel, sa);
            k->sums(x, as, 3, n - 2, d, sel, sb);
            assert_memory_equal(sa, sb, (size_t)M * d * sizeof(float));
            free(sa), free(sb);
            pkv_cpu_kernels_scalar.argmin_minmax(x, n, d, P, M, a8);
            k->argmin_minmax(x, n, d, P, M, b8);
            assert_memory_equal(a8, b8, n);
            float ca[256], cb[256];
            pkv_cpu_kernels_scalar.centre(x, n, d, ca);
            k->centre(x, n, d, cb);
            assert_memory_equal(ca, cb, d * sizeof(float));
            free(P), free(x);
        }
}

static void test_block_encode(const pkv_cpu_kernels *k, tu_rng *r)
{
    static const uint32_t ds[] = {32, 40, 48, 64, 128, 256};
    static const uint32_t Gs[] = {32, 64, 128};
    static const uint32_t bits[] = {2, 3, 4, 8};
    static const pkv_mode modes[] = {PKV_MODE_PATTERN, PKV_MODE_DIRECT, PKV_MODE_FP16};
    /* each mode with min-max and with the MSE quantizer's range search (K and V: MSE) */
    for (size_t mq = 0; mq < 5; mq++)
        for (size_t di = 0; di < sizeof ds / sizeof *ds; di++)
            for (size_t gi = 0; gi < 3; gi++)
                for (size_t bi = 0; bi < 4; bi++) {
                    const size_t mo = mq / 2;
                    if (modes[mo] == PKV_MODE_FP16 && bi) continue;
                    pkv_cache_config cfg = tu_config(1, 1, ds[di], bits[bi], Gs[gi], modes[mo]);
                    cfg.quantizer = mq % 2 ? PKV_QUANTIZER_MSE : PKV_QUANTIZER_MINMAX;
                    pkv_geom g;
                    pkv_geom_init(&g, &cfg);
                    const uint32_t d = g.d, G = g.G, nb = 40;
                    float *kx = malloc((size_t)G * d * sizeof(float)), *vx = malloc((size_t)G * d * sizeof(float));
                    float *PK = malloc((size_t)nb * d * sizeof(float)), *PV = malloc((size_t)nb * d * sizeof(float));
                    uint8_t ka[128], va[128];
                    uint8_t *b0 = malloc(g.block_bytes), *b1 = malloc(g.block_bytes);
                    for (int rep = 0; rep < 3; rep++) {
                        fill_tricky(r, kx, (size_t)G * d, d);
                        fill_tricky(r, vx, (size_t)G * d, d);
                        fill_tricky(r, PK, (size_t)nb * d, d);
                        fill_tricky(r, PV, (size_t)nb * d, d);
                        for (uint32_t t = 0; t < G; t++) ka[t] = (uint8_t)(tu_uniform(r) * nb), va[t] = (uint8_t)(tu_uniform(r) * nb);
                        /* constant K channels (scale 0), V tokens on their pattern (residual 0), zero tokens */
                        for (uint32_t t = 0; t < G; t++) kx[(size_t)t * d + 3] = kx[3];
                        for (uint32_t t = 0; t < G; t += 4) memcpy(vx + (size_t)t * d, PV + (size_t)va[t] * d, d * sizeof(float));
                        for (uint32_t t = 1; t < G; t += 9) memset(vx + (size_t)t * d, 0, d * sizeof(float));
                        if (rep == 2) /* a scaled copy: codes land on the half-way points of some steps */
                            for (size_t i = 0; i < (size_t)G * d; i++) kx[i] = f16r(0.125f * (float)((int)(kx[i] * 8.0f)));
                        memset(b0, 0xAA, g.block_bytes), memset(b1, 0x55, g.block_bytes);
                        pkv_block_encode(&g, kx, vx, ka, va, PK, PV, b0);
                        k->block_encode(&g, kx, vx, ka, va, PK, PV, b1);
                        if (memcmp(b0, b1, g.block_bytes)) {
                            uint32_t at = 0;
                            while (b0[at] == b1[at]) at++;
                            fail_msg("%s block_encode differs: mode %d quantizer %u d %u G %u bits %u rep %d, byte %u of %u",
                                     k->name, modes[mo], cfg.quantizer, d, G, bits[bi], rep, at, g.block_bytes);
                        }
                    }
                    free(kx), free(vx), free(PK), free(PV), free(b0), free(b1);
                }
}

static void encode_kernels(void **state)
{
    (void)state;
    tu_rng r = {0x51D};
    for (int li = 1; li < N_LEVELS; li++) {
        if (!pkv_cpu_simd_supported(all_levels[li])) {
            printf("  %s: not supported here, left out\n", pkv_cpu_simd_name(all_levels[li]));
            continue;
        }
        const pkv_cpu_kernels *k = pkv_cpu_kernels_for(all_levels[li]);
        assert_int_equal(k->level, all_levels[li]);
        test_f16(k);
        test_argmin(k, &r);
        test_block_encode(k, &r);
        printf("  %s: encoding kernels byte-identical to scalar\n", k->name);
    }
}

/* ---- whole caches, saved byte for byte ----------------------------------------------------------- */

static uint8_t *build_and_save(pkv_simd_level l, const pkv_cache_config *cfg, const float *k, const float *v,
                               uint32_t n, size_t *len)
{
    pkv_context *ctx = level_context(l, 2);
    pkv_cache *c;
    TU_OK(pkv_cache_create(ctx, cfg, &c));
    pkv_seq s;
    TU_OK(pkv_seq_create(c, &s));
    const size_t row = (size_t)cfg->n_kv_heads * cfg->head_dim;
    for (uint32_t layer = 0; layer < cfg->n_layers; layer++) {
        uint32_t done = 0, first = n / 3;
        while (done < n) {
            uint32_t m = done == 0 ? first : (n - done < 45 ? n - done : 45);
            TU_OK(pkv_append(c, s, layer, m, k + done * row, v + done * row, PKV_F32));
            done += m;
        }
    }
    char path[64];
    snprintf(path, sizeof path, "/tmp/pkv_simd_%d_%d.pkv", (int)getpid(), (int)l);
    TU_OK(pkv_cache_save(c, path));
    uint8_t *bytes = tu_slurp(path, len);
    unlink(path);
    pkv_cache_free(c);
    pkv_context_free(ctx);
    return bytes;
}

static void saved_caches(void **state)
{
    (void)state;
    static const uint32_t ds[] = {40, 128};
    static const uint32_t bits[] = {2, 3, 4, 8};
    static const pkv_mode modes[] = {PKV_MODE_PATTERN, PKV_MODE_DIRECT, PKV_MODE_FP16};
    tu_rng r = {0xCAC4E};
    for (size_t mo = 0; mo < 3; mo++)
        for (size_t di = 0; di < 2; di++)
            for (size_t bi = 0; bi < 4; bi++) {
                if (modes[mo] == PKV_MODE_FP16 && bi) continue;
                const uint32_t H = 2, d = ds[di], n = 700;
                pkv_cache_config cfg = tu_config(2, H, d, bits[bi], 64, modes[mo]);
                cfg.n_patterns = 16;
                float *k = malloc((size_t)n * H * d * sizeof(float)), *v = malloc((size_t)n * H * d * sizeof(float));
                tu_structured_kv(&r, n, H, d, 6, 0.3f, k);
                tu_random(&r, (size_t)n * H * d, 1.0f, v);
                size_t n0, n1;
                uint8_t *ref = build_and_save(PKV_SIMD_SCALAR, &cfg, k, v, n, &n0);
                for (int li = 1; li < N_LEVELS; li++) {
                    if (!pkv_cpu_simd_supported(all_levels[li])) continue;
                    uint8_t *got = build_and_save(all_levels[li], &cfg, k, v, n, &n1);
                    assert_int_equal(n0, n1);
                    if (memcmp(ref, got, n0))
                        fail_msg("%s: saved cache differs from scalar (mode %d d %u bits %u)",
                                 pkv_cpu_simd_name(all_levels[li]), modes[mo], d, bits[bi]);
                    free(got);
                }
                free(ref), free(k), free(v);
            }
}

/* ---- attention ----------------------------------------------------------------------------------- */

typedef struct shape {
    uint32_t H, gq, d, G, bits, q_len;
    pkv_mode mode;
} shape;

static const uint32_t lengths[] = {37, 333, 200};
#define N_SEQS 3

/* Attention of one shape at level l: out, and the max relative error against fp64 over what the cache
 * stores (dequantized for PATTERN and DIRECT, the fp16 values for FP16). */
static double attention_at(pkv_simd_level l, const shape *sh, uint32_t threads, float *out)
{
    tu_rng r = {0xA77E + sh->d * 7 + sh->bits * 131 + sh->mode * 1009 + sh->q_len + sh->gq * 17};
    pkv_context *ctx = level_context(l, threads);
    pkv_cache_config cfg = tu_config(1, sh->H, sh->d, sh->bits, sh->G, sh->mode);
    pkv_cache *c;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    pkv_seq seqs[N_SEQS];
    float *k[N_SEQS], *v[N_SEQS];
    for (int s = 0; s < N_SEQS; s++) {
        uint32_t n = lengths[s];
        size_t cnt = (size_t)n * sh->H * sh->d;
        k[s] = malloc(cnt * sizeof(float));
        v[s] = malloc(cnt * sizeof(float));
        if (sh->mode == PKV_MODE_FP16) tu_random(&r, cnt, 1.0f, k[s]);
        else tu_structured_kv(&r, n, sh->H, sh->d, 6, 0.3f, k[s]);
        tu_random(&r, cnt, 1.0f, v[s]);
        TU_OK(pkv_seq_create(c, &seqs[s]));
        uint32_t done = 0;
        while (done < n) {
            uint32_t m = done == 0 ? n / 2 : (n - done < 7 ? n - done : 7);
            TU_OK(pkv_append(c, seqs[s], 0, m, k[s] + (size_t)done * sh->H * sh->d, v[s] + (size_t)done * sh->H * sh->d,
                             PKV_F32));
            done += m;
        }
        TU_OK(pkv_read_kv(c, seqs[s], 0, k[s], v[s])); /* what is stored: dequantized, or the fp16 values */
    }
    const uint32_t nqh = sh->H * sh->gq;
    size_t nq = (size_t)N_SEQS * sh->q_len * nqh * sh->d;
    float *q = malloc(nq * sizeof(float));
    tu_random(&r, nq, 1.0f, q);
    /* large queries too: sharp softmax, the running max moves */
    for (size_t i = 0; i < nq; i += 3) q[i] *= 4.0f;
    pkv_attention_params p = {.struct_size = sizeof(pkv_attention_params), .seqs = seqs, .n_seqs = N_SEQS, .layer = 0, .q_len = sh->q_len, .n_q_heads = nqh, .scale = 0.0f, .q_dtype = PKV_F32};
    TU_OK(pkv_attention(c, &p, q, out));
    double err = tu_check_attention((const float *const *)k, (const float *const *)v, lengths, N_SEQS, sh->q_len, nqh,
                                    sh->H, sh->d, q, out);
    for (int s = 0; s < N_SEQS; s++) free(k[s]), free(v[s]);
    free(q);
    pkv_cache_free(c);
    pkv_context_free(ctx);
    return err;
}

static double rel_diff(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), den += (double)b[i] * b[i];
    return sqrt(num / (den > 0 ? den : 1));
}

/* The bound of a level against fp64 and against the scalar level: 1e-4, and the 1e-3 for
 * avx512vnni, whose K logits multiply q_i s_i rounded to int16 per row and block (docs/NUMERICS.md). */
static double level_tol(pkv_simd_level l) { return l == PKV_SIMD_AVX512VNNI ? 1e-3 : 1e-4; }

static void attention_levels(void **state)
{
    (void)state;
    double worst[N_LEVELS] = {0}, worst_dv[N_LEVELS] = {0};
    static const shape shapes[] = {
        {2, 4, 128, 128, 2, 1, PKV_MODE_PATTERN}, {2, 4, 128, 128, 4, 1, PKV_MODE_PATTERN},
        {2, 4, 128, 128, 2, 1, PKV_MODE_DIRECT},  {2, 4, 128, 128, 4, 1, PKV_MODE_DIRECT},
        {2, 4, 128, 128, 2, 1, PKV_MODE_FP16},   {2, 1, 40, 32, 3, 1, PKV_MODE_PATTERN},
        {1, 3, 40, 64, 8, 3, PKV_MODE_PATTERN},   {2, 4, 64, 32, 3, 3, PKV_MODE_DIRECT},
        {3, 2, 72, 64, 2, 3, PKV_MODE_PATTERN},   {1, 8, 256, 128, 4, 1, PKV_MODE_PATTERN},
        {2, 5, 48, 32, 4, 3, PKV_MODE_FP16},     {1, 2, 32, 32, 8, 1, PKV_MODE_DIRECT},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const shape *sh = &shapes[i];
        const size_t n = (size_t)N_SEQS * sh->q_len * sh->H * sh->gq * sh->d;
        float *ref = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
        const double tol = 1e-4;
        double e0 = attention_at(PKV_SIMD_SCALAR, sh, 2, ref);
        if (!(e0 < tol)) fail_msg("scalar: shape %zu (mode %d bits %u d %u q_len %u): fp64 error %.3g", i, sh->mode, sh->bits, sh->d, sh->q_len, e0);
        for (int li = 1; li < N_LEVELS; li++) {
            if (!pkv_cpu_simd_supported(all_levels[li])) continue;
            for (uint32_t threads = 1; threads <= 3; threads += 2) {
                double e = attention_at(all_levels[li], sh, threads, out);
                double dv = rel_diff(out, ref, n), lt = level_tol(all_levels[li]);
                if (e > worst[li]) worst[li] = e;
                if (getenv("PKV_TEST_VERBOSE")) printf("    %s shape %zu t%u: %.3g %.3g\n", pkv_cpu_simd_name(all_levels[li]), i, threads, e, dv);
                if (dv > worst_dv[li]) worst_dv[li] = dv;
                if (!(e < lt) || !(dv < lt))
                    fail_msg("%s: shape %zu (mode %d bits %u d %u q_len %u gq %u): fp64 error %.3g, vs scalar %.3g",
                             pkv_cpu_simd_name(all_levels[li]), i, sh->mode, sh->bits, sh->d, sh->q_len, sh->gq, e, dv);
            }
        }
        free(ref), free(out);
    }
    for (int li = 1; li < N_LEVELS; li++)
        if (pkv_cpu_simd_supported(all_levels[li]))
            printf("  %s: worst fp64 error %.3g, vs scalar %.3g (bound %g)\n", pkv_cpu_simd_name(all_levels[li]), worst[li],
                   worst_dv[li], level_tol(all_levels[li]));
}

/* The real KV fixture: its first layer, 1100 tokens (a 512-token prefill that mines the banks, then
 * appends), the model's own queries at the last position, q_len 1 and 4. */
static void fixture_levels(void **state)
{
    (void)state;
    fixture f;
    if (fixture_load(PKV_FIXTURE_PATH, &f)) fail_msg("fixture %s", PKV_FIXTURE_PATH);
    const uint32_t H = f.kv_heads, d = f.head_dim, QH = f.q_heads, n = 1100, layer = 0;
    float *k = malloc((size_t)n * H * d * sizeof(float)), *v = malloc((size_t)n * H * d * sizeof(float));
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t h = 0; h < H; h++) {
            memcpy(k + ((size_t)t * H + h) * d, fixture_row(&f, f.k, H, layer, h, t), d * sizeof(float));
            memcpy(v + ((size_t)t * H + h) * d, fixture_row(&f, f.v, H, layer, h, t), d * sizeof(float));
        }
    static const pkv_mode modes[] = {PKV_MODE_PATTERN, PKV_MODE_DIRECT, PKV_MODE_FP16};
    static const uint32_t bits[] = {2, 4, 2};
    for (int mi = 0; mi < 3; mi++)
        for (uint32_t q_len = 1; q_len <= 4; q_len += 3) {
            float *q = malloc((size_t)q_len * QH * d * sizeof(float)), *ref = malloc((size_t)q_len * QH * d * sizeof(float)),
                  *out = malloc((size_t)q_len * QH * d * sizeof(float));
            for (uint32_t i = 0; i < q_len; i++)
                for (uint32_t h = 0; h < QH; h++)
                    memcpy(q + ((size_t)i * QH + h) * d, fixture_row(&f, f.q, QH, layer, h, n - q_len + i), d * sizeof(float));
            for (int li = 0; li < N_LEVELS; li++) {
                if (!pkv_cpu_simd_supported(all_levels[li])) continue;
                pkv_context *ctx = level_context(all_levels[li], 2);
                pkv_cache_config cfg = tu_config(1, H, d, bits[mi], 128, modes[mi]);
                pkv_cache *c;
                TU_OK(pkv_cache_create(ctx, &cfg, &c));
                pkv_seq s;
                TU_OK(pkv_seq_create(c, &s));
                TU_OK(pkv_append(c, s, 0, 512, k, v, PKV_F32));
                for (uint32_t t = 512; t < n; t += 100) {
                    uint32_t m = n - t < 100 ? n - t : 100;
                    TU_OK(pkv_append(c, s, 0, m, k + (size_t)t * H * d, v + (size_t)t * H * d, PKV_F32));
                }
                float *kr = malloc((size_t)n * H * d * sizeof(float)), *vr = malloc((size_t)n * H * d * sizeof(float));
                TU_OK(pkv_read_kv(c, s, 0, kr, vr));
                pkv_attention_params p = {.struct_size = sizeof(pkv_attention_params), .seqs = &s, .n_seqs = 1, .layer = 0, .q_len = q_len, .n_q_heads = QH, .scale = 0.0f, .q_dtype = PKV_F32};
                float *o = li ? out : ref;
                TU_OK(pkv_attention(c, &p, q, o));
                const uint32_t T[1] = {n};
                const float *kp[1] = {kr}, *vp[1] = {vr};
                double e = tu_check_attention(kp, vp, T, 1, q_len, QH, H, d, q, o);
                double tol = level_tol(all_levels[li]);
                double dv = li ? rel_diff(out, ref, (size_t)q_len * QH * d) : 0.0;
                if (li) printf("  fixture, %s, mode %d q_len %u: fp64 error %.3g, vs scalar %.3g\n", pkv_cpu_simd_name(all_levels[li]),
                               modes[mi], q_len, e, dv);
                if (!(e < tol) || !(dv < tol))
                    fail_msg("fixture, %s, mode %d q_len %u: fp64 error %.3g, vs scalar %.3g", pkv_cpu_simd_name(all_levels[li]),
                             modes[mi], q_len, e, dv);
                free(kr), free(vr);
                pkv_cache_free(c);
                pkv_context_free(ctx);
            }
            free(q), free(ref), free(out);
        }
    free(k), free(v);
    fixture_free(&f);
}

/* ---- the override -------------------------------------------------------------------------------- */

static void override(void **state)
{
    (void)state;
    char note[160];
    setenv("PKV_CPU_SIMD", "scalar", 1);
    assert_int_equal(pkv_cpu_simd_choose(note, sizeof note), PKV_SIMD_SCALAR);
    assert_string_equal(note, "");
    setenv("PKV_CPU_SIMD", "no-such-level", 1);
    assert_int_equal(pkv_cpu_simd_choose(note, sizeof note), pkv_cpu_simd_best());
    assert_non_null(strstr(note, "unknown"));
    setenv("PKV_CPU_SIMD", "auto", 1);
    assert_int_equal(pkv_cpu_simd_choose(note, sizeof note), pkv_cpu_simd_best());
    for (int li = 1; li < N_LEVELS; li++) { /* a level the CPU lacks falls back to one it has, and says so */
        setenv("PKV_CPU_SIMD", pkv_cpu_simd_name(all_levels[li]), 1);
        pkv_simd_level got = pkv_cpu_simd_choose(note, sizeof note);
        assert_true(pkv_cpu_simd_supported(got));
        if (pkv_cpu_simd_supported(all_levels[li])) assert_int_equal(got, all_levels[li]);
        else assert_non_null(strstr(note, "not supported"));
    }
    unsetenv("PKV_CPU_SIMD");
    printf("  best level here: %s\n", pkv_cpu_simd_name(pkv_cpu_simd_best()));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(override),
        cmocka_unit_test(encode_kernels),
        cmocka_unit_test(saved_caches),
        cmocka_unit_test(attention_levels),
        cmocka_unit_test(fixture_levels),
    };
    return tu_run_tests(tests, NULL, NULL);
}
