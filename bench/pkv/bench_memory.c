/* Memory: bytes per token per layer of a model shape (measured from a small cache of that shape,
 * so padding and every part are counted as stored) and how many tokens fit in a given memory.
 * Every backend stores the same block layout, so the probe runs on the CPU backend (a GPU context
 * would only add launch latency); `ctx` is used when the CPU backend cannot start. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "kv_data.h"
#include "synth.h"

int bench_memory(pkv_context *ctx, const bench_options *o, const kv_data *d, bench_report *r, char *err,
                 size_t err_len)
{
    (void)d;
    pkv_context *cpu = NULL;
    pkv_context_params cp = pkv_context_params_default();
    cp.backend = PKV_BACKEND_CPU;
    if (pkv_context_create(&cp, &cpu) == PKV_OK) ctx = cpu;
    int rc = -1;
    uint32_t H = o->model_kv_heads, D = o->model_head_dim, L = o->model_layers;
    synth_params sp = {o->seed, H, H, D};
    r->n_memory = 0;
    for (uint32_t i = 0; i < o->n_configs; i++) {
        const bench_config *c = &o->configs[i];
        pkv_cache_config cc = bench_cache_config(o, c, 1, H, D);
        uint32_t R = cc.window ? cc.window : cc.group_size;
        uint32_t prefill = 4 * cc.group_size, n = prefill + R;
        cc.memory_budget = (uint64_t)(n + cc.bank_capacity + 64 + R) * 4 * D * H * 2 + (4u << 20);
        float *k = malloc((size_t)n * H * D * sizeof(float)), *v = malloc((size_t)n * H * D * sizeof(float));
        float *tk = malloc((size_t)n * D * sizeof(float)), *tv = malloc((size_t)n * D * sizeof(float));
        pkv_cache *cache = NULL;
        pkv_seq seq;
        pkv_status s = PKV_ERR_OUT_OF_HOST_MEMORY;
        pkv_cache_stats st = {.struct_size = sizeof st};
        if (k && v && tk && tv) {
            for (uint32_t h = 0; h < H; h++) {
                synth_kv(&sp, 0, h, 0, n, tk, tv);
                for (uint32_t t = 0; t < n; t++) {
                    memcpy(k + ((size_t)t * H + h) * D, tk + (size_t)t * D, D * sizeof(float));
                    memcpy(v + ((size_t)t * H + h) * D, tv + (size_t)t * D, D * sizeof(float));
                }
            }
            s = pkv_cache_create(ctx, &cc, &cache);
            if (s == PKV_OK) s = pkv_seq_create(cache, &seq);
            if (s == PKV_OK) s = pkv_append(cache, seq, 0, prefill, k, v, PKV_F32);
            if (s == PKV_OK)
                s = pkv_append(cache, seq, 0, R, k + (size_t)prefill * H * D, v + (size_t)prefill * H * D, PKV_F32);
            if (s == PKV_OK) s = pkv_cache_stats_get(cache, &st);
        }
        if (cache) pkv_cache_free(cache);
        free(k);
        free(v);
        free(tk);
        free(tv);
        if (s != PKV_OK) {
            snprintf(err, err_len, "memory probe (%s, %u kv heads, head_dim %u): %s: %s", pkv_mode_name(c->mode), H, D,
                     pkv_status_string(s), pkv_last_error());
            goto done;
        }
        if (st.tokens_compressed == 0) {
            snprintf(err, err_len, "memory probe: no token was compressed after appending %u tokens", n);
            goto done;
        }
        memory_result *m = &r->memory[r->n_memory++];
        m->cfg = *c;
        double blocks = (double)(st.bytes_codes + st.bytes_scales + st.bytes_indices + st.bytes_masks + st.bytes_padding);
        m->bytes_per_token_per_layer = blocks / (double)st.tokens_compressed;
        double banks = c->mode == PKV_MODE_PATTERN ? (double)cc.bank_capacity * 2 * D * 2 * H : 0;
        m->fixed_bytes_per_layer = banks + (double)R * 2 * D * 2 * H;
        double mem = o->memory_gib * 1073741824.0;
        double left = mem - L * m->fixed_bytes_per_layer;
        m->tokens_fit = left > 0 ? (uint64_t)floor(left / (L * m->bytes_per_token_per_layer)) : 0;
    }
    rc = 0;
done:
    if (cpu) pkv_context_free(cpu);
    return rc;
}
