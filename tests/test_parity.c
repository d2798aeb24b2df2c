/* Parity of a GPU backend (PKV_TEST_BACKEND=vulkan or opencl) with the CPU reference backend: the
 * same calls on a CPU cache and a GPU cache give bit-identical blocks (codes, scales, zeros, indices,
 * masks), pattern banks and saved files, and attention within 1e-4 relative of the CPU's, and of an
 * fp64 reference over the dequantized cache. Odd shapes, frozen and multi-chunk banks, k-means
 * stopping early, exact ties, signed zeros, many sequences and a fork, prompts of several k-means
 * chunks up to 32768 tokens, k-means on a strided sample (kmeans_sample), the MSE quantizer (MSE,
 * MSE_K, MSE_V; a few scenarios: each costs a kernel build on PoCL), and every layer of a step
 * appended in one call on the GPU side. Shapes
 * are small: in CI the GPU backends run on the CPU (lavapipe, PoCL). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn_plan.h"
#include "internal.h"
#include "testutil.h"

enum { MAX_SEQS = 16 };
/* STRUCTURED: keys like post-RoPE keys, Gaussian values; SIGNED_ZEROS: the same made non-negative with
 * exact zeros of either sign; REPEATED: a few exact vectors (ties, zero residuals, a constant one). */
enum data_kind { STRUCTURED = 0, SIGNED_ZEROS, REPEATED };

typedef struct scenario {
    const char *name;
    uint32_t layers, H, d, k_bits, v_bits, G, window, M, capacity;
    pkv_mode mode;
    uint32_t n_seqs;  /* more than one: each gets a length drawn from [3, prefill + decode] */
    uint32_t prefill; /* tokens in the first append of each sequence (mines the banks) */
    uint32_t decode;  /* then up to this many more, `step` at a time (crossing flushes) */
    uint32_t step;
    uint32_t gqa;     /* query heads per KV head */
    int fork;         /* fork sequence 0 after the prefills; parent and child then decode different tokens */
    uint32_t iters;   /* k-means iterations (0: the default) */
    float tol;        /* k-means tolerance (0: the default) */
    enum data_kind data;
    const char *knob; /* "PKV_<BACKEND>_NAME=value": a backend's own switch, set for this scenario only */
    uint32_t sample;  /* kmeans_sample (0: the default, 2048) */
    pkv_quantizer quantizer; /* 0: MINMAX */
} scenario;

