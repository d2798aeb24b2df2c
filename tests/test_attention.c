/* Fused attention on the compressed cache against fp64 references: FP16 mode against the input,
 * PATTERN and DIRECT against the dequantized cache (proving the fused math), with GQA, q_len > 1 and
 * a batch of sequences of different lengths. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef struct shape {
    uint32_t H, gq, d, G, bits, q_len;
    pkv_mode mode;
} shape;

/* V as runs of `run` tokens that repeat one of a few random vectors, plus noise: the tokens of a run
 * take one pattern, so the V histogram sees many adds to one pattern at once. */
static void v_in_runs(tu_rng *r, uint32_t n, uint32_t H, uint32_t d, uint32_t run, float *v)
{
    enum { N_BASE = 5 };
    const size_t row = (size_t)H * d;
    float *base = malloc(N_BASE * row * sizeof(float)), *noise = malloc(row * sizeof(float));
    assert_non_null(base), assert_non_null(noise);
    tu_random(r, N_BASE * row, 1.0f, base);
    for (uint32_t t = 0; t < n; t++) {
        const float *b = base + (size_t)((t / run) % N_BASE) * row;
        tu_random(r, row, 0.01f, noise);
        for (size_t i = 0; i < row; i++) v[t * row + i] = b[i] + noise[i];
    }
    free(base), free(noise);
}

/* Lengths chosen to cover: a partial window only, mining plus window, several flushes. */
static const uint32_t lengths[] = {37, 200, 45, 333};
#define N_SEQS 4

/* *bound: tu_attention_bound of the case's context (NULL: not wanted); v_run: V in runs (v_in_runs), 0
 * random */
static double run_case(const shape *sh, int use_readback, double *bound, uint32_t v_run)
{
    tu_rng r = {0xA77E + sh->d * 7 + sh->bits * 131 + sh->mode * 1009 + sh->q_len};
    pkv_context *ctx = tu_context();
    if (bound) *bound = tu_attention_bound(ctx);
    pkv_cache_config cfg = tu_config(2, sh->H, sh->d, sh->bits, sh->G, sh->mode);
    pkv_cache *c;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    pkv_seq seqs[N_SEQS];
    float *k[N_SEQS], *v[N_SEQS];
    for (int s = 0; s < N_SEQS; s++) {
        uint32_t n = lengths[s];
        size_t cnt = (size_t)n * sh->H * sh->d;
        k[s] = malloc(cnt * sizeof(float));
        v[s] = malloc(cnt * sizeof(float));
        if (sh->mode == PKV_MODE_FP16) tu_random(&r, cnt, 1.0f, k[s]); /* error = fp16 rounding of the input */
        else tu_structured_kv(&r, n, sh->H, sh->d, 6, 0.3f, k[s]);
        if (v_run) v_in_runs(&r, n, sh->H, sh->d, v_run, v[s]);
        else tu_random(&r, cnt, 1.0f, v[s]);
        TU_OK(pkv_seq_create(c, &seqs[s]));
        /* Layer 1 in uneven chunks: a prefill, then decode-sized appends. */
        uint32_t first = n / 2, done = 0;
        while (done < n) {
            uint32_t m = done == 0 ? first : (n - done < 7 ? n - done : 7);
            TU_OK(pkv_append(c, seqs[s], 1, m, k[s] + (size_t)done * sh->H * sh->d, v[s] + (size_t)done * sh->H * sh->d,
                             PKV_F32));
            done += m;
        }
        if (use_readback) TU_OK(pkv_read_kv(c, seqs[s], 1, k[s], v[s]));
    }
    const uint32_t nqh = sh->H * sh->gq;
    size_t nq = (size_t)N_SEQS * sh->q_len * nqh * sh->d;
    float *q = malloc(nq * sizeof(float)), *out = malloc(nq * sizeof(float));
    tu_random(&r, nq, 1.0f, q);
    pkv_attention_params p = {.struct_size = sizeof(pkv_attention_params), .seqs = seqs, .n_seqs = N_SEQS, .layer = 1, .q_len = sh->q_len, .n_q_heads = nqh, .scale = 0.0f, .q_dtype = PKV_F32};
    TU_OK(pkv_attention(c, &p, q, out));
    double err = tu_check_attention((const float *const *)k, (const float *const *)v, lengths, N_SEQS, sh->q_len, nqh,
                                    sh->H, sh->d, q, out);
    for (int s = 0; s < N_SEQS; s++) free(k[s]), free(v[s]);
    free(q), free(out);
    pkv_cache_free(c);
    pkv_context_free(ctx);
    return err;
}

