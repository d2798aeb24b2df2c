#define _POSIX_C_SOURCE 200809L
/* OpenCL backend against the CPU reference: identical inputs into a CPU cache and an OpenCL cache
 * must give byte-identical saved caches (codes, scales, zeros, indices, masks, patterns) and
 * attention within 1e-4; plus odd shapes, fork, budgets, device out-of-memory, the program-binary
 * cache and engine integration. Shapes are small: PoCL runs on the CPU.
 * With CI=true a missing OpenCL device fails these tests; elsewhere they are skipped with a note. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "patternkv_opencl.h"
#include "internal.h"
#include "opencl/ocl_internal.h"

static char g_cache_dir[512];

static int in_ci(void)
{
    const char *ci = getenv("CI");
    return ci && (strcmp(ci, "true") == 0 || strcmp(ci, "1") == 0);
}

static pkv_context *ocl_context_with(pkv_context_params *p)
{
    p->backend = PKV_BACKEND_OPENCL;
    if (!p->cache_dir) p->cache_dir = g_cache_dir;
    pkv_context *ctx = NULL;
    pkv_status st = pkv_context_create(p, &ctx);
    if (st != PKV_OK) {
        if (in_ci()) fail_msg("no OpenCL device (CI=true): %s", pkv_last_error());
        print_message("skipped: no OpenCL device: %s\n", pkv_last_error());
        skip();
    }
    return ctx;
}

static pkv_context *ocl_context(void)
{
    pkv_context_params p = pkv_context_params_default();
    return ocl_context_with(&p);
}

static pkv_context *cpu_context(void)
{
    pkv_context_params p = pkv_context_params_default();
    p.backend = PKV_BACKEND_CPU;
    p.n_threads = 1;
    pkv_context *ctx = NULL;
    TU_OK(pkv_context_create(&p, &ctx));
    return ctx;
}

/* A CPU cache and an OpenCL cache fed the same calls. */
typedef struct twin {
    pkv_context *cctx, *octx;
    pkv_cache *cpu, *ocl;
    pkv_cache_config cfg;
} twin;

static void twin_open(twin *t, const pkv_cache_config *cfg)
{
    t->cfg = *cfg;
    t->cctx = cpu_context();
    t->octx = ocl_context();
    TU_OK(pkv_cache_create(t->cctx, cfg, &t->cpu));
    TU_OK(pkv_cache_create(t->octx, cfg, &t->ocl));
}

static void twin_close(twin *t)
{
    TU_OK(pkv_cache_free(t->cpu));
    TU_OK(pkv_cache_free(t->ocl));
    TU_OK(pkv_context_free(t->cctx));
    TU_OK(pkv_context_free(t->octx));
}

static void twin_seq(twin *t, pkv_seq *out)
{
    pkv_seq a, b;
    TU_OK(pkv_seq_create(t->cpu, &a));
    TU_OK(pkv_seq_create(t->ocl, &b));
    assert_int_equal(a, b);
    *out = a;
}

/* Appends n structured tokens to every layer of seq in both caches. */
static void twin_append(twin *t, pkv_seq s, uint32_t n, tu_rng *r)
{
    const uint32_t H = t->cfg.n_kv_heads, d = t->cfg.head_dim;
    float *k = malloc((size_t)n * H * d * sizeof(float)), *v = malloc((size_t)n * H * d * sizeof(float));
    for (uint32_t l = 0; l < t->cfg.n_layers; l++) {
        tu_structured_kv(r, n, H, d, 4, 0.3f, k);
        tu_random(r, (size_t)n * H * d, 1.0f, v);
        TU_OK(pkv_append(t->cpu, s, l, n, k, v, PKV_F32));
        TU_OK(pkv_append(t->ocl, s, l, n, k, v, PKV_F32));
    }
    free(k);
    free(v);
}

static uint8_t *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* Bit-exact parity: the saved files (every block, bank, window and table) must be identical, and
 * so must the dequantized K/V. Reports the first differing block byte to help debugging. */
