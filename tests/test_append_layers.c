/* pkv_append_layers (several layers of one sequence in one call) and attention over the cache plus
 * the queries' own K/V (k_new, v_new), on the backend PKV_TEST_BACKEND names: a multi-layer append
 * leaves the cache exactly as per-layer appends do (saved files byte for byte, and every block, bank
 * and window), its errors store nothing,
 * and attention with the new token's own K/V equals attention after appending it. Decode appends
 * through append.c's fast path equal those through the general planner. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

enum { L = 3, H = 2, D = 64, G = 32, T = 700 };

static pkv_cache_config config(pkv_mode mode)
{
    pkv_cache_config cfg = tu_config(L, H, D, 2, G, mode);
    cfg.n_patterns = 8;
    cfg.kmeans_iters = 8;
    cfg.memory_budget = 64u << 20;
    return cfg;
}

/* [L][T][H][D] keys and values, each layer its own. */
static void make_kv(float **k, float **v)
{
    tu_rng r = {4242};
    *k = malloc((size_t)L * T * H * D * sizeof(float));
    *v = malloc((size_t)L * T * H * D * sizeof(float));
    for (int l = 0; l < L; l++) tu_structured_kv(&r, T, H, D, 5, 0.3f, *k + (size_t)l * T * H * D);
    tu_random(&r, (size_t)L * T * H * D, 1.2f, *v);
}

static const float *at(const float *x, uint32_t l, uint32_t t) { return x + ((size_t)l * T + t) * H * D; }

/* The same appends, [t0, t0 + n) of every layer: per layer, or in one call. */
static void append_per_layer(pkv_cache *c, pkv_seq s, const float *k, const float *v, uint32_t t0, uint32_t n)
{
    for (uint32_t l = 0; l < L; l++) TU_OK(pkv_append(c, s, l, n, at(k, l, t0), at(v, l, t0), PKV_F32));
}

static void append_all(pkv_cache *c, pkv_seq s, const float *k, const float *v, uint32_t t0, uint32_t n)
{
    const void *kp[L], *vp[L];
    for (uint32_t l = 0; l < L; l++) kp[l] = at(k, l, t0), vp[l] = at(v, l, t0);
    pkv_append_params p = pkv_append_params_default();
    p.seq = s;
    p.n_tokens = n;
    TU_OK(pkv_append_layers(c, &p, kp, vp));
}

/* Every length, block, bank and window of one sequence identical in two caches. */
static void expect_same_contents(pkv_cache *a, pkv_seq sa, pkv_cache *b, pkv_seq sb)
{
    const pkv_geom *g = tu_geom(a);
    uint8_t *x = malloc(g->block_bytes), *y = malloc(g->block_bytes);
    float *bank = malloc(4 * 256 * D * sizeof(float));
    for (uint32_t l = 0; l < L; l++) {
        const pkv_layer_state *la = &pkv_find_seq(a, sa)->layers[l], *lb = &pkv_find_seq(b, sb)->layers[l];
        assert_int_equal(la->n_blocks, lb->n_blocks);
        assert_int_equal(la->n_window, lb->n_window);
        assert_int_equal(la->bank_count, lb->bank_count);
        for (uint32_t h = 0; h < H; h++) {
            for (uint32_t blk = 0; blk < la->n_blocks; blk++) {
                tu_read_block(a, sa, l, h, blk, x);
                tu_read_block(b, sb, l, h, blk, y);
                if (memcmp(x, y, g->block_bytes) != 0) fail_msg("layer %u head %u block %u differs", l, h, blk);
            }
            if (la->bank_count) {
                tu_read_bank(a, sa, l, h, bank, bank + 256 * D);
                tu_read_bank(b, sb, l, h, bank + 2 * 256 * D, bank + 3 * 256 * D);
                assert_memory_equal(bank, bank + 2 * 256 * D, (size_t)la->bank_count * D * sizeof(float));
                assert_memory_equal(bank + 256 * D, bank + 3 * 256 * D, (size_t)la->bank_count * D * sizeof(float));
            }
        }
        uint32_t n;
        TU_OK(pkv_seq_length(a, sa, l, &n));
        float *ka = malloc((size_t)n * H * D * sizeof(float) + 4), *va = malloc((size_t)n * H * D * sizeof(float) + 4);
        float *kb = malloc((size_t)n * H * D * sizeof(float) + 4), *vb = malloc((size_t)n * H * D * sizeof(float) + 4);
        TU_OK(pkv_read_kv(a, sa, l, ka, va));
        TU_OK(pkv_read_kv(b, sb, l, kb, vb));
        assert_memory_equal(ka, kb, (size_t)n * H * D * sizeof(float));
        assert_memory_equal(va, vb, (size_t)n * H * D * sizeof(float));
        free(ka), free(va), free(kb), free(vb);
    }
    free(x), free(y), free(bank);
}

