/* Enqueued OpenCL calls (pkv_opencl_enqueue_append / pkv_opencl_enqueue_attention) on the
 * application's own context and in-order queue, as an engine uses them: every layer's append and
 * attention of a decode step enqueued without a wait, the host waiting once per step on the last
 * returned event. Checked against the synchronous calls on the same data (the same outputs, byte-
 * identical saved caches), and a NaN in one layer's K: reported in the status word with its layer,
 * the cache stays usable. A prompt in two appends (5 tokens, then the rest: mining at M, README "Mining
 * and chunked prefill"), synchronous and enqueued: the host path's cache byte for byte. Batch appends
 * (several sequences of a layer in one call) against appending sequence by sequence. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "opencl/ocl_internal.h"
#include "patternkv_opencl.h"
#include "testutil.h"

enum { L = 4, H = 2, D = 64, QH = 4, PROMPT = 70, STEPS = 40 };
#define TOK ((size_t)H * D * 4)   /* bytes of one token of one layer, K or V, fp32 */
#define QB ((size_t)QH * D * 4)   /* bytes of one query (and output) */
#define OFF_PK(l) ((size_t)(l) * 2 * PROMPT * TOK)
#define OFF_PV(l) (OFF_PK(l) + PROMPT * TOK)
#define STEP0 OFF_PK(L)
#define OFF_SK(l) (STEP0 + (size_t)(l) * (2 * TOK + 2 * QB))
#define OFF_SV(l) (OFF_SK(l) + TOK)
#define OFF_Q(l) (OFF_SV(l) + TOK)
#define OFF_OUT(l) (OFF_Q(l) + QB)
#define BYTES OFF_SK(L)

typedef struct app {
    const pkv_ocl_api *cl;
    cl_context cctx;
    cl_command_queue q;
    cl_mem buf;
    float *host;   /* the buffer's contents as the test writes them */
    pkv_context *ctx;
} app;

