/* pkv_parallel_for and pkv_parallel_memcpy (parallel.h). */
#define _POSIX_C_SOURCE 200809L
#include "parallel.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 8u  /* pkv_parallel_for */
#define MAX_TASK_THREADS 32u /* pkv_parallel_tasks */
#define MIN_BYTES ((size_t)16 << 20) /* less: one thread (starting one costs tens of microseconds) */
#define COPY_PIECE ((size_t)4 << 20)

typedef struct par_job {
    void (*fn)(void *, uint32_t);
    void *arg;
    uint32_t n, next;
    pthread_mutex_t lock;
} par_job;

static void *worker(void *p)
{
    par_job *j = p;
    for (;;) {
        pthread_mutex_lock(&j->lock);
        uint32_t i = j->next < j->n ? j->next++ : UINT32_MAX;
        pthread_mutex_unlock(&j->lock);
        if (i == UINT32_MAX) return NULL;
        j->fn(j->arg, i);
    }
}

static uint32_t cores(void)
{
    static long n = 0; /* a benign race: every thread computes the same value */
    if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 1 ? (uint32_t)n : 1;
}

/* fn over [0, n) on the calling thread and threads - 1 more. */
static void run_on(uint32_t n, uint32_t threads, void (*fn)(void *, uint32_t), void *arg)
{
    if (threads > n) threads = n;
    if (threads <= 1) {
        for (uint32_t i = 0; i < n; i++) fn(arg, i);
        return;
    }
    par_job j = {.fn = fn, .arg = arg, .n = n};
    pthread_mutex_init(&j.lock, NULL);
    pthread_t th[MAX_TASK_THREADS];
    int started[MAX_TASK_THREADS] = {0};
    for (uint32_t t = 1; t < threads; t++) started[t] = pthread_create(&th[t], NULL, worker, &j) == 0;
    worker(&j);
    for (uint32_t t = 1; t < threads; t++)
        if (started[t]) pthread_join(th[t], NULL);
    pthread_mutex_destroy(&j.lock);
}

void pkv_parallel_for(uint32_t n, size_t work_bytes, void (*fn)(void *arg, uint32_t i), void *arg)
{
    uint32_t threads = work_bytes >= MIN_BYTES ? cores() : 1;
    run_on(n, threads < MAX_THREADS ? threads : MAX_THREADS, fn, arg);
}

void pkv_parallel_tasks(uint32_t n, void (*fn)(void *arg, uint32_t i), void *arg)
{
    const uint32_t threads = cores();
    run_on(n, threads < MAX_TASK_THREADS ? threads : MAX_TASK_THREADS, fn, arg);
}

typedef struct copy_job { unsigned char *dst; const unsigned char *src; size_t n; } copy_job;

static void copy_piece(void *arg, uint32_t i)
{
    copy_job *c = arg;
    const size_t lo = (size_t)i * COPY_PIECE, len = c->n - lo < COPY_PIECE ? c->n - lo : COPY_PIECE;
    memcpy(c->dst + lo, c->src + lo, len);
}

void pkv_parallel_memcpy(void *dst, const void *src, size_t n)
{
    if (n < MIN_BYTES) {
        memcpy(dst, src, n);
        return;
    }
    copy_job c = {dst, src, n};
    pkv_parallel_for((uint32_t)((n + COPY_PIECE - 1) / COPY_PIECE), n, copy_piece, &c);
}
