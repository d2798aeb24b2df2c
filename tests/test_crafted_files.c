/* Crafted cache files: files whose checksums are all correct but whose fields contradict the
 * configuration or each other. pkv_cache_load must reject each one with PKV_ERR_CORRUPT_FILE before
 * anything is stored (cache_io.c: load checks), on every backend. The files are made by decoding a
 * saved file into its parts (header, sequence table, three arenas), changing fields, and encoding it
 * again with fresh CRCs (docs/FORMAT.md), so that the checks behind the checksums are reached. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32.h"
#include "testutil.h"

#define HEADER_BYTES 112 /* magic, version, 15 u32 + 2 u64 config fields, n_seqs, 3 counts, kmeans_sample (format
                          * version >= 2), quantizer (version 3); then its crc */

static char path_a[256], path_b[256], dir_path[256];

/* A cache file decoded into its parts. */
typedef struct cfile {
    uint8_t header[HEADER_BYTES];
    uint32_t *seq;      /* the sequence table as words */
    size_t seq_words;
    uint8_t *arena[3];  /* blocks, chunks, windows */
    uint32_t count[3], slot[3];
    uint32_t n_layers, H, mode, n_seqs;
} cfile;

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void wr32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24); }

static void cf_decode(const uint8_t *p, size_t n, cfile *f)
{
    memset(f, 0, sizeof *f);
    assert_true(n > HEADER_BYTES + 4);
    memcpy(f->header, p, HEADER_BYTES);
    f->n_layers = rd32(p + 12), f->H = rd32(p + 16), f->mode = rd32(p + 48);
    for (int a = 0; a < 3; a++) f->slot[a] = rd32(p + 60 + 4 * a);
    f->n_seqs = rd32(p + 88);
    for (int a = 0; a < 3; a++) f->count[a] = rd32(p + 92 + 4 * a);
    size_t pos = HEADER_BYTES + 4, start = pos;
    for (uint32_t s = 0; s < f->n_seqs; s++) {
        pos += 4;
        for (uint32_t l = 0; l < f->n_layers; l++) {
            uint32_t nb = rd32(p + pos);
            pos += 12 + 4 * ((size_t)nb * f->H + (f->mode == PKV_MODE_PATTERN ? f->H * 8 : 0) + f->H);
        }
    }
    f->seq_words = (pos - start) / 4;
    f->seq = malloc(f->seq_words * 4 + 4);
    for (size_t i = 0; i < f->seq_words; i++) f->seq[i] = rd32(p + start + 4 * i);
    pos += 4;
    for (int a = 0; a < 3; a++) {
        size_t bytes = (size_t)f->count[a] * f->slot[a];
        f->arena[a] = malloc(bytes + 1);
        memcpy(f->arena[a], p + pos, bytes);
        pos += bytes + 4;
    }
    assert_int_equal(pos, n);
}

/* Writes the parts as a file with correct CRCs (counts and n_seqs from *f). */
static void cf_write(const cfile *f, const char *path)
{
    FILE *out = fopen(path, "wb");
    assert_non_null(out);
    uint8_t h[HEADER_BYTES + 4], w[4];
    memcpy(h, f->header, HEADER_BYTES);
    wr32(h + 88, f->n_seqs);
    for (int a = 0; a < 3; a++) wr32(h + 92 + 4 * a, f->count[a]);
    wr32(h + HEADER_BYTES, pkv_crc32(0, h, HEADER_BYTES));
    fwrite(h, 1, sizeof h, out);
    uint8_t *t = malloc(f->seq_words * 4 + 4);
    for (size_t i = 0; i < f->seq_words; i++) wr32(t + 4 * i, f->seq[i]);
    fwrite(t, 1, f->seq_words * 4, out);
    wr32(w, pkv_crc32(0, t, f->seq_words * 4));
    fwrite(w, 1, 4, out);
    free(t);
    for (int a = 0; a < 3; a++) {
        size_t bytes = (size_t)f->count[a] * f->slot[a];
        fwrite(f->arena[a], 1, bytes, out);
        wr32(w, pkv_crc32(0, f->arena[a], bytes));
        fwrite(w, 1, 4, out);
    }
    assert_int_equal(fclose(out), 0);
}

