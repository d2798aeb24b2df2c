/* Quantizer, fp16 conversion and bit packing (docs/NUMERICS.md). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "crc32.h"
#include "f16.h"
#include "layout.h"
#include "quant.h"
#include "testutil.h"

static void f16_round_trips_every_finite_value(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7C00u) == 0x7C00u) continue;
        float f = pkv_f16_to_f32((uint16_t)h);
        assert_int_equal(pkv_f32_to_f16(f), h == 0x8000u ? 0x8000u : h);
    }
}

static void f16_rounds_to_nearest_even_and_saturates(void **state)
{
    (void)state;
    tu_rng r = {12345};
    for (int i = 0; i < 200000; i++) {
        float x = (float)(tu_normal(&r) * pow(2.0, (int)(tu_uniform(&r) * 40) - 20));
        uint16_t h = pkv_f32_to_f16(x);
        double back = pkv_f16_to_f32(h), err = fabs(back - x);
        /* No other fp16 value is closer: check both neighbours. */
        for (int dlt = -1; dlt <= 1; dlt += 2) {
            uint16_t n = (uint16_t)(h + dlt);
            if ((n & 0x7C00u) == 0x7C00u || ((h ^ n) & 0x8000u)) continue;
            double other = fabs((double)pkv_f16_to_f32(n) - x);
            assert_true(err < other || (err == other && (h & 1u) == 0));
        }
    }
    assert_int_equal(pkv_f32_to_f16(1e9f), 0x7BFFu);
    assert_int_equal(pkv_f32_to_f16(-70000.0f), 0xFBFFu);
    assert_int_equal(pkv_f32_to_f16(1.0f + 1.0f / 2048.0f), 0x3C00u); /* tie to even */
    assert_int_equal(pkv_f32_to_f16(1.0f + 3.0f / 2048.0f), 0x3C02u);
}

/* The checked conversion of appended K/V (F16C, AVX-512 or NEON where the CPU has them) gives the
 * scalar rule's bits for every accepted value, and stops at the first rejected one; at every level
 * this CPU has (the scalar one included), for odd lengths (tails) too. The unchecked conversions
 * (pkv_f32_to_f16_array, pkv_f16_to_f32_array) give the scalar rule's bits for every value, beyond
 * range, Inf and NaN included. */
