/* A short pkv bench run (tiny shapes) on the backend PKV_BACKEND names (ctest sets cpu, vulkan or
 * opencl; the run fails, never skips, when that backend does not start). The --json report is
 * parsed back with the test's own JSON checker and checked for the shape and for values
 * that must hold on any correct implementation. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <time.h>

#include "test_cli_files.h"
#include "test_cli_json.h"
#include "test_cli_util.h"

static char dir[64];

static const char *tmp(const char *name)
{
    static char buf[8][128];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static const tj_entry *need(const tj_doc *d, const char *path, tj_kind kind)
{
    const tj_entry *e = tj_find(d, path);
    if (!e || e->kind != kind) print_error("JSON: %s missing or of kind %d (want %d)\n", path, e ? (int)e->kind : -1, kind);
    assert_non_null(e);
    assert_int_equal(e->kind, kind);
    return e;
}

static double num_at(const tj_doc *d, const char *fmt, size_t i)
{
    char path[160];
    snprintf(path, sizeof path, fmt, i);
    return need(d, path, TJ_NUMBER)->number;
}

static const char *str_at(const tj_doc *d, const char *fmt, size_t i)
{
    char path[160];
    snprintf(path, sizeof path, fmt, i);
    return need(d, path, TJ_STRING)->text;
}

/* Index of the fidelity entry of mode/bits, or -1. */
static int fid(const tj_doc *d, size_t n, const char *mode, int bits)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(str_at(d, "fidelity[%zu].mode", i), mode) == 0 && (int)num_at(d, "fidelity[%zu].k_bits", i) == bits)
            return (int)i;
    return -1;
}

