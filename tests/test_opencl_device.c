#define _POSIX_C_SOURCE 200809L
/* The OpenCL backend's own behaviour (its parity with the CPU is test_parity): budgets, device
 * out-of-memory, the program-binary cache, engine integration, device listing and timing.
 * With CI=true a missing OpenCL device fails these tests; elsewhere they are skipped with a note. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "patternkv_opencl.h"
#include "internal.h"
#include "opencl/ocl_internal.h"

static char g_cache_dir[512];

static pkv_context *ocl_context_with(pkv_context_params *p)
{
    p->backend = PKV_BACKEND_OPENCL;
    if (!p->cache_dir) p->cache_dir = g_cache_dir;
    return tu_context_or_skip(p);
}

static pkv_context *ocl_context(void)
{
    pkv_context_params p = pkv_context_params_default();
    return ocl_context_with(&p);
}

/* A tiny cache through the kernels: mining, window, attention. */
static void tiny_round_trip(pkv_context *ctx)
{
    pkv_cache_config cfg = tu_config(1, 1, 32, 2, 32, PKV_MODE_PATTERN);
    pkv_cache *c;
    pkv_seq s;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    TU_OK(pkv_seq_create(c, &s));
    float k[40 * 32], v[40 * 32], q[32], o[32];
    tu_rng r = {9};
    tu_random(&r, 40 * 32, 1.0f, k);
    tu_random(&r, 40 * 32, 1.0f, v);
    tu_random(&r, 32, 1.0f, q);
    TU_OK(pkv_append(c, s, 0, 40, k, v, PKV_F32));
    pkv_attention_params ap = {.struct_size = sizeof(pkv_attention_params), .seqs = &s, .n_seqs = 1, .q_len = 1, .n_q_heads = 1, .q_dtype = PKV_F32};
    TU_OK(pkv_attention(c, &ap, q, o));
    TU_OK(pkv_cache_free(c));
}

/* The memory budget stops appends with a status and loses nothing. */
static void budget_full_loses_nothing(void **state)
{
    (void)state;
    pkv_context *ctx = ocl_context();
    pkv_cache_config cfg = tu_config(1, 1, 32, 2, 32, PKV_MODE_PATTERN);
    cfg.memory_budget = 24 * 1024;
    pkv_cache *c;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    pkv_seq s;
    TU_OK(pkv_seq_create(c, &s));
    tu_rng r = {5};
    float k[64 * 32], v[64 * 32];
    pkv_status st = PKV_OK;
    uint32_t stored = 0;
    float *before_k = malloc(4096 * 32 * sizeof(float)), *before_v = malloc(4096 * 32 * sizeof(float));
    float *after_k = malloc(4096 * 32 * sizeof(float)), *after_v = malloc(4096 * 32 * sizeof(float));
    for (int i = 0; i < 200 && st == PKV_OK; i++) {
        tu_random(&r, 64 * 32, 1.0f, k);
        tu_random(&r, 64 * 32, 1.0f, v);
        if (stored) TU_OK(pkv_read_kv(c, s, 0, before_k, before_v));
        st = pkv_append(c, s, 0, 64, k, v, PKV_F32);
        if (st == PKV_OK) stored += 64;
    }
    assert_int_equal(st, PKV_ERR_OUT_OF_BUDGET);
    uint32_t n;
    TU_OK(pkv_seq_length(c, s, 0, &n));
    assert_int_equal(n, stored);
    TU_OK(pkv_read_kv(c, s, 0, after_k, after_v));
    assert_memory_equal(before_k, after_k, (size_t)stored * 32 * sizeof(float));
    assert_memory_equal(before_v, after_v, (size_t)stored * 32 * sizeof(float));
    free(before_k);
    free(before_v);
    free(after_k);
    free(after_v);
    TU_OK(pkv_cache_free(c));
    TU_OK(pkv_context_free(ctx));
}

