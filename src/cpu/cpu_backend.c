/* The CPU backend: buffers are host memory; ops in cpu_ops.c (mining, flush) and cpu_attention.c,
 * through the kernel table chosen at creation (cpu_simd.h); a persistent thread pool. */
#include "cpu_backend.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device_select.h"
#include "host_alloc.h"
#include "internal.h"

struct pkv_buf {
    uint8_t *data;
    size_t size;
};

/* The pool: n_threads - 1 workers started on first use. A job's items (a few dozen per op) are
 * claimed one at a time with an atomic counter, by the workers and by the calling thread alike; the
 * caller then waits only for items already running, never for a worker that has not woken up yet
 * (on a loaded machine a wake-up can take a scheduler tick). A worker joins a job under the mutex
 * (once per job), and only while the caller has not closed it, so a late worker never claims an item
 * of the next job. Workers spin on the job generation for a while before sleeping, so back-to-back
 * ops (decode steps) usually find them awake; the caller likewise spins a while on the count of
 * workers still in the job before sleeping on cv_done (a futex wake-up costs tens of microseconds
 * in a virtual machine, a decode step at batch 1 a few hundred). */
typedef struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    pthread_t th[64];
    uint32_t n_workers, started;
    void (*fn)(uint32_t, void *);
    void *arg;
    uint32_t n;         /* items of the job */
    atomic_uint next;   /* the next item to claim */
    atomic_uint active; /* workers in the job (joined, not yet left) */
    int open;           /* under mu: workers may join the job */
    int waiting;        /* under mu: the caller sleeps on cv_done */
    unsigned long gen;  /* under mu */
    atomic_ulong agen;  /* a copy for spinning */
    int stop;
    const pkv_allocator *alloc; /* the allocator of the job's call (host_alloc.h) */
} pool;

/* Scratch kept between calls (pkv_cpu_scratch_take): one buffer per task running at once. */
typedef struct scratch_slot {
    void *p;
    size_t cap;
    int busy;
} scratch_slot;

typedef struct cpu_impl {
    uint32_t n_threads;
    uint32_t attn_units; /* attention units per thread (PKV_CPU_ATTN_UNITS, default 4) */
    double last_op_ms;
    const pkv_cpu_kernels *kernels;
    pool pool;
    pthread_mutex_t scratch_mu;
    scratch_slot scratch[64];
} cpu_impl;

const pkv_cpu_kernels *pkv_cpu_kernels_of(pkv_backend *be) { return ((cpu_impl *)be->impl)->kernels; }
uint32_t pkv_cpu_n_threads(pkv_backend *be) { return ((cpu_impl *)be->impl)->n_threads; }
uint32_t pkv_cpu_attn_units(pkv_backend *be) { return ((cpu_impl *)be->impl)->attn_units; }

double pkv_cpu_last_op_ms(pkv_backend *be) { return ((cpu_impl *)be->impl)->last_op_ms; }
void pkv_cpu_set_last_op_ms(pkv_backend *be, double ms) { ((cpu_impl *)be->impl)->last_op_ms = ms; }

uint8_t *pkv_cpu_buf_data(pkv_buf *buf) { return buf->data; }

void *pkv_cpu_scratch_take(pkv_backend *be, size_t bytes)
{
    cpu_impl *impl = be->impl;
    if (!bytes) bytes = 1;
    pthread_mutex_lock(&impl->scratch_mu);
    scratch_slot *fit = NULL, *big = NULL;
    for (uint32_t i = 0; i < 64; i++) {
        scratch_slot *sl = &impl->scratch[i];
        if (sl->busy) continue;
        if (sl->cap >= bytes && (!fit || sl->cap < fit->cap)) fit = sl;
        if (!big || sl->cap > big->cap) big = sl;
    }
    if (!fit && big) { /* replace the largest free buffer: it is too small */
        pkv_host_aligned_free(big->p);
        big->cap = 0;
        big->p = pkv_host_aligned_alloc(64, bytes);
        if (big->p) big->cap = bytes, fit = big;
    }
    void *p = NULL;
    if (fit) fit->busy = 1, p = fit->p;
    pthread_mutex_unlock(&impl->scratch_mu);
    return p;
}