/* Two empty caches of one mode, one sequence each, to be filled two ways and compared (close_pair). */
static void open_pair(pkv_context *ctx, pkv_mode mode, pkv_cache **a, pkv_seq *sa, pkv_cache **b, pkv_seq *sb)
{
    pkv_cache_config cfg = config(mode);
    TU_OK(pkv_cache_create(ctx, &cfg, a));
    TU_OK(pkv_cache_create(ctx, &cfg, b));
    TU_OK(pkv_seq_create(*a, sa));
    TU_OK(pkv_seq_create(*b, sb));
}

/* The pair's saved files and contents the same; both freed. */
static void close_pair(pkv_cache *a, pkv_seq sa, pkv_cache *b, pkv_seq sb)
{
    tu_expect_same_saved(a, b);
    expect_same_contents(a, sa, b, sb);
    TU_OK(pkv_cache_free(a));
    TU_OK(pkv_cache_free(b));
}

/* A prompt of 300 tokens (mining, blocks, a window; in DIRECT and FP16 mode nine flushes), then
 * decode steps of one token crossing two flushes, then 20 at a time, then the rest at once (several
 * flushes in one call): saved files identical, and every block, bank and window. In every mode. */
static void multi_layer_append_equals_per_layer_appends(void **state)
{
    (void)state;
    float *k, *v;
    make_kv(&k, &v);
    pkv_context *ctx = tu_context();
    for (int mode = 0; mode < 3; mode++) {
        print_message("mode %s\n", pkv_mode_name((pkv_mode)mode));
        pkv_cache *a, *b;
        pkv_seq sa, sb;
        open_pair(ctx, (pkv_mode)mode, &a, &sa, &b, &sb);
        uint32_t t = 0;
        append_per_layer(a, sa, k, v, t, 300), append_all(b, sb, k, v, t, 300), t += 300;
        for (; t < 300 + 2 * G + 5; t++) append_per_layer(a, sa, k, v, t, 1), append_all(b, sb, k, v, t, 1);
        for (; t + 20 <= 500; t += 20) append_per_layer(a, sa, k, v, t, 20), append_all(b, sb, k, v, t, 20);
        tu_expect_same_saved(a, b);
        expect_same_contents(a, sa, b, sb);
        uint32_t n = T - t; /* several flushes in one call */
        append_per_layer(a, sa, k, v, t, n), append_all(b, sb, k, v, t, n);
        close_pair(a, sa, b, sb);
    }
    TU_OK(pkv_context_free(ctx));
    free(k), free(v);
}

/* Decode appends (one token per call into a window it does not fill) take append.c's fast path; a cache
 * made to take the general planner for them (general_appends) ends up the same, byte for byte, and
 * attention over both gives the same bits, through window flushes, in every mode. */
static void decode_appends_equal_the_general_path(void **state)
{
    (void)state;
    float *k, *v;
    make_kv(&k, &v);
    pkv_context *ctx = tu_context();
    enum { QH = 2 * H };
    float q[QH * D], out_a[QH * D], out_b[QH * D];
    tu_rng r = {77};
    for (int mode = 0; mode < 3; mode++) {
        pkv_cache *a, *b;
        pkv_seq sa, sb;
        open_pair(ctx, (pkv_mode)mode, &a, &sa, &b, &sb);
        b->general_appends = 1;
        append_per_layer(a, sa, k, v, 0, 300), append_per_layer(b, sb, k, v, 0, 300);
        for (uint32_t t = 300; t < 300 + 3 * G + 7; t++) {
            append_per_layer(a, sa, k, v, t, 1), append_per_layer(b, sb, k, v, t, 1);
            if (t % 9) continue;
            tu_random(&r, QH * D, 1.0f, q);
            pkv_attention_params pa = pkv_attention_params_default(), pb = pa;
            pa.seqs = &sa, pb.seqs = &sb;
            pa.n_seqs = pb.n_seqs = 1, pa.n_q_heads = pb.n_q_heads = QH, pa.layer = pb.layer = t % L;
            TU_OK(pkv_attention(a, &pa, q, out_a));
            TU_OK(pkv_attention(b, &pb, q, out_b));
            assert_memory_equal(out_a, out_b, sizeof out_a);
        }
        close_pair(a, sa, b, sb);
    }
    TU_OK(pkv_context_free(ctx));
    free(k), free(v);
}

