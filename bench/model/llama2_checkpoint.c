/* Reading a llama2.c checkpoint (the "version 0" format of run.c and the "version 2" Q8_0 format of
 * runq.c, both described in llama2.h): the header, its checks, and the weight pointers into one fp32
 * allocation (a version-2 file is dequantized into the version-0 layout at load). */
#include "llama2.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_INTS 7
#define LLAMA2_Q8_MAGIC 0x616b3432u /* "ak42" */
#define LLAMA2_Q8_HEADER_BYTES 256

static int fail(char *err, size_t len, const char *msg, const char *path)
{
    snprintf(err, len, "%s: %s", path, msg);
    return -1;
}

/* Fills m->cfg from the 7 header ints (vocab already made positive) and checks it. */
static int set_config(llama2_model *m, const int32_t *h, int shared, const char *path, char *err, size_t err_len)
{
    llama2_config *c = &m->cfg;
    c->dim = h[0], c->hidden_dim = h[1], c->n_layers = h[2], c->n_heads = h[3], c->n_kv_heads = h[4];
    c->shared_classifier = shared;
    c->vocab_size = h[5];
    c->seq_len = h[6];
    if (c->dim <= 0 || c->dim > 65536 || c->hidden_dim <= 0 || c->hidden_dim > 1 << 20 || c->n_layers <= 0 ||
        c->n_layers > 1024 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->vocab_size <= 0 ||
        c->vocab_size > 1 << 24 || c->seq_len <= 0 || c->seq_len > 1 << 24 || c->dim % c->n_heads ||
        c->n_heads % c->n_kv_heads || (c->dim / c->n_heads) % 2) {
        snprintf(err, err_len,
                 "%s: not a llama2.c checkpoint (header dim %d hidden %d layers %d heads %d kv_heads %d vocab %d "
                 "seq_len %d)", path, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
        return -1;
    }
    c->head_dim = c->dim / c->n_heads;
    return 0;
}

/* The weight pointers into m->data (version-0 layout); returns the floats it spans. */
static uint64_t set_pointers(llama2_model *m, int rope_tables)
{
    const llama2_config *c = &m->cfg;
    const uint64_t L = (uint64_t)c->n_layers, D = (uint64_t)c->dim, F = (uint64_t)c->hidden_dim;
    const uint64_t hd = (uint64_t)c->head_dim, qd = (uint64_t)c->n_heads * hd, kvd = (uint64_t)c->n_kv_heads * hd;
    const uint64_t V = (uint64_t)c->vocab_size;
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
    if (rope_tables) p += (uint64_t)c->seq_len * hd;
    m->wcls = c->shared_classifier ? m->embedding : p;
    if (!c->shared_classifier) p += V * D;
    return (uint64_t)(p - m->data);
}

/* The parameter count and the version-0 file's floats (RoPE tables included). */
static uint64_t count_params(llama2_model *m)
{
    const llama2_config *c = &m->cfg;
    const uint64_t L = (uint64_t)c->n_layers, D = (uint64_t)c->dim, F = (uint64_t)c->hidden_dim;
    const uint64_t hd = (uint64_t)c->head_dim, qd = (uint64_t)c->n_heads * hd, kvd = (uint64_t)c->n_kv_heads * hd;
    const uint64_t V = (uint64_t)c->vocab_size;
    uint64_t n = V * D + L * (D + D * qd + 2 * D * kvd + qd * D + D + 3 * D * F) + D;
    m->n_params = n + (c->shared_classifier ? 0 : V * D);
    return m->n_params + (uint64_t)c->seq_len * hd; /* the two RoPE tables of old exports */
}

static int check_finite(llama2_model *m, uint64_t n, const char *path, char *err, size_t err_len)
{
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(m->data[i])) {
            llama2_free(m);
            return fail(err, err_len, "holds a NaN or Inf weight", path);
        }
    return 0;
}

static int load_v2(FILE *f, const char *path, llama2_model *m, char *err, size_t err_len);

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
    if ((uint32_t)h[0] == LLAMA2_Q8_MAGIC) {
        int rc = load_v2(f, path, m, err, err_len);
        fclose(f);
        return rc;
    }
    /* INT32_MIN has no negation (found by fuzz_llama2) */
    int32_t hv[HEADER_INTS];
    memcpy(hv, h, sizeof h);
    hv[5] = h[5] > 0 ? h[5] : h[5] == INT32_MIN ? 0 : -h[5];
    if (set_config(m, hv, h[5] > 0, path, err, err_len) != 0) {
        fclose(f);
        if (err_len) /* the message shows the header as written */
            snprintf(err, err_len,
                     "%s: not a llama2.c checkpoint (header dim %d hidden %d layers %d heads %d kv_heads %d vocab %d "
                     "seq_len %d)", path, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
        return -1;
    }
    const uint64_t n = count_params(m);

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
    set_pointers(m, 1);
    return check_finite(m, n, path, err, err_len);
}

/* Version 2 (runq.c): reads the rest of the 256-byte header, then the fp32 norms and the Q8_0 tensors,
 * dequantized into the version-0 layout (without RoPE tables). */
