/* Parity of the Vulkan kernels with the CPU reference backend: the same tokens appended to a CPU
 * cache and a Vulkan cache give bit-identical saved files (blocks with their codes, scales, zeros,
 * indices and masks; pattern banks; windows), and attention within 1e-4 relative, also against an
 * fp64 reference over the dequantized cache. Odd sizes included. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <unistd.h>

#include "test_vulkan_common.h"

typedef struct scenario {
    const char *name;
    uint32_t H, d, k_bits, v_bits, G, window, M, capacity;
    pkv_mode mode;
    uint32_t n_seqs;
    uint32_t prefill;   /* tokens in the first append of each sequence */
    uint32_t decode;    /* then this many more, `step` at a time (crossing flushes) */
    uint32_t step;
    uint32_t gqa;
    int fork;           /* fork sequence 0 after the prefill; both sides then decode */
    uint32_t iters;     /* k-means iterations (0: the default 30) */
    float tol;          /* k-means tolerance (0: the default) */
    int signed_zeros;   /* non-negative data with exact +0 and -0: ranges start at a zero of either sign */
} scenario;

static const scenario scenarios[] = {
    {"pattern d64 2-bit G32", 2, 64, 2, 2, 32, 0, 8, 256, PKV_MODE_PATTERN, 1, 100, 70, 1, 2, 0, 0, 0, 0},
    {"pattern d40 3/4-bit G64 R128", 2, 40, 3, 4, 64, 128, 6, 256, PKV_MODE_PATTERN, 1, 150, 260, 7, 3, 0, 0, 0, 0},
    {"pattern d256 8/3-bit G32", 1, 256, 8, 3, 32, 0, 8, 256, PKV_MODE_PATTERN, 1, 70, 40, 5, 2, 0, 0, 0, 0},
    {"pattern d128 4-bit G128", 2, 128, 4, 4, 128, 0, 32, 256, PKV_MODE_PATTERN, 1, 300, 140, 20, 4, 0, 0, 0, 0},
    {"pattern bank freezes", 1, 32, 2, 2, 32, 0, 4, 6, PKV_MODE_PATTERN, 1, 40, 200, 9, 1, 0, 0, 0, 0},
    {"pattern shorter than one window", 2, 64, 2, 2, 64, 0, 8, 256, PKV_MODE_PATTERN, 1, 5, 20, 3, 2, 0, 0, 0, 0},
    {"pattern many short sequences", 2, 32, 2, 2, 32, 0, 4, 256, PKV_MODE_PATTERN, 12, 9, 30, 4, 2, 0, 0, 0, 0},
    {"pattern fork", 2, 64, 2, 2, 32, 0, 8, 256, PKV_MODE_PATTERN, 1, 90, 50, 3, 2, 1, 0, 0, 0},
    {"direct d40 3-bit G32", 2, 40, 3, 3, 32, 0, 8, 256, PKV_MODE_DIRECT, 2, 45, 60, 4, 2, 0, 0, 0, 0},
    {"direct d256 2-bit G64", 1, 256, 2, 2, 64, 0, 8, 256, PKV_MODE_DIRECT, 1, 100, 64, 16, 2, 0, 0, 0, 0},
    {"fp16 d64 G32", 2, 64, 2, 2, 32, 0, 8, 256, PKV_MODE_FP16, 2, 50, 40, 5, 2, 0, 0, 0, 0},
    {"pattern d64 3-bit K (unaligned rows)", 2, 64, 3, 2, 32, 0, 8, 256, PKV_MODE_PATTERN, 1, 80, 40, 6, 2, 0, 0, 0, 0},
    {"pattern k-means 1 iteration", 2, 48, 2, 2, 32, 0, 16, 256, PKV_MODE_PATTERN, 1, 200, 10, 10, 2, 0, 1, 0, 0},
    {"pattern k-means loose tolerance", 2, 48, 4, 2, 32, 0, 16, 256, PKV_MODE_PATTERN, 1, 200, 10, 10, 2, 0, 0, 0.5f, 0},
    {"direct with signed zeros", 2, 32, 2, 2, 32, 0, 8, 256, PKV_MODE_DIRECT, 1, 64, 32, 8, 2, 0, 0, 0, 1},
    {"pattern with signed zeros", 2, 32, 2, 2, 32, 0, 8, 256, PKV_MODE_PATTERN, 1, 64, 32, 8, 2, 0, 0, 0, 1},
};

enum { LAYERS = 2, MAX_SEQS = 16 };

typedef struct side {
    pkv_context *ctx;
    pkv_cache *c;
    pkv_seq seqs[MAX_SEQS];
    uint32_t n_seqs;
} side;

static void side_append(side *s, uint32_t i, uint32_t n, const float *k, const float *v)
{
    for (uint32_t l = 0; l < LAYERS; l++) TU_OK(pkv_append(s->c, s->seqs[i], l, n, k, v, PKV_F32));
}

