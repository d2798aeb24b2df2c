/* pkv bench command-line options. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "cli_util.h"

void bench_print_usage(FILE *f)
{
    fputs(
        "usage: pkv bench [options]\n"
        "Measures how small, how close and how fast PatternKV is on this machine: fidelity (K/V MSE,\n"
        "attention error vs an fp64 reference), decode speed, append/flush throughput and memory, for\n"
        "PATTERN, DIRECT (KIVI-style) and FP16 caches.\n"
        "\n"
        "device:\n"
        "  --backend NAME        auto (default; env PKV_BACKEND), cpu, vulkan, opencl\n"
        "  --device N|NAME       device index within the backend, or a substring of its name\n"
        "  --threads N           CPU backend threads (0: one per core)\n"
        "data:\n"
        "  --kv FILE.safetensors tensors k, v [layers, kv_heads, tokens, head_dim] and optional q\n"
        "                        [layers, q_heads, tokens, head_dim], F16 or F32\n"
        "  --kv K.npy,V.npy      the same as two .npy files (float16 or float32, C order)\n"
        "  --synthetic           built-in synthetic data even when the model fixture exists\n"
        "  --seed N              synthetic data and query seed (default 1)\n"
        "  --layers N            synthetic layers (default 2) / first N layers of a file\n"
        "  --context N           tokens per layer for fidelity (default 2048; all of a --kv file)\n"
        "  --prefill N           tokens in the first append, mined into patterns (default context/2)\n"
        "  --kv-heads N          synthetic KV heads (default 8)\n"
        "  --q-heads N           query heads, a multiple of KV heads (default 4 x KV heads)\n"
        "  --head-dim N          synthetic head dimension (default 128)\n"
        "  --queries N           queries per query head in the fidelity test (default 16)\n"
        "cache:\n"
        "  --modes LIST          pattern,direct,fp16 (default all three)\n"
        "  --bits LIST           bits for K and V, e.g. 2,3,4 (default) or K:V pairs like 2:4,4:2\n"
        "  --k-bits B --v-bits B one K/V bit pair (replaces --bits)\n"
        "  --group G             group size, 32, 64 or 128 (default: the library's, 64 for pattern, 128\n"
        "                        for direct and fp16)\n"
        "  --window R            fp16 window, a multiple of G (default: the library's, 128 with its groups,\n"
        "                        else G)\n"
        "  --patterns M          patterns mined at prefill (default 24; the paper: 32)\n"
        "  --bank N              bank capacity (default: M, banks frozen after mining; the paper: 256)\n"
        "  --paper               the paper's method (pkv_cache_config_paper): --group 128 --patterns 32\n"
        "                        --bank 256 --quantizer minmax; options after it override it\n"
        "  --quantizer Q         auto (the library's default: mse for pattern, minmax for direct),\n"
        "                        minmax (the paper's), mse, mse-k or mse-v (pkv_quantizer)\n"
        "speed:\n"
        "  --speed-contexts LIST context lengths for decode timing (default 512,2048 on CPU devices,\n"
        "                        including lavapipe and PoCL; 1024,4096,16384,32768 on GPUs); 'none' skips it\n"
        "  --batch N             sequences per decode step (default 1 on CPU devices, 4 on GPUs)\n"
        "  --steps N             timed decode steps, at least (default: 5 or more, 0.5 s per point)\n"
        "  --warmup N            untimed steps first (default 2)\n"
        "  --no-fidelity         skip the fidelity part\n"
        "  --no-throughput       skip the append/flush throughput part\n"
        "write path:\n"
        "  --write-path          a prompt into every layer of a model in one call (mining included), flushes\n"
        "                        and one-token appends of all layers at once, timed on the device and the host\n"
        "  --wp-layers N         its layers (default 32 on GPUs, 4 on CPU devices); kv heads and head_dim\n"
        "                        as --kv-heads, --head-dim\n"
        "  --wp-prompt N         its prompt tokens (default 32768 on GPUs, 2048 on CPU devices)\n"
        "decode step (engine mode, Vulkan):\n"
        "  --decode-step         a model's decode step (one token appended to every layer and sequence,\n"
        "                        attention per layer) recorded into one command buffer and submitted once,\n"
        "                        against the same step through the synchronous calls and against the\n"
        "                        attention kernels alone\n"
        "  --ds-layers N         its layers (default 32)\n"
        "  --ds-batch LIST       its batch sizes (default 1,8 on GPUs, 1 on CPU devices)\n"
        "  --ds-context N        tokens per sequence before the timed steps (default 32768 on GPUs, 256 on\n"
        "                        CPU devices); kv heads, query heads and head_dim as --kv-heads, --q-heads,\n"
        "                        --head-dim; timed steps as --steps (default 10)\n"
        "memory:\n"
        "  --model-shape L,H,D   layers, KV heads, head_dim of the model (default 32,8,128: Llama-3-8B)\n"
        "  --memory-gib X        memory for the KV cache in the 'tokens that fit' line (default 24)\n"
        "output:\n"
        "  --json FILE           write the report as JSON\n"
        "  --plot FILE.svg       write an SVG: error vs bits per element, speed vs context\n"
        "  --progress / --no-progress  progress bar on stderr (default: when stderr is a terminal)\n"
        "  -h, --help\n",
        f);
}

static int usage_error(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "pkv bench: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n(see pkv bench --help)\n");
    return 2;
}

static int parse_u32(const char *opt, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    if (!s || !*s || *s == '-') return usage_error("%s needs a non-negative integer, got '%s'", opt, s ? s : "");
    if (cli_parse_u32(s, lo, hi, out)) {
        char range[64];
        snprintf(range, sizeof range, "%s (range %u..%u)", s, lo, hi);
        return usage_error("%s: bad value %s", opt, range);
    }
    return 0;
}

/* "2,3,4" or "2:4,4:2" -> bit pairs. */
static int parse_bits(const char *s, uint32_t pairs[][2], uint32_t *n)
{
    char buf[256];
    if (strlen(s) >= sizeof buf) return usage_error("%s: list too long%s", "--bits", "");
    strcpy(buf, s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        uint32_t kb, vb;
        if (colon) {
            *colon = 0;
            if (parse_u32("--bits", tok, 2, 8, &kb) || parse_u32("--bits", colon + 1, 2, 8, &vb)) return 2;
        } else {
            if (parse_u32("--bits", tok, 2, 8, &kb)) return 2;
            vb = kb;
        }
        if (!cli_valid_bits(kb) || !cli_valid_bits(vb)) return usage_error("--bits: %s is not one of 2, 3, 4, 8%s", tok, "");
        if (*n == 12) return usage_error("--bits: at most 12 entries%s%s", "", "");
        pairs[*n][0] = kb;
        pairs[*n][1] = vb;
        (*n)++;
    }
    if (*n == 0) return usage_error("--bits: empty list%s%s", "", "");
    return 0;
}

