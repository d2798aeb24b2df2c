/* pkv-attn-sweep: a developer's tool for tuning decode attention. It builds one batch of distinct
 * sequences (one prefill append each, mined, on the chosen backend; with --grow N a prompt of N tokens
 * then window-sized appends, so that a PATTERN bank fills as in decoding), loads copies of the cache until
 * they hold >= 256 MiB (so each step reads from memory, not L2), then times pkv_attention under each
 * variant: a list of environment settings separated by ';' (e.g. "PKV_ATTN_GROUPS=512;PKV_ATTN_GROUPS=2048
 * PKV_ATTN_SEPARATE_MERGE=1"; an empty entry is the default). It prints, per variant, the median device
 * time, the median host wall time, the bandwidth and the largest relative difference from the first
 * variant's output.
 *
 * With --data bench the tokens and queries are pkv bench's synthetic data (bench/pkv/synth.h: keys in
 * runs of 16 that share a centre, as real keys share patterns) instead of this tool's own (a centre
 * drawn per token), so that a sweep times what the bench's speed table times.
 *
 *   pkv-attn-sweep --backend vulkan --batch 8 --context 32768 --mode pattern --bits 2 --variants ";A=1"
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "gpu_clocks.h"
#include "patternkv.h"
#include "synth.h"

/* The library's (patternkv_static, src/core/attn_plan.h): re-reads the PKV_ATTN_* switches. */
void pkv_attn_env_reload(pkv_context *ctx);

#define MAX_COPIES 16
#define ROTATE_BYTES (256.0 * 1024 * 1024)

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float uniform(void) /* xorshift64*, in [-1, 1) */
{
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return (float)((rng_state * 0x2545F4914F6CDD1Dull) >> 40) / (float)(1u << 23) - 1.0f;
}

