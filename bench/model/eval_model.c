/* pkv eval-model: the end-to-end number. Runs a llama2.c checkpoint teacher-forced over a text with
 * its attention through the PatternKV cache (FP16, PATTERN, DIRECT at several bit widths) and reports
 * bits per byte, perplexity, and how often the greedy next token agrees with the FP16 run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "json_write.h"
#include "llama2.h"
#include "patternkv.h"
#include "progress.h"
#include "timer.h"

#define DEFAULT_MODEL "data/tinyllm/model.bin"
#define DEFAULT_TEXT "data/tinyllm/heldout.txt"
#define DEFAULT_TOKENS 4096u
#define MAX_MODES 32

typedef struct eval_mode {
    pkv_mode mode;
    uint32_t k_bits, v_bits;
} eval_mode;

typedef struct eval_options {
    const char *model, *text, *tokenizer, *json;
    pkv_backend_kind backend;
    int device;
    uint32_t tokens, group_size, n_patterns, prefill, threads;
    int tokens_given, progress;
    int prefill_in_cache; /* prefill attention through pkv_attention (q_len P) instead of exact */
    eval_mode modes[MAX_MODES];
    int n_modes;
} eval_options;

typedef struct eval_result {
    eval_mode m;
    double nll_nats, bytes, bits_per_byte, perplexity, agreement, bits_per_element, seconds;
} eval_result;

/* What one run needs inside the attention callback. */
typedef struct run_ctx {
    pkv_cache *cache;
    pkv_seq seq;
    int n_heads, n_kv_heads, head_dim;
    pkv_status status;
} run_ctx;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: pkv eval-model [--model FILE] [--text FILE] [--tokenizer FILE] [--backend B] [--device N]\n"
            "                      [--tokens N] [--modes LIST] [--group-size G] [--patterns M] [--prefill P]\n"
            "                      [--prefill-attention exact|cache] [--threads N] [--json FILE]\n"
            "                      [--progress | --no-progress]\n"
            "Runs a llama2.c checkpoint teacher-forced over a text, its attention through the PatternKV cache,\n"
            "and reports bits per byte, perplexity and greedy agreement with the FP16 cache.\n"
            "  --model FILE      llama2.c checkpoint (default %s)\n"
            "  --text FILE       evaluation text (default %s)\n"
            "  --tokenizer FILE  llama2.c tokenizer.bin, needed when the vocabulary is larger than 256 bytes\n"
            "                    (default: tokenizer.bin beside the model); with 256 tokens, token = byte\n"
            "  --backend B       auto, cpu, vulkan, opencl (default auto)\n"
            "  --tokens N        positions scored (default %u; each predicts the next token)\n"
            "  --modes LIST      comma list of fp16, pattern, direct (= 2,3,4 bits), or pattern2, direct3,\n"
            "                    pattern2/4 (K bits/V bits); default fp16,pattern,direct. FP16 always runs:\n"
            "                    greedy agreement is measured against it\n"
            "  --group-size G    tokens per quantization group and window, 32, 64 or 128 (default 128)\n"
            "  --patterns M      patterns mined at prefill (default 32)\n"
            "  --prefill P       the first P tokens of each sequence are a prompt: one append, which mines\n"
            "                    the pattern banks; the rest go one token at a time, appended and attended\n"
            "                    with q_len 1 (default 512; 0: every token that way, and no mining)\n"
            "  --prefill-attention exact|cache\n"
            "                    how the prompt attends: exact (fp32, before compression, as a prefill\n"
            "                    kernel does; default) or through the compressed cache with q_len P\n"
            "  --threads N       CPU backend threads (default: one per core)\n"
            "  --json FILE       also write the results as JSON\n",
            DEFAULT_MODEL, DEFAULT_TEXT, DEFAULT_TOKENS);
}

static int parse_u32(const char *s, uint32_t *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v > 0xFFFFFFFFul || s[0] == '-') return -1;
    *out = (uint32_t)v;
    return 0;
}