static int read_q8(FILE *f, float *dst, uint64_t numel, int gs, int8_t *qbuf, float *sbuf)
{
    const uint64_t ng = numel / (uint64_t)gs;
    if (fread(qbuf, 1, numel, f) != numel || fread(sbuf, sizeof(float), ng, f) != ng) return -1;
    for (uint64_t g = 0; g < ng; g++)
        for (int i = 0; i < gs; i++) dst[g * (uint64_t)gs + (uint64_t)i] = (float)qbuf[g * (uint64_t)gs + (uint64_t)i] * sbuf[g];
    return 0;
}

static int load_v2(FILE *f, const char *path, llama2_model *m, char *err, size_t err_len)
{
    unsigned char hb[LLAMA2_Q8_HEADER_BYTES];
    int32_t h[HEADER_INTS];
    if (fseek(f, 0, SEEK_SET) != 0 || fread(hb, 1, sizeof hb, f) != sizeof hb)
        return fail(err, err_len, "too short for a llama2.c version-2 header (256 bytes)", path);
    int32_t version, gs;
    memcpy(&version, hb + 4, 4);
    memcpy(h, hb + 8, sizeof h);
    memcpy(&gs, hb + 37, 4);
    if (version != 2) {
        snprintf(err, err_len, "%s: llama2.c checkpoint version %d (this reader knows 0 and 2)", path, (int)version);
        return -1;
    }
    if (hb[36] > 1) return fail(err, err_len, "version-2 header: shared_classifier is neither 0 nor 1", path);
    if (set_config(m, h, hb[36], path, err, err_len) != 0) return -1;
    const llama2_config *c = &m->cfg;
    if (gs <= 0 || gs > c->dim || c->dim % gs || c->hidden_dim % gs) {
        snprintf(err, err_len, "%s: version-2 group size %d does not divide dim %d and hidden_dim %d", path, (int)gs,
                 c->dim, c->hidden_dim);
        memset(m, 0, sizeof *m);
        return -1;
    }
    count_params(m);
    const uint64_t L = (uint64_t)c->n_layers, D = (uint64_t)c->dim, F = (uint64_t)c->hidden_dim;
    const uint64_t hd = (uint64_t)c->head_dim, qd = (uint64_t)c->n_heads * hd, kvd = (uint64_t)c->n_kv_heads * hd;
    const uint64_t V = (uint64_t)c->vocab_size;
    const uint64_t norms = 2 * L * D + D, quant = m->n_params - norms;
    const uint64_t expect = LLAMA2_Q8_HEADER_BYTES + 4 * norms + quant + 4 * (quant / (uint64_t)gs);
    if (fseek(f, 0, SEEK_END) != 0) return fail(err, err_len, "cannot seek", path);
    long size = ftell(f);
    if (size < 0 || (uint64_t)size != expect) {
        snprintf(err, err_len, "%s: %ld bytes, but its version-2 header implies %llu (truncated or not a llama2.c "
                 "checkpoint)", path, size, (unsigned long long)expect);
        memset(m, 0, sizeof *m);
        return -1;
    }
    m->data = malloc(m->n_params * sizeof(float));
    uint64_t biggest = V * D > D * F ? V * D : D * F;
    int8_t *qbuf = malloc(biggest);
    float *sbuf = malloc(biggest / (uint64_t)gs * sizeof(float));
    if (!m->data || !qbuf || !sbuf) {
        free(qbuf), free(sbuf), llama2_free(m);
        return fail(err, err_len, "out of memory", path);
    }
    const uint64_t n = set_pointers(m, 0);
    /* the pointers are const for the forward pass; here they are written once */
    float *emb = (float *)m->embedding, *wcls = (float *)m->wcls;
    int bad = fseek(f, LLAMA2_Q8_HEADER_BYTES, SEEK_SET) != 0 ||
              fread((float *)m->rms_att, sizeof(float), L * D, f) != L * D ||
              fread((float *)m->rms_ffn, sizeof(float), L * D, f) != L * D ||
              fread((float *)m->rms_final, sizeof(float), D, f) != D;
    bad = bad || read_q8(f, emb, V * D, gs, qbuf, sbuf);
    struct { float *base; uint64_t per_layer; } mats[] = {
        {(float *)m->wq, D * qd}, {(float *)m->wk, D * kvd}, {(float *)m->wv, D * kvd}, {(float *)m->wo, qd * D},
        {(float *)m->w1, D * F},  {(float *)m->w2, F * D},   {(float *)m->w3, D * F},
    };
    for (size_t t = 0; t < sizeof mats / sizeof mats[0] && !bad; t++)
        for (uint64_t l = 0; l < L && !bad; l++)
            bad = read_q8(f, mats[t].base + l * mats[t].per_layer, mats[t].per_layer, gs, qbuf, sbuf);
    if (!bad && !c->shared_classifier) bad = read_q8(f, wcls, V * D, gs, qbuf, sbuf);
    free(qbuf), free(sbuf);
    if (bad) {
        llama2_free(m);
        return fail(err, err_len, "read error", path);
    }
    return check_finite(m, n, path, err, err_len);
}

void llama2_free(llama2_model *m)
{
    free(m->data);
    memset(m, 0, sizeof *m);
}
