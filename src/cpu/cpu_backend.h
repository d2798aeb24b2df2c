#ifndef PKV_CPU_BACKEND_H
#define PKV_CPU_BACKEND_H
#include "backend.h"
#include "cpu_simd.h"

uint8_t *pkv_cpu_buf_data(pkv_buf *buf);
pkv_status pkv_cpu_mine(pkv_backend *be, const pkv_store *st, const pkv_mine_op *op);
pkv_status pkv_cpu_flush(pkv_backend *be, const pkv_store *st, const pkv_flush_op *op);
pkv_status pkv_cpu_write_window(pkv_backend *be, const pkv_store *st, const pkv_window_op *op);
pkv_status pkv_cpu_attention(pkv_backend *be, const pkv_store *st, const pkv_attn_op *op);
pkv_status pkv_cpu_measure_read(pkv_backend *be, uint64_t bytes, double *gbps);
double pkv_cpu_now_ms(void);
/* A spin-wait hint to the core. */
static inline void pkv_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}
double pkv_cpu_last_op_ms(pkv_backend *be);
void pkv_cpu_set_last_op_ms(pkv_backend *be, double ms);
/* The kernel table the backend chose at creation (cpu_simd.h), and its thread count. */
const pkv_cpu_kernels *pkv_cpu_kernels_of(pkv_backend *be);
uint32_t pkv_cpu_n_threads(pkv_backend *be);
/* Scratch memory kept between calls, so that a large op (mining a prompt) does not fault in fresh pages
 * on every call: a 64-byte aligned buffer of at least `bytes` (contents undefined), NULL when out of
 * memory; give it back at the end of the task. Each buffer stays with the backend until the context
 * is freed, so the backend holds about (threads) x (the largest scratch one task took); at most 64
 * buffers are lent at once (NULL beyond). */
void *pkv_cpu_scratch_take(pkv_backend *be, size_t bytes);
void pkv_cpu_scratch_give(pkv_backend *be, void *p);
/* Decode-attention units per thread (PKV_CPU_ATTN_UNITS, 1 .. 64; default 4), read at creation. */
uint32_t pkv_cpu_attn_units(pkv_backend *be);
/* Runs fn(i, arg) for i in [0, n) on the backend's threads (a pool started on first use; items are handed out
 * one at a time, so a core that another process slows down takes fewer). Items are claimed in the order of
 * i: when item i starts, every item before it has started (the attention's units wait on their prep). */
void pkv_cpu_parallel_for(pkv_backend *be, uint32_t n, void (*fn)(uint32_t i, void *arg), void *arg);
/* Runs an op as n tasks; a task returns nonzero when it could not allocate its scratch memory.
 * Records the op's duration for pkv_last_op_time. */
pkv_status pkv_cpu_run_op(pkv_backend *be, uint32_t n, int (*task)(uint32_t i, void *arg), void *arg, const char *what);

#endif
