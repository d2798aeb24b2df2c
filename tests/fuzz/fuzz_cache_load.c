/* libFuzzer target: pkv_cache_load (src/core/cache_io.c) on the CPU backend, and then the loaded cache
 * in use (lengths, read-back, attention, an append and a fork), so that a file the loader accepts is
 * checked to be safe to use, not only to load.
 *
 * Two modes, chosen by the input's first byte: even, the rest is the file as it is (checksums and
 * all); odd, the rest with every CRC recomputed first (the header's, the sequence table's and the
 * three arenas', found by walking the file as the loader does), so that mutations get past the
 * checksums and reach the structure checks behind them. */
#include <string.h>

#include "crc32.h"
#include "fuzz_file.h"
#include "internal.h"

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void wr32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24); }

/* Recomputes the CRCs in place as far as the file's own counts lead (docs/FORMAT.md). */
static void fix_crcs(uint8_t *p, size_t n)
{
    const size_t hdr = 104;
    if (n < hdr + 4) return;
    wr32(p + hdr, pkv_crc32(0, p, hdr));
    const uint32_t layers = rd32(p + 12), H = rd32(p + 16), mode = rd32(p + 48), n_seqs = rd32(p + 88);
    const uint32_t slot[3] = {rd32(p + 60), rd32(p + 64), rd32(p + 68)}, count[3] = {rd32(p + 92), rd32(p + 96), rd32(p + 100)};
    size_t pos = hdr + 4, from = pos;
    for (uint32_t s = 0; s < n_seqs; s++) {
        if (pos + 4 > n) return;
        pos += 4;
        for (uint32_t l = 0; l < layers; l++) {
            if (pos + 12 > n) return;
            const uint64_t words = (uint64_t)rd32(p + pos) * H + (mode == PKV_MODE_PATTERN ? (uint64_t)H * 8 : 0) + H;
            if (words > n / 4) return;
            pos += 12 + 4 * (size_t)words;
            if (pos > n) return;
        }
    }
    if (pos + 4 > n) return;
    wr32(p + pos, pkv_crc32(0, p + from, pos - from));
    pos += 4;
    for (int a = 0; a < 3; a++) {
        const uint64_t bytes = (uint64_t)count[a] * slot[a];
        if (bytes > n || pos + bytes + 4 > n) return;
        wr32(p + pos + bytes, pkv_crc32(0, p + pos, (size_t)bytes));
        pos += (size_t)bytes + 4;
    }
}

/* Uses every sequence of a loaded cache, bounded in work. */
static void exercise(pkv_cache *c)
{
    const uint32_t H = c->g.H, d = c->g.d, n_seqs = c->n_seqs < 4 ? c->n_seqs : 4;
    for (uint32_t i = 0; i < n_seqs; i++) {
        const pkv_seq id = c->seqs[i]->id;
        for (uint32_t l = 0; l < c->cfg.n_layers && l < 4; l++) {
            uint32_t T = 0;
            if (pkv_seq_length(c, id, l, &T) != PKV_OK || T == 0 || (uint64_t)T * H * d > (1u << 22)) continue;
            float *k = malloc((size_t)T * H * d * sizeof *k), *v = malloc((size_t)T * H * d * sizeof *v);
            float *q = calloc((size_t)2 * H * d, sizeof *q), *out = malloc((size_t)2 * H * d * sizeof *out);
            if (k && v && q && out) {
                pkv_read_kv(c, id, l, k, v);
                for (uint32_t j = 0; j < 2 * H * d; j++) q[j] = (float)((j * 7) % 13) / 13.0f - 0.5f;
                pkv_attention_params p = pkv_attention_params_default();
                p.seqs = &id, p.n_seqs = 1, p.layer = l, p.n_q_heads = 2 * H;
                pkv_attention(c, &p, q, out);
                pkv_append(c, id, l, 1, q, q, PKV_F32);
            }
            free(k), free(v), free(q), free(out);
        }
        pkv_seq child;
        if (pkv_seq_fork(c, id, &child) == PKV_OK) pkv_seq_free(c, child);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pkv_context *ctx;
    if (!ctx) {
        pkv_context_params p = pkv_context_params_default();
        p.backend = PKV_BACKEND_CPU;
        p.n_threads = 1;
        p.log_level = PKV_LOG_ERROR;
        p.log = NULL;
        if (pkv_context_create(&p, &ctx) != PKV_OK) abort();
    }
    if (size < 1) return 0;
    uint8_t *file = malloc(size);
    if (!file) return 0;
    memcpy(file, data + 1, size - 1);
    if (data[0] & 1) fix_crcs(file, size - 1);
    pkv_cache *c = NULL;
    if (pkv_cache_load(ctx, fuzz_write_file(".pkv", file, size - 1), &c) == PKV_OK) {
        exercise(c);
        pkv_cache_free(c);
    }
    free(file);
    return 0;
}