static void twin_expect_identical(twin *t, const pkv_seq *seqs, uint32_t n_seqs)
{
    char pc[600], po[600];
    snprintf(pc, sizeof pc, "%s/parity_cpu_%d.pkv", g_cache_dir, (int)getpid());
    snprintf(po, sizeof po, "%s/parity_ocl_%d.pkv", g_cache_dir, (int)getpid());
    TU_OK(pkv_cache_save(t->cpu, pc));
    TU_OK(pkv_cache_save(t->ocl, po));
    size_t nc, no;
    uint8_t *bc = read_file(pc, &nc), *bo = read_file(po, &no);
    remove(pc);
    remove(po);
    const pkv_geom *g = tu_geom(t->cpu);
    for (uint32_t si = 0; si < n_seqs; si++)
        for (uint32_t l = 0; l < t->cfg.n_layers; l++) {
            uint32_t nb = pkv_find_seq(t->cpu, seqs[si])->layers[l].n_blocks;
            assert_int_equal(nb, pkv_find_seq(t->ocl, seqs[si])->layers[l].n_blocks);
            uint8_t *x = malloc(g->block_bytes), *y = malloc(g->block_bytes);
            for (uint32_t h = 0; h < g->H; h++)
                for (uint32_t b = 0; b < nb; b++) {
                    tu_read_block(t->cpu, seqs[si], l, h, b, x);
                    tu_read_block(t->ocl, seqs[si], l, h, b, y);
                    for (uint32_t i = 0; i < g->block_bytes; i++)
                        if (x[i] != y[i])
                            fail_msg("seq %u layer %u head %u block %u differs at byte %u (cpu %02x, opencl %02x; "
                                     "kscale@%u kzero@%u vcodes@%u vscale@%u vzero@%u kidx@%u vidx@%u vmask@%u)",
                                     seqs[si], l, h, b, i, x[i], y[i], g->off_kscale, g->off_kzero, g->off_vcodes,
                                     g->off_vscale, g->off_vzero, g->off_kidx, g->off_vidx, g->off_vmask);
                }
            free(x);
            free(y);
            if (t->cfg.mode == PKV_MODE_PATTERN) {
                float *a = malloc(256 * 256 * 4 * sizeof(float)), *b2 = a + 256 * 256, *c = b2 + 256 * 256,
                      *e = c + 256 * 256;
                for (uint32_t h = 0; h < g->H; h++) {
                    uint32_t n1 = tu_read_bank(t->cpu, seqs[si], l, h, a, b2);
                    uint32_t n2 = tu_read_bank(t->ocl, seqs[si], l, h, c, e);
                    assert_int_equal(n1, n2);
                    assert_memory_equal(a, c, (size_t)n1 * g->d * sizeof(float));
                    assert_memory_equal(b2, e, (size_t)n1 * g->d * sizeof(float));
                }
                free(a);
            }
        }
    assert_int_equal(nc, no);
    assert_memory_equal(bc, bo, nc);
    free(bc);
    free(bo);
}

/* Attention on both caches: OpenCL within 1e-4 of the CPU (relative, per output vector), and both
 * within 1e-4 of an fp64 reference over the dequantized cache. */
static void twin_expect_attention(twin *t, const pkv_seq *seqs, uint32_t n_seqs, uint32_t q_len, uint32_t gqa,
                                  tu_rng *r)
{
    const uint32_t H = t->cfg.n_kv_heads, d = t->cfg.head_dim, nqh = H * gqa;
    for (uint32_t l = 0; l < t->cfg.n_layers; l++) {
        size_t nq = (size_t)n_seqs * q_len * nqh * d;
        float *q = malloc(nq * sizeof(float)), *oc = malloc(nq * sizeof(float)), *oo = malloc(nq * sizeof(float));
        tu_random(r, nq, 1.0f, q);
        pkv_attention_params ap = {.seqs = seqs, .n_seqs = n_seqs, .layer = l, .q_len = q_len, .n_q_heads = nqh,
                                   .scale = 0.0f, .q_dtype = PKV_F32};
        TU_OK(pkv_attention(t->cpu, &ap, q, oc));
        for (int split = 0; split < 2; split++) { /* default split, then one block per item (many partials) */
            if (split) setenv("PKV_OPENCL_BLOCKS_PER_ITEM", "1", 1);
            TU_OK(pkv_attention(t->ocl, &ap, q, oo));
            unsetenv("PKV_OPENCL_BLOCKS_PER_ITEM");
            for (size_t v0 = 0; v0 < nq; v0 += d) {
                double num = 0, den = 0;
                for (uint32_t i = 0; i < d; i++) {
                    double e = (double)oo[v0 + i] - oc[v0 + i];
                    num += e * e;
                    den += (double)oc[v0 + i] * oc[v0 + i];
                }
                double rel = sqrt(num / (den > 0 ? den : 1e-300));
                if (!(rel < 1e-4)) fail_msg("attention vector %zu: relative error %.3g vs the CPU (split %d)", v0 / d, rel, split);
            }
        }
        /* fp64 reference over the dequantized K/V (as stored) */
        float **k = malloc(n_seqs * sizeof *k), **v = malloc(n_seqs * sizeof *v);
        uint32_t *T = malloc(n_seqs * sizeof *T);
        for (uint32_t s = 0; s < n_seqs; s++) {
            TU_OK(pkv_seq_length(t->ocl, seqs[s], l, &T[s]));
            k[s] = malloc((size_t)T[s] * H * d * sizeof(float));
            v[s] = malloc((size_t)T[s] * H * d * sizeof(float));
            TU_OK(pkv_read_kv(t->ocl, seqs[s], l, k[s], v[s]));
        }
        double worst = tu_check_attention((const float *const *)k, (const float *const *)v, T, n_seqs, q_len, nqh, H, d, q, oo);
        if (!(worst < 1e-4)) fail_msg("opencl attention vs fp64 reference: relative error %.3g", worst);
        for (uint32_t s = 0; s < n_seqs; s++) {
            free(k[s]);
            free(v[s]);
        }
        free(k);
        free(v);
        free(T);
        free(q);
        free(oc);
        free(oo);
    }
}