static void cf_free(cfile *f)
{
    free(f->seq);
    for (int a = 0; a < 3; a++) free(f->arena[a]);
}

/* Word index in f->seq of sequence s's id (layer < 0) or of layer l's n_blocks field. */
static size_t cf_at(const cfile *f, uint32_t s, int layer)
{
    size_t w = 0;
    for (uint32_t i = 0;; i++) {
        if (i == s && layer < 0) return w;
        w++;
        for (uint32_t l = 0; l < f->n_layers; l++) {
            if (i == s && (int)l == layer) return w;
            w += 3 + (size_t)f->seq[w] * f->H + (f->mode == PKV_MODE_PATTERN ? f->H * 8 : 0) + f->H;
        }
    }
}
/* Words of layer l of sequence s: block table, chunk table, window table. */
static uint32_t *cf_blocks(cfile *f, uint32_t s, int l) { return f->seq + cf_at(f, s, l) + 3; }
static uint32_t *cf_chunks(cfile *f, uint32_t s, int l) { return cf_blocks(f, s, l) + f->seq[cf_at(f, s, l)] * f->H; }
static uint32_t *cf_windows(cfile *f, uint32_t s, int l)
{
    return cf_chunks(f, s, l) + (f->mode == PKV_MODE_PATTERN ? f->H * 8 : 0);
}

/* A saved cache of two sequences (the second a fork with more tokens), 2 layers, 2 heads, G = 32,
 * 8 patterns; layer 1 of the first sequence is never written. */
static void make_file(pkv_context *ctx, pkv_mode mode, cfile *f, pkv_geom *geom)
{
    tu_rng r = {77};
    pkv_cache_config cfg = tu_config(2, 2, 32, 2, 32, mode);
    pkv_cache *c;
    TU_OK(pkv_cache_create(ctx, &cfg, &c));
    float *k = malloc(100 * 64 * sizeof(float)), *v = malloc(100 * 64 * sizeof(float));
    tu_random(&r, 100 * 64, 1.0f, k);
    tu_random(&r, 100 * 64, 1.0f, v);
    pkv_seq a, b;
    TU_OK(pkv_seq_create(c, &a));
    TU_OK(pkv_append(c, a, 0, 70, k, v, PKV_F32));
    TU_OK(pkv_seq_fork(c, a, &b));
    TU_OK(pkv_append(c, b, 0, 30, k + 70 * 64, v + 70 * 64, PKV_F32));
    TU_OK(pkv_append(c, b, 1, 40, k, v, PKV_F32));
    *geom = *tu_geom(c);
    TU_OK(pkv_cache_save(c, path_a));
    pkv_cache_free(c);
    free(k), free(v);
    size_t n;
    uint8_t *p = tu_slurp(path_a, &n);
    cf_decode(p, n, f);
    free(p);
}

static void expect_corrupt(pkv_context *ctx, const cfile *f, const char *what)
{
    cf_write(f, path_b);
    pkv_cache *d = (pkv_cache *)1;
    pkv_status st = pkv_cache_load(ctx, path_b, &d);
    if (st != PKV_ERR_CORRUPT_FILE) fail_msg("%s: load returned %s (%s)", what, pkv_status_string(st), pkv_last_error());
    assert_null(d);
}

static void unmodified_round_trip_loads(void **state)
{
    (void)state;
    pkv_context *ctx = tu_context();
    for (int mode = 0; mode < 3; mode++) {
        cfile f;
        pkv_geom g;
        make_file(ctx, (pkv_mode)mode, &f, &g);
        cf_write(&f, path_b);
        pkv_cache *d;
        TU_OK(pkv_cache_load(ctx, path_b, &d));
        /* the never-written layer takes its first tokens after the load (its window slots are taken then) */
        float kv[40 * 64] = {0};
        TU_OK(pkv_append(d, 1, 1, 40, kv, kv, PKV_F32));
        uint32_t len;
        TU_OK(pkv_seq_length(d, 1, 1, &len));
        assert_int_equal(len, 40);
        pkv_cache_free(d);
        cf_free(&f);
    }
    pkv_context_free(ctx);
}

