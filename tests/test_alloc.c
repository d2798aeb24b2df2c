/* Host allocation failures (label `alloc`): the application's allocator hooks
 * (pkv_context_params.host_malloc/host_realloc/host_free) fail the Nth host allocation, for every N
 * over a scripted sequence of calls: context and cache creation, a prompt into every layer in two
 * appends (5 tokens, then the rest, which mines over both: PKV_MINING_AT_M),
 * one-token appends across several flushes (pkv_append_layers and per-layer pkv_append), attention
 * with and without the token's own K/V, a fork and appends to it (copy-on-write of a bank chunk),
 * attention over both sequences, save and load. For each N:
 * - the call that meets the failure returns PKV_ERR_OUT_OF_HOST_MEMORY (or succeeds, when the
 *   library can do without that allocation, with the same result as without the failure);
 * - the cache is unchanged: its saved bytes and its attention outputs equal those of the run
 *   without failure at that point;
 * - the same call, retried, succeeds, and the cache then equals the run without failure again;
 * - at the end every allocation made through the hooks was freed (no leak; ASan checks the rest).
 * PKV_ALLOC_SWEEP_STRIDE=k tests every k-th N only (default 1: every N). The figures (allocations
 * in the script, N tested) are printed. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "testutil.h"

#define L 2
#define H 2
#define D 32
#define PROMPT 70
#define PROMPT_HEAD 5 /* the prompt's first append: fewer tokens than the 8 patterns */
#define DECODE 70
#define CHILD 40
#define NQ 4

static int device_mode; /* PKV_ALLOC_KIND=device: device allocations fail (fault.h), not host ones */

typedef struct hooks {
    atomic_long count;   /* allocations so far */
    atomic_long live;    /* allocations not yet freed */
    long fail_at;        /* the armed allocation that fails (1-based), 0: none */
    atomic_int armed;
    atomic_long failed;  /* failures handed out */
} hooks;

static void *h_malloc(size_t n, void *user)
{
    hooks *h = user;
    if (atomic_fetch_add(&h->count, 1) + 1 == h->fail_at && atomic_load(&h->armed) && !device_mode) {
        atomic_fetch_add(&h->failed, 1);
        return NULL;
    }
    void *p = malloc(n);
    if (p) atomic_fetch_add(&h->live, 1);
    return p;
}

static void *h_realloc(void *ptr, size_t n, void *user)
{
    hooks *h = user;
    if (atomic_fetch_add(&h->count, 1) + 1 == h->fail_at && atomic_load(&h->armed) && !device_mode) {
        atomic_fetch_add(&h->failed, 1);
        return NULL;
    }
    void *p = realloc(ptr, n);
    if (p && !ptr) atomic_fetch_add(&h->live, 1);
    return p;
}

static void h_free(void *ptr, void *user)
{
    hooks *h = user;
    if (ptr) atomic_fetch_sub(&h->live, 1);
    free(ptr);
}

/* The allocations counted (host: through the hooks; device: asked of fault.h) since `base`. */
static long counted(const hooks *h, long base) { return device_mode ? pkv_fault_device_count() - base : atomic_load(&h->count); }
/* Makes allocation fail_at (counted from `base`) fail while armed. */
static void arm(hooks *h, long base, int on)
{
    atomic_store(&h->armed, on);
    if (device_mode) pkv_fault_device_fail_at(on && h->fail_at ? base + h->fail_at : 0);
}

/* The script: a list of calls. */
enum { S_CONTEXT, S_CACHE, S_SEQ, S_PROMPT, S_STEP_ALL, S_STEP_ONE, S_ATTN_OWN, S_ATTN, S_FORK, S_CHILD, S_ATTN2,
       S_SAVE, S_LOAD, S_ATTN_LOADED };
typedef struct step { int kind, arg; } step;

typedef struct run {
    hooks h;
    pkv_context *ctx;
    pkv_cache *c, *loaded;
    pkv_seq seqs[2];
    uint32_t n_seqs;
    const float *k, *v, *q; /* K/V [PROMPT + DECODE + CHILD][H][D] per layer (same for every layer), q [2][NQ][D] */
    float out[2 * NQ * D];
} run;

static char path_save[256], path_snap[256];