static int parse_modes(const char *s, int modes[3])
{
    char buf[128];
    if (strlen(s) >= sizeof buf) return usage_error("--modes: list too long%s%s", "", "");
    strcpy(buf, s);
    modes[0] = modes[1] = modes[2] = 0;
    int any = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "pattern") == 0) modes[PKV_MODE_PATTERN] = 1;
        else if (strcmp(tok, "direct") == 0 || strcmp(tok, "kivi") == 0) modes[PKV_MODE_DIRECT] = 1;
        else if (strcmp(tok, "fp16") == 0) modes[PKV_MODE_FP16] = 1;
        else return usage_error("--modes: unknown mode '%s' (pattern, direct, fp16)%s", tok, "");
        any = 1;
    }
    if (!any) return usage_error("--modes: empty list%s%s", "", "");
    return 0;
}

static int parse_contexts(const char *s, bench_options *o)
{
    o->speed_set = 1;
    o->n_speed_contexts = 0;
    if (strcmp(s, "none") == 0 || strcmp(s, "0") == 0) return 0;
    char buf[256];
    if (strlen(s) >= sizeof buf) return usage_error("--speed-contexts: list too long%s%s", "", "");
    strcpy(buf, s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        uint32_t c;
        if (parse_u32("--speed-contexts", tok, 1, 1u << 24, &c)) return 2;
        if (o->n_speed_contexts == BENCH_MAX_CONTEXTS) return usage_error("--speed-contexts: at most 16 entries%s%s", "", "");
        if (o->n_speed_contexts && c <= o->speed_contexts[o->n_speed_contexts - 1])
            return usage_error("--speed-contexts: give increasing lengths (%s)%s", s, "");
        o->speed_contexts[o->n_speed_contexts++] = c;
    }
    return 0;
}

