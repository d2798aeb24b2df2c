#include "testutil.h"

#include "cli_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

pkv_backend_kind tu_backend(void)
{
    const char *name = getenv("PKV_TEST_BACKEND");
    pkv_backend_kind k = PKV_BACKEND_CPU;
    if (name && *name && pkv_backend_from_name(name, &k) != PKV_OK) fail_msg("PKV_TEST_BACKEND=%s is unknown", name);
    return k;
}

pkv_context *tu_context(void)
{
    pkv_context_params p = pkv_context_params_default();
    p.backend = tu_backend();
    pkv_context *ctx = NULL;
    pkv_status st = pkv_context_create(&p, &ctx);
    if (st == PKV_ERR_BACKEND_UNAVAILABLE && p.backend != PKV_BACKEND_CPU && !tu_in_ci()) {
        print_message("skipping: no %s device (%s)\n", pkv_backend_name(p.backend), pkv_last_error());
        tu_skip();
    }
    if (st != PKV_OK) fail_msg("backend %s did not start: %s (%s)", pkv_backend_name(p.backend), pkv_status_string(st), pkv_last_error());
    return ctx;
}

int tu_skipped;

void tu_filter(void)
{
    const char *f = getenv("PKV_TEST_FILTER");
    if (f && *f) cmocka_set_test_filter(f);
}

int tu_exit(int rc) { return rc == 0 && tu_skipped ? 77 : rc; }

int tu_in_ci(void)
{
    const char *ci = getenv("CI");
    return ci && (strcmp(ci, "true") == 0 || strcmp(ci, "1") == 0);
}

pkv_context *tu_context_or_skip(pkv_context_params *p)
{
    pkv_context *ctx = NULL;
    pkv_status st = pkv_context_create(p, &ctx);
    if (st != PKV_OK) {
        if (tu_in_ci()) fail_msg("CI: no %s device: %s (%s)", pkv_backend_name(p->backend), pkv_status_string(st), pkv_last_error());
        print_message("skipping: no %s device (%s)\n", pkv_backend_name(p->backend), pkv_last_error());
        tu_skip();
    }
    return ctx;
}

double tu_attention_bound(pkv_context *ctx)
{
    pkv_device_info info = {.struct_size = sizeof info};
    TU_OK(pkv_context_device(ctx, &info, NULL, 0));
    return info.backend == PKV_BACKEND_CPU && strstr(info.name, "avx512vnni") ? 1e-3 : 1e-4;
}

pkv_context *tu_cpu_context(uint32_t n_threads)
{
    pkv_context_params p = pkv_context_params_default();
    p.backend = PKV_BACKEND_CPU;
    p.n_threads = n_threads;
    pkv_context *ctx = NULL;
    TU_OK(pkv_context_create(&p, &ctx));
    return ctx;
}

double tu_uniform(tu_rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (double)(r->s >> 11) * (1.0 / 9007199254740992.0);
}