static const scenario scenarios[] = {
    /* name                               L  H    d  kb vb    G    R   M  cap  mode              seqs pre  dec step gqa fork it tol data knob sample quantizer */
    {"pattern d64 2-bit G32",             2, 2,  64, 2, 2,  32,   0,  8, 256, PKV_MODE_PATTERN,  1, 100,  70,  1, 2, 0, 0, 0, STRUCTURED, NULL, 0, 0},
    {"pattern d64 2-bit, one query row per group", 2, 2, 64, 2, 2, 32, 0, 8, 256, PKV_MODE_PATTERN, 1, 100, 110, 23, 2, 0, 8, 0,
     STRUCTURED, "PKV_ATTN_MAX_ROWS=1", 0, 0},
    {"pattern d40 3/4-bit G64 R128",      2, 2,  40, 3, 4,  64, 128,  6, 256, PKV_MODE_PATTERN,  1, 150, 260,  7, 3, 0, 0, 0, STRUCTURED, NULL, 0, 0},
    {"pattern d40 3-bit",                 1, 1,  40, 3, 3,  32,   0,  8, 256, PKV_MODE_PATTERN,  1,  70,  70, 35, 3, 0, 8, 0, STRUCTURED, NULL, 0, 0},
    {"pattern d40 3-bit, k-means sums in global memory", 1, 1, 40, 3, 3, 32, 0, 8, 256, PKV_MODE_PATTERN, 1, 70, 70, 35, 3, 0, 8, 0,
     STRUCTURED, "PKV_OPENCL_KMEANS_GLOBAL=1", 0, 0},
    {"pattern d256 8/3-bit G32",          2, 1, 256, 8, 3,  32,   0,  8, 256, PKV_MODE_PATTERN,  1,  70,  40,  5, 2, 0, 0, 0, STRUCTURED, NULL, 0, 0},
    {"pattern d256 4/8-bit",              1, 1, 256, 4, 8,  32,   0,  8, 256, PKV_MODE_PATTERN,  1,  40,  30, 30, 1, 0, 8, 0, STRUCTURED, NULL, 0, 0},
    {"pattern d128 4-bit G128",           2, 2, 128, 4, 4, 128,   0, 32, 256, PKV_MODE_PATTERN,  1, 300, 140, 20, 4, 0, 0, 0, STRUCTURED, NULL, 0, 0},
    {"pattern d128 2-bit G128 (defaults)", 1, 2, 128, 2, 2, 128,  0, 32, 256, PKV_MODE_PATTERN,  1, 200, 190, 95, 4, 0, 8, 0, STRUCTURED, NULL, 0, 0},
    {"pattern bank freezes",              2, 1,  32, 2, 2,  32,   0,  4,   6, PKV_MODE_PATTERN,  1,  40, 200,  9, 1, 0, 0, 0, STRUCTURED, NULL, 0, 0},
    {"pattern R=2G, capacity 9",          1, 2,  32, 2, 4,  32,  64,  8,   9, PKV_MODE_PATTERN,  1,  20, 200, 50, 2, 0, 8, 0, STRUCTURED, NULL, 0, 0},
    {"pattern bank over two chunks",      1, 1,  32, 2, 2,  32,   0, 30, 256, PKV_MODE_PATTERN,  1,  64, 192, 64, 2, 0, 8, 0, STRUCTURED, NULL, 0, 0},
    {"pattern shorter than one window",   2, 2,  64, 2, 2,  64,   0,  8, 256, PKV_MODE_PATTERN,  1,   5,  20,  3, 2, 0, 0, 0, STRUCTURED, NULL, 0, 0},
    {"pattern shorter than one group",    1, 2,  32, 2, 2,  32,   0,  8, 256, PKV_MODE_PATTERN,  1,  10,   5,  5, 2, 0, 8, 0, STRUCTURED, NULL, 0, 0},
    {"pattern many short sequences",      2, 2,  32, 2, 2,  32,   0,  4, 256, PKV_MODE_PATTERN, 12,   9,  30,  4, 2, 0, 0, 0, STRUCTURED, NULL, 0, 0},
    {"pattern fork",                      2, 2,  64, 2, 2,  32,   0,  8, 256, PKV_MODE_PATTERN,  1,  90,  50,  3, 2, 1, 0, 0, STRUCTURED, NULL, 0, 0},
    {"pattern sequences and a fork",      1, 2,  32, 2, 2,  32,   0,  8, 256, PKV_MODE_PATTERN,  6,  64,  80, 40, 2, 1, 5, 0, STRUCTURED, NULL, 0, 0},
    {"pattern d64 3-bit K (unaligned rows)", 2, 2, 64, 3, 2, 32,  0,  8, 256, PKV_MODE_PATTERN,  1,  80,  40,  6, 2, 0, 0, 0, STRUCTURED, NULL, 0, 0},
    {"pattern k-means 1 iteration",       2, 2,  48, 2, 2,  32,   0, 16, 256, PKV_MODE_PATTERN,  1, 200,  10, 10, 2, 0, 1, 0, STRUCTURED, NULL, 0, 0},
    {"pattern k-means loose tolerance",   2, 2,  48, 4, 2,  32,   0, 16, 256, PKV_MODE_PATTERN,  1, 200,  10, 10, 2, 0, 0, 0.5f, STRUCTURED, NULL, 0, 0},
    {"pattern k-means stops on tolerance", 1, 2, 32, 2, 2,  32,   0,  6, 256, PKV_MODE_PATTERN,  1,  64,   0,  1, 1, 0, 200, 0.3f, STRUCTURED, NULL, 0, 0},
    {"pattern repeated tokens (ties, zero ranges)", 1, 2, 32, 2, 2, 32, 0, 4, 256, PKV_MODE_PATTERN, 1, 70, 80, 40, 2, 0, 0, 0,
     REPEATED, NULL, 0, 0},
    {"pattern with signed zeros",         2, 2,  32, 2, 2,  32,   0,  8, 256, PKV_MODE_PATTERN,  1,  64,  32,  8, 2, 0, 0, 0,
     SIGNED_ZEROS, NULL, 0, 0},
    {"direct d40 3-bit G32",              2, 2,  40, 3, 3,  32,   0,  8, 256, PKV_MODE_DIRECT,   2,  45,  60,  4, 2, 0, 0, 0, STRUCTURED, NULL, 0, 0},
    {"direct d64 2-bit",                  1, 2,  64, 2, 2,  32,   0,  8, 256, PKV_MODE_DIRECT,   1,  50, 100, 31, 2, 0, 0, 0, STRUCTURED, NULL, 0, 0},
    {"direct d256 2-bit G64",             2, 1, 256, 2, 2,  64,   0,  8, 256, PKV_MODE_DIRECT,   1, 100,  64, 16, 2, 0, 0, 0, STRUCTURED, NULL, 0, 0},
    {"direct with signed zeros",          2, 2,  32, 2, 2,  32,   0,  8, 256, PKV_MODE_DIRECT,   1,  64,  32,  8, 2, 0, 0, 0,
     SIGNED_ZEROS, NULL, 0, 0},
    {"fp16 d64 G32",                      2, 2,  64, 2, 2,  32,   0,  8, 256, PKV_MODE_FP16,     2,  50,  40,  5, 2, 0, 0, 0, STRUCTURED, NULL, 0, 0},
    {"fp16 d48",                          1, 2,  48, 2, 2,  32,   0,  8, 256, PKV_MODE_FP16,     1,  50,  60, 60, 1, 0, 0, 0, STRUCTURED, NULL, 0, 0},
    /* prompts longer than one k-means chunk (PKV_KMEANS_CHUNK = 512 tokens): the chunk sums pairwise */
    {"pattern prompt of three k-means chunks", 2, 2, 32, 2, 2, 32, 0,  8, 256, PKV_MODE_PATTERN,  1, 1300, 40, 13, 2, 0, 6, 0, STRUCTURED, NULL, 0, 0},
    /* the OpenCL host upload through pinned staging in halves of 64 KiB (several pieces per array,
     * each half reused after its write completed) */
    {"pattern prompt through pinned staging", 2, 2, 32, 2, 2, 32, 0,  8, 256, PKV_MODE_PATTERN,  1, 1300, 40, 13, 2, 0, 6, 0, STRUCTURED,
     "PKV_OPENCL_PINNED=65536", 0, 0},
    {"pattern prompt of 32768 tokens",    1, 1,  32, 2, 2,  32,   0,  8, 256, PKV_MODE_PATTERN,  1, 32768, 40, 40, 1, 0, 10, 0, STRUCTURED, NULL, 0, 0},
    /* k-means over 700 of 1300 tokens (a stride that is not whole: pkv_sample_token), two chunks of them */
    {"pattern k-means on a sample",       2, 2,  32, 2, 2,  32,   0,  8, 256, PKV_MODE_PATTERN,  1, 1300, 40, 13, 2, 0, 6, 0, STRUCTURED, NULL, 700, 0},
    /* the MSE quantizer's range search (pkv_quantizer): V only, K only, both; zero errors stop it early */
    {"pattern d64 2-bit G32, MSE_V",      2, 2,  64, 2, 2,  32,   0,  8, 256, PKV_MODE_PATTERN,  1, 100,  70,  7, 2, 0, 0, 0, STRUCTURED, NULL, 0,
     PKV_QUANTIZER_MSE_V},
    {"pattern d40 3/4-bit G64 R128, MSE", 1, 2,  40, 3, 4,  64, 128,  6, 256, PKV_MODE_PATTERN,  1, 150, 100, 25, 2, 0, 0, 0, STRUCTURED, NULL, 0,
     PKV_QUANTIZER_MSE},
    {"pattern repeated tokens, MSE",      1, 2,  32, 2, 2,  32,   0,  4, 256, PKV_MODE_PATTERN,  1,  70,  40, 20, 2, 0, 0, 0, REPEATED, NULL, 0,
     PKV_QUANTIZER_MSE},
    {"direct with signed zeros, MSE_K",     1, 2,  32, 2, 2,  32,   0,  8, 256, PKV_MODE_DIRECT,   1,  64,  32,  8, 2, 0, 0, 0, SIGNED_ZEROS, NULL, 0,
     PKV_QUANTIZER_MSE_K},
    /* the GPUs' search workgroups: 16 runs each (d72: a slice with idle runs), 8 where d = 256 */
    {"pattern d128 2-bit G128, MSE",      1, 2, 128, 2, 2, 128,   0, 16, 256, PKV_MODE_PATTERN,  1, 260, 140, 35, 4, 0, 6, 0, STRUCTURED, NULL, 0,
     PKV_QUANTIZER_MSE},
    {"pattern d256 8/3-bit G32, MSE",     1, 1, 256, 8, 3,  32,   0,  8, 256, PKV_MODE_PATTERN,  1,  70,  40,  5, 2, 0, 6, 0, STRUCTURED, NULL, 0,
     PKV_QUANTIZER_MSE},
    {"direct d72 4-bit G128, MSE",        1, 2,  72, 4, 4, 128,   0,  8, 256, PKV_MODE_DIRECT,   1, 140, 130, 26, 2, 0, 0, 0, STRUCTURED, NULL, 0,
     PKV_QUANTIZER_MSE},
    /* d72 in PATTERN mode: the prefill's (mining) path with a slice of idle runs, 2 bits */
    {"pattern d72 2-bit G128, MSE",       1, 2,  72, 2, 2, 128,   0, 16, 256, PKV_MODE_PATTERN,  1, 300, 140, 20, 2, 0, 0, 0, STRUCTURED, NULL, 0,
     PKV_QUANTIZER_MSE},
};

