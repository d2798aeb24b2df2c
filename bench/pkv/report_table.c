/* The readable report on stdout. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

static const char *bits_str(const bench_config *c, char *buf, size_t n)
{
    if (c->mode == PKV_MODE_FP16) snprintf(buf, n, "16");
    else if (c->k_bits == c->v_bits) snprintf(buf, n, "%u", c->k_bits);
    else snprintf(buf, n, "K%u/V%u", c->k_bits, c->v_bits);
    return buf;
}

static const char *num(double x, const char *fmt, char *buf, size_t n)
{
    if (!isfinite(x)) snprintf(buf, n, "n/a");
    else snprintf(buf, n, fmt, x);
    return buf;
}

static int is_llama3_8b(const bench_options *o)
{
    return o->model_layers == 32 && o->model_kv_heads == 8 && o->model_head_dim == 128;
}

static const fidelity_result *find_fid(const bench_report *r, pkv_mode m, uint32_t bits)
{
    for (uint32_t i = 0; i < r->n_fidelity; i++)
        if (r->fidelity[i].cfg.mode == m && (m == PKV_MODE_FP16 || (r->fidelity[i].cfg.k_bits == bits &&
                                                                   r->fidelity[i].cfg.v_bits == bits)))
            return &r->fidelity[i];
    return NULL;
}

static const speed_result *find_speed(const bench_report *r, pkv_mode m, uint32_t bits, uint32_t context)
{
    for (uint32_t i = 0; i < r->n_speed; i++) {
        const speed_result *s = &r->speed[i];
        if (s->cfg.mode == m && s->context == context &&
            (m == PKV_MODE_FP16 || (s->cfg.k_bits == bits && s->cfg.v_bits == bits)))
            return s;
    }
    return NULL;
}

static const memory_result *find_mem(const bench_report *r, pkv_mode m, uint32_t bits)
{
    for (uint32_t i = 0; i < r->n_memory; i++) {
        const memory_result *s = &r->memory[i];
        if (s->cfg.mode == m && (m == PKV_MODE_FP16 || (s->cfg.k_bits == bits && s->cfg.v_bits == bits))) return s;
    }
    return NULL;
}

/* A few sentences that answer "how small, how close, how fast" from the lowest bit width measured. */
static void summary(FILE *f, const bench_options *o, const bench_report *r)
{
    uint32_t bits = 0;
    for (uint32_t i = 0; i < o->n_configs; i++)
        if (o->configs[i].mode != PKV_MODE_FP16 && o->configs[i].k_bits == o->configs[i].v_bits &&
            (bits == 0 || o->configs[i].k_bits < bits))
            bits = o->configs[i].k_bits;
    fprintf(f, "\nSummary\n");
    if (bits) {
        const fidelity_result *p = find_fid(r, PKV_MODE_PATTERN, bits), *d = find_fid(r, PKV_MODE_DIRECT, bits);
        if (p)
            fprintf(f, "  PATTERN %u-bit: %.2f bits per element (%.1fx smaller than fp16), attention error %.3g%% "
                       "(median over heads and queries)\n",
                    bits, p->bits_per_element, p->compression_ratio, 100 * p->attn_rel_median);
        if (d)
            fprintf(f, "  DIRECT  %u-bit: %.2f bits per element (%.1fx smaller than fp16), attention error %.3g%%\n", bits,
                    d->bits_per_element, d->compression_ratio, 100 * d->attn_rel_median);
        if (p && d && d->attn_rel_median > 0)
            fprintf(f, "  -> PATTERN's attention error is %.2fx DIRECT's at %u bits (below 1 means closer to the "
                       "uncompressed attention).\n",
                    p->attn_rel_median / d->attn_rel_median, bits);
        if (r->n_speed) {
            uint32_t ctx = r->speed[r->n_speed - 1].context;
            const speed_result *ps = find_speed(r, PKV_MODE_PATTERN, bits, ctx);
            const speed_result *fs = find_speed(r, PKV_MODE_FP16, bits, ctx);
            if (ps && fs)
                fprintf(f, "  Decode at %u tokens: PATTERN %u-bit %.3f ms/step, FP16 %.3f ms/step (%.2fx).\n", ctx,
                        bits, ps->ms_per_step, fs->ms_per_step, fs->ms_per_step / ps->ms_per_step);
        }
        const memory_result *pm = find_mem(r, PKV_MODE_PATTERN, bits), *fm = find_mem(r, PKV_MODE_FP16, 16);
        if (pm && fm)
            fprintf(f, "  %s, %.4g GiB: %llu tokens FP16, %llu tokens PATTERN %u-bit.\n",
                    is_llama3_8b(o) ? "Llama-3-8B shape" : "Model shape", o->memory_gib,
                    (unsigned long long)fm->tokens_fit, (unsigned long long)pm->tokens_fit, bits);
    }
    fprintf(f, "  Total time %.1f s (fidelity %.1f s, speed and throughput %.1f s).\n", r->total_seconds,
            r->fidelity_seconds, r->speed_seconds);
}

