/* Attention's block tables kept in device memory between recorded steps (src/vulkan/vk_tables.c):
 * a batch whose cache changes between the recorded decode steps gives the attention the fp64
 * reference gives on the cache's own dequantized K/V (pkv_read_kv), and the same bytes as the
 * synchronous call. Between steps: window flushes add blocks, one sequence's table outgrows its
 * device copy (more than 16 blocks), a fork joins the batch, a sequence is freed (its block slots
 * reused by a newly prompted one), and a sequence appended through the host path joins. */
#define _POSIX_C_SOURCE 200809L
#include "vk_record_app.h"

enum { MAXB = 4, LONG_PROMPT = 16 * 32 - 5, STEPS_T = 72 };
/* Per layer in the prompt area (free once a prompt is submitted): the batch's K [MAXB][H][D], then
 * V, the queries [MAXB][QH][D], the outputs. */
#define OFF_TK(l) OFF_PK(l)
#define OFF_TV(l) (OFF_TK(l) + MAXB * TOK_FLOATS * 4)
#define OFF_TQ(l) (OFF_TV(l) + MAXB * TOK_FLOATS * 4)
#define OFF_TOUT(l) (OFF_TQ(l) + MAXB * Q_FLOATS * 4)

/* A prompt of n host tokens for every layer through the host path (pkv_append). */
static void host_prompt(pkv_cache *c, pkv_seq s, uint32_t n, uint64_t seed)
{
    float *k = malloc((size_t)n * TOK_FLOATS * sizeof *k), *v = malloc((size_t)n * TOK_FLOATS * sizeof *v);
    assert_non_null(k), assert_non_null(v);
    tu_rng r = {seed};
    for (uint32_t l = 0; l < L; l++) {
        tu_structured_kv(&r, n, H, D, 4, 0.3f, k);
        tu_structured_kv(&r, n, H, D, 4, 0.3f, v);
        TU_OK(pkv_append(c, s, l, n, k, v, PKV_F32));
    }
    free(k), free(v);
}

/* A prompt of PROMPT device tokens for every layer, recorded and submitted. */
static void recorded_prompt(app *a, pkv_cache *c, pkv_seq s, uint64_t seed)
{
    fill_prompt(a, seed);
    VkCommandBuffer cb = cmd_begin(a);
    for (uint32_t l = 0; l < L; l++)
        TU_OK(pkv_vulkan_cmd_append(c, cb, s, l, PROMPT, a->buf, OFF_PK(l), PROMPT * TOK_FLOATS * 4, a->buf, OFF_PV(l),
                                    PROMPT * TOK_FLOATS * 4, PKV_F32));
    cmd_submit(a, cb);
}

/* One recorded decode step of the batch (every layer: one batch append, one attention), then per
 * layer: the fp64 reference on the cache's K/V, and the synchronous attention byte for byte. */
