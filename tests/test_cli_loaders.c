/* The .npy and .safetensors readers and the --kv loader: good files give back exactly the values
 * written (fresh random data each run), damaged ones (bad magic, wrong dtype, wrong rank,
 * truncated, NaN) give a clear error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <time.h>

#include "kv_data.h"
#include "tensor.h"
#include "test_cli_files.h"
#include "test_cli_util.h"

static char dir[64];
static unsigned seed;

static const char *tmp(const char *name)
{
    static char buf[8][128];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Values k/256, exactly representable in fp16 and fp32. */
static void fill(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)((rand() % 4097) - 2048) / 256.0f;
}

static void to_f16(const float *x, uint16_t *h, size_t n) { assert_int_equal(pkv_f32_to_f16_array(x, h, n), PKV_OK); }

static void expect_error(int rc, const char *err, const char *want)
{
    if (rc != -1 || !strstr(err, want)) print_error("rc %d, error '%s', want '%s'\n", rc, err, want);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, want));
}

static void test_npy_good(void **state)
{
    (void)state;
    uint64_t shape[4] = {2, 3, 5, 8};
    size_t n = 2 * 3 * 5 * 8;
    float *x = malloc(n * sizeof *x);
    uint16_t *h = malloc(n * sizeof *h);
    fill(x, n);
    to_f16(x, h, n);
    assert_int_equal(tf_write_npy(tmp("a32.npy"), "<f4", 0, shape, 4, x, n * 4), 0);
    assert_int_equal(tf_write_npy(tmp("a16.npy"), "<f2", 0, shape, 4, h, n * 2), 0);
    char err[512] = "";
    cli_tensor t;
    assert_int_equal(cli_npy_load(tmp("a32.npy"), &t, err, sizeof err), 0);
    assert_int_equal(t.rank, 4);
    assert_memory_equal(t.shape, shape, sizeof shape);
    assert_int_equal(t.file_bits, 32);
    assert_memory_equal(t.data, x, n * sizeof *x);
    cli_tensor_free(&t);
    assert_int_equal(cli_npy_load(tmp("a16.npy"), &t, err, sizeof err), 0);
    assert_int_equal(t.file_bits, 16);
    assert_memory_equal(t.data, x, n * sizeof *x);
    cli_tensor_free(&t);
    free(x);
    free(h);
}

static void test_npy_bad(void **state)
{
    (void)state;
    uint64_t shape[4] = {1, 2, 4, 8};
    size_t n = 64;
    float x[64];
    fill(x, n);
    char err[512];
    cli_tensor t;

    assert_int_equal(tf_write_npy(tmp("f8.npy"), "<f8", 0, shape, 4, x, n * 4), 0);
    expect_error(cli_npy_load(tmp("f8.npy"), &t, err, sizeof err), err, "dtype '<f8' is not supported");
    assert_int_equal(tf_write_npy(tmp("i4.npy"), "<i4", 0, shape, 4, x, n * 4), 0);
    expect_error(cli_npy_load(tmp("i4.npy"), &t, err, sizeof err), err, "dtype '<i4' is not supported");
    assert_int_equal(tf_write_npy(tmp("be.npy"), ">f4", 0, shape, 4, x, n * 4), 0);
    expect_error(cli_npy_load(tmp("be.npy"), &t, err, sizeof err), err, "little-endian");
    assert_int_equal(tf_write_npy(tmp("fo.npy"), "<f4", 1, shape, 4, x, n * 4), 0);
    expect_error(cli_npy_load(tmp("fo.npy"), &t, err, sizeof err), err, "Fortran order");
    assert_int_equal(tf_write_npy(tmp("tr.npy"), "<f4", 0, shape, 4, x, n * 4 - 6), 0);
    expect_error(cli_npy_load(tmp("tr.npy"), &t, err, sizeof err), err, "truncated data");
    assert_int_equal(tf_write_npy(tmp("ex.npy"), "<f4", 0, shape, 3, x, n * 4), 0); /* 3-d shape, 4-d data */
    expect_error(cli_npy_load(tmp("ex.npy"), &t, err, sizeof err), err, "unexpected bytes after the data");
    uint64_t huge[4] = {1ull << 30, 1ull << 30, 16, 1}; /* 2^64 elements: wraps to 0 in 64 bits */
    assert_int_equal(tf_write_npy(tmp("huge.npy"), "<f4", 0, huge, 4, x, 0), 0);
    expect_error(cli_npy_load(tmp("huge.npy"), &t, err, sizeof err), err, "too large");
    float nan_x[64];
    memcpy(nan_x, x, sizeof x);
    nan_x[17] = NAN;
    assert_int_equal(tf_write_npy(tmp("nan.npy"), "<f4", 0, shape, 4, nan_x, n * 4), 0);
    expect_error(cli_npy_load(tmp("nan.npy"), &t, err, sizeof err), err, "element 17 is NaN or Inf");

    FILE *f = fopen(tmp("magic.npy"), "wb");
    fputs("PK\x03\x04 this is a zip file, not npy", f);
    fclose(f);
    expect_error(cli_npy_load(tmp("magic.npy"), &t, err, sizeof err), err, "bad magic");
    f = fopen(tmp("short.npy"), "wb");
    fwrite("\x93NUMPY\x01\x00\x76\x00{'descr'", 1, 18, f); /* header length 118, file much shorter */
    fclose(f);
    expect_error(cli_npy_load(tmp("short.npy"), &t, err, sizeof err), err, "truncated .npy header");
    expect_error(cli_npy_load(tmp("missing.npy"), &t, err, sizeof err), err, "cannot open");
}

