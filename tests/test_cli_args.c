/* pkv's argument handling: every bad command line exits non-zero with a message that names the
 * problem; good ones exit 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_cli_util.h"

static void expect_error(int want_rc, const char *want_text, ...)
{
    char *argv[32] = {0};
    int n = 0;
    va_list ap;
    va_start(ap, want_text);
    for (char *a; n < 31 && (a = va_arg(ap, char *)) != NULL;) argv[n++] = a;
    va_end(ap);
    char *err = NULL;
    int rc = cli_runv(&err, 0, n, argv);
    if (rc != want_rc || !err || !strstr(err, want_text))
        print_error("args %s %s: rc %d (want %d), stderr: %s (want '%s')\n", n ? argv[0] : "", n > 1 ? argv[1] : "",
                    rc, want_rc, err ? err : "(none)", want_text);
    assert_int_equal(rc, want_rc);
    assert_non_null(err);
    assert_non_null(strstr(err, want_text));
    free(err);
}

static void test_commands(void **state)
{
    (void)state;
    expect_error(2, "usage: pkv", (char *)NULL);
    expect_error(2, "unknown command 'frobnicate'", "frobnicate", (char *)NULL);
    expect_error(2, "takes no arguments", "version", "extra", (char *)NULL);
    expect_error(2, "unknown argument '--fast'", "devices", "--fast", (char *)NULL);
    assert_int_equal(cli_run(NULL, 0, "version", (char *)NULL), 0);
    assert_int_equal(cli_run(NULL, 0, "help", (char *)NULL), 0);
    assert_int_equal(cli_run(NULL, 0, "bench", "--help", (char *)NULL), 0);
}

static void test_bench_option_errors(void **state)
{
    (void)state;
    expect_error(2, "unknown option '--bogus'", "bench", "--bogus", (char *)NULL);
    expect_error(2, "unexpected argument 'stray'", "bench", "stray", (char *)NULL);
    expect_error(2, "--context needs a value", "bench", "--context", (char *)NULL);
    expect_error(2, "--context: bad value", "bench", "--context", "12abc", (char *)NULL);
    expect_error(2, "--context needs a non-negative integer", "bench", "--context", "-5", (char *)NULL);
    expect_error(2, "--bits: 5 is not one of 2, 3, 4, 8", "bench", "--bits", "2,5", (char *)NULL);
    expect_error(2, "--bits: bad value", "bench", "--bits", "2:x", (char *)NULL);
    expect_error(2, "--k-bits: 7 is not one of", "bench", "--k-bits", "7", (char *)NULL);
    expect_error(2, "--group: 100 is not 32, 64 or 128", "bench", "--group", "100", (char *)NULL);
    expect_error(2, "--quantizer: best is not auto, minmax", "bench", "--quantizer", "best", (char *)NULL);
    expect_error(2, "--head-dim: 36 is not a multiple of 8", "bench", "--head-dim", "36", (char *)NULL);
    expect_error(2, "--head-dim: bad value", "bench", "--head-dim", "512", (char *)NULL);
    expect_error(2, "unknown mode 'kivi2'", "bench", "--modes", "pattern,kivi2", (char *)NULL);
    expect_error(2, "unknown backend 'cuda'", "bench", "--backend", "cuda", (char *)NULL);
    expect_error(2, "give increasing lengths", "bench", "--speed-contexts", "4096,1024", (char *)NULL);
    expect_error(2, "--q-heads must be a multiple of --kv-heads", "bench", "--kv-heads", "3", "--q-heads", "4", (char *)NULL);
    expect_error(2, "--window must be a multiple of --group", "bench", "--group", "64", "--window", "96", (char *)NULL);
    expect_error(2, "--model-shape: expected", "bench", "--model-shape", "32,8", (char *)NULL);
    expect_error(2, "--memory-gib: bad value", "bench", "--memory-gib", "-3", (char *)NULL);
    expect_error(2, "--synthetic takes no value", "bench", "--synthetic=1", (char *)NULL);
    expect_error(2, "exclude each other", "bench", "--kv", "a.safetensors", "--synthetic", (char *)NULL);
}

static void test_bench_runtime_errors(void **state)
{
    (void)state;
    /* option values that parse but fail when used: exit 1 with the reason */
    expect_error(1, "cannot open", "bench", "--backend", "cpu", "--kv", "/nonexistent/kv.safetensors", (char *)NULL);
    expect_error(1, "--kv takes FILE.safetensors or K.npy,V.npy", "bench", "--backend", "cpu", "--kv", "single.npy",
                 (char *)NULL);
    expect_error(2, "--json /nonexistent-dir/r.json: directory /nonexistent-dir does not exist", "bench", "--json",
                 "/nonexistent-dir/r.json", (char *)NULL);
    expect_error(2, "--plot /nonexistent-dir/p.svg: directory", "bench", "--plot", "/nonexistent-dir/p.svg", (char *)NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_bench_option_errors),
        cmocka_unit_test(test_bench_runtime_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
