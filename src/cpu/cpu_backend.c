/* The portable CPU backend: buffers are host memory; ops are the reference in cpu_ops.c. */
#include "cpu_backend.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device_select.h"
#include "internal.h"

struct pkv_buf {
    uint8_t *data;
    size_t size;
};

typedef struct cpu_impl {
    uint32_t n_threads;
    double last_op_ms;
} cpu_impl;

double pkv_cpu_last_op_ms(pkv_backend *be) { return ((cpu_impl *)be->impl)->last_op_ms; }
void pkv_cpu_set_last_op_ms(pkv_backend *be, double ms) { ((cpu_impl *)be->impl)->last_op_ms = ms; }

uint8_t *pkv_cpu_buf_data(pkv_buf *buf) { return buf->data; }

static pkv_status cpu_buf_alloc(pkv_backend *be, size_t bytes, pkv_buf **out)
{
    (void)be;
    pkv_buf *b = calloc(1, sizeof *b);
    uint8_t *data = calloc(bytes ? bytes : 1, 1);
    if (!b || !data) {
        free(b);
        free(data);
        return pkv_fail(NULL, PKV_ERR_OUT_OF_DEVICE_MEMORY, "cpu: could not allocate %zu bytes", bytes);
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

static void cpu_destroy(pkv_backend *be)
{
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
    .mine = pkv_cpu_mine,
    .flush = pkv_cpu_flush,
    .write_window = pkv_cpu_write_window,
    .attention = pkv_cpu_attention,
    .measure_read = pkv_cpu_measure_read,
    .last_op_ms = pkv_cpu_last_op_ms,
};

typedef struct job {
    void (*fn)(uint32_t, void *);
    void *arg;
    uint32_t n, stride, first;
} job;

static void *run_job(void *p)
{
    job *j = p;
    for (uint32_t i = j->first; i < j->n; i += j->stride) j->fn(i, j->arg);
    return NULL;
}

void pkv_cpu_parallel_for(pkv_backend *be, uint32_t n, void (*fn)(uint32_t, void *), void *arg)
{
    cpu_impl *impl = be->impl;
    uint32_t nt = impl->n_threads < n ? impl->n_threads : n;
    pthread_t th[64];
    job jobs[64];
    int started[64] = {0};
    for (uint32_t t = 1; t < nt; t++) {
        jobs[t] = (job){fn, arg, n, nt, t};
        started[t] = pthread_create(&th[t], NULL, run_job, &jobs[t]) == 0;
    }
    jobs[0] = (job){fn, arg, n, nt ? nt : 1, 0};
    run_job(&jobs[0]);
    for (uint32_t t = 1; t < nt; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        else run_job(&jobs[t]); /* no thread: do its share here */
    }
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
    snprintf(info->name, sizeof info->name, "CPU reference (%ld cores)", cores > 0 ? cores : 1);
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
    be->iface = &cpu_iface;
    be->impl = impl;
    be->info = info;
    *out = be;
    return PKV_OK;
}

const pkv_backend_entry pkv_cpu_backend_entry = {PKV_BACKEND_CPU, cpu_list, cpu_create};
