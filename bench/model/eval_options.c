/* pkv eval-model's command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "eval_model.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: pkv eval-model [--model FILE] [--text FILE] [--tokenizer FILE] [--backend B] [--device N]\n"
            "                      [--tokens N] [--offset B] [--modes LIST] [--group-size G] [--window R]\n"
            "                      [--patterns M] [--bank-capacity C] [--k-assign A] [--prefill P]\n"
            "                      [--prefill-attention exact|cache] [--prefill-chunk N] [--mining M]\n"
            "                      [--kmeans-sample S] [--paper]\n"
            "                      [--threads N] [--json FILE] [--plot FILE.svg]\n"
            "                      [--progress | --no-progress]\n"
            "Runs a llama2.c checkpoint teacher-forced over a text, its attention through the PatternKV cache,\n"
            "and reports bits per byte, perplexity and greedy agreement with the FP16 cache.\n"
            "  --model FILE      llama2.c checkpoint (default %s)\n"
            "  --text FILE       evaluation text (default %s)\n"
            "  --tokenizer FILE  llama2.c tokenizer.bin, needed when the vocabulary is larger than 256 bytes\n"
            "                    (default: tokenizer.bin beside the model); with 256 tokens, token = byte\n"
            "  --backend B       auto, cpu, vulkan, opencl (default auto)\n"
            "  --tokens N        positions scored (default %u; each predicts the next token)\n"
            "  --offset B        skip the first B bytes of the text (disjoint windows of one text; default 0)\n"
            "  --modes LIST      comma list of fp16, pattern, direct (= 2,3,4 bits), or pattern2, direct3,\n"
            "                    pattern2/4 (K bits/V bits); default fp16,pattern,direct. FP16 always runs:\n"
            "                    greedy agreement is measured against it. An item may end in :gN, its own\n"
            "                    group size (direct2:g64 compares DIRECT at more memory in the same run);\n"
            "                    a pattern item may end in :kminmax, :kl2 or :krange, its key assignment,\n"
            "                    and :cN, its bank capacity (pattern2:c32: no pattern added at flushes);\n"
            "                    a pattern or direct item may end in :qminmax, :qmse, :qmse-k or :qmse-v:\n"
            "                    min-max, or the MSE quantizer for K and V, K only or V only (pkv_quantizer;\n"
            "                    default the library's: mse for pattern, minmax for direct; pattern2:qminmax\n"
            "                    is the paper's method); the curve's name shows any quantizer but min-max\n"
            "  --group-size G    tokens per quantization group, 32, 64 or 128 (default: the library's, 64 for\n"
            "                    pattern, 128 for direct)\n"
            "  --window R        fp16 tokens before a flush, a multiple of every group size in use\n"
            "                    (default 0: the library's, 128 tokens with the default group sizes, else\n"
            "                    each mode's group size, so the window follows the group)\n"
            "  --patterns M      patterns mined at prefill (default 24, the library's; the paper: 32)\n"
            "  --bank-capacity C patterns a bank holds, <= 256; then frozen (default: M, the library's: the\n"
            "                    banks keep only the mined patterns; the paper: 256, a centre per flush)\n"
            "  --paper           the paper's method (pkv_cache_config_paper) for every mode that does not\n"
            "                    say otherwise: --group-size 128 --patterns 32 --bank-capacity 256 and the\n"
            "                    min-max quantizer; later options override it\n"
            "  --k-assign A      how PATTERN keys choose their pattern: minmax (the paper's; default), l2 or\n"
            "                    range, or none (V-only patterns) (pkv_k_assign; docs/NUMERICS.md); all but\n"
            "                    minmax run on the CPU only\n"
            "  --prefill P       the first P tokens of each sequence are a prompt: one append, which mines\n"
            "                    the pattern banks; the rest go one token at a time, appended and attended\n"
            "                    with q_len 1 (default 512; 0: every token that way, mined at the M-th\n"
            "                    token with --mining at-m, never with first-append)\n"
            "  --prefill-attention exact|cache\n"
            "                    how the prompt attends: exact (fp32, before compression, as a prefill\n"
            "                    kernel does; default) or through the compressed cache with q_len P\n"
            "  --prefill-chunk N the prompt goes into the cache in appends of N tokens, as an engine's\n"
            "                    chunked prefill (default 0: one append); with --prefill-attention cache each\n"
            "                    chunk also attends through the cache (q_len N)\n"
            "  --mining M        when PATTERN caches mine (pkv_mining): at-m (default: when a sequence first\n"
            "                    holds --patterns tokens, over all of them) or first-append (the paper's: only\n"
            "                    a first append that long mines)\n"
            "  --kmeans-sample S k-means of mining over at most S evenly strided tokens, then every token\n"
            "                    assigned (pkv_cache_config.kmeans_sample; default 2048; 0: all tokens)\n"
            "  --threads N       CPU backend threads (default: one per core)\n"
            "  --json FILE       also write the results as JSON\n"
            "  --plot FILE.svg   also draw bits per byte against cache bits per element, one curve per mode\n",
            EVAL_DEFAULT_MODEL, EVAL_DEFAULT_TEXT, EVAL_DEFAULT_TOKENS);
}

/* The library's defaults for mode m where neither the item nor the options set a value */
static pkv_cache_config mode_resolved(const eval_options *o, const eval_mode *m)
{
    pkv_cache_config cc = pkv_cache_config_default();
    cc.mode = m->mode;
    cc.group_size = m->group_size ? m->group_size : o->group_size;
    cc.bank_capacity = m->bank_capacity ? m->bank_capacity : o->bank_capacity;
    cc.window = o->window;
    cc.n_patterns = o->n_patterns;
    pkv_cache_config_resolve(&cc);
    return cc;
}

