/* NumPy .npy reader: "\x93NUMPY", version (1|2|3).0, header length (u16 LE in v1, u32 LE in v2/3),
 * a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (a, b, ...), } padded
 * with spaces and ending in '\n', then the raw data. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "tensor.h"

#define NPY_MAX_HEADER (1u << 20)

/* Finds 'key': in the header dict and returns a pointer just after the colon and spaces. */
static const char *dict_value(const char *hdr, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(hdr, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static int parse_header(const char *hdr, const char *path, cli_tensor *t, char *err, size_t err_len)
{
    const char *descr = dict_value(hdr, "descr");
    const char *fortran = dict_value(hdr, "fortran_order");
    const char *shape = dict_value(hdr, "shape");
    if (!descr || !fortran || !shape) {
        snprintf(err, err_len, "%s: .npy header lacks 'descr', 'fortran_order' or 'shape'", path);
        return -1;
    }
    char dt[16] = {0};
    if (*descr != '\'' || sscanf(descr + 1, "%15[^']", dt) != 1) {
        snprintf(err, err_len, "%s: .npy header has a malformed 'descr'", path);
        return -1;
    }
    if (strcmp(dt, "<f2") == 0 || strcmp(dt, "=f2") == 0 || strcmp(dt, "|f2") == 0) t->file_bits = 16;
    else if (strcmp(dt, "<f4") == 0 || strcmp(dt, "=f4") == 0 || strcmp(dt, "|f4") == 0) t->file_bits = 32;
    else {
        snprintf(err, err_len, "%s: dtype '%s' is not supported: save as float16 ('<f2') or float32 ('<f4'), little-endian",
                 path, dt);
        return -1;
    }
    if (strncmp(fortran, "False", 5) != 0) {
        snprintf(err, err_len, "%s: array is in Fortran order; save a C-order array (np.ascontiguousarray)", path);
        return -1;
    }
    if (*shape != '(') {
        snprintf(err, err_len, "%s: .npy header has a malformed 'shape'", path);
        return -1;
    }
    const char *p = shape + 1;
    t->rank = 0;
    for (;;) {
        while (*p == ' ') p++;
        if (*p == ')') break;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || errno || *p == '-') {
            snprintf(err, err_len, "%s: .npy header has a malformed 'shape'", path);
            return -1;
        }
        if (t->rank == CLI_TENSOR_MAX_RANK) {
            snprintf(err, err_len, "%s: array has more than %d dimensions", path, CLI_TENSOR_MAX_RANK);
            return -1;
        }
        t->shape[t->rank++] = v;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') p++;
        else if (*p != ')') {
            snprintf(err, err_len, "%s: .npy header has a malformed 'shape'", path);
            return -1;
        }
    }
    return 0;
}

int cli_npy_load(const char *path, cli_tensor *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    char *file = NULL;
    size_t len = 0;
    if (cli_read_file(path, &file, &len, err, err_len)) return -1;
    unsigned char *buf = (unsigned char *)file;
    int rc = -1;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        snprintf(err, err_len, "%s: not a .npy file (bad magic)", path);
        goto done;
    }
    unsigned major = buf[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)buf[8] | ((size_t)buf[9] << 8);
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) {
            snprintf(err, err_len, "%s: truncated .npy header", path);
            goto done;
        }
        hlen = (size_t)buf[8] | ((size_t)buf[9] << 8) | ((size_t)buf[10] << 16) | ((size_t)buf[11] << 24);
        hstart = 12;
    } else {
        snprintf(err, err_len, "%s: unsupported .npy format version %u", path, major);
        goto done;
    }
    if (hlen > NPY_MAX_HEADER || hstart + hlen > len) {
        snprintf(err, err_len, "%s: truncated .npy header", path);
        goto done;
    }
    char *hdr = malloc(hlen + 1);
    if (!hdr) {
        snprintf(err, err_len, "%s: out of memory", path);
        goto done;
    }
    memcpy(hdr, buf + hstart, hlen);
    hdr[hlen] = 0;
    int hrc = parse_header(hdr, path, out, err, err_len);
    free(hdr);
    if (hrc) goto done;
    if (cli_tensor_size_ok(out)) {
        snprintf(err, err_len, "%s: shape is too large (more than 2^36 elements)", path);
        goto done;
    }
    uint64_t n = cli_tensor_numel(out);
    uint64_t bytes = n * (out->file_bits / 8);
    size_t have = len - hstart - hlen;
    if (bytes > have) {
        snprintf(err, err_len, "%s: truncated data: shape needs %llu bytes, file has %zu", path,
                 (unsigned long long)bytes, have);
        goto done;
    }
    if (bytes < have) {
        snprintf(err, err_len, "%s: %zu unexpected bytes after the data", path, (size_t)(have - bytes));
        goto done;
    }
    out->data = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!out->data) {
        snprintf(err, err_len, "%s: out of memory", path);
        goto done;
    }
    uint64_t bad;
    if (cli_convert_to_f32(buf + hstart + hlen, out->file_bits, n, out->data, &bad)) {
        snprintf(err, err_len, "%s: element %llu is NaN or Inf", path, (unsigned long long)bad);
        goto done;
    }
    rc = 0;
done:
    free(buf);
    if (rc) cli_tensor_free(out);
    return rc;
}