/* The same calls with every layer of a step in one pkv_append_layers on the GPU side (per-layer
 * pkv_append on the CPU side). */
static const scenario multi_scenarios[] = {
    {"multi-layer: pattern prompt and decode steps", 4, 2, 64, 2, 2, 32,  0,  8, 256, PKV_MODE_PATTERN,  1, 200, 70,  1, 2, 0, 6, 0, STRUCTURED, NULL, 0, 0},
    {"multi-layer: pattern, several flushes a call", 3, 2, 32, 3, 2, 32, 64,  8,   9, PKV_MODE_PATTERN,  2,  40, 300, 90, 2, 1, 6, 0, STRUCTURED, NULL, 0, 0},
    {"multi-layer: direct, 45 at a time",    3, 2, 40, 2, 2, 32,  0,  8, 256, PKV_MODE_DIRECT,   1,  45, 150, 45, 2, 0, 0, 0, STRUCTURED, NULL, 0, 0},
    {"multi-layer: fp16, decode steps",      2, 2, 32, 2, 2, 32,  0,  8, 256, PKV_MODE_FP16,     1,  50,  40,  1, 1, 0, 0, 0, STRUCTURED, NULL, 0, 0},
};
static int gpu_multi; /* append_both: the GPU side appends every layer in one call */