/* Fails early (before a long run) when an output file's directory is missing or not writable. */
static int check_output_dir(const char *opt, const char *path)
{
    if (!path) return 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "pkv bench: %s %s: directory %s does not exist\n", opt, path, dir);
        return 2;
    }
    if (access(dir, W_OK) != 0) {
        fprintf(stderr, "pkv bench: %s %s: directory %s is not writable\n", opt, path, dir);
        return 2;
    }
    return 0;
}

static void set_defaults(bench_options *o)
{
    memset(o, 0, sizeof *o);
    o->backend = PKV_BACKEND_AUTO;
    o->device_index = -1;
    o->n_layers = 0;
    o->n_kv_heads = 8;
    o->head_dim = 128;
    const pkv_cache_config lib_default = pkv_cache_config_default(); /* group, capacity 0: the mode's */
    o->group_size = lib_default.group_size;
    o->n_patterns = lib_default.n_patterns;
    o->quantizer = lib_default.quantizer;
    o->bank_capacity = lib_default.bank_capacity;
    o->steps = 0; /* auto */
    o->warmup = 2;
    o->n_queries = 16;
    o->model_layers = 32;
    o->model_kv_heads = 8;
    o->model_head_dim = 128;
    o->memory_gib = 24.0;
    o->seed = 1;
    o->progress = -1;
}

static int takes_value(const char *name)
{
    static const char *names[] = {"--backend", "--device", "--threads", "--kv", "--seed", "--layers", "--context",
                                  "--prefill", "--kv-heads", "--q-heads", "--head-dim", "--queries", "--modes",
                                  "--bits", "--k-bits", "--v-bits", "--group", "--window", "--patterns", "--bank",
                                  "--speed-contexts", "--batch", "--steps", "--warmup", "--model-shape",
                                  "--memory-gib", "--json", "--plot", "--wp-layers", "--wp-prompt", "--quantizer",
                                  "--ds-layers", "--ds-batch", "--ds-context"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0) return 1;
    return 0;
}

/* The config list: every mode chosen times every bit pair, FP16 once. */
static void build_configs(bench_options *o, const int modes[3], uint32_t pairs[][2], uint32_t n_pairs)
{
    o->n_configs = 0;
    for (int m = 0; m < 2; m++) {
        if (!modes[m]) continue;
        for (uint32_t i = 0; i < n_pairs; i++)
            o->configs[o->n_configs++] = (bench_config){(pkv_mode)m, pairs[i][0], pairs[i][1]};
    }
    if (modes[PKV_MODE_FP16]) o->configs[o->n_configs++] = (bench_config){PKV_MODE_FP16, 16, 16};
}

