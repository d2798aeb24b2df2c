/* Device-level measurements: streaming-read bandwidth and the cold/warm time to a first result. */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "internal.h" /* pkv_context's backend: its driver_ms */
#include "timer.h"

/* ---- host memory read bandwidth (the CPU backend's device is host memory) ---- */

#define HOST_BW_BYTES (256u << 20)
#define HOST_BW_REPEATS 5

typedef struct read_job {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} read_job;

static void *read_slice(void *arg)
{
    read_job *j = arg;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= j->n; i += 4) {
        s0 += j->p[i];
        s1 += j->p[i + 1];
        s2 += j->p[i + 2];
        s3 += j->p[i + 3];
    }
    for (; i < j->n; i++) s0 += j->p[i];
    j->sum = s0 + s1 + s2 + s3;
    return NULL;
}

static double host_read_bandwidth(uint32_t n_threads)
{
    size_t words = HOST_BW_BYTES / 8;
    uint64_t *buf = malloc(HOST_BW_BYTES);
    if (!buf) return NAN;
    for (size_t i = 0; i < words; i++) buf[i] = i * 0x9E3779B97F4A7C15ull;
    if (n_threads == 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = nc > 0 ? (uint32_t)nc : 1;
    }
    if (n_threads > 64) n_threads = 64;
    pthread_t th[64];
    read_job jobs[64];
    double best = INFINITY;
    volatile uint64_t sink = 0;
    for (int rep = 0; rep < HOST_BW_REPEATS; rep++) {
        int created[64] = {0};
        double t0 = cli_now();
        for (uint32_t t = 0; t < n_threads; t++) {
            size_t a = words * t / n_threads, b = words * (t + 1) / n_threads;
            jobs[t] = (read_job){buf + a, b - a, 0};
            if (t > 0) created[t] = pthread_create(&th[t], NULL, read_slice, &jobs[t]) == 0;
        }
        read_slice(&jobs[0]);
        for (uint32_t t = 1; t < n_threads; t++) {
            if (created[t]) pthread_join(th[t], NULL);
            else read_slice(&jobs[t]); /* could not start a thread: read it here */
        }
        double dt = cli_now() - t0;
        for (uint32_t t = 0; t < n_threads; t++) sink += jobs[t].sum;
        if (dt < best) best = dt;
    }
    (void)sink;
    free(buf);
    return (double)HOST_BW_BYTES / best / 1e9;
}

double bench_read_bandwidth(pkv_context *ctx, const pkv_device_info *dev, char *method, size_t method_len)
{
#ifdef PKV_HAVE_MEASURE_BW
    double gbps = NAN;
    pkv_status s = pkv_measure_read_bandwidth(ctx, 256ull << 20, &gbps);
    if (s == PKV_OK && gbps > 0) {
        snprintf(method, method_len, "%s streaming-read kernel, 256 MiB", pkv_backend_name(dev->backend));
        return gbps;
    }
#else
    (void)ctx;
#endif
    if (dev->backend == PKV_BACKEND_CPU) {
        snprintf(method, method_len, "host read loop, 256 MiB, all cores");
        return host_read_bandwidth(0);
    }
    snprintf(method, method_len, "not measured: this build has no device read-bandwidth probe");
    return NAN;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void bench_read_bw_sample(pkv_context *ctx, bench_report *r)
{
    enum { MAXS = sizeof r->read_bw_samples / sizeof *r->read_bw_samples };
    if (r->n_read_bw >= MAXS) return;
    char method[sizeof r->read_bw_method];
    double g = bench_read_bandwidth(ctx, &r->device, method, sizeof method);
    if (r->n_read_bw == 0) snprintf(r->read_bw_method, sizeof r->read_bw_method, "%s", method);
    r->read_bw_samples[r->n_read_bw++] = g;
    double v[MAXS];
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->n_read_bw; i++)
        if (isfinite(r->read_bw_samples[i]) && r->read_bw_samples[i] > 0) v[n++] = r->read_bw_samples[i];
    if (!n) {
        r->read_bw_gbps = r->read_bw_min = r->read_bw_max = NAN;
        return;
    }
    qsort(v, n, sizeof *v, cmp_double);
    r->read_bw_gbps = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    r->read_bw_min = v[0], r->read_bw_max = v[n - 1];
}

/* ---- cold and warm time to a first attention result ---- */

static void remove_tree(const char *path)
{
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char child[4096];
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(child);
            else unlink(child);
        }
        closedir(dir);
    }
    rmdir(path);
}