double tu_normal(tu_rng *r)
{
    double u1 = tu_uniform(r), u2 = tu_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void tu_random(tu_rng *r, size_t n, float scale, float *out)
{
    for (size_t i = 0; i < n; i++) out[i] = (float)(tu_normal(r) * scale);
}

void tu_structured_kv(tu_rng *r, uint32_t n, uint32_t H, uint32_t d, uint32_t n_centres, float noise, float *out)
{
    float *centres = malloc((size_t)H * n_centres * d * sizeof(float));
    float *gain = malloc((size_t)H * d * sizeof(float));
    for (size_t i = 0; i < (size_t)H * n_centres * d; i++) centres[i] = (float)tu_normal(r);
    for (size_t i = 0; i < (size_t)H * d; i++) gain[i] = tu_uniform(r) < 0.06 ? 8.0f : 1.0f; /* outlier channels */
    uint32_t cur = 0;
    for (uint32_t t = 0; t < n; t++) {
        if (tu_uniform(r) < 0.1) cur = (uint32_t)(tu_uniform(r) * n_centres);
        for (uint32_t h = 0; h < H; h++) {
            float *c = centres + ((size_t)h * n_centres + cur) * d;
            for (uint32_t i = 0; i < d; i++) c[i] += (float)(0.002 * tu_normal(r)); /* slow drift */
            float *o = out + ((size_t)t * H + h) * d;
            for (uint32_t i = 0; i < d; i++) o[i] = gain[h * d + i] * (c[i] + noise * (float)tu_normal(r));
            for (uint32_t i = 0; i + 1 < d; i += 2) { /* RoPE-like rotation, slow for high pairs */
                double th = t * pow(10000.0, -2.0 * (i / 2) / d) * 0.01;
                float a = o[i], b = o[i + 1];
                o[i] = (float)(a * cos(th) - b * sin(th));
                o[i + 1] = (float)(a * sin(th) + b * cos(th));
            }
        }
    }
    free(centres);
    free(gain);
}

double tu_check_attention(const float *const *k, const float *const *v, const uint32_t *T, uint32_t n_seqs, uint32_t q_len,
                          uint32_t n_q_heads, uint32_t H, uint32_t d, const float *q, const float *out)
{
    double worst = 0, ref[256];
    uint32_t gq = n_q_heads / H;
    for (uint32_t s = 0; s < n_seqs; s++)
        for (uint32_t i = 0; i < q_len; i++)
            for (uint32_t qh = 0; qh < n_q_heads; qh++) {
                size_t off = (((size_t)s * q_len + i) * n_q_heads + qh) * d;
                uint32_t h = qh / gq, visible = T[s] - q_len + i + 1;
                ref_attention(q + off, k[s] + (size_t)h * d, v[s] + (size_t)h * d, visible, d, (size_t)H * d,
                              1.0 / sqrt((double)d), ref);
                double e = ref_rel_err(out + off, ref, d);
                if (e > worst) worst = e;
            }
    return worst;
}

uint8_t *tu_slurp(const char *path, size_t *n)
{
    char *data = NULL, err[512];
    if (cli_read_file(path, &data, n, err, sizeof err)) fail_msg("%s", err);
    return (uint8_t *)data;
}

void tu_expect_same_saved(pkv_cache *a, pkv_cache *b)
{
    char pa[64], pb[64];
    snprintf(pa, sizeof pa, "/tmp/pkv_same_a_%d.pkv", (int)getpid());
    snprintf(pb, sizeof pb, "/tmp/pkv_same_b_%d.pkv", (int)getpid());
    TU_OK(pkv_cache_save(a, pa));
    TU_OK(pkv_cache_save(b, pb));
    size_t na, nb;
    uint8_t *fa = tu_slurp(pa, &na), *fb = tu_slurp(pb, &nb);
    remove(pa), remove(pb);
    assert_int_equal(na, nb);
    assert_memory_equal(fa, fb, na);
    free(fa), free(fb);
}

pkv_cache_config tu_config(uint32_t layers, uint32_t H, uint32_t d, uint32_t bits, uint32_t G, pkv_mode mode)
{
    pkv_cache_config c = pkv_cache_config_default();
    c.n_layers = layers;
    c.n_kv_heads = H;
    c.head_dim = d;
    c.k_bits = c.v_bits = bits;
    c.group_size = G;
    c.mode = mode;
    c.n_patterns = 8;
    c.bank_capacity = 256; /* banks that grow at flushes (the paper's), which most tests exercise */
    c.memory_budget = 64ull << 20;
    return c;
}

#include "block.h"
#include "internal.h"

const pkv_geom *tu_geom(const pkv_cache *c) { return &c->g; }

uint32_t tu_read_bank(pkv_cache *c, pkv_seq seq, uint32_t layer, uint32_t head, float *PK, float *PV)
{
    pkv_sequence *s = pkv_find_seq(c, seq);
    assert_non_null(s);
    const pkv_layer_state *L = &s->layers[layer];
    pkv_backend *be = c->ctx->be;
    uint8_t *bytes = malloc((size_t)PKV_MAX_CHUNKS * c->g.chunk_bytes);
    const uint8_t *cp[PKV_MAX_CHUNKS];
    for (uint32_t ci = 0; ci * PKV_CHUNK_PATTERNS < L->bank_count; ci++) {
        cp[ci] = bytes + (size_t)ci * c->g.chunk_bytes;
        TU_OK(be->iface->buf_read(be, pkv_shard_of(c, layer)->chunks.buf, (size_t)L->chunks[head * PKV_MAX_CHUNKS + ci] * c->g.chunk_bytes,
                                  bytes + (size_t)ci * c->g.chunk_bytes, c->g.chunk_bytes));
    }
    pkv_bank_load(&c->g, cp, L->bank_count, PK, PV);
    free(bytes);
    return L->bank_count;
}

void tu_read_block(pkv_cache *c, pkv_seq seq, uint32_t layer, uint32_t head, uint32_t block, uint8_t *bytes)
{
    pkv_sequence *s = pkv_find_seq(c, seq);
    assert_non_null(s);
    const pkv_layer_state *L = &s->layers[layer];
    assert_true(block < L->n_blocks);
    pkv_backend *be = c->ctx->be;
    TU_OK(be->iface->buf_read(be, pkv_shard_of(c, layer)->blocks.buf, (size_t)L->blocks[(size_t)block * c->g.H + head] * c->g.block_bytes,
                              bytes, c->g.block_bytes));
}
