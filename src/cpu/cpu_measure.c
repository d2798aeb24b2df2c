/* CPU backend: streaming-read bandwidth and op timing on the host clock. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu_backend.h"
#include "internal.h"

double pkv_cpu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

typedef struct read_job {
    const uint64_t *data;
    size_t words, per_task;
    uint64_t *sums;
} read_job;

static void read_part(uint32_t i, void *arg)
{
    read_job *j = arg;
    size_t lo = (size_t)i * j->per_task, hi = lo + j->per_task < j->words ? lo + j->per_task : j->words;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t w = lo; w + 4 <= hi; w += 4) s0 += j->data[w], s1 += j->data[w + 1], s2 += j->data[w + 2], s3 += j->data[w + 3];
    j->sums[i] = s0 ^ s1 ^ s2 ^ s3;
}

pkv_status pkv_cpu_measure_read(pkv_backend *be, uint64_t bytes, double *gbps)
{
    size_t words = (size_t)(bytes / 8) & ~(size_t)3;
    uint64_t *data = malloc(words * 8 + 8);
    uint64_t sums[64];
    if (!data) return pkv_fail(NULL, PKV_ERR_OUT_OF_HOST_MEMORY, "cpu: cannot allocate %llu bytes to measure", (unsigned long long)bytes);
    for (size_t w = 0; w < words; w++) data[w] = w * 0x9E3779B97F4A7C15ull;
    const uint32_t tasks = 64;
    read_job j = {data, words, (words + tasks - 1) / tasks, sums};
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = pkv_cpu_now_ms();
        pkv_cpu_parallel_for(be, tasks, read_part, &j);
        double t = pkv_cpu_now_ms() - t0;
        if (t < best) best = t;
    }
    volatile uint64_t sink = 0;
    for (uint32_t i = 0; i < tasks; i++) sink ^= sums[i];
    (void)sink;
    free(data);
    *gbps = (double)words * 8 / (best * 1e-3) / 1e9;
    return PKV_OK;
}
