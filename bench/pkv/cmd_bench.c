/* pkv bench: picks the device, loads or generates the data, runs the parts, writes the reports. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli_util.h"
#include "commands.h"
#include "kv_data.h"
#include "progress.h"
#include "timer.h"

#define FIXTURE_PATH "data/tinyllm/kv_fixture.safetensors"
#define DEFAULT_TOKENS 2048u
#define DEFAULT_LAYERS 2u
/* Elements (layers x kv heads x tokens x head_dim) a default run measures for fidelity. */
#define DEFAULT_WORK (DEFAULT_LAYERS * 8u * DEFAULT_TOKENS * 128u)

static const char *find_fixture(void)
{
    static char path[4096];
    const char *env = getenv("PKV_KV_FIXTURE");
    if (env && *env) return access(env, R_OK) == 0 ? env : NULL;
    return cli_repo_file(FIXTURE_PATH, path, sizeof path);
}

static synth_params synth_shape(const bench_options *o)
{
    synth_params sp = {o->seed, o->n_kv_heads, o->n_q_heads ? o->n_q_heads : 4 * o->n_kv_heads, o->head_dim};
    return sp;
}

/* The speed part measures the user's --kv data, else synthetic data at the option shape (default
 * 8 kv heads, 32 query heads, head_dim 128, like Llama-3-8B): the built-in fixture comes from a tiny
 * model whose heads are too small to say anything about speed. The generator makes tokens on
 * demand, so only a few queries are stored. */
static int speed_data(const bench_options *o, const kv_data *fidelity_data, kv_data *d, int *own, char *err,
                      size_t err_len)
{
    *own = 0;
    if (o->kv_path || (fidelity_data->synthetic && fidelity_data->n_tokens >= 16)) {
        *d = *fidelity_data;
        return 0;
    }
    synth_params sp = synth_shape(o);
    *own = 1;
    return kv_data_synthetic(d, &sp, 1, 16, 8, 8, err, err_len);
}

static int load_data(const bench_options *o, kv_data *d, char *err, size_t err_len)
{
    const char *path = o->kv_path;
    if (!path && !o->force_synthetic) path = find_fixture();
    if (path) {
        uint32_t layers = o->n_layers, tokens = o->context;
        if (!o->kv_path) {
            /* the built-in fixture: keep a default run short (first DEFAULT_TOKENS tokens, and as many
             * layers as fit in DEFAULT_WORK elements) */
            if (!tokens) tokens = DEFAULT_TOKENS;
            if (!layers) {
                kv_data probe;
                int rc = kv_data_load(&probe, path, 1, 1, 0, 0, 1, o->seed, err, err_len);
                if (rc) return rc;
                uint64_t per_layer = (uint64_t)probe.n_kv_heads * tokens * probe.head_dim;
                layers = (uint32_t)(DEFAULT_WORK / (per_layer ? per_layer : 1));
                if (layers < 1) layers = 1;
                kv_data_free(&probe);
            }
        }
        return kv_data_load(d, path, layers, tokens, o->prefill, o->n_q_heads, o->n_queries, o->seed, err, err_len);
    }
    synth_params sp = synth_shape(o);
    return kv_data_synthetic(d, &sp, o->n_layers ? o->n_layers : DEFAULT_LAYERS, o->context ? o->context : DEFAULT_TOKENS,
                             o->prefill, o->n_queries, err, err_len);
}

static int check_env_backend(const pkv_device_info *dev, const bench_options *o, const char *why, char *err,
                             size_t err_len)
{
    const char *env = getenv("PKV_BACKEND");
    pkv_backend_kind want;
    if (o->backend != PKV_BACKEND_AUTO || !env || !*env) return 0;
    if (pkv_backend_from_name(env, &want) != PKV_OK) {
        snprintf(err, err_len, "PKV_BACKEND=%s is not a backend name (auto, cpu, vulkan, opencl)", env);
        return -1;
    }
    if (want != PKV_BACKEND_AUTO && want != dev->backend) {
        snprintf(err, err_len, "PKV_BACKEND=%s asked for %s but the context runs on %s (%s)", env,
                 pkv_backend_name(want), pkv_backend_name(dev->backend), why);
        return -1;
    }
    return 0;
}

