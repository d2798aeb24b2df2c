/* A host tensor read from a file, converted to fp32, C order. */
#ifndef PKV_CLI_TENSOR_H
#define PKV_CLI_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define CLI_TENSOR_MAX_RANK 8

typedef struct cli_tensor {
    uint32_t rank;
    uint64_t shape[CLI_TENSOR_MAX_RANK];
    uint32_t file_bits; /* 16 or 32: the dtype in the file */
    float *data;
} cli_tensor;

uint64_t cli_tensor_numel(const cli_tensor *t);
/* 0 when the element count fits in CLI_TENSOR_MAX_ELEMENTS (no overflow), else -1. */
#define CLI_TENSOR_MAX_ELEMENTS (1ull << 36)
int cli_tensor_size_ok(const cli_tensor *t);
void cli_tensor_free(cli_tensor *t);
/* Converts n little-endian fp16 or fp32 values to fp32; returns -1 (index in *bad) on a non-finite one. */
int cli_convert_to_f32(const unsigned char *src, uint32_t bits, uint64_t n, float *dst, uint64_t *bad);

/* NumPy .npy (versions 1, 2, 3): dtype '<f2' or '<f4' (also '|'/'=' on little-endian), C order.
 * Returns 0, or -1 with a sentence in err (bad magic, wrong dtype, Fortran order, truncated, ...). */
int cli_npy_load(const char *path, cli_tensor *out, char *err, size_t err_len);

/* safetensors: reads tensor `name` (dtype F16 or F32). Returns 0, 1 when the file is valid but has no
 * such tensor, or -1 with a sentence in err. */
int cli_safetensors_load(const char *path, const char *name, cli_tensor *out, char *err, size_t err_len);

#endif