/* The GPU backends' switch that splits attention into one chunk per item (many partial results
 * merged), src/core/attn_plan.h. */
static const char *one_block_per_item_knob(pkv_backend_kind kind)
{
    return kind == PKV_BACKEND_CPU ? NULL : "PKV_ATTN_CHUNKS_PER_ITEM";
}

/* Whether a knob ("PKV_OPENCL_...", or "PKV_ATTN_..." of both GPU backends) applies to the backend
 * under test. */
static int knob_applies(const char *knob, pkv_backend_kind kind)
{
    if (strncmp(knob, "PKV_ATTN_", 9) == 0) return kind != PKV_BACKEND_CPU;
    char prefix[32];
    snprintf(prefix, sizeof prefix, "PKV_%s_", pkv_backend_name(kind));
    for (char *c = prefix; *c; c++)
        if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');
    return strncmp(knob, prefix, strlen(prefix)) == 0;
}

static void set_knob(const char *knob, int on)
{
    char name[64];
    const char *eq = strchr(knob, '=');
    snprintf(name, sizeof name, "%.*s", (int)(eq - knob), knob);
    if (on) setenv(name, eq + 1, 1);
    else unsetenv(name);
}

/* One side: a cache on one backend, fed the same calls as the other. */
typedef struct side {
    pkv_cache *c;
    pkv_seq seqs[MAX_SEQS];
} side;

typedef struct run {
    const scenario *sc;
    pkv_backend_kind gpu;
    side s[2]; /* [0] cpu, [1] gpu */
    uint32_t n_seqs;
    uint32_t len[MAX_SEQS];
    float *kx[MAX_SEQS], *vx[MAX_SEQS]; /* [layers][len][H][d] of each sequence */
    tu_rng rng;
} run;

static size_t row(const scenario *sc) { return (size_t)sc->H * sc->d; }
static size_t total(const scenario *sc) { return sc->prefill + sc->decode; }

