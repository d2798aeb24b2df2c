/* llama2.c version-2 (Q8_0) checkpoints in bench/model's reader: a small random model written here in
 * both versions (the Q8_0 one quantized as llama2.c's export.py does), loaded, and every weight compared
 * with the fp64 dequantization q * scale and with the fp32 original (|w' - w| <= scale / 2); the
 * forward pass of both within the quantization's reach; broken version-2 files; and the committed
 * second model (data/tinyllm2/model.bin, Q8_0) loading with its shape. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llama2.h"
#include "testutil.h"

enum { DIM = 64, HIDDEN = 96, LAYERS = 2, HEADS = 4, KV = 2, VOCAB = 256, SEQ = 32, GS = 32 };
#define HD (DIM / HEADS)

static char dir[] = "/tmp/pkv_test_q8_XXXXXX";
static char v0_path[128], v2_path[128], bad_path[128];
static size_t n_total;     /* floats after the version-0 header */
static float *w0;          /* those floats */
static size_t v2_bytes;

/* the tensors of the version-0 file order: offset and length of each, norms flagged */
typedef struct { size_t off, n; int norm; } span;
static span spans[3 + 7 * LAYERS + 1];
static int n_spans;

static void layout(void)
{
    const size_t D = DIM, F = HIDDEN, V = VOCAB, qd = DIM, kvd = KV * HD;
    size_t off = 0, emb = 0, att, wq, wk, wv, wo, ffn, w1, w2, w3, fin;
    off += V * D, att = off, off += LAYERS * D, wq = off, off += LAYERS * D * qd, wk = off, off += LAYERS * D * kvd;
    wv = off, off += LAYERS * D * kvd, wo = off, off += LAYERS * qd * D, ffn = off, off += LAYERS * D;
    w1 = off, off += LAYERS * D * F, w2 = off, off += LAYERS * F * D, w3 = off, off += LAYERS * D * F;
    fin = off, off += D;
    n_total = off + (size_t)SEQ * HD; /* the RoPE tables */
    /* the version-2 order: norms (att, ffn, final) then the quantized tensors */
    n_spans = 0;
    spans[n_spans++] = (span){att, LAYERS * D, 1};
    spans[n_spans++] = (span){ffn, LAYERS * D, 1};
    spans[n_spans++] = (span){fin, D, 1};
    spans[n_spans++] = (span){emb, V * D, 0};
    const size_t base[7] = {wq, wk, wv, wo, w1, w2, w3}, per[7] = {D * qd, D * kvd, D * kvd, qd * D, D * F, F * D, D * F};
    for (int t = 0; t < 7; t++)
        for (int l = 0; l < LAYERS; l++) spans[n_spans++] = (span){base[t] + (size_t)l * per[t], per[t], 0};
}

static void write_v2(const char *path, int version, int gs, size_t cut)
{
    unsigned char hdr[256] = {0};
    const uint32_t magic = 0x616b3432u;
    const int32_t ver = version, cfg[7] = {DIM, HIDDEN, LAYERS, HEADS, KV, VOCAB, SEQ}, g = gs;
    memcpy(hdr, &magic, 4), memcpy(hdr + 4, &ver, 4), memcpy(hdr + 8, cfg, 28);
    hdr[36] = 1;
    memcpy(hdr + 37, &g, 4);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    size_t written = fwrite(hdr, 1, sizeof hdr, f);
    for (int s = 0; s < n_spans; s++) {
        const float *w = w0 + spans[s].off;
        if (spans[s].norm) {
            written += 4 * fwrite(w, 4, spans[s].n, f);
            continue;
        }
        const size_t ng = spans[s].n / GS;
        int8_t *q = malloc(spans[s].n);
        float *sc = malloc(ng * sizeof *sc);
        for (size_t k = 0; k < ng; k++) {
            float wmax = 0.0f;
            for (int i = 0; i < GS; i++) wmax = fmaxf(wmax, fabsf(w[k * GS + i]));
            sc[k] = wmax / 127.0f;
            for (int i = 0; i < GS; i++) q[k * GS + i] = (int8_t)nearbyintf(w[k * GS + i] / sc[k]);
        }
        written += fwrite(q, 1, spans[s].n, f) + 4 * fwrite(sc, 4, ng, f);
        free(q), free(sc);
    }
    assert_int_equal(fclose(f), 0);
    v2_bytes = written;
    if (cut) assert_int_equal(truncate(path, (off_t)(written - cut)), 0);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir)) return -1;
    snprintf(v0_path, sizeof v0_path, "%s/v0.bin", dir);
    snprintf(v2_path, sizeof v2_path, "%s/v2.bin", dir);
    snprintf(bad_path, sizeof bad_path, "%s/bad.bin", dir);
    layout();
    w0 = malloc(n_total * sizeof *w0);
    if (!w0) return -1;
    tu_rng r = {2024};
    for (size_t i = 0; i < n_total; i++) w0[i] = (float)(0.2 * tu_normal(&r));
    for (int s = 0; s < 3; s++)
        for (size_t i = 0; i < spans[s].n; i++) w0[spans[s].off + i] = (float)(1.0 + 0.1 * tu_normal(&r));
    const int32_t hdr[7] = {DIM, HIDDEN, LAYERS, HEADS, KV, VOCAB, SEQ};
    FILE *f = fopen(v0_path, "wb");
    if (!f) return -1;
    fwrite(hdr, 4, 7, f);
    fwrite(w0, sizeof *w0, n_total, f);
    fclose(f);
    write_v2(v2_path, 2, GS, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remove(v0_path), remove(v2_path), remove(bad_path);
    rmdir(dir);
    free(w0);
    return 0;
}