/* A buffer the device cannot hold is a status (PKV_ERR_OUT_OF_DEVICE_MEMORY), not a crash. */
static void device_out_of_memory_is_a_status(void **state)
{
    (void)state;
    pkv_context *ctx = ocl_context();
    pkv_backend *be = ctx->be;
    pkv_buf *b = NULL;
    assert_int_equal(be->iface->buf_alloc(be, (size_t)1 << 50, &b), PKV_ERR_OUT_OF_DEVICE_MEMORY);
    assert_null(b);
    TU_OK(be->iface->buf_alloc(be, 4096, &b)); /* and the device still works */
    uint8_t w[4096], rd[4096];
    for (int i = 0; i < 4096; i++) w[i] = (uint8_t)(i * 7 + 3);
    TU_OK(be->iface->buf_write(be, b, 0, w, sizeof w));
    TU_OK(be->iface->buf_read(be, b, 0, rd, sizeof rd));
    assert_memory_equal(w, rd, sizeof w);
    assert_int_equal(be->iface->buf_read(be, b, 4000, rd, 200), PKV_ERR_INVALID_ARGUMENT);
    be->iface->buf_free(be, b);
    TU_OK(pkv_context_free(ctx));
}

typedef struct log_capture {
    int warnings;
    char last[1024];
} log_capture;

static void capture(pkv_log_level level, const char *msg, void *user)
{
    log_capture *lc = user;
    if (level == PKV_LOG_WARN) {
        lc->warnings++;
        snprintf(lc->last, sizeof lc->last, "%s", msg);
    }
}

static int find_cache_file(const char *dir, char *path, size_t cap)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls %s/opencl-*.bin 2>/dev/null | head -n 1", dir);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    int ok = fgets(path, (int)cap, p) != NULL;
    pclose(p);
    if (ok) path[strcspn(path, "\n")] = 0;
    return ok && path[0];
}

/* The program-binary cache: written on first use, reused silently, a damaged file ignored with a
 * warning and replaced by a good one. */
static void program_cache_corrupt_file_is_ignored(void **state)
{
    (void)state;
    char dir[600], path[800];
    snprintf(dir, sizeof dir, "%s/progcache_%d", g_cache_dir, (int)getpid());
    log_capture lc = {0};
    pkv_context_params p = pkv_context_params_default();
    p.cache_dir = dir;
    p.log = capture;
    p.log_user = &lc;
    pkv_context *ctx = ocl_context_with(&p);
    TU_OK(pkv_context_free(ctx));
    assert_int_equal(lc.warnings, 0);
    assert_true(find_cache_file(dir, path, sizeof path));

    ctx = ocl_context_with(&p); /* reuse: no warning */
    TU_OK(pkv_context_free(ctx));
    assert_int_equal(lc.warnings, 0);

    for (int damage = 0; damage < 3; damage++) {
        size_t n;
        uint8_t *b = tu_slurp(path, &n);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        if (damage == 0) { /* flip a byte in the binary */
            b[n - 100] ^= 0x5a;
            fwrite(b, 1, n, f);
        } else if (damage == 1) { /* truncate */
            fwrite(b, 1, n / 2, f);
        } else { /* a key of another device or driver (the key follows a 24-byte header) */
            b[24 + 20] ^= 0x01;
            fwrite(b, 1, n, f);
        }
        fclose(f);
        free(b);
        lc.warnings = 0;
        ctx = ocl_context_with(&p);
        assert_int_equal(lc.warnings, 1);
        assert_non_null(strstr(lc.last, "ignoring program cache"));
        /* the context works: a tiny cache round trip through the kernels */
        tiny_round_trip(ctx);
        TU_OK(pkv_context_free(ctx));
        lc.warnings = 0; /* rewritten: the next start is silent */
        ctx = ocl_context_with(&p);
        TU_OK(pkv_context_free(ctx));
        assert_int_equal(lc.warnings, 0);
    }
}

