#include "kv_data.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counter_rng.h"
#include "tensor.h"

void kv_query_positions(uint32_t n_tokens, uint32_t prefill, uint32_t n, uint32_t *pos)
{
    if (prefill >= n_tokens) {
        for (uint32_t j = 0; j < n; j++) pos[j] = n_tokens - 1;
        return;
    }
    double span = (double)(n_tokens - prefill) / n;
    for (uint32_t j = 0; j < n; j++) {
        double jitter = fmod((j + 1) * 0.6180339887498949, 1.0);
        uint32_t p = prefill + (uint32_t)((j + jitter) * span);
        if (p >= n_tokens) p = n_tokens - 1;
        if (j > 0 && p < pos[j - 1]) p = pos[j - 1];
        pos[j] = p;
    }
}

static uint32_t resolve_prefill(uint32_t prefill, uint32_t n_tokens)
{
    if (prefill == 0) prefill = n_tokens / 2;
    if (prefill == 0 || prefill > n_tokens) prefill = n_tokens;
    return prefill;
}

void kv_data_free(kv_data *d)
{
    free(d->q_pos);
    free(d->k);
    free(d->v);
    free(d->q);
    memset(d, 0, sizeof *d);
}

int kv_data_synthetic(kv_data *out, const synth_params *p, uint32_t n_layers, uint32_t n_tokens, uint32_t prefill,
                      uint32_t n_queries, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    if (n_queries > n_tokens) n_queries = n_tokens;
    out->n_layers = n_layers;
    out->n_kv_heads = p->n_kv_heads;
    out->n_q_heads = p->n_q_heads;
    out->n_tokens = n_tokens;
    out->head_dim = p->head_dim;
    out->q_tokens = n_queries;
    out->synthetic = 1;
    out->synth = *p;
    uint64_t n = (uint64_t)n_layers * p->n_kv_heads * n_tokens * p->head_dim;
    uint64_t nq = (uint64_t)n_layers * p->n_q_heads * n_queries * p->head_dim;
    out->k = malloc(n * sizeof(float));
    out->v = malloc(n * sizeof(float));
    out->q = malloc((nq ? nq : 1) * sizeof(float));
    out->q_pos = malloc((n_queries ? n_queries : 1) * sizeof(uint32_t));
    if (!out->k || !out->v || !out->q || !out->q_pos) {
        kv_data_free(out);
        snprintf(err, err_len, "out of memory for the synthetic data (%llu values)", (unsigned long long)n);
        return -1;
    }
    out->prefill = resolve_prefill(prefill, n_tokens);
    kv_query_positions(n_tokens, out->prefill, n_queries, out->q_pos);
    for (uint32_t l = 0; l < n_layers; l++) {
        for (uint32_t h = 0; h < p->n_kv_heads; h++)
            synth_kv(p, l, h, 0, n_tokens, kv_row(out->k, out, l, h, 0), kv_row(out->v, out, l, h, 0));
        for (uint32_t qh = 0; qh < p->n_q_heads; qh++)
            for (uint32_t j = 0; j < n_queries; j++)
                synth_q(p, l, qh, out->q_pos[j], kv_q_row(out, l, qh, j));
    }
    snprintf(out->source, sizeof out->source, "synthetic (seed %llu)", (unsigned long long)p->seed);
    return 0;
}

static int check_kv_shape(const cli_tensor *t, const char *what, const char *path, char *err, size_t err_len)
{
    if (t->rank != 4) {
        snprintf(err, err_len, "%s: %s has %u dimensions; expected 4: [layers, heads, tokens, head_dim]", path, what,
                 t->rank);
        return -1;
    }
    for (int i = 0; i < 4; i++)
        if (t->shape[i] == 0 || t->shape[i] > (1u << 30)) {
            snprintf(err, err_len, "%s: %s has an empty or absurd dimension %d (%llu)", path, what, i,
                     (unsigned long long)t->shape[i]);
            return -1;
        }
    return 0;
}

/* Keeps the first `layers` layers and first `tokens` tokens of a [L][H][T][d] tensor (in place). */
static void crop(cli_tensor *t, uint64_t layers, uint64_t tokens)
{
    uint64_t L = t->shape[0], H = t->shape[1], T = t->shape[2], d = t->shape[3];
    if (layers >= L && tokens >= T) return;
    if (layers > L) layers = L;
    if (tokens > T) tokens = T;
    float *dst = t->data;
    for (uint64_t l = 0; l < layers; l++)
        for (uint64_t h = 0; h < H; h++) {
            memmove(dst, t->data + ((l * H + h) * T) * d, tokens * d * sizeof(float));
            dst += tokens * d;
        }
    t->shape[0] = layers;
    t->shape[2] = tokens;
}

