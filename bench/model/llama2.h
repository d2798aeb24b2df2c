/* The forward pass of a llama2.c checkpoint (the format of llama2.c's run.c), in plain C, with the
 * attention left to the caller, so that it can go through PatternKV's compressed cache.
 *
 * Checkpoint (llama2.c "version 0"), little-endian: 7 int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len), then fp32 arrays, matrices row-major [out][in], each kind for all
 * layers together: token_embedding [vocab][dim], rms_att [L][dim], wq [L][H*hd][dim],
 * wk [L][KV*hd][dim], wv [L][KV*hd][dim], wo [L][dim][H*hd], rms_ffn [L][dim], w1 [L][hidden][dim],
 * w2 [L][dim][hidden], w3 [L][hidden][dim], rms_final [dim], two unused RoPE tables
 * [seq_len][hd/2] each, and a classifier [vocab][dim] only when vocab_size < 0 (> 0: the classifier
 * is the embedding). hd = dim / n_heads. llama2_load also reads llama2.c's "version 2" (Q8_0, runq.c;
 * docs/MODEL.md) and dequantizes it into this layout. */
#ifndef PKV_MODEL_LLAMA2_H
#define PKV_MODEL_LLAMA2_H

#include <stddef.h>
#include <stdint.h>

typedef struct llama2_config {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int head_dim;           /* dim / n_heads */
    int shared_classifier;  /* the header's vocab_size was positive */
} llama2_config;

typedef struct llama2_model {
    llama2_config cfg;
    float *data; /* the whole file after the header */
    const float *embedding, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *wcls;
    uint64_t n_params;
} llama2_model;

/* Reads and checks a checkpoint. Returns 0, or -1 with a sentence in err. */
int llama2_load(const char *path, llama2_model *m, char *err, size_t err_len);
void llama2_free(llama2_model *m);

/* Attention of one layer for n consecutive positions pos0..pos0+n-1 of one sequence. q: [n][n_heads][hd],
 * k and v: [n][n_kv_heads][hd], all post-RoPE; out: [n][n_heads][hd]. The callee stores k and v
 * (they are the cache's new tokens) and attends causally over everything stored, these included.
 * Returns 0, or -1 to stop the forward pass. */
typedef int (*llama2_attend_fn)(void *user, int layer, int pos0, int n, const float *q, const float *k,
                                const float *v, float *out);

typedef struct llama2_state {
    int capacity; /* positions one forward call can take */
    float *x, *xb, *xb2, *hb, *hb2, *q, *k, *v, *att, *logits;
} llama2_state;

int llama2_state_init(llama2_state *s, const llama2_config *cfg, int capacity);
void llama2_state_free(llama2_state *s);

/* Runs tokens[0..n-1] at positions pos0.. (n <= capacity, pos0 + n <= seq_len). Leaves logits
 * [n][vocab] in s->logits. Returns 0, or -1 when attend failed or the arguments are out of range. */
int llama2_forward(const llama2_model *m, llama2_state *s, const int *tokens, int pos0, int n,
                   llama2_attend_fn attend, void *user);

#endif
