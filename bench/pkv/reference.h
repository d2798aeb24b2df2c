/* fp64 reference attention over the original (uncompressed) K and V. */
#ifndef PKV_CLI_REFERENCE_H
#define PKV_CLI_REFERENCE_H

#include <stdint.h>

/* out[d] = softmax(scale * q . k_t) . v_t over t < n_tokens; k, v: [n_tokens][d] fp32 rows of stride d. */
void reference_attention(const float *q, const float *k, const float *v, uint32_t n_tokens, uint32_t d,
                         double scale, double *out);

#endif
