/* Writers of small .npy and .safetensors files for the CLI tests (good ones and damaged ones). */
#ifndef PKV_TEST_CLI_FILES_H
#define PKV_TEST_CLI_FILES_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "patternkv.h"

/* Writes a .npy (version 1) with a raw descr string and shape; `data` of `bytes` bytes. */
static inline int tf_write_npy(const char *path, const char *descr, int fortran, const uint64_t *shape, int rank,
                               const void *data, size_t bytes)
{
    char dict[256], shp[128] = "";
    for (int i = 0; i < rank; i++) {
        size_t l = strlen(shp);
        snprintf(shp + l, sizeof shp - l, "%llu,%s", (unsigned long long)shape[i], i + 1 < rank ? " " : "");
    }
    snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }", descr,
             fortran ? "True" : "False", shp);
    size_t len = strlen(dict) + 1, total = 10 + len;
    size_t pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    uint16_t hl = (uint16_t)(len + pad);
    head[8] = (unsigned char)(hl & 0xFF);
    head[9] = (unsigned char)(hl >> 8);
    fwrite(head, 1, 10, f);
    fwrite(dict, 1, strlen(dict), f);
    for (size_t i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    fwrite(data, 1, bytes, f);
    return fclose(f);
}

typedef struct tf_tensor {
    const char *name;
    const char *dtype;   /* "F16", "F32", or anything to test rejection */
    uint64_t shape[4];
    int rank;
    const void *data;
    size_t bytes;
} tf_tensor;

/* Writes a .safetensors file; `cut` bytes are dropped from its end (a truncated file). */
static inline int tf_write_safetensors(const char *path, const tf_tensor *t, int n, size_t cut)
{
    char header[4096] = "{\"__metadata__\": {\"format\": \"pt\"}";
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(header);
        l += (size_t)snprintf(header + l, sizeof header - l, ", \"%s\": {\"dtype\": \"%s\", \"shape\": [", t[i].name,
                              t[i].dtype);
        for (int j = 0; j < t[i].rank; j++)
            l += (size_t)snprintf(header + l, sizeof header - l, "%s%llu", j ? ", " : "",
                                  (unsigned long long)t[i].shape[j]);
        snprintf(header + l, sizeof header - l, "], \"data_offsets\": [%zu, %zu]}", off, off + t[i].bytes);
        off += t[i].bytes;
    }
    strcat(header, "}");
    while (strlen(header) % 8) strcat(header, " ");
    uint64_t hl = strlen(header);
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(hl >> (8 * i));
    size_t total = 8 + hl + off;
    unsigned char *buf = malloc(total);
    if (!buf) return -1;
    memcpy(buf, lenb, 8);
    memcpy(buf + 8, header, hl);
    size_t p = 8 + hl;
    for (int i = 0; i < n; i++) {
        memcpy(buf + p, t[i].data, t[i].bytes);
        p += t[i].bytes;
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(buf);
        return -1;
    }
    fwrite(buf, 1, total - (cut < total ? cut : total), f);
    free(buf);
    return fclose(f);
}

#endif
