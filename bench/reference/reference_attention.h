/* The fp64 yardstick of every fidelity number: attention over the original (uncompressed) K and V
 * in double precision, and relative errors against it. One module, used by `pkv bench` and by the
 * tests (target pkv_reference). */
#ifndef PKV_REFERENCE_ATTENTION_H
#define PKV_REFERENCE_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

/* out[d] = softmax(scale * q . k_t) . v_t over t < n_tokens, in fp64; token t's rows start at
 * k + t * stride and v + t * stride (stride >= d floats). Returns 0, or -1 when out of memory
 * (out is then NaN). */
int ref_attention(const float *q, const float *k, const float *v, uint32_t n_tokens, uint32_t d, size_t stride,
                  double scale, double *out);

/* ||x - ref|| / ||ref|| over n values; ||x - ref|| when ref is all zeros. */
double ref_rel_err(const float *x, const double *ref, size_t n);
/* The same between two float vectors (b is the reference). */
double ref_rel_diff(const float *a, const float *b, size_t n);

#endif
