/* The MSE quantizer (pkv_quantizer, src/core/quant.c; docs/NUMERICS.md "Quantizer range search")
 * against fp64 references:
 * - pkv_quant_params_mse: the fp64 squared error of the values decoded with its (scale, zero) is no
 *   larger than min-max's, nor than that of any coarse candidate or (where fp64 names the coarse best
 *   clearly) any grid neighbour of the coarse best (up to fp32 rounding), and in total within 1% of
 *   the whole grid's least error, on Gaussian values, values with outliers and constant values;
 * - through the API on the backend of PKV_TEST_BACKEND (every backend has it): PATTERN and DIRECT
 *   caches with each quantizer give attention equal to fp64 attention over the tokens they store (read
 *   back), store keys and values closer to the input than min-max (relative MSE), MSE_K and MSE_V store
 *   K or V bit for bit as MSE or MINMAX does, and a saved cache (format version 3 records the
 *   quantizer) loads with its quantizer and the same tokens. (test_parity compares the GPU backends'
 *   blocks with the CPU's, bit for bit.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "f16.h"
#include "quant.h"
#include "testutil.h"

static double sq_err64(const float *x, uint32_t n, uint32_t bits, uint16_t sh, uint16_t zh)
{
    const double s = pkv_f16_to_f32(sh), z = pkv_f16_to_f32(zh);
    const double maxq = (double)((1u << bits) - 1u);
    double e = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        double c = s > 0.0 ? floor(((double)x[i] - z) / s + 0.5) : 0.0; /* the nearest code (fp64) */
        c = c < 0.0 ? 0.0 : c > maxq ? maxq : c;
        double r = z + c * s - x[i];
        e += r * r;
    }
    return e;
}

/* fp64 error of grid candidate (i, j) of values with span [lo, hi] (pkv_mse_candidate written plainly) */
static double grid_err64(const float *x, uint32_t n, uint32_t bits, float lo, float hi, uint32_t i, uint32_t j)
{
    const float w = hi - lo, inv = pkv_inv_maxq(bits);
    float l = lo + w * (float)i * 0.0625f, h = hi - w * (float)j * 0.0625f;
    if (i == 0 && j == 0) l = lo, h = hi;
    return sq_err64(x, n, bits, (uint16_t)pkv_scale_f16(l, h, inv), (uint16_t)pkv_zero_f16(l));
}

static void mse_params_follow_the_search(void **state)
{
    (void)state;
    tu_rng r = {0x5E};
    float x[256];
    double sum_e = 0.0, sum_grid = 0.0, sum_mm = 0.0;
    for (int trial = 0; trial < 240; trial++) {
        const uint32_t n = trial % 3 == 0 ? 32 : trial % 3 == 1 ? 128 : 256, bits = 2 + trial % 3;
        for (uint32_t i = 0; i < n; i++) x[i] = (float)tu_normal(&r);
        if (trial % 4 == 1) x[trial % n] *= 12.0f;           /* one outlier */
        if (trial % 4 == 2) x[(trial * 7) % n] = -20.0f;      /* an outlier below */
        if (trial == 3)
            for (uint32_t i = 0; i < n; i++) x[i] = 0.75f; /* constant */
        uint16_t sh, zh, mh, mz;
        pkv_quant_params_mse(x, n, 1, bits, &sh, &zh);
        pkv_quant_params(x, n, 1, bits, &mh, &mz);
        double e = sq_err64(x, n, bits, sh, zh), emm = sq_err64(x, n, bits, mh, mz), tol = 1e-4 * emm + 1e-9;
        assert_true(e <= emm + tol);
        float lo = x[0], hi = x[0];
        for (uint32_t i = 1; i < n; i++) lo = x[i] < lo ? x[i] : lo, hi = x[i] > hi ? x[i] : hi;
        /* no worse than any coarse candidate (min-max's, then (i, j) in {1, 3, 5}^2 but (5, 5)) */
        double cb = INFINITY, c2 = INFINITY;
        uint32_t bi = 0, bj = 0;
        for (uint32_t q = 0; q < PKV_MSE_COARSE; q++) {
            const uint32_t i = q ? 1 + 2 * ((q - 1) / 3) : 0, j = q ? 1 + 2 * ((q - 1) % 3) : 0;
            assert_int_equal(pkv_mse_coarse(q), 8 * i + j);
            double c = grid_err64(x, n, bits, lo, hi, i, j);
            assert_true(e <= c + tol);
            if (c < cb) c2 = cb, cb = c, bi = i, bj = j;
            else if (c < c2) c2 = c;
        }
        /* where fp64 names the coarse best clearly, no worse than any of its grid neighbours */
        if (c2 > cb + 2 * tol)
            for (int di = -1; di <= 1; di++)
                for (int dj = -1; dj <= 1; dj++) {
                    int i = (int)bi + di, j = (int)bj + dj;
                    if (i < 0 || j < 0 || i > (int)PKV_MSE_CLIP_STEPS || j > (int)PKV_MSE_CLIP_STEPS) continue;
                    assert_true(e <= grid_err64(x, n, bits, lo, hi, (uint32_t)i, (uint32_t)j) + tol);
                }
        /* the whole grid's least error, for the total below */
        double g = INFINITY;
        for (uint32_t i = 0; i <= PKV_MSE_CLIP_STEPS; i++)
            for (uint32_t j = 0; j <= PKV_MSE_CLIP_STEPS; j++) {
                double c = grid_err64(x, n, bits, lo, hi, i, j);
                g = c < g ? c : g;
            }
        assert_true(g <= e + tol);
        sum_e += e, sum_grid += g, sum_mm += emm;
        /* the library's own error sum agrees with fp64 */
        double e32 = pkv_quant_sq_error(x, n, 1, bits, sh | (uint32_t)zh << 16, INFINITY);
        assert_true(fabs(e32 - e) <= 1e-3 * e + 1e-9);
        if (trial % 4 == 1 && bits == 2) assert_true(e < emm); /* an outlier: clipping pays */
    }
    /* 17 of the 64 grid candidates lose little against all 64 (1.004 here) and keep most of the gain
     * over min-max */
    print_message("  total squared error: min-max %.4f, search %.4f, grid minimum %.4f\n", sum_mm, sum_e, sum_grid);
    assert_true(sum_e <= 1.01 * sum_grid);
    assert_true(sum_mm - sum_e >= 0.95 * (sum_mm - sum_grid));
}