static pkv_status do_step(run *r, const step *s)
{
    const size_t tok = H * D;
    pkv_append_params ap = pkv_append_params_default();
    const void *ks[L], *vs[L];
    pkv_attention_params p = pkv_attention_params_default();
    p.n_q_heads = NQ;
    switch (s->kind) {
    case S_CONTEXT: {
        pkv_context_params cp = pkv_context_params_default();
        cp.backend = tu_backend();
        cp.n_threads = 1;
        if (device_mode) cp.device_page_bytes = 64u << 10, cp.staging_bytes = 64u << 10; /* more allocations */
        cp.host_malloc = h_malloc, cp.host_realloc = h_realloc, cp.host_free = h_free, cp.host_alloc_user = &r->h;
        pkv_status st = pkv_context_create(&cp, &r->ctx);
        if (st != PKV_OK) assert_null(r->ctx);
        return st;
    }
    case S_CACHE: {
        pkv_cache_config cfg = tu_config(L, H, D, 2, 32, PKV_MODE_PATTERN);
        pkv_status st = pkv_cache_create(r->ctx, &cfg, &r->c);
        if (st != PKV_OK) assert_null(r->c);
        return st;
    }
    case S_SEQ: {
        pkv_status st = pkv_seq_create(r->c, &r->seqs[0]);
        if (st == PKV_OK) r->n_seqs = 1;
        return st;
    }
    case S_PROMPT:
    case S_STEP_ALL:
    case S_CHILD: {
        const uint32_t first = s->kind == S_PROMPT ? (s->arg ? PROMPT_HEAD : 0)
                               : s->kind == S_STEP_ALL ? PROMPT + (uint32_t)s->arg : PROMPT + DECODE;
        for (int l = 0; l < L; l++) ks[l] = r->k + first * tok, vs[l] = r->v + first * tok;
        ap.seq = s->kind == S_CHILD ? r->seqs[1] : r->seqs[0];
        ap.n_tokens = s->kind == S_PROMPT ? (s->arg ? PROMPT - PROMPT_HEAD : PROMPT_HEAD) : s->kind == S_STEP_ALL ? 1 : CHILD;
        return pkv_append_layers(r->c, &ap, ks, vs);
    }
    case S_STEP_ONE: { /* token arg / 2 into layer arg % 2 */
        const uint32_t t = PROMPT + (uint32_t)s->arg / 2;
        return pkv_append(r->c, r->seqs[0], (uint32_t)s->arg % 2, 1, r->k + t * tok, r->v + t * tok, PKV_F32);
    }
    case S_ATTN_OWN:
        p.seqs = r->seqs, p.n_seqs = 1, p.layer = 1, p.k_new = r->k, p.v_new = r->v;
        return pkv_attention(r->c, &p, r->q, r->out);
    case S_ATTN:
    case S_ATTN2:
        p.seqs = r->seqs, p.n_seqs = s->kind == S_ATTN ? 1 : 2, p.layer = (uint32_t)s->arg;
        return pkv_attention(r->c, &p, r->q, r->out);
    case S_FORK: {
        pkv_status st = pkv_seq_fork(r->c, r->seqs[0], &r->seqs[1]);
        if (st == PKV_OK) r->n_seqs = 2;
        return st;
    }
    case S_SAVE: return pkv_cache_save(r->c, path_save);
    case S_LOAD: {
        pkv_status st = pkv_cache_load(r->ctx, path_save, &r->loaded);
        if (st != PKV_OK) assert_null(r->loaded);
        return st;
    }
    case S_ATTN_LOADED:
        p.seqs = r->seqs, p.n_seqs = 2, p.layer = 0;
        return pkv_attention(r->loaded, &p, r->q, r->out);
    }
    return PKV_ERR_INVALID_ARGUMENT;
}

/* What the cache holds: its saved bytes, then the attention output of every sequence and layer. */
typedef struct snap { uint8_t *bytes; size_t n; } snap;

