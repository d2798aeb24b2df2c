/* Checkpoints with a vocabulary beyond the 256 bytes: llama2.c's tokenizer.bin and BPE encoder, a
 * separate classifier (negative vocab_size in the header), and texts longer than seq_len (several
 * sequences), through pkv eval-model on a small random model written here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "llama2.h"
#include "llama2_tokenizer.h"
#include "test_cli_json.h"
#include "testutil.h"

#define VOCAB 265

static char dir[] = "/tmp/pkv_test_tok_XXXXXX";
static char tok_path[128], model_path[128], text_path[128], json_path[128];

/* <unk> <s> </s>, the 256 byte tokens, then a few merges with their scores. */
static const char *piece(int i, char *buf)
{
    static const char *special[3] = {"<unk>", "<s>", "</s>"};
    static const char *merges[6] = {" ", "a", "b", "ab", " a", "abab"};
    if (i < 3) return special[i];
    if (i < 259) {
        sprintf(buf, "<0x%02X>", i - 3);
        return buf;
    }
    return merges[i - 259];
}

static float score(int i)
{
    static const float s[6] = {-10.0f, -10.0f, -10.0f, -1.0f, -2.0f, -0.5f};
    return i < 259 ? 0.0f : s[i - 259];
}

static void write_tokenizer(void)
{
    FILE *f = fopen(tok_path, "wb");
    assert_non_null(f);
    int32_t max_len = 8;
    fwrite(&max_len, 4, 1, f);
    for (int i = 0; i < VOCAB; i++) {
        char buf[16];
        const char *p = piece(i, buf);
        float s = score(i);
        int32_t len = (int32_t)strlen(p);
        fwrite(&s, 4, 1, f);
        fwrite(&len, 4, 1, f);
        fwrite(p, 1, (size_t)len, f);
    }
    assert_int_equal(fclose(f), 0);
}

/* A random 1-layer model, dim 64, one head, seq_len 64, separate classifier. */
static void write_model(void)
{
    const int dim = 64, hidden = 96, layers = 1, heads = 1, kv = 1, seq = 64, hd = 64;
    int32_t header[7] = {dim, hidden, layers, heads, kv, -VOCAB, seq};
    size_t n = (size_t)VOCAB * dim + layers * ((size_t)dim + 4 * (size_t)dim * dim + dim + 3 * (size_t)dim * hidden) +
               dim + (size_t)seq * hd + (size_t)VOCAB * dim;
    float *w = malloc(n * sizeof *w);
    assert_non_null(w);
    tu_rng r = {12345};
    for (size_t i = 0; i < n; i++) w[i] = (float)(0.1 * (2.0 * tu_uniform(&r) - 1.0));
    /* the RMSNorm weights: ones, at their places in the file order */
    size_t att = (size_t)VOCAB * dim, ffn = att + dim + 4 * (size_t)dim * dim, fin = ffn + dim + 3 * (size_t)dim * hidden;
    for (int i = 0; i < dim; i++) w[att + i] = w[ffn + i] = w[fin + i] = 1.0f;
    FILE *f = fopen(model_path, "wb");
    assert_non_null(f);
    fwrite(header, 4, 7, f);
    assert_int_equal(fwrite(w, sizeof *w, n, f), n);
    assert_int_equal(fclose(f), 0);
    free(w);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir)) return -1;
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.bin", dir);
    snprintf(model_path, sizeof model_path, "%s/model.bin", dir);
    snprintf(text_path, sizeof text_path, "%s/text.txt", dir);
    snprintf(json_path, sizeof json_path, "%s/report.json", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remove(tok_path), remove(model_path), remove(text_path), remove(json_path);
    rmdir(dir);
    return 0;
}

