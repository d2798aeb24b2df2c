/* The bench's prefill figure in-process (session 12, issue 15): `pkv bench`'s "prefill tokens/s" is ONE
 * pkv_append of 256 fp32 tokens (8 KV heads x head_dim 128, synthetic data of seed 1, PATTERN mode, the
 * bench's cache config) into a fresh cache: bench_speed.c's PREFILL_TOKENS, min(256, first speed
 * context). This repeats it: round 0 is the process's first call (cold: thread pool start, scratch and
 * conversion buffer page faults), the others each into a new cache (warm scratch).
 * Build (from the repository root, after a Release build in build/):
 *   gcc -O2 -Iinclude -Ibench/pkv -Isrc/core bench/results/2026-12-05_cpu_prefill_s12/prefill_calls.c \
 *       bench/pkv/synth.c build/libpatternkv.a -lm -lpthread -ldl -o /tmp/prefill_calls
 * Run: /tmp/prefill_calls ROUNDS THREADS [BITS [TOKENS [MODE: 0 pattern, 1 direct, 2 fp16]]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "patternkv.h"
#include "synth.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    const int rounds = argc > 1 ? atoi(argv[1]) : 10, threads = argc > 2 ? atoi(argv[2]) : 0;
    const int bits = argc > 3 ? atoi(argv[3]) : 2, mode = argc > 5 ? atoi(argv[5]) : 0;
    const uint32_t T = argc > 4 ? (uint32_t)atoi(argv[4]) : 256, H = 8, D = 128;
    if (rounds < 2) return fprintf(stderr, "rounds >= 2\n"), 1;
    synth_params sp = {1, H, 32, D};
    float *k = malloc((size_t)T * H * D * 4), *v = malloc((size_t)T * H * D * 4), *tk = malloc((size_t)T * D * 4),
          *tv = malloc((size_t)T * D * 4);
    if (!k || !v || !tk || !tv) return 1;
    for (uint32_t h = 0; h < H; h++) {
        synth_kv(&sp, 0, h, 0, T, tk, tv);
        for (uint32_t t = 0; t < T; t++) {
            memcpy(k + ((size_t)t * H + h) * D, tk + (size_t)t * D, D * 4);
            memcpy(v + ((size_t)t * H + h) * D, tv + (size_t)t * D, D * 4);
        }
    }
    pkv_context_params cp = pkv_context_params_default();
    cp.backend = PKV_BACKEND_CPU, cp.n_threads = (uint32_t)threads;
    pkv_context *ctx;
    if (pkv_context_create(&cp, &ctx) != PKV_OK) return fprintf(stderr, "context\n"), 1;
    double first = 0, best = 1e9, sum = 0;
    for (int r = 0; r < rounds; r++) {
        pkv_cache_config cc = pkv_cache_config_default();
        cc.n_layers = 1, cc.n_kv_heads = H, cc.head_dim = D;
        cc.mode = mode == 0 ? PKV_MODE_PATTERN : mode == 1 ? PKV_MODE_DIRECT : PKV_MODE_FP16;
        if (mode < 2) cc.k_bits = cc.v_bits = (uint32_t)bits;
        cc.group_size = 128, cc.window = 0, cc.n_patterns = 32, cc.bank_capacity = 256, cc.seed = 1 ^ 0x5EEDull;
        const uint64_t row = 4ull * D * H; /* bench_speed.c's budget at --speed-contexts 1024,4096 */
        cc.memory_budget = (uint64_t)4096 * row * 5 / 4 + (uint64_t)(256 + 32 + 2 * 128) * row + (8u << 20);
        pkv_cache *c;
        pkv_seq s;
        if (pkv_cache_create(ctx, &cc, &c) != PKV_OK || pkv_seq_create(c, &s) != PKV_OK) return fprintf(stderr, "cache\n"), 1;
        const double t0 = now();
        const pkv_status st = pkv_append(c, s, 0, T, k, v, PKV_F32);
        const double t = (now() - t0) * 1e3;
        if (st != PKV_OK) return fprintf(stderr, "append: %s\n", pkv_last_error()), 1;
        if (r == 0) first = t;
        else sum += t, best = t < best ? t : best;
        pkv_cache_free(c);
    }
    printf("first %.3f ms (%.0f tok/s); rest min %.3f ms (%.0f tok/s) mean %.3f ms\n", first, T / first * 1e3, best,
           T / best * 1e3, sum / (rounds - 1));
    pkv_context_free(ctx);
    free(k), free(v), free(tk), free(tv);
    return 0;
}