static void f16_conversions_match_the_scalar_rule_at_every_level(void)
{
    enum { N = 4099 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    uint16_t *h = malloc(N * sizeof *h), *hh = malloc(N * sizeof *hh);
    tu_rng r = {0x5EED16};
    for (uint32_t i = 0; i < N; i++) {
        uint32_t bits = (uint32_t)(tu_uniform(&r) * 4294967296.0);
        if (i % 5 == 0) bits &= 0x807FFFFFu | (bits & 0x01800000u); /* fp32 subnormals and tiny values */
        memcpy(&x[i], &bits, sizeof bits);
        if (i % 3 == 0 && isfinite(x[i])) x[i] = fmodf(x[i], 70000.0f);
        hh[i] = (uint16_t)(tu_uniform(&r) * 65536.0); /* every fp16 bit pattern, NaN and Inf included */
    }
    x[7] = NAN, x[8] = INFINITY, x[9] = -65519.99f, x[10] = 65520.0f, x[11] = 65504.0f, x[12] = -0.0f;
    for (int level = PKV_F16_SCALAR; level <= PKV_F16_WIDE; level++) {
        if (!pkv_f16_level_supported(level)) continue;
        for (size_t n = N - 8; n <= N; n++) {
            pkv_f32_to_f16_at(level, x, h, n);
            for (size_t i = 0; i < n; i++)
                if (h[i] != (uint16_t)pkv_f32_to_f16(x[i]))
                    fail_msg("level %d: value %zu (%a): %04x, the scalar rule gives %04x", level, i, (double)x[i], h[i],
                             pkv_f32_to_f16(x[i]));
            pkv_f16_to_f32_at(level, hh, y, n);
            for (size_t i = 0; i < n; i++) {
                float want = pkv_f16_to_f32(hh[i]);
                if (memcmp(&want, &y[i], sizeof want) != 0) fail_msg("level %d: fp16 %04x: %a, want %a", level, hh[i], (double)y[i], (double)want);
            }
        }
    }
    free(x), free(y), free(h), free(hh);
}

static void f16_checked_conversion_matches_the_scalar_rule(void **state)
{
    (void)state;
    f16_conversions_match_the_scalar_rule_at_every_level();
    enum { N = 1 << 16 };
    float *x = malloc(N * sizeof *x);
    uint16_t *h = malloc(N * sizeof *h);
    tu_rng r = {0xF16C};
    for (uint32_t i = 0; i < N; i++) { /* every binade: subnormals, ties, +-0, the largest values */
        uint32_t bits = (uint32_t)(tu_uniform(&r) * 4294967296.0);
        float v;
        memcpy(&v, &bits, sizeof v);
        float scale = ldexpf(1.0f, (int)(i % 40) - 26);
        x[i] = i % 7 == 0 ? pkv_f16_to_f32(i & 0x7bff) : fmodf(isfinite(v) ? v : 1.0f, 65504.0f) * (i % 3 ? scale : 1.0f);
        if (fabsf(x[i]) > 65504.0f) x[i] = 65504.0f;
    }
    x[1] = -0.0f, x[2] = 65504.0f, x[3] = -65504.0f, x[4] = 65519.0f - 15.0f, x[5] = 5.9604645e-8f, x[6] = 2.98e-8f;
    x[7] = 1e-40f, x[8] = -1.4e-45f; /* fp32 subnormals: fp16 zeros */
    for (int level = PKV_F16_SCALAR; level <= PKV_F16_WIDE; level++) {
        if (!pkv_f16_level_supported(level)) continue;
        memset(h, 0, N * sizeof *h);
        assert_int_equal(pkv_f32_to_f16_finite_at(level, x, h, N), N);
        for (uint32_t i = 0; i < N; i++)
            if (h[i] != (uint16_t)pkv_f32_to_f16(x[i]))
                fail_msg("level %d: value %u (%a): %04x, the scalar rule gives %04x", level, i, (double)x[i], h[i], pkv_f32_to_f16(x[i]));
        const float bad[] = {65504.5f, INFINITY, -INFINITY, NAN, 1e30f};
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            for (size_t at = 1000 + b; at < N; at += 20011) {
                x[at] = bad[b];
                assert_int_equal(pkv_f32_to_f16_finite_at(level, x, h, N), at);     /* in a full block */
                assert_int_equal(pkv_f32_to_f16_finite_at(level, x, h, at + 3), at); /* in the tail */
                x[at] = 1.0f;
            }
        }
    }
    assert_int_equal(pkv_f32_to_f16_finite(x, h, N), N); /* the level in use */
    free(x);
    free(h);
}

static void quantized_values_are_within_half_a_step(void **state)
{
    (void)state;
    const uint32_t bits[] = {2, 3, 4, 8};
    tu_rng r = {777};
    float x[256];
    for (int trial = 0; trial < 400; trial++) {
        uint32_t b = bits[trial % 4], n = 8 + (uint32_t)(tu_uniform(&r) * 248), maxq = (1u << b) - 1u;
        float sc = (float)pow(10.0, tu_uniform(&r) * 4 - 2);
        tu_random(&r, n, sc, x);
        uint16_t sh, zh;
        pkv_quant_params(x, n, 1, b, &sh, &zh);
        float s = pkv_f16_to_f32(sh), z = pkv_f16_to_f32(zh);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t c = pkv_quant_code(x[i], z, s, maxq);
            assert_true(c <= maxq);
            double deq = z + (double)c * s;
            /* Half a step, plus what fp16 rounding of zero and scale can add at the ends of the range. */
            double tol = s / 2 + fabs(z) * 1e-3 + maxq * s * 1e-3 + 1e-7;
            assert_true(fabs(deq - x[i]) <= tol);
            /* The code is the exact round-half-up of (x - z) / s in the interior. */
            double t = (double)(x[i] - z);
            if (c > 0 && c < maxq) assert_true(t >= (c - 0.5) * s && t < (c + 0.5) * s);
        }
    }
}

