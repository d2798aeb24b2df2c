#include "reference_attention.h"

#include <math.h>
#include <stdlib.h>

int ref_attention(const float *q, const float *k, const float *v, uint32_t n_tokens, uint32_t d, size_t stride,
                  double scale, double *out)
{
    double *logit = malloc((n_tokens ? n_tokens : 1) * sizeof *logit);
    for (uint32_t c = 0; c < d; c++) out[c] = logit ? 0.0 : NAN;
    if (!logit) return -1;
    double mx = -INFINITY;
    for (uint32_t t = 0; t < n_tokens; t++) {
        double s = 0;
        const float *kt = k + (size_t)t * stride;
        for (uint32_t c = 0; c < d; c++) s += (double)q[c] * kt[c];
        logit[t] = s * scale;
        if (logit[t] > mx) mx = logit[t];
    }
    double sum = 0;
    for (uint32_t t = 0; t < n_tokens; t++) {
        double p = exp(logit[t] - mx);
        sum += p;
        const float *vt = v + (size_t)t * stride;
        for (uint32_t c = 0; c < d; c++) out[c] += p * vt[c];
    }
    for (uint32_t c = 0; c < d; c++) out[c] /= sum;
    free(logit);
    return 0;
}

double ref_rel_err(const float *x, const double *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)x[i] - ref[i];
        num += e * e;
        den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

double ref_rel_diff(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - (double)b[i];
        num += e * e;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