void pkv_cpu_scratch_give(pkv_backend *be, void *p)
{
    cpu_impl *impl = be->impl;
    if (!p) return;
    pthread_mutex_lock(&impl->scratch_mu);
    for (uint32_t i = 0; i < 64; i++)
        if (impl->scratch[i].p == p) impl->scratch[i].busy = 0;
    pthread_mutex_unlock(&impl->scratch_mu);
}

static pkv_status cpu_buf_alloc(pkv_backend *be, size_t bytes, pkv_buf **out)
{
    (void)be;
    pkv_buf *b = calloc(1, sizeof *b);
    uint8_t *data = calloc(bytes ? bytes : 1, 1);
    if (!b || !data) {
        free(b);
        free(data);
        return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "cpu: could not allocate %zu bytes of host memory", bytes);
    }
    b->data = data;
    b->size = bytes;
    *out = b;
    return PKV_OK;
}

static void cpu_buf_free(pkv_backend *be, pkv_buf *b)
{
    (void)be;
    if (!b) return;
    free(b->data);
    free(b);
}

static pkv_status cpu_buf_write(pkv_backend *be, pkv_buf *b, size_t off, const void *src, size_t n)
{
    (void)be;
    if (off + n > b->size) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "cpu: write out of bounds");
    memcpy(b->data + off, src, n);
    return PKV_OK;
}

static pkv_status cpu_buf_read(pkv_backend *be, pkv_buf *b, size_t off, void *dst, size_t n)
{
    (void)be;
    if (off + n > b->size) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "cpu: read out of bounds");
    memcpy(dst, b->data + off, n);
    return PKV_OK;
}

static pkv_status cpu_buf_copy(pkv_backend *be, pkv_buf *dst, size_t doff, pkv_buf *src, size_t soff, size_t n)
{
    (void)be;
    if (doff + n > dst->size || soff + n > src->size)
        return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "cpu: copy out of bounds");
    memmove(dst->data + doff, src->data + soff, n);
    return PKV_OK;
}

static void pool_stop(pool *p)
{
    if (!p->started) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    p->gen++;
    atomic_store(&p->agen, p->gen);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (uint32_t t = 0; t < p->n_workers; t++) pthread_join(p->th[t], NULL);
}

static void cpu_destroy(pkv_backend *be)
{
    cpu_impl *impl = be->impl;
    pool_stop(&impl->pool);
    pthread_mutex_destroy(&impl->pool.mu);
    pthread_cond_destroy(&impl->pool.cv_work);
    pthread_cond_destroy(&impl->pool.cv_done);
    for (uint32_t i = 0; i < 64; i++) pkv_host_aligned_free(impl->scratch[i].p);
    pthread_mutex_destroy(&impl->scratch_mu);
    free(be->impl);
    free(be);
}

static const pkv_backend_iface cpu_iface = {
    .destroy = cpu_destroy,
    .buf_alloc = cpu_buf_alloc,
    .buf_free = cpu_buf_free,
    .buf_write = cpu_buf_write,
    .buf_read = cpu_buf_read,
    .buf_copy = cpu_buf_copy,
    .k_assign_variants = (1u << PKV_K_ASSIGN_L2) | (1u << PKV_K_ASSIGN_RANGE) | (1u << PKV_K_ASSIGN_NONE),
    .quantizers = (1u << PKV_QUANTIZER_MSE) | (1u << PKV_QUANTIZER_MSE_K) | (1u << PKV_QUANTIZER_MSE_V),
    .mine = pkv_cpu_mine,
    .flush = pkv_cpu_flush,
    .write_window = pkv_cpu_write_window,
    .attention = pkv_cpu_attention,
    .measure_read = pkv_cpu_measure_read,
    .last_op_ms = pkv_cpu_last_op_ms,
};