/* Context, cache, a first append (mining in PATTERN mode) and a first attention: the time to a first
 * result. The cache is cc, or a small default (one head of 64, 64 tokens). */
static int first_result(const pkv_context_params *p, const pkv_cache_config *given, startup_split *sp, char *err,
                        size_t err_len)
{
    double t0 = cli_now(), t1 = t0, t2 = t0;
    pkv_context *ctx = NULL;
    pkv_cache *cache = NULL;
    pkv_seq seq;
    pkv_cache_config cc = pkv_cache_config_default();
    if (given) cc = *given;
    else {
        cc.n_layers = 1;
        cc.n_kv_heads = 1;
        cc.head_dim = 64;
        cc.group_size = 32;
        cc.n_patterns = 4;
        cc.memory_budget = 4u << 20;
    }
    const uint32_t H = cc.n_kv_heads, D = cc.head_dim, N = given ? 2 * cc.group_size : 64;
    float *k = malloc((size_t)N * H * D * sizeof *k), *v = malloc((size_t)N * H * D * sizeof *v);
    float *q = malloc((size_t)H * D * sizeof *q), *out = malloc((size_t)H * D * sizeof *out);
    if (!k || !v || !q || !out) {
        free(k), free(v), free(q), free(out);
        snprintf(err, err_len, "out of host memory");
        return -1;
    }
    for (uint32_t i = 0; i < N * H * D; i++) {
        k[i] = (float)((int)(i * 37 % 101) - 50) * 0.02f;
        v[i] = (float)((int)(i * 53 % 97) - 48) * 0.02f;
    }
    for (uint32_t i = 0; i < H * D; i++) q[i] = (float)((int)(i * 11 % 13) - 6) * 0.1f;
    pkv_attention_params ap = pkv_attention_params_default();
    ap.seqs = &seq, ap.n_seqs = 1, ap.n_q_heads = H;
    pkv_status s = pkv_context_create(p, &ctx);
    t1 = cli_now();
    if (s == PKV_OK) s = pkv_cache_create(ctx, &cc, &cache);
    t2 = cli_now();
    if (s == PKV_OK) s = pkv_seq_create(cache, &seq);
    if (s == PKV_OK) s = pkv_append(cache, seq, 0, N, k, v, PKV_F32);
    if (s == PKV_OK) s = pkv_attention(cache, &ap, q, out);
    const double t3 = cli_now();
    sp->total_ms = (t3 - t0) * 1e3;
    sp->driver_ms = ctx ? ctx->be->driver_ms : NAN;
    sp->context_ms = (t1 - t0) * 1e3 - (ctx ? ctx->be->driver_ms : 0.0);
    sp->cache_ms = (t2 - t1) * 1e3, sp->first_ms = (t3 - t2) * 1e3;
    if (s != PKV_OK) snprintf(err, err_len, "%s: %s", pkv_status_string(s), pkv_last_error());
    if (cache) pkv_cache_free(cache);
    if (ctx) pkv_context_free(ctx);
    free(k), free(v), free(q), free(out);
    return s == PKV_OK ? 0 : -1;
}

static int startup_times(const pkv_context_params *base, const pkv_cache_config *cc, startup_split *cold,
                         startup_split *warm, char *err, size_t err_len)
{
    const char *tmp = getenv("TMPDIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/pkv-startup-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        snprintf(err, err_len, "cannot create a temporary pipeline-cache directory in %s", tmp && *tmp ? tmp : "/tmp");
        return -1;
    }
    pkv_context_params p = *base;
    p.cache_dir = dir;
    int rc = first_result(&p, cc, cold, err, err_len);
    if (rc == 0) rc = first_result(&p, cc, warm, err, err_len);
    remove_tree(dir);
    return rc;
}

int bench_startup_times(const pkv_context_params *base, double *cold_ms, double *warm_ms, char *err, size_t err_len)
{
    return bench_startup_times_for(base, NULL, cold_ms, warm_ms, err, err_len);
}

int bench_startup_times_for(const pkv_context_params *base, const pkv_cache_config *cc, double *cold_ms,
                            double *warm_ms, char *err, size_t err_len)
{
    startup_split c, w;
    int rc = startup_times(base, cc, &c, &w, err, err_len);
    if (rc == 0) *cold_ms = c.total_ms, *warm_ms = w.total_ms;
    return rc;
}

int bench_startup_split_for(const pkv_context_params *base, const pkv_cache_config *cc, startup_split *cold,
                            startup_split *warm, char *err, size_t err_len)
{
    return startup_times(base, cc, cold, warm, err, err_len);
}