static void test_safetensors_good(void **state)
{
    (void)state;
    float k[2 * 2 * 6 * 8], v[2 * 2 * 6 * 8], q[2 * 4 * 6 * 8];
    uint16_t kh[2 * 2 * 6 * 8];
    fill(k, 192);
    fill(v, 192);
    fill(q, 384);
    to_f16(k, kh, 192);
    tf_tensor t[3] = {
        {"k", "F16", {2, 2, 6, 8}, 4, kh, sizeof kh},
        {"v", "F32", {2, 2, 6, 8}, 4, v, sizeof v},
        {"q", "F32", {2, 4, 6, 8}, 4, q, sizeof q},
    };
    assert_int_equal(tf_write_safetensors(tmp("good.safetensors"), t, 3, 0), 0);
    char err[512] = "";
    cli_tensor x;
    assert_int_equal(cli_safetensors_load(tmp("good.safetensors"), "k", &x, err, sizeof err), 0);
    assert_int_equal(x.file_bits, 16);
    assert_memory_equal(x.data, k, sizeof k);
    cli_tensor_free(&x);
    assert_int_equal(cli_safetensors_load(tmp("good.safetensors"), "q", &x, err, sizeof err), 0);
    assert_int_equal(x.rank, 4);
    assert_int_equal(x.shape[1], 4);
    assert_memory_equal(x.data, q, sizeof q);
    cli_tensor_free(&x);
    assert_int_equal(cli_safetensors_load(tmp("good.safetensors"), "w", &x, err, sizeof err), 1);

    /* through the --kv loader: q kept at 2 positions after a prefill of 3, the first layer only */
    kv_data d;
    assert_int_equal(kv_data_load(&d, tmp("good.safetensors"), 1, 0, 3, 0, 2, 1, err, sizeof err), 0);
    assert_int_equal(d.prefill, 3);
    assert_true(d.q_pos[0] >= 3 && d.q_pos[0] <= d.q_pos[1] && d.q_pos[1] < 6);
    assert_int_equal(d.n_layers, 1);
    assert_int_equal(d.n_kv_heads, 2);
    assert_int_equal(d.n_q_heads, 4);
    assert_int_equal(d.n_tokens, 6);
    assert_int_equal(d.q_tokens, 2);
    assert_false(d.q_from_keys);
    assert_memory_equal(kv_row(d.v, &d, 0, 1, 0), v + 1 * 6 * 8, 6 * 8 * sizeof(float));
    assert_memory_equal(kv_q_row(&d, 0, 3, 0), q + (3 * 6 + d.q_pos[0]) * 8, 8 * sizeof(float));
    assert_memory_equal(kv_q_row(&d, 0, 3, 1), q + (3 * 6 + d.q_pos[1]) * 8, 8 * sizeof(float));
    /* the append layout [t][head][d] */
    float kt[3 * 2 * 8], vt[3 * 2 * 8];
    kv_data_tokens(&d, 0, 4, 3, kt, vt); /* tokens 4, 5 and 0 (wraps around) */
    assert_memory_equal(kt + 1 * 8, k + (1 * 6 + 4) * 8, 8 * sizeof(float));
    assert_memory_equal(kt + 5 * 8, k + (1 * 6 + 0) * 8, 8 * sizeof(float));
    kv_data_free(&d);
}

