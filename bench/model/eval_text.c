/* The evaluation text and its tokens: bytes for a 256-token vocabulary, else llama2.c's BPE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval_model.h"
#include "llama2_tokenizer.h"

/* Tokens of the text (need + 1 of them at most) and the bytes each stands for. */
int eval_tokenize(const eval_options *o, const llama2_config *cfg, const char *text, size_t len, uint32_t need,
                  int **tokens_out, double **bytes_out, uint32_t *count, char *err, size_t err_len)
{
    size_t cap = (size_t)need + 1;
    int *tokens = malloc(cap * sizeof *tokens);
    double *bytes = malloc(cap * sizeof *bytes);
    uint32_t n = 0;
    if (!tokens || !bytes) goto oom;
    if (cfg->vocab_size == 256 && !o->tokenizer) {
        for (size_t i = 0; i < len && n < cap; i++, n++) tokens[n] = (unsigned char)text[i], bytes[n] = 1.0;
    } else {
        char path[4096];
        const char *tp = o->tokenizer;
        if (!tp) {
            const char *slash = strrchr(o->model, '/');
            int dir = slash ? (int)(slash - o->model + 1) : 0;
            snprintf(path, sizeof path, "%.*stokenizer.bin", dir, o->model);
            tp = path;
        }
        llama2_tokenizer tok;
        if (llama2_tokenizer_load(tp, cfg->vocab_size, &tok, err, err_len)) {
            size_t used = strlen(err);
            snprintf(err + used, err_len - used, " (the model's vocabulary has %d tokens: give --tokenizer FILE)",
                     cfg->vocab_size);
            goto fail;
        }
        int *line = NULL;
        size_t line_cap = 0;
        for (size_t i = 0; i < len && n < cap;) {
            size_t j = i;
            while (j < len && text[j] != '\n') j++;
            if (j < len) j++;
            if (j - i + 2 > line_cap) {
                free(line);
                line_cap = j - i + 2;
                line = malloc(line_cap * sizeof *line);
                if (!line) {
                    llama2_tokenizer_free(&tok);
                    goto oom;
                }
            }
            int got = llama2_encode(&tok, text + i, j - i, i == 0, line);
            if (got < 0) {
                snprintf(err, err_len, "%.400s: a byte of the text has no token in %.400s", o->text, tp);
                free(line);
                llama2_tokenizer_free(&tok);
                goto fail;
            }
            for (int t = 0; t < got && n < cap; t++, n++) {
                tokens[n] = line[t];
                bytes[n] = (double)llama2_token_bytes(&tok, line[t]);
            }
            i = j;
        }
        free(line);
        llama2_tokenizer_free(&tok);
    }
    *tokens_out = tokens, *bytes_out = bytes, *count = n;
    return 0;
oom:
    snprintf(err, err_len, "out of memory");
fail:
    free(tokens);
    free(bytes);
    return -1;
}
