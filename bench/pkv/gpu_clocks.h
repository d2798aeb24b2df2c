/* Keeping a GPU at its working clocks while attention is timed. The H200 of our measurements drops
 * its SM clock to 345 MHz within a second of light load and raises it to 1980 MHz only after
 * sustained heavy load; a loop of single decode calls (the GPU idle between them while the host
 * prepares the next) runs it half asleep. An engine keeps the GPU busy between attention calls (the
 * rest of the model), so the bench times decode steps right after bursts of heavy attention calls
 * on the same caches. */
#ifndef PKV_CLI_GPU_CLOCKS_H
#define PKV_CLI_GPU_CLOCKS_H

#include "patternkv.h"

#define GPU_BURST_SECONDS 0.15 /* of heavy calls before each group of timed steps */
#define GPU_BURST_STEPS 5      /* timed steps per group */

typedef struct gpu_burst {
    pkv_attention_params ap; /* the timed call's, with q_len raised */
    float *q, *out;
} gpu_burst;

/* Prepares bursts of calls like `ap` with q_len = min(64, shortest sequence) (q: random-free
 * copies of the timed call's q). Returns 0, or -1 when out of memory. */
int gpu_burst_init(gpu_burst *b, const pkv_attention_params *ap, uint32_t shortest, uint32_t head_dim,
                   const float *q_one);
/* Heavy calls on `cache` for at least `seconds`. */
pkv_status gpu_burst_run(gpu_burst *b, pkv_cache *cache, double seconds);
void gpu_burst_free(gpu_burst *b);

#endif