uint32_t eval_mode_group(const eval_options *o, const eval_mode *m) { return mode_resolved(o, m).group_size; }

uint32_t eval_mode_window(const eval_options *o, const eval_mode *m)
{
    const pkv_cache_config cc = mode_resolved(o, m);
    return cc.window ? cc.window : cc.group_size;
}

void eval_describe_group_window(const eval_options *o, char *group, size_t group_len, char *window, size_t window_len)
{
    if (o->group_size) snprintf(group, group_len, "%u", o->group_size);
    else snprintf(group, group_len, "64 / 128 (the library's: pattern / direct)");
    if (o->window) snprintf(window, window_len, "%u", o->window);
    else snprintf(window, window_len, o->group_size ? "= group" : "128 (the library's)");
}

uint32_t eval_mode_k_assign(const eval_options *o, const eval_mode *m)
{
    return m->k_assign >= 0 ? (uint32_t)m->k_assign : o->k_assign;
}

uint32_t eval_mode_bank_capacity(const eval_options *o, const eval_mode *m)
{
    return mode_resolved(o, m).bank_capacity;
}

void eval_mode_curve(const eval_options *o, const eval_mode *m, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s", pkv_mode_name(m->mode));
    if (m->mode != PKV_MODE_FP16 && m->group_size && m->group_size != o->group_size && n >= 0 && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, " g%u", m->group_size);
    uint32_t ka = eval_mode_k_assign(o, m);
    if (m->mode == PKV_MODE_PATTERN && ka != PKV_K_ASSIGN_MINMAX && n >= 0 && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, " %s", pkv_k_assign_name((pkv_k_assign)ka));
    if (m->mode == PKV_MODE_PATTERN && m->bank_capacity && m->bank_capacity != o->bank_capacity && n >= 0 &&
        (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, " c%u", m->bank_capacity);
    if (m->quantizer != PKV_QUANTIZER_MINMAX && n >= 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " q%s", pkv_quantizer_name((pkv_quantizer)m->quantizer));
}

static int add_mode(eval_options *o, pkv_mode mode, uint32_t kb, uint32_t vb, uint32_t g, int ka, uint32_t cap,
                    uint32_t q)
{
    for (int i = 0; i < o->n_modes; i++)
        if (o->modes[i].mode == mode && o->modes[i].k_bits == kb && o->modes[i].v_bits == vb &&
            o->modes[i].group_size == g && o->modes[i].k_assign == ka && o->modes[i].bank_capacity == cap &&
            o->modes[i].quantizer == q)
            return 0;
    if (o->n_modes == EVAL_MAX_MODES) return -1;
    o->modes[o->n_modes++] = (eval_mode){mode, kb, vb, g, ka, cap, q};
    return 0;
}

static int parse_k_assign(const char *s, uint32_t *out)
{
    for (uint32_t a = PKV_K_ASSIGN_MINMAX; a <= PKV_K_ASSIGN_NONE; a++)
        if (strcmp(s, pkv_k_assign_name((pkv_k_assign)a)) == 0) {
            *out = a;
            return 0;
        }
    return -1;
}

static int parse_quantizer(const char *s, uint32_t *out)
{
    for (uint32_t q = PKV_QUANTIZER_MINMAX; q <= PKV_QUANTIZER_MSE_V; q++)
        if (strcmp(s, pkv_quantizer_name((pkv_quantizer)q)) == 0) {
            *out = q;
            return 0;
        }
    return -1;
}

/* One item of --modes: fp16 | pattern | direct | patternK | directK | patternK/V | directK/V, each but
 * fp16 optionally followed by :gN (N = 32, 64 or 128), :qmse (pkv_quantizer) and, for pattern, :kNAME (a
 * pkv_k_assign) and :cN. */
static int parse_mode_item(eval_options *o, const char *item)
{
    pkv_mode mode;
    const char *rest;
    if (strcmp(item, "fp16") == 0) return add_mode(o, PKV_MODE_FP16, 16, 16, 0, -1, 0, 0);
    if (strncmp(item, "pattern", 7) == 0) mode = PKV_MODE_PATTERN, rest = item + 7;
    else if (strncmp(item, "direct", 6) == 0) mode = PKV_MODE_DIRECT, rest = item + 6;
    else return -1;
    char buf[32];
    if (strlen(rest) >= sizeof buf) return -1;
    snprintf(buf, sizeof buf, "%s", rest);
    uint32_t g = 0, cap = 0, q = PKV_QUANTIZER_AUTO; /* the library's default, resolved by eval_run_mode */
    int ka = -1;
    char *colon = strchr(buf, ':');
    if (colon) *colon = '\0';
    while (colon) { /* suffixes :gN, :cN, :kNAME and :qNAME */
        char *item_end = strchr(colon + 1, ':');
        if (item_end) *item_end = '\0';
        uint32_t a;
        if (colon[1] == 'g') {
            if (cli_parse_u32(colon + 2, 0, UINT32_MAX, &g) || (g != 32 && g != 64 && g != 128)) return -1;
        } else if (colon[1] == 'c' && mode == PKV_MODE_PATTERN) {
            if (cli_parse_u32(colon + 2, 0, UINT32_MAX, &cap) || cap < 1 || cap > 256) return -1;
        } else if (colon[1] == 'k' && mode == PKV_MODE_PATTERN && parse_k_assign(colon + 2, &a) == 0) {
            ka = (int)a;
        } else if (colon[1] == 'q' && parse_quantizer(colon + 2, &q) == 0) {
        } else {
            return -1;
        }
        colon = item_end;
    }
    if (!*buf) {
        for (uint32_t b = 2; b <= 4; b++)
            if (add_mode(o, mode, b, b, g, ka, cap, q)) return -1;
        return 0;
    }
    char *slash = strchr(buf, '/');
    uint32_t kb, vb;
    if (slash) *slash = '\0';
    if (cli_parse_u32(buf, 0, UINT32_MAX, &kb) || (slash ? cli_parse_u32(slash + 1, 0, UINT32_MAX, &vb) : (vb = kb, 0)) ||
        !cli_valid_bits(kb) || !cli_valid_bits(vb))
        return -1;
    return add_mode(o, mode, kb, vb, g, ka, cap, q);
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

/* A default file of the repository; as given when it is nowhere (the error then names it). */
static const char *repo_file(const char *rel, char *buf, size_t len)
{
    const char *p = cli_repo_file(rel, buf, len);
    return p ? p : rel;
}

int eval_parse_args(int argc, char **argv, eval_options *o)
{
    static char model_buf[4096], text_buf[4096];
    memset(o, 0, sizeof *o);
    o->backend = PKV_BACKEND_AUTO;
    o->device = -1;
    o->tokens = EVAL_DEFAULT_TOKENS;
    const pkv_cache_config lib_default = pkv_cache_config_default();
    o->group_size = lib_default.group_size; /* 0: the mode's */
    o->n_patterns = lib_default.n_patterns;
    o->kmeans_sample = lib_default.kmeans_sample;
    o->bank_capacity = lib_default.bank_capacity; /* 0: n_patterns */
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
        } else if (strcmp(a, "--paper") == 0) {
            const pkv_cache_config paper = pkv_cache_config_paper();
            o->group_size = paper.group_size, o->n_patterns = paper.n_patterns;
            o->bank_capacity = paper.bank_capacity, o->paper = 1, takes = 0;
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
        } else if (strcmp(a, "--bank-capacity") == 0) {
            if (cli_parse_u32(val, 0, UINT32_MAX, &o->bank_capacity) || o->bank_capacity < 1 || o->bank_capacity > 256) {
                fprintf(stderr, "pkv eval-model: --bank-capacity %s: expected 1 to 256\n", val);
                return -1;
            }
        } else if (strcmp(a, "--k-assign") == 0) {
            if (parse_k_assign(val, &o->k_assign)) {
                fprintf(stderr, "pkv eval-model: --k-assign %s: expected minmax, l2, range or none\n", val);
                return -1;
            }
        } else if (strcmp(a, "--plot") == 0) {
            o->plot = val;
        } else if (strcmp(a, "--offset") == 0) {
            if (cli_parse_u32(val, 0, UINT32_MAX, &o->offset)) {
                fprintf(stderr, "pkv eval-model: --offset %s: expected a byte count\n", val);
                return -1;
            }
        } else if (strcmp(a, "--window") == 0) {
            if (cli_parse_u32(val, 0, UINT32_MAX, &o->window) || o->window > 65536) {
                fprintf(stderr, "pkv eval-model: --window %s: expected a token count (0: the group size)\n", val);
                return -1;
            }
        } else if (strcmp(a, "--backend") == 0) {
            if (pkv_backend_from_name(val, &o->backend) != PKV_OK) {
                fprintf(stderr, "pkv eval-model: --backend %s: not one of auto, cpu, vulkan, opencl\n", val);
                return -1;
            }
        } else if (strcmp(a, "--device") == 0) {
            uint32_t d;
            if (cli_parse_u32(val, 0, UINT32_MAX, &d) || d > 1000) {
                fprintf(stderr, "pkv eval-model: --device %s: not a device index\n", val);
                return -1;
            }
            o->device = (int)d;
        } else if (strcmp(a, "--tokens") == 0) {
            if (cli_parse_u32(val, 0, UINT32_MAX, &o->tokens) || o->tokens < 1 || o->tokens > (1u << 24)) {
                fprintf(stderr, "pkv eval-model: --tokens %s: expected a count from 1 to 16777216\n", val);
                return -1;
            }
            o->tokens_given = 1;
        } else if (strcmp(a, "--modes") == 0) {
            if (parse_modes(o, val)) {
                fprintf(stderr, "pkv eval-model: --modes %s: expected a comma list of fp16, pattern, direct, "
                                "patternB, directB or patternK/V with bits 2, 3, 4 or 8, each optionally with :g32, "
                                ":g64 or :g128\n", val);
                return -1;
            }
        } else if (strcmp(a, "--group-size") == 0) {
            if (cli_parse_u32(val, 0, UINT32_MAX, &o->group_size) ||
                (o->group_size != 32 && o->group_size != 64 && o->group_size != 128)) {
                fprintf(stderr, "pkv eval-model: --group-size %s: expected 32, 64 or 128\n", val);
                return -1;
            }
        } else if (strcmp(a, "--patterns") == 0) {
            if (cli_parse_u32(val, 0, UINT32_MAX, &o->n_patterns) || o->n_patterns < 1 || o->n_patterns > 256) {
                fprintf(stderr, "pkv eval-model: --patterns %s: expected 1 to 256\n", val);
                return -1;
            }
        } else if (strcmp(a, "--prefill") == 0) {
            if (cli_parse_u32(val, 0, UINT32_MAX, &o->prefill) || o->prefill > (1u << 20)) {
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
        } else if (strcmp(a, "--prefill-chunk") == 0) {
            if (cli_parse_u32(val, 0, UINT32_MAX, &o->prefill_chunk) || o->prefill_chunk > (1u << 20)) {
                fprintf(stderr, "pkv eval-model: --prefill-chunk %s: expected a token count (0: one append)\n", val);
                return -1;
            }
        } else if (strcmp(a, "--kmeans-sample") == 0) {
            if (cli_parse_u32(val, 0, 65535, &o->kmeans_sample)) {
                fprintf(stderr, "pkv eval-model: --kmeans-sample %s: expected 0 (all tokens) or --patterns to 65535\n", val);
                return -1;
            }
        } else if (strcmp(a, "--mining") == 0) {
            if (strcmp(val, pkv_mining_name(PKV_MINING_AT_M)) == 0) o->mining = PKV_MINING_AT_M;
            else if (strcmp(val, pkv_mining_name(PKV_MINING_FIRST_APPEND)) == 0) o->mining = PKV_MINING_FIRST_APPEND;
            else {
                fprintf(stderr, "pkv eval-model: --mining %s: expected at-m or first-append\n", val);
                return -1;
            }
        } else if (strcmp(a, "--threads") == 0) {
            if (cli_parse_u32(val, 0, UINT32_MAX, &o->threads) || o->threads > 1024) {
                fprintf(stderr, "pkv eval-model: --threads %s: expected 0 to 1024\n", val);
                return -1;
            }
        } else {
            fprintf(stderr, "pkv eval-model: unknown option %s; see --help\n", a);
            return -1;
        }
        i += takes;
    }
    if (!o->model) o->model = repo_file(EVAL_DEFAULT_MODEL, model_buf, sizeof model_buf);
    if (!o->text) o->text = repo_file(EVAL_DEFAULT_TEXT, text_buf, sizeof text_buf);
    /* FP16 first: the others' greedy agreement is measured against it */
    int fp16 = -1;
    for (int i = 0; i < o->n_modes; i++)
        if (o->modes[i].mode == PKV_MODE_FP16) fp16 = i;
    if (fp16 < 0) {
        if (o->n_modes == EVAL_MAX_MODES) o->n_modes--;
        memmove(o->modes + 1, o->modes, (size_t)o->n_modes * sizeof o->modes[0]);
        o->n_modes++;
    } else {
        memmove(o->modes + 1, o->modes, (size_t)fp16 * sizeof o->modes[0]);
    }
    o->modes[0] = (eval_mode){PKV_MODE_FP16, 16, 16, 0, -1, 0, PKV_QUANTIZER_MINMAX};
    for (int i = 0; i < o->n_modes; i++)
        if (o->modes[i].mode == PKV_MODE_PATTERN && eval_mode_bank_capacity(o, &o->modes[i]) < o->n_patterns) {
            fprintf(stderr, "pkv eval-model: a bank capacity of %u is below --patterns %u\n",
                    eval_mode_bank_capacity(o, &o->modes[i]), o->n_patterns);
            return -1;
        }
    for (int i = 0; i < o->n_modes; i++) {
        uint32_t g = eval_mode_group(o, &o->modes[i]);
        if (o->window % g) {
            fprintf(stderr, "pkv eval-model: --window %u: not a multiple of the group size %u\n", o->window, g);
            return -1;
        }
    }
    return 0;
}