void report_table(FILE *f, const bench_options *o, const bench_report *r)
{
    char b1[32], b2[32], b3[32], b4[32], b5[32];
    fprintf(f, "PatternKV %s bench\n", pkv_version_string());
    fprintf(f, "device: %s #%u %s (driver: %s)\n", pkv_backend_name(r->device.backend), r->device.index,
            r->device.name, r->device.driver[0] ? r->device.driver : "n/a");
    if (r->why[0]) fprintf(f, "chosen: %s\n", r->why);
    fprintf(f, "data:   %s: %u layers x %u kv heads x %u tokens x head_dim %u; %u query heads\n", r->data_source,
            r->n_layers, r->n_kv_heads, r->n_tokens, r->head_dim, r->n_q_heads);
    if (!o->skip_fidelity)
        fprintf(f, "        prefill %u tokens, then appends; %u decode queries per query head (%s) at positions "
                   "spread over the appends, each over the cache at its length (causal)\n",
                r->prefill, r->n_queries, r->q_from_keys ? "the file has no q: drawn from the keys' per-channel distribution"
                                             : (r->data_source[0] == 's' ? "synthetic" : "from the file"));
    const pkv_cache_config pc = bench_mode_config(o, PKV_MODE_PATTERN), dc = bench_mode_config(o, PKV_MODE_DIRECT);
    fprintf(f, "cache:  pattern: group %u, window %u, %u patterns mined, bank capacity %u%s, quantizer %s; direct "
               "and fp16: group %u, window %u, quantizer %s\n", pc.group_size, pc.window, pc.n_patterns,
            pc.bank_capacity, pc.bank_capacity == pc.n_patterns ? " (frozen)" : "",
            pkv_quantizer_name((pkv_quantizer)pc.quantizer), dc.group_size, dc.window,
            pkv_quantizer_name((pkv_quantizer)dc.quantizer));

    if (r->n_fidelity) {
        fprintf(f, "\nFidelity (errors against fp64 attention over the original K and V; lower is better)\n");
        fprintf(f, "  %-8s %6s %11s %11s %12s %12s %10s %7s\n", "mode", "bits", "K MSE", "V MSE", "attn median",
                "attn max", "bits/elem", "ratio");
        for (uint32_t i = 0; i < r->n_fidelity; i++) {
            const fidelity_result *x = &r->fidelity[i];
            fprintf(f, "  %-8s %6s %11.4g %11.4g %11.4g%% %11.4g%% %10.3f %6.2fx\n", pkv_mode_name(x->cfg.mode),
                    bits_str(&x->cfg, b1, sizeof b1), x->k_mse, x->v_mse, 100 * x->attn_rel_median,
                    100 * x->attn_rel_max, x->bits_per_element, x->compression_ratio);
        }
        fprintf(f, "  (bits/elem counts every stored byte: codes, scales, zeros, indices, masks, banks, window, "
                   "padding; ratio = 16 / bits)\n");
    }
    if (r->n_speed) {
        fprintf(f, "\nDecode attention speed (%s; batch %u, %u query heads over %u kv heads, head_dim %u; median of "
                   "timed steps, %s)\n",
                r->speed_source, r->batch, r->speed_q_heads, r->speed_kv_heads, r->speed_head_dim,
                r->speed[0].device_timed ? "device timestamps" : "host clock around pkv_attention");
        fprintf(f, "  %-8s %6s %8s %10s %10s %9s %10s %9s\n", "mode", "bits", "context", "ms/step", "host ms", "GB/s",
                "of read BW", "vs fp16");
        for (uint32_t i = 0; i < r->n_speed; i++) {
            const speed_result *x = &r->speed[i];
            char pct[32];
            if (isfinite(x->bw_fraction)) snprintf(pct, sizeof pct, "%.1f%%", 100 * x->bw_fraction);
            else snprintf(pct, sizeof pct, "n/a");
            fprintf(f, "  %-8s %6s %8u %10.4f %10.4f %9s %10s %8sx\n", pkv_mode_name(x->cfg.mode),
                    bits_str(&x->cfg, b1, sizeof b1), x->context, x->ms_per_step, x->host_ms_per_step,
                    num(x->gbps, "%.3g", b2, sizeof b2),
                    pct, num(x->speedup_vs_fp16, "%.2f", b3, sizeof b3));
        }
        char range[96] = "";
        if (r->n_read_bw > 1 && isfinite(r->read_bw_min))
            snprintf(range, sizeof range, "median of %u probes between the rows, %.2f-%.2f; ", r->n_read_bw,
                     r->read_bw_min, r->read_bw_max);
        fprintf(f, "  host ms: the wall time of one pkv_attention call (upload of q, the kernels, download of out).\n"
                   "  GB/s = compressed bytes of the batch's cache / time per step. Read bandwidth: %s GB/s (%s%s)\n",
                num(r->read_bw_gbps, "%.2f", b1, sizeof b1), range, r->read_bw_method);
        uint32_t most = 1;
        for (uint32_t i = 0; i < r->n_speed; i++)
            if (r->speed[i].rotation > most) most = r->speed[i].rotation;
        if (most > 1)
            fprintf(f, "  The batch's sequences are stored apart (nothing shared); steps rotate among up to %u copies of the\n"
                       "  cache that together hold >= 256 MiB, so each step reads from memory, not from the last step's L2.\n",
                    most);
    }
    if (r->n_throughput) {
        fprintf(f, "\nAppend throughput (one layer, %u kv heads, head_dim %u; tokens per second)\n", r->speed_kv_heads,
                r->speed_head_dim);
        fprintf(f, "  %-8s %6s %14s %14s %14s %14s\n", "mode", "bits", "prefill", "first prefill", "append", "flush");
        for (uint32_t i = 0; i < r->n_throughput; i++) {
            const throughput_result *x = &r->throughput[i];
            char b5[32];
            fprintf(f, "  %-8s %6s %14s %14s %14s %14s\n", pkv_mode_name(x->cfg.mode), bits_str(&x->cfg, b1, sizeof b1),
                    num(x->prefill_tokens_per_s, "%.0f", b2, sizeof b2),
                    num(x->prefill_first_tokens_per_s, "%.0f", b5, sizeof b5), num(x->append_tokens_per_s, "%.0f", b3, sizeof b3),
                    num(x->flush_tokens_per_s, "%.0f", b4, sizeof b4));
        }
        fprintf(f, "  (prefill: a prompt into a fresh sequence, which mines patterns in PATTERN mode, the median of %u "
                   "after the cache's first; first prefill: the cache's first prompt, with the process's first-use costs; "
                   "append: one-token appends into the window; flush: window tokens / time of the append that "
                   "compresses the window)\n", PREFILL_REPEATS);
    }
    if (r->n_write_path) {
        fprintf(f, "\nWrite path (%u layers x %u kv heads x head_dim %u, %u-token prompt; every layer in one call)\n",
                r->wp_layers, r->wp_kv_heads, r->wp_head_dim, r->wp_prompt);
        fprintf(f, "  %-8s %6s %12s %12s %12s %13s %13s %12s %16s\n", "mode", "bits", "prefill ms", "host ms",
                "tokens/s", "flush ms/win", "host ms/win", "append us", "startup ms");
        for (uint32_t i = 0; i < r->n_write_path; i++) {
            const write_path_result *x = &r->write_path[i];
            char b6[32], b7[32], b8[48];
            snprintf(b8, sizeof b8, "%.0f cold %.0f warm", x->startup_cold_ms, x->startup_warm_ms);
            fprintf(f, "  %-8s %6s %12s %12s %12s %13s %13s %12s %16s\n", pkv_mode_name(x->cfg.mode),
                    bits_str(&x->cfg, b1, sizeof b1), num(x->prefill_ms, "%.1f", b2, sizeof b2),
                    num(x->prefill_host_ms, "%.1f", b3, sizeof b3),
                    num((double)r->wp_prompt * r->wp_layers / (x->prefill_ms * 1e-3), "%.3g", b4, sizeof b4),
                    num(x->flush_ms_per_window, "%.3f", b5, sizeof b5), num(x->flush_host_ms_per_window, "%.3f", b6, sizeof b6),
                    num(x->append_all_layers_us, "%.1f", b7, sizeof b7), b8);
            if (isfinite(x->flush_queued_ms))
                fprintf(f, "    flush step: the queue drained before it in %.3f ms (earlier steps' window writes),"
                           " then an empty submission %.3f ms (one synchronous op's latency)\n",
                        x->flush_queued_ms, x->round_trip_ms);
            for (int k = 0; k < 2; k++) {
                const startup_split *sp = k ? &x->startup_warm : &x->startup_cold;
                if (isfinite(sp->total_ms))
                    fprintf(f, "    startup %s %.1f ms = driver (instance, device) %.1f + library context %.1f + cache %.1f"
                               " + first prompt and attention %.1f\n", k ? "warm" : "cold", sp->total_ms, sp->driver_ms,
                            sp->context_ms, sp->cache_ms, sp->first_ms);
            }
        }
        fprintf(f, "  prefill: pkv_append_layers of the prompt into every layer (PATTERN: k-means of every layer and head),\n"
                   "  %s; host ms: its wall time. tokens/s = prompt x layers / prefill.\n"
                   "  flush: a decode step whose append compresses every layer's full window; append: a decode step of one\n"
                   "  token into every layer without a flush (host wall time). startup: context, cache, a first prompt\n"
                   "  and attention at this shape, empty / filled pipeline cache.\n",
                r->write_path[0].device_timed ? "device timestamps" : "host clock of the ops");
    }
    if (r->n_decode_step) {
        fprintf(f, "\nDecode step (%u layers, %u kv heads, %u query heads, head_dim %u; engine mode)\n", r->decode_step[0].layers,
                r->ds_kv_heads, r->ds_q_heads, r->ds_head_dim);
        fprintf(f, "  %-8s %6s %6s %8s %12s %12s %12s %10s %12s %14s\n", "mode", "bits", "batch", "context", "recorded ms",
                "attn kern ms", "rec/kernels", "sync ms", "rec host ms", "record us/layer");
        for (uint32_t i = 0; i < r->n_decode_step; i++) {
            const decode_step_result *x = &r->decode_step[i];
            char b6[32], b7[32];
            fprintf(f, "  %-8s %6s %6u %8u %12s %12s %12s %10s %12s %14s\n", pkv_mode_name(x->cfg.mode),
                    bits_str(&x->cfg, b1, sizeof b1), x->batch, x->context, num(x->recorded_ms, "%.3f", b2, sizeof b2),
                    num(x->attention_kernels_ms, "%.3f", b3, sizeof b3),
                    num(x->recorded_ms / x->attention_kernels_ms, "%.2f", b4, sizeof b4),
                    num(x->synchronous_ms, "%.3f", b5, sizeof b5), num(x->recorded_host_ms, "%.3f", b6, sizeof b6),
                    num(x->record_us_per_layer, "%.1f", b7, sizeof b7));
        }
        for (uint32_t i = 0; i < r->n_decode_step; i++) {
            const decode_step_result *x = &r->decode_step[i];
            fprintf(f, "  batch %u, per layer recorded: %.1f dispatches, %.1f barriers, %.1f transfers, %.1f commands in all\n",
                    x->batch, x->dispatches_per_layer, x->barriers_per_layer, x->transfers_per_layer, x->commands_per_layer);
        }
        fprintf(f, "  recorded: every layer's append + attention in one command buffer, one submit (device time);\n"
                   "  attn kern: the attention kernels alone (sum over layers, device time); sync: the step through the\n"
                   "  synchronous calls (host clock); rec host: record + submit + wait; record us/layer: the host time\n"
                   "  of the library's recording calls (steps recorded back to back; docs/BENCH.md).\n");
    }
    if (isfinite(r->startup_cold_ms))
        fprintf(f, "\nStartup to a first attention result: %.1f ms cold (empty pipeline/program cache), %.1f ms warm\n",
                r->startup_cold_ms, r->startup_warm_ms);
    if (r->n_memory) {
        fprintf(f, "\nMemory, %s (%u layers, %u kv heads, head_dim %u), %.4g GiB\n",
                is_llama3_8b(o) ? "Llama-3-8B shape" : "model shape", o->model_layers, o->model_kv_heads,
                o->model_head_dim, o->memory_gib);
        fprintf(f, "  %-8s %6s %22s %20s %16s\n", "mode", "bits", "bytes/token/layer", "fixed MiB/layer",
                "tokens that fit");
        for (uint32_t i = 0; i < r->n_memory; i++) {
            const memory_result *x = &r->memory[i];
            fprintf(f, "  %-8s %6s %22.1f %20.2f %16llu\n", pkv_mode_name(x->cfg.mode), bits_str(&x->cfg, b5, sizeof b5),
                    x->bytes_per_token_per_layer, x->fixed_bytes_per_layer / 1048576.0, (unsigned long long)x->tokens_fit);
        }
        fprintf(f, "  (fixed: the fp16 window and, in PATTERN mode, banks at full capacity)\n");
    }
    summary(f, o, r);
}