/* Window writes and a prompt's tokens staged through the smallest staging ring (64 KiB, two halves
 * that take turns; a window of 8 groups makes each round's rows 6x that, so its runs are split over
 * several ring sections and submissions) leave the same cache as through the default ring. PATTERN
 * and DIRECT. */
static void window_writes_through_a_small_staging_ring(void **state)
{
    (void)state;
    float *k, *v;
    make_kv(&k, &v);
    pkv_context *ctx = tu_context();
    pkv_context_params p = pkv_context_params_default();
    p.backend = tu_backend();
    p.staging_bytes = 64u << 10;
    pkv_context *small = tu_context_or_skip(&p);
    for (int mode = 0; mode < 2; mode++) {
        pkv_cache_config cfg = config((pkv_mode)mode);
        cfg.window = 8 * G;
        pkv_cache *a, *b;
        pkv_seq sa, sb;
        TU_OK(pkv_cache_create(ctx, &cfg, &a));
        TU_OK(pkv_cache_create(small, &cfg, &b));
        TU_OK(pkv_seq_create(a, &sa));
        TU_OK(pkv_seq_create(b, &sb));
        uint32_t t = 0;
        append_all(a, sa, k, v, t, 5), append_all(b, sb, k, v, t, 5), t += 5; /* no mining: window rows */
        append_all(a, sa, k, v, t, 600), append_all(b, sb, k, v, t, 600), t += 600;
        for (; t < T; t++) append_all(a, sa, k, v, t, 1), append_all(b, sb, k, v, t, 1);
        tu_expect_same_saved(a, b);
        expect_same_contents(a, sa, b, sb);
        pkv_seq pa, pb; /* a prompt: mining's token uploads turn the ring's halves too */
        TU_OK(pkv_seq_create(a, &pa));
        TU_OK(pkv_seq_create(b, &pb));
        append_all(a, pa, k, v, 0, 600), append_all(b, pb, k, v, 0, 600);
        tu_expect_same_saved(a, b);
        expect_same_contents(a, pa, b, pb);
        TU_OK(pkv_cache_free(a));
        TU_OK(pkv_cache_free(b));
    }
    TU_OK(pkv_context_free(small));
    TU_OK(pkv_context_free(ctx));
    free(k), free(v);
}

/* Vulkan's staging ring starts small and grows to the configured size when an op first fills a half
 * of it (PKV_VULKAN_STAGING_START sets the start, for tests): growths in the middle of a prompt's
 * uploads (b), of a read-back (g2's buffer) and of deferred window writes (c's decode steps) leave the
 * same data as the default ring. Other backends have no ring and ignore it. */