static void step_and_check(app *a, pkv_cache *c, pkv_seq *seqs, uint32_t n, uint64_t seed)
{
    tu_rng r = {seed};
    for (uint32_t l = 0; l < L; l++) {
        tu_random(&r, n * TOK_FLOATS, 1.0f, at(a, OFF_TK(l)));
        tu_random(&r, n * TOK_FLOATS, 1.0f, at(a, OFF_TV(l)));
        tu_random(&r, n * Q_FLOATS, 1.0f, at(a, OFF_TQ(l)));
    }
    pkv_attention_params p = pkv_attention_params_default();
    p.seqs = seqs, p.n_seqs = n, p.n_q_heads = QH;
    VkCommandBuffer cb = cmd_begin(a);
    for (uint32_t l = 0; l < L; l++) {
        TU_OK(pkv_vulkan_cmd_append_batch(c, cb, seqs, n, l, 1, a->buf, OFF_TK(l), n * TOK_FLOATS * 4, a->buf, OFF_TV(l),
                                          n * TOK_FLOATS * 4, PKV_F32));
        p.layer = l;
        TU_OK(pkv_vulkan_cmd_attention(c, cb, &p, a->buf, OFF_TQ(l), n * Q_FLOATS * 4, a->buf, OFF_TOUT(l),
                                       n * Q_FLOATS * 4));
    }
    cmd_submit(a, cb);
    static float got[MAXB * Q_FLOATS];
    for (uint32_t l = 0; l < L; l++) {
        memcpy(got, at(a, OFF_TOUT(l)), n * Q_FLOATS * 4);
        float *k[MAXB], *v[MAXB];
        uint32_t T[MAXB];
        for (uint32_t s = 0; s < n; s++) {
            TU_OK(pkv_seq_length(c, seqs[s], l, &T[s]));
            k[s] = malloc((size_t)T[s] * TOK_FLOATS * sizeof(float)), v[s] = malloc((size_t)T[s] * TOK_FLOATS * sizeof(float));
            assert_non_null(k[s]), assert_non_null(v[s]);
            TU_OK(pkv_read_kv(c, seqs[s], l, k[s], v[s]));
        }
        const double err = tu_check_attention((const float *const *)k, (const float *const *)v, T, n, 1, QH, H, D,
                                              at(a, OFF_TQ(l)), got);
        if (!(err < 1e-3)) fprintf(stderr, "seed %llu layer %u: relative error %g\n", (unsigned long long)seed, l, err);
        assert_true(err < 1e-3);
        for (uint32_t s = 0; s < n; s++) free(k[s]), free(v[s]);
        p.layer = l;
        TU_OK(pkv_vulkan_attention(c, &p, a->buf, OFF_TQ(l), n * Q_FLOATS * 4, a->buf, OFF_TOUT(l), n * Q_FLOATS * 4));
        assert_memory_equal(at(a, OFF_TOUT(l)), got, n * Q_FLOATS * 4);
    }
}

static void tables_follow_the_cache_between_steps(void **state)
{
    (void)state;
    app a;
    if (!app_open(&a)) return;
    pkv_seq seqs[MAXB], x;
    pkv_cache *c = new_cache(&a, &seqs[0]);
    TU_OK(pkv_prewarm(c, QH, 1));
    host_prompt(c, seqs[0], LONG_PROMPT, 5); /* 15 blocks: past 16 at step 5, past the first copy's 16 at 37 */
    uint32_t n = 1;
    for (uint32_t step = 0; step < STEPS_T; step++) {
        if (step == 8) { /* a fork joins: its own (empty) device copy */
            TU_OK(pkv_seq_fork(c, seqs[0], &seqs[n]));
            n++;
        }
        if (step == 16) { /* a new sequence with a recorded prompt */
            TU_OK(pkv_seq_create(c, &seqs[n]));
            recorded_prompt(&a, c, seqs[n], 31);
            n++;
        }
        if (step == 30) { /* the first sequence freed: its slots go back to the arenas */
            TU_OK(pkv_seq_free(c, seqs[0]));
            memmove(seqs, seqs + 1, (n - 1) * sizeof *seqs);
            n--;
        }
        if (step == 34) { /* a new sequence takes them: the others' tables must not see it */
            TU_OK(pkv_seq_create(c, &x));
            recorded_prompt(&a, c, x, 47);
            seqs[n++] = x;
        }
        if (step == 44) { /* one appended through the host path */
            TU_OK(pkv_seq_create(c, &x));
            host_prompt(c, x, 3 * 32 + 7, 61);
            seqs[n++] = x;
        }
        step_and_check(&a, c, seqs, n, 1000 + step);
    }
    uint32_t flags = 1, first = 0;
    TU_OK(pkv_vulkan_read_status(c, &flags, &first, 0));
    assert_int_equal(flags, 0);
    TU_OK(pkv_cache_free(c));
    app_close(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tables_follow_the_cache_between_steps),
    };
    return tu_run_tests(tests, NULL, NULL);
}