static void make_data(run *r, uint32_t i)
{
    const scenario *sc = r->sc;
    const size_t n = total(sc), per_layer = n * row(sc);
    r->kx[i] = malloc(sc->layers * per_layer * sizeof(float));
    r->vx[i] = malloc(sc->layers * per_layer * sizeof(float));
    float base[3][2 * 256];
    assert_true(sc->data != REPEATED || row(sc) <= 2 * 256);
    if (sc->data == REPEATED) { /* a few exact vectors: equal distances, zero residuals, a constant */
        for (int b = 0; b < 3; b++) tu_random(&r->rng, row(sc), 1.0f, base[b]);
        for (size_t e = 0; e < row(sc); e++) base[2][e] = 0.75f;
    }
    for (uint32_t l = 0; l < sc->layers; l++) {
        float *k = r->kx[i] + l * per_layer, *v = r->vx[i] + l * per_layer;
        if (sc->data == REPEATED) {
            for (size_t t = 0; t < n; t++) {
                memcpy(k + t * row(sc), base[(t * 7 + t / 40) % 3], row(sc) * sizeof(float));
                memcpy(v + t * row(sc), base[(t * 5 + t / 40) % 3], row(sc) * sizeof(float));
            }
            continue;
        }
        tu_structured_kv(&r->rng, (uint32_t)n, sc->H, sc->d, 6, 0.3f, k);
        tu_random(&r->rng, per_layer, 1.5f, v);
        if (sc->data == SIGNED_ZEROS) /* |x|, then about one value in six an exact zero of random sign */
            for (size_t e = 0; e < per_layer; e++) {
                k[e] = fabsf(k[e]), v[e] = fabsf(v[e]);
                if (tu_uniform(&r->rng) < 0.17) k[e] = tu_uniform(&r->rng) < 0.5 ? -0.0f : 0.0f;
                if (tu_uniform(&r->rng) < 0.17) v[e] = tu_uniform(&r->rng) < 0.5 ? -0.0f : 0.0f;
            }
    }
}

/* Appends tokens [t0, t0 + n) of sequence i to every layer of both sides. */
static void append_both(run *r, uint32_t i, uint32_t t0, uint32_t n)
{
    const scenario *sc = r->sc;
    const size_t per_layer = total(sc) * row(sc);
    for (int b = 0; b < 2; b++) {
        if (b == 1 && gpu_multi) {
            const void *k[16], *v[16];
            for (uint32_t l = 0; l < sc->layers; l++)
                k[l] = r->kx[i] + l * per_layer + t0 * row(sc), v[l] = r->vx[i] + l * per_layer + t0 * row(sc);
            pkv_append_params p = pkv_append_params_default();
            p.seq = r->s[b].seqs[i];
            p.n_tokens = n;
            TU_OK(pkv_append_layers(r->s[b].c, &p, k, v));
            continue;
        }
        for (uint32_t l = 0; l < sc->layers; l++)
            TU_OK(pkv_append(r->s[b].c, r->s[b].seqs[i], l, n, r->kx[i] + l * per_layer + t0 * row(sc),
                             r->vx[i] + l * per_layer + t0 * row(sc), PKV_F32));
    }
}

static void fill(run *r, pkv_context *cpu, pkv_context *gpu)
{
    const scenario *sc = r->sc;
    pkv_cache_config cfg = tu_config(sc->layers, sc->H, sc->d, sc->k_bits, sc->G, sc->mode);
    cfg.v_bits = sc->v_bits;
    cfg.window = sc->window;
    cfg.n_patterns = sc->M;
    cfg.bank_capacity = sc->capacity;
    cfg.seed = 0x1234 + sc->d;
    if (sc->iters) cfg.kmeans_iters = sc->iters;
    if (sc->tol > 0) cfg.kmeans_tol = sc->tol;
    if (sc->sample) cfg.kmeans_sample = sc->sample;
    cfg.quantizer = sc->quantizer;
    TU_OK(pkv_cache_create(cpu, &cfg, &r->s[0].c));
    TU_OK(pkv_cache_create(gpu, &cfg, &r->s[1].c));
    r->n_seqs = sc->n_seqs + (sc->fork ? 1 : 0);
    for (uint32_t i = 0; i < r->n_seqs; i++) {
        make_data(r, i);
        r->len[i] = sc->n_seqs > 1 && i < sc->n_seqs ? 1 + (uint32_t)(tu_uniform(&r->rng) * total(sc)) : (uint32_t)total(sc);
        if (r->len[i] < 3) r->len[i] = 3;
    }
    uint32_t pre[MAX_SEQS];
    for (uint32_t i = 0; i < sc->n_seqs; i++) {
        for (int b = 0; b < 2; b++) TU_OK(pkv_seq_create(r->s[b].c, &r->s[b].seqs[i]));
        assert_int_equal(r->s[0].seqs[i], r->s[1].seqs[i]);
        pre[i] = sc->prefill < r->len[i] ? sc->prefill : r->len[i];
        append_both(r, i, 0, pre[i]);
    }
    if (sc->fork) { /* the child shares the parent's prefix, then goes its own way */
        uint32_t child = sc->n_seqs;
        const size_t per_layer = total(sc) * row(sc);
        for (uint32_t l = 0; l < sc->layers; l++) {
            memcpy(r->kx[child] + l * per_layer, r->kx[0] + l * per_layer, pre[0] * row(sc) * sizeof(float));
            memcpy(r->vx[child] + l * per_layer, r->vx[0] + l * per_layer, pre[0] * row(sc) * sizeof(float));
        }
        for (int b = 0; b < 2; b++) TU_OK(pkv_seq_fork(r->s[b].c, r->s[b].seqs[0], &r->s[b].seqs[child]));
        assert_int_equal(r->s[0].seqs[child], r->s[1].seqs[child]);
        pre[child] = pre[0];
    }
    for (uint32_t i = 0; i < r->n_seqs; i++)
        for (uint32_t t = pre[i]; t < r->len[i]; t += sc->step)
            append_both(r, i, t, r->len[i] - t < sc->step ? r->len[i] - t : sc->step);
}