/* pkv_quant_code against its definition, #{k = 1..maxq : t >= (k - 0.5) s} (the thresholds exact in
 * fp32; code 0 when s = 0), under the MSE search's clipped candidates (pkv_mse_candidate) at every
 * width, values drawn across the span and placed on thresholds and a few ulps either side of them;
 * and at 2 bits the GPUs' threshold form of the error term (pkv_quant_err_step2) against
 * pkv_quant_err_step, bit for bit. */
static void codes_equal_the_threshold_count(void **state)
{
    (void)state;
    const uint32_t bits[] = {2, 3, 4, 8};
    tu_rng r = {4242};
    long on_threshold = 0;
    for (int trial = 0; trial < 200000; trial++) {
        const uint32_t b = bits[trial % 4], maxq = (1u << b) - 1u;
        const float mag = (float)ldexp(1.0, (int)(tu_uniform(&r) * 40) - 25);
        const float lo = (float)((tu_uniform(&r) * 2 - 1) * mag * (trial % 5 == 0 ? 1000.0 : 1.0));
        const float w = trial % 17 == 0 ? 0.0f : (float)tu_uniform(&r) * mag;
        pkv_span sp = pkv_span_add(pkv_span_of(lo), lo + w);
        const uint32_t cand = pkv_mse_candidate(sp, (uint32_t)(tu_uniform(&r) * 64), pkv_inv_maxq(b));
        const float s = pkv_f16_to_f32(cand & 0xFFFFu), z = pkv_f16_to_f32(cand >> 16);
        if (!isfinite(s) || !isfinite(z)) continue;
        assert_false(signbit(s)); /* the clipped range never inverts */
        float x = lo + (float)tu_uniform(&r) * w;
        if (trial % 3 == 0) { /* on a threshold, or a few ulps off it */
            const float th = z + ((float)(uint32_t)(tu_uniform(&r) * (maxq + 2)) - 0.5f) * s;
            const int u = (int)(tu_uniform(&r) * 5) - 2;
            x = th;
            for (int q = 0; q < abs(u); q++) x = nextafterf(x, u < 0 ? -INFINITY : INFINITY);
            on_threshold++;
        }
        const float t = x - z;
        uint32_t want = 0;
        for (uint32_t k = 1; s != 0.0f && k <= maxq; k++) want += t >= ((float)k - 0.5f) * s;
        assert_int_equal(pkv_quant_code(x, z, s, maxq), want);
        if (b == 2) {
            const float acc = (float)tu_uniform(&r);
            const float e1 = pkv_quant_err_step(acc, x, z, s, 1.0f / s, maxq);
            const float e2 = pkv_quant_err_step2(acc, x, z, pkv_levels2_of(z, s));
            assert_memory_equal(&e1, &e2, sizeof e1);
        }
    }
    assert_true(on_threshold > 50000);
}

static void packing_round_trips_for_every_width(void **state)
{
    (void)state;
    const uint32_t bits[] = {2, 3, 4, 8}, dims[] = {32, 40, 64, 96, 128, 256};
    tu_rng r = {99};
    uint8_t codes[256], back[256];
    uint32_t row[80];
    for (int bi = 0; bi < 4; bi++)
        for (int di = 0; di < 6; di++) {
            uint32_t b = bits[bi], d = dims[di];
            for (uint32_t i = 0; i < d; i++) codes[i] = (uint8_t)(tu_uniform(&r) * (1u << b));
            memset(row, 0xAB, sizeof row);
            pkv_pack_row(codes, d, b, row);
            pkv_unpack_row(row, d, b, back);
            assert_memory_equal(codes, back, d);
            /* Exactly b bits per element: padding bits are zero. */
            uint32_t words = pkv_row_words(d, b), set = 0;
            for (uint32_t w = 0; w < words; w++) set += (uint32_t)__builtin_popcount(row[w]);
            uint32_t expect = 0;
            for (uint32_t i = 0; i < d; i++) expect += (uint32_t)__builtin_popcount(codes[i]);
            assert_int_equal(set, expect);
            assert_true(words * 32 >= d * b && words * 32 < d * b + 64);
        }
}