typedef struct scenario {
    const char *name;
    uint32_t d, kbits, vbits, G, window, H, layers;
    pkv_mode mode;
    uint32_t M, capacity;
    uint32_t prefill, extra, step; /* prefill tokens, then `extra` more in appends of `step` */
    uint32_t gqa;
    uint32_t iters; /* k-means iterations; 0: 8 */
    float tol;      /* k-means tolerance; 0: the default */
} scenario;

static void run_scenario(const scenario *sc)
{
    print_message("scenario %s\n", sc->name);
    pkv_cache_config cfg = tu_config(sc->layers, sc->H, sc->d, sc->kbits, sc->G, sc->mode);
    cfg.v_bits = sc->vbits;
    cfg.window = sc->window;
    if (sc->M) cfg.n_patterns = sc->M;
    if (sc->capacity) cfg.bank_capacity = sc->capacity;
    cfg.kmeans_iters = sc->iters ? sc->iters : 8;
    if (sc->tol > 0) cfg.kmeans_tol = sc->tol;
    twin t;
    twin_open(&t, &cfg);
    tu_rng r = {0x1234 + sc->d * 7 + sc->kbits};
    pkv_seq s;
    twin_seq(&t, &s);
    twin_append(&t, s, sc->prefill, &r);
    for (uint32_t done = 0; done < sc->extra; done += sc->step)
        twin_append(&t, s, sc->step < sc->extra - done ? sc->step : sc->extra - done, &r);
    twin_expect_identical(&t, &s, 1);
    twin_expect_attention(&t, &s, 1, 1, sc->gqa, &r);
    twin_expect_attention(&t, &s, 1, 3, sc->gqa, &r);
    twin_close(&t);
}

static void parity_pattern_2bit(void **state)
{
    (void)state;
    scenario sc = {"pattern d64 2-bit", 64, 2, 2, 32, 0, 2, 2, PKV_MODE_PATTERN, 8, 0, 100, 110, 23, 2, 0, 0};
    run_scenario(&sc);
    /* one query head per attention work-group (devices with little local memory) */
    setenv("PKV_OPENCL_HEADS_PER_GROUP", "1", 1);
    run_scenario(&sc);
    unsetenv("PKV_OPENCL_HEADS_PER_GROUP");
}

static void parity_head_dim_40_3bit(void **state)
{
    (void)state;
    scenario sc = {"pattern d40 3-bit", 40, 3, 3, 32, 0, 1, 1, PKV_MODE_PATTERN, 8, 0, 70, 70, 35, 3, 0, 0};
    run_scenario(&sc);
    /* the k-means sums in global memory (devices with little local memory) */
    setenv("PKV_OPENCL_KMEANS_GLOBAL", "1", 1);
    run_scenario(&sc);
    unsetenv("PKV_OPENCL_KMEANS_GLOBAL");
}

static void parity_head_dim_256_mixed_bits(void **state)
{
    (void)state;
    scenario sc = {"pattern d256 k4 v8", 256, 4, 8, 32, 0, 1, 1, PKV_MODE_PATTERN, 8, 0, 40, 30, 30, 1, 0, 0};
    run_scenario(&sc);
}

