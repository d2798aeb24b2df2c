/* pkv eval-model's reports: a table on stdout, JSON on request. */
#include <stdio.h>

#include "eval_model.h"
#include "json_write.h"

void eval_print_table(const eval_options *o, const eval_result *res, int n_res)
{
    printf("%-18s %9s %10s %11s %9s %9s %11s %8s\n", "mode", "K/V bits", "bits/byte", "perplexity", "vs fp16",
           "greedy", "cache b/el", "time");
    for (int i = 0; i < n_res; i++) {
        char bits[16], curve[48];
        snprintf(bits, sizeof bits, "%u/%u", res[i].m.k_bits, res[i].m.v_bits);
        eval_mode_curve(o, &res[i].m, curve, sizeof curve);
        printf("%-18s %9s %10.4f %11.4f %+8.2f%% %8.2f%% %11.2f %7.1fs\n", curve, bits,
               res[i].bits_per_byte, res[i].perplexity, 100.0 * (res[i].bits_per_byte / res[0].bits_per_byte - 1.0),
               100.0 * res[i].agreement, res[i].bits_per_element, res[i].seconds);
    }
}

int eval_write_json(const eval_options *o, const llama2_model *m, const pkv_device_info *dev, uint32_t n_score,
                    const eval_result *res, int n_res)
{
    FILE *f = fopen(o->json, "w");
    if (!f) return -1;
    const llama2_config *c = &m->cfg;
    jw w = {.f = f};
    jw_begin_object(&w, NULL);
    jw_begin_object(&w, "model");
    jw_string(&w, "path", o->model);
    jw_string(&w, "format", "llama2.c");
    jw_uint(&w, "dim", (uint64_t)c->dim);
    jw_uint(&w, "hidden_dim", (uint64_t)c->hidden_dim);
    jw_uint(&w, "n_layers", (uint64_t)c->n_layers);
    jw_uint(&w, "n_heads", (uint64_t)c->n_heads);
    jw_uint(&w, "n_kv_heads", (uint64_t)c->n_kv_heads);
    jw_uint(&w, "head_dim", (uint64_t)c->head_dim);
    jw_uint(&w, "vocab_size", (uint64_t)c->vocab_size);
    jw_uint(&w, "seq_len", (uint64_t)c->seq_len);
    jw_uint(&w, "params", m->n_params);
    jw_end_object(&w);
    jw_string(&w, "text", o->text);
    jw_uint(&w, "tokens", n_score);
    jw_string(&w, "backend", pkv_backend_name(dev->backend));
    jw_string(&w, "device", dev->name);
    jw_uint(&w, "offset", o->offset);
    jw_uint(&w, "group_size", o->group_size);
    jw_uint(&w, "window", o->window); /* 0: each mode's group size */
    jw_uint(&w, "n_patterns", o->n_patterns);
    jw_string(&w, "k_assign", pkv_k_assign_name((pkv_k_assign)o->k_assign));
    jw_uint(&w, "bank_capacity", o->bank_capacity);
    jw_uint(&w, "prefill", o->prefill);
    jw_string(&w, "prefill_attention", o->prefill_in_cache ? "cache" : "exact");
    jw_uint(&w, "prefill_chunk", o->prefill_chunk);
    jw_string(&w, "mining", pkv_mining_name((pkv_mining)o->mining));
    jw_uint(&w, "kmeans_sample", o->kmeans_sample);
    jw_begin_array(&w, "results");
    for (int i = 0; i < n_res; i++) {
        jw_begin_object(&w, NULL);
        jw_string(&w, "mode", pkv_mode_name(res[i].m.mode));
        jw_uint(&w, "k_bits", res[i].m.k_bits);
        jw_uint(&w, "v_bits", res[i].m.v_bits);
        jw_uint(&w, "group_size", eval_mode_group(o, &res[i].m));
        jw_uint(&w, "window", eval_mode_window(o, &res[i].m));
        char curve[48];
        eval_mode_curve(o, &res[i].m, curve, sizeof curve);
        jw_string(&w, "curve", curve);
        jw_string(&w, "k_assign", pkv_k_assign_name((pkv_k_assign)eval_mode_k_assign(o, &res[i].m)));
        jw_uint(&w, "bank_capacity", eval_mode_bank_capacity(o, &res[i].m));
        jw_string(&w, "quantizer", pkv_quantizer_name((pkv_quantizer)res[i].m.quantizer));
        jw_number(&w, "bits_per_byte", res[i].bits_per_byte);
        jw_number(&w, "perplexity", res[i].perplexity);
        jw_number(&w, "greedy_agreement", res[i].agreement);
        jw_number(&w, "cache_bits_per_element", res[i].bits_per_element);
        jw_number(&w, "seconds", res[i].seconds);
        jw_end_object(&w);
    }
    jw_end_array(&w);
    jw_end_object(&w);
    fputc('\n', f);
    return fclose(f) == 0 ? 0 : -1;
}