static void test_kv_without_q(void **state)
{
    (void)state;
    uint64_t shape[4] = {1, 2, 64, 8};
    size_t n = 1 * 2 * 64 * 8;
    float *k = malloc(n * 4), *v = malloc(n * 4);
    fill(k, n);
    fill(v, n);
    assert_int_equal(tf_write_npy(tmp("k.npy"), "<f4", 0, shape, 4, k, n * 4), 0);
    assert_int_equal(tf_write_npy(tmp("v.npy"), "<f4", 0, shape, 4, v, n * 4), 0);
    char spec[300], err[512] = "";
    snprintf(spec, sizeof spec, "%s,%s", tmp("k.npy"), tmp("v.npy"));
    kv_data d;
    assert_int_equal(kv_data_load(&d, spec, 0, 0, 0, 4, 300, 7, err, sizeof err), 0);
    assert_true(d.q_from_keys);
    assert_int_equal(d.n_q_heads, 4);
    assert_int_equal(d.q_tokens, 64); /* capped at the token count */
    /* queries follow the keys' per-channel mean: compare the sample means of head 0's channel 0 */
    double mk = 0, mq = 0, sk = 0;
    for (int t = 0; t < 64; t++) mk += k[t * 8] / 64.0;
    for (int t = 0; t < 64; t++) sk += (k[t * 8] - mk) * (k[t * 8] - mk) / 64.0;
    for (uint32_t j = 0; j < 64; j++) mq += kv_q_row(&d, 0, 1, j)[0] / 64.0; /* q head 1 reads kv head 0 */
    assert_true(fabs(mq - mk) < 4.0 * sqrt(sk / 64.0) + 1e-6);
    kv_data_free(&d);

    /* shape errors */
    uint64_t s3[3] = {2, 64, 8}, s4b[4] = {1, 2, 32, 8};
    assert_int_equal(tf_write_npy(tmp("k3.npy"), "<f4", 0, s3, 3, k, n * 4), 0);
    snprintf(spec, sizeof spec, "%s,%s", tmp("k3.npy"), tmp("v.npy"));
    expect_error(kv_data_load(&d, spec, 0, 0, 0, 0, 4, 1, err, sizeof err), err, "expected 4");
    assert_int_equal(tf_write_npy(tmp("vshort.npy"), "<f4", 0, s4b, 4, v, n * 2), 0);
    snprintf(spec, sizeof spec, "%s,%s", tmp("k.npy"), tmp("vshort.npy"));
    expect_error(kv_data_load(&d, spec, 0, 0, 0, 0, 4, 1, err, sizeof err), err, "k and v shapes differ");
    snprintf(spec, sizeof spec, "%s", tmp("k.npy"));
    expect_error(kv_data_load(&d, spec, 0, 0, 0, 0, 4, 1, err, sizeof err), err, "K.npy,V.npy");
    snprintf(spec, sizeof spec, "%s,%s", tmp("k.npy"), tmp("v.npy"));
    expect_error(kv_data_load(&d, spec, 0, 0, 0, 3, 4, 1, err, sizeof err), err, "not a multiple");
    free(k);
    free(v);
}

