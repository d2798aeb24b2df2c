/* pkv eval-model: what the compressed cache does to a model's predictions (eval_model.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"
#include "eval_model.h"

int pkv_cmd_eval_model(int argc, char **argv)
{
    eval_options o;
    int pr = eval_parse_args(argc, argv, &o);
    if (pr != 0) return pr < 0 ? 2 : 0; /* a usage error (already explained), or --help */
    char err[1024] = "";
    llama2_model m;
    if (llama2_load(o.model, &m, err, sizeof err)) {
        fprintf(stderr, "pkv eval-model: %s\n", err);
        return 1;
    }
    int rc = 1;
    char *text = NULL;
    size_t text_len = 0;
    int *tokens = NULL, *greedy = NULL;
    double *bytes = NULL;
    uint32_t n_tokens = 0;
    pkv_context *ctx = NULL;
    eval_result res[EVAL_MAX_MODES];
    llama2_state st = {0};
    progress_bar bar;
    progress_init(&bar, o.progress);

    if (cli_read_file(o.text, &text, &text_len, err, sizeof err)) {
        fprintf(stderr, "pkv eval-model: %s: cannot read the text\n", err);
        goto done;
    }
    if (o.offset >= text_len) {
        fprintf(stderr, "pkv eval-model: --offset %u: the text %s has only %zu bytes\n", o.offset, o.text, text_len);
        goto done;
    }
    if (eval_tokenize(&o, &m.cfg, text + o.offset, text_len - o.offset, o.tokens, &tokens, &bytes, &n_tokens, err,
                      sizeof err)) {
        fprintf(stderr, "pkv eval-model: %s\n", err);
        goto done;
    }
    if (n_tokens < 2 || (o.tokens_given && n_tokens < o.tokens + 1)) {
        fprintf(stderr, "pkv eval-model: %s: %u tokens, need %u to score %u positions\n", o.text, n_tokens,
                o.tokens + 1, o.tokens);
        goto done;
    }
    uint32_t n_score = n_tokens - 1 < o.tokens ? n_tokens - 1 : o.tokens;
    greedy = calloc(n_score, sizeof *greedy);
    uint32_t cap = o.prefill > 1 ? o.prefill : 1;
    if (cap > (uint32_t)m.cfg.seq_len) cap = (uint32_t)m.cfg.seq_len;
    if (!greedy || llama2_state_init(&st, &m.cfg, (int)cap)) {
        fprintf(stderr, "pkv eval-model: out of memory\n");
        goto done;
    }

    pkv_context_params cp = pkv_context_params_default();
    cp.backend = o.backend;
    cp.device_index = o.device;
    cp.n_threads = o.threads;
    pkv_status s = pkv_context_create(&cp, &ctx);
    if (s != PKV_OK) {
        fprintf(stderr, "pkv eval-model: no context on backend %s: %s\n", pkv_backend_name(o.backend), pkv_last_error());
        goto done;
    }
    pkv_device_info dev = {.struct_size = sizeof dev};
    char why[256] = "";
    pkv_context_device(ctx, &dev, why, sizeof why);
    const llama2_config *c = &m.cfg;
    printf("model: %s (llama2.c: dim %d, hidden %d, %d layers, %d q heads, %d kv heads, head_dim %d, vocab %d, "
           "seq_len %d, %.2fM parameters)\n", o.model, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
           c->head_dim, c->vocab_size, c->seq_len, (double)m.n_params / 1e6);
    printf("text: %s from byte %u, %u positions scored, teacher-forced, sequences of at most %d\n", o.text, o.offset,
           n_score, c->seq_len);
    if (o.prefill > 1 && o.prefill_chunk && o.prefill_chunk < o.prefill)
        printf("prompt: the first %u tokens of each sequence, attention %s, appended in chunks of %u tokens (mining: "
               "%s); then one token at a time\n", o.prefill, o.prefill_in_cache ? "through the cache (q_len = chunk)" :
               "exact before compression", o.prefill_chunk, pkv_mining_name((pkv_mining)o.mining));
    else if (o.prefill > 1)
        printf("prompt: the first %u tokens of each sequence, attention %s, one append (mines the banks); then one "
               "token at a time\n", o.prefill, o.prefill_in_cache ? "through the cache (q_len P)" : "exact before compression");
    else
        printf("no prompt: every token appended and attended alone (q_len 1), mining: %s\n",
               pkv_mining_name((pkv_mining)o.mining));
    printf("backend: %s, device %s (%s)\n", pkv_backend_name(dev.backend), dev.name, why);
    char group[64], window[32], bank[48];
    eval_describe_group_window(&o, group, sizeof group, window, sizeof window);
    if (o.bank_capacity) snprintf(bank, sizeof bank, "%u", o.bank_capacity);
    else snprintf(bank, sizeof bank, "%u (frozen)", o.n_patterns);
    printf("cache: group %s (unless a mode gives :gN), window %s, %u patterns mined at prefill, bank capacity %s%s\n",
           group, window, o.n_patterns, bank, o.paper ? ", min-max quantizer (--paper)" : "");
    fflush(stdout);

    for (int i = 0; i < o.n_modes; i++) {
        memset(&res[i], 0, sizeof res[i]);
        res[i].m = o.modes[i];
        progress_part(&bar, (double)i / o.n_modes, (double)(i + 1) / o.n_modes);
        if (eval_run_mode(&o, ctx, &m, &st, tokens, bytes, n_score, greedy, &res[i], &bar, err, sizeof err)) {
            progress_done(&bar);
            fprintf(stderr, "pkv eval-model: %s\n", err);
            goto done;
        }
    }
    progress_done(&bar);
    eval_print_table(&o, res, o.n_modes);
    if (o.json && eval_write_json(&o, &m, &dev, n_score, res, o.n_modes)) {
        fprintf(stderr, "pkv eval-model: %s: cannot write the JSON report\n", o.json);
        goto done;
    }
    if (o.plot && eval_write_plot(&o, &m, res, o.n_modes, err, sizeof err)) {
        fprintf(stderr, "pkv eval-model: %s\n", err);
        goto done;
    }
    rc = 0;
done:
    if (ctx) pkv_context_free(ctx);
    llama2_state_free(&st);
    llama2_free(&m);
    free(text);
    free(tokens);
    free(bytes);
    free(greedy);
    return rc;
}