/* dequantized weights: exactly q * scale, within scale / 2 of the original; norms unchanged */
static void test_q8_weights_match_fp64_dequantization(void **state)
{
    (void)state;
    char err[512] = "";
    llama2_model a, b;
    assert_int_equal(llama2_load(v0_path, &a, err, sizeof err), 0);
    assert_int_equal(llama2_load(v2_path, &b, err, sizeof err), 0);
    assert_memory_equal(&a.cfg, &b.cfg, sizeof a.cfg);
    assert_int_equal(a.n_params, b.n_params);
    const float *pa[] = {a.embedding, a.rms_att, a.wq, a.wk, a.wv, a.wo, a.rms_ffn, a.w1, a.w2, a.w3, a.rms_final, a.wcls};
    const float *pb[] = {b.embedding, b.rms_att, b.wq, b.wk, b.wv, b.wo, b.rms_ffn, b.w1, b.w2, b.w3, b.rms_final, b.wcls};
    for (size_t t = 0; t < sizeof pa / sizeof pa[0]; t++) assert_int_equal(pa[t] - a.data, pb[t] - b.data);
    assert_ptr_equal(b.wcls, b.embedding);
    for (int s = 0; s < n_spans; s++) {
        const float *x = w0 + spans[s].off, *y = b.data + spans[s].off;
        for (size_t k = 0; k < spans[s].n / GS; k++) {
            double wmax = 0.0;
            for (int i = 0; i < GS; i++) wmax = fmax(wmax, fabs((double)x[k * GS + i]));
            const double scale = (double)(float)(wmax / 127.0);
            for (int i = 0; i < GS; i++) {
                const double w = x[k * GS + i], got = y[k * GS + i];
                if (spans[s].norm) {
                    assert_true(got == w);
                    continue;
                }
                const double q = nearbyint(w / scale);
                assert_true(fabs(got - q * scale) <= 1e-7 * scale * 127.0);
                assert_true(fabs(got - w) <= 0.5 * scale * (1.0 + 1e-6));
            }
        }
    }
    llama2_free(&a), llama2_free(&b);
}

/* exact attention over everything stored so far (one sequence) */
typedef struct { float k[SEQ][KV][HD], v[SEQ][KV][HD]; } kv_store;

static int attend(void *user, int layer, int pos0, int n, const float *q, const float *k, const float *v, float *out)
{
    static kv_store st[LAYERS];
    kv_store *s = &st[layer];
    (void)user;
    memcpy(s->k[pos0], k, (size_t)n * KV * HD * sizeof *k);
    memcpy(s->v[pos0], v, (size_t)n * KV * HD * sizeof *v);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < HEADS; h++) {
            const int g = h / (HEADS / KV), len = pos0 + t + 1;
            double sc[SEQ], mx = -INFINITY, sum = 0.0;
            for (int j = 0; j < len; j++) {
                double d = 0.0;
                for (int i = 0; i < HD; i++) d += (double)q[((size_t)t * HEADS + h) * HD + i] * s->k[j][g][i];
                sc[j] = d / sqrt(HD), mx = fmax(mx, sc[j]);
            }
            for (int j = 0; j < len; j++) sum += sc[j] = exp(sc[j] - mx);
            for (int i = 0; i < HD; i++) {
                double o = 0.0;
                for (int j = 0; j < len; j++) o += sc[j] * s->v[j][g][i];
                out[((size_t)t * HEADS + h) * HD + i] = (float)(o / sum);
            }
        }
    return 0;
}