static void parity_window_of_two_groups_and_frozen_bank(void **state)
{
    (void)state;
    /* R = 2G: two blocks per flush; capacity 9 freezes the bank after one appended pattern. */
    scenario sc = {"pattern R=2G capacity 9", 32, 2, 4, 32, 64, 2, 1, PKV_MODE_PATTERN, 8, 9, 20, 200, 50, 2, 0, 0};
    run_scenario(&sc);
}

static void parity_bank_across_chunks(void **state)
{
    (void)state;
    /* 30 mined + 6 appended patterns: the bank spans two 32-pattern chunks */
    scenario sc = {"pattern bank > 32", 32, 2, 2, 32, 0, 1, 1, PKV_MODE_PATTERN, 30, 0, 64, 192, 64, 2, 0, 0};
    run_scenario(&sc);
}

static void parity_default_shape(void **state)
{
    (void)state;
    /* the library defaults: d 128, G = R = 128, M 32 */
    scenario sc = {"pattern d128 G128", 128, 2, 2, 128, 0, 2, 1, PKV_MODE_PATTERN, 32, 0, 200, 190, 95, 4, 0, 0};
    run_scenario(&sc);
}

static void parity_kmeans_converges(void **state)
{
    (void)state;
    /* a loose tolerance: k-means stops on it while centroids still move, as on the CPU */
    scenario sc = {"pattern loose tolerance", 32, 2, 2, 32, 0, 2, 1, PKV_MODE_PATTERN, 6, 0, 64, 0, 1, 1, 200, 0.3f};
    run_scenario(&sc);
}

static void parity_short_sequence(void **state)
{
    (void)state;
    /* fewer tokens than a group: mining with no block, then only the window */
    scenario sc = {"pattern short", 32, 2, 2, 32, 0, 2, 1, PKV_MODE_PATTERN, 8, 0, 10, 5, 5, 2, 0, 0};
    run_scenario(&sc);
}

static void parity_direct(void **state)
{
    (void)state;
    scenario sc = {"direct d64 2-bit", 64, 2, 2, 32, 0, 2, 1, PKV_MODE_DIRECT, 0, 0, 50, 100, 31, 2, 0, 0};
    run_scenario(&sc);
}

static void parity_fp16(void **state)
{
    (void)state;
    scenario sc = {"fp16 d48", 48, 2, 2, 32, 0, 2, 1, PKV_MODE_FP16, 0, 0, 50, 60, 60, 1, 0, 0};
    run_scenario(&sc);
}

/* Tokens repeating a few exact vectors: equal distances to several patterns (ties keep the lowest
 * index), zero residuals and zero ranges (scale 0), identical on both backends. */
static void parity_repeated_tokens(void **state)
{
    (void)state;
    pkv_cache_config cfg = tu_config(1, 2, 32, 2, 32, PKV_MODE_PATTERN);
    cfg.n_patterns = 4;
    twin t;
    twin_open(&t, &cfg);
    tu_rng r = {11};
    float base[3][2 * 32];
    for (int i = 0; i < 3; i++) tu_random(&r, 2 * 32, 1.0f, base[i]);
    for (int i = 0; i < 2 * 32; i++) base[2][i] = 0.75f; /* a constant vector: range 0 */
    pkv_seq s;
    twin_seq(&t, &s);
    for (int round = 0; round < 3; round++) {
        const uint32_t n = round == 0 ? 70 : 40;
        float *k = malloc((size_t)n * 2 * 32 * sizeof(float)), *v = malloc((size_t)n * 2 * 32 * sizeof(float));
        for (uint32_t i = 0; i < n; i++) {
            memcpy(k + (size_t)i * 64, base[(i * 7 + round) % 3], sizeof base[0]);
            memcpy(v + (size_t)i * 64, base[(i * 5 + round) % 3], sizeof base[0]);
        }
        TU_OK(pkv_append(t.cpu, s, 0, n, k, v, PKV_F32));
        TU_OK(pkv_append(t.ocl, s, 0, n, k, v, PKV_F32));
        free(k);
        free(v);
    }
    twin_expect_identical(&t, &s, 1);
    twin_expect_attention(&t, &s, 1, 1, 2, &r);
    twin_close(&t);
}