static void test_safetensors_bad(void **state)
{
    (void)state;
    float k[1 * 1 * 4 * 8], v[32];
    fill(k, 32);
    fill(v, 32);
    char err[512];
    cli_tensor x;
    kv_data d;
    tf_tensor t[2] = {{"k", "F32", {1, 1, 4, 8}, 4, k, sizeof k}, {"v", "F32", {1, 1, 4, 8}, 4, v, sizeof v}};

    assert_int_equal(tf_write_safetensors(tmp("trunc.safetensors"), t, 2, 5), 0);
    assert_int_equal(cli_safetensors_load(tmp("trunc.safetensors"), "k", &x, err, sizeof err), 0); /* k intact */
    cli_tensor_free(&x);
    expect_error(cli_safetensors_load(tmp("trunc.safetensors"), "v", &x, err, sizeof err), err, "truncated");
    expect_error(kv_data_load(&d, tmp("trunc.safetensors"), 0, 0, 0, 0, 4, 1, err, sizeof err), err, "truncated");

    tf_tensor bf[2] = {{"k", "BF16", {1, 1, 4, 8}, 4, k, 64}, t[1]};
    assert_int_equal(tf_write_safetensors(tmp("bf16.safetensors"), bf, 2, 0), 0);
    expect_error(cli_safetensors_load(tmp("bf16.safetensors"), "k", &x, err, sizeof err), err, "dtype BF16");
    tf_tensor i32[2] = {{"k", "I32", {1, 1, 4, 8}, 4, k, sizeof k}, t[1]};
    assert_int_equal(tf_write_safetensors(tmp("i32.safetensors"), i32, 2, 0), 0);
    expect_error(kv_data_load(&d, tmp("i32.safetensors"), 0, 0, 0, 0, 4, 1, err, sizeof err), err, "dtype I32");

    tf_tensor wrong[2] = {{"k", "F32", {1, 1, 5, 8}, 4, k, sizeof k}, t[1]}; /* shape says 40 values, 32 given */
    assert_int_equal(tf_write_safetensors(tmp("offs.safetensors"), wrong, 2, 0), 0);
    expect_error(cli_safetensors_load(tmp("offs.safetensors"), "k", &x, err, sizeof err), err,
                 "do not match its shape and dtype");

    tf_tensor big[2] = {{"k", "F32", {1ull << 30, 1ull << 30, 16, 1}, 4, k, 0}, t[1]};
    assert_int_equal(tf_write_safetensors(tmp("big.safetensors"), big, 2, 0), 0);
    expect_error(cli_safetensors_load(tmp("big.safetensors"), "k", &x, err, sizeof err), err, "too large");

    tf_tensor rank3[2] = {{"k", "F32", {1, 4, 8}, 3, k, sizeof k}, {"v", "F32", {1, 4, 8}, 3, v, sizeof v}};
    assert_int_equal(tf_write_safetensors(tmp("rank3.safetensors"), rank3, 2, 0), 0);
    expect_error(kv_data_load(&d, tmp("rank3.safetensors"), 0, 0, 0, 0, 4, 1, err, sizeof err), err,
                 "expected 4: [layers, heads, tokens, head_dim]");

    tf_tensor only_k[1] = {t[0]};
    assert_int_equal(tf_write_safetensors(tmp("nov.safetensors"), only_k, 1, 0), 0);
    expect_error(kv_data_load(&d, tmp("nov.safetensors"), 0, 0, 0, 0, 4, 1, err, sizeof err), err, "no tensor named 'v'");

    FILE *f = fopen(tmp("huge.safetensors"), "wb");
    fwrite("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 1, 10, f); /* header length 2^63 */
    fclose(f);
    expect_error(cli_safetensors_load(tmp("huge.safetensors"), "k", &x, err, sizeof err), err,
                 "implausible header length");
    f = fopen(tmp("notjson.safetensors"), "wb");
    fwrite("\x10\x00\x00\x00\x00\x00\x00\x00{\"k\": [1, 2,,]} ", 1, 24, f);
    fclose(f);
    expect_error(cli_safetensors_load(tmp("notjson.safetensors"), "k", &x, err, sizeof err), err,
                 "bad safetensors header");
    f = fopen(tmp("tiny.safetensors"), "wb");
    fwrite("\x10\x00", 1, 2, f);
    fclose(f);
    expect_error(cli_safetensors_load(tmp("tiny.safetensors"), "k", &x, err, sizeof err), err, "not a safetensors file");

    /* the command reports the loader's error and exits 1 */
    char *e = NULL;
    int rc = cli_run(&e, 0, "bench", "--backend", "cpu", "--kv", tmp("trunc.safetensors"), (char *)NULL);
    assert_int_equal(rc, 1);
    assert_non_null(e);
    assert_non_null(strstr(e, "truncated"));
    free(e);
}

static int setup(void **state)
{
    (void)state;
    cli_tmpdir(dir, sizeof dir);
    seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    printf("# seed %u, files in %s\n", seed, dir);
    return dir[0] ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return cli_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_good),
        cmocka_unit_test(test_npy_bad),
        cmocka_unit_test(test_safetensors_good),
        cmocka_unit_test(test_kv_without_q),
        cmocka_unit_test(test_safetensors_bad),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