/* Fine candidates: the 8 neighbours row by row, clamped to the grid. */
static void mse_fine_neighbours(void **state)
{
    (void)state;
    for (uint32_t kb = 0; kb < 64; kb++)
        for (uint32_t q = 0; q < PKV_MSE_FINE; q++) {
            const uint32_t m = q < 4 ? q : q + 1;
            int i = (int)(kb >> 3) + (int)(m / 3) - 1, j = (int)(kb & 7) + (int)(m % 3) - 1;
            i = i < 0 ? 0 : i > 7 ? 7 : i, j = j < 0 ? 0 : j > 7 ? 7 : j;
            assert_int_equal(pkv_mse_fine(kb, q), (uint32_t)(8 * i + j));
        }
}

static double rel_mse(const float *a, const float *ref, size_t n)
{
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        e += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        s += (double)ref[i] * ref[i];
    }
    return e / s;
}

static void api_on_the_test_backend(void **state)
{
    (void)state;
    pkv_context *ctx = tu_context();
    const uint32_t H = 2, d = 64, T = 520;
    const size_t n = (size_t)T * H * d;
    float *k = malloc(n * sizeof *k), *v = malloc(n * sizeof *v), *kr = malloc(n * sizeof *kr), *vr = malloc(n * sizeof *vr);
    assert_non_null(k), assert_non_null(v), assert_non_null(kr), assert_non_null(vr);
    tu_rng r = {0x9A};
    tu_structured_kv(&r, T, H, d, 12, 0.25f, k);
    tu_structured_kv(&r, T, H, d, 12, 0.25f, v);
    for (size_t i = 0; i < n; i += 97) k[i] *= 6.0f; /* outliers */
    float *kq[4], *vq[4]; /* what each quantizer's cache stores at the end */
    for (int i = 0; i < 4; i++) {
        kq[i] = malloc(n * sizeof(float)), vq[i] = malloc(n * sizeof(float));
        assert_non_null(kq[i]), assert_non_null(vq[i]);
    }
    for (int mode = PKV_MODE_PATTERN; mode <= PKV_MODE_DIRECT; mode++) {
        double err[4][2];
        for (uint32_t q = PKV_QUANTIZER_MINMAX; q <= PKV_QUANTIZER_MSE_V; q++) {
            pkv_cache_config cfg = pkv_cache_config_default();
            cfg.n_layers = 1, cfg.n_kv_heads = H, cfg.head_dim = d, cfg.group_size = 32, cfg.window = 64;
            cfg.mode = (pkv_mode)mode, cfg.quantizer = q;
            pkv_cache *c = NULL;
            TU_OK(pkv_cache_create(ctx, &cfg, &c));
            pkv_cache_config back = {.struct_size = sizeof back};
            TU_OK(pkv_cache_get_config(c, &back));
            assert_int_equal(back.quantizer, q);
            pkv_seq seq;
            TU_OK(pkv_seq_create(c, &seq));
            for (uint32_t len = 0; len < T;) {
                uint32_t m = len == 0 ? 256 : (T - len < 40 ? T - len : 40);
                TU_OK(pkv_append(c, seq, 0, m, k + (size_t)len * H * d, v + (size_t)len * H * d, PKV_F32));
                len += m;
                TU_OK(pkv_read_kv(c, seq, 0, kr, vr));
                float qv[4 * 64], out[4 * 64];
                double ref[64];
                tu_random(&r, 4 * 64, 1.0f, qv);
                pkv_attention_params p = {.struct_size = sizeof p, .seqs = &seq, .n_seqs = 1, .layer = 0, .q_len = 1,
                                          .n_q_heads = 4, .q_dtype = PKV_F32};
                TU_OK(pkv_attention(c, &p, qv, out));
                for (uint32_t qh = 0; qh < 4; qh++) {
                    uint32_t h = qh / 2;
                    ref_attention(qv + qh * d, kr + h * d, vr + h * d, len, d, (size_t)H * d, 1.0 / sqrt((double)d), ref);
                    assert_true(ref_rel_err(out + qh * d, ref, d) < 2e-3);
                }
            }
            size_t nc = (size_t)(T - 64) * H * d; /* the compressed tokens (the window's last 64 are fp16) */
            err[q][0] = rel_mse(kr, k, nc), err[q][1] = rel_mse(vr, v, nc);
            memcpy(kq[q], kr, n * sizeof(float)), memcpy(vq[q], vr, n * sizeof(float));
            char path[] = "/tmp/pkv_test_quantizer_XXXXXX";
            int fd = mkstemp(path);
            assert_true(fd >= 0);
            close(fd);
            TU_OK(pkv_cache_save(c, path));
            pkv_cache *l = NULL;
            TU_OK(pkv_cache_load(ctx, path, &l));
            remove(path);
            TU_OK(pkv_cache_get_config(l, &back));
            assert_int_equal(back.quantizer, q);
            TU_OK(pkv_read_kv(l, seq, 0, kr, vr));
            assert_memory_equal(kr, kq[q], n * sizeof(float));
            assert_memory_equal(vr, vq[q], n * sizeof(float));
            TU_OK(pkv_cache_free(l));
            TU_OK(pkv_cache_free(c));
        }
        {
            printf("  %-7s K rel MSE min-max %.5f mse %.5f, V %.5f %.5f\n", pkv_mode_name((pkv_mode)mode), err[0][0],
                   err[1][0], err[0][1], err[1][1]);
            assert_true(err[1][0] < err[0][0]);
            assert_true(err[1][1] < err[0][1]);
            /* MSE_K: K as MSE stores it, V as MINMAX does; MSE_V the other way round (bit for bit) */
            assert_memory_equal(kq[PKV_QUANTIZER_MSE_K], kq[PKV_QUANTIZER_MSE], n * sizeof(float));
            assert_memory_equal(vq[PKV_QUANTIZER_MSE_K], vq[PKV_QUANTIZER_MINMAX], n * sizeof(float));
            assert_memory_equal(kq[PKV_QUANTIZER_MSE_V], kq[PKV_QUANTIZER_MINMAX], n * sizeof(float));
            assert_memory_equal(vq[PKV_QUANTIZER_MSE_V], vq[PKV_QUANTIZER_MSE], n * sizeof(float));
        }
    }
    /* the default, AUTO, resolves to MSE for PATTERN at every width and MINMAX for DIRECT and FP16 */
    for (int mode = PKV_MODE_PATTERN; mode <= PKV_MODE_FP16; mode++)
        for (uint32_t bits = 2; bits <= 8; bits *= 2) {
            pkv_cache_config cfg = pkv_cache_config_default(), back = {.struct_size = sizeof back};
            assert_int_equal(cfg.quantizer, PKV_QUANTIZER_AUTO);
            cfg.n_layers = 1, cfg.n_kv_heads = H, cfg.head_dim = d, cfg.group_size = 32, cfg.mode = (pkv_mode)mode;
            if (mode != PKV_MODE_FP16) cfg.k_bits = cfg.v_bits = bits;
            pkv_cache *c = NULL;
            TU_OK(pkv_cache_create(ctx, &cfg, &c));
            TU_OK(pkv_cache_get_config(c, &back));
            assert_int_equal(back.quantizer, mode == PKV_MODE_PATTERN ? PKV_QUANTIZER_MSE : PKV_QUANTIZER_MINMAX);
            TU_OK(pkv_cache_free(c));
        }
    pkv_cache_config bad = pkv_cache_config_default();
    bad.quantizer = PKV_QUANTIZER_AUTO + 1;
    for (int i = 0; i < 4; i++) free(kq[i]), free(vq[i]);
    pkv_cache *c = NULL;
    assert_int_equal(pkv_cache_create(ctx, &bad, &c), PKV_ERR_INVALID_CONFIG);
    TU_OK(pkv_context_free(ctx));
    free(k), free(v), free(kr), free(vr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mse_params_follow_the_search),
        cmocka_unit_test(mse_fine_neighbours),
        cmocka_unit_test(api_on_the_test_backend),
    };
    return tu_run_tests(tests, NULL, NULL);
}