static int app_open(app *a)
{
    memset(a, 0, sizeof *a);
    char why[256];
    a->cl = pkv_ocl_load(why, sizeof why);
    if (!a->cl) {
        if (tu_in_ci()) fail_msg("%s (CI=true)", why);
        return 0;
    }
    cl_platform_id plats[8];
    cl_uint np = 0;
    if (a->cl->clGetPlatformIDs(8, plats, &np) != CL_SUCCESS || np == 0) {
        if (tu_in_ci()) fail_msg("no OpenCL platform (CI=true)");
        return 0;
    }
    cl_device_id dev = NULL;
    for (cl_uint i = 0; i < np && !dev; i++)
        if (a->cl->clGetDeviceIDs(plats[i], CL_DEVICE_TYPE_ALL, 1, &dev, NULL) != CL_SUCCESS) dev = NULL;
    assert_non_null(dev);
    cl_int err;
    a->cctx = a->cl->clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    a->q = a->cl->clCreateCommandQueue(a->cctx, dev, 0, &err);
    assert_int_equal(err, CL_SUCCESS);
    a->buf = a->cl->clCreateBuffer(a->cctx, CL_MEM_READ_WRITE, BYTES, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    a->host = calloc(BYTES / 4, 4);
    pkv_opencl_external ext = {.struct_size = sizeof ext, .context = a->cctx, .device = dev, .queue = a->q};
    pkv_context_params p = pkv_context_params_default();
    p.opencl_external = &ext;
    TU_OK(pkv_context_create(&p, &a->ctx));
    return 1;
}

static void app_close(app *a)
{
    TU_OK(pkv_context_free(a->ctx));
    a->cl->clReleaseMemObject(a->buf);
    a->cl->clReleaseCommandQueue(a->q);
    a->cl->clReleaseContext(a->cctx);
    free(a->host);
}

static float *at(app *a, size_t off) { return a->host + off / 4; }

/* The host's values of [off, off + bytes) into the buffer (blocking, on the shared queue). */
static void put(app *a, size_t off, size_t bytes)
{
    assert_int_equal(a->cl->clEnqueueWriteBuffer(a->q, a->buf, CL_TRUE, off, bytes, at(a, off), 0, NULL, NULL), CL_SUCCESS);
}

static void get(app *a, size_t off, size_t bytes, float *dst)
{
    assert_int_equal(a->cl->clEnqueueReadBuffer(a->q, a->buf, CL_TRUE, off, bytes, dst, 0, NULL, NULL), CL_SUCCESS);
}

static pkv_cache *new_cache(app *a, pkv_seq *s)
{
    pkv_cache_config cfg = tu_config(L, H, D, 2, 32, PKV_MODE_PATTERN);
    pkv_cache *c;
    TU_OK(pkv_cache_create(a->ctx, &cfg, &c));
    TU_OK(pkv_seq_create(c, s));
    return c;
}

static void fill_prompt(app *a, uint64_t seed)
{
    tu_rng r = {seed};
    for (uint32_t l = 0; l < L; l++) {
        tu_structured_kv(&r, PROMPT, H, D, 4, 0.3f, at(a, OFF_PK(l)));
        tu_structured_kv(&r, PROMPT, H, D, 4, 0.3f, at(a, OFF_PV(l)));
    }
    put(a, 0, STEP0);
}

static void fill_step(app *a, uint64_t seed)
{
    tu_rng r = {seed};
    for (uint32_t l = 0; l < L; l++) {
        tu_random(&r, TOK / 4, 1.0f, at(a, OFF_SK(l)));
        tu_random(&r, TOK / 4, 1.0f, at(a, OFF_SV(l)));
        tu_random(&r, QB / 4, 1.0f, at(a, OFF_Q(l)));
    }
}

static pkv_attention_params attn(pkv_seq *s, uint32_t l)
{
    pkv_attention_params p = pkv_attention_params_default();
    p.seqs = s, p.n_seqs = 1, p.layer = l, p.n_q_heads = QH;
    return p;
}

/* One decode step of every layer, enqueued; each call waits for the previous one's event (a wait
 * list, though the in-order queue would keep the order anyway); the host waits once at the end. */
static void enqueue_step(app *a, pkv_cache *c, pkv_seq s)
{
    cl_event prev = NULL, ev = NULL;
    for (uint32_t l = 0; l < L; l++) {
        TU_OK(pkv_opencl_enqueue_append(c, s, l, 1, a->buf, OFF_SK(l), TOK, a->buf, OFF_SV(l), TOK, PKV_F32,
                                        prev ? 1 : 0, prev ? &prev : NULL, &ev));
        if (prev) a->cl->clReleaseEvent(prev);
        prev = ev;
        pkv_attention_params p = attn(&s, l);
        TU_OK(pkv_opencl_enqueue_attention(c, &p, a->buf, OFF_Q(l), QB, a->buf, OFF_OUT(l), QB, 1, &prev, &ev));
        a->cl->clReleaseEvent(prev);
        prev = ev;
    }
    assert_int_equal(a->cl->clWaitForEvents(1, &prev), CL_SUCCESS);
    a->cl->clReleaseEvent(prev);
}

static void enqueued_equals_synchronous(void **state)
{
    (void)state;
    app a;
    if (!app_open(&a)) skip();
    pkv_seq ss, es;
    pkv_cache *sync = new_cache(&a, &ss), *enq = new_cache(&a, &es);
    TU_OK(pkv_prewarm(enq, QH, 1)); /* the attention program now: none is built while enqueueing */
    const uint32_t programs = ((pkv_ocl *)a.ctx->be->impl)->n_attn;
    assert_true(programs >= 1);
    fill_prompt(&a, 11);
    cl_event ev = NULL;
    for (uint32_t l = 0; l < L; l++) {
        TU_OK(pkv_opencl_append(sync, ss, l, PROMPT, a.buf, OFF_PK(l), PROMPT * TOK, a.buf, OFF_PV(l), PROMPT * TOK, PKV_F32));
        TU_OK(pkv_opencl_enqueue_append(enq, es, l, PROMPT, a.buf, OFF_PK(l), PROMPT * TOK, a.buf, OFF_PV(l),
                                        PROMPT * TOK, PKV_F32, 0, NULL, l == L - 1 ? &ev : NULL));
    }
    assert_int_equal(a.cl->clWaitForEvents(1, &ev), CL_SUCCESS);
    a.cl->clReleaseEvent(ev);
    static float want[L][QB / 4], got[QB / 4];
    for (uint32_t step = 0; step < STEPS; step++) { /* crosses a window flush of every layer */
        fill_step(&a, 100 + step);
        put(&a, STEP0, BYTES - STEP0);
        for (uint32_t l = 0; l < L; l++) {
            TU_OK(pkv_opencl_append(sync, ss, l, 1, a.buf, OFF_SK(l), TOK, a.buf, OFF_SV(l), TOK, PKV_F32));
            pkv_attention_params p = attn(&ss, l);
            TU_OK(pkv_opencl_attention(sync, &p, a.buf, OFF_Q(l), QB, a.buf, OFF_OUT(l), QB));
            get(&a, OFF_OUT(l), QB, want[l]);
        }
        enqueue_step(&a, enq, es);
        for (uint32_t l = 0; l < L; l++) {
            get(&a, OFF_OUT(l), QB, got);
            assert_memory_equal(got, want[l], QB);
        }
    }
    assert_int_equal(((pkv_ocl *)a.ctx->be->impl)->n_attn, programs);
    uint32_t flags = 1, first = 0;
    TU_OK(pkv_opencl_read_status(enq, &flags, &first, 0));
    assert_int_equal(flags, 0);
    assert_int_equal(first, UINT32_MAX);
    tu_expect_same_saved(sync, enq);
    /* argument errors are found before anything is enqueued */
    assert_int_equal(pkv_opencl_enqueue_append(enq, es, 0, 1, a.buf, OFF_SK(0), TOK - 4, a.buf, OFF_SV(0), TOK, PKV_F32, 0,
                                               NULL, NULL), PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_opencl_enqueue_append(enq, es, 0, 1, a.buf, BYTES - 8, TOK, a.buf, OFF_SV(0), TOK, PKV_F32, 0,
                                               NULL, NULL), PKV_ERR_INVALID_ARGUMENT); /* past the buffer's end */
    pkv_attention_params p = attn(&es, 0);
    assert_int_equal(pkv_opencl_enqueue_attention(enq, &p, a.buf, OFF_Q(0), QB, a.buf, OFF_OUT(0), QB, 1, NULL, NULL),
                     PKV_ERR_INVALID_ARGUMENT);
    uint32_t len;
    TU_OK(pkv_seq_length(enq, es, 0, &len));
    assert_int_equal(len, PROMPT + STEPS);
    TU_OK(pkv_cache_free(sync));
    TU_OK(pkv_cache_free(enq));
    app_close(&a);
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

static void nan_in_one_layer_shows_in_the_status_word(void **state)
{
    (void)state;
    app a;
    if (!app_open(&a)) skip();
    pkv_seq s;
    pkv_cache *c = new_cache(&a, &s);
    fill_prompt(&a, 5);
    for (uint32_t l = 0; l < L; l++)
        TU_OK(pkv_opencl_enqueue_append(c, s, l, PROMPT, a.buf, OFF_PK(l), PROMPT * TOK, a.buf, OFF_PV(l), PROMPT * TOK,
                                        PKV_F32, 0, NULL, NULL));
    uint32_t flags, first;
    static float out[QB / 4];
    for (uint32_t step = 0; step < 30; step++) {
        fill_step(&a, 7 + step);
        if (step == 3) at(&a, OFF_SK(2))[5] = NAN;
        if (step == 4) at(&a, OFF_SV(1))[9] = INFINITY;
        if (step == 5) at(&a, OFF_Q(3))[0] = NAN;
        put(&a, STEP0, BYTES - STEP0);
        enqueue_step(&a, c, s);
        for (uint32_t l = 0; l < L; l++) {
            get(&a, OFF_OUT(l), QB, out);
            assert_true(all_finite(out, QB / 4));
        }
        TU_OK(pkv_opencl_read_status(c, &flags, &first, 1));
        if (step == 3) assert_int_equal(flags, PKV_OPENCL_STATUS_KV_NONFINITE), assert_int_equal(first, 2);
        else if (step == 4) assert_int_equal(flags, PKV_OPENCL_STATUS_KV_NONFINITE), assert_int_equal(first, 1);
        else if (step == 5) assert_int_equal(flags, PKV_OPENCL_STATUS_Q_NONFINITE), assert_int_equal(first, 3);
        else assert_int_equal(flags, 0), assert_int_equal(first, UINT32_MAX);
    }
    uint32_t len;
    TU_OK(pkv_seq_length(c, s, 2, &len));
    assert_int_equal(len, PROMPT + 30);
    float *k = malloc((size_t)len * TOK), *v = malloc((size_t)len * TOK);
    TU_OK(pkv_read_kv(c, s, 2, k, v));
    assert_true(all_finite(k, (size_t)len * TOK / 4) && all_finite(v, (size_t)len * TOK / 4));
    free(k), free(v);
    /* the synchronous call refuses the same data, stores nothing, and leaves the enqueued word alone */
    at(&a, OFF_SK(0))[0] = NAN;
    put(&a, OFF_SK(0), TOK);
    assert_int_equal(pkv_opencl_append(c, s, 0, 1, a.buf, OFF_SK(0), TOK, a.buf, OFF_SV(0), TOK, PKV_F32), PKV_ERR_NONFINITE);
    TU_OK(pkv_seq_length(c, s, 0, &len));
    assert_int_equal(len, PROMPT + 30);
    TU_OK(pkv_opencl_read_status(c, &flags, &first, 0));
    assert_int_equal(flags, 0);
    TU_OK(pkv_cache_free(c));
    app_close(&a);
}

static uint8_t *saved(pkv_cache *c, const char *tag, size_t *n)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/pkv_oclrec_%s_%d.pkv", tag, (int)getpid());
    TU_OK(pkv_cache_save(c, path));
    uint8_t *b = tu_slurp(path, n);
    remove(path);
    return b;
}

static void late_mining_from_device_tokens(void **state)
{
    (void)state;
    app a;
    if (!app_open(&a)) skip();
    enum { HEAD = 5 }; /* fewer than the 8 patterns */
    const size_t head = HEAD * TOK, rest = (PROMPT - HEAD) * TOK;
    pkv_seq ss, es, hs;
    pkv_cache *sync = new_cache(&a, &ss), *enq = new_cache(&a, &es), *host = new_cache(&a, &hs);
    fill_prompt(&a, 31);
    cl_event ev = NULL;
    for (uint32_t l = 0; l < L; l++) {
        TU_OK(pkv_opencl_append(sync, ss, l, HEAD, a.buf, OFF_PK(l), head, a.buf, OFF_PV(l), head, PKV_F32));
        TU_OK(pkv_opencl_append(sync, ss, l, PROMPT - HEAD, a.buf, OFF_PK(l) + head, rest, a.buf, OFF_PV(l) + head, rest,
                                PKV_F32));
        TU_OK(pkv_opencl_enqueue_append(enq, es, l, HEAD, a.buf, OFF_PK(l), head, a.buf, OFF_PV(l), head, PKV_F32, 0, NULL,
                                        NULL));
        TU_OK(pkv_opencl_enqueue_append(enq, es, l, PROMPT - HEAD, a.buf, OFF_PK(l) + head, rest, a.buf, OFF_PV(l) + head,
                                        rest, PKV_F32, 0, NULL, l == L - 1 ? &ev : NULL));
        TU_OK(pkv_append(host, hs, l, PROMPT, at(&a, OFF_PK(l)), at(&a, OFF_PV(l)), PKV_F32));
    }
    assert_int_equal(a.cl->clWaitForEvents(1, &ev), CL_SUCCESS);
    a.cl->clReleaseEvent(ev);
    size_t n0, n1, n2;
    uint8_t *f0 = saved(host, "h", &n0), *f1 = saved(sync, "s", &n1), *f2 = saved(enq, "e", &n2);
    assert_int_equal(n0, n1);
    assert_int_equal(n0, n2);
    assert_memory_equal(f0, f1, n0);
    assert_memory_equal(f0, f2, n0);
    free(f0), free(f1), free(f2);
    TU_OK(pkv_cache_free(sync));
    TU_OK(pkv_cache_free(enq));
    TU_OK(pkv_cache_free(host));
    app_close(&a);
}



/* Batch appends (pkv_opencl_enqueue_append_batch, pkv_opencl_append_batch): several sequences of one
 * layer in one call, K and V [n_seqs][n][H][d]. The prompts of two sequences per layer in one enqueued
 * call (each mines its banks) and in two synchronous calls of 5 tokens then the rest (late mining from
 * device tokens), then decode steps of three sequences (the third a fork), one enqueued call per layer;
 * against appending sequence by sequence: the same outputs bit for bit, the same saved caches byte for
 * byte, attention within 1e-4 of the fp64 reference over the dequantized cache; a sequence given twice
 * is refused. */
enum { NB = 3 };
#define OFF_NK(l) OFF_PK(l) /* a step's K, V, q and out of the NB sequences, in the prompt area */
#define OFF_NV(l) (OFF_NK(l) + NB * TOK)
#define OFF_NQ(l) (OFF_NV(l) + NB * TOK)
#define OFF_NOUT(l) (OFF_NQ(l) + NB * QB)

static void batch_append_equals_sequence_by_sequence(void **state)
{
    (void)state;
    app a;
    if (!app_open(&a)) skip();
    enum { HEAD = 5 };
    pkv_seq os[NB], bs[NB], ls[NB];
    pkv_cache *one = new_cache(&a, &os[0]), *bat = new_cache(&a, &bs[0]), *lat = new_cache(&a, &ls[0]);
    TU_OK(pkv_seq_create(one, &os[1]));
    TU_OK(pkv_seq_create(bat, &bs[1]));
    TU_OK(pkv_seq_create(lat, &ls[1]));
    fill_prompt(&a, 41);
    /* sequence i's prompt K at kb + i * pb, V at vb + i * pb: layer l's prompt area, and layer l + 1's */
    const size_t pb = PROMPT * TOK, hb = HEAD * TOK;
    cl_event ev = NULL;
    for (uint32_t l = 0; l < L; l++) {
        const size_t kb = OFF_PK(l), vb = OFF_PK((l + 1) % L);
        for (uint32_t i = 0; i < 2; i++)
            TU_OK(pkv_opencl_append(one, os[i], l, PROMPT, a.buf, kb + i * pb, pb, a.buf, vb + i * pb, pb, PKV_F32));
        TU_OK(pkv_opencl_enqueue_append_batch(bat, bs, 2, l, PROMPT, a.buf, kb, 2 * pb, a.buf, vb, 2 * pb, PKV_F32, 0,
                                              NULL, l == L - 1 ? &ev : NULL));
    }
    assert_int_equal(a.cl->clWaitForEvents(1, &ev), CL_SUCCESS);
    a.cl->clReleaseEvent(ev);
    float *saved = malloc(STEP0); /* the prompts, repacked into layer 0's area: K/V of [2][HEAD], then of the rest */
    memcpy(saved, at(&a, 0), STEP0);
    for (uint32_t l = 0; l < L; l++)
        for (uint32_t part = 0; part < 2; part++) {
            const size_t skip = part ? hb : 0, n = part ? pb - hb : hb;
            for (uint32_t i = 0; i < 2; i++) {
                memcpy((uint8_t *)at(&a, 0) + i * n, (uint8_t *)saved + OFF_PK(l) + i * pb + skip, n);
                memcpy((uint8_t *)at(&a, 0) + 2 * pb + i * n, (uint8_t *)saved + OFF_PK((l + 1) % L) + i * pb + skip, n);
            }
            put(&a, 0, 4 * pb);
            TU_OK(pkv_opencl_append_batch(lat, ls, 2, l, part ? PROMPT - HEAD : HEAD, a.buf, 0, 2 * n, a.buf, 2 * pb, 2 * n,
                                          PKV_F32));
        }
    free(saved);
    tu_expect_same_saved(one, lat);
    TU_OK(pkv_seq_fork(one, os[0], &os[2]));
    TU_OK(pkv_seq_fork(bat, bs[0], &bs[2]));
    static float want[L][NB * QB / 4], got[NB * QB / 4];
    pkv_attention_params p = pkv_attention_params_default();
    p.n_seqs = NB, p.n_q_heads = QH;
    for (uint32_t step = 0; step < STEPS; step++) { /* crosses a window flush of every layer */
        tu_rng r = {500 + step};
        for (uint32_t l = 0; l < L; l++) {
            tu_random(&r, 2 * NB * TOK / 4, 1.0f, at(&a, OFF_NK(l)));
            tu_random(&r, NB * QB / 4, 1.0f, at(&a, OFF_NQ(l)));
        }
        put(&a, 0, OFF_NK(L - 1) + 2 * NB * TOK + NB * QB);
        for (uint32_t l = 0; l < L; l++) {
            for (uint32_t i = 0; i < NB; i++)
                TU_OK(pkv_opencl_append(one, os[i], l, 1, a.buf, OFF_NK(l) + i * TOK, TOK, a.buf, OFF_NV(l) + i * TOK, TOK,
                                        PKV_F32));
            p.seqs = os, p.layer = l;
            TU_OK(pkv_opencl_attention(one, &p, a.buf, OFF_NQ(l), NB * QB, a.buf, OFF_NOUT(l), NB * QB));
            get(&a, OFF_NOUT(l), NB * QB, want[l]);
        }
        for (uint32_t l = 0; l < L; l++) {
            TU_OK(pkv_opencl_enqueue_append_batch(bat, bs, NB, l, 1, a.buf, OFF_NK(l), NB * TOK, a.buf, OFF_NV(l), NB * TOK,
                                                  PKV_F32, 0, NULL, NULL));
            p.seqs = bs, p.layer = l;
            TU_OK(pkv_opencl_enqueue_attention(bat, &p, a.buf, OFF_NQ(l), NB * QB, a.buf, OFF_NOUT(l), NB * QB, 0, NULL,
                                               NULL));
        }
        for (uint32_t l = 0; l < L; l++) { /* blocking reads on the in-order queue: after the enqueued work */
            get(&a, OFF_NOUT(l), NB * QB, got);
            assert_memory_equal(got, want[l], NB * QB);
        }
    }
    uint32_t flags = 1, first = 0, T[NB];
    TU_OK(pkv_opencl_read_status(bat, &flags, &first, 0));
    assert_int_equal(flags, 0);
    tu_expect_same_saved(one, bat);
    float *k[NB], *v[NB];
    for (uint32_t i = 0; i < NB; i++) {
        TU_OK(pkv_seq_length(bat, bs[i], L - 1, &T[i]));
        assert_int_equal(T[i], PROMPT + STEPS);
        k[i] = malloc((size_t)T[i] * TOK), v[i] = malloc((size_t)T[i] * TOK);
        TU_OK(pkv_read_kv(bat, bs[i], L - 1, k[i], v[i]));
    }
    const double err = tu_check_attention((const float *const *)k, (const float *const *)v, T, NB, 1, QH, H, D,
                                          at(&a, OFF_NQ(L - 1)), got);
    print_message("batch append: attention rel err vs fp64 %.2e\n", err);
    assert_true(err < 1e-4);
    for (uint32_t i = 0; i < NB; i++) free(k[i]), free(v[i]);
    const pkv_seq twice[2] = {bs[1], bs[1]};
    assert_int_equal(pkv_opencl_enqueue_append_batch(bat, twice, 2, 0, 1, a.buf, OFF_NK(0), 2 * TOK, a.buf, OFF_NV(0),
                                                     2 * TOK, PKV_F32, 0, NULL, NULL), PKV_ERR_INVALID_ARGUMENT);
    assert_int_equal(pkv_opencl_append_batch(bat, bs, NB, 0, 1, a.buf, OFF_NK(0), NB * TOK - 4, a.buf, OFF_NV(0), NB * TOK,
                                             PKV_F32), PKV_ERR_INVALID_ARGUMENT);
    TU_OK(pkv_seq_length(bat, bs[1], 0, &T[0]));
    assert_int_equal(T[0], PROMPT + STEPS);
    TU_OK(pkv_cache_free(one));
    TU_OK(pkv_cache_free(bat));
    TU_OK(pkv_cache_free(lat));
    app_close(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(late_mining_from_device_tokens),
        cmocka_unit_test(enqueued_equals_synchronous),
        cmocka_unit_test(nan_in_one_layer_shows_in_the_status_word),
        cmocka_unit_test(batch_append_equals_sequence_by_sequence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
