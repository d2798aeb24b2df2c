/* Recorded Vulkan calls (pkv_vulkan_cmd_append / pkv_vulkan_cmd_attention) on an application-owned
 * device, as an engine uses them: every layer's append and attention of a decode step in one
 * command buffer, submitted once. Checked against the synchronous calls on the same data (outputs
 * within the attention tolerance: expect_same_attention; byte-identical saved caches), and a NaN in one layer's K: reported in the status word
 * with its layer, the cache stays usable (finite outputs, later steps run). A batch of two sequences
 * per layer, against the synchronous calls too. A prompt in two appends of device tokens (5 tokens,
 * then the rest: mining at M, README "Mining and chunked prefill"): the synchronous calls give the
 * host path's cache byte for byte; a recorded append that would mine late is refused with
 * PKV_ERR_UNSUPPORTED and changes nothing. Batch appends (several sequences of a layer in one call)
 * against appending sequence by sequence (the latter through append.c's general planner, the batch's
 * decode steps through its fast path: the same outputs and cache bytes). A recorded append longer than the window (rounds with a
 * flush between them) equals the synchronous one. Recorded attention's q, which its own kernels convert
 * and check (no conversion dispatch): fp16 and fp32 q agree with the synchronous calls, and a
 * pair with NaN or Inf reads as two zeros (the synchronous result on that q with the pair zeroed). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "f16.h"
#include "internal.h"
#include "patternkv_vulkan.h"
#include "testutil.h"
#include "vk_bench.h"
#include "vk_internal.h"
#include "vk_loader.h"

#include "vk_record_app.h"

/* The prompt of every layer into both caches: sync by the synchronous calls, rec recorded into one
 * command buffer and submitted once (mining, blocks, windows) */
static void prompt_both(app *a, pkv_cache *sync, pkv_seq ss, pkv_cache *rec, pkv_seq rs)
{
    VkCommandBuffer cb = cmd_begin(a);
    for (uint32_t l = 0; l < L; l++) {
        TU_OK(pkv_vulkan_append(sync, ss, l, PROMPT, a->buf, OFF_PK(l), PROMPT * TOK_FLOATS * 4, a->buf, OFF_PV(l),
                                PROMPT * TOK_FLOATS * 4, PKV_F32));
        TU_OK(pkv_vulkan_cmd_append(rec, cb, rs, l, PROMPT, a->buf, OFF_PK(l), PROMPT * TOK_FLOATS * 4, a->buf,
                                    OFF_PV(l), PROMPT * TOK_FLOATS * 4, PKV_F32));
    }
    cmd_submit(a, cb);
}

static void recorded_equals_synchronous(void **state)
{
    (void)state;
    app a;
    if (!app_open(&a)) return;
    pkv_seq ss, rs;
    pkv_cache *sync = new_cache(&a, &ss), *rec = new_cache(&a, &rs);
    /* everything the step will use is built now: no pipeline is made while recording */
    TU_OK(pkv_prewarm(rec, QH, 1));
    double ms;
    unsigned made, made_after;
    int warm;
    pkv_vulkan_pipeline_stats(a.ctx->be, &ms, &made, &warm);
    fill_prompt(&a, 11);
    prompt_both(&a, sync, ss, rec, rs);
    VkCommandBuffer cb;
    static float want[L][Q_FLOATS];
    for (uint32_t step = 0; step < STEPS; step++) { /* crosses a window flush of every layer */
        fill_step(&a, 100 + step);
        for (uint32_t l = 0; l < L; l++) {
            TU_OK(pkv_vulkan_append(sync, ss, l, 1, a.buf, OFF_SK(l), TOK_FLOATS * 4, a.buf, OFF_SV(l), TOK_FLOATS * 4, PKV_F32));
            pkv_attention_params p = attn(&ss, l);
            TU_OK(pkv_vulkan_attention(sync, &p, a.buf, OFF_Q(l), Q_FLOATS * 4, a.buf, OFF_OUT(l), Q_FLOATS * 4));
            memcpy(want[l], at(&a, OFF_OUT(l)), sizeof want[l]);
            memset(at(&a, OFF_OUT(l)), 0xFF, sizeof want[l]);
        }
        cb = cmd_begin(&a);
        record_step(&a, rec, rs, cb);
        cmd_submit(&a, cb);
        for (uint32_t l = 0; l < L; l++) expect_same_attention(&a, at(&a, OFF_OUT(l)), want[l], Q_FLOATS);
    }
    pkv_vulkan_pipeline_stats(a.ctx->be, &ms, &made_after, &warm);
    assert_int_equal(made_after, made);
    assert_int_equal(pkv_prewarm(rec, 3, 1), PKV_ERR_SHAPE);
    uint32_t flags = 1, first = 0;
    TU_OK(pkv_vulkan_read_status(rec, &flags, &first, 0));
    assert_int_equal(flags, 0);
    assert_int_equal(first, UINT32_MAX);
    /* the same cache, byte for byte */
    tu_expect_same_saved(sync, rec);
    /* argument errors are found before anything is recorded */
    cb = cmd_begin(&a);
    assert_int_equal(pkv_vulkan_cmd_append(rec, cb, rs, 0, 1, a.buf, OFF_SK(0), TOK_FLOATS * 4 - 4, a.buf, OFF_SV(0),
                                           TOK_FLOATS * 4, PKV_F32), PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_vulkan_cmd_append(rec, cb, rs, L, 1, a.buf, OFF_SK(0), TOK_FLOATS * 4, a.buf, OFF_SV(0),
                                           TOK_FLOATS * 4, PKV_F32), PKV_ERR_LAYER_RANGE);
    pkv_attention_params p = attn(&rs, 0);
    assert_int_equal(pkv_vulkan_cmd_attention(rec, cb, &p, a.buf, OFF_Q(0), Q_FLOATS * 4, a.buf, OFF_OUT(0), 16),
                     PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_vulkan_cmd_attention(rec, VK_NULL_HANDLE, &p, a.buf, OFF_Q(0), Q_FLOATS * 4, a.buf, OFF_OUT(0),
                                              Q_FLOATS * 4), PKV_ERR_INVALID_ARGUMENT);
    cmd_submit(&a, cb); /* empty */
    uint32_t len;
    TU_OK(pkv_seq_length(rec, rs, 0, &len));
    assert_int_equal(len, PROMPT + STEPS);
    TU_OK(pkv_cache_free(sync));
    TU_OK(pkv_cache_free(rec));
    app_close(&a);
}