/* Many sequences of different lengths in one attention call, and a fork diverging from its parent. */
static void parity_many_sequences_and_fork(void **state)
{
    (void)state;
    pkv_cache_config cfg = tu_config(1, 2, 32, 2, 32, PKV_MODE_PATTERN);
    cfg.kmeans_iters = 5;
    twin t;
    twin_open(&t, &cfg);
    tu_rng r = {77};
    pkv_seq s[7];
    const uint32_t len[6] = {9, 33, 64, 100, 130, 3}; /* 3 < M: no bank yet */
    for (int i = 0; i < 6; i++) {
        twin_seq(&t, &s[i]);
        twin_append(&t, s[i], len[i], &r);
    }
    pkv_seq a, b;
    TU_OK(pkv_seq_fork(t.cpu, s[4], &a));
    TU_OK(pkv_seq_fork(t.ocl, s[4], &b));
    assert_int_equal(a, b);
    s[6] = a;
    twin_append(&t, s[6], 40, &r); /* the child crosses a flush: its bank chunk is copied on write */
    twin_append(&t, s[4], 35, &r);
    twin_expect_identical(&t, s, 7);
    twin_expect_attention(&t, s, 7, 1, 2, &r);
    twin_expect_attention(&t, s, 7, 2, 1, &r);
    twin_close(&t);
}

/* The memory budget stops appends with a status and loses nothing. */
static void budget_full_loses_nothing(void **state)
{
    (void)state;
    pkv_context *ctx = ocl_context();
    pkv_cache_config cfg = tu_config(1, 1, 32, 2, 32, PKV_MODE_PATTERN);
    cfg.memory_budget = 24 * 1024;
    pkv_cache *c;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    pkv_seq s;
    TU_OK(pkv_seq_create(c, &s));
    tu_rng r = {5};
    float k[64 * 32], v[64 * 32];
    pkv_status st = PKV_OK;
    uint32_t stored = 0;
    float *before_k = malloc(4096 * 32 * sizeof(float)), *before_v = malloc(4096 * 32 * sizeof(float));
    float *after_k = malloc(4096 * 32 * sizeof(float)), *after_v = malloc(4096 * 32 * sizeof(float));
    for (int i = 0; i < 200 && st == PKV_OK; i++) {
        tu_random(&r, 64 * 32, 1.0f, k);
        tu_random(&r, 64 * 32, 1.0f, v);
        if (stored) TU_OK(pkv_read_kv(c, s, 0, before_k, before_v));
        st = pkv_append(c, s, 0, 64, k, v, PKV_F32);
        if (st == PKV_OK) stored += 64;
    }
    assert_int_equal(st, PKV_ERR_OUT_OF_BUDGET);
    uint32_t n;
    TU_OK(pkv_seq_length(c, s, 0, &n));
    assert_int_equal(n, stored);
    TU_OK(pkv_read_kv(c, s, 0, after_k, after_v));
    assert_memory_equal(before_k, after_k, (size_t)stored * 32 * sizeof(float));
    assert_memory_equal(before_v, after_v, (size_t)stored * 32 * sizeof(float));
    free(before_k);
    free(before_v);
    free(after_k);
    free(after_v);
    TU_OK(pkv_cache_free(c));
    TU_OK(pkv_context_free(ctx));
}

/* A buffer the device cannot hold is a status (PKV_ERR_OUT_OF_DEVICE_MEMORY), not a crash. */
static void device_out_of_memory_is_a_status(void **state)
{
    (void)state;
    pkv_context *ctx = ocl_context();
    pkv_backend *be = ctx->be;
    pkv_buf *b = NULL;
    assert_int_equal(be->iface->buf_alloc(be, (size_t)1 << 50, &b), PKV_ERR_OUT_OF_DEVICE_MEMORY);
    assert_null(b);
    TU_OK(be->iface->buf_alloc(be, 4096, &b)); /* and the device still works */
    uint8_t w[4096], rd[4096];
    for (int i = 0; i < 4096; i++) w[i] = (uint8_t)(i * 7 + 3);
    TU_OK(be->iface->buf_write(be, b, 0, w, sizeof w));
    TU_OK(be->iface->buf_read(be, b, 0, rd, sizeof rd));
    assert_memory_equal(w, rd, sizeof w);
    assert_int_equal(be->iface->buf_read(be, b, 4000, rd, 200), PKV_ERR_INVALID_ARGUMENT);
    be->iface->buf_free(be, b);
    TU_OK(pkv_context_free(ctx));
}

