/* Bursts of heavy attention calls that keep a GPU at its working clocks (gpu_clocks.h). */
#include "gpu_clocks.h"

#include <stdlib.h>
#include <string.h>

#include "timer.h"

int gpu_burst_init(gpu_burst *b, const pkv_attention_params *ap, uint32_t shortest, uint32_t head_dim,
                   const float *q_one)
{
    b->ap = *ap;
    b->ap.q_len = shortest < 64 ? shortest : 64;
    const size_t row = (size_t)ap->n_q_heads * head_dim, n = (size_t)ap->n_seqs * b->ap.q_len * row;
    b->q = malloc(n * sizeof *b->q);
    b->out = malloc(n * sizeof *b->out);
    if (!b->q || !b->out) {
        gpu_burst_free(b);
        return -1;
    }
    for (size_t i = 0; i < n / row; i++) /* every query position asks the timed call's question */
        memcpy(b->q + i * row, q_one + (i / b->ap.q_len) * row, row * sizeof *b->q);
    return 0;
}

pkv_status gpu_burst_run(gpu_burst *b, pkv_cache *cache, double seconds)
{
    double t0 = cli_now();
    pkv_status s = PKV_OK;
    while (s == PKV_OK && cli_now() - t0 < seconds) s = pkv_attention(cache, &b->ap, b->q, b->out);
    return s;
}

void gpu_burst_free(gpu_burst *b)
{
    free(b->q);
    free(b->out);
    b->q = b->out = NULL;
}
