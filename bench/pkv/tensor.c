#include "tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "patternkv.h"

uint64_t cli_tensor_numel(const cli_tensor *t)
{
    uint64_t n = 1;
    for (uint32_t i = 0; i < t->rank; i++) n *= t->shape[i];
    return n;
}

int cli_tensor_size_ok(const cli_tensor *t)
{
    uint64_t n = 1;
    for (uint32_t i = 0; i < t->rank; i++) {
        if (t->shape[i] != 0 && n > CLI_TENSOR_MAX_ELEMENTS / t->shape[i]) return -1;
        n *= t->shape[i];
    }
    return 0;
}

void cli_tensor_free(cli_tensor *t)
{
    if (!t) return;
    free(t->data);
    memset(t, 0, sizeof *t);
}

int cli_convert_to_f32(const unsigned char *src, uint32_t bits, uint64_t n, float *dst, uint64_t *bad)
{
    for (uint64_t i = 0; i < n; i++) {
        float f;
        if (bits == 16) {
            uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
            pkv_f16_to_f32_array(&h, &f, 1); /* the library's conversion: exact */
        } else {
            uint32_t u = (uint32_t)src[4 * i] | ((uint32_t)src[4 * i + 1] << 8) | ((uint32_t)src[4 * i + 2] << 16) |
                         ((uint32_t)src[4 * i + 3] << 24);
            memcpy(&f, &u, sizeof f);
        }
        if (!isfinite(f)) {
            if (bad) *bad = i;
            return -1;
        }
        dst[i] = f;
    }
    return 0;
}