static void gate_and_distances_match_their_formulas(void **state)
{
    (void)state;
    float x[64], c[64];
    tu_rng r = {4242};
    uint32_t d = 64, passed = 0, rejected = 0;
    double k = 2 * 1.645 / sqrt(5.0 * d);
    float k2 = (float)(k * k);
    for (int trial = 0; trial < 2000; trial++) {
        double spread = tu_uniform(&r) * 1.5;
        for (uint32_t i = 0; i < d; i++) {
            x[i] = (float)tu_normal(&r);
            c[i] = x[i] + (float)(spread * tu_normal(&r));
        }
        double mn = 1e30, mx = -1e30, xmn = 1e30, xmx = -1e30;
        for (uint32_t i = 0; i < d; i++) {
            double rr = (double)x[i] - c[i];
            mn = fmin(mn, rr), mx = fmax(mx, rr);
            xmn = fmin(xmn, x[i]), xmx = fmax(xmx, x[i]);
        }
        assert_true(fabs(pkv_dist_minmax(x, c, d) - (mx - mn)) < 1e-5 * (mx - mn + 1));
        double A = pkv_dist_minmax(x, c, d), B = pkv_range(x, d), rho = A / B;
        int paper = 1 - rho * rho >= k * sqrt(1 + pow(rho, 4));
        int ours = pkv_v_gate((float)A, (float)B, k2);
        double margin = fabs((1 - rho * rho) - k * sqrt(1 + pow(rho, 4)));
        if (margin > 1e-5) assert_int_equal(ours, paper);
        passed += ours, rejected += !ours;
    }
    assert_true(passed > 100 && rejected > 100); /* both outcomes exercised */
    assert_false(pkv_v_gate(0.0f, 0.0f, k2));  /* constant token: quantized raw */
}

/* The file checksum: zlib's check value, and the sliced path (long inputs) equal to the bytewise one,
 * at every alignment and length remainder, also when a long input is checked in pieces. */
static void crc32_matches_zlib_and_the_bytewise_form(void **state)
{
    (void)state;
    assert_int_equal(pkv_crc32(0, "123456789", 9), 0xCBF43926u);
    enum { N = 70000 };
    uint8_t *buf = malloc(N + 16);
    assert_non_null(buf);
    uint64_t x = 12345;
    for (size_t i = 0; i < N + 16; i++) x = x * 6364136223846793005ull + 1442695040888963407ull, buf[i] = (uint8_t)(x >> 56);
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 16384; n < 16400; n += 3) {
            uint32_t bytewise = 0;
            for (size_t i = 0; i < n; i++) bytewise = pkv_crc32(bytewise, buf + off + i, 1);
            assert_int_equal(pkv_crc32(0, buf + off, n), bytewise);
        }
    uint32_t whole = pkv_crc32(0, buf, N), pieces = pkv_crc32(pkv_crc32(0, buf, 20001), buf + 20001, N - 20001);
    assert_int_equal(whole, pieces);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(f16_round_trips_every_finite_value),
        cmocka_unit_test(f16_rounds_to_nearest_even_and_saturates),
        cmocka_unit_test(f16_checked_conversion_matches_the_scalar_rule),
        cmocka_unit_test(quantized_values_are_within_half_a_step),
        cmocka_unit_test(codes_equal_the_threshold_count),
        cmocka_unit_test(packing_round_trips_for_every_width),
        cmocka_unit_test(gate_and_distances_match_their_formulas),
        cmocka_unit_test(crc32_matches_zlib_and_the_bytewise_form),
    };
    return tu_run_tests(tests, NULL, NULL);
}