static int run(bench_options *o, bench_report *r, char *err, size_t err_len)
{
    double t_start = cli_now();
    pkv_context_params cp = pkv_context_params_default();
    cp.backend = o->backend;
    cp.device_index = o->device_index;
    cp.device_name = o->device_name;
    cp.n_threads = o->n_threads;
    pkv_context *ctx = NULL;
    pkv_status s = pkv_context_create(&cp, &ctx);
    if (s != PKV_OK) {
        snprintf(err, err_len, "no device: %s: %s", pkv_status_string(s), pkv_last_error());
        return -1;
    }
    int rc = -1;
    kv_data data = {0}, sdata = {0};
    int own_sdata = 0;
    progress_bar bar;
    progress_init(&bar, o->progress);
    r->device.struct_size = sizeof r->device;
    s = pkv_context_device(ctx, &r->device, r->why, sizeof r->why);
    if (s != PKV_OK) {
        snprintf(err, err_len, "device query failed: %s: %s", pkv_status_string(s), pkv_last_error());
        goto done;
    }
    if (check_env_backend(&r->device, o, r->why, err, err_len)) goto done;
    int cpu_like = r->device.type == PKV_DEVICE_CPU;
    if (!o->speed_set) {
        static const uint32_t cpu_ctx[] = {512, 2048}, gpu_ctx[] = {1024, 4096, 16384, 32768};
        const uint32_t *list = cpu_like ? cpu_ctx : gpu_ctx;
        o->n_speed_contexts = cpu_like ? 2 : 4;
        memcpy(o->speed_contexts, list, o->n_speed_contexts * sizeof *list);
    }
    r->batch = o->batch ? o->batch : (cpu_like ? 1 : 4);

    progress_update(&bar, 0, "loading data");
    if (load_data(o, &data, err, err_len)) goto done;
    snprintf(r->data_source, sizeof r->data_source, "%s", data.source);
    r->q_from_keys = data.q_from_keys;
    r->n_layers = data.n_layers;
    r->n_tokens = data.n_tokens;
    r->n_kv_heads = data.n_kv_heads;
    r->n_q_heads = data.n_q_heads;
    r->head_dim = data.head_dim;
    r->n_queries = data.q_tokens;
    r->prefill = data.prefill;
    r->read_bw_gbps = r->read_bw_min = r->read_bw_max = NAN;
    r->n_read_bw = 0;
    r->startup_cold_ms = r->startup_warm_ms = NAN;
    snprintf(r->read_bw_method, sizeof r->read_bw_method, "not measured");

    int do_speed = o->n_speed_contexts > 0 || !o->skip_throughput;
    double f_end = o->skip_fidelity ? 0.0 : (do_speed ? 0.45 : 0.9);
    if (!o->skip_fidelity) {
        progress_part(&bar, 0.0, f_end);
        double t0 = cli_now();
        if (bench_fidelity(ctx, o, &data, r, progress_update, &bar, err, err_len)) goto done;
        r->fidelity_seconds = cli_now() - t0;
    }
    if (o->n_speed_contexts) {
        progress_part(&bar, f_end, f_end);
        progress_update(&bar, 0, "read bandwidth");
        bench_read_bw_sample(ctx, r); /* the first probe; bench_speed takes one after each mode */
    }
    if (do_speed || o->write_path || o->decode_step) {
        if (speed_data(o, &data, &sdata, &own_sdata, err, err_len)) goto done;
        snprintf(r->speed_source, sizeof r->speed_source, "%s", sdata.source);
        r->speed_kv_heads = sdata.n_kv_heads;
        r->speed_q_heads = sdata.n_q_heads;
        r->speed_head_dim = sdata.head_dim;
    }
    if (do_speed) {
        progress_part(&bar, f_end, o->write_path ? 0.7 : 0.93);
        double t0 = cli_now();
        if (bench_speed(ctx, o, &sdata, r, progress_update, &bar, err, err_len)) goto done;
        r->speed_seconds = cli_now() - t0;
    }
    if (o->decode_step) {
        double t0 = cli_now();
        if (bench_decode_step(ctx, o, &sdata, r, progress_update, &bar, err, err_len)) goto done;
        r->decode_step_seconds = cli_now() - t0;
    }
    if (o->write_path) {
        progress_part(&bar, do_speed ? 0.7 : f_end, 0.93);
        double t0 = cli_now();
        pkv_context_params wp = cp;
        wp.backend = r->device.backend;
        wp.device_index = (int)r->device.index;
        wp.device_name = NULL;
        if (bench_write_path(ctx, &wp, o, &sdata, r, progress_update, &bar, err, err_len)) goto done;
        r->write_path_seconds = cli_now() - t0;
    }
    progress_part(&bar, 0.93, 1.0);
    progress_update(&bar, 0, "memory");
    if (bench_memory(ctx, o, &data, r, err, err_len)) goto done;
    progress_update(&bar, 0.5, "startup");
    char serr[256];
    pkv_context_params sp = cp;
    sp.backend = r->device.backend;
    sp.device_index = (int)r->device.index;
    sp.device_name = NULL;
    if (bench_startup_times(&sp, &r->startup_cold_ms, &r->startup_warm_ms, serr, sizeof serr))
        fprintf(stderr, "pkv bench: startup timing failed: %s\n", serr);
    r->total_seconds = cli_now() - t_start;
    rc = 0;
done:
    progress_done(&bar);
    if (own_sdata) kv_data_free(&sdata);
    kv_data_free(&data);
    pkv_context_free(ctx);
    return rc;
}

int pkv_cmd_bench(int argc, char **argv)
{
    bench_options o;
    int prc = bench_parse_options(argc, argv, &o);
    if (prc == 1) return 0; /* --help */
    if (prc) return prc;
    bench_report *r = calloc(1, sizeof *r);
    if (!r) {
        fprintf(stderr, "pkv bench: out of memory\n");
        return 1;
    }
    char err[1024] = "";
    int rc = run(&o, r, err, sizeof err);
    if (rc == 0) {
        report_table(stdout, &o, r);
        fflush(stdout);
        if (o.json_path && report_json(o.json_path, &o, r, err, sizeof err)) rc = -1;
        if (rc == 0 && o.plot_path && report_svg(o.plot_path, r, err, sizeof err)) rc = -1;
    }
    free(r);
    if (rc) {
        fprintf(stderr, "pkv bench: error: %s\n", err);
        return 1;
    }
    return 0;
}