/* Writes the file of *f as format version v (1 or 2: the header without its last 2 or 1 fields, its
 * CRC remade, the rest unchanged). */
static void write_old_version(const cfile *f, uint32_t v)
{
    cf_write(f, path_b);
    size_t n;
    uint8_t *p = tu_slurp(path_b, &n);
    const size_t hb = HEADER_BYTES - 4 * (3 - v);
    wr32(p + 8, v);
    wr32(p + hb, pkv_crc32(0, p, hb));
    FILE *out = fopen(path_b, "wb");
    assert_non_null(out);
    fwrite(p, 1, hb + 4, out);
    fwrite(p + HEADER_BYTES + 4, 1, n - HEADER_BYTES - 4, out);
    assert_int_equal(fclose(out), 0);
    free(p);
}

/* Files of format versions 1 (docs/FORMAT.md: no kmeans_sample nor quantizer in the header) and 2
 * (no quantizer) load, with kmeans_sample 0 (version 1) and the MINMAX quantizer; a saved file says
 * kmeans_sample and the quantizer and loads with them (a crafted AUTO as it resolves); version 4 and an
 * unknown quantizer are refused. */
static void format_versions_1_and_2_load(void **state)
{
    (void)state;
    pkv_context *ctx = tu_context();
    cfile f;
    pkv_geom g;
    make_file(ctx, PKV_MODE_PATTERN, &f, &g);
    pkv_cache *d;
    pkv_cache_config cfg = pkv_cache_config_default();
    wr32(f.header + HEADER_BYTES - 4, PKV_QUANTIZER_MSE_V); /* the blocks were made by min-max; loading does not care */
    cf_write(&f, path_b);
    TU_OK(pkv_cache_load(ctx, path_b, &d));
    TU_OK(pkv_cache_get_config(d, &cfg));
    assert_int_equal(cfg.kmeans_sample, PKV_KMEANS_SAMPLE_DEFAULT);
    assert_int_equal(cfg.quantizer, PKV_QUANTIZER_MSE_V);
    pkv_cache_free(d);
    for (uint32_t v = 1; v <= 2; v++) {
        write_old_version(&f, v);
        TU_OK(pkv_cache_load(ctx, path_b, &d));
        TU_OK(pkv_cache_get_config(d, &cfg));
        assert_int_equal(cfg.kmeans_sample, v == 1 ? 0 : PKV_KMEANS_SAMPLE_DEFAULT);
        assert_int_equal(cfg.quantizer, PKV_QUANTIZER_MINMAX);
        float kv[40 * 64] = {0};
        TU_OK(pkv_append(d, 1, 1, 40, kv, kv, PKV_F32));
        pkv_cache_free(d);
    }
    wr32(f.header + HEADER_BYTES - 4, PKV_QUANTIZER_AUTO); /* never saved (files hold the resolved one): PATTERN's */
    cf_write(&f, path_b);
    TU_OK(pkv_cache_load(ctx, path_b, &d));
    TU_OK(pkv_cache_get_config(d, &cfg));
    assert_int_equal(cfg.quantizer, PKV_QUANTIZER_MSE);
    pkv_cache_free(d);
    wr32(f.header + HEADER_BYTES - 4, PKV_QUANTIZER_AUTO + 1);
    expect_corrupt(ctx, &f, "quantizer 5");
    wr32(f.header + HEADER_BYTES - 4, PKV_QUANTIZER_MINMAX);
    wr32(f.header + 8, 4);
    expect_corrupt(ctx, &f, "format version 4");
    cf_free(&f);
    pkv_context_free(ctx);
}