static void check_report(const tj_doc *d, size_t n_fid_want, size_t n_speed_want)
{
    /* device */
    need(d, "device", TJ_OBJECT);
    const char *backend = need(d, "device.backend", TJ_STRING)->text;
    need(d, "device.name", TJ_STRING);
    need(d, "device.driver", TJ_STRING);
    const char *env = getenv("PKV_BACKEND");
    if (env && *env && strcmp(env, "auto") != 0) assert_string_equal(backend, env);
    need(d, "config", TJ_OBJECT);
    need(d, "throughput", TJ_OBJECT);

    /* fidelity */
    size_t nf = (size_t)need(d, "fidelity", TJ_ARRAY)->number;
    assert_int_equal(nf, n_fid_want);
    static const char *fkeys[] = {"k_mse", "v_mse", "attn_rel_err_median", "attn_rel_err_max", "bits_per_element"};
    for (size_t i = 0; i < nf; i++) {
        const char *mode = str_at(d, "fidelity[%zu].mode", i);
        assert_true(strcmp(mode, "pattern") == 0 || strcmp(mode, "direct") == 0 || strcmp(mode, "fp16") == 0);
        num_at(d, "fidelity[%zu].k_bits", i);
        num_at(d, "fidelity[%zu].v_bits", i);
        for (size_t k = 0; k < sizeof fkeys / sizeof fkeys[0]; k++) {
            char fmt[64];
            snprintf(fmt, sizeof fmt, "fidelity[%%zu].%s", fkeys[k]);
            double v = num_at(d, fmt, i);
            assert_true(v >= 0 && v < 1e6);
        }
        assert_true(num_at(d, "fidelity[%zu].attn_rel_err_median", i) <= num_at(d, "fidelity[%zu].attn_rel_err_max", i));
    }
    int f16 = fid(d, nf, "fp16", 16), p2 = fid(d, nf, "pattern", 2), p4 = fid(d, nf, "pattern", 4);
    int d2 = fid(d, nf, "direct", 2), d4 = fid(d, nf, "direct", 4);
    assert_true(f16 >= 0 && p2 >= 0 && p4 >= 0 && d2 >= 0 && d4 >= 0);
    /* fp16 storage: only rounding error, and exactly 16 bits per element plus padding at most */
    assert_true(num_at(d, "fidelity[%zu].attn_rel_err_median", (size_t)f16) < 1e-2);
    assert_true(num_at(d, "fidelity[%zu].bits_per_element", (size_t)f16) >= 16.0);
    assert_true(num_at(d, "fidelity[%zu].bits_per_element", (size_t)f16) < 17.0);
    /* more bits: smaller errors; quantized caches are smaller than fp16; PATTERN pays for indices */
    assert_true(num_at(d, "fidelity[%zu].k_mse", (size_t)p4) < num_at(d, "fidelity[%zu].k_mse", (size_t)p2));
    assert_true(num_at(d, "fidelity[%zu].k_mse", (size_t)d4) < num_at(d, "fidelity[%zu].k_mse", (size_t)d2));
    assert_true(num_at(d, "fidelity[%zu].attn_rel_err_median", (size_t)d4) <
                num_at(d, "fidelity[%zu].attn_rel_err_median", (size_t)d2));
    assert_true(num_at(d, "fidelity[%zu].bits_per_element", (size_t)p2) <
                num_at(d, "fidelity[%zu].bits_per_element", (size_t)f16));
    assert_true(num_at(d, "fidelity[%zu].bits_per_element", (size_t)p2) >
                num_at(d, "fidelity[%zu].bits_per_element", (size_t)d2));

    /* speed */
    size_t ns = (size_t)need(d, "speed", TJ_ARRAY)->number;
    assert_int_equal(ns, n_speed_want);
    for (size_t i = 0; i < ns; i++) {
        str_at(d, "speed[%zu].mode", i);
        num_at(d, "speed[%zu].k_bits", i);
        num_at(d, "speed[%zu].v_bits", i);
        assert_true(num_at(d, "speed[%zu].context", i) > 0);
        assert_true(num_at(d, "speed[%zu].batch", i) >= 1);
        assert_true(num_at(d, "speed[%zu].ms_per_step", i) > 0);
        assert_true(num_at(d, "speed[%zu].gbps", i) > 0);
        char path[64];
        snprintf(path, sizeof path, "speed[%zu].bw_fraction", i);
        const tj_entry *bw = tj_find(d, path);
        assert_non_null(bw); /* a number, or null when the backend has no read-bandwidth probe */
        assert_true(bw->kind == TJ_NUMBER || bw->kind == TJ_NULL);
        if (strcmp(backend, "cpu") == 0) assert_int_equal(bw->kind, TJ_NUMBER);
        double sp = num_at(d, "speed[%zu].speedup_vs_fp16", i);
        if (strcmp(str_at(d, "speed[%zu].mode", i), "fp16") == 0) assert_true(fabs(sp - 1.0) < 1e-12);
        else assert_true(sp > 0);
    }
}

/* The --json report of a short run, parsed and checked for its shape (5 fidelity rows, 10 speed rows). */
static char *read_report(const char *name, tj_doc *d)
{
    char *text = tj_read_file(tmp(name));
    assert_non_null(text);
    assert_int_equal(tj_parse(text, d), 0);
    check_report(d, 5, 10);
    return text;
}