static int add_mode(eval_options *o, pkv_mode mode, uint32_t kb, uint32_t vb)
{
    for (int i = 0; i < o->n_modes; i++)
        if (o->modes[i].mode == mode && o->modes[i].k_bits == kb && o->modes[i].v_bits == vb) return 0;
    if (o->n_modes == MAX_MODES) return -1;
    o->modes[o->n_modes++] = (eval_mode){mode, kb, vb};
    return 0;
}

static int valid_bits(uint32_t b)
{
    return b == 2 || b == 3 || b == 4 || b == 8;
}

/* One item of --modes: fp16 | pattern | direct | patternK | directK | patternK/V | directK/V. */
static int parse_mode_item(eval_options *o, const char *item)
{
    pkv_mode mode;
    const char *rest;
    if (strcmp(item, "fp16") == 0) return add_mode(o, PKV_MODE_FP16, 16, 16);
    if (strncmp(item, "pattern", 7) == 0) mode = PKV_MODE_PATTERN, rest = item + 7;
    else if (strncmp(item, "direct", 6) == 0) mode = PKV_MODE_DIRECT, rest = item + 6;
    else return -1;
    if (!*rest) {
        for (uint32_t b = 2; b <= 4; b++)
            if (add_mode(o, mode, b, b)) return -1;
        return 0;
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%s", rest);
    char *slash = strchr(buf, '/');
    uint32_t kb, vb;
    if (slash) *slash = '\0';
    if (parse_u32(buf, &kb) || (slash ? parse_u32(slash + 1, &vb) : (vb = kb, 0)) || !valid_bits(kb) || !valid_bits(vb))
        return -1;
    return add_mode(o, mode, kb, vb);
}

static int parse_modes(eval_options *o, const char *list)
{
    char buf[512];
    if (strlen(list) >= sizeof buf) return -1;
    strcpy(buf, list);
    o->n_modes = 0;
    for (char *item = strtok(buf, ","); item; item = strtok(NULL, ","))
        if (parse_mode_item(o, item)) return -1;
    return o->n_modes ? 0 : -1;
}

/* A repository file: as given when it exists, else under the source tree the binary was built from. */
static const char *default_path(const char *rel, char *buf, size_t len)
{
    if (access(rel, R_OK) == 0) return rel;
#ifdef PKV_SOURCE_DIR
    snprintf(buf, len, "%s/%s", PKV_SOURCE_DIR, rel);
    if (access(buf, R_OK) == 0) return buf;
#endif
    (void)buf, (void)len;
    return rel;
}

static int parse_args(int argc, char **argv, eval_options *o)
{
    static char model_buf[4096], text_buf[4096];
    memset(o, 0, sizeof *o);
    o->backend = PKV_BACKEND_AUTO;
    o->device = -1;
    o->tokens = DEFAULT_TOKENS;
    o->group_size = 128;
    o->n_patterns = 32;
    o->prefill = 512;
    o->progress = -1;
    parse_modes(o, "fp16,pattern,direct");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(a, "--progress") == 0) {
            o->progress = 1, takes = 0;
        } else if (strcmp(a, "--no-progress") == 0) {
            o->progress = 0, takes = 0;
        } else if (!val) {
            fprintf(stderr, "pkv eval-model: %s needs a value (or is unknown); see --help\n", a);
            return -1;
        } else if (strcmp(a, "--model") == 0) {
            o->model = val;
        } else if (strcmp(a, "--text") == 0) {
            o->text = val;
        } else if (strcmp(a, "--tokenizer") == 0) {
            o->tokenizer = val;
        } else if (strcmp(a, "--json") == 0) {
            o->json = val;
        } else if (strcmp(a, "--backend") == 0) {
            if (pkv_backend_from_name(val, &o->backend) != PKV_OK) {
                fprintf(stderr, "pkv eval-model: --backend %s: not one of auto, cpu, vulkan, opencl\n", val);
                return -1;
            }
        } else if (strcmp(a, "--device") == 0) {
            uint32_t d;
            if (parse_u32(val, &d) || d > 1000) {
                fprintf(stderr, "pkv eval-model: --device %s: not a device index\n", val);
                return -1;
            }
            o->device = (int)d;
        } else if (strcmp(a, "--tokens") == 0) {
            if (parse_u32(val, &o->tokens) || o->tokens < 1 || o->tokens > (1u << 24)) {
                fprintf(stderr, "pkv eval-model: --tokens %s: expected a count from 1 to 16777216\n", val);
                return -1;
            }
            o->tokens_given = 1;
        } else if (strcmp(a, "--modes") == 0) {
            if (parse_modes(o, val)) {
                fprintf(stderr, "pkv eval-model: --modes %s: expected a comma list of fp16, pattern, direct, "
                                "patternB, directB or patternK/V with bits 2, 3, 4 or 8\n", val);
                return -1;
            }
        } else if (strcmp(a, "--group-size") == 0) {
            if (parse_u32(val, &o->group_size) ||
                (o->group_size != 32 && o->group_size != 64 && o->group_size != 128)) {
                fprintf(stderr, "pkv eval-model: --group-size %s: expected 32, 64 or 128\n", val);
                return -1;
            }
        } else if (strcmp(a, "--patterns") == 0) {
            if (parse_u32(val, &o->n_patterns) || o->n_patterns < 1 || o->n_patterns > 256) {
                fprintf(stderr, "pkv eval-model: --patterns %s: expected 1 to 256\n", val);
                return -1;
            }
        } else if (strcmp(a, "--prefill") == 0) {
            if (parse_u32(val, &o->prefill) || o->prefill > (1u << 20)) {
                fprintf(stderr, "pkv eval-model: --prefill %s: expected a token count\n", val);
                return -1;
            }
        } else if (strcmp(a, "--prefill-attention") == 0) {
            if (strcmp(val, "exact") == 0) o->prefill_in_cache = 0;
            else if (strcmp(val, "cache") == 0) o->prefill_in_cache = 1;
            else {
                fprintf(stderr, "pkv eval-model: --prefill-attention %s: expected exact or cache\n", val);
                return -1;
            }
        } else if (strcmp(a, "--threads") == 0) {
            if (parse_u32(val, &o->threads) || o->threads > 1024) {
                fprintf(stderr, "pkv eval-model: --threads %s: expected 0 to 1024\n", val);
                return -1;
            }
        } else {
            fprintf(stderr, "pkv eval-model: unknown option %s; see --help\n", a);
            return -1;
        }
        i += takes;
    }
    if (!o->model) o->model = default_path(DEFAULT_MODEL, model_buf, sizeof model_buf);
    if (!o->text) o->text = default_path(DEFAULT_TEXT, text_buf, sizeof text_buf);
    /* FP16 first: the others' greedy agreement is measured against it */
    int fp16 = -1;
    for (int i = 0; i < o->n_modes; i++)
        if (o->modes[i].mode == PKV_MODE_FP16) fp16 = i;
    if (fp16 < 0) {
        if (o->n_modes == MAX_MODES) o->n_modes--;
        memmove(o->modes + 1, o->modes, (size_t)o->n_modes * sizeof o->modes[0]);
        o->n_modes++;
    } else {
        memmove(o->modes + 1, o->modes, (size_t)fp16 * sizeof o->modes[0]);
    }
    o->modes[0] = (eval_mode){PKV_MODE_FP16, 16, 16};
    return 0;
}

