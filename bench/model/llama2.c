/* Forward pass of a llama2.c checkpoint, following run.c: RMSNorm (eps 1e-5), RoPE on adjacent pairs,
 * grouped-query attention (through the caller), SwiGLU, classifier shared or separate. */
#include "llama2.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_INTS 7

static int fail(char *err, size_t len, const char *msg, const char *path)
{
    snprintf(err, len, "%s: %s", path, msg);
    return -1;
}

int llama2_load(const char *path, llama2_model *m, char *err, size_t err_len)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, err_len, "cannot open the checkpoint", path);
    int32_t h[HEADER_INTS];
    if (fread(h, sizeof h[0], HEADER_INTS, f) != HEADER_INTS) {
        fclose(f);
        return fail(err, err_len, "too short for a llama2.c header (7 int32)", path);
    }
    llama2_config *c = &m->cfg;
    c->dim = h[0], c->hidden_dim = h[1], c->n_layers = h[2], c->n_heads = h[3], c->n_kv_heads = h[4];
    c->shared_classifier = h[5] > 0;
    c->vocab_size = h[5] > 0 ? h[5] : -h[5];
    c->seq_len = h[6];
    if (c->dim <= 0 || c->dim > 65536 || c->hidden_dim <= 0 || c->hidden_dim > 1 << 20 || c->n_layers <= 0 ||
        c->n_layers > 1024 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->vocab_size <= 0 ||
        c->vocab_size > 1 << 24 || c->seq_len <= 0 || c->seq_len > 1 << 24 || c->dim % c->n_heads ||
        c->n_heads % c->n_kv_heads || (c->dim / c->n_heads) % 2) {
        fclose(f);
        snprintf(err, err_len,
                 "%s: not a llama2.c checkpoint (header dim %d hidden %d layers %d heads %d kv_heads %d vocab %d "
                 "seq_len %d)", path, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
        return -1;
    }
    c->head_dim = c->dim / c->n_heads;
    const uint64_t L = (uint64_t)c->n_layers, D = (uint64_t)c->dim, F = (uint64_t)c->hidden_dim;
    const uint64_t hd = (uint64_t)c->head_dim, qd = (uint64_t)c->n_heads * hd, kvd = (uint64_t)c->n_kv_heads * hd;
    const uint64_t V = (uint64_t)c->vocab_size;
    uint64_t n = V * D + L * (D + D * qd + 2 * D * kvd + qd * D + D + 3 * D * F) + D;
    m->n_params = n + (c->shared_classifier ? 0 : V * D);
    n += (uint64_t)c->seq_len * hd; /* the two RoPE tables of old exports */
    if (!c->shared_classifier) n += V * D;

    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return fail(err, err_len, "cannot seek", path);
    }
    long size = ftell(f);
    uint64_t expect = HEADER_INTS * 4 + n * 4;
    if (size < 0 || (uint64_t)size != expect) {
        fclose(f);
        snprintf(err, err_len, "%s: %ld bytes, but its header implies %llu (truncated or not a llama2.c checkpoint)",
                 path, size, (unsigned long long)expect);
        return -1;
    }
    m->data = malloc(n * sizeof(float));
    if (!m->data) {
        fclose(f);
        return fail(err, err_len, "out of memory", path);
    }
    if (fseek(f, HEADER_INTS * 4, SEEK_SET) != 0 || fread(m->data, sizeof(float), n, f) != n) {
        fclose(f);
        llama2_free(m);
        return fail(err, err_len, "read error", path);
    }
    fclose(f);
    const float *p = m->data;
    m->embedding = p, p += V * D;
    m->rms_att = p, p += L * D;
    m->wq = p, p += L * D * qd;
    m->wk = p, p += L * D * kvd;
    m->wv = p, p += L * D * kvd;
    m->wo = p, p += L * qd * D;
    m->rms_ffn = p, p += L * D;
    m->w1 = p, p += L * D * F;
    m->w2 = p, p += L * F * D;
    m->w3 = p, p += L * D * F;
    m->rms_final = p, p += D;
    p += (uint64_t)c->seq_len * hd;
    m->wcls = c->shared_classifier ? m->embedding : p;
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(m->data[i])) {
            llama2_free(m);
            return fail(err, err_len, "holds a NaN or Inf weight", path);
        }
    return 0;
}

void llama2_free(llama2_model *m)
{
    free(m->data);
    memset(m, 0, sizeof *m);
}

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