static void test_bench_json(void **state)
{
    (void)state;
    char *args[] = {"bench", "--synthetic", "--seed", "0", "--layers", "1", "--context", "256", "--prefill", "128",
                    "--kv-heads", "2", "--q-heads", "4", "--head-dim", "64", "--group", "32", "--patterns", "8",
                    "--bits", "2,4", "--speed-contexts", "128,256", "--steps", "3", "--warmup", "1", "--queries", "4",
                    "--model-shape", "4,2,64", "--memory-gib", "1", "--json", NULL, "--plot", NULL};
    char seed[32];
    snprintf(seed, sizeof seed, "%u", (unsigned)time(NULL));
    args[3] = seed; /* fresh synthetic data each run */
    args[35] = (char *)tmp("r.json");
    args[37] = (char *)tmp("r.svg");
    char *err = NULL, *out = NULL;
    int rc = cli_runv2(&err, &out, 38, args);
    if (rc != 0) print_error("pkv bench failed (%d): %s\n", rc, err ? err : "");
    assert_int_equal(rc, 0);
    /* stderr is not a terminal here: no progress bar */
    assert_null(strchr(err, '\r'));
    assert_non_null(strstr(out, "Fidelity"));
    assert_non_null(strstr(out, "Decode attention speed"));
    assert_non_null(strstr(out, "Summary"));
    free(err);
    free(out);

    tj_doc d;
    char *text = read_report("r.json", &d);
    assert_int_equal((int)need(&d, "config.seed", TJ_NUMBER)->number, atoi(seed));
    assert_int_equal((int)need(&d, "throughput.entries", TJ_ARRAY)->number, 5);
    assert_true(need(&d, "throughput.entries[0].prefill_tokens_per_s", TJ_NUMBER)->number > 0);
    assert_true(need(&d, "throughput.entries[0].prefill_first_tokens_per_s", TJ_NUMBER)->number > 0);
    assert_int_equal((int)need(&d, "memory.entries", TJ_ARRAY)->number, 5);
    tj_free(&d);
    free(text);

    char *svg = tj_read_file(tmp("r.svg"));
    assert_non_null(svg);
    assert_non_null(strstr(svg, "<svg"));
    assert_non_null(strstr(svg, "</svg>"));
    assert_non_null(strstr(svg, "<polyline"));
    free(svg);
}

/* --kv K.npy,V.npy without q: the report says queries were drawn from the keys. */
static void test_bench_npy_without_q(void **state)
{
    (void)state;
    uint64_t shape[4] = {1, 2, 192, 64};
    size_t n = 2 * 192 * 64;
    float *k = malloc(n * 4), *v = malloc(n * 4);
    uint16_t *kh = malloc(n * 2);
    srand((unsigned)time(NULL));
    for (size_t i = 0; i < n; i++) {
        k[i] = (float)((rand() % 2049) - 1024) / 256.0f + (i % 64 == 3 ? 6.0f : 0.0f);
        v[i] = (float)((rand() % 1025) - 512) / 256.0f;
    }
    assert_int_equal(pkv_f32_to_f16_array(k, kh, n), PKV_OK);
    assert_int_equal(tf_write_npy(tmp("k.npy"), "<f2", 0, shape, 4, kh, n * 2), 0);
    assert_int_equal(tf_write_npy(tmp("v.npy"), "<f4", 0, shape, 4, v, n * 4), 0);
    char spec[300];
    snprintf(spec, sizeof spec, "%s,%s", tmp("k.npy"), tmp("v.npy"));
    char *args[] = {"bench", "--kv", spec, "--group", "32", "--patterns", "8", "--bits", "2,4", "--speed-contexts",
                    "64,256", "--steps", "2", "--warmup", "0", "--queries", "3", "--model-shape", "2,2,64",
                    "--json", (char *)tmp("n.json"), "--no-progress"};
    char *err = NULL, *out = NULL;
    int rc = cli_runv2(&err, &out, 22, args);
    if (rc != 0) print_error("pkv bench failed (%d): %s\n", rc, err ? err : "");
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "drawn from the keys"));
    free(err);
    free(out);
    tj_doc d;
    char *text = read_report("n.json", &d);
    assert_true(need(&d, "config.q_from_keys", TJ_BOOL)->number == 1);
    assert_int_equal((int)need(&d, "config.tokens", TJ_NUMBER)->number, 192);
    assert_int_equal((int)need(&d, "config.q_heads", TJ_NUMBER)->number, 2);
    tj_free(&d);
    free(text);
    free(k);
    free(v);
    free(kh);
}