/* Engine integration: the library runs on the application's context and queue. */
static void external_context_and_queue(void **state)
{
    (void)state;
    /* the application's handles, made through the same ICD loader the library uses */
    char why[256];
    const pkv_ocl_api *cl = pkv_ocl_load(why, sizeof why);
    if (!cl) {
        if (tu_in_ci()) fail_msg("%s (CI=true)", why);
        tu_skip();
    }
    cl_platform_id plats[8];
    cl_uint np = 0;
    if (cl->clGetPlatformIDs(8, plats, &np) != CL_SUCCESS || np == 0) {
        if (tu_in_ci()) fail_msg("no OpenCL platform (CI=true)");
        tu_skip();
    }
    cl_device_id dev = NULL;
    for (cl_uint i = 0; i < np && !dev; i++)
        if (cl->clGetDeviceIDs(plats[i], CL_DEVICE_TYPE_ALL, 1, &dev, NULL) != CL_SUCCESS) dev = NULL;
    assert_non_null(dev);
    cl_int err;
    cl_context cctx = cl->clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    cl_command_queue q = cl->clCreateCommandQueue(cctx, dev, 0, &err);
    assert_int_equal(err, CL_SUCCESS);

    pkv_opencl_external ext = {.struct_size = sizeof ext, .context = cctx, .device = dev, .queue = q};
    pkv_context_params p = pkv_context_params_default();
    p.opencl_external = &ext;
    /* contracts checked at the call: an out-of-order queue, and PKV_BACKEND naming another backend */
    pkv_context *refused = NULL;
    cl_command_queue ooo = cl->clCreateCommandQueue(cctx, dev, CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &err);
    if (err == CL_SUCCESS) {
        pkv_opencl_external ext_ooo = ext;
        ext_ooo.queue = ooo;
        pkv_context_params po_ = p;
        po_.opencl_external = &ext_ooo;
        assert_int_equal(pkv_context_create(&po_, &refused), PKV_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(pkv_last_error(), "out-of-order"));
        assert_null(refused);
        cl->clReleaseCommandQueue(ooo);
    } else {
        print_message("this OpenCL device has no out-of-order queues (%s): that check is not exercised\n",
                      pkv_ocl_error_name(err));
    }
    setenv("PKV_BACKEND", "cpu", 1);
    assert_int_equal(pkv_context_create(&p, &refused), PKV_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(pkv_last_error(), "PKV_BACKEND=cpu"));
    unsetenv("PKV_BACKEND");
    pkv_context *ctx = ocl_context_with(&p);
    /* the application may drop its references: the library holds its own */
    cl->clReleaseCommandQueue(q);
    cl->clReleaseContext(cctx);
    pkv_device_info info = {.struct_size = sizeof info};
    TU_OK(pkv_context_device(ctx, &info, why, sizeof why));
    assert_int_equal(info.backend, PKV_BACKEND_OPENCL);

    pkv_context *cpu = tu_cpu_context(1);
    pkv_cache_config cfg = tu_config(1, 1, 32, 2, 32, PKV_MODE_PATTERN);
    pkv_cache *co, *cc;
    pkv_seq so, sc;
    TU_OK(pkv_cache_create(ctx, &cfg, &co));
    TU_OK(pkv_cache_create(cpu, &cfg, &cc));
    TU_OK(pkv_seq_create(co, &so));
    TU_OK(pkv_seq_create(cc, &sc));
    float k[70 * 32], v[70 * 32], kc[70 * 32], vc[70 * 32], ko[70 * 32], vo[70 * 32];
    tu_rng r = {21};
    tu_random(&r, 70 * 32, 1.0f, k);
    tu_random(&r, 70 * 32, 1.0f, v);
    /* K/V from the application's buffers (at an offset), as fp32 */
    cl_mem kbuf = cl->clCreateBuffer(cctx, CL_MEM_READ_WRITE, sizeof k + 64, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    cl_mem vbuf = cl->clCreateBuffer(cctx, CL_MEM_READ_WRITE, sizeof v, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    pkv_ocl *po = ctx->be->impl;
    assert_int_equal(cl->clEnqueueWriteBuffer(po->q, kbuf, CL_TRUE, 64, sizeof k, k, 0, NULL, NULL), CL_SUCCESS);
    assert_int_equal(cl->clEnqueueWriteBuffer(po->q, vbuf, CL_TRUE, 0, sizeof v, v, 0, NULL, NULL), CL_SUCCESS);
    TU_OK(pkv_opencl_append(co, so, 0, 70, kbuf, 64, sizeof k, vbuf, 0, sizeof v, PKV_F32));
    TU_OK(pkv_append(cc, sc, 0, 70, k, v, PKV_F32));
    TU_OK(pkv_read_kv(co, so, 0, ko, vo));
    TU_OK(pkv_read_kv(cc, sc, 0, kc, vc));
    assert_memory_equal(ko, kc, sizeof ko);
    assert_memory_equal(vo, vc, sizeof vo);
    /* a read past the end of the buffer is an argument error and stores nothing */
    assert_int_equal(pkv_opencl_append(co, so, 0, 70, kbuf, 128, sizeof k, vbuf, 0, sizeof v, PKV_F32), PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_opencl_append(co, so, 0, 70, kbuf, 64, sizeof k - 4, vbuf, 0, sizeof v, PKV_F32), PKV_ERR_INVALID_ARGUMENT);
    uint32_t len;
    TU_OK(pkv_seq_length(co, so, 0, &len));
    assert_int_equal(len, 70);
    /* q and out in the application's buffers */
    float qh[2 * 32], out_host[2 * 32], out_dev[2 * 32];
    tu_random(&r, 64, 1.0f, qh);
    pkv_attention_params ap = {.struct_size = sizeof(pkv_attention_params), .seqs = &so, .n_seqs = 1, .q_len = 1, .n_q_heads = 2, .q_dtype = PKV_F32};
    TU_OK(pkv_attention(co, &ap, qh, out_host));
    assert_int_equal(cl->clEnqueueWriteBuffer(po->q, kbuf, CL_TRUE, 0, sizeof qh, qh, 0, NULL, NULL), CL_SUCCESS);
    TU_OK(pkv_opencl_attention(co, &ap, kbuf, 0, sizeof qh, vbuf, 16, sizeof out_dev));
    assert_int_equal(cl->clEnqueueReadBuffer(po->q, vbuf, CL_TRUE, 16, sizeof out_dev, out_dev, 0, NULL, NULL), CL_SUCCESS);
    assert_memory_equal(out_host, out_dev, sizeof out_dev);
    assert_int_equal(pkv_opencl_attention(cc, &ap, kbuf, 0, sizeof qh, vbuf, 16, sizeof out_dev), PKV_ERR_UNSUPPORTED); /* a CPU cache */
    cl->clReleaseMemObject(kbuf);
    cl->clReleaseMemObject(vbuf);
    TU_OK(pkv_cache_free(co));
    TU_OK(pkv_cache_free(cc));
    TU_OK(pkv_context_free(ctx));
    TU_OK(pkv_context_free(cpu));

    /* an external struct missing its device is refused with a reason */
    pkv_opencl_external bad = {.struct_size = sizeof bad, .context = NULL, .device = NULL, .queue = NULL};
    p = pkv_context_params_default();
    p.backend = PKV_BACKEND_OPENCL;
    p.opencl_external = &bad;
    ctx = NULL;
    assert_int_not_equal(pkv_context_create(&p, &ctx), PKV_OK);
    assert_null(ctx);
    assert_non_null(strstr(pkv_last_error(), "context"));
    /* and one without its size (stable ABI) */
    bad.struct_size = 0;
    assert_int_equal(pkv_context_create(&p, &ctx), PKV_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(pkv_last_error(), "pkv_opencl_external.struct_size is 0"));
}

/* Device listing and the bench's read-bandwidth kernel. */
#include "opencl/ocl_bench.h"
static void devices_listed_and_bandwidth_measured(void **state)
{
    (void)state;
    pkv_context *ctx = ocl_context();
    pkv_device_info devs[16] = {{.struct_size = sizeof(pkv_device_info)}};
    size_t n = 0;
    TU_OK(pkv_list_devices(NULL, devs, 16, &n));
    int found = 0;
    for (size_t i = 0; i < n && i < 16; i++)
        if (devs[i].backend == PKV_BACKEND_OPENCL && devs[i].name[0] && devs[i].driver[0]) found = 1;
    assert_true(found);
    double gbps = 0;
    TU_OK(pkv_opencl_read_bandwidth(ctx, 8u << 20, 2, &gbps));
    assert_true(gbps > 0.01 && gbps < 1e5);
    gbps = 0;
    TU_OK(pkv_measure_read_bandwidth(ctx, 8u << 20, &gbps));
    assert_true(gbps > 0.01 && gbps < 1e5);

    /* op timing from the device's timestamps */
    double ms = 0;
    tiny_round_trip(ctx);
    TU_OK(pkv_last_op_time(ctx, &ms));
    assert_true(ms > 0 && ms < 60000);
    TU_OK(pkv_context_free(ctx));
}

int main(void)
{
    const char *dir = getenv("PKV_TEST_CACHE_DIR");
    snprintf(g_cache_dir, sizeof g_cache_dir, "%s", dir && *dir ? dir : "/tmp/pkv_test_opencl");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", g_cache_dir);
    if (system(cmd) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(budget_full_loses_nothing),
        cmocka_unit_test(device_out_of_memory_is_a_status),
        cmocka_unit_test(program_cache_corrupt_file_is_ignored),
        cmocka_unit_test(external_context_and_queue),
        cmocka_unit_test(devices_listed_and_bandwidth_measured),
    };
    return tu_run_tests(tests, NULL, NULL);
}