static void fp16_mode_matches_fp64_attention(void **state)
{
    (void)state;
    shape cases[] = {{2, 2, 64, 32, 2, 1, PKV_MODE_FP16}, {1, 4, 40, 64, 2, 3, PKV_MODE_FP16}, {1, 8, 32, 32, 2, 5, PKV_MODE_FP16}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double e = run_case(&cases[i], 0, NULL, 0);
        print_message("fp16 d=%u q_len=%u: rel err %.2e\n", cases[i].d, cases[i].q_len, e);
        assert_true(e < 1e-3);
    }
}

/* One case against the fp64 reference within the context's bound, or at least `floor` (V in runs of v_run
 * tokens, 0: random) */
static void check_case_within(const shape *sh, uint32_t v_run, double floor)
{
    double bound;
    double e = run_case(sh, 1, &bound, v_run);
    if (bound < floor) bound = floor;
    print_message("%s %u-bit d=%u G=%u q_len=%u gqa=%u v_run=%u: rel err %.2e\n", pkv_mode_name(sh->mode), sh->bits, sh->d,
                  sh->G, sh->q_len, sh->gq, v_run, e);
    assert_true(e < bound);
}
static void check_quantized_case(const shape *sh, uint32_t v_run) { check_case_within(sh, v_run, 0.0); }