/* Runs items of the current job until none is left to claim. */
static void pool_drain(pool *p)
{
    for (;;) {
        uint32_t i = atomic_fetch_add_explicit(&p->next, 1u, memory_order_relaxed);
        if (i >= p->n) return;
        p->fn(i, p->arg);
    }
}

static void *pool_worker(void *arg)
{
    pool *p = arg;
    unsigned long seen = 0;
    for (;;) {
        double t0 = pkv_cpu_now_ms();
        for (uint32_t k = 0; atomic_load_explicit(&p->agen, memory_order_acquire) == seen; k++) {
            pkv_cpu_relax();
            if ((k & 63u) == 63u && pkv_cpu_now_ms() - t0 > 0.2) break; /* spin 0.2 ms, then sleep */
        }
        pthread_mutex_lock(&p->mu);
        while (p->gen == seen && !p->stop) pthread_cond_wait(&p->cv_work, &p->mu);
        int stop = p->stop, join = p->open;
        seen = p->gen;
        const pkv_allocator *alloc = p->alloc;
        if (join) atomic_fetch_add_explicit(&p->active, 1u, memory_order_relaxed);
        pthread_mutex_unlock(&p->mu);
        if (stop) return NULL;
        if (!join) continue; /* woke up after the caller closed the job */
        {
            PKV_ALLOC_SCOPE(alloc); /* workers allocate with the allocator of the call they work for */
            pool_drain(p);
        }
        if (atomic_fetch_sub_explicit(&p->active, 1u, memory_order_acq_rel) == 1u) {
            pthread_mutex_lock(&p->mu);
            if (p->waiting) pthread_cond_broadcast(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void pool_start(pool *p)
{
    p->started = 1;
    uint32_t ok = 0;
    for (uint32_t t = 0; t < p->n_workers; t++)
        if (pthread_create(&p->th[ok], NULL, pool_worker, p) == 0) ok++;
    p->n_workers = ok; /* fewer threads if the system refuses some: the caller does their share */
}

void pkv_cpu_parallel_for(pkv_backend *be, uint32_t n, void (*fn)(uint32_t, void *), void *arg)
{
    cpu_impl *impl = be->impl;
    pool *p = &impl->pool;
    if (n == 0) return;
    if (n > 1 && !p->started && p->n_workers) pool_start(p);
    if (n == 1 || p->n_workers == 0) {
        for (uint32_t i = 0; i < n; i++) fn(i, arg);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn, p->arg = arg, p->n = n, p->open = 1, p->alloc = pkv_alloc_current();
    atomic_store_explicit(&p->next, 0u, memory_order_relaxed);
    unsigned long gen = ++p->gen;
    atomic_store_explicit(&p->agen, gen, memory_order_release);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    pool_drain(p);
    /* every item is claimed: close the job, then wait for the workers still in it */
    pthread_mutex_lock(&p->mu);
    p->open = 0;
    pthread_mutex_unlock(&p->mu);
    double t0 = pkv_cpu_now_ms();
    for (uint32_t k = 0; atomic_load_explicit(&p->active, memory_order_acquire); k++) {
        pkv_cpu_relax();
        if ((k & 63u) == 63u && pkv_cpu_now_ms() - t0 > 0.2) break; /* spin 0.2 ms, then sleep */
    }
    pthread_mutex_lock(&p->mu);
    p->waiting = 1;
    while (atomic_load_explicit(&p->active, memory_order_acquire)) pthread_cond_wait(&p->cv_done, &p->mu);
    p->waiting = 0;
    pthread_mutex_unlock(&p->mu);
}

typedef struct op_run {
    int (*task)(uint32_t, void *);
    void *arg;
    int *failed;
} op_run;

static void run_task(uint32_t i, void *p)
{
    op_run *r = p;
    r->failed[i] = r->task(i, r->arg);
}

pkv_status pkv_cpu_run_op(pkv_backend *be, uint32_t n, int (*task)(uint32_t, void *), void *arg, const char *what)
{
    int *failed = calloc(n ? n : 1, sizeof *failed);
    if (!failed) return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "cpu %s: out of host memory", what);
    op_run r = {task, arg, failed};
    double t0 = pkv_cpu_now_ms();
    pkv_cpu_parallel_for(be, n, run_task, &r);
    pkv_cpu_set_last_op_ms(be, pkv_cpu_now_ms() - t0);
    pkv_status st = PKV_OK;
    for (uint32_t i = 0; i < n; i++)
        if (failed[i]) st = pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "cpu %s: out of host memory", what);
    free(failed);
    return st;
}

static void cpu_info(pkv_device_info *info)
{
    memset(info, 0, sizeof *info);
    info->backend = PKV_BACKEND_CPU;
    info->type = PKV_DEVICE_CPU;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    char note[160];
    snprintf(info->name, sizeof info->name, "CPU reference (%ld cores, %s)", cores > 0 ? cores : 1,
             pkv_cpu_simd_name(pkv_cpu_simd_choose(note, sizeof note)));
    snprintf(info->driver, sizeof info->driver, "patternkv %s", PKV_VERSION_STRING);
}

static pkv_status cpu_list(const pkv_context_params *p, pkv_device_info *out, size_t cap, size_t *count, char *why,
                           size_t why_len)
{
    (void)p, (void)why, (void)why_len;
    if (cap) cpu_info(&out[0]);
    *count = 1;
    return PKV_OK;
}

static pkv_status cpu_create(const pkv_context_params *p, pkv_backend **out, char *why, size_t why_len)
{
    pkv_device_info info;
    cpu_info(&info);
    if (pkv_select_device(p, &info, 1, why, why_len) < 0) return PKV_ERR_BACKEND_UNAVAILABLE;
    pkv_backend *be = calloc(1, sizeof *be);
    cpu_impl *impl = calloc(1, sizeof *impl);
    if (!be || !impl) {
        free(be);
        free(impl);
        snprintf(why, why_len, "out of host memory");
        return PKV_ERR_OUT_OF_HOST_MEMORY;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    impl->last_op_ms = -1.0;
    impl->n_threads = p->n_threads ? p->n_threads : (uint32_t)(cores > 0 ? cores : 1);
    if (impl->n_threads > 64) impl->n_threads = 64;
    const char *units = getenv("PKV_CPU_ATTN_UNITS"); /* a tuning switch: 1 .. 64, else the default 4 */
    long nu = units ? strtol(units, NULL, 10) : 0;
    impl->attn_units = nu >= 1 && nu <= 64 ? (uint32_t)nu : 4u;
    char note[160];
    impl->kernels = pkv_cpu_kernels_for(pkv_cpu_simd_choose(note, sizeof note));
    if (note[0]) {
        pkv_context tmp = {.params = *p};
        pkv_log(&tmp, PKV_LOG_WARN, "cpu: %s", note);
    }
    pool *pl = &impl->pool;
    pthread_mutex_init(&pl->mu, NULL);
    pthread_cond_init(&pl->cv_work, NULL);
    pthread_cond_init(&pl->cv_done, NULL);
    pthread_mutex_init(&impl->scratch_mu, NULL);
    pl->n_workers = impl->n_threads - 1;
    atomic_init(&pl->agen, 0ul);
    atomic_init(&pl->next, 0u);
    atomic_init(&pl->active, 0u);
    be->iface = &cpu_iface;
    be->impl = impl;
    be->info = info;
    *out = be;
    return PKV_OK;
}

const pkv_backend_entry pkv_cpu_backend_entry = {PKV_BACKEND_CPU, cpu_list, cpu_create};