static void staging_ring_grows_on_need(void **state)
{
    (void)state;
    float *k, *v;
    make_kv(&k, &v);
    pkv_context *ctx = tu_context();
    pkv_context_params p = pkv_context_params_default();
    p.backend = tu_backend();
    p.staging_bytes = 1u << 20;
    setenv("PKV_VULKAN_STAGING_START", "65536", 1);
    pkv_context *g1 = tu_context_or_skip(&p), *g2 = tu_context_or_skip(&p);
    unsetenv("PKV_VULKAN_STAGING_START");
    pkv_cache_config cfg = config(PKV_MODE_PATTERN);
    pkv_cache *a, *b, *c, *d;
    pkv_seq sa, sb, sc, sd;
    TU_OK(pkv_cache_create(ctx, &cfg, &a));
    TU_OK(pkv_cache_create(g1, &cfg, &b));
    TU_OK(pkv_cache_create(g2, &cfg, &c));
    TU_OK(pkv_cache_create(ctx, &cfg, &d));
    TU_OK(pkv_seq_create(a, &sa));
    TU_OK(pkv_seq_create(b, &sb));
    TU_OK(pkv_seq_create(c, &sc));
    TU_OK(pkv_seq_create(d, &sd));
    append_all(a, sa, k, v, 0, 5), append_all(b, sb, k, v, 0, 5);
    append_all(a, sa, k, v, 5, 600), append_all(b, sb, k, v, 5, 600); /* b's ring grows as the prompt goes up */
    tu_expect_same_saved(a, b);
    expect_same_contents(a, sa, b, sb);
    /* g2: written in pieces smaller than a half of its ring, then read back in one call that
     * fills it: the ring grows with read-backs pending */
    pkv_backend *be = g2->be;
    enum { BYTES = 256u << 10, PIECE = 24u << 10 };
    uint8_t *src = malloc(BYTES), *back = calloc(1, BYTES);
    for (uint32_t i = 0; i < BYTES; i++) src[i] = (uint8_t)(i * 2654435761u >> 13);
    pkv_buf *buf = NULL;
    TU_OK(be->iface->buf_alloc(be, BYTES, &buf));
    for (uint32_t at = 0; at < BYTES; at += PIECE) { /* a small read submits each write */
        TU_OK(be->iface->buf_write(be, buf, at, src + at, at + PIECE <= BYTES ? PIECE : BYTES - at));
        TU_OK(be->iface->buf_read(be, buf, at, back + at, 16));
    }
    TU_OK(be->iface->buf_read(be, buf, 0, back, BYTES));
    assert_memory_equal(src, back, BYTES);
    be->iface->buf_free(be, buf);
    free(src), free(back);
    for (uint32_t t = 0; t < 40; t++) append_all(c, sc, k, v, t, 1), append_all(d, sd, k, v, t, 1);
    tu_expect_same_saved(d, c);
    expect_same_contents(d, sd, c, sc);
    TU_OK(pkv_cache_free(a));
    TU_OK(pkv_cache_free(b));
    TU_OK(pkv_cache_free(c));
    TU_OK(pkv_cache_free(d));
    TU_OK(pkv_context_free(g2));
    TU_OK(pkv_context_free(g1));
    TU_OK(pkv_context_free(ctx));
    free(k), free(v);
}

/* A forked child shares its parent's bank chunks: its flushes copy the chunk first, per layer. */
static void multi_layer_append_after_a_fork(void **state)
{
    (void)state;
    float *k, *v;
    make_kv(&k, &v);
    pkv_context *ctx = tu_context();
    pkv_cache_config cfg = config(PKV_MODE_PATTERN);
    pkv_cache *a, *b;
    pkv_seq pa, pb, ca, cb;
    TU_OK(pkv_cache_create(ctx, &cfg, &a));
    TU_OK(pkv_cache_create(ctx, &cfg, &b));
    TU_OK(pkv_seq_create(a, &pa));
    TU_OK(pkv_seq_create(b, &pb));
    append_per_layer(a, pa, k, v, 0, 100), append_all(b, pb, k, v, 0, 100);
    TU_OK(pkv_seq_fork(a, pa, &ca));
    TU_OK(pkv_seq_fork(b, pb, &cb));
    for (uint32_t t = 100; t < 100 + G + 3; t++) {
        append_per_layer(a, ca, k, v, t, 1), append_all(b, cb, k, v, t, 1);
        append_per_layer(a, pa, k, v, T - 1 - t, 1), append_all(b, pb, k, v, T - 1 - t, 1);
    }
    tu_expect_same_saved(a, b);
    expect_same_contents(a, ca, b, cb);
    expect_same_contents(a, pa, b, pb);
    TU_OK(pkv_cache_free(a));
    TU_OK(pkv_cache_free(b));
    TU_OK(pkv_context_free(ctx));
    free(k), free(v);
}

/* Bad calls store nothing in any layer: NaN in the last layer, the budget, NULL pointers, ranges,
 * the struct size. A layer subset appends only those layers. */
