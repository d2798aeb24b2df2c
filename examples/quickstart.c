/* PatternKV in one page: a context, a compressed KV cache, a prefill of every layer in one call, a
 * few decode steps (attention with the new token's own K/V, then one append of all layers), a fork,
 * save and load. Build it against an installed PatternKV with
 *
 *     cc -std=c11 quickstart.c $(pkg-config --cflags --libs patternkv) -o quickstart
 *
 * or with CMake: find_package(patternkv CONFIG) and link patternkv::patternkv (examples/CMakeLists.txt).
 * Run: ./quickstart [file.pkv]. The K, V and q here are made up; in an engine they are the model's
 * post-RoPE keys and values and its queries. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <patternkv.h>

/* Stops with the library's message when a call fails. */
#define CHECK(call)                                                                                          \
    do {                                                                                                     \
        pkv_status st_ = (call);                                                                             \
        if (st_ != PKV_OK) {                                                                                 \
            fprintf(stderr, "quickstart: %s failed: %s\n", #call, pkv_last_error());                         \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

enum { LAYERS = 2, KV_HEADS = 2, Q_HEADS = 8, HEAD_DIM = 64, PREFILL = 1000, DECODE = 8 };
#define ROW (KV_HEADS * HEAD_DIM)

/* Keys and values with some structure (a few recurring directions) and noise. */
static void make_tokens(unsigned *seed, int n, float *k, float *v)
{
    for (int i = 0; i < n * ROW; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        float noise = (float)(*seed >> 8) / 16777216.0f - 0.5f;
        int pattern = (i / ROW / 16) % 4, c = i % HEAD_DIM;
        k[i] = sinf(0.3f * (float)(c * (pattern + 1))) + 0.2f * noise;
        v[i] = cosf(0.1f * (float)(c + 7 * pattern)) + 0.5f * noise;
    }
}

/* One decode step of sequence `seq`: every layer attends over its cache plus the new token's own K
 * and V (given to the call, not cached yet), as a forward pass does layer by layer; then one call
 * appends the token to every layer. (Here every layer gets the same made-up K and V.) */
static void decode_step(pkv_cache *cache, pkv_seq seq, unsigned *seed, float *out)
{
    float k[ROW], v[ROW], q[Q_HEADS * HEAD_DIM];
    make_tokens(seed, 1, k, v);
    for (int i = 0; i < Q_HEADS * HEAD_DIM; i++) q[i] = sinf(0.01f * (float)(i + (int)(*seed % 97)));
    pkv_attention_params ap = pkv_attention_params_default(); /* q_len 1, fp32 q, scale 1/sqrt(head_dim) */
    ap.seqs = &seq;
    ap.n_seqs = 1;
    ap.n_q_heads = Q_HEADS; /* 4 query heads share each KV head (GQA) */
    ap.k_new = k, ap.v_new = v; /* the token's own K and V: [1][kv_heads][head_dim] */
    for (uint32_t layer = 0; layer < LAYERS; layer++) {
        ap.layer = layer;
        CHECK(pkv_attention(cache, &ap, q, out + layer * Q_HEADS * HEAD_DIM));
    }
    const void *ks[LAYERS], *vs[LAYERS];
    for (int layer = 0; layer < LAYERS; layer++) ks[layer] = k, vs[layer] = v;
    pkv_append_params wp = pkv_append_params_default(); /* every layer from 0, fp32 */
    wp.seq = seq;
    wp.n_tokens = 1;
    CHECK(pkv_append_layers(cache, &wp, ks, vs));
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "quickstart.pkv";

    /* A context: AUTO takes a Vulkan or OpenCL GPU, else the CPU backend, and says why. */
    pkv_context_params cp = pkv_context_params_default();
    pkv_context *ctx;
    CHECK(pkv_context_create(&cp, &ctx));
    pkv_device_info dev = {.struct_size = sizeof dev};
    CHECK(pkv_context_device(ctx, &dev, NULL, 0));

    /* A cache: 2-bit PatternKV, groups of 128 tokens, 32 patterns mined at prefill. */
    pkv_cache_config cfg = pkv_cache_config_default();
    cfg.n_layers = LAYERS;
    cfg.n_kv_heads = KV_HEADS;
    cfg.head_dim = HEAD_DIM;
    pkv_cache *cache;
    CHECK(pkv_cache_create(ctx, &cfg, &cache));

    /* Prefill: the prompt's K and V of every layer, each [tokens][kv_heads][head_dim], in one call
     * (mines the banks of every layer and head together). */
    pkv_seq seq;
    CHECK(pkv_seq_create(cache, &seq));
    unsigned seed = 1;
    float *k[LAYERS], *v[LAYERS];
    for (int layer = 0; layer < LAYERS; layer++) {
        k[layer] = malloc(sizeof(float) * PREFILL * ROW), v[layer] = malloc(sizeof(float) * PREFILL * ROW);
        if (!k[layer] || !v[layer]) return 1;
        make_tokens(&seed, PREFILL, k[layer], v[layer]);
    }
    pkv_append_params prompt = pkv_append_params_default();
    prompt.seq = seq;
    prompt.n_tokens = PREFILL;
    CHECK(pkv_append_layers(cache, &prompt, (const void *const *)k, (const void *const *)v));
    for (int layer = 0; layer < LAYERS; layer++) free(k[layer]), free(v[layer]);

    /* Decode a few tokens; then fork (parallel sampling shares the compressed prefix) and decode both. */
    float out[LAYERS * Q_HEADS * HEAD_DIM], out_child[LAYERS * Q_HEADS * HEAD_DIM];
    for (int t = 0; t < DECODE; t++) decode_step(cache, seq, &seed, out);
    pkv_seq child;
    CHECK(pkv_seq_fork(cache, seq, &child));
    unsigned child_seed = seed;
    decode_step(cache, seq, &seed, out);
    decode_step(cache, child, &child_seed, out_child);

    pkv_cache_stats stats = {.struct_size = sizeof stats};
    CHECK(pkv_cache_stats_get(cache, &stats));
    uint32_t tokens;
    CHECK(pkv_seq_length(cache, seq, 0, &tokens));

    /* Save, load into a new cache, and ask both the same question: the answers agree. */
    CHECK(pkv_cache_save(cache, path));
    pkv_cache *loaded;
    CHECK(pkv_cache_load(ctx, path, &loaded));
    float q[Q_HEADS * HEAD_DIM], a[Q_HEADS * HEAD_DIM], b[Q_HEADS * HEAD_DIM];
    for (int i = 0; i < Q_HEADS * HEAD_DIM; i++) q[i] = cosf(0.02f * (float)i);
    pkv_attention_params ap = pkv_attention_params_default();
    ap.seqs = &child;
    ap.n_seqs = 1;
    ap.n_q_heads = Q_HEADS;
    ap.layer = LAYERS - 1;
    CHECK(pkv_attention(cache, &ap, q, a));
    CHECK(pkv_attention(loaded, &ap, q, b));
    double worst = 0;
    for (int i = 0; i < Q_HEADS * HEAD_DIM; i++) worst = fmax(worst, fabs((double)a[i] - b[i]));
    remove(path);

    printf("quickstart: %s backend on %s: %u tokens per layer at %.2f bits per element (codes, scales, patterns "
           "and the fp16 window), a fork sharing %llu blocks, and a saved cache that loads and attends %s "
           "(max difference %.1e)\n",
           pkv_backend_name(dev.backend), dev.name, tokens, stats.bits_per_element,
           (unsigned long long)stats.blocks_shared, worst <= 1e-6 ? "the same" : "DIFFERENTLY", worst);
    CHECK(pkv_cache_free(loaded));
    CHECK(pkv_cache_free(cache));
    CHECK(pkv_context_free(ctx));
    return worst <= 1e-6 ? 0 : 1;
}