#define CHECK(call)                                                                                          \
    do {                                                                                                     \
        pkv_status s_ = (call);                                                                              \
        if (s_ != PKV_OK) {                                                                                  \
            fprintf(stderr, "%s: %s: %s\n", #call, pkv_status_string(s_), pkv_last_error());                \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

/* Keys near one of a few per-head centres that drift with position (like post-RoPE keys), Gaussian-ish
 * values. The sines come from small tables: generating 32K-token prompts must not dominate a GPU run. */
static void make_tokens(uint32_t n, uint32_t H, uint32_t d, uint32_t seq, float *k, float *v)
{
    float *centre = malloc((size_t)16 * H * d * sizeof(float)), drift[5];
    if (!centre) exit(1);
    for (uint32_t c = 0; c < 16; c++)
        for (uint32_t h = 0; h < H; h++)
            for (uint32_t i = 0; i < d; i++)
                centre[((size_t)c * H + h) * d + i] = sinf(0.37f * (float)(c * 131 + i * 7 + h * 17 + seq)) * 2.0f;
    for (uint32_t t = 0; t < n; t++) {
        for (uint32_t f = 0; f < 5; f++) drift[f] = 0.5f * sinf((float)t * 1e-3f * (float)(1 + f));
        for (uint32_t h = 0; h < H; h++) {
            uint32_t c = (uint32_t)((uniform() + 1.0f) * 8.0f) % 16;
            for (uint32_t i = 0; i < d; i++) {
                k[((size_t)t * H + h) * d + i] = centre[((size_t)c * H + h) * d + i] + drift[i % 5] + 0.4f * uniform();
                v[((size_t)t * H + h) * d + i] = uniform() + 0.3f * uniform();
            }
        }
    }
    free(centre);
}

/* pkv bench's synthetic tokens (layer 0, seed 1): the same for every sequence of the batch, as the
 * bench's; [n][H][d]. */
static void bench_tokens(uint32_t n, uint32_t H, uint32_t qh, uint32_t d, float *k, float *v)
{
    synth_params sp = {1, H, qh, d};
    float *hk = malloc((size_t)n * d * sizeof(float)), *hv = malloc((size_t)n * d * sizeof(float));
    if (!hk || !hv) exit(1);
    for (uint32_t h = 0; h < H; h++) {
        synth_kv(&sp, 0, h, 0, n, hk, hv);
        for (uint32_t t = 0; t < n; t++) {
            memcpy(k + ((size_t)t * H + h) * d, hk + (size_t)t * d, d * sizeof(float));
            memcpy(v + ((size_t)t * H + h) * d, hv + (size_t)t * d, d * sizeof(float));
        }
    }
    free(hk);
    free(hv);
}

int main(int argc, char **argv)
{
    const char *backend = "auto", *mode_name = "pattern", *variants = "", *bw_sizes = NULL, *data = "sweep";
    uint32_t batch = 1, context = 32768, bits = 2, H = 8, qh = 32, d = 128, steps = 40, grow = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--batch")) batch = (uint32_t)atoi(v);
        else if (!strcmp(a, "--context")) context = (uint32_t)atoi(v);
        else if (!strcmp(a, "--mode")) mode_name = v;
        else if (!strcmp(a, "--bits")) bits = (uint32_t)atoi(v);
        else if (!strcmp(a, "--kv-heads")) H = (uint32_t)atoi(v);
        else if (!strcmp(a, "--q-heads")) qh = (uint32_t)atoi(v);
        else if (!strcmp(a, "--head-dim")) d = (uint32_t)atoi(v);
        else if (!strcmp(a, "--steps")) steps = (uint32_t)atoi(v);
        else if (!strcmp(a, "--grow")) grow = (uint32_t)atoi(v);
        else if (!strcmp(a, "--variants")) variants = v;
        else if (!strcmp(a, "--data")) data = v; /* sweep (default) or bench */
        else if (!strcmp(a, "--bw-sizes")) bw_sizes = v; /* MiB list: read bandwidth at each size, then exit */
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    pkv_context_params cp = pkv_context_params_default();
    CHECK(pkv_backend_from_name(backend, &cp.backend));
    pkv_context *ctx;
    CHECK(pkv_context_create(&cp, &ctx));
    if (bw_sizes) {
        for (const char *p = bw_sizes; *p;) {
            char *end;
            unsigned long mib = strtoul(p, &end, 10);
            double g = 0;
            for (int rep = 0; rep < 3; rep++) {
                CHECK(pkv_measure_read_bandwidth(ctx, (uint64_t)mib << 20, &g));
                printf("read %5lu MiB: %.0f GB/s\n", mib, g);
            }
            p = *end ? end + 1 : end;
        }
        pkv_context_free(ctx);
        return 0;
    }
    pkv_cache_config cfg = pkv_cache_config_default();
    cfg.n_kv_heads = H, cfg.head_dim = d, cfg.k_bits = cfg.v_bits = bits;
    cfg.mode = !strcmp(mode_name, "fp16") ? PKV_MODE_FP16 : !strcmp(mode_name, "direct") ? PKV_MODE_DIRECT : PKV_MODE_PATTERN;
    cfg.memory_budget = (uint64_t)batch * context * H * d * 5 + (64u << 20);
    CHECK(pkv_cache_config_resolve(&cfg)); /* the mode's group and window, used below */
    pkv_cache *caches[MAX_COPIES];
    CHECK(pkv_cache_create(ctx, &cfg, &caches[0]));
    pkv_seq *seqs = malloc(batch * sizeof *seqs);
    float *k = malloc((size_t)context * H * d * sizeof(float)), *v = malloc((size_t)context * H * d * sizeof(float));
    double t0 = now_ms();
    const int bench_data = !strcmp(data, "bench");
    if (bench_data) bench_tokens(context, H, qh, d, k, v);
    for (uint32_t b = 0; b < batch; b++) {
        if (!bench_data) make_tokens(context, H, d, b, k, v);
        CHECK(pkv_seq_create(caches[0], &seqs[b]));
        /* one prefill, or (--grow N) a prompt of N tokens then appends of one window each, as decoding
         * grows a cache: its PATTERN bank then gains a pattern per flushed window, up to capacity */
        uint32_t first = grow ? (grow < context ? grow : context) : context;
        CHECK(pkv_append(caches[0], seqs[b], 0, first, k, v, PKV_F32));
        for (uint32_t done = first, R = cfg.window ? cfg.window : cfg.group_size; done < context;) {
            uint32_t n = context - done < R ? context - done : R;
            CHECK(pkv_append(caches[0], seqs[b], 0, n, k + (size_t)done * H * d, v + (size_t)done * H * d, PKV_F32));
            done += n;
        }
    }
    pkv_cache_stats st = {.struct_size = sizeof st};
    CHECK(pkv_cache_stats_get(caches[0], &st));
    const double bytes = (double)(st.bytes_codes + st.bytes_scales + st.bytes_indices + st.bytes_masks +
                                  st.bytes_padding + st.bytes_patterns + st.bytes_window);
    uint32_t copies = 1;
    while (copies < MAX_COPIES && copies * bytes < ROTATE_BYTES) copies++;
    char path[] = "/tmp/pkv-sweep-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    CHECK(pkv_cache_save(caches[0], path));
    for (uint32_t i = 1; i < copies; i++) CHECK(pkv_cache_load(ctx, path, &caches[i]));
    remove(path);
    pkv_device_info info = {.struct_size = sizeof info};
    CHECK(pkv_context_device(ctx, &info, NULL, 0));
    double bw = 0;
    if (pkv_measure_read_bandwidth(ctx, 0, &bw) != PKV_OK) bw = NAN;
    printf("%s (%s): %s %u-bit, batch %u x %u tokens, %u q heads / %u kv heads, d %u: %.1f MB per step, %u copies "
           "(built in %.1f s); read bandwidth %.0f GB/s\n",
           info.name, pkv_backend_name(info.backend), mode_name, bits, batch, context, qh, H, d, bytes / 1e6, copies,
           (now_ms() - t0) / 1e3, bw);

    const size_t nq = (size_t)batch * qh * d;
    float *q = malloc(nq * sizeof(float)), *out = malloc(nq * sizeof(float)), *ref = malloc(nq * sizeof(float));
    for (size_t i = 0; i < nq; i++) q[i] = uniform() * 1.5f;
    if (bench_data) {
        synth_params sp = {1, H, qh, d};
        for (uint32_t b = 0; b < batch; b++) /* the bench's queries: position b of each query head */
            for (uint32_t h = 0; h < qh; h++) synth_q(&sp, 0, h, b, q + ((size_t)b * qh + h) * d);
    }
    pkv_attention_params ap = pkv_attention_params_default();
    ap.seqs = seqs, ap.n_seqs = batch, ap.q_len = 1, ap.n_q_heads = qh;
    double *dev = malloc(steps * sizeof(double)), *host = malloc(steps * sizeof(double));
    printf("%-48s %10s %10s %9s %9s %11s\n", "variant", "device ms", "host ms", "GB/s", "of BW", "max rel diff");
    char *list = strdup(variants);
    int first = 1;
    for (char *var = list; var; first = 0) { /* entries split at ';', empty ones kept (the default) */
        char *next = strchr(var, ';');
        if (next) *next++ = 0;
        char setting[512], names[16][64];
        int n_names = 0;
        snprintf(setting, sizeof setting, "%s", var);
        for (char *s2 = NULL, *kv = strtok_r(setting, " ", &s2); kv && n_names < 16; kv = strtok_r(NULL, " ", &s2)) {
            char *eq = strchr(kv, '=');
            if (!eq) continue;
            snprintf(names[n_names], sizeof names[0], "%.*s", (int)(eq - kv), kv);
            setenv(names[n_names++], eq + 1, 1);
        }
        pkv_attn_env_reload(ctx); /* the library reads PKV_ATTN_* once per context */
        /* every copy once, then groups of timed steps right after bursts of heavy calls (gpu_clocks.h) */
        for (uint32_t i = 0; i < copies; i++) CHECK(pkv_attention(caches[i], &ap, q, out));
        gpu_burst burst;
        if (gpu_burst_init(&burst, &ap, context, d, q)) return 1;
        for (uint32_t i = 0; i < steps; i++) {
            if (i % GPU_BURST_STEPS == 0) CHECK(gpu_burst_run(&burst, caches[i % copies], GPU_BURST_SECONDS));
            double h0 = now_ms();
            CHECK(pkv_attention(caches[i % copies], &ap, q, out));
            host[i] = now_ms() - h0;
            CHECK(pkv_last_op_time(ctx, &dev[i]));
        }
        gpu_burst_free(&burst);
        double diff = 0, norm = 0;
        if (first) memcpy(ref, out, nq * sizeof(float));
        for (size_t i = 0; i < nq; i++) {
            diff = fmax(diff, fabs((double)out[i] - ref[i]));
            norm = fmax(norm, fabs((double)ref[i]));
        }
        double ms = bench_median(dev, steps);
        printf("%-48s %10.4f %10.4f %9.1f %8.1f%% %11.2e\n", *var ? var : "(default)", ms, bench_median(host, steps),
               bytes / (ms * 1e-3) / 1e9, 100 * bytes / (ms * 1e-3) / 1e9 / bw, diff / norm);
        fflush(stdout);
        for (int i = 0; i < n_names; i++) unsetenv(names[i]);
        pkv_attn_env_reload(ctx);
        var = next;
    }
    free(list);
    for (uint32_t i = 0; i < copies; i++) pkv_cache_free(caches[i]);
    pkv_context_free(ctx);
    free(seqs), free(k), free(v), free(q), free(out), free(ref), free(dev), free(host);
    return 0;
}