/* Keeps the tokens at positions pos[0..n) of a [L][H][T][d] tensor (in place; pos non-decreasing). */
static void keep_positions(cli_tensor *t, const uint32_t *pos, uint32_t n)
{
    uint64_t L = t->shape[0], H = t->shape[1], T = t->shape[2], d = t->shape[3];
    float *dst = t->data;
    for (uint64_t lh = 0; lh < L * H; lh++)
        for (uint32_t j = 0; j < n; j++) {
            memmove(dst, t->data + (lh * T + pos[j]) * d, d * sizeof(float));
            dst += d;
        }
    t->shape[2] = n;
}

static int split_npy_pair(const char *spec, char *a, char *b, size_t cap)
{
    const char *comma = strchr(spec, ',');
    if (!comma || strchr(comma + 1, ',')) return -1;
    size_t la = (size_t)(comma - spec), lb = strlen(comma + 1);
    if (la == 0 || lb == 0 || la >= cap || lb >= cap) return -1;
    memcpy(a, spec, la);
    a[la] = 0;
    memcpy(b, comma + 1, lb + 1);
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* q ~ N(mean, std) per channel of the keys of the query head's KV head, at n_queries positions. */
static int draw_queries(kv_data *d, uint32_t n_queries, uint64_t seed)
{
    uint32_t D = d->head_dim, group = d->n_q_heads / d->n_kv_heads;
    d->q = malloc((uint64_t)d->n_layers * d->n_q_heads * n_queries * D * sizeof(float) + 1);
    double *mean = malloc(D * sizeof(double)), *sd = malloc(D * sizeof(double));
    if (!d->q || !mean || !sd) {
        free(mean);
        free(sd);
        return -1;
    }
    for (uint32_t l = 0; l < d->n_layers; l++)
        for (uint32_t h = 0; h < d->n_kv_heads; h++) {
            for (uint32_t c = 0; c < D; c++) {
                double s = 0, s2 = 0;
                for (uint32_t t = 0; t < d->n_tokens; t++) {
                    double x = kv_row(d->k, d, l, h, t)[c];
                    s += x;
                    s2 += x * x;
                }
                mean[c] = s / d->n_tokens;
                double var = s2 / d->n_tokens - mean[c] * mean[c];
                sd[c] = var > 0 ? sqrt(var) : 0;
            }
            for (uint32_t qh = h * group; qh < (h + 1) * group; qh++)
                for (uint32_t j = 0; j < n_queries; j++) {
                    float *q = kv_q_row(d, l, qh, j);
                    for (uint32_t c = 0; c < D; c++)
                        q[c] = (float)(mean[c] + sd[c] * cli_gauss(cli_hash(seed ^ 0x51ull, l, qh, (uint64_t)j * D + c)));
                }
        }
    free(mean);
    free(sd);
    return 0;
}

int kv_data_load(kv_data *out, const char *spec, uint32_t max_layers, uint32_t max_tokens, uint32_t prefill,
                 uint32_t n_q_heads, uint32_t n_queries, uint64_t seed, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    cli_tensor k = {0}, v = {0}, q = {0};
    int have_q = 0;
    if (ends_with(spec, ".safetensors")) {
        int rc = cli_safetensors_load(spec, "k", &k, err, err_len);
        if (rc == 1) snprintf(err, err_len, "%s: no tensor named 'k'", spec);
        if (rc) return -1;
        rc = cli_safetensors_load(spec, "v", &v, err, err_len);
        if (rc == 1) snprintf(err, err_len, "%s: no tensor named 'v'", spec);
        if (rc) goto fail;
        rc = cli_safetensors_load(spec, "q", &q, err, err_len);
        if (rc < 0) goto fail;
        have_q = rc == 0;
    } else {
        char a[4096], b[4096];
        if (split_npy_pair(spec, a, b, sizeof a)) {
            snprintf(err, err_len, "--kv takes FILE.safetensors or K.npy,V.npy (got '%s')", spec);
            return -1;
        }
        if (cli_npy_load(a, &k, err, err_len)) return -1;
        if (cli_npy_load(b, &v, err, err_len)) goto fail;
    }
    if (check_kv_shape(&k, "k", spec, err, err_len) || check_kv_shape(&v, "v", spec, err, err_len)) goto fail;
    if (memcmp(k.shape, v.shape, 4 * sizeof k.shape[0]) != 0) {
        snprintf(err, err_len, "%s: k and v shapes differ ([%llu,%llu,%llu,%llu] vs [%llu,%llu,%llu,%llu])", spec,
                 (unsigned long long)k.shape[0], (unsigned long long)k.shape[1], (unsigned long long)k.shape[2],
                 (unsigned long long)k.shape[3], (unsigned long long)v.shape[0], (unsigned long long)v.shape[1],
                 (unsigned long long)v.shape[2], (unsigned long long)v.shape[3]);
        goto fail;
    }
    if (have_q) {
        if (check_kv_shape(&q, "q", spec, err, err_len)) goto fail;
        if (q.shape[0] != k.shape[0] || q.shape[2] != k.shape[2] || q.shape[3] != k.shape[3] ||
            q.shape[1] % k.shape[1] != 0) {
            snprintf(err, err_len, "%s: q must be [layers, q_heads, tokens, head_dim] with the layers, tokens and "
                     "head_dim of k and q_heads a multiple of k's heads", spec);
            goto fail;
        }
    }
    uint64_t layers = max_layers ? max_layers : k.shape[0], tokens = max_tokens ? max_tokens : k.shape[2];
    crop(&k, layers, tokens);
    crop(&v, layers, tokens);
    uint32_t T = (uint32_t)k.shape[2], nq = n_queries ? n_queries : 1;
    if (nq > T) nq = T;
    out->prefill = resolve_prefill(prefill, T);
    out->q_tokens = nq;
    out->q_pos = malloc(nq * sizeof(uint32_t));
    if (!out->q_pos) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    kv_query_positions(T, out->prefill, nq, out->q_pos);
    if (have_q) {
        crop(&q, layers, tokens);
        keep_positions(&q, out->q_pos, nq);
    }
    out->n_layers = (uint32_t)k.shape[0];
    out->n_kv_heads = (uint32_t)k.shape[1];
    out->n_tokens = (uint32_t)k.shape[2];
    out->head_dim = (uint32_t)k.shape[3];
    out->k = k.data;
    out->v = v.data;
    k.data = v.data = NULL;
    if (have_q) {
        out->n_q_heads = (uint32_t)q.shape[1];
        out->q = q.data;
        q.data = NULL;
    } else {
        out->n_q_heads = n_q_heads ? n_q_heads : out->n_kv_heads;
        if (out->n_q_heads % out->n_kv_heads != 0) {
            snprintf(err, err_len, "--q-heads %u is not a multiple of the file's %u kv heads", out->n_q_heads,
                     out->n_kv_heads);
            kv_data_free(out);
            goto fail;
        }
        if (draw_queries(out, nq, seed)) {
            snprintf(err, err_len, "out of memory");
            kv_data_free(out);
            goto fail;
        }
        out->q_from_keys = 1;
    }
    snprintf(out->source, sizeof out->source, "%s", spec);
    cli_tensor_free(&q);
    return 0;
fail:
    free(out->q_pos);
    out->q_pos = NULL;
    cli_tensor_free(&k);
    cli_tensor_free(&v);
    cli_tensor_free(&q);
    return -1;
}

/* One kv head's synthetic tokens, written into the [token][head][dim] arrays (a thread's share). */
typedef struct synth_job {
    const kv_data *d;
    uint32_t layer, head, t0, n;
    float *k, *v;
    int ok;
} synth_job;

static void *synth_head(void *arg)
{
    synth_job *j = arg;
    uint32_t H = j->d->n_kv_heads, D = j->d->head_dim;
    float *tk = malloc((size_t)j->n * D * sizeof(float)), *tv = malloc((size_t)j->n * D * sizeof(float));
    j->ok = tk && tv;
    if (j->ok) {
        synth_kv(&j->d->synth, j->layer, j->head, j->t0, j->n, tk, tv);
        for (uint32_t i = 0; i < j->n; i++) {
            memcpy(j->k + ((uint64_t)i * H + j->head) * D, tk + (uint64_t)i * D, D * sizeof(float));
            memcpy(j->v + ((uint64_t)i * H + j->head) * D, tv + (uint64_t)i * D, D * sizeof(float));
        }
    }
    free(tk);
    free(tv);
    return NULL;
}

void kv_data_tokens(const kv_data *d, uint32_t layer, uint32_t t0, uint32_t n, float *k, float *v)
{
    uint32_t H = d->n_kv_heads, D = d->head_dim;
    if (d->synthetic && H <= 256) {
        /* the heads in parallel, from 64 tokens of head_dim 128 on: synthesis (Box-Muller and RoPE, about
         * 10 us per token and head) was most of a GPU bench's run time, 8 x 32K tokens in window-sized appends */
        synth_job jobs[256];
        pthread_t th[256];
        int started[256] = {0}, ok = 1;
        for (uint32_t h = 0; h < H; h++) {
            jobs[h] = (synth_job){d, layer, h, t0, n, k, v, 0};
            started[h] = n * D >= 8192 && pthread_create(&th[h], NULL, synth_head, &jobs[h]) == 0;
            if (!started[h]) synth_head(&jobs[h]);
        }
        for (uint32_t h = 0; h < H; h++) {
            if (started[h]) pthread_join(th[h], NULL);
            ok &= jobs[h].ok;
        }
        if (ok) return; /* out of memory: fall back to wrapping the stored tokens */
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t t = (t0 + i) % d->n_tokens;
        for (uint32_t h = 0; h < H; h++) {
            memcpy(k + ((uint64_t)i * H + h) * D, kv_row(d->k, d, layer, h, t), D * sizeof(float));
            memcpy(v + ((uint64_t)i * H + h) * D, kv_row(d->v, d, layer, h, t), D * sizeof(float));
        }
    }
}
