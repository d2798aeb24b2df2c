/* Reading a llama2.c checkpoint (the "version 0" format of run.c, described in llama2.h): the
 * header, its checks, and the weight pointers into one allocation. */
#include "llama2.h"

#include <math.h>
#include <stdint.h>
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
    c->vocab_size = h[5] > 0 ? h[5] : h[5] == INT32_MIN ? 0 : -h[5]; /* INT32_MIN has no negation (found by fuzz_llama2) */
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
