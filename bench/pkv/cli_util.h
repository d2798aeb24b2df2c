/* Helpers that the pkv commands (bench, eval-model) and their tests share: numbers on the command
 * line, whole files, and the repository's default data files. */
#ifndef PKV_CLI_UTIL_H
#define PKV_CLI_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A decimal integer in [lo, hi], nothing else (no sign, no trailing text): 0, else -1. */
int cli_parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out);
/* Bit widths the library stores: 2, 3, 4, 8. */
int cli_valid_bits(uint32_t b);
/* A whole file (a pipe too) into memory, NUL-terminated (not counted in *len); the caller frees
 * *data. 0, or -1 with a sentence in err. */
int cli_read_file(const char *path, char **data, size_t *len, char *err, size_t err_len);
/* A file of the repository, e.g. "data/tinyllm/model.bin": `rel` when it exists from the current
 * directory, else the same path under the source tree pkv was built from; NULL when neither exists.
 * `buf` holds the second form. */
const char *cli_repo_file(const char *rel, char *buf, size_t len);

#endif