/* A batch of two sequences in the prompt area of each layer (free once the prompt was submitted):
 * the second sequence's token K and V, the two queries, the two outputs. */
#define OFF_BK(l) OFF_PK(l)
#define OFF_BV(l) (OFF_BK(l) + TOK_FLOATS * 4)
#define OFF_BQ(l) (OFF_BV(l) + TOK_FLOATS * 4)
#define OFF_BOUT(l) (OFF_BQ(l) + 2 * Q_FLOATS * 4)

/* Two sequences (the second a fork of the first after the prompt: its first append copies the
 * shared window): per layer both appends recorded back to back, whose transfers and window
 * conversions overlap, then attention over both. Against the synchronous calls, under the
 * validation layer in test_vulkan_record_validation. */
static void batch_of_two_equals_synchronous(void **state)
{
    (void)state;
    app a;
    if (!app_open(&a)) return;
    pkv_seq ss[2], rs[2];
    pkv_cache *sync = new_cache(&a, &ss[0]), *rec = new_cache(&a, &rs[0]);
    fill_prompt(&a, 21);
    VkCommandBuffer cb = cmd_begin(&a);
    for (uint32_t l = 0; l < L; l++) {
        TU_OK(pkv_vulkan_append(sync, ss[0], l, PROMPT, a.buf, OFF_PK(l), PROMPT * TOK_FLOATS * 4, a.buf, OFF_PV(l),
                                PROMPT * TOK_FLOATS * 4, PKV_F32));
        TU_OK(pkv_vulkan_cmd_append(rec, cb, rs[0], l, PROMPT, a.buf, OFF_PK(l), PROMPT * TOK_FLOATS * 4, a.buf,
                                    OFF_PV(l), PROMPT * TOK_FLOATS * 4, PKV_F32));
    }
    cmd_submit(&a, cb);
    TU_OK(pkv_seq_fork(sync, ss[0], &ss[1]));
    TU_OK(pkv_seq_fork(rec, rs[0], &rs[1]));
    static float want[L][2 * Q_FLOATS];
    for (uint32_t step = 0; step < STEPS; step++) { /* crosses a window flush of every layer */
        fill_step(&a, 300 + step);
        tu_rng r = {900 + step};
        for (uint32_t l = 0; l < L; l++) {
            tu_random(&r, 2 * TOK_FLOATS, 1.0f, at(&a, OFF_BK(l)));
            tu_random(&r, 2 * Q_FLOATS, 1.0f, at(&a, OFF_BQ(l)));
        }
        pkv_attention_params p = pkv_attention_params_default();
        p.n_seqs = 2, p.n_q_heads = QH;
        for (uint32_t l = 0; l < L; l++) {
            TU_OK(pkv_vulkan_append(sync, ss[0], l, 1, a.buf, OFF_SK(l), TOK_FLOATS * 4, a.buf, OFF_SV(l), TOK_FLOATS * 4, PKV_F32));
            TU_OK(pkv_vulkan_append(sync, ss[1], l, 1, a.buf, OFF_BK(l), TOK_FLOATS * 4, a.buf, OFF_BV(l), TOK_FLOATS * 4, PKV_F32));
            p.seqs = ss, p.layer = l;
            TU_OK(pkv_vulkan_attention(sync, &p, a.buf, OFF_BQ(l), 2 * Q_FLOATS * 4, a.buf, OFF_BOUT(l), 2 * Q_FLOATS * 4));
            memcpy(want[l], at(&a, OFF_BOUT(l)), sizeof want[l]);
            memset(at(&a, OFF_BOUT(l)), 0xFF, sizeof want[l]);
        }
        cb = cmd_begin(&a);
        for (uint32_t l = 0; l < L; l++) {
            TU_OK(pkv_vulkan_cmd_append(rec, cb, rs[0], l, 1, a.buf, OFF_SK(l), TOK_FLOATS * 4, a.buf, OFF_SV(l),
                                        TOK_FLOATS * 4, PKV_F32));
            TU_OK(pkv_vulkan_cmd_append(rec, cb, rs[1], l, 1, a.buf, OFF_BK(l), TOK_FLOATS * 4, a.buf, OFF_BV(l),
                                        TOK_FLOATS * 4, PKV_F32));
            p.seqs = rs, p.layer = l;
            TU_OK(pkv_vulkan_cmd_attention(rec, cb, &p, a.buf, OFF_BQ(l), 2 * Q_FLOATS * 4, a.buf, OFF_BOUT(l),
                                           2 * Q_FLOATS * 4));
        }
        cmd_submit(&a, cb);
        for (uint32_t l = 0; l < L; l++) expect_same_attention(&a, at(&a, OFF_BOUT(l)), want[l], 2 * Q_FLOATS);
    }
    uint32_t flags = 1, first = 0, len;
    TU_OK(pkv_vulkan_read_status(rec, &flags, &first, 0));
    assert_int_equal(flags, 0);
    TU_OK(pkv_seq_length(rec, rs[1], L - 1, &len));
    assert_int_equal(len, PROMPT + STEPS);
    TU_OK(pkv_cache_free(sync));
    TU_OK(pkv_cache_free(rec));
    app_close(&a);
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

static void nan_in_one_layer_shows_in_the_status_word(void **state)
{
    (void)state;
    app a;
    if (!app_open(&a)) return;
    pkv_seq s;
    pkv_cache *c = new_cache(&a, &s);
    fill_prompt(&a, 5);
    VkCommandBuffer cb = cmd_begin(&a);
    for (uint32_t l = 0; l < L; l++)
        TU_OK(pkv_vulkan_cmd_append(c, cb, s, l, PROMPT, a.buf, OFF_PK(l), PROMPT * TOK_FLOATS * 4, a.buf, OFF_PV(l),
                                    PROMPT * TOK_FLOATS * 4, PKV_F32));
    cmd_submit(&a, cb);
    uint32_t flags, first;
    for (uint32_t step = 0; step < 30; step++) { /* the bad token is flushed with its window later on */
        fill_step(&a, 7 + step);
        if (step == 3) at(&a, OFF_SK(2))[5] = NAN;
        if (step == 4) at(&a, OFF_SV(1))[9] = INFINITY;
        if (step == 5) at(&a, OFF_Q(3))[0] = NAN;
        cb = cmd_begin(&a);
        record_step(&a, c, s, cb);
        cmd_submit(&a, cb);
        for (uint32_t l = 0; l < L; l++) assert_true(all_finite(at(&a, OFF_OUT(l)), Q_FLOATS));
        TU_OK(pkv_vulkan_read_status(c, &flags, &first, 1));
        if (step == 3) assert_int_equal(flags, PKV_VULKAN_STATUS_KV_NONFINITE), assert_int_equal(first, 2);
        else if (step == 4) assert_int_equal(flags, PKV_VULKAN_STATUS_KV_NONFINITE), assert_int_equal(first, 1);
        else if (step == 5) assert_int_equal(flags, PKV_VULKAN_STATUS_Q_NONFINITE), assert_int_equal(first, 3);
        else assert_int_equal(flags, 0), assert_int_equal(first, UINT32_MAX);
    }
    /* the cache stays usable: the stored token reads as zeros where the value was bad */
    uint32_t len;
    TU_OK(pkv_seq_length(c, s, 2, &len));
    assert_int_equal(len, PROMPT + 30);
    float *k = malloc((size_t)len * TOK_FLOATS * 4), *v = malloc((size_t)len * TOK_FLOATS * 4);
    TU_OK(pkv_read_kv(c, s, 2, k, v));
    assert_true(all_finite(k, (size_t)len * TOK_FLOATS) && all_finite(v, (size_t)len * TOK_FLOATS));
    free(k), free(v);
    /* a synchronous call refuses the same data and keeps its own word, leaving the recorded one alone */
    at(&a, OFF_SK(0))[0] = NAN;
    assert_int_equal(pkv_vulkan_append(c, s, 0, 1, a.buf, OFF_SK(0), TOK_FLOATS * 4, a.buf, OFF_SV(0), TOK_FLOATS * 4, PKV_F32),
                     PKV_ERR_NONFINITE);
    TU_OK(pkv_vulkan_read_status(c, &flags, &first, 0));
    assert_int_equal(flags, 0);
    TU_OK(pkv_cache_free(c));
    app_close(&a);
}

/* Recorded attention reads the application's q as it was copied: attn_common.glsl's q_value converts and
 * checks it in the attention kernels, as stage_input.comp does for the synchronous call. Step 0: fp16 q;
 * step 1: fp32 q with a NaN in layer 1; step 2: fp16 q with an Inf in layer 2 (an odd element: the
 * second of its pair). The synchronous call gets the same q with the bad pair zeroed, which is what the
 * recorded kernels must read: the outputs agree bit for bit, and the status word names the layer. */
static void recorded_q_conversion_equals_synchronous(void **state)
{
    (void)state;
    app a;
    if (!app_open(&a)) return;
    pkv_seq ss, rs;
    pkv_cache *sync = new_cache(&a, &ss), *rec = new_cache(&a, &rs);
    fill_prompt(&a, 31);
    prompt_both(&a, sync, ss, rec, rs);
    VkCommandBuffer cb;
    static float want[L][Q_FLOATS], q[Q_FLOATS], q_app[Q_FLOATS];
    static uint16_t qh[Q_FLOATS];
    for (uint32_t step = 0; step < 3; step++) {
        fill_step(&a, 500 + step);
        const pkv_dtype dt = step == 1 ? PKV_F32 : PKV_F16;
        const uint32_t bad_l = step ? step : UINT32_MAX;
        const size_t bad_i = step == 1 ? 4 : 7, q_bytes = Q_FLOATS * (dt == PKV_F16 ? 2 : 4);
        for (uint32_t l = 0; l < L; l++) {
            TU_OK(pkv_vulkan_append(sync, ss, l, 1, a.buf, OFF_SK(l), TOK_FLOATS * 4, a.buf, OFF_SV(l), TOK_FLOATS * 4, PKV_F32));
            float *qa = at(&a, OFF_Q(l));
            memcpy(q_app, qa, sizeof q_app);
            memcpy(q, qa, sizeof q);
            if (l == bad_l) q[bad_i & ~(size_t)1] = q[bad_i | 1] = 0.0f;
            if (dt == PKV_F16) {
                pkv_f32_to_f16_at(PKV_F16_SCALAR, q, qh, Q_FLOATS);
                memcpy(qa, qh, sizeof qh);
            } else {
                memcpy(qa, q, sizeof q);
            }
            pkv_attention_params p = attn(&ss, l);
            p.q_dtype = dt;
            TU_OK(pkv_vulkan_attention(sync, &p, a.buf, OFF_Q(l), q_bytes, a.buf, OFF_OUT(l), Q_FLOATS * 4));
            memcpy(want[l], at(&a, OFF_OUT(l)), sizeof want[l]);
            memset(at(&a, OFF_OUT(l)), 0xFF, sizeof want[l]);
            if (l == bad_l) { /* the recorded call's q: the application's, its partner of the bad value kept */
                if (dt == PKV_F16) {
                    pkv_f32_to_f16_at(PKV_F16_SCALAR, q_app, qh, Q_FLOATS);
                    qh[bad_i] = 0x7C00u; /* +Inf */
                    memcpy(qa, qh, sizeof qh);
                } else {
                    memcpy(qa, q_app, sizeof q_app);
                    qa[bad_i] = NAN;
                }
            }
        }
        cb = cmd_begin(&a);
        for (uint32_t l = 0; l < L; l++) {
            TU_OK(pkv_vulkan_cmd_append(rec, cb, rs, l, 1, a.buf, OFF_SK(l), TOK_FLOATS * 4, a.buf, OFF_SV(l),
                                        TOK_FLOATS * 4, PKV_F32));
            pkv_attention_params p = attn(&rs, l);
            p.q_dtype = dt;
            TU_OK(pkv_vulkan_cmd_attention(rec, cb, &p, a.buf, OFF_Q(l), q_bytes, a.buf, OFF_OUT(l), Q_FLOATS * 4));
        }
        cmd_submit(&a, cb);
        for (uint32_t l = 0; l < L; l++) expect_same_attention(&a, at(&a, OFF_OUT(l)), want[l], Q_FLOATS);
        uint32_t flags, first;
        TU_OK(pkv_vulkan_read_status(rec, &flags, &first, 1));
        assert_int_equal(flags, step ? PKV_VULKAN_STATUS_Q_NONFINITE : 0);
        assert_int_equal(first, bad_l);
    }
    TU_OK(pkv_cache_free(sync));
    TU_OK(pkv_cache_free(rec));
    app_close(&a);
}

static void save_bytes(pkv_cache *c, const char *tag, uint8_t **bytes, size_t *n);

/* Decode batches whose row table is too large for the push constants (2 x sequences x kv heads > 20
 * rows): 8 sequences, whose table rides there as a rule when their windows follow one (vk_stage.c's
 * table_rule), and 18 (more than a rule holds: uploaded), of prompts of different lengths; recorded
 * batch appends (the fast path) against synchronous sequence-by-sequence appends through the general
 * planner, across a window flush: outputs bit for bit, saved caches byte for byte. */
static void large_decode_batches_equal_sequence_by_sequence(void **state)
{
    (void)state;
    app a;
    if (!app_open(&a)) return;
    enum { NBIG = 18, BSTEPS = 36 };
    const VkDeviceSize area = 64 * 1024; /* a layer's K, V, q and out of the step, in the prompt area */
    const uint32_t sizes[2] = {8, NBIG};
    pkv_vk *vk = pkv_vk_of(a.ctx->be);
    for (int t = 0; t < 2; t++) {
        const uint32_t nb = sizes[t];
        pkv_seq os[NBIG], bs[NBIG];
        pkv_cache *one = new_cache(&a, &os[0]), *bat = new_cache(&a, &bs[0]);
        one->general_appends = 1;
        for (uint32_t i = 1; i < nb; i++) TU_OK(pkv_seq_create(one, &os[i])), TU_OK(pkv_seq_create(bat, &bs[i]));
        fill_prompt(&a, 61 + t);
        VkCommandBuffer cb = cmd_begin(&a);
        for (uint32_t l = 0; l < L; l++)
            for (uint32_t i = 0; i < nb; i++) {
                const uint32_t n = PROMPT - i % 4;
                TU_OK(pkv_vulkan_append(one, os[i], l, n, a.buf, OFF_PK(l), n * TOK_FLOATS * 4, a.buf, OFF_PV(l),
                                        n * TOK_FLOATS * 4, PKV_F32));
                TU_OK(pkv_vulkan_cmd_append(bat, cb, bs[i], l, n, a.buf, OFF_PK(l), n * TOK_FLOATS * 4, a.buf, OFF_PV(l),
                                            n * TOK_FLOATS * 4, PKV_F32));
            }
        cmd_submit(&a, cb);
        static float want[L][NBIG * Q_FLOATS];
        const uint64_t rule0 = vk->row_tables[1], upload0 = vk->row_tables[2];
        pkv_attention_params p = pkv_attention_params_default();
        p.n_seqs = nb, p.n_q_heads = QH;
        for (uint32_t step = 0; step < BSTEPS; step++) {
            tu_rng r = {700 + step};
            for (uint32_t l = 0; l < L; l++) {
                const VkDeviceSize kb = l * area, vb = kb + nb * TOK_FLOATS * 4, qb = vb + nb * TOK_FLOATS * 4,
                                   ob = qb + nb * Q_FLOATS * 4;
                tu_random(&r, 2 * nb * TOK_FLOATS, 1.0f, at(&a, kb));
                tu_random(&r, nb * Q_FLOATS, 1.0f, at(&a, qb));
                for (uint32_t i = 0; i < nb; i++)
                    TU_OK(pkv_vulkan_append(one, os[i], l, 1, a.buf, kb + i * TOK_FLOATS * 4, TOK_FLOATS * 4, a.buf,
                                            vb + i * TOK_FLOATS * 4, TOK_FLOATS * 4, PKV_F32));
                p.seqs = os, p.layer = l;
                TU_OK(pkv_vulkan_attention(one, &p, a.buf, qb, nb * Q_FLOATS * 4, a.buf, ob, nb * Q_FLOATS * 4));
                memcpy(want[l], at(&a, ob), nb * Q_FLOATS * 4);
                memset(at(&a, ob), 0xFF, nb * Q_FLOATS * 4);
            }
            cb = cmd_begin(&a);
            for (uint32_t l = 0; l < L; l++) {
                const VkDeviceSize kb = l * area, vb = kb + nb * TOK_FLOATS * 4, qb = vb + nb * TOK_FLOATS * 4,
                                   ob = qb + nb * Q_FLOATS * 4;
                TU_OK(pkv_vulkan_cmd_append_batch(bat, cb, bs, nb, l, 1, a.buf, kb, nb * TOK_FLOATS * 4, a.buf, vb,
                                                  nb * TOK_FLOATS * 4, PKV_F32));
                p.seqs = bs, p.layer = l;
                TU_OK(pkv_vulkan_cmd_attention(bat, cb, &p, a.buf, qb, nb * Q_FLOATS * 4, a.buf, ob, nb * Q_FLOATS * 4));
            }
            cmd_submit(&a, cb);
            for (uint32_t l = 0; l < L; l++)
                expect_same_attention(&a, at(&a, l * area + 2 * nb * TOK_FLOATS * 4 + nb * Q_FLOATS * 4), want[l],
                                      nb * Q_FLOATS);
        }
        /* which way the tables went: by rule at 8 (the windows of a sequence's kv heads lie at one
         * stride), uploaded at 18 */
        print_message("batch %u: %llu row tables by rule, %llu uploaded\n", nb,
                      (unsigned long long)(vk->row_tables[1] - rule0), (unsigned long long)(vk->row_tables[2] - upload0));
        if (nb <= 16) assert_true(vk->row_tables[1] > rule0);
        else assert_true(vk->row_tables[1] == rule0 && vk->row_tables[2] > upload0);
        uint8_t *fa, *fb;
        size_t na, nbytes;
        save_bytes(one, "one", &fa, &na);
        save_bytes(bat, "bat", &fb, &nbytes);
        assert_int_equal(na, nbytes);
        assert_memory_equal(fa, fb, na);
        free(fa), free(fb);
        TU_OK(pkv_cache_free(one));
        TU_OK(pkv_cache_free(bat));
    }
    app_close(&a);
}

static void save_bytes(pkv_cache *c, const char *tag, uint8_t **bytes, size_t *n)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/pkv_vkrec_%s_%d.pkv", tag, (int)getpid());
    TU_OK(pkv_cache_save(c, path));
    *bytes = tu_slurp(path, n);
    remove(path);
}