static int read_file(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *grown = realloc(buf, cap * 2);
        if (!grown) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown, cap *= 2;
    }
    int bad = ferror(f) || !buf;
    fclose(f);
    if (bad) {
        free(buf);
        return -1;
    }
    *data = buf;
    *len = n;
    return 0;
}

/* Tokens of the text (need + 1 of them at most) and the bytes each stands for. */
static int tokenize(const eval_options *o, const llama2_config *cfg, const char *text, size_t len, uint32_t need,
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

static int attend_pkv(void *user, int layer, int pos0, int n, const float *q, const float *k, const float *v,
                      float *out)
{
    run_ctx *r = user;
    (void)pos0;
    r->status = pkv_append(r->cache, r->seq, (uint32_t)layer, (uint32_t)n, k, v, PKV_F32);
    if (r->status != PKV_OK) return -1;
    pkv_attention_params p = {
        .seqs = &r->seq, .n_seqs = 1, .layer = (uint32_t)layer, .q_len = (uint32_t)n,
        .n_q_heads = (uint32_t)r->n_heads, .scale = 0.0f, .q_dtype = PKV_F32,
    };
    r->status = pkv_attention(r->cache, &p, q, out);
    return r->status == PKV_OK ? 0 : -1;
}

/* A prompt from position 0: exact causal attention among its own n tokens (fp32 with fp64 sums), as
 * an uncompressed prefill kernel computes it, then one append that stores (and mines) them. */
static int attend_prompt_exact(void *user, int layer, int pos0, int n, const float *q, const float *k,
                               const float *v, float *out)
{
    run_ctx *r = user;
    const int hd = r->head_dim, kvd = r->n_kv_heads * hd, rep = r->n_heads / r->n_kv_heads;
    double *w = malloc((size_t)n * sizeof *w), *acc = malloc((size_t)hd * sizeof *acc);
    if (!w || !acc || pos0 != 0) {
        free(w), free(acc);
        r->status = pos0 != 0 ? PKV_ERR_INVALID_ARGUMENT : PKV_ERR_OUT_OF_HOST_MEMORY;
        return -1;
    }
    const double scale = 1.0 / sqrt((double)hd);
    for (int i = 0; i < n; i++)
        for (int h = 0; h < r->n_heads; h++) {
            const float *qi = q + ((size_t)i * r->n_heads + h) * hd;
            const int kvh = h / rep;
            double mx = -INFINITY, sum = 0.0;
            for (int t = 0; t <= i; t++) {
                const float *kt = k + (size_t)t * kvd + (size_t)kvh * hd;
                double dot = 0.0;
                for (int j = 0; j < hd; j++) dot += (double)qi[j] * kt[j];
                w[t] = dot * scale;
                if (w[t] > mx) mx = w[t];
            }
            for (int j = 0; j < hd; j++) acc[j] = 0.0;
            for (int t = 0; t <= i; t++) {
                w[t] = exp(w[t] - mx);
                sum += w[t];
                const float *vt = v + (size_t)t * kvd + (size_t)kvh * hd;
                for (int j = 0; j < hd; j++) acc[j] += w[t] * vt[j];
            }
            for (int j = 0; j < hd; j++) out[((size_t)i * r->n_heads + h) * hd + j] = (float)(acc[j] / sum);
        }
    free(w), free(acc);
    r->status = pkv_append(r->cache, r->seq, (uint32_t)layer, (uint32_t)n, k, v, PKV_F32);
    return r->status == PKV_OK ? 0 : -1;
}

/* Scores logits rows against the next tokens: adds -ln p to the result, counts greedy agreement
 * with (or records, for FP16) the argmax of every position. */
static void score(const float *logits, int vocab, int rows, const int *next, const double *next_bytes, uint32_t first,
                  int *greedy, int record, eval_result *r, uint32_t *agree)
{
    for (int i = 0; i < rows; i++) {
        const float *l = logits + (size_t)i * vocab;
        int best = 0;
        for (int t = 1; t < vocab; t++)
            if (l[t] > l[best]) best = t;
        double sum = 0.0;
        for (int t = 0; t < vocab; t++) sum += exp((double)l[t] - (double)l[best]);
        r->nll_nats += log(sum) - ((double)l[next[i]] - (double)l[best]);
        r->bytes += next_bytes[i];
        if (record) greedy[first + i] = best;
        else if (greedy[first + i] == best) (*agree)++;
    }
}

static int run_mode(const eval_options *o, pkv_context *ctx, const llama2_model *m, llama2_state *st,
                    const int *tokens, const double *bytes, uint32_t n_score, int *greedy, eval_result *r,
                    progress_bar *bar, char *err, size_t err_len)
{
    const llama2_config *c = &m->cfg;
    pkv_cache_config cc = pkv_cache_config_default();
    cc.n_layers = (uint32_t)c->n_layers;
    cc.n_kv_heads = (uint32_t)c->n_kv_heads;
    cc.head_dim = (uint32_t)c->head_dim;
    cc.mode = r->m.mode;
    cc.k_bits = r->m.mode == PKV_MODE_FP16 ? 2 : r->m.k_bits;
    cc.v_bits = r->m.mode == PKV_MODE_FP16 ? 2 : r->m.v_bits;
    cc.group_size = o->group_size;
    cc.window = 0;
    cc.n_patterns = o->n_patterns;
    uint64_t fp16_bytes = (uint64_t)c->seq_len * c->n_layers * c->n_kv_heads * c->head_dim * 4;
    if (cc.memory_budget < 2 * fp16_bytes + (64u << 20)) cc.memory_budget = 2 * fp16_bytes + (64u << 20);
    run_ctx rc = {0};
    rc.n_heads = c->n_heads, rc.n_kv_heads = c->n_kv_heads, rc.head_dim = c->head_dim;
    pkv_status s = pkv_cache_create(ctx, &cc, &rc.cache);
    if (s != PKV_OK) {
        snprintf(err, err_len, "cache for %s: %s: %s", pkv_mode_name(cc.mode), pkv_status_string(s), pkv_last_error());
        return -1;
    }
    double t0 = cli_now();
    uint32_t agree = 0, done = 0;
    int record = r->m.mode == PKV_MODE_FP16 && r->m.k_bits == 16;
    char label[64];
    if (r->m.mode == PKV_MODE_FP16) snprintf(label, sizeof label, "fp16");
    else snprintf(label, sizeof label, "%s %u/%u bits", pkv_mode_name(r->m.mode), r->m.k_bits, r->m.v_bits);
    int failed = 0;
    while (done < n_score && !failed) {
        uint32_t len = n_score - done < (uint32_t)c->seq_len ? n_score - done : (uint32_t)c->seq_len;
        if ((s = pkv_seq_create(rc.cache, &rc.seq)) != PKV_OK) {
            snprintf(err, err_len, "pkv_seq_create: %s", pkv_last_error());
            failed = 1;
            break;
        }
        uint32_t pos = 0;
        while (pos < len) {
            uint32_t n = pos == 0 && o->prefill > 1 ? (o->prefill < len ? o->prefill : len) : 1;
            if (n > (uint32_t)st->capacity) n = (uint32_t)st->capacity;
            llama2_attend_fn attend = n > 1 && !o->prefill_in_cache ? attend_prompt_exact : attend_pkv;
            if (llama2_forward(m, st, tokens + done + pos, (int)pos, (int)n, attend, &rc) != 0) {
                snprintf(err, err_len, "forward pass at position %u (%s): %s", pos, label,
                         rc.status != PKV_OK ? pkv_last_error() : "tokens out of range");
                failed = 1;
                break;
            }
            score(st->logits, c->vocab_size, (int)n, tokens + done + pos + 1, bytes + done + pos + 1, done + pos,
                  greedy, record, r, &agree);
            pos += n;
            if ((pos & 63) == 0 || pos == len) progress_update(bar, (double)(done + pos) / n_score, label);
        }
        if (!failed && done + len >= n_score) {
            pkv_cache_stats stats;
            if (pkv_cache_stats_get(rc.cache, &stats) == PKV_OK) r->bits_per_element = stats.bits_per_element;
        }
        pkv_seq_free(rc.cache, rc.seq);
        done += len;
    }
    pkv_cache_free(rc.cache);
    if (failed) return -1;
    r->seconds = cli_now() - t0;
    r->bits_per_byte = r->nll_nats / log(2.0) / r->bytes;
    r->perplexity = exp(r->nll_nats / n_score);
    r->agreement = record ? 1.0 : (double)agree / n_score;
    return 0;
}

static int write_json(const eval_options *o, const llama2_model *m, const pkv_device_info *dev, uint32_t n_score,
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
    jw_uint(&w, "group_size", o->group_size);
    jw_uint(&w, "n_patterns", o->n_patterns);
    jw_uint(&w, "prefill", o->prefill);
    jw_string(&w, "prefill_attention", o->prefill_in_cache ? "cache" : "exact");
    jw_begin_array(&w, "results");
    for (int i = 0; i < n_res; i++) {
        jw_begin_object(&w, NULL);
        jw_string(&w, "mode", pkv_mode_name(res[i].m.mode));
        jw_uint(&w, "k_bits", res[i].m.k_bits);
        jw_uint(&w, "v_bits", res[i].m.v_bits);
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

static void print_table(const eval_result *res, int n_res)
{
    printf("%-8s %9s %10s %11s %9s %9s %11s %8s\n", "mode", "K/V bits", "bits/byte", "perplexity", "vs fp16",
           "greedy", "cache b/el", "time");
    for (int i = 0; i < n_res; i++) {
        char bits[16];
        snprintf(bits, sizeof bits, "%u/%u", res[i].m.k_bits, res[i].m.v_bits);
        printf("%-8s %9s %10.4f %11.4f %+8.2f%% %8.2f%% %11.2f %7.1fs\n", pkv_mode_name(res[i].m.mode), bits,
               res[i].bits_per_byte, res[i].perplexity, 100.0 * (res[i].bits_per_byte / res[0].bits_per_byte - 1.0),
               100.0 * res[i].agreement, res[i].bits_per_element, res[i].seconds);
    }
}

int pkv_cmd_eval_model(int argc, char **argv)
{
    eval_options o;
    int pr = parse_args(argc, argv, &o);
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
    eval_result res[MAX_MODES];
    llama2_state st = {0};
    progress_bar bar;
    progress_init(&bar, o.progress);

    if (read_file(o.text, &text, &text_len)) {
        fprintf(stderr, "pkv eval-model: %s: cannot read the text\n", o.text);
        goto done;
    }
    if (tokenize(&o, &m.cfg, text, text_len, o.tokens, &tokens, &bytes, &n_tokens, err, sizeof err)) {
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
    pkv_device_info dev;
    char why[256] = "";
    pkv_context_device(ctx, &dev, why, sizeof why);
    const llama2_config *c = &m.cfg;
    printf("model: %s (llama2.c: dim %d, hidden %d, %d layers, %d q heads, %d kv heads, head_dim %d, vocab %d, "
           "seq_len %d, %.2fM parameters)\n", o.model, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
           c->head_dim, c->vocab_size, c->seq_len, (double)m.n_params / 1e6);
    printf("text: %s, %u positions scored, teacher-forced, sequences of at most %d\n", o.text, n_score, c->seq_len);
    if (o.prefill > 1)
        printf("prompt: the first %u tokens of each sequence, attention %s, one append (mines the banks); then one "
               "token at a time\n", o.prefill, o.prefill_in_cache ? "through the cache (q_len P)" : "exact before compression");
    else
        printf("no prompt: every token appended and attended alone (q_len 1), the banks grow at each flush\n");
    printf("backend: %s, device %s (%s)\n", pkv_backend_name(dev.backend), dev.name, why);
    printf("cache: group %u tokens, window %u, %u patterns mined at prefill\n", o.group_size, o.group_size,
           o.n_patterns);
    fflush(stdout);

    for (int i = 0; i < o.n_modes; i++) {
        memset(&res[i], 0, sizeof res[i]);
        res[i].m = o.modes[i];
        progress_part(&bar, (double)i / o.n_modes, (double)(i + 1) / o.n_modes);
        if (run_mode(&o, ctx, &m, &st, tokens, bytes, n_score, greedy, &res[i], &bar, err, sizeof err)) {
            progress_done(&bar);
            fprintf(stderr, "pkv eval-model: %s\n", err);
            goto done;
        }
    }
    progress_done(&bar);
    print_table(res, o.n_modes);
    if (o.json && write_json(&o, &m, &dev, n_score, res, o.n_modes)) {
        fprintf(stderr, "pkv eval-model: %s: cannot write the JSON report\n", o.json);
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