/* Bit-exact: every block and bank first (naming the first difference), then the saved files. */
static void expect_identical(run *r)
{
    const scenario *sc = r->sc;
    const pkv_geom *g = tu_geom(r->s[0].c);
    uint8_t *x = malloc(g->block_bytes), *y = malloc(g->block_bytes);
    float *bank = malloc(4 * 256 * 256 * sizeof(float));
    for (uint32_t i = 0; i < r->n_seqs; i++)
        for (uint32_t l = 0; l < sc->layers; l++) {
            uint32_t nb = pkv_find_seq(r->s[0].c, r->s[0].seqs[i])->layers[l].n_blocks;
            assert_int_equal(nb, pkv_find_seq(r->s[1].c, r->s[1].seqs[i])->layers[l].n_blocks);
            for (uint32_t h = 0; h < g->H; h++)
                for (uint32_t b = 0; b < nb; b++) {
                    tu_read_block(r->s[0].c, r->s[0].seqs[i], l, h, b, x);
                    tu_read_block(r->s[1].c, r->s[1].seqs[i], l, h, b, y);
                    for (uint32_t e = 0; e < g->block_bytes; e++)
                        if (x[e] != y[e])
                            fail_msg("%s: seq %u layer %u head %u block %u differs at byte %u (cpu %02x, %s %02x; "
                                     "kscale@%u kzero@%u vcodes@%u vscale@%u vzero@%u kidx@%u vidx@%u vmask@%u)",
                                     sc->name, i, l, h, b, e, x[e], pkv_backend_name(r->gpu), y[e], g->off_kscale,
                                     g->off_kzero, g->off_vcodes, g->off_vscale, g->off_vzero, g->off_kidx, g->off_vidx,
                                     g->off_vmask);
                }
            if (sc->mode != PKV_MODE_PATTERN) continue;
            float *PK[2] = {bank, bank + 256 * 256}, *PV[2] = {bank + 2 * 256 * 256, bank + 3 * 256 * 256};
            for (uint32_t h = 0; h < g->H; h++) {
                uint32_t n0 = tu_read_bank(r->s[0].c, r->s[0].seqs[i], l, h, PK[0], PV[0]);
                uint32_t n1 = tu_read_bank(r->s[1].c, r->s[1].seqs[i], l, h, PK[1], PV[1]);
                assert_int_equal(n0, n1);
                assert_memory_equal(PK[0], PK[1], (size_t)n0 * g->d * sizeof(float));
                assert_memory_equal(PV[0], PV[1], (size_t)n0 * g->d * sizeof(float));
            }
        }
    free(x), free(y), free(bank);

    char path[2][64];
    size_t n[2];
    uint8_t *f[2];
    for (int b = 0; b < 2; b++) {
        snprintf(path[b], sizeof path[b], "/tmp/pkv_parity_%d_%d.pkv", (int)getpid(), b);
        TU_OK(pkv_cache_save(r->s[b].c, path[b]));
        f[b] = tu_slurp(path[b], &n[b]);
        remove(path[b]);
    }
    assert_true(n[0] > 100);
    assert_int_equal(n[0], n[1]);
    if (memcmp(f[0], f[1], n[0]) != 0) {
        size_t at = 0;
        while (f[0][at] == f[1][at]) at++;
        fail_msg("%s: saved caches differ first at byte %zu of %zu", sc->name, at, n[0]);
    }
    free(f[0]), free(f[1]);
}

/* Attention of all sequences at once, q_len 1 and a causal q_len 3: the GPU within 1e-4 of the CPU
 * (each output vector; 1e-3 on the CPU's avx512vnni level, tu_attention_bound), with the backend's
 * default split and with one block per work item; and within 1e-4 of fp64 over the dequantized cache. */