static void test_bpe_encode(void **state)
{
    (void)state;
    write_tokenizer();
    llama2_tokenizer t;
    char err[256];
    assert_int_equal(llama2_tokenizer_load(tok_path, VOCAB, &t, err, sizeof err), 0);
    int tokens[32];
    /* BOS, the leading space, then a,b,a,b -> ab,ab (score -1 beats " a" at -2) -> abab (-0.5) */
    int n = llama2_encode(&t, "abab", 4, 1, tokens);
    assert_int_equal(n, 3);
    assert_int_equal(tokens[0], 1);
    assert_int_equal(tokens[1], 259);
    assert_int_equal(tokens[2], 264);
    /* no piece for the two UTF-8 bytes of e-acute: byte fallback, 3 + byte */
    n = llama2_encode(&t, "ab\xc3\xa9", 4, 0, tokens);
    assert_int_equal(n, 3);
    assert_int_equal(tokens[0], 262);
    assert_int_equal(tokens[1], 3 + 0xC3);
    assert_int_equal(tokens[2], 3 + 0xA9);
    assert_int_equal(llama2_token_bytes(&t, 262), 2);
    assert_int_equal(llama2_token_bytes(&t, 3 + 0xC3), 1);
    assert_int_equal(llama2_token_bytes(&t, 264), 4);
    llama2_tokenizer_free(&t);
    /* a truncated tokenizer is refused */
    FILE *f = fopen(tok_path, "r+b");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), 100), 0);
    fclose(f);
    assert_int_equal(llama2_tokenizer_load(tok_path, VOCAB, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "truncated"));
}

static void test_eval_with_tokenizer_and_separate_classifier(void **state)
{
    (void)state;
    write_tokenizer();
    write_model();
    FILE *f = fopen(text_path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 80; i++) fputs(i % 2 ? "abab ba\n" : "b abab a\n", f);
    fclose(f);

    llama2_model m;
    char err[256];
    assert_int_equal(llama2_load(model_path, &m, err, sizeof err), 0);
    assert_int_equal(m.cfg.vocab_size, VOCAB);
    assert_false(m.cfg.shared_classifier);
    assert_true(m.wcls != m.embedding);
    llama2_free(&m);

    /* without a tokenizer next to it, a vocabulary of 265 cannot be read */
    char other[160];
    snprintf(other, sizeof other, "%s/missing.bin", dir);
    const char *no_tok[] = {"eval-model", "--model", model_path, "--text", text_path, "--tokenizer", other,
                            "--backend", "cpu", "--no-progress"};
    assert_int_equal(pkv_cmd_eval_model(10, (char **)no_tok), 1);

    /* 100 positions over sequences of at most 64 (seq_len): two sequences; tokenizer.bin found beside the model */
    const char *argv[] = {"eval-model", "--model", model_path, "--text", text_path, "--backend", "cpu",
                          "--tokens", "100", "--group-size", "32", "--prefill", "40", "--modes", "fp16,pattern4",
                          "--no-progress", "--json", json_path};
    assert_int_equal(pkv_cmd_eval_model(18, (char **)argv), 0);
    char *text = tj_read_file(json_path);
    assert_non_null(text);
    tj_doc doc = {0};
    assert_int_equal(tj_parse(text, &doc), 0);
    free(text);
    assert_int_equal(tj_find(&doc, "model.vocab_size")->number, VOCAB);
    assert_int_equal(tj_find(&doc, "tokens")->number, 100);
    for (int i = 0; i < 2; i++) {
        char p[64];
        snprintf(p, sizeof p, "results[%d].perplexity", i);
        double ppl = tj_find(&doc, p)->number;
        snprintf(p, sizeof p, "results[%d].bits_per_byte", i);
        double bpb = tj_find(&doc, p)->number;
        /* small random weights: close to a uniform guess over 265 tokens */
        assert_true(ppl > 150.0 && ppl < 450.0);
        /* most tokens stand for several bytes, so bits per byte is below bits per token */
        assert_true(bpb > 0.5 && bpb < log2(ppl));
    }
    tj_free(&doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bpe_encode),
        cmocka_unit_test(test_eval_with_tokenizer_and_separate_classifier),
    };
    return tu_run_tests(tests, setup, teardown);
}