static void late_mining_from_device_tokens(void **state)
{
    (void)state;
    app a;
    if (!app_open(&a)) return;
    enum { HEAD = 5 }; /* fewer than the 8 patterns */
    const VkDeviceSize head = HEAD * TOK_FLOATS * 4, rest = (PROMPT - HEAD) * TOK_FLOATS * 4;
    pkv_seq ds, hs, rs;
    pkv_cache *dev = new_cache(&a, &ds), *host = new_cache(&a, &hs), *rec = new_cache(&a, &rs);
    fill_prompt(&a, 23);
    for (uint32_t l = 0; l < L; l++) {
        TU_OK(pkv_vulkan_append(dev, ds, l, HEAD, a.buf, OFF_PK(l), head, a.buf, OFF_PV(l), head, PKV_F32));
        TU_OK(pkv_vulkan_append(dev, ds, l, PROMPT - HEAD, a.buf, OFF_PK(l) + head, rest, a.buf, OFF_PV(l) + head, rest,
                                PKV_F32));
        TU_OK(pkv_append(host, hs, l, PROMPT, at(&a, OFF_PK(l)), at(&a, OFF_PV(l)), PKV_F32));
    }
    uint8_t *fa, *fb;
    size_t na, nb;
    save_bytes(dev, "dev", &fa, &na);
    save_bytes(host, "host", &fb, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(fa, fb, na);
    free(fa), free(fb);

    VkCommandBuffer cb = cmd_begin(&a);
    TU_OK(pkv_vulkan_cmd_append(rec, cb, rs, 0, HEAD, a.buf, OFF_PK(0), head, a.buf, OFF_PV(0), head, PKV_F32));
    cmd_submit(&a, cb);
    cb = cmd_begin(&a);
    assert_int_equal(pkv_vulkan_cmd_append(rec, cb, rs, 0, PROMPT - HEAD, a.buf, OFF_PK(0) + head, rest, a.buf,
                                           OFF_PV(0) + head, rest, PKV_F32), PKV_ERR_UNSUPPORTED);
    assert_non_null(strstr(pkv_last_error(), "mines now"));
    a.f.vkEndCommandBuffer(cb); /* not submitted (patternkv_vulkan.h) */
    a.f.vkFreeCommandBuffers(a.dev, a.pool, 1, &cb);
    uint32_t len;
    TU_OK(pkv_seq_length(rec, rs, 0, &len));
    assert_int_equal(len, HEAD);
    TU_OK(pkv_vulkan_append(rec, rs, 0, PROMPT - HEAD, a.buf, OFF_PK(0) + head, rest, a.buf, OFF_PV(0) + head, rest, PKV_F32));
    TU_OK(pkv_seq_length(rec, rs, 0, &len));
    assert_int_equal(len, PROMPT);
    TU_OK(pkv_cache_free(dev));
    TU_OK(pkv_cache_free(host));
    TU_OK(pkv_cache_free(rec));
    app_close(&a);
}


/* Batch appends (pkv_vulkan_cmd_append_batch, pkv_vulkan_append_batch): the tokens of several sequences
 * of one layer in one call, K and V [n_seqs][n][H][d]. Per layer: the prompts of two sequences in one
 * recorded call (each mines its own banks), in two synchronous calls of 5 tokens then the rest (both
 * mine late from device tokens), then decode steps of three sequences (the third a fork) in one recorded
 * call per layer; against appending sequence by sequence (pkv_vulkan_append): the same outputs bit for
 * bit, the same saved cache byte for byte, and attention within 1e-4 of the fp64 reference over the
 * cache's dequantized K/V. A sequence given twice is refused before anything is recorded. */
enum { NB = 3 };
#define OFF_NK(l) OFF_PK(l) /* a step's K, V, q and out of the NB sequences, in the prompt area */
#define OFF_NV(l) (OFF_NK(l) + NB * TOK_FLOATS * 4)
#define OFF_NQ(l) (OFF_NV(l) + NB * TOK_FLOATS * 4)
#define OFF_NOUT(l) (OFF_NQ(l) + NB * Q_FLOATS * 4)

static void batch_append_equals_sequence_by_sequence(void **state)
{
    (void)state;
    app a;
    if (!app_open(&a)) return;
    enum { HEAD = 5 };
    pkv_seq os[NB], bs[NB], ls[NB];
    pkv_cache *one = new_cache(&a, &os[0]), *bat = new_cache(&a, &bs[0]), *lat = new_cache(&a, &ls[0]);
    one->general_appends = 1; /* its decode appends through the general planner, bat's through the fast path */
    TU_OK(pkv_seq_create(one, &os[1]));
    TU_OK(pkv_seq_create(bat, &bs[1]));
    TU_OK(pkv_seq_create(lat, &ls[1]));
    fill_prompt(&a, 41);
    /* sequence i's prompt K at kb + i * pb, V at vb + i * pb: layer l's prompt area, and layer l + 1's */
    const VkDeviceSize pb = PROMPT * TOK_FLOATS * 4, hb = HEAD * TOK_FLOATS * 4;
    VkCommandBuffer cb = cmd_begin(&a);
    for (uint32_t l = 0; l < L; l++) {
        const VkDeviceSize kb = OFF_PK(l), vb = OFF_PK((l + 1) % L);
        for (uint32_t i = 0; i < 2; i++)
            TU_OK(pkv_vulkan_append(one, os[i], l, PROMPT, a.buf, kb + i * pb, pb, a.buf, vb + i * pb, pb, PKV_F32));
        TU_OK(pkv_vulkan_cmd_append_batch(bat, cb, bs, 2, l, PROMPT, a.buf, kb, 2 * pb, a.buf, vb, 2 * pb, PKV_F32));
    }
    cmd_submit(&a, cb);
    float *saved = malloc(STEP0); /* the prompts, repacked below into layer 0's area: K/V of [2][HEAD], then of the rest */
    memcpy(saved, at(&a, 0), STEP0);
    for (uint32_t l = 0; l < L; l++)
        for (uint32_t part = 0; part < 2; part++) {
            const VkDeviceSize skip = part ? hb : 0, n = part ? pb - hb : hb;
            for (uint32_t i = 0; i < 2; i++) {
                memcpy((uint8_t *)at(&a, 0) + i * n, (uint8_t *)saved + OFF_PK(l) + i * pb + skip, n);
                memcpy((uint8_t *)at(&a, 0) + 2 * pb + i * n, (uint8_t *)saved + OFF_PK((l + 1) % L) + i * pb + skip, n);
            }
            TU_OK(pkv_vulkan_append_batch(lat, ls, 2, l, part ? PROMPT - HEAD : HEAD, a.buf, 0, 2 * n, a.buf, 2 * pb, 2 * n,
                                          PKV_F32));
        }
    memcpy(at(&a, 0), saved, STEP0);
    free(saved);
    uint8_t *fa, *fb;
    size_t na, nb;
    save_bytes(one, "one", &fa, &na);
    save_bytes(lat, "lat", &fb, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(fa, fb, na);
    free(fa), free(fb);
    TU_OK(pkv_seq_fork(one, os[0], &os[2]));
    TU_OK(pkv_seq_fork(bat, bs[0], &bs[2]));
    static float want[L][NB * Q_FLOATS];
    pkv_attention_params p = pkv_attention_params_default();
    p.n_seqs = NB, p.n_q_heads = QH;
    for (uint32_t step = 0; step < STEPS; step++) { /* crosses a window flush of every layer */
        tu_rng r = {500 + step};
        for (uint32_t l = 0; l < L; l++) {
            tu_random(&r, 2 * NB * TOK_FLOATS, 1.0f, at(&a, OFF_NK(l)));
            tu_random(&r, NB * Q_FLOATS, 1.0f, at(&a, OFF_NQ(l)));
            for (uint32_t i = 0; i < NB; i++)
                TU_OK(pkv_vulkan_append(one, os[i], l, 1, a.buf, OFF_NK(l) + i * TOK_FLOATS * 4, TOK_FLOATS * 4, a.buf,
                                        OFF_NV(l) + i * TOK_FLOATS * 4, TOK_FLOATS * 4, PKV_F32));
            p.seqs = os, p.layer = l;
            TU_OK(pkv_vulkan_attention(one, &p, a.buf, OFF_NQ(l), NB * Q_FLOATS * 4, a.buf, OFF_NOUT(l), NB * Q_FLOATS * 4));
            memcpy(want[l], at(&a, OFF_NOUT(l)), sizeof want[l]);
            memset(at(&a, OFF_NOUT(l)), 0xFF, sizeof want[l]);
        }
        cb = cmd_begin(&a);
        for (uint32_t l = 0; l < L; l++) {
            TU_OK(pkv_vulkan_cmd_append_batch(bat, cb, bs, NB, l, 1, a.buf, OFF_NK(l), NB * TOK_FLOATS * 4, a.buf,
                                              OFF_NV(l), NB * TOK_FLOATS * 4, PKV_F32));
            p.seqs = bs, p.layer = l;
            TU_OK(pkv_vulkan_cmd_attention(bat, cb, &p, a.buf, OFF_NQ(l), NB * Q_FLOATS * 4, a.buf, OFF_NOUT(l),
                                           NB * Q_FLOATS * 4));
        }
        cmd_submit(&a, cb);
        for (uint32_t l = 0; l < L; l++) expect_same_attention(&a, at(&a, OFF_NOUT(l)), want[l], NB * Q_FLOATS);
    }
    uint32_t flags = 1, first = 0, T[NB];
    TU_OK(pkv_vulkan_read_status(bat, &flags, &first, 0));
    assert_int_equal(flags, 0);
    save_bytes(one, "one", &fa, &na);
    save_bytes(bat, "bat", &fb, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(fa, fb, na);
    free(fa), free(fb);
    /* the last step's attention of the last layer against fp64 over the dequantized cache */
    float *k[NB], *v[NB];
    for (uint32_t i = 0; i < NB; i++) {
        TU_OK(pkv_seq_length(bat, bs[i], L - 1, &T[i]));
        assert_int_equal(T[i], PROMPT + STEPS);
        k[i] = malloc((size_t)T[i] * TOK_FLOATS * 4), v[i] = malloc((size_t)T[i] * TOK_FLOATS * 4);
        TU_OK(pkv_read_kv(bat, bs[i], L - 1, k[i], v[i]));
    }
    const double err = tu_check_attention((const float *const *)k, (const float *const *)v, T, NB, 1, QH, H, D,
                                          at(&a, OFF_NQ(L - 1)), at(&a, OFF_NOUT(L - 1)));
    print_message("batch append: attention rel err vs fp64 %.2e\n", err);
    assert_true(err < 1e-4);
    for (uint32_t i = 0; i < NB; i++) free(k[i]), free(v[i]);
    /* a sequence twice, or none: refused, nothing recorded */
    const pkv_seq twice[2] = {bs[1], bs[1]};
    cb = cmd_begin(&a);
    assert_int_equal(pkv_vulkan_cmd_append_batch(bat, cb, twice, 2, 0, 1, a.buf, OFF_NK(0), 2 * TOK_FLOATS * 4, a.buf,
                                                 OFF_NV(0), 2 * TOK_FLOATS * 4, PKV_F32), PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_vulkan_cmd_append_batch(bat, cb, bs, 0, 0, 1, a.buf, OFF_NK(0), 2 * TOK_FLOATS * 4, a.buf,
                                                 OFF_NV(0), 2 * TOK_FLOATS * 4, PKV_F32), PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_vulkan_cmd_append_batch(bat, cb, bs, NB, 0, 1, a.buf, OFF_NK(0), NB * TOK_FLOATS * 4 - 4, a.buf,
                                                 OFF_NV(0), NB * TOK_FLOATS * 4, PKV_F32), PKV_ERR_INVALID_ARGUMENT);
    cmd_submit(&a, cb); /* empty */
    TU_OK(pkv_seq_length(bat, bs[1], 0, &T[0]));
    assert_int_equal(T[0], PROMPT + STEPS);
    TU_OK(pkv_cache_free(one));
    TU_OK(pkv_cache_free(bat));
    TU_OK(pkv_cache_free(lat));
    app_close(&a);
}

/* After a prompt of two whole groups (an empty window), one recorded append of 50 tokens (window 32):
 * its first round fills the window and flushes it, its second writes the rest; the rows of both rounds
 * come from the staged K/V (vk_stage.c converts straight into the window rows only when one window op
 * takes every row). The same cache byte for byte as the synchronous append. Into a partly filled
 * window such an append is refused when recorded (the window's rows would be read back first), and
 * changes nothing. */
static void long_recorded_append_equals_synchronous(void **state)
{
    (void)state;
    app a;
    if (!app_open(&a)) return;
    enum { PRE = 64, LONG = 50 };
    pkv_seq ss, rs;
    pkv_cache *sync = new_cache(&a, &ss), *rec = new_cache(&a, &rs);
    fill_prompt(&a, 61);
    const VkDeviceSize pb = PRE * TOK_FLOATS * 4, lb = LONG * TOK_FLOATS * 4;
    for (uint32_t l = 0; l < L; l++) {
        TU_OK(pkv_vulkan_append(sync, ss, l, PRE, a.buf, OFF_PK(l), pb, a.buf, OFF_PV(l), pb, PKV_F32));
        TU_OK(pkv_vulkan_append(rec, rs, l, PRE, a.buf, OFF_PK(l), pb, a.buf, OFF_PV(l), pb, PKV_F32));
    }
    VkCommandBuffer cb = cmd_begin(&a);
    for (uint32_t l = 0; l < L; l++) { /* another layer's prompt tokens as the new ones */
        const uint32_t o = (l + 1) % L;
        TU_OK(pkv_vulkan_append(sync, ss, l, LONG, a.buf, OFF_PK(o), lb, a.buf, OFF_PV(o), lb, PKV_F32));
        TU_OK(pkv_vulkan_cmd_append(rec, cb, rs, l, LONG, a.buf, OFF_PK(o), lb, a.buf, OFF_PV(o), lb, PKV_F32));
    }
    cmd_submit(&a, cb);
    uint32_t flags = 1, len = 0;
    TU_OK(pkv_vulkan_read_status(rec, &flags, NULL, 0));
    assert_int_equal(flags, 0);
    TU_OK(pkv_seq_length(rec, rs, 0, &len));
    assert_int_equal(len, PRE + LONG);
    tu_expect_same_saved(sync, rec);
    /* now into a partly filled window (18 of 32): refused, nothing changed */
    cb = cmd_begin(&a);
    assert_int_equal(pkv_vulkan_cmd_append(rec, cb, rs, 0, LONG, a.buf, OFF_PK(1), lb, a.buf, OFF_PV(1), lb, PKV_F32),
                     PKV_ERR_UNSUPPORTED);
    cmd_submit(&a, cb);
    TU_OK(pkv_seq_length(rec, rs, 0, &len));
    assert_int_equal(len, PRE + LONG);
    tu_expect_same_saved(sync, rec);
    TU_OK(pkv_cache_free(sync));
    TU_OK(pkv_cache_free(rec));
    app_close(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(late_mining_from_device_tokens),
        cmocka_unit_test(recorded_equals_synchronous),
        cmocka_unit_test(nan_in_one_layer_shows_in_the_status_word),
        cmocka_unit_test(recorded_q_conversion_equals_synchronous),
        cmocka_unit_test(batch_of_two_equals_synchronous),
        cmocka_unit_test(batch_append_equals_sequence_by_sequence),
        cmocka_unit_test(large_decode_batches_equal_sequence_by_sequence),
        cmocka_unit_test(long_recorded_append_equals_synchronous),
    };
    return tu_run_tests(tests, NULL, NULL);
}