/* --write-path alone: the "write_path" rows of the shape, on the backend under test (with the
 * quantizer asked for: --quantizer, in the JSON). */
static void test_bench_write_path(void **state)
{
    (void)state;
    char *args[] = {"bench", "--synthetic", "--no-fidelity", "--speed-contexts", "none", "--no-throughput",
                    "--write-path", "--wp-layers", "3", "--wp-prompt", "200", "--kv-heads", "2", "--head-dim", "64",
                    "--group", "32", "--patterns", "8", "--bits", "2", "--modes", "pattern", "--json",
                    (char *)tmp("w.json"), "--no-progress", "--quantizer", "minmax"};
    char *err = NULL, *out = NULL;
    int rc = cli_runv2(&err, &out, 28, args);
    if (rc != 0) print_error("pkv bench failed (%d): %s\n", rc, err ? err : "");
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "Write path (3 layers x 2 kv heads x head_dim 64, 200-token prompt"));
    free(err);
    free(out);
    tj_doc d;
    char *text = tj_read_file(tmp("w.json"));
    assert_non_null(text);
    assert_int_equal(tj_parse(text, &d), 0);
    assert_int_equal((int)need(&d, "write_path", TJ_ARRAY)->number, 1);
    assert_string_equal(need(&d, "write_path[0].backend", TJ_STRING)->text, need(&d, "device.backend", TJ_STRING)->text);
    assert_string_equal(need(&d, "write_path[0].mode", TJ_STRING)->text, "pattern");
    assert_string_equal(need(&d, "config.quantizer", TJ_STRING)->text, "minmax");
    assert_int_equal((int)need(&d, "write_path[0].k_bits", TJ_NUMBER)->number, 2);
    assert_int_equal((int)need(&d, "write_path[0].v_bits", TJ_NUMBER)->number, 2);
    assert_int_equal((int)need(&d, "write_path[0].layers", TJ_NUMBER)->number, 3);
    assert_int_equal((int)need(&d, "write_path[0].kv_heads", TJ_NUMBER)->number, 2);
    assert_int_equal((int)need(&d, "write_path[0].head_dim", TJ_NUMBER)->number, 64);
    assert_int_equal((int)need(&d, "write_path[0].prompt_tokens", TJ_NUMBER)->number, 200);
    static const char *positive[] = {"prefill_ms", "flush_ms_per_window", "append_all_layers_us", "prefill_host_ms",
                                     "flush_host_ms_per_window", "startup_cold_ms", "startup_warm_ms"};
    for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++) {
        char path[80];
        snprintf(path, sizeof path, "write_path[0].%s", positive[i]);
        assert_true(need(&d, path, TJ_NUMBER)->number > 0);
    }
    assert_true(need(&d, "write_path[0].flushes", TJ_NUMBER)->number >= 2);
    need(&d, "write_path[0].device_timed", TJ_BOOL);
    /* the start-up's split adds up to its total (the driver's part and the library's) */
    for (int k = 0; k < 2; k++) {
        const char *w = k ? "startup_warm" : "startup_cold";
        char path[80];
        double sum = 0;
        static const char *parts[] = {"driver_ms", "library_context_ms", "cache_create_ms", "first_result_ms"};
        for (size_t i = 0; i < 4; i++) {
            snprintf(path, sizeof path, "write_path[0].%s.%s", w, parts[i]);
            const double x = need(&d, path, TJ_NUMBER)->number;
            assert_true(x >= 0);
            sum += x;
        }
        snprintf(path, sizeof path, "write_path[0].%s_ms", w);
        assert_true(fabs(sum - need(&d, path, TJ_NUMBER)->number) < 0.05 + 1e-5 * sum);
    }
    assert_int_equal((int)need(&d, "fidelity", TJ_ARRAY)->number, 0);
    tj_free(&d);
    free(text);
}

/* --decode-step alone: the "decode_step" rows of issue 13 on Vulkan (recorded against synchronous);
 * empty elsewhere (the recorded calls are Vulkan's). */