static void run_scenario(const scenario *sc, pkv_context *cpu, pkv_context *vk)
{
    print_message("%s\n", sc->name);
    pkv_cache_config cfg = tu_config(LAYERS, sc->H, sc->d, sc->k_bits, sc->G, sc->mode);
    cfg.v_bits = sc->v_bits;
    cfg.window = sc->window;
    cfg.n_patterns = sc->M;
    cfg.bank_capacity = sc->capacity;
    cfg.seed = 0x1234 + sc->d;
    if (sc->iters) cfg.kmeans_iters = sc->iters;
    if (sc->tol > 0) cfg.kmeans_tol = sc->tol;
    side sides[2] = {{.ctx = cpu}, {.ctx = vk}};
    const size_t row = (size_t)sc->H * sc->d;
    const uint32_t total = sc->prefill + sc->decode;
    tu_rng rng = {0x9E37 + sc->d * 7 + sc->G};
    uint32_t n_seqs = sc->n_seqs + (sc->fork ? 1 : 0);
    float *kx[MAX_SEQS], *vx[MAX_SEQS];
    uint32_t len[MAX_SEQS];
    for (uint32_t i = 0; i < n_seqs; i++) {
        kx[i] = malloc(total * row * sizeof(float));
        vx[i] = malloc(total * row * sizeof(float));
        tu_structured_kv(&rng, total, sc->H, sc->d, 6, 0.3f, kx[i]);
        tu_random(&rng, total * row, 1.5f, vx[i]);
        /* many short sequences: different lengths */
        if (sc->signed_zeros) /* |x|, then about one value in six an exact zero of random sign */
            for (size_t e = 0; e < total * row; e++) {
                kx[i][e] = fabsf(kx[i][e]), vx[i][e] = fabsf(vx[i][e]);
                if (tu_uniform(&rng) < 0.17) kx[i][e] = tu_uniform(&rng) < 0.5 ? -0.0f : 0.0f;
                if (tu_uniform(&rng) < 0.17) vx[i][e] = tu_uniform(&rng) < 0.5 ? -0.0f : 0.0f;
            }
        len[i] = sc->n_seqs > 1 ? 1 + (uint32_t)(tu_uniform(&rng) * total) : total;
        if (len[i] < 3) len[i] = 3;
    }
    if (sc->fork) { /* the child shares the parent's prefix */
        memcpy(kx[1], kx[0], sc->prefill * row * sizeof(float));
        memcpy(vx[1], vx[0], sc->prefill * row * sizeof(float));
    }
    for (int b = 0; b < 2; b++) {
        side *s = &sides[b];
        TU_OK(pkv_cache_create(s->ctx, &cfg, &s->c));
        for (uint32_t i = 0; i < sc->n_seqs; i++) TU_OK(pkv_seq_create(s->c, &s->seqs[i]));
        s->n_seqs = sc->n_seqs;
        for (uint32_t i = 0; i < sc->n_seqs; i++) {
            uint32_t pre = sc->prefill < len[i] ? sc->prefill : len[i];
            side_append(s, i, pre, kx[i], vx[i]);
        }
        if (sc->fork) {
            TU_OK(pkv_seq_fork(s->c, s->seqs[0], &s->seqs[1]));
            s->n_seqs = 2;
        }
        for (uint32_t i = 0; i < s->n_seqs; i++)
            for (uint32_t t = sc->prefill; t < len[i]; t += sc->step) {
                uint32_t n = len[i] - t < sc->step ? len[i] - t : sc->step;
                side_append(s, i, n, kx[i] + t * row, vx[i] + t * row);
            }
    }

    /* Bit-exact: the saved files (every block, bank chunk and window) are identical. */
    char path[2][64];
    for (int b = 0; b < 2; b++) {
        snprintf(path[b], sizeof path[b], "/tmp/pkv_parity_%d_%d.bin", (int)getpid(), b);
        TU_OK(pkv_cache_save(sides[b].c, path[b]));
    }
    size_t n0 = 0, n1 = 0;
    uint8_t *f0 = tv_read_file(path[0], &n0), *f1 = tv_read_file(path[1], &n1);
    assert_non_null(f0);
    assert_non_null(f1);
    assert_true(n0 > 100);
    assert_int_equal(n0, n1);
    if (memcmp(f0, f1, n0) != 0) {
        size_t at = 0;
        while (f0[at] == f1[at]) at++;
        fail_msg("%s: saved caches differ first at byte %zu of %zu (cpu %02x, vulkan %02x)", sc->name, at, n0, f0[at], f1[at]);
    }
    free(f0), free(f1);
    remove(path[0]), remove(path[1]);

    /* Attention: q_len 1 and a causal q_len 3, GQA, all sequences batched. */
    const uint32_t n_q_heads = sc->H * sc->gqa;
    for (uint32_t q_len = 1; q_len <= 3; q_len += 2) {
        for (uint32_t layer = 0; layer < LAYERS; layer++) {
            size_t nq = (size_t)sides[0].n_seqs * q_len * n_q_heads * sc->d;
            float *q = malloc(nq * sizeof(float)), *o[2] = {malloc(nq * sizeof(float)), malloc(nq * sizeof(float))};
            tu_random(&rng, nq, 1.0f, q);
            pkv_attention_params ap = {.n_seqs = sides[0].n_seqs, .layer = layer, .q_len = q_len, .n_q_heads = n_q_heads,
                                       .q_dtype = PKV_F32};
            for (int b = 0; b < 2; b++) {
                ap.seqs = sides[b].seqs;
                TU_OK(pkv_attention(sides[b].c, &ap, q, o[b]));
            }
            double rel = ref_rel_diff(o[1], o[0], nq);
            if (!(rel < 1e-4)) fail_msg("%s: attention q_len %u layer %u: vulkan vs cpu rel diff %.3g", sc->name, q_len, layer, rel);
            /* and against fp64 over the dequantized cache */
            const float *kd[MAX_SEQS], *vd[MAX_SEQS];
            uint32_t T[MAX_SEQS];
            for (uint32_t i = 0; i < sides[1].n_seqs; i++) {
                TU_OK(pkv_seq_length(sides[1].c, sides[1].seqs[i], layer, &T[i]));
                float *kk = malloc((size_t)T[i] * row * sizeof(float)), *vv = malloc((size_t)T[i] * row * sizeof(float));
                TU_OK(pkv_read_kv(sides[1].c, sides[1].seqs[i], layer, kk, vv));
                kd[i] = kk, vd[i] = vv;
            }
            double ref = tu_check_attention(kd, vd, T, sides[1].n_seqs, q_len, n_q_heads, sc->H, sc->d, q, o[1]);
            if (!(ref < 1e-4)) fail_msg("%s: attention q_len %u: vulkan vs fp64 rel err %.3g", sc->name, q_len, ref);
            for (uint32_t i = 0; i < sides[1].n_seqs; i++) free((void *)kd[i]), free((void *)vd[i]);
            free(q), free(o[0]), free(o[1]);
        }
    }
    for (int b = 0; b < 2; b++) TU_OK(pkv_cache_free(sides[b].c));
    for (uint32_t i = 0; i < n_seqs; i++) free(kx[i]), free(vx[i]);
}

