/* The C forward pass of the llama2.c checkpoint (bench/model/llama2.c) against PyTorch: the fixture holds
 * the post-RoPE q, k, v that tools/dump_kv.py took from the PyTorch model over the held-out text. The C
 * pass, with exact fp64 attention here, must produce the same vectors at every layer and position
 * (up to the fixture's fp16 rounding), which checks the weight order, RMSNorm, RoPE's pairing and
 * angles, the grouped-query head mapping, SwiGLU and the residual stream. And bad checkpoints fail
 * cleanly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama2.h"
#include "test_model_fixture.h"
#include "testutil.h"

#define POSITIONS 192

typedef struct exact_attn {
    const llama2_config *cfg;
    float *k, *v;          /* [layers][seq][kv_dim] */
    const fixture *fx;
    double max_err[3];     /* q, k, v: max ||c - torch|| / ||torch|| */
} exact_attn;

static double vec_rel_err(const float *a, const float *ref, int n)
{
    double e = 0, s = 0;
    for (int i = 0; i < n; i++) {
        e += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        s += (double)ref[i] * ref[i];
    }
    return sqrt(e / (s > 0 ? s : 1e-30));
}

static int attend_exact(void *user, int layer, int pos0, int n, const float *q, const float *k, const float *v,
                        float *out)
{
    exact_attn *a = user;
    const llama2_config *c = a->cfg;
    const int hd = c->head_dim, kvd = c->n_kv_heads * hd, rep = c->n_heads / c->n_kv_heads;
    for (int i = 0; i < n; i++) {
        const int pos = pos0 + i;
        float *kc = a->k + ((size_t)layer * c->seq_len + pos) * kvd, *vc = a->v + ((size_t)layer * c->seq_len + pos) * kvd;
        memcpy(kc, k + (size_t)i * kvd, kvd * sizeof(float));
        memcpy(vc, v + (size_t)i * kvd, kvd * sizeof(float));
        for (int h = 0; h < c->n_kv_heads; h++) {
            double ek = vec_rel_err(kc + h * hd, fixture_row(a->fx, a->fx->k, a->fx->kv_heads, layer, h, pos), hd);
            double ev = vec_rel_err(vc + h * hd, fixture_row(a->fx, a->fx->v, a->fx->kv_heads, layer, h, pos), hd);
            if (ek > a->max_err[1]) a->max_err[1] = ek;
            if (ev > a->max_err[2]) a->max_err[2] = ev;
        }
        for (int h = 0; h < c->n_heads; h++) {
            const float *qh = q + (size_t)i * c->n_heads * hd + h * hd;
            double eq = vec_rel_err(qh, fixture_row(a->fx, a->fx->q, a->fx->q_heads, layer, h, pos), hd);
            if (eq > a->max_err[0]) a->max_err[0] = eq;
            const int kvh = h / rep;
            double *w = malloc(((size_t)pos + 1) * sizeof *w), mx = -INFINITY, sum = 0;
            assert_non_null(w);
            for (int t = 0; t <= pos; t++) {
                const float *kt = a->k + ((size_t)layer * c->seq_len + t) * kvd + kvh * hd;
                double dot = 0;
                for (int j = 0; j < hd; j++) dot += (double)qh[j] * kt[j];
                w[t] = dot / sqrt((double)hd);
                if (w[t] > mx) mx = w[t];
            }
            for (int t = 0; t <= pos; t++) sum += (w[t] = exp(w[t] - mx));
            for (int j = 0; j < hd; j++) {
                double o = 0;
                for (int t = 0; t <= pos; t++) o += w[t] * a->v[((size_t)layer * c->seq_len + t) * kvd + kvh * hd + j];
                out[(size_t)i * c->n_heads * hd + h * hd + j] = (float)(o / sum);
            }
            free(w);
        }
    }
    return 0;
}

static void run_and_compare(int chunk)
{
    llama2_model m;
    char err[512];
    fixture fx;
    assert_int_equal(llama2_load(PKV_MODEL_PATH, &m, err, sizeof err), 0);
    assert_int_equal(fixture_load(PKV_FIXTURE_PATH, &fx), 0);
    const llama2_config *c = &m.cfg;
    assert_int_equal(c->n_layers, (int)fx.layers);
    assert_int_equal(c->n_kv_heads, (int)fx.kv_heads);
    assert_int_equal(c->n_heads, (int)fx.q_heads);
    assert_int_equal(c->head_dim, (int)fx.head_dim);
    assert_true(c->shared_classifier);

    FILE *f = fopen(PKV_TEXT_PATH, "rb");
    assert_non_null(f);
    unsigned char text[POSITIONS];
    assert_int_equal(fread(text, 1, POSITIONS, f), POSITIONS);
    fclose(f);
    int tokens[POSITIONS];
    for (int i = 0; i < POSITIONS; i++) tokens[i] = text[i];

    exact_attn a = {.cfg = c, .fx = &fx};
    size_t cache = (size_t)c->n_layers * c->seq_len * c->n_kv_heads * c->head_dim;
    a.k = calloc(cache, sizeof(float));
    a.v = calloc(cache, sizeof(float));
    assert_non_null(a.k), assert_non_null(a.v);
    llama2_state st;
    assert_int_equal(llama2_state_init(&st, c, chunk), 0);
    for (int pos = 0; pos < POSITIONS; pos += chunk)
        assert_int_equal(llama2_forward(&m, &st, tokens + pos, pos, chunk, attend_exact, &a), 0);
    printf("  chunks of %d: max relative error vs PyTorch: q %.2e  k %.2e  v %.2e\n", chunk, a.max_err[0],
           a.max_err[1], a.max_err[2]);
    /* fp16 rounding of the fixture is 2^-11 relative per element; fp32 sums in another order add less */
    for (int i = 0; i < 3; i++) assert_true(a.max_err[i] < 1.5e-3);
    llama2_state_free(&st);
    free(a.k), free(a.v);
    fixture_free(&fx);
    llama2_free(&m);
}

static void test_forward_matches_pytorch_one_token_at_a_time(void **state)
{
    (void)state;
    run_and_compare(1);
}

static void test_forward_matches_pytorch_in_chunks(void **state)
{
    (void)state;
    run_and_compare(64);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void test_bad_checkpoints_fail_cleanly(void **state)
{
    (void)state;
    char err[512] = "", path[] = "/tmp/pkv_test_model_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    llama2_model m;
    /* missing file */
    assert_int_equal(llama2_load("/nonexistent/model.bin", &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open"));
    /* truncated: a real header with only part of the weights */
    FILE *f = fopen(PKV_MODEL_PATH, "rb");
    assert_non_null(f);
    char buf[4096];
    assert_int_equal(fread(buf, 1, sizeof buf, f), sizeof buf);
    fclose(f);
    write_file(path, buf, sizeof buf);
    assert_int_equal(llama2_load(path, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "truncated"));
    /* a header that cannot be a model: dim not divisible by n_heads */
    int32_t bad[7] = {250, 768, 4, 4, 2, 256, 4096};
    write_file(path, bad, sizeof bad);
    assert_int_equal(llama2_load(path, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a llama2.c checkpoint"));
    /* too short for a header */
    write_file(path, bad, 10);
    assert_int_equal(llama2_load(path, &m, err, sizeof err), -1);
    remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_pytorch_one_token_at_a_time),
        cmocka_unit_test(test_forward_matches_pytorch_in_chunks),
        cmocka_unit_test(test_bad_checkpoints_fail_cleanly),
    };
    return tu_run_tests(tests, NULL, NULL);
}