static void test_bench_decode_step(void **state)
{
    (void)state;
    char *args[] = {"bench", "--synthetic", "--no-fidelity", "--speed-contexts", "none", "--no-throughput",
                    "--decode-step", "--ds-layers", "3", "--ds-context", "100", "--ds-batch", "1,2", "--kv-heads", "2",
                    "--q-heads", "4", "--head-dim", "64", "--group", "32", "--patterns", "8", "--bits", "2", "--modes",
                    "pattern", "--steps", "2", "--json", (char *)tmp("ds.json"), "--no-progress"};
    char *err = NULL, *out = NULL;
    int rc = cli_runv2(&err, &out, 32, args);
    if (rc != 0) print_error("pkv bench failed (%d): %s\n", rc, err ? err : "");
    assert_int_equal(rc, 0);
    tj_doc d;
    char *text = tj_read_file(tmp("ds.json"));
    assert_non_null(text);
    assert_int_equal(tj_parse(text, &d), 0);
    const int vulkan = strcmp(need(&d, "device.backend", TJ_STRING)->text, "vulkan") == 0;
    assert_int_equal((int)need(&d, "decode_step", TJ_ARRAY)->number, vulkan ? 2 : 0);
    if (vulkan) {
        assert_non_null(strstr(out, "Decode step (3 layers, 2 kv heads, 4 query heads, head_dim 64"));
        assert_string_equal(need(&d, "decode_step[1].backend", TJ_STRING)->text, "vulkan");
        assert_string_equal(need(&d, "decode_step[1].mode", TJ_STRING)->text, "pattern");
        assert_int_equal((int)need(&d, "decode_step[1].k_bits", TJ_NUMBER)->number, 2);
        assert_int_equal((int)need(&d, "decode_step[1].v_bits", TJ_NUMBER)->number, 2);
        assert_int_equal((int)need(&d, "decode_step[1].layers", TJ_NUMBER)->number, 3);
        assert_int_equal((int)need(&d, "decode_step[0].batch", TJ_NUMBER)->number, 1);
        assert_int_equal((int)need(&d, "decode_step[1].batch", TJ_NUMBER)->number, 2);
        assert_int_equal((int)need(&d, "decode_step[1].context", TJ_NUMBER)->number, 100);
        static const char *positive[] = {"recorded_ms", "synchronous_ms", "attention_kernels_ms", "recorded_host_ms",
                                         "record_us_per_layer"};
        for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++) {
            char path[80];
            snprintf(path, sizeof path, "decode_step[1].%s", positive[i]);
            assert_true(need(&d, path, TJ_NUMBER)->number > 0);
        }
    }
    free(err);
    free(out);
    tj_free(&d);
    free(text);
}

/* The checker itself rejects malformed JSON (so a broken writer cannot pass). */
static void test_json_checker(void **state)
{
    (void)state;
    tj_doc d;
    assert_int_equal(tj_parse("{\"a\": [1, 2, {\"b\": null}], \"c\": \"x\"}", &d), 0);
    assert_int_equal((int)tj_find(&d, "a")->number, 3);
    assert_int_equal(tj_find(&d, "a[2].b")->kind, TJ_NULL);
    tj_free(&d);
    static const char *bad[] = {"{\"a\": 1,}", "{\"a\" 1}", "[1 2]", "{\"a\": nan}", "{\"a\": 1} x", "\"open"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tj_parse(bad[i], &d), -1);
        tj_free(&d);
    }
}

static int setup(void **state)
{
    (void)state;
    cli_tmpdir(dir, sizeof dir);
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
        cmocka_unit_test(test_json_checker),
        cmocka_unit_test(test_bench_json),
        cmocka_unit_test(test_bench_npy_without_q),
        cmocka_unit_test(test_bench_write_path),
        cmocka_unit_test(test_bench_decode_step),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