typedef struct log_capture {
    int warnings;
    char last[1024];
} log_capture;

static void capture(pkv_log_level level, const char *msg, void *user)
{
    log_capture *lc = user;
    if (level == PKV_LOG_WARN) {
        lc->warnings++;
        snprintf(lc->last, sizeof lc->last, "%s", msg);
    }
}

static int find_cache_file(const char *dir, char *path, size_t cap)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls %s/opencl-*.bin 2>/dev/null | head -n 1", dir);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    int ok = fgets(path, (int)cap, p) != NULL;
    pclose(p);
    if (ok) path[strcspn(path, "\n")] = 0;
    return ok && path[0];
}

/* The program-binary cache: written on first use, reused silently, a damaged file ignored with a
 * warning and replaced by a good one. */
static void program_cache_corrupt_file_is_ignored(void **state)
{
    (void)state;
    char dir[600], path[800];
    snprintf(dir, sizeof dir, "%s/progcache_%d", g_cache_dir, (int)getpid());
    log_capture lc = {0};
    pkv_context_params p = pkv_context_params_default();
    p.cache_dir = dir;
    p.log = capture;
    p.log_user = &lc;
    pkv_context *ctx = ocl_context_with(&p);
    TU_OK(pkv_context_free(ctx));
    assert_int_equal(lc.warnings, 0);
    assert_true(find_cache_file(dir, path, sizeof path));

    ctx = ocl_context_with(&p); /* reuse: no warning */
    TU_OK(pkv_context_free(ctx));
    assert_int_equal(lc.warnings, 0);

    for (int damage = 0; damage < 3; damage++) {
        size_t n;
        uint8_t *b = read_file(path, &n);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        if (damage == 0) { /* flip a byte in the binary */
            b[n - 100] ^= 0x5a;
            fwrite(b, 1, n, f);
        } else if (damage == 1) { /* truncate */
            fwrite(b, 1, n / 2, f);
        } else { /* a key of another device or driver (the key follows a 24-byte header) */
            b[24 + 20] ^= 0x01;
            fwrite(b, 1, n, f);
        }
        fclose(f);
        free(b);
        lc.warnings = 0;
        ctx = ocl_context_with(&p);
        assert_int_equal(lc.warnings, 1);
        assert_non_null(strstr(lc.last, "ignoring program cache"));
        /* the context works: a tiny cache round trip through the kernels */
        pkv_cache_config cfg = tu_config(1, 1, 32, 2, 32, PKV_MODE_PATTERN);
        pkv_cache *c;
        pkv_seq s;
        TU_OK(pkv_cache_create(ctx, &cfg, &c));
        TU_OK(pkv_seq_create(c, &s));
        float k[40 * 32], v[40 * 32], q[32], o[32];
        tu_rng r = {9};
        tu_random(&r, 40 * 32, 1.0f, k);
        tu_random(&r, 40 * 32, 1.0f, v);
        tu_random(&r, 32, 1.0f, q);
        TU_OK(pkv_append(c, s, 0, 40, k, v, PKV_F32));
        pkv_attention_params ap = {.seqs = &s, .n_seqs = 1, .q_len = 1, .n_q_heads = 1, .q_dtype = PKV_F32};
        TU_OK(pkv_attention(c, &ap, q, o));
        TU_OK(pkv_cache_free(c));
        TU_OK(pkv_context_free(ctx));
        lc.warnings = 0; /* rewritten: the next start is silent */
        ctx = ocl_context_with(&p);
        TU_OK(pkv_context_free(ctx));
        assert_int_equal(lc.warnings, 0);
    }
}

