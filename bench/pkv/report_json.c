/* --json FILE: the report in the shape issue 5 fixes:
 * {"device": {"backend","name","driver",...}, "config": {...},
 *  "fidelity": [{"mode","k_bits","v_bits","k_mse","v_mse","attn_rel_err_median","attn_rel_err_max","bits_per_element",...}],
 *  "speed": [{"mode","k_bits","v_bits","context","batch","ms_per_step","gbps","bw_fraction","speedup_vs_fp16",...}],
 *  "throughput": {...}, "write_path": [{"backend","mode","k_bits","v_bits","layers","kv_heads","head_dim",
 *  "prompt_tokens","prefill_ms","flush_ms_per_window","append_all_layers_us",...}],
 *  "decode_step": [{"backend","mode","k_bits","v_bits","layers","batch","context","recorded_ms",
 *  "synchronous_ms","attention_kernels_ms",...}], "memory": {...}}
 * Unknown numbers are null. Written to FILE.tmp, then renamed. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "json_write.h"

static void cfg_fields(jw *w, const bench_config *c)
{
    jw_string(w, "mode", pkv_mode_name(c->mode));
    jw_uint(w, "k_bits", c->k_bits);
    jw_uint(w, "v_bits", c->v_bits);
}

static void write_all(jw *w, const bench_options *o, const bench_report *r)
{
    jw_begin_object(w, NULL);

    jw_begin_object(w, "device");
    jw_string(w, "backend", pkv_backend_name(r->device.backend));
    jw_string(w, "name", r->device.name);
    jw_string(w, "driver", r->device.driver);
    jw_uint(w, "index", r->device.index);
    jw_uint(w, "subgroup_size", r->device.subgroup_size);
    jw_uint(w, "memory_bytes", r->device.memory_bytes);
    jw_string(w, "why", r->why);
    jw_number(w, "read_bw_gbps", r->read_bw_gbps);
    jw_number(w, "read_bw_min_gbps", r->read_bw_min);
    jw_number(w, "read_bw_max_gbps", r->read_bw_max);
    jw_begin_array(w, "read_bw_samples_gbps");
    for (uint32_t i = 0; i < r->n_read_bw; i++) jw_number(w, NULL, r->read_bw_samples[i]);
    jw_end_array(w);
    jw_string(w, "read_bw_method", r->read_bw_method);
    jw_end_object(w);

    jw_begin_object(w, "config");
    jw_string(w, "version", pkv_version_string());
    jw_string(w, "data", r->data_source);
    jw_bool(w, "q_from_keys", r->q_from_keys);
    jw_uint(w, "seed", o->seed);
    jw_uint(w, "layers", r->n_layers);
    jw_uint(w, "tokens", r->n_tokens);
    jw_uint(w, "prefill", r->prefill);
    jw_uint(w, "kv_heads", r->n_kv_heads);
    jw_uint(w, "q_heads", r->n_q_heads);
    jw_uint(w, "head_dim", r->head_dim);
    jw_uint(w, "queries_per_head", r->n_queries);
    /* PATTERN's values as resolved (pkv_cache_config_resolve); DIRECT's and FP16's group next to them */
    const pkv_cache_config pc = bench_mode_config(o, PKV_MODE_PATTERN), dc = bench_mode_config(o, PKV_MODE_DIRECT);
    jw_uint(w, "group_size", pc.group_size);
    jw_uint(w, "window", pc.window);
    jw_uint(w, "patterns", pc.n_patterns);
    jw_uint(w, "bank_capacity", pc.bank_capacity);
    jw_uint(w, "direct_group_size", dc.group_size);
    jw_uint(w, "direct_window", dc.window);
    jw_string(w, "quantizer", pkv_quantizer_name((pkv_quantizer)o->quantizer)); /* as asked: auto = the library's per mode */
    jw_uint(w, "batch", r->batch);
    jw_string(w, "speed_data", r->speed_source);
    jw_uint(w, "speed_kv_heads", r->speed_kv_heads);
    jw_uint(w, "speed_q_heads", r->speed_q_heads);
    jw_uint(w, "speed_head_dim", r->speed_head_dim);
    jw_begin_array(w, "speed_contexts");
    for (uint32_t i = 0; i < o->n_speed_contexts; i++) jw_uint(w, NULL, o->speed_contexts[i]);
    jw_end_array(w);
    jw_uint(w, "steps", o->steps);
    jw_uint(w, "warmup", o->warmup);
    jw_end_object(w);

    jw_begin_array(w, "fidelity");
    for (uint32_t i = 0; i < r->n_fidelity; i++) {
        const fidelity_result *x = &r->fidelity[i];
        jw_begin_object(w, NULL);
        cfg_fields(w, &x->cfg);
        jw_number(w, "k_mse", x->k_mse);
        jw_number(w, "v_mse", x->v_mse);
        jw_number(w, "attn_rel_err_median", x->attn_rel_median);
        jw_number(w, "attn_rel_err_max", x->attn_rel_max);
        jw_number(w, "bits_per_element", x->bits_per_element);
        jw_number(w, "compression_ratio", x->compression_ratio);
        jw_end_object(w);
    }
    jw_end_array(w);

    jw_begin_array(w, "speed");
    for (uint32_t i = 0; i < r->n_speed; i++) {
        const speed_result *x = &r->speed[i];
        jw_begin_object(w, NULL);
        cfg_fields(w, &x->cfg);
        jw_uint(w, "context", x->context);
        jw_uint(w, "batch", x->batch);
        jw_number(w, "ms_per_step", x->ms_per_step);
        jw_number(w, "host_ms_per_step", x->host_ms_per_step);
        jw_number(w, "gbps", x->gbps);
        jw_number(w, "bw_fraction", x->bw_fraction);
        jw_number(w, "speedup_vs_fp16", x->speedup_vs_fp16);
        jw_number(w, "bytes_per_step", x->bytes_per_step);
        jw_uint(w, "steps", x->steps);
        jw_uint(w, "rotation", x->rotation);
        jw_bool(w, "device_timed", x->device_timed);
        jw_end_object(w);
    }
    jw_end_array(w);

    jw_begin_object(w, "throughput");
    jw_uint(w, "layers", 1);
    jw_uint(w, "kv_heads", r->speed_kv_heads);
    jw_uint(w, "head_dim", r->speed_head_dim);
    jw_number(w, "startup_cold_ms", r->startup_cold_ms);
    jw_number(w, "startup_warm_ms", r->startup_warm_ms);
    jw_begin_array(w, "entries");
    for (uint32_t i = 0; i < r->n_throughput; i++) {
        const throughput_result *x = &r->throughput[i];
        jw_begin_object(w, NULL);
        cfg_fields(w, &x->cfg);
        jw_number(w, "prefill_tokens_per_s", x->prefill_tokens_per_s);
        jw_number(w, "prefill_first_tokens_per_s", x->prefill_first_tokens_per_s);
        jw_number(w, "append_tokens_per_s", x->append_tokens_per_s);
        jw_number(w, "flush_tokens_per_s", x->flush_tokens_per_s);
        jw_end_object(w);
    }
    jw_end_array(w);
    jw_end_object(w);

    jw_begin_array(w, "write_path");
    for (uint32_t i = 0; i < r->n_write_path; i++) {
        const write_path_result *x = &r->write_path[i];
        jw_begin_object(w, NULL);
        jw_string(w, "backend", pkv_backend_name(r->device.backend));
        cfg_fields(w, &x->cfg);
        jw_uint(w, "layers", r->wp_layers);
        jw_uint(w, "kv_heads", r->wp_kv_heads);
        jw_uint(w, "head_dim", r->wp_head_dim);
        jw_uint(w, "prompt_tokens", r->wp_prompt);
        jw_number(w, "prefill_ms", x->prefill_ms);
        jw_number(w, "flush_ms_per_window", x->flush_ms_per_window);
        jw_number(w, "append_all_layers_us", x->append_all_layers_us);
        jw_number(w, "prefill_host_ms", x->prefill_host_ms);
        jw_number(w, "prefill_first_host_ms", x->prefill_first_ms);
        jw_number(w, "flush_host_ms_per_window", x->flush_host_ms_per_window);
        jw_number(w, "flush_queued_ms", x->flush_queued_ms);
        jw_number(w, "round_trip_ms", x->round_trip_ms);
        jw_uint(w, "flushes", x->flushes);
        jw_bool(w, "device_timed", x->device_timed);
        jw_number(w, "cache_create_ms", x->cache_create_ms);
        jw_number(w, "startup_cold_ms", x->startup_cold_ms);
        jw_number(w, "startup_warm_ms", x->startup_warm_ms);
        for (int k = 0; k < 2; k++) {
            const startup_split *sp = k ? &x->startup_warm : &x->startup_cold;
            jw_begin_object(w, k ? "startup_warm" : "startup_cold");
            jw_number(w, "driver_ms", sp->driver_ms);
            jw_number(w, "library_context_ms", sp->context_ms);
            jw_number(w, "cache_create_ms", sp->cache_ms);
            jw_number(w, "first_result_ms", sp->first_ms);
            jw_end_object(w);
        }
        jw_end_object(w);
    }
    jw_end_array(w);

    jw_begin_array(w, "decode_step");
    for (uint32_t i = 0; i < r->n_decode_step; i++) {
        const decode_step_result *x = &r->decode_step[i];
        jw_begin_object(w, NULL);
        jw_string(w, "backend", pkv_backend_name(r->device.backend));
        cfg_fields(w, &x->cfg);
        jw_uint(w, "layers", x->layers);
        jw_uint(w, "batch", x->batch);
        jw_uint(w, "context", x->context);
        jw_number(w, "recorded_ms", x->recorded_ms);
        jw_number(w, "synchronous_ms", x->synchronous_ms);
        jw_number(w, "attention_kernels_ms", x->attention_kernels_ms);
        jw_number(w, "recorded_host_ms", x->recorded_host_ms);
        jw_number(w, "record_us_per_layer", x->record_us_per_layer);
        jw_number(w, "recorded_over_kernels", x->recorded_ms / x->attention_kernels_ms);
        jw_number(w, "dispatches_per_layer", x->dispatches_per_layer);
        jw_number(w, "barriers_per_layer", x->barriers_per_layer);
        jw_number(w, "transfers_per_layer", x->transfers_per_layer);
        jw_number(w, "commands_per_layer", x->commands_per_layer);
        jw_uint(w, "kv_heads", r->ds_kv_heads);
        jw_uint(w, "q_heads", r->ds_q_heads);
        jw_uint(w, "head_dim", r->ds_head_dim);
        jw_end_object(w);
    }
    jw_end_array(w);

    jw_begin_object(w, "memory");
    jw_uint(w, "model_layers", o->model_layers);
    jw_uint(w, "model_kv_heads", o->model_kv_heads);
    jw_uint(w, "model_head_dim", o->model_head_dim);
    jw_number(w, "memory_gib", o->memory_gib);
    jw_begin_array(w, "entries");
    for (uint32_t i = 0; i < r->n_memory; i++) {
        const memory_result *x = &r->memory[i];
        jw_begin_object(w, NULL);
        cfg_fields(w, &x->cfg);
        jw_number(w, "bytes_per_token_per_layer", x->bytes_per_token_per_layer);
        jw_number(w, "fixed_bytes_per_layer", x->fixed_bytes_per_layer);
        jw_uint(w, "tokens_fit", x->tokens_fit);
        jw_end_object(w);
    }
    jw_end_array(w);
    jw_end_object(w);

    jw_number(w, "total_seconds", r->total_seconds);
    jw_number(w, "fidelity_seconds", r->fidelity_seconds);
    jw_number(w, "speed_seconds", r->speed_seconds);
    jw_number(w, "write_path_seconds", r->write_path_seconds);
    jw_number(w, "decode_step_seconds", r->decode_step_seconds);
    jw_end_object(w);
}

int report_json(const char *path, const bench_options *o, const bench_report *r, char *err, size_t err_len)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, err_len, "--json %s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    jw w = {.f = f};
    write_all(&w, o, r);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        snprintf(err, err_len, "--json %s: write failed: %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}