static void expect_attention(run *r)
{
    const scenario *sc = r->sc;
    const uint32_t nqh = sc->H * sc->gqa, d = sc->d;
    const char *split = one_block_per_item_knob(r->gpu);
    const double vs_cpu = tu_attention_bound(r->s[0].c->ctx);
    for (uint32_t q_len = 1; q_len <= 3; q_len += 2)
        for (uint32_t l = 0; l < sc->layers; l++) {
            size_t nq = (size_t)r->n_seqs * q_len * nqh * d;
            float *q = malloc(nq * sizeof(float)), *oc = malloc(nq * sizeof(float)), *og = malloc(nq * sizeof(float));
            tu_random(&r->rng, nq, 1.0f, q);
            pkv_attention_params ap = {.struct_size = sizeof(pkv_attention_params), .n_seqs = r->n_seqs, .layer = l, .q_len = q_len, .n_q_heads = nqh, .q_dtype = PKV_F32};
            ap.seqs = r->s[0].seqs;
            TU_OK(pkv_attention(r->s[0].c, &ap, q, oc));
            ap.seqs = r->s[1].seqs;
            for (int forced = 0; forced < (split ? 2 : 1); forced++) {
                if (forced) setenv(split, "1", 1), pkv_attn_env_reload(r->s[1].c->ctx); /* read once per context */
                TU_OK(pkv_attention(r->s[1].c, &ap, q, og));
                if (forced) unsetenv(split), pkv_attn_env_reload(r->s[1].c->ctx);
                for (size_t v0 = 0; v0 < nq; v0 += d) {
                    double rel = ref_rel_diff(og + v0, oc + v0, d);
                    if (!(rel < vs_cpu))
                        fail_msg("%s: attention q_len %u layer %u vector %zu: %s vs cpu rel diff %.3g%s", sc->name, q_len,
                                 l, v0 / d, pkv_backend_name(r->gpu), rel, forced ? " (one block per item)" : "");
                }
            }
            const float *kd[MAX_SEQS], *vd[MAX_SEQS];
            uint32_t T[MAX_SEQS];
            for (uint32_t i = 0; i < r->n_seqs; i++) {
                TU_OK(pkv_seq_length(r->s[1].c, r->s[1].seqs[i], l, &T[i]));
                float *kk = malloc((size_t)T[i] * row(sc) * sizeof(float)), *vv = malloc((size_t)T[i] * row(sc) * sizeof(float));
                TU_OK(pkv_read_kv(r->s[1].c, r->s[1].seqs[i], l, kk, vv));
                kd[i] = kk, vd[i] = vv;
            }
            double err = tu_check_attention(kd, vd, T, r->n_seqs, q_len, nqh, sc->H, d, q, og);
            if (!(err < 1e-4)) fail_msg("%s: attention q_len %u: %s vs fp64 rel err %.3g", sc->name, q_len, pkv_backend_name(r->gpu), err);
            for (uint32_t i = 0; i < r->n_seqs; i++) free((void *)kd[i]), free((void *)vd[i]);
            free(q), free(oc), free(og);
        }
}

static void run_scenario(const scenario *sc, pkv_backend_kind gpu_kind, pkv_context *cpu, pkv_context *gpu)
{
    print_message("%s\n", sc->name);
    run r = {.sc = sc, .gpu = gpu_kind, .rng = {0x9E37 + sc->d * 7 + sc->G + sc->k_bits}};
    if (sc->knob) set_knob(sc->knob, 1), pkv_attn_env_reload(gpu); /* PKV_ATTN_* are read once per context */
    fill(&r, cpu, gpu);
    expect_identical(&r);
    expect_attention(&r);
    if (sc->knob) set_knob(sc->knob, 0), pkv_attn_env_reload(gpu);
    for (int b = 0; b < 2; b++) TU_OK(pkv_cache_free(r.s[b].c));
    for (uint32_t i = 0; i < r.n_seqs; i++) free(r.kx[i]), free(r.vx[i]);
}

static pkv_context *gpu_context(void)
{
    pkv_context_params p = pkv_context_params_default();
    p.backend = tu_backend();
    if (p.backend != PKV_BACKEND_VULKAN && p.backend != PKV_BACKEND_OPENCL)
        fail_msg("test_parity compares a GPU backend with the CPU: set PKV_TEST_BACKEND=vulkan or opencl");
    return tu_context_or_skip(&p);
}

/* PKV_PARITY_ONLY=text runs only the scenarios whose name contains it (while developing). */
static int selected(const scenario *sc)
{
    const char *only = getenv("PKV_PARITY_ONLY");
    return !only || !*only || strstr(sc->name, only) != NULL;
}