static void multi_layer_append_errors_store_nothing(void **state)
{
    (void)state;
    float *k, *v;
    make_kv(&k, &v);
    pkv_context *ctx = tu_context();
    pkv_cache_config cfg = config(PKV_MODE_PATTERN);
    cfg.memory_budget = 160u << 10;
    pkv_cache *c;
    pkv_seq s;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    TU_OK(pkv_seq_create(c, &s));
    append_all(c, s, k, v, 0, 40);
    const void *kp[L], *vp[L];
    for (uint32_t l = 0; l < L; l++) kp[l] = at(k, l, 40), vp[l] = at(v, l, 40);
    pkv_append_params p = pkv_append_params_default();
    p.seq = s;
    p.n_tokens = 10;
    float *bad = malloc((size_t)10 * H * D * sizeof(float));
    memcpy(bad, at(v, L - 1, 40), (size_t)10 * H * D * sizeof(float));
    bad[10 * H * D - 1] = NAN;
    vp[L - 1] = bad;
    assert_int_equal(pkv_append_layers(c, &p, kp, vp), PKV_ERR_NONFINITE);
    vp[L - 1] = at(v, L - 1, 40);
    p.n_tokens = 600; /* needs more than the 160 KiB budget */
    assert_int_equal(pkv_append_layers(c, &p, kp, vp), PKV_ERR_OUT_OF_BUDGET);
    p.n_tokens = 10;
    kp[1] = NULL;
    assert_int_equal(pkv_append_layers(c, &p, kp, vp), PKV_ERR_INVALID_ARGUMENT);
    kp[1] = at(k, 1, 40);
    assert_int_equal(pkv_append_layers(c, &p, NULL, vp), PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_append_layers(NULL, &p, kp, vp), PKV_ERR_INVALID_ARGUMENT);
    p.first_layer = L;
    assert_int_equal(pkv_append_layers(c, &p, kp, vp), PKV_ERR_LAYER_RANGE);
    p.first_layer = 1, p.n_layers = L;
    assert_int_equal(pkv_append_layers(c, &p, kp, vp), PKV_ERR_LAYER_RANGE);
    p.first_layer = 0, p.n_layers = 0, p.seq = 999;
    assert_int_equal(pkv_append_layers(c, &p, kp, vp), PKV_ERR_UNKNOWN_SEQUENCE);
    p.seq = s, p.dtype = (pkv_dtype)7;
    assert_int_equal(pkv_append_layers(c, &p, kp, vp), PKV_ERR_INVALID_ARGUMENT);
    p.dtype = PKV_F32, p.struct_size = 0;
    assert_int_equal(pkv_append_layers(c, &p, kp, vp), PKV_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(pkv_last_error(), "pkv_append_params"));
    p.struct_size = sizeof p;
    for (uint32_t l = 0; l < L; l++) {
        uint32_t n;
        TU_OK(pkv_seq_length(c, s, l, &n));
        assert_int_equal(n, 40);
    }
    p.first_layer = 1, p.n_layers = 2; /* layers 1 and 2 only, from k[0], k[1] */
    TU_OK(pkv_append_layers(c, &p, kp + 1, vp + 1));
    for (uint32_t l = 0; l < L; l++) {
        uint32_t n;
        TU_OK(pkv_seq_length(c, s, l, &n));
        assert_int_equal(n, l ? 50 : 40);
    }
    p.n_tokens = 0;
    TU_OK(pkv_append_layers(c, &p, NULL, NULL));
    free(bad);
    TU_OK(pkv_cache_free(c));
    TU_OK(pkv_context_free(ctx));
    free(k), free(v);
}

/* Decode with the new token's own K/V in attention and one append after: the output equals attention
 * after appending the token first (the same data in the window), and the cache is unchanged by it. */
