/* Host work of one call split over threads: the input check of a large append and the copies of
 * large uploads into staging memory (a 32K-token prompt of 32 layers is 4 GiB of fp16: one thread
 * reading it takes longer than the device's whole prefill). */
#ifndef PKV_PARALLEL_H
#define PKV_PARALLEL_H

#include <stddef.h>
#include <stdint.h>

/* Runs fn(arg, i) for every i in [0, n) once, on the calling thread and, where `work_bytes` (what the
 * tasks touch in all) is large enough to pay for them, up to 7 more threads that take tasks in turn.
 * fn must be safe to run concurrently for different i. A thread that cannot start costs nothing but
 * speed. */
void pkv_parallel_for(uint32_t n, size_t work_bytes, void (*fn)(void *arg, uint32_t i), void *arg);

/* Runs fn(arg, i) for every i in [0, n) once, on the calling thread and up to one more thread per
 * core (at most 31 more): for a few long tasks that are each worth a thread (pipeline creation,
 * milliseconds each inside a driver's compiler). */
void pkv_parallel_tasks(uint32_t n, void (*fn)(void *arg, uint32_t i), void *arg);

/* memcpy, split over threads when n is large. */
void pkv_parallel_memcpy(void *dst, const void *src, size_t n);

#endif