static void quantized_modes_match_fp64_attention_over_the_dequantized_cache(void **state)
{
    (void)state;
    shape cases[] = {
        {2, 2, 64, 32, 2, 1, PKV_MODE_PATTERN}, {2, 2, 64, 32, 2, 1, PKV_MODE_DIRECT},
        {1, 3, 40, 64, 3, 4, PKV_MODE_PATTERN}, {2, 1, 128, 128, 4, 2, PKV_MODE_PATTERN},
        {1, 2, 32, 32, 8, 1, PKV_MODE_DIRECT},  {1, 2, 256, 32, 3, 1, PKV_MODE_PATTERN},
        /* GQA 4 and 8, q_len 5, every width in both quantized modes */
        {2, 4, 64, 32, 2, 1, PKV_MODE_PATTERN}, {1, 8, 32, 32, 4, 5, PKV_MODE_PATTERN},
        {2, 4, 64, 64, 8, 1, PKV_MODE_PATTERN}, {1, 4, 48, 32, 3, 5, PKV_MODE_DIRECT},
        {2, 8, 64, 32, 4, 1, PKV_MODE_DIRECT},
        /* head_dim 128, G 128: Vulkan's PATTERN 3- and 8-bit take two items per workgroup (teams) */
        {2, 4, 128, 128, 3, 1, PKV_MODE_PATTERN}, {1, 4, 128, 128, 8, 2, PKV_MODE_PATTERN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_quantized_case(&cases[i], 0);
    /* V in runs of 16 and 40 tokens that share a pattern: the V histogram's many adds to one pattern */
    const shape in_runs[] = {{2, 4, 64, 32, 2, 1, PKV_MODE_PATTERN}, {1, 4, 128, 128, 4, 1, PKV_MODE_PATTERN}};
    check_quantized_case(&in_runs[0], 16);
    check_quantized_case(&in_runs[1], 40);
}

/* The step on cooperative matrices (PKV_ATTN_COOPMAT=1; Vulkan devices with VK_NV_cooperative_matrix, in
 * its one shape: d 128, G 128, 2- or 4-bit codes) multiplies fp16 operands (q * s_K, p * s_V), so it
 * has a wider bound than the portable step (docs/NUMERICS.md). Where it is not available (lavapipe,
 * PoCL, the CPU) the same cases run the portable step, which the bound covers too. */
static void coopmat_step_matches_fp64_attention(void **state)
{
    (void)state;
    setenv("PKV_ATTN_COOPMAT", "1", 1);
    shape cases[] = {{2, 4, 128, 128, 2, 1, PKV_MODE_PATTERN}, {2, 4, 128, 128, 4, 1, PKV_MODE_PATTERN},
                     {2, 4, 128, 128, 2, 1, PKV_MODE_DIRECT}, {1, 4, 128, 128, 4, 3, PKV_MODE_DIRECT}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double e = run_case(&cases[i], 1, NULL, 0);
        print_message("coopmat step: %s %u-bit q_len=%u gqa=%u: rel err %.2e\n", pkv_mode_name(cases[i].mode),
                      cases[i].bits, cases[i].q_len, cases[i].gq, e);
        assert_true(e < 2e-3);
    }
    unsetenv("PKV_ATTN_COOPMAT");
}

/* Split attention (PKV_ATTN_SPLIT=1) with PKV_ATTN_COOPMAT=coopmat on n cases, the last with V in runs of
 * 40 tokens (the histogram), the others random, against fp64 within the context's bound or `floor` */
static void check_split_cases(const char *coopmat, const shape *cases, size_t n, double floor)
{
    setenv("PKV_ATTN_COOPMAT", coopmat, 1);
    setenv("PKV_ATTN_SPLIT", "1", 1);
    for (size_t i = 0; i < n; i++) check_case_within(&cases[i], i + 1 == n ? 40 : 0, floor);
    unsetenv("PKV_ATTN_COOPMAT");
    unsetenv("PKV_ATTN_SPLIT");
}

/* Split attention on cooperative matrices (PKV_ATTN_SPLIT=1 with PKV_ATTN_COOPMAT=1; Vulkan devices with
 * VK_NV_cooperative_matrix and subgroups of 32: head_dim 64 or 128, G 128, 2-, 4- or 8-bit codes, up to 8
 * rows per tile). Its fp16 operands carry hi and lo parts (attn_split_cm.glsl); on NVIDIA they keep less
 * than the emulation does (1.1e-4 on an H100, docs/NUMERICS.md), so its bound is the 1e-3.
 * Elsewhere the same cases run portable split attention. */
static const shape split_cm_cases[] = {
    {2, 4, 128, 128, 2, 1, PKV_MODE_PATTERN}, {2, 4, 128, 128, 4, 1, PKV_MODE_PATTERN}, {1, 4, 128, 128, 8, 1, PKV_MODE_PATTERN},
    {2, 4, 128, 128, 2, 1, PKV_MODE_DIRECT},  {1, 4, 128, 128, 4, 3, PKV_MODE_DIRECT},  {2, 8, 64, 128, 2, 1, PKV_MODE_PATTERN},
    {1, 4, 64, 128, 4, 2, PKV_MODE_PATTERN},
    {2, 4, 128, 128, 2, 1, PKV_MODE_PATTERN}, /* last: with V in runs */
};
static void coopmat_split_matches_fp64_attention(void **state)
{
    (void)state;
    check_split_cases("1", split_cm_cases, sizeof split_cm_cases / sizeof split_cm_cases[0], 1e-3);
}

/* The same kernels with the matrix operations emulated in plain GLSL (PKV_ATTN_COOPMAT=emu: Vulkan
 * devices with subgroup arithmetic, lavapipe included), so that their tiles, operand orders, hi/lo
 * rows, row scales and window chunks are checked where no device has cooperative matrices. With the
 * switch, a Vulkan op whose shape the emulated kernels do not serve fails instead of running the
 * portable ones. The shapes fit lavapipe's 32 KB of shared memory. Run where PKV_TEST_COOPMAT_EMU=1
 * (its own ctest entry, test_attention_vulkan_coopmat_emu: the emulated kernels need subgroup
 * arithmetic, which some Vulkan variants turn off, and their build is slow on lavapipe). */
static const shape split_emu_cases[] = {
    {2, 4, 64, 128, 2, 1, PKV_MODE_PATTERN}, {1, 2, 128, 128, 2, 1, PKV_MODE_PATTERN}, {2, 4, 128, 128, 2, 1, PKV_MODE_DIRECT},
    {1, 2, 64, 128, 4, 1, PKV_MODE_PATTERN}, {1, 2, 64, 128, 8, 1, PKV_MODE_PATTERN},  {1, 4, 64, 128, 2, 3, PKV_MODE_DIRECT},
    {1, 2, 128, 128, 4, 1, PKV_MODE_DIRECT},
    {2, 4, 64, 128, 2, 1, PKV_MODE_PATTERN}, /* last: with V in runs */
};
static void emulated_coopmat_split_matches_fp64_attention(void **state)
{
    (void)state;
    check_split_cases("emu", split_emu_cases, sizeof split_emu_cases / sizeof split_emu_cases[0], 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fp16_mode_matches_fp64_attention),
        cmocka_unit_test(quantized_modes_match_fp64_attention_over_the_dequantized_cache),
        cmocka_unit_test(coopmat_step_matches_fp64_attention),
        cmocka_unit_test(coopmat_split_matches_fp64_attention),
    };
    const struct CMUnitTest emulated[] = {cmocka_unit_test(emulated_coopmat_split_matches_fp64_attention)};
    const char *emu = getenv("PKV_TEST_COOPMAT_EMU");
    if (emu && strcmp(emu, "1") == 0) return tu_run_tests(emulated, NULL, NULL);
    return tu_run_tests(tests, NULL, NULL);
}