static snap take_snap(run *r)
{
    snap s = {NULL, 0};
    if (!r->c) return s;
    TU_OK(pkv_cache_save(r->c, path_snap));
    size_t nf;
    uint8_t *file = tu_slurp(path_snap, &nf);
    const size_t att = (size_t)r->n_seqs * L * NQ * D * sizeof(float);
    s.bytes = malloc(nf + att + 1);
    memcpy(s.bytes, file, nf);
    free(file);
    float *o = (float *)(s.bytes + nf);
    for (uint32_t i = 0; i < r->n_seqs; i++)
        for (uint32_t l = 0; l < L; l++, o += NQ * D) {
            uint32_t len;
            TU_OK(pkv_seq_length(r->c, r->seqs[i], l, &len));
            if (!len) {
                memset(o, 0, NQ * D * sizeof(float));
                continue;
            }
            pkv_attention_params p = pkv_attention_params_default();
            p.seqs = &r->seqs[i], p.n_seqs = 1, p.layer = l, p.n_q_heads = NQ;
            TU_OK(pkv_attention(r->c, &p, r->q, o));
        }
    s.n = nf + att;
    return s;
}

static void same_snap(const snap *a, const snap *b, const char *what, long n, int si)
{
    size_t at = 0;
    while (a->n == b->n && at < a->n && a->bytes[at] == b->bytes[at]) at++;
    if (a->n == b->n && at < a->n) print_message("first difference at byte %zu\n", at);
    if (a->n != b->n || (a->n && memcmp(a->bytes, b->bytes, a->n) != 0))
        fail_msg("N=%ld step %d: %s differs from the run without failure (%zu vs %zu bytes)", n, si, what, a->n, b->n);
}

static void end_run(run *r)
{
    atomic_store(&r->h.armed, 0);
    TU_OK(pkv_cache_free(r->loaded));
    TU_OK(pkv_cache_free(r->c));
    TU_OK(pkv_context_free(r->ctx));
    if (atomic_load(&r->h.live) != 0) fail_msg("N=%ld: %ld allocations made through the hooks were not freed", r->h.fail_at, (long)atomic_load(&r->h.live));
}