static void all_scenarios_match_the_cpu_backend(void **state)
{
    (void)state;
    pkv_context *vk = tv_context();
    pkv_context *cpu = tv_cpu_context();
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) run_scenario(&scenarios[i], cpu, vk);
    TU_OK(pkv_context_free(cpu));
    TU_OK(pkv_context_free(vk));
}

/* A cache saved by one backend loads on the other and gives the same attention. */
static void saved_caches_load_across_backends(void **state)
{
    (void)state;
    pkv_context *vk = tv_context();
    pkv_context *cpu = tv_cpu_context();
    pkv_cache_config cfg = tu_config(1, 2, 64, 2, 32, PKV_MODE_PATTERN);
    pkv_cache *c;
    pkv_seq s;
    TU_OK(pkv_cache_create(vk, &cfg, &c));
    TU_OK(pkv_seq_create(c, &s));
    tu_rng rng = {77};
    float *k = malloc(120 * 2 * 64 * sizeof(float)), *v = malloc(120 * 2 * 64 * sizeof(float));
    tu_structured_kv(&rng, 120, 2, 64, 4, 0.2f, k);
    tu_random(&rng, 120 * 2 * 64, 1.0f, v);
    TU_OK(pkv_append(c, s, 0, 120, k, v, PKV_F32));
    const char *path = "/tmp/pkv_vk_cross.bin";
    TU_OK(pkv_cache_save(c, path));
    pkv_cache *c2;
    TU_OK(pkv_cache_load(cpu, path, &c2));
    float q[4 * 64], o1[4 * 64], o2[4 * 64];
    tu_random(&rng, 4 * 64, 1.0f, q);
    pkv_attention_params ap = {.seqs = &s, .n_seqs = 1, .layer = 0, .q_len = 1, .n_q_heads = 4, .q_dtype = PKV_F32};
    TU_OK(pkv_attention(c, &ap, q, o1));
    TU_OK(pkv_attention(c2, &ap, q, o2));
    assert_true(ref_rel_diff(o1, o2, 4 * 64) < 1e-4);
    /* and back to Vulkan */
    const char *path2 = "/tmp/pkv_vk_cross2.bin";
    TU_OK(pkv_cache_save(c2, path2));
    pkv_cache *c3;
    TU_OK(pkv_cache_load(vk, path2, &c3));
    TU_OK(pkv_attention(c3, &ap, q, o2));
    assert_true(ref_rel_diff(o2, o1, 4 * 64) < 1e-6); /* same backend, same data (histogram adds may reorder) */
    remove(path), remove(path2);
    TU_OK(pkv_cache_free(c)), TU_OK(pkv_cache_free(c2)), TU_OK(pkv_cache_free(c3));
    free(k), free(v);
    TU_OK(pkv_context_free(cpu));
    TU_OK(pkv_context_free(vk));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(all_scenarios_match_the_cpu_backend),
        cmocka_unit_test(saved_caches_load_across_backends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
