#include "reference.h"

#include <math.h>
#include <stdlib.h>

void reference_attention(const float *q, const float *k, const float *v, uint32_t n_tokens, uint32_t d,
                         double scale, double *out)
{
    double *logit = malloc((n_tokens ? n_tokens : 1) * sizeof *logit);
    for (uint32_t c = 0; c < d; c++) out[c] = 0;
    if (!logit) {
        for (uint32_t c = 0; c < d; c++) out[c] = NAN;
        return;
    }
    double mx = -INFINITY;
    for (uint32_t t = 0; t < n_tokens; t++) {
        double s = 0;
        const float *kt = k + (uint64_t)t * d;
        for (uint32_t c = 0; c < d; c++) s += (double)q[c] * kt[c];
        logit[t] = s * scale;
        if (logit[t] > mx) mx = logit[t];
    }
    double sum = 0;
    for (uint32_t t = 0; t < n_tokens; t++) {
        double p = exp(logit[t] - mx);
        sum += p;
        const float *vt = v + (uint64_t)t * d;
        for (uint32_t c = 0; c < d; c++) out[c] += p * vt[c];
    }
    for (uint32_t c = 0; c < d; c++) out[c] /= sum;
    free(logit);
}