static void every_nth_host_allocation_fails_cleanly(void **state)
{
    (void)state;
    const size_t tokens = PROMPT + DECODE + CHILD;
    float *k = malloc(tokens * H * D * sizeof(float)), *v = malloc(tokens * H * D * sizeof(float)), q[2 * NQ * D];
    tu_rng rng = {1010};
    tu_structured_kv(&rng, (uint32_t)tokens, H, D, 6, 0.1f, k);
    tu_random(&rng, tokens * H * D, 1.0f, v);
    tu_random(&rng, 2 * NQ * D, 1.0f, q);

    step steps[8 + 2 * DECODE + 8];
    int ns = 0;
    steps[ns++] = (step){S_CONTEXT, 0};
    steps[ns++] = (step){S_CACHE, 0};
    steps[ns++] = (step){S_SEQ, 0};
    steps[ns++] = (step){S_PROMPT, 0};
    steps[ns++] = (step){S_PROMPT, 1};
    for (int t = 0; t < DECODE; t++) { /* even tokens: one call for both layers; odd: one call per layer */
        if (t % 2 == 0) steps[ns++] = (step){S_STEP_ALL, t};
        else steps[ns++] = (step){S_STEP_ONE, 2 * t}, steps[ns++] = (step){S_STEP_ONE, 2 * t + 1};
        if (t == DECODE / 2) steps[ns++] = (step){S_ATTN_OWN, 0};
    }
    steps[ns++] = (step){S_ATTN, 1};
    steps[ns++] = (step){S_FORK, 0};
    steps[ns++] = (step){S_CHILD, 0};
    steps[ns++] = (step){S_ATTN2, 0};
    steps[ns++] = (step){S_SAVE, 0};
    steps[ns++] = (step){S_LOAD, 0};
    steps[ns++] = (step){S_ATTN_LOADED, 0};

    /* The run without failure: the state after each step, and how many allocations each made. */
    snap *ref = calloc((size_t)ns + 1, sizeof *ref);
    long *before = calloc((size_t)ns + 1, sizeof *before);
    float ref_out[2 * NQ * D];
    /* (two runs: taking a snapshot grows scratch buffers and so changes later steps' allocations) */
    for (int pass = 0; pass < 3; pass++) { /* 0: warm-up (process-wide state made once), 1: counts, 2: snapshots */
        const int with_snaps = pass == 2;
        run r0 = {.k = k, .v = v, .q = q};
        const long base = pkv_fault_device_count();
        for (int i = 0; i < ns; i++) {
            if (!with_snaps) before[i] = counted(&r0.h, base);
            pkv_status st = do_step(&r0, &steps[i]);
            if (st != PKV_OK) fail_msg("step %d without failure: %s (%s)", i, pkv_status_string(st), pkv_last_error());
            if (with_snaps) ref[i + 1] = take_snap(&r0);
        }
        if (!with_snaps) before[ns] = counted(&r0.h, base);
        memcpy(ref_out, r0.out, sizeof ref_out);
        end_run(&r0);
    }
    const long total = before[ns];
    const char *env = getenv("PKV_ALLOC_SWEEP_STRIDE");
    const long stride = env && atol(env) > 0 ? atol(env) : 1;
    long tested = 0, swallowed = 0;

    for (long n = 1; n <= total; n += stride, tested++) {
        run r = {.k = k, .v = v, .q = q};
        r.h.fail_at = n;
        const long base = pkv_fault_device_count(), failures0 = pkv_fault_device_failures();
        for (int i = 0; i < ns; i++) {
            const int hits = before[i] < n && n <= before[i + 1]; /* the failure falls in this step */
            arm(&r.h, base, hits);
            pkv_status st = do_step(&r, &steps[i]);
            arm(&r.h, base, 0);
            if (!hits) {
                if (st != PKV_OK) fail_msg("N=%ld step %d (no failure): %s (%s)", n, i, pkv_status_string(st), pkv_last_error());
                continue;
            }
            if (st == PKV_OK) { /* the library did without that allocation: same result */
                swallowed++;
                if (getenv("PKV_ALLOC_VERBOSE")) print_message("absorbed: N=%ld step %d kind %d\n", n, i, steps[i].kind);
            } else {
                const pkv_status want = device_mode ? PKV_ERR_OUT_OF_DEVICE_MEMORY : PKV_ERR_OUT_OF_HOST_MEMORY;
                if (st != want)
                    fail_msg("N=%ld step %d (kind %d): status %s (%s), expected %s", n, i, steps[i].kind,
                             pkv_status_string(st), pkv_last_error(), pkv_status_string(want));
                snap now = take_snap(&r);
                same_snap(&now, &ref[i], "the cache after the failed call", n, i);
                free(now.bytes);
                st = do_step(&r, &steps[i]); /* the retry */
                if (st != PKV_OK) fail_msg("N=%ld step %d: the retry failed: %s (%s)", n, i, pkv_status_string(st), pkv_last_error());
            }
            snap after = take_snap(&r);
            same_snap(&after, &ref[i + 1], "the cache after the call", n, i);
            free(after.bytes);
        }
        const long failed = device_mode ? pkv_fault_device_failures() - failures0 : (long)atomic_load(&r.h.failed);
        if (failed != 1) fail_msg("N=%ld: the failure did not happen where the run without failure put it (%ld failures, %ld allocations)", n, failed, counted(&r.h, base));
        assert_memory_equal(r.out, ref_out, sizeof ref_out);
        end_run(&r);
    }
    print_message("test_alloc: %ld %s allocations in the script (%d calls), %ld values of N tested (stride %ld), "
                  "%ld failures absorbed without an error\n", total, device_mode ? "device" : "host", ns, tested, stride, swallowed);
    for (int i = 0; i <= ns; i++) free(ref[i].bytes);
    free(ref), free(before), free(k), free(v);
}

/* The hooks are all or none. */
static void hooks_come_together(void **state)
{
    (void)state;
    hooks h = {0};
    pkv_context_params cp = pkv_context_params_default();
    cp.backend = PKV_BACKEND_CPU;
    cp.host_malloc = h_malloc, cp.host_alloc_user = &h;
    pkv_context *ctx = NULL;
    assert_int_equal(pkv_context_create(&cp, &ctx), PKV_ERR_INVALID_ARGUMENT);
    assert_null(ctx);
}

int main(void)
{
    const char *kind = getenv("PKV_ALLOC_KIND");
    device_mode = kind && strcmp(kind, "device") == 0;
    snprintf(path_save, sizeof path_save, "/tmp/pkv_test_alloc_save_%ld.pkv", (long)getpid());
    snprintf(path_snap, sizeof path_snap, "/tmp/pkv_test_alloc_snap_%ld.pkv", (long)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hooks_come_together),
        cmocka_unit_test(every_nth_host_allocation_fails_cleanly),
    };
    int rc = tu_run_tests(tests, NULL, NULL);
    remove(path_save);
    remove(path_snap);
    return rc;
}
