/* Forward pass of a llama2.c checkpoint, following run.c: RMSNorm (eps 1e-5), RoPE on adjacent pairs,
 * grouped-query attention (through the caller), SwiGLU, classifier shared or separate. */
#include "llama2.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int llama2_state_init(llama2_state *s, const llama2_config *c, int capacity)
{
    memset(s, 0, sizeof *s);
    size_t n = (size_t)capacity, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    s->capacity = capacity;
    s->x = malloc(n * c->dim * sizeof(float));
    s->xb = malloc(n * ((size_t)c->dim > qd ? (size_t)c->dim : qd) * sizeof(float));
    s->xb2 = malloc(n * c->dim * sizeof(float));
    s->hb = malloc(n * c->hidden_dim * sizeof(float));
    s->hb2 = malloc(n * c->hidden_dim * sizeof(float));
    s->q = malloc(n * qd * sizeof(float));
    s->k = malloc(n * kvd * sizeof(float));
    s->v = malloc(n * kvd * sizeof(float));
    s->att = malloc(n * qd * sizeof(float));
    s->logits = malloc(n * c->vocab_size * sizeof(float));
    if (!s->x || !s->xb || !s->xb2 || !s->hb || !s->hb2 || !s->q || !s->k || !s->v || !s->att || !s->logits) {
        llama2_state_free(s);
        return -1;
    }
    return 0;
}

void llama2_state_free(llama2_state *s)
{
    free(s->x), free(s->xb), free(s->xb2), free(s->hb), free(s->hb2);
    free(s->q), free(s->k), free(s->v), free(s->att), free(s->logits);
    memset(s, 0, sizeof *s);
}

static void rmsnorm(float *o, const float *x, const float *w, int size)
{
    float ss = 0.0f;
    for (int j = 0; j < size; j++) ss += x[j] * x[j];
    ss = 1.0f / sqrtf(ss / (float)size + 1e-5f);
    for (int j = 0; j < size; j++) o[j] = w[j] * (ss * x[j]);
}

/* out[i][r] = W[r][:] . x[i][:] for n rows x of length cols; W is [rows][cols]. Eight partial sums
 * let the compiler vectorize without reassociating a single sum. */
static void matmul(float *out, const float *x, const float *w, int n, int cols, int rows)
{
    for (int r = 0; r < rows; r++) {
        const float *wr = w + (size_t)r * cols;
        for (int i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * cols;
            float acc[8] = {0};
            int c = 0;
            for (; c + 8 <= cols; c += 8)
                for (int u = 0; u < 8; u++) acc[u] += wr[c + u] * xi[c + u];
            float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
            for (; c < cols; c++) sum += wr[c] * xi[c];
            out[(size_t)i * rows + r] = sum;
        }
    }
}

/* Rotates adjacent pairs of every head of vec [heads*hd] by pos * 10000^(-2i/hd), as run.c. */
static void rope(float *vec, int heads, int hd, int pos)
{
    for (int i = 0; i < heads * hd; i += 2) {
        int j = i % hd;
        float freq = 1.0f / powf(10000.0f, (float)j / (float)hd);
        float val = (float)pos * freq;
        float fcr = cosf(val), fci = sinf(val);
        float v0 = vec[i], v1 = vec[i + 1];
        vec[i] = v0 * fcr - v1 * fci;
        vec[i + 1] = v0 * fci + v1 * fcr;
    }
}

int llama2_forward(const llama2_model *m, llama2_state *s, const int *tokens, int pos0, int n,
                   llama2_attend_fn attend, void *user)
{
    const llama2_config *c = &m->cfg;
    if (n <= 0 || n > s->capacity || pos0 < 0 || pos0 + n > c->seq_len) return -1;
    const int D = c->dim, F = c->hidden_dim, hd = c->head_dim;
    const int qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size) return -1;
        memcpy(s->x + (size_t)i * D, m->embedding + (size_t)tokens[i] * D, D * sizeof(float));
    }
    for (int l = 0; l < c->n_layers; l++) {
        for (int i = 0; i < n; i++) rmsnorm(s->xb + (size_t)i * D, s->x + (size_t)i * D, m->rms_att + (size_t)l * D, D);
        matmul(s->q, s->xb, m->wq + (size_t)l * D * qd, n, D, qd);
        matmul(s->k, s->xb, m->wk + (size_t)l * D * kvd, n, D, kvd);
        matmul(s->v, s->xb, m->wv + (size_t)l * D * kvd, n, D, kvd);
        for (int i = 0; i < n; i++) {
            rope(s->q + (size_t)i * qd, c->n_heads, hd, pos0 + i);
            rope(s->k + (size_t)i * kvd, c->n_kv_heads, hd, pos0 + i);
        }
        if (attend(user, l, pos0, n, s->q, s->k, s->v, s->att) != 0) return -1;
        matmul(s->xb2, s->att, m->wo + (size_t)l * qd * D, n, qd, D);
        for (size_t i = 0; i < (size_t)n * D; i++) s->x[i] += s->xb2[i];

        for (int i = 0; i < n; i++) rmsnorm(s->xb + (size_t)i * D, s->x + (size_t)i * D, m->rms_ffn + (size_t)l * D, D);
        matmul(s->hb, s->xb, m->w1 + (size_t)l * D * F, n, D, F);
        matmul(s->hb2, s->xb, m->w3 + (size_t)l * D * F, n, D, F);
        for (size_t i = 0; i < (size_t)n * F; i++) {
            float a = s->hb[i];
            s->hb[i] = a * (1.0f / (1.0f + expf(-a))) * s->hb2[i];
        }
        matmul(s->xb2, s->hb, m->w2 + (size_t)l * F * D, n, F, D);
        for (size_t i = 0; i < (size_t)n * D; i++) s->x[i] += s->xb2[i];
    }
    for (int i = 0; i < n; i++) rmsnorm(s->xb + (size_t)i * D, s->x + (size_t)i * D, m->rms_final, D);
    matmul(s->logits, s->xb, m->wcls, n, D, c->vocab_size);
    return 0;
}
