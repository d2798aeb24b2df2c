/* The decode step of a model in engine mode (--decode-step): L layers (default 32), B sequences of C
 * tokens each (defaults: batches 1 and 8, 32768 tokens on GPUs). Per step, one token is appended to
 * every layer of every sequence and attention runs per layer over the batch (q_len 1), with K, V, q
 * and out in device buffers. Per config and batch:
 *   recorded_ms           the step recorded into one command buffer (pkv_vulkan_cmd_append and
 *                         pkv_vulkan_cmd_attention per layer) and submitted once: its device time
 *   recorded_host_ms      host time of that step: recording, submit, wait
 *   record_us_per_layer   host time of the library's recording calls (append + attention of every
 *                         layer), per layer; recorded steps back to back, synchronous ones after
 *   synchronous_ms        the same step through pkv_vulkan_append / pkv_vulkan_attention (host clock)
 *   attention_kernels_ms  the sum of the attention kernels' device times in a step
 *   *_per_layer           the commands the recorded calls put into the step's command buffer per layer:
 *                         dispatches, pipeline barriers, transfers (copy/update/fill), all commands
 * Medians over --steps steps (default 10) after two warm-up steps. Vulkan only (the recorded calls):
 * elsewhere the section says why and is empty. Every layer holds the same tokens (the data's layer
 * 0, repeated when the data is shorter than C); every sequence its own copy (nothing shared). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "kv_data.h"
#include "timer.h"
#ifdef PKV_CLI_WITH_VULKAN
#include "internal.h"
#include "vk_bench.h"
#endif

int bench_decode_step(pkv_context *ctx, const bench_options *o, const kv_data *data, bench_report *r,
                      bench_progress_fn progress, void *user, char *err, size_t err_len)
{
    pkv_device_info dev = {.struct_size = sizeof dev};
    pkv_context_device(ctx, &dev, NULL, 0);
    r->n_decode_step = 0;
    if (dev.backend != PKV_BACKEND_VULKAN) {
        fprintf(stderr, "pkv bench: --decode-step records into a Vulkan command buffer: not run on the %s backend\n",
                pkv_backend_name(dev.backend));
        return 0;
    }
#ifndef PKV_CLI_WITH_VULKAN
    (void)o, (void)data, (void)progress, (void)user, (void)err, (void)err_len;
    return 0;
#else
    const int cpu_like = dev.type == PKV_DEVICE_CPU;
    const uint32_t L = o->ds_layers ? o->ds_layers : 32, C = o->ds_context ? o->ds_context : (cpu_like ? 256 : 32768);
    const uint32_t H = data->n_kv_heads, d = data->head_dim, QH = data->n_q_heads ? data->n_q_heads : H;
    const uint32_t steps = o->steps ? o->steps : 10;
    uint32_t batches[BENCH_MAX_DS_BATCH] = {1, 8}, nb = cpu_like ? 1 : 2, maxb = 0;
    if (o->n_ds_batch) memcpy(batches, o->ds_batch, (nb = o->n_ds_batch) * sizeof *batches);
    for (uint32_t i = 0; i < nb; i++) maxb = batches[i] > maxb ? batches[i] : maxb;
    r->ds_kv_heads = H, r->ds_q_heads = QH, r->ds_head_dim = d;
    /* the prompt, fp16, made once: C tokens of the data's layer 0, repeated */
    const size_t pn = (size_t)C * H * d;
    float *fk = malloc((size_t)data->n_tokens * H * d * sizeof *fk), *fv = malloc((size_t)data->n_tokens * H * d * sizeof *fv);
    uint16_t *pk = malloc(pn * 2), *pv = malloc(pn * 2);
    const void **kp = malloc(L * sizeof *kp), **vp = malloc(L * sizeof *vp);
    pkv_seq *seqs = malloc(maxb * sizeof *seqs);
    int rc = -1;
    if (!fk || !fv || !pk || !pv || !kp || !vp || !seqs) {
        snprintf(err, err_len, "decode step: out of host memory for a %u-token prompt", C);
        goto done;
    }
    kv_data_tokens(data, 0, 0, data->n_tokens, fk, fv);
    for (uint32_t t = 0; t < C; t += data->n_tokens) {
        const uint32_t n = C - t < data->n_tokens ? C - t : data->n_tokens;
        pkv_f32_to_f16_array(fk, pk + (size_t)t * H * d, (size_t)n * H * d);
        pkv_f32_to_f16_array(fv, pv + (size_t)t * H * d, (size_t)n * H * d);
    }
    for (uint32_t l = 0; l < L; l++) kp[l] = pk, vp[l] = pv;
    for (uint32_t i = 0; i < o->n_configs; i++) {
        const bench_config *c = &o->configs[i];
        if (progress) {
            char label[64];
            snprintf(label, sizeof label, "decode step %s %u/%u", pkv_mode_name(c->mode), c->k_bits, c->v_bits);
            progress(user, (double)i / o->n_configs, label);
        }
        pkv_cache_config cc = bench_cache_config(o, c, L, H, d);
        const uint32_t R = cc.window ? cc.window : cc.group_size;
        /* every token of every layer and sequence in fp16 at most, full banks, windows, headroom */
        cc.memory_budget = (uint64_t)L * maxb * H * (((uint64_t)C + 2 * steps + 4 * R) * d * 4 + 256ull * d * 4) + (64ull << 20);
        pkv_cache *cache = NULL;
        pkv_status s = pkv_cache_create(ctx, &cc, &cache);
        if (s == PKV_OK) s = pkv_prewarm(cache, QH, 1);
        for (uint32_t b = 0; b < maxb && s == PKV_OK; b++) {
            s = pkv_seq_create(cache, &seqs[b]);
            pkv_append_params ap = pkv_append_params_default();
            ap.seq = seqs[b], ap.n_tokens = C, ap.dtype = PKV_F16;
            if (s == PKV_OK) s = pkv_append_layers(cache, &ap, kp, vp);
        }
        for (uint32_t j = 0; j < nb && s == PKV_OK; j++) {
            pkv_vk_step_times t;
            s = pkv_vulkan_bench_decode_step(cache, seqs, batches[j], QH, steps, &t);
            if (s != PKV_OK) break;
            decode_step_result *x = &r->decode_step[r->n_decode_step++];
            *x = (decode_step_result){.cfg = *c, .layers = L, .batch = batches[j], .context = C,
                                      .recorded_ms = t.recorded_ms, .recorded_host_ms = t.recorded_host_ms,
                                      .record_us_per_layer = t.record_us_per_layer, .synchronous_ms = t.synchronous_ms,
                                      .attention_kernels_ms = t.attention_kernels_ms,
                                      .dispatches_per_layer = t.per_layer.dispatches,
                                      .barriers_per_layer = t.per_layer.barriers,
                                      .transfers_per_layer = t.per_layer.transfers,
                                      .commands_per_layer = t.per_layer.commands};
        }
        if (cache) pkv_cache_free(cache);
        if (s != PKV_OK) {
            snprintf(err, err_len, "decode step: %s: %s", pkv_status_string(s), pkv_last_error());
            goto done;
        }
    }
    rc = 0;
done:
    free(fk), free(fv), free(pk), free(pv), free((void *)kp), free((void *)vp), free(seqs);
    return rc;
#endif
}