/* Issue 1: pattern indices beyond the bank, and PATTERN blocks without a bank. */
static void pattern_indices_beyond_the_bank(void **state)
{
    (void)state;
    pkv_context *ctx = tu_context();
    cfile f;
    pkv_geom g;
    make_file(ctx, PKV_MODE_PATTERN, &f, &g);
    for (int kv = 0; kv < 2; kv++) {
        uint8_t *idx = f.arena[0] + (kv ? g.off_vidx : g.off_kidx) + 5; /* block 0, token 5 */
        const uint8_t keep = *idx;
        *idx = 200;
        expect_corrupt(ctx, &f, kv ? "V index 200" : "K index 200");
        *idx = 8; /* the bank holds 8 patterns (0 .. 7) */
        expect_corrupt(ctx, &f, kv ? "V index 8" : "K index 8");
        *idx = keep;
    }
    /* a bank smaller than the indices used: sequence 0 layer 0 with bank_count 1 */
    uint32_t *bc = f.seq + cf_at(&f, 0, 0) + 2;
    const uint32_t keep_bc = *bc;
    *bc = 1;
    expect_corrupt(ctx, &f, "bank_count 1");
    /* no bank at all: bank_count 0 and no chunks */
    *bc = 0;
    expect_corrupt(ctx, &f, "bank_count 0 with chunks");
    *bc = keep_bc;
    cf_free(&f);
    pkv_context_free(ctx);
}

/* Issue 3: one window slot owned by two sequences (or two layers). */
static void window_slot_shared(void **state)
{
    (void)state;
    pkv_context *ctx = tu_context();
    cfile f;
    pkv_geom g;
    make_file(ctx, PKV_MODE_DIRECT, &f, &g);
    /* windows in file order: seq 0 layer 0 (2 heads), seq 1 layer 0, seq 1 layer 1: 6 slots. Point
     * seq 1 layer 1 at seq 0 layer 0's and drop the last two slots, so every slot is referenced. */
    assert_int_equal(f.count[2], 6);
    uint32_t *w0 = cf_windows(&f, 0, 0), *w2 = cf_windows(&f, 1, 1);
    uint32_t hi = w2[0] > w2[1] ? w2[0] : w2[1];
    assert_int_equal(hi, 5);
    w2[0] = w0[0], w2[1] = w0[1];
    f.count[2] = 4;
    expect_corrupt(ctx, &f, "window slot shared by two sequences");
    cf_free(&f);
    make_file(ctx, PKV_MODE_DIRECT, &f, &g);
    w0 = cf_windows(&f, 0, 0);
    w0[1] = w0[0]; /* two heads of one layer */
    expect_corrupt(ctx, &f, "window slot shared by two heads");
    cf_free(&f);
    /* half a window table */
    make_file(ctx, PKV_MODE_DIRECT, &f, &g);
    cf_windows(&f, 0, 0)[1] = 0xFFFFFFFFu;
    expect_corrupt(ctx, &f, "window table half set");
    cf_free(&f);
    pkv_context_free(ctx);
}

/* Issue 4: sequence ids at or above 2^31, duplicates; and pkv_seq_create never hands out an id that
 * exists. */
static void sequence_ids(void **state)
{
    (void)state;
    pkv_context *ctx = tu_context();
    cfile f;
    pkv_geom g;
    make_file(ctx, PKV_MODE_FP16, &f, &g);
    uint32_t *id0 = f.seq + cf_at(&f, 0, -1), *id1 = f.seq + cf_at(&f, 1, -1);
    *id1 = 0xFFFFFFFFu;
    expect_corrupt(ctx, &f, "sequence id 0xFFFFFFFF");
    *id1 = 0x80000000u;
    expect_corrupt(ctx, &f, "sequence id 2^31");
    *id1 = *id0;
    expect_corrupt(ctx, &f, "duplicate sequence id");
    *id1 = 0x7FFFFFFFu; /* the largest id: loads; new ids then are the smallest free ones */
    cf_write(&f, path_b);
    pkv_cache *d;
    TU_OK(pkv_cache_load(ctx, path_b, &d));
    pkv_seq s1, s2, s3;
    TU_OK(pkv_seq_create(d, &s1));
    TU_OK(pkv_seq_fork(d, 0x7FFFFFFFu, &s2));
    TU_OK(pkv_seq_create(d, &s3));
    assert_true(s1 != *id0 && s1 != 0x7FFFFFFFu && s2 != *id0 && s2 != 0x7FFFFFFFu && s2 != s1);
    assert_true(s3 != s1 && s3 != s2 && s3 != *id0 && s3 != 0x7FFFFFFFu);
    assert_true(s1 < 0x80000000u && s2 < 0x80000000u && s3 < 0x80000000u);
    uint32_t len;
    TU_OK(pkv_seq_length(d, s2, 0, &len));
    assert_int_equal(len, 100);
    TU_OK(pkv_seq_length(d, s1, 0, &len));
    assert_int_equal(len, 0);
    pkv_cache_free(d);
    cf_free(&f);
    pkv_context_free(ctx);
}