static void every_scenario_matches_the_cpu_backend(void **state)
{
    (void)state;
    pkv_context *gpu = gpu_context(), *cpu = tu_cpu_context(1);
    /* PKV_PARITY_MAX_PROMPT=n leaves out the scenarios with longer prompts (CI's run under the Vulkan
     * validation layer, which is slow: the shapes are covered by the shorter scenarios) */
    const char *mp = getenv("PKV_PARITY_MAX_PROMPT");
    const uint32_t max_prompt = mp && atoi(mp) > 0 ? (uint32_t)atoi(mp) : UINT32_MAX;
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        if ((!scenarios[i].knob || knob_applies(scenarios[i].knob, tu_backend())) && scenarios[i].prefill <= max_prompt &&
            selected(&scenarios[i]))
            run_scenario(&scenarios[i], tu_backend(), cpu, gpu);
    TU_OK(pkv_context_free(cpu));
    TU_OK(pkv_context_free(gpu));
}

/* Multi-layer appends on the GPU backend give the CPU backend's per-layer cache, bit for bit. */
static void multi_layer_appends_match_the_cpu_backend(void **state)
{
    (void)state;
    pkv_context *gpu = gpu_context(), *cpu = tu_cpu_context(1);
    gpu_multi = 1;
    for (size_t i = 0; i < sizeof multi_scenarios / sizeof multi_scenarios[0]; i++)
        if (selected(&multi_scenarios[i])) run_scenario(&multi_scenarios[i], tu_backend(), cpu, gpu);
    gpu_multi = 0;
    TU_OK(pkv_context_free(cpu));
    TU_OK(pkv_context_free(gpu));
}

/* A cache saved by one backend loads on the other and attends the same; and back again. With the
 * MSE_V quantizer, which the file records. */
static void saved_caches_load_across_backends(void **state)
{
    (void)state;
    pkv_context *gpu = gpu_context(), *cpu = tu_cpu_context(0);
    pkv_cache_config cfg = tu_config(1, 2, 64, 2, 32, PKV_MODE_PATTERN);
    cfg.quantizer = PKV_QUANTIZER_MSE_V;
    pkv_cache *c, *c2, *c3;
    pkv_seq s;
    TU_OK(pkv_cache_create(gpu, &cfg, &c));
    TU_OK(pkv_seq_create(c, &s));
    tu_rng rng = {77};
    float *k = malloc(120 * 2 * 64 * sizeof(float)), *v = malloc(120 * 2 * 64 * sizeof(float));
    tu_structured_kv(&rng, 120, 2, 64, 4, 0.2f, k);
    tu_random(&rng, 120 * 2 * 64, 1.0f, v);
    TU_OK(pkv_append(c, s, 0, 120, k, v, PKV_F32));
    char path[64], path2[64];
    snprintf(path, sizeof path, "/tmp/pkv_cross_%d.pkv", (int)getpid());
    snprintf(path2, sizeof path2, "/tmp/pkv_cross2_%d.pkv", (int)getpid());
    TU_OK(pkv_cache_save(c, path));
    TU_OK(pkv_cache_load(cpu, path, &c2));
    pkv_cache_config back = {.struct_size = sizeof back};
    TU_OK(pkv_cache_get_config(c2, &back));
    assert_int_equal(back.quantizer, PKV_QUANTIZER_MSE_V);
    float q[4 * 64], o1[4 * 64], o2[4 * 64];
    tu_random(&rng, 4 * 64, 1.0f, q);
    pkv_attention_params ap = {.struct_size = sizeof(pkv_attention_params), .seqs = &s, .n_seqs = 1, .layer = 0, .q_len = 1, .n_q_heads = 4, .q_dtype = PKV_F32};
    TU_OK(pkv_attention(c, &ap, q, o1));
    TU_OK(pkv_attention(c2, &ap, q, o2));
    assert_true(ref_rel_diff(o1, o2, 4 * 64) < tu_attention_bound(cpu));
    TU_OK(pkv_cache_save(c2, path2));
    TU_OK(pkv_cache_load(gpu, path2, &c3));
    TU_OK(pkv_attention(c3, &ap, q, o2));
    assert_true(ref_rel_diff(o2, o1, 4 * 64) < 1e-6); /* same backend, same data (partial sums may reorder) */
    remove(path), remove(path2);
    TU_OK(pkv_cache_free(c)), TU_OK(pkv_cache_free(c2)), TU_OK(pkv_cache_free(c3));
    free(k), free(v);
    TU_OK(pkv_context_free(cpu));
    TU_OK(pkv_context_free(gpu));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_scenario_matches_the_cpu_backend),
        cmocka_unit_test(multi_layer_appends_match_the_cpu_backend),
        cmocka_unit_test(saved_caches_load_across_backends),
    };
    return tu_run_tests(tests, NULL, NULL);
}