/* Engine integration: the library runs on the application's context and queue. */
static void external_context_and_queue(void **state)
{
    (void)state;
    /* the application's handles, made through the same ICD loader the library uses */
    char why[256];
    const pkv_ocl_api *cl = pkv_ocl_load(why, sizeof why);
    if (!cl) {
        if (in_ci()) fail_msg("%s (CI=true)", why);
        skip();
    }
    cl_platform_id plats[8];
    cl_uint np = 0;
    if (cl->clGetPlatformIDs(8, plats, &np) != CL_SUCCESS || np == 0) {
        if (in_ci()) fail_msg("no OpenCL platform (CI=true)");
        skip();
    }
    cl_device_id dev = NULL;
    for (cl_uint i = 0; i < np && !dev; i++)
        if (cl->clGetDeviceIDs(plats[i], CL_DEVICE_TYPE_ALL, 1, &dev, NULL) != CL_SUCCESS) dev = NULL;
    assert_non_null(dev);
    cl_int err;
    cl_context cctx = cl->clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    cl_command_queue q = cl->clCreateCommandQueue(cctx, dev, 0, &err);
    assert_int_equal(err, CL_SUCCESS);

    pkv_opencl_external ext = {.backend = PKV_BACKEND_OPENCL, .context = cctx, .device = dev, .queue = q};
    pkv_context_params p = pkv_context_params_default();
    p.external = &ext;
    pkv_context *ctx = ocl_context_with(&p);
    /* the application may drop its references: the library holds its own */
    cl->clReleaseCommandQueue(q);
    cl->clReleaseContext(cctx);
    pkv_device_info info;
    TU_OK(pkv_context_device(ctx, &info, why, sizeof why));
    assert_int_equal(info.backend, PKV_BACKEND_OPENCL);

    pkv_context *cpu = cpu_context();
    pkv_cache_config cfg = tu_config(1, 1, 32, 2, 32, PKV_MODE_PATTERN);
    pkv_cache *co, *cc;
    pkv_seq so, sc;
    TU_OK(pkv_cache_create(ctx, &cfg, &co));
    TU_OK(pkv_cache_create(cpu, &cfg, &cc));
    TU_OK(pkv_seq_create(co, &so));
    TU_OK(pkv_seq_create(cc, &sc));
    float k[70 * 32], v[70 * 32], kc[70 * 32], vc[70 * 32], ko[70 * 32], vo[70 * 32];
    tu_rng r = {21};
    tu_random(&r, 70 * 32, 1.0f, k);
    tu_random(&r, 70 * 32, 1.0f, v);
    /* K/V from the application's buffers (at an offset), as fp32 */
    cl_mem kbuf = cl->clCreateBuffer(cctx, CL_MEM_READ_WRITE, sizeof k + 64, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    cl_mem vbuf = cl->clCreateBuffer(cctx, CL_MEM_READ_WRITE, sizeof v, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    pkv_ocl *po = ctx->be->impl;
    assert_int_equal(cl->clEnqueueWriteBuffer(po->q, kbuf, CL_TRUE, 64, sizeof k, k, 0, NULL, NULL), CL_SUCCESS);
    assert_int_equal(cl->clEnqueueWriteBuffer(po->q, vbuf, CL_TRUE, 0, sizeof v, v, 0, NULL, NULL), CL_SUCCESS);
    TU_OK(pkv_opencl_append(co, so, 0, 70, kbuf, 64, vbuf, 0, PKV_F32));
    TU_OK(pkv_append(cc, sc, 0, 70, k, v, PKV_F32));
    TU_OK(pkv_read_kv(co, so, 0, ko, vo));
    TU_OK(pkv_read_kv(cc, sc, 0, kc, vc));
    assert_memory_equal(ko, kc, sizeof ko);
    assert_memory_equal(vo, vc, sizeof vo);
    /* a read past the end of the buffer is an argument error and stores nothing */
    assert_int_equal(pkv_opencl_append(co, so, 0, 70, kbuf, 128, vbuf, 0, PKV_F32), PKV_ERR_INVALID_ARGUMENT);
    uint32_t len;
    TU_OK(pkv_seq_length(co, so, 0, &len));
    assert_int_equal(len, 70);
    /* q and out in the application's buffers */
    float qh[2 * 32], out_host[2 * 32], out_dev[2 * 32];
    tu_random(&r, 64, 1.0f, qh);
    pkv_attention_params ap = {.seqs = &so, .n_seqs = 1, .q_len = 1, .n_q_heads = 2, .q_dtype = PKV_F32};
    TU_OK(pkv_attention(co, &ap, qh, out_host));
    assert_int_equal(cl->clEnqueueWriteBuffer(po->q, kbuf, CL_TRUE, 0, sizeof qh, qh, 0, NULL, NULL), CL_SUCCESS);
    TU_OK(pkv_opencl_attention(co, &ap, kbuf, 0, vbuf, 16));
    assert_int_equal(cl->clEnqueueReadBuffer(po->q, vbuf, CL_TRUE, 16, sizeof out_dev, out_dev, 0, NULL, NULL), CL_SUCCESS);
    assert_memory_equal(out_host, out_dev, sizeof out_dev);
    assert_int_equal(pkv_opencl_attention(cc, &ap, kbuf, 0, vbuf, 16), PKV_ERR_UNSUPPORTED); /* a CPU cache */
    cl->clReleaseMemObject(kbuf);
    cl->clReleaseMemObject(vbuf);
    TU_OK(pkv_cache_free(co));
    TU_OK(pkv_cache_free(cc));
    TU_OK(pkv_context_free(ctx));
    TU_OK(pkv_context_free(cpu));

    /* an external struct missing its device is refused with a reason */
    pkv_opencl_external bad = {.backend = PKV_BACKEND_OPENCL, .context = NULL, .device = NULL, .queue = NULL};
    p = pkv_context_params_default();
    p.backend = PKV_BACKEND_OPENCL;
    p.external = &bad;
    ctx = NULL;
    assert_int_not_equal(pkv_context_create(&p, &ctx), PKV_OK);
    assert_null(ctx);
    assert_non_null(strstr(pkv_last_error(), "context"));
}

/* Device listing and the bench's read-bandwidth kernel. */
#include "opencl/ocl_bench.h"
static void devices_listed_and_bandwidth_measured(void **state)
{
    (void)state;
    pkv_context *ctx = ocl_context();
    pkv_device_info devs[16];
    size_t n = 0;
    TU_OK(pkv_list_devices(NULL, devs, 16, &n));
    int found = 0;
    for (size_t i = 0; i < n && i < 16; i++)
        if (devs[i].backend == PKV_BACKEND_OPENCL && devs[i].name[0] && devs[i].driver[0]) found = 1;
    assert_true(found);
    double gbps = 0;
    TU_OK(pkv_opencl_read_bandwidth(ctx, 8u << 20, 2, &gbps));
    assert_true(gbps > 0.01 && gbps < 1e5);
    gbps = 0;
    TU_OK(pkv_measure_read_bandwidth(ctx, 8u << 20, &gbps));
    assert_true(gbps > 0.01 && gbps < 1e5);

    /* op timing from the device's timestamps */
    double ms = 0;
    pkv_cache_config cfg = tu_config(1, 1, 32, 2, 32, PKV_MODE_PATTERN);
    pkv_cache *c;
    pkv_seq s;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    TU_OK(pkv_seq_create(c, &s));
    float k[40 * 32], v[40 * 32], q[32], o[32];
    tu_rng r = {3};
    tu_random(&r, 40 * 32, 1.0f, k);
    tu_random(&r, 40 * 32, 1.0f, v);
    tu_random(&r, 32, 1.0f, q);
    TU_OK(pkv_append(c, s, 0, 40, k, v, PKV_F32));
    pkv_attention_params ap = {.seqs = &s, .n_seqs = 1, .q_len = 1, .n_q_heads = 1, .q_dtype = PKV_F32};
    TU_OK(pkv_attention(c, &ap, q, o));
    TU_OK(pkv_last_op_time(ctx, &ms));
    assert_true(ms > 0 && ms < 60000);
    TU_OK(pkv_cache_free(c));
    TU_OK(pkv_context_free(ctx));
}

int main(void)
{
    const char *dir = getenv("PKV_TEST_CACHE_DIR");
    snprintf(g_cache_dir, sizeof g_cache_dir, "%s", dir && *dir ? dir : "/tmp/pkv_test_opencl");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", g_cache_dir);
    if (system(cmd) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parity_pattern_2bit),
        cmocka_unit_test(parity_head_dim_40_3bit),
        cmocka_unit_test(parity_head_dim_256_mixed_bits),
        cmocka_unit_test(parity_window_of_two_groups_and_frozen_bank),
        cmocka_unit_test(parity_bank_across_chunks),
        cmocka_unit_test(parity_default_shape),
        cmocka_unit_test(parity_kmeans_converges),
        cmocka_unit_test(parity_short_sequence),
        cmocka_unit_test(parity_direct),
        cmocka_unit_test(parity_fp16),
        cmocka_unit_test(parity_repeated_tokens),
        cmocka_unit_test(parity_many_sequences_and_fork),
        cmocka_unit_test(budget_full_loses_nothing),
        cmocka_unit_test(device_out_of_memory_is_a_status),
        cmocka_unit_test(program_cache_corrupt_file_is_ignored),
        cmocka_unit_test(external_context_and_queue),
        cmocka_unit_test(devices_listed_and_bandwidth_measured),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