int bench_parse_options(int argc, char **argv, bench_options *o)
{
    set_defaults(o);
    int modes[3] = {1, 1, 1};
    uint32_t pairs[12][2] = {{2, 2}, {3, 3}, {4, 4}};
    uint32_t n_pairs = 3, k_bits = 0, v_bits = 0;
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        const char *val = NULL;
        char name[64];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            bench_print_usage(stdout);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) return usage_error("unexpected argument '%s'%s", arg, "");
        const char *eq = strchr(arg, '=');
        size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
        if (nl >= sizeof name) return usage_error("unknown option '%s'%s", arg, "");
        memcpy(name, arg, nl);
        name[nl] = 0;

        /* flags without a value */
        int flag = 1;
        if (strcmp(name, "--synthetic") == 0) o->force_synthetic = 1;
        else if (strcmp(name, "--progress") == 0) o->progress = 1;
        else if (strcmp(name, "--no-progress") == 0) o->progress = 0;
        else if (strcmp(name, "--no-fidelity") == 0) o->skip_fidelity = 1;
        else if (strcmp(name, "--no-throughput") == 0) o->skip_throughput = 1;
        else if (strcmp(name, "--write-path") == 0) o->write_path = 1;
        else if (strcmp(name, "--decode-step") == 0) o->decode_step = 1;
        else if (strcmp(name, "--paper") == 0) {
            const pkv_cache_config paper = pkv_cache_config_paper();
            o->group_size = paper.group_size, o->n_patterns = paper.n_patterns;
            o->bank_capacity = paper.bank_capacity, o->quantizer = paper.quantizer;
        } else flag = 0;
        if (flag) {
            if (eq) return usage_error("%s takes no value%s", name, "");
            continue;
        }
        if (!takes_value(name)) return usage_error("unknown option '%s'%s", name, "");
        if (eq) val = eq + 1;
        else if (i + 1 < argc) val = argv[++i];
        else return usage_error("%s needs a value%s", name, "");

        int rc = 0;
        if (strcmp(name, "--backend") == 0) {
            if (pkv_backend_from_name(val, &o->backend) != PKV_OK)
                rc = usage_error("--backend: unknown backend '%s' (auto, cpu, vulkan, opencl)%s", val, "");
        } else if (strcmp(name, "--device") == 0) {
            uint32_t idx;
            if (*val >= '0' && *val <= '9') {
                rc = parse_u32("--device", val, 0, 1024, &idx);
                o->device_index = (int)idx;
            } else if (*val) {
                o->device_name = val;
            } else {
                rc = usage_error("--device needs an index or a name%s%s", "", "");
            }
        } else if (strcmp(name, "--threads") == 0) rc = parse_u32(name, val, 0, 1024, &o->n_threads);
        else if (strcmp(name, "--kv") == 0) {
            if (!*val) rc = usage_error("--kv needs a file%s%s", "", "");
            o->kv_path = val;
        } else if (strcmp(name, "--seed") == 0) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(val, &end, 0);
            if (errno || *end || !*val || *val == '-') rc = usage_error("--seed: bad value '%s'%s", val, "");
            o->seed = s;
        } else if (strcmp(name, "--layers") == 0) rc = parse_u32(name, val, 1, 1024, &o->n_layers);
        else if (strcmp(name, "--context") == 0) rc = parse_u32(name, val, 1, 1u << 24, &o->context);
        else if (strcmp(name, "--prefill") == 0) rc = parse_u32(name, val, 1, 1u << 24, &o->prefill);
        else if (strcmp(name, "--kv-heads") == 0) rc = parse_u32(name, val, 1, 256, &o->n_kv_heads);
        else if (strcmp(name, "--q-heads") == 0) rc = parse_u32(name, val, 1, 1024, &o->n_q_heads);
        else if (strcmp(name, "--head-dim") == 0) {
            rc = parse_u32(name, val, 32, 256, &o->head_dim);
            if (!rc && o->head_dim % 8) rc = usage_error("--head-dim: %s is not a multiple of 8%s", val, "");
        } else if (strcmp(name, "--queries") == 0) rc = parse_u32(name, val, 1, 4096, &o->n_queries);
        else if (strcmp(name, "--modes") == 0) rc = parse_modes(val, modes);
        else if (strcmp(name, "--bits") == 0) rc = parse_bits(val, pairs, &n_pairs);
        else if (strcmp(name, "--k-bits") == 0) {
            rc = parse_u32(name, val, 2, 8, &k_bits);
            if (!rc && !cli_valid_bits(k_bits)) rc = usage_error("--k-bits: %s is not one of 2, 3, 4, 8%s", val, "");
        } else if (strcmp(name, "--v-bits") == 0) {
            rc = parse_u32(name, val, 2, 8, &v_bits);
            if (!rc && !cli_valid_bits(v_bits)) rc = usage_error("--v-bits: %s is not one of 2, 3, 4, 8%s", val, "");
        } else if (strcmp(name, "--group") == 0) {
            rc = parse_u32(name, val, 32, 128, &o->group_size);
            if (!rc && o->group_size != 32 && o->group_size != 64 && o->group_size != 128)
                rc = usage_error("--group: %s is not 32, 64 or 128%s", val, "");
        } else if (strcmp(name, "--window") == 0) rc = parse_u32(name, val, 1, 1u << 16, &o->window);
        else if (strcmp(name, "--patterns") == 0) rc = parse_u32(name, val, 1, 256, &o->n_patterns);
        else if (strcmp(name, "--bank") == 0) rc = parse_u32(name, val, 1, 256, &o->bank_capacity);
        else if (strcmp(name, "--quantizer") == 0) {
            uint32_t q = PKV_QUANTIZER_MINMAX;
            while (q <= PKV_QUANTIZER_AUTO && strcmp(val, pkv_quantizer_name((pkv_quantizer)q)) != 0) q++;
            if (q <= PKV_QUANTIZER_AUTO) o->quantizer = q;
            else rc = usage_error("--quantizer: %s is not auto, minmax, mse, mse-k or mse-v%s", val, "");
        }
        else if (strcmp(name, "--speed-contexts") == 0) rc = parse_contexts(val, o);
        else if (strcmp(name, "--wp-layers") == 0) rc = parse_u32(name, val, 1, 4096, &o->wp_layers);
        else if (strcmp(name, "--wp-prompt") == 0) rc = parse_u32(name, val, 1, 1u << 22, &o->wp_prompt);
        else if (strcmp(name, "--batch") == 0) rc = parse_u32(name, val, 1, 4096, &o->batch);
        else if (strcmp(name, "--ds-layers") == 0) rc = parse_u32(name, val, 1, 4096, &o->ds_layers);
        else if (strcmp(name, "--ds-context") == 0) rc = parse_u32(name, val, 1, 1u << 22, &o->ds_context);
        else if (strcmp(name, "--ds-batch") == 0) {
            char buf[128];
            o->n_ds_batch = 0;
            if (strlen(val) >= sizeof buf) rc = usage_error("--ds-batch: list too long%s%s", "", "");
            else strcpy(buf, val);
            for (char *save = NULL, *tok = rc ? NULL : strtok_r(buf, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
                if (o->n_ds_batch == BENCH_MAX_DS_BATCH) rc = usage_error("--ds-batch: at most 8 entries%s%s", "", "");
                else rc = parse_u32(name, tok, 1, 1024, &o->ds_batch[o->n_ds_batch++]);
            }
            if (!rc && !o->n_ds_batch) rc = usage_error("--ds-batch: empty list%s%s", "", "");
        }
        else if (strcmp(name, "--steps") == 0) rc = parse_u32(name, val, 1, 100000, &o->steps);
        else if (strcmp(name, "--warmup") == 0) rc = parse_u32(name, val, 0, 1000000, &o->warmup);
        else if (strcmp(name, "--model-shape") == 0) {
            if (sscanf(val, "%u,%u,%u", &o->model_layers, &o->model_kv_heads, &o->model_head_dim) != 3 ||
                !o->model_layers || !o->model_kv_heads || o->model_head_dim < 32 || o->model_head_dim > 256 ||
                o->model_head_dim % 8)
                rc = usage_error("--model-shape: expected LAYERS,KV_HEADS,HEAD_DIM (head_dim a multiple of 8 in "
                                 "32..256), got '%s'%s", val, "");
        } else if (strcmp(name, "--memory-gib") == 0) {
            char *end;
            o->memory_gib = strtod(val, &end);
            if (*end || !*val || !(o->memory_gib > 0) || o->memory_gib > 1e6)
                rc = usage_error("--memory-gib: bad value '%s'%s", val, "");
        } else if (strcmp(name, "--json") == 0) {
            if (!*val) rc = usage_error("--json needs a file%s%s", "", "");
            o->json_path = val;
        } else if (strcmp(name, "--plot") == 0) {
            if (!*val) rc = usage_error("--plot needs a file%s%s", "", "");
            o->plot_path = val;
        } else {
            rc = usage_error("unknown option '%s'%s", name, "");
        }
        if (rc) return rc;
    }
    if (k_bits || v_bits) {
        n_pairs = 1;
        pairs[0][0] = k_bits ? k_bits : (v_bits ? v_bits : 2);
        pairs[0][1] = v_bits ? v_bits : pairs[0][0];
    }
    build_configs(o, modes, pairs, n_pairs);
    if (o->n_q_heads && !o->kv_path && o->n_q_heads % o->n_kv_heads)
        return usage_error("--q-heads must be a multiple of --kv-heads%s%s", "", "");
    if (o->window && o->window % (o->group_size ? o->group_size : 128))
        return usage_error("--window must be a multiple of --group (of 128 with the default groups)%s%s", "", "");
    if (check_output_dir("--json", o->json_path) || check_output_dir("--plot", o->plot_path)) return 2;
    if (o->kv_path && o->force_synthetic) return usage_error("--kv and --synthetic exclude each other%s%s", "", "");
    return 0;
}