static void test_q8_forward_close_to_fp32(void **state)
{
    (void)state;
    char err[512] = "";
    llama2_model m[2];
    assert_int_equal(llama2_load(v0_path, &m[0], err, sizeof err), 0);
    assert_int_equal(llama2_load(v2_path, &m[1], err, sizeof err), 0);
    int tokens[SEQ];
    tu_rng r = {7};
    for (int i = 0; i < SEQ; i++) tokens[i] = (int)(tu_uniform(&r) * VOCAB);
    float *logits[2];
    for (int k = 0; k < 2; k++) {
        llama2_state s;
        assert_int_equal(llama2_state_init(&s, &m[k].cfg, SEQ), 0);
        assert_int_equal(llama2_forward(&m[k], &s, tokens, 0, SEQ, attend, NULL), 0);
        logits[k] = malloc((size_t)SEQ * VOCAB * sizeof(float));
        memcpy(logits[k], s.logits, (size_t)SEQ * VOCAB * sizeof(float));
        llama2_state_free(&s);
    }
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < (size_t)SEQ * VOCAB; i++) {
        const double d = (double)logits[1][i] - logits[0][i];
        num += d * d, den += (double)logits[0][i] * logits[0][i];
    }
    /* 8-bit weights: a relative logit error of the order of 1/127 per layer */
    assert_true(sqrt(num / den) < 0.05);
    assert_true(sqrt(num / den) > 0.0);
    free(logits[0]), free(logits[1]);
    llama2_free(&m[0]), llama2_free(&m[1]);
}

static void test_bad_q8_files_fail_cleanly(void **state)
{
    (void)state;
    char err[512] = "";
    llama2_model m;
    write_v2(bad_path, 2, GS, 1); /* one byte short */
    assert_int_equal(llama2_load(bad_path, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "version-2 header implies"));
    write_v2(bad_path, 3, GS, 0);
    assert_int_equal(llama2_load(bad_path, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "version 3"));
    write_v2(bad_path, 2, 48, 0); /* 48 does not divide dim 64 */
    assert_int_equal(llama2_load(bad_path, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "group size 48"));
    write_v2(bad_path, 2, 0, 0);
    assert_int_equal(llama2_load(bad_path, &m, err, sizeof err), -1);
    /* a header only */
    assert_int_equal(truncate(bad_path, 100), 0);
    assert_int_equal(llama2_load(bad_path, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "too short"));
    /* a NaN scale */
    write_v2(bad_path, 2, GS, 0);
    FILE *f = fopen(bad_path, "r+b");
    assert_non_null(f);
    const float nan = NAN;
    const long first_scale = 256 + 4 * (2 * LAYERS * DIM + DIM) + VOCAB * DIM;
    assert_int_equal(fseek(f, first_scale, SEEK_SET), 0);
    assert_int_equal(fwrite(&nan, 4, 1, f), 1);
    fclose(f);
    assert_int_equal(llama2_load(bad_path, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "NaN"));
}

/* the committed second model: Q8_0, its shape and size */
static void test_committed_second_model_loads(void **state)
{
    (void)state;
    char err[512] = "";
    llama2_model m;
    assert_int_equal(llama2_load(PKV_MODEL2_PATH, &m, err, sizeof err), 0);
    const llama2_config *c = &m.cfg;
    assert_int_equal(c->dim, 512), assert_int_equal(c->hidden_dim, 960), assert_int_equal(c->n_layers, 4);
    assert_int_equal(c->n_heads, 4), assert_int_equal(c->n_kv_heads, 2), assert_int_equal(c->head_dim, 128);
    assert_int_equal(c->vocab_size, 256), assert_int_equal(c->seq_len, 4096), assert_true(c->shared_classifier);
    assert_int_equal(m.n_params, 9179648);
    llama2_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q8_weights_match_fp64_dequantization),
        cmocka_unit_test(test_q8_forward_close_to_fp32),
        cmocka_unit_test(test_bad_q8_files_fail_cleanly),
        cmocka_unit_test(test_committed_second_model_loads),
    };
    return tu_run_tests(tests, setup, teardown);
}