/* Block references and lengths out of range, chunks past the bank, unreferenced slots. */
static void references_and_lengths(void **state)
{
    (void)state;
    pkv_context *ctx = tu_context();
    cfile f;
    pkv_geom g;
    make_file(ctx, PKV_MODE_PATTERN, &f, &g);
    uint32_t *b = cf_blocks(&f, 1, 0), keep = b[0];
    b[0] = f.count[0];
    expect_corrupt(ctx, &f, "block slot == count");
    b[0] = keep;
    uint32_t *nw = f.seq + cf_at(&f, 0, 0) + 1, keep_nw = *nw;
    *nw = 32; /* a full window is flushed, never stored */
    expect_corrupt(ctx, &f, "n_window == window");
    *nw = keep_nw;
    uint32_t *ch = cf_chunks(&f, 1, 0);
    ch[1] = ch[0]; /* a chunk past the bank's 8 patterns */
    expect_corrupt(ctx, &f, "chunk past the bank");
    ch[1] = 0xFFFFFFFFu;
    ch[0] = 0xFFFFFFFFu; /* a bank of 8 patterns without its chunk */
    expect_corrupt(ctx, &f, "bank without chunk");
    cf_free(&f);
    make_file(ctx, PKV_MODE_PATTERN, &f, &g);
    f.count[0]++; /* one more block slot, referenced by nothing */
    f.arena[0] = realloc(f.arena[0], (size_t)f.count[0] * f.slot[0]);
    memset(f.arena[0] + (size_t)(f.count[0] - 1) * f.slot[0], 0, f.slot[0]);
    expect_corrupt(ctx, &f, "unreferenced block");
    cf_free(&f);
    pkv_context_free(ctx);
}

/* Issue 5: a directory or an unreadable path is an I/O error, not a request for 2^63 bytes. */
static void directories_are_io_errors(void **state)
{
    (void)state;
    pkv_context *ctx = tu_context();
    pkv_cache *d = NULL;
    assert_int_equal(pkv_cache_load(ctx, dir_path, &d), PKV_ERR_IO);
    assert_null(d);
    assert_int_equal(pkv_cache_load(ctx, "/nonexistent/file.pkv", &d), PKV_ERR_IO);
    pkv_context_free(ctx);
}

int main(void)
{
    snprintf(path_a, sizeof path_a, "/tmp/pkv_test_crafted_a_%ld.pkv", (long)getpid());
    snprintf(path_b, sizeof path_b, "/tmp/pkv_test_crafted_b_%ld.pkv", (long)getpid());
    snprintf(dir_path, sizeof dir_path, "/tmp/pkv_test_crafted_dir_%ld", (long)getpid());
    mkdir(dir_path, 0700);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unmodified_round_trip_loads),
        cmocka_unit_test(format_versions_1_and_2_load),
        cmocka_unit_test(pattern_indices_beyond_the_bank),
        cmocka_unit_test(window_slot_shared),
        cmocka_unit_test(sequence_ids),
        cmocka_unit_test(references_and_lengths),
        cmocka_unit_test(directories_are_io_errors),
    };
    int rc = tu_run_tests(tests, NULL, NULL);
    remove(path_a);
    remove(path_b);
    rmdir(dir_path);
    return rc;
}