static void attention_with_own_kv_equals_append_then_attend(void **state)
{
    (void)state;
    float *k, *v;
    make_kv(&k, &v);
    pkv_context *ctx = tu_context();
    pkv_cache_config cfg = config(PKV_MODE_PATTERN);
    pkv_cache *a, *b;
    pkv_seq sa, sb;
    TU_OK(pkv_cache_create(ctx, &cfg, &a));
    TU_OK(pkv_cache_create(ctx, &cfg, &b));
    TU_OK(pkv_seq_create(a, &sa));
    TU_OK(pkv_seq_create(b, &sb));
    append_all(a, sa, k, v, 0, 200), append_all(b, sb, k, v, 0, 200);
    const uint32_t nqh = 2 * H;
    tu_rng r = {99};
    float q[2 * H * D], oa[2 * H * D], ob[2 * H * D];
    for (uint32_t t = 200; t < 200 + G + 2; t++) {
        tu_random(&r, nqh * D, 1.0f, q);
        /* the window holds (t - 192) % 32 tokens: the step that would flush it differs (quantized) */
        const int flushes = (t - 200 + 200 % G + 1) % G == 0;
        for (uint32_t l = 0; l < L; l++) {
            pkv_attention_params p = pkv_attention_params_default();
            p.seqs = &sa, p.n_seqs = 1, p.layer = l, p.n_q_heads = nqh;
            p.k_new = at(k, l, t), p.v_new = at(v, l, t);
            TU_OK(pkv_attention(a, &p, q, oa));
            uint32_t n;
            TU_OK(pkv_seq_length(a, sa, l, &n));
            assert_int_equal(n, t);
            TU_OK(pkv_append(b, sb, l, 1, at(k, l, t), at(v, l, t), PKV_F32));
            p = pkv_attention_params_default();
            p.seqs = &sb, p.n_seqs = 1, p.layer = l, p.n_q_heads = nqh;
            TU_OK(pkv_attention(b, &p, q, ob));
            if (!flushes)
                for (uint32_t h = 0; h < nqh; h++) assert_true(ref_rel_diff(oa + h * D, ob + h * D, D) < 1e-6);
        }
        append_all(a, sa, k, v, t, 1);
    }
    tu_expect_same_saved(a, b);
    /* errors: own K/V that does not fit the window, half given, NaN */
    pkv_attention_params p = pkv_attention_params_default();
    p.seqs = &sa, p.n_seqs = 1, p.n_q_heads = nqh, p.q_len = G, p.k_new = k, p.v_new = v;
    float *q2 = calloc((size_t)G * nqh * D, sizeof(float)), *o2 = malloc((size_t)G * nqh * D * sizeof(float));
    assert_int_equal(pkv_attention(a, &p, q2, o2), PKV_ERR_SHAPE);
    p.q_len = 1, p.v_new = NULL;
    assert_int_equal(pkv_attention(a, &p, q, oa), PKV_ERR_INVALID_ARGUMENT);
    float bad[H * D];
    memcpy(bad, v, sizeof bad);
    bad[3] = INFINITY;
    p.v_new = bad;
    assert_int_equal(pkv_attention(a, &p, q, oa), PKV_ERR_NONFINITE);
    pkv_seq twice[2] = {sa, sa};
    p.seqs = twice, p.n_seqs = 2, p.v_new = v;
    assert_int_equal(pkv_attention(a, &p, q2, o2), PKV_ERR_INVALID_ARGUMENT);
    /* an empty sequence attends to its own first token only: the output is that token's V (fp16) */
    pkv_seq e;
    TU_OK(pkv_seq_create(a, &e));
    p.seqs = &e, p.n_seqs = 1, p.q_len = 1, p.k_new = k, p.v_new = v;
    TU_OK(pkv_attention(a, &p, q, oa));
    for (uint32_t h = 0; h < nqh; h++)
        for (uint32_t i = 0; i < D; i++) assert_true(fabsf(oa[h * D + i] - v[(h / 2) * D + i]) < 2e-3f * (1 + fabsf(v[(h / 2) * D + i])));
    free(q2), free(o2);
    TU_OK(pkv_cache_free(a));
    TU_OK(pkv_cache_free(b));
    TU_OK(pkv_context_free(ctx));
    free(k), free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(multi_layer_append_equals_per_layer_appends),
        cmocka_unit_test(decode_appends_equal_the_general_path),
        cmocka_unit_test(window_writes_through_a_small_staging_ring),
        cmocka_unit_test(staging_ring_grows_on_need),
        cmocka_unit_test(multi_layer_append_after_a_fork),
        cmocka_unit_test(multi_layer_append_errors_store_nothing),
        cmocka_unit_test(attention_with_own_kv_equals_append_then_attend),
    };
    return tu_run_tests(tests, NULL, NULL);
}
