/* Writes the cache loader's seed files into the directory argv[1]: small caches of every mode, with a
 * fork, a never-written layer and partly filled windows, each once as saved (prefix byte 0: as is)
 * and once with prefix byte 1 (the fuzz target recomputes the checksums). Run by make_corpus.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patternkv.h"

static int save_seed(pkv_cache *c, const char *dir, const char *name)
{
    char tmp[1024], out[1024];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
    if (pkv_cache_save(c, tmp) != PKV_OK) return -1;
    FILE *f = fopen(tmp, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (!b || fread(b + 1, 1, (size_t)n, f) != (size_t)n) return -1;
    fclose(f);
    remove(tmp);
    for (int mode = 0; mode < 2; mode++) {
        b[0] = (unsigned char)mode;
        snprintf(out, sizeof out, "%s/%s_%s", dir, name, mode ? "fixcrc" : "asis");
        FILE *o = fopen(out, "wb");
        if (!o || fwrite(b, 1, (size_t)n + 1, o) != (size_t)n + 1 || fclose(o) != 0) return -1;
    }
    free(b);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    pkv_context_params cp = pkv_context_params_default();
    cp.backend = PKV_BACKEND_CPU;
    pkv_context *ctx;
    if (pkv_context_create(&cp, &ctx) != PKV_OK) return 1;
    static const char *const names[] = {"pattern", "direct", "fp16"};
    float kv[100 * 2 * 32];
    for (int i = 0; i < 100 * 2 * 32; i++) kv[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    for (int mode = 0; mode < 3; mode++) {
        pkv_cache_config cfg = pkv_cache_config_default();
        cfg.n_layers = 2, cfg.n_kv_heads = 2, cfg.head_dim = 32, cfg.group_size = 32, cfg.n_patterns = 4;
        cfg.mode = (pkv_mode)mode, cfg.memory_budget = 1u << 20;
        pkv_cache *c;
        pkv_seq a, b;
        if (pkv_cache_create(ctx, &cfg, &c) != PKV_OK || pkv_seq_create(c, &a) != PKV_OK) return 1;
        if (pkv_append(c, a, 0, 70, kv, kv, PKV_F32) != PKV_OK || pkv_seq_fork(c, a, &b) != PKV_OK ||
            pkv_append(c, b, 0, 30, kv, kv, PKV_F32) != PKV_OK || pkv_append(c, b, 1, 5, kv, kv, PKV_F32) != PKV_OK)
            return 1;
        if (save_seed(c, argv[1], names[mode]) != 0) return 1;
        pkv_cache_free(c);
    }
    pkv_context_free(ctx);
    return 0;
}
