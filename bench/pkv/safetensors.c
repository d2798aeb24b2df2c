/* safetensors reader: u64 LE header length N, N bytes of JSON
 * {"name": {"dtype": "F16", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}},
 * then the data; offsets are relative to the end of the header. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_read.h"
#include "tensor.h"

#define ST_MAX_HEADER (100u << 20)

static int io_error(FILE *f, const char *path, const char *what, char *err, size_t err_len)
{
    if (f) fclose(f);
    snprintf(err, err_len, "%s: %s", path, what);
    return -1;
}

int cli_safetensors_load(const char *path, const char *name, cli_tensor *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0) return io_error(f, path, "cannot seek", err, err_len);
    long fsize = ftell(f);
    if (fsize < 0 || fseek(f, 0, SEEK_SET) != 0) return io_error(f, path, "cannot seek", err, err_len);
    unsigned char lenbuf[8];
    if (fsize < 8 || fread(lenbuf, 1, 8, f) != 8)
        return io_error(f, path, "not a safetensors file (shorter than its 8-byte header length)", err, err_len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | lenbuf[i];
    if (hlen < 2 || hlen > ST_MAX_HEADER)
        return io_error(f, path, "not a safetensors file (implausible header length)", err, err_len);
    if (hlen > (uint64_t)fsize - 8) return io_error(f, path, "truncated safetensors header", err, err_len);
    char *hdr = malloc((size_t)hlen);
    if (!hdr) return io_error(f, path, "out of memory", err, err_len);
    if (fread(hdr, 1, (size_t)hlen, f) != hlen) {
        free(hdr);
        return io_error(f, path, "read error", err, err_len);
    }
    if (hdr[0] != '{') {
        free(hdr);
        return io_error(f, path, "not a safetensors file (header is not a JSON object)", err, err_len);
    }
    jr_value root;
    char jerr[160];
    if (jr_parse(hdr, (size_t)hlen, &root, jerr, sizeof jerr)) {
        free(hdr);
        fclose(f);
        snprintf(err, err_len, "%s: bad safetensors header: %s", path, jerr);
        return -1;
    }
    free(hdr);
    int rc = -1;
    uint64_t data_size = (uint64_t)fsize - 8 - hlen;
    const jr_value *t = jr_get(&root, name);
    if (root.type != JR_OBJECT) {
        snprintf(err, err_len, "%s: safetensors header is not an object", path);
        goto done;
    }
    if (!t) {
        rc = 1;
        goto done;
    }
    const jr_value *dtype = jr_get(t, "dtype"), *shape = jr_get(t, "shape"), *offs = jr_get(t, "data_offsets");
    if (!dtype || dtype->type != JR_STRING || !shape || shape->type != JR_ARRAY || !offs || offs->type != JR_ARRAY ||
        offs->count != 2 || !offs->items[0].is_uint || !offs->items[1].is_uint) {
        snprintf(err, err_len, "%s: tensor '%s' lacks a valid dtype, shape or data_offsets", path, name);
        goto done;
    }
    if (strcmp(dtype->string, "F16") == 0) out->file_bits = 16;
    else if (strcmp(dtype->string, "F32") == 0) out->file_bits = 32;
    else {
        snprintf(err, err_len, "%s: tensor '%s' has dtype %s; only F16 and F32 are supported", path, name, dtype->string);
        goto done;
    }
    if (shape->count > CLI_TENSOR_MAX_RANK) {
        snprintf(err, err_len, "%s: tensor '%s' has too many dimensions", path, name);
        goto done;
    }
    out->rank = (uint32_t)shape->count;
    for (size_t i = 0; i < shape->count; i++) {
        if (!shape->items[i].is_uint) {
            snprintf(err, err_len, "%s: tensor '%s' has a malformed shape", path, name);
            goto done;
        }
        out->shape[i] = shape->items[i].uint;
    }
    if (cli_tensor_size_ok(out)) {
        snprintf(err, err_len, "%s: tensor '%s' is too large (more than 2^36 elements)", path, name);
        goto done;
    }
    uint64_t n = cli_tensor_numel(out);
    uint64_t b = offs->items[0].uint, e = offs->items[1].uint;
    if (e < b || e - b != n * (out->file_bits / 8)) {
        snprintf(err, err_len, "%s: tensor '%s': data_offsets [%llu, %llu] do not match its shape and dtype", path, name,
                 (unsigned long long)b, (unsigned long long)e);
        goto done;
    }
    if (e > data_size) {
        snprintf(err, err_len, "%s: truncated: tensor '%s' ends at byte %llu of the data, which has %llu", path, name,
                 (unsigned long long)e, (unsigned long long)data_size);
        goto done;
    }
    unsigned char *raw = malloc((size_t)(e - b) + 1);
    out->data = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!raw || !out->data) {
        free(raw);
        snprintf(err, err_len, "%s: out of memory", path);
        goto done;
    }
    if (fseek(f, (long)(8 + hlen + b), SEEK_SET) != 0 || fread(raw, 1, (size_t)(e - b), f) != e - b) {
        free(raw);
        snprintf(err, err_len, "%s: read error", path);
        goto done;
    }
    uint64_t bad;
    int crc = cli_convert_to_f32(raw, out->file_bits, n, out->data, &bad);
    free(raw);
    if (crc) {
        snprintf(err, err_len, "%s: tensor '%s' element %llu is NaN or Inf", path, name, (unsigned long long)bad);
        goto done;
    }
    rc = 0;
done:
    jr_free(&root);
    fclose(f);
    if (rc != 0) cli_tensor_free(out);
    return rc;
}
