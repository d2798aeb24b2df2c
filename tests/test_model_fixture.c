/* A minimal reader of the fixture's safetensors file: the 8-byte header length, the JSON header
 * (tensor name -> dtype, shape, data offsets), then the raw little-endian data. */
#include "test_model_fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float half_to_float(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? INFINITY : ldexpf((float)(m | 1024), e - 25);
    return (h & 0x8000) ? -v : v;
}

/* Finds "name":{"dtype":"F16","shape":[a,b,c,d],"data_offsets":[lo,hi]} in the header. */
static int find_tensor(const char *header, const char *name, uint32_t shape[4], uint64_t *lo, uint64_t *hi)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\":{", name);
    const char *p = strstr(header, key);
    if (!p) return -1;
    const char *dt = strstr(p, "\"dtype\":\"F16\""), *sh = strstr(p, "\"shape\":["), *of = strstr(p, "\"data_offsets\":[");
    const char *end = strchr(p, '}');
    if (!dt || !sh || !of || !end || dt > end || sh > end || of > end) return -1;
    unsigned long long a, b, c, d, l, h;
    if (sscanf(sh, "\"shape\":[%llu,%llu,%llu,%llu]", &a, &b, &c, &d) != 4) return -1;
    if (sscanf(of, "\"data_offsets\":[%llu,%llu]", &l, &h) != 2) return -1;
    shape[0] = (uint32_t)a, shape[1] = (uint32_t)b, shape[2] = (uint32_t)c, shape[3] = (uint32_t)d;
    *lo = l, *hi = h;
    return 0;
}

static float *read_tensor(FILE *f, long data_start, const char *header, const char *name, uint32_t shape[4])
{
    uint64_t lo, hi;
    if (find_tensor(header, name, shape, &lo, &hi)) return NULL;
    uint64_t n = (uint64_t)shape[0] * shape[1] * shape[2] * shape[3];
    if (hi - lo != n * 2) return NULL;
    uint16_t *raw = malloc(n * 2);
    float *out = malloc(n * sizeof *out);
    if (!raw || !out || fseek(f, data_start + (long)lo, SEEK_SET) != 0 || fread(raw, 2, n, f) != n) {
        free(raw);
        free(out);
        return NULL;
    }
    for (uint64_t i = 0; i < n; i++) out[i] = half_to_float(raw[i]);
    free(raw);
    return out;
}

int fixture_load(const char *path, fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    FILE *f = fopen(path, "rb");
    uint64_t hlen = 0;
    char *header = NULL;
    if (!f || fread(&hlen, 8, 1, f) != 1 || hlen > (1u << 20) || !(header = calloc(hlen + 1, 1)) ||
        fread(header, 1, hlen, f) != hlen) {
        fprintf(stderr, "%s: cannot read the safetensors header\n", path);
        if (f) fclose(f);
        free(header);
        return -1;
    }
    uint32_t ks[4], vs[4], qs[4];
    long start = 8 + (long)hlen;
    fx->k = read_tensor(f, start, header, "k", ks);
    fx->v = read_tensor(f, start, header, "v", vs);
    fx->q = read_tensor(f, start, header, "q", qs);
    fclose(f);
    free(header);
    if (!fx->k || !fx->v || !fx->q || memcmp(ks, vs, sizeof ks) || qs[0] != ks[0] || qs[2] != ks[2] ||
        qs[3] != ks[3] || qs[1] % ks[1]) {
        fprintf(stderr, "%s: tensors k, v, q missing or of inconsistent shapes\n", path);
        fixture_free(fx);
        return -1;
    }
    fx->layers = ks[0], fx->kv_heads = ks[1], fx->tokens = ks[2], fx->head_dim = ks[3], fx->q_heads = qs[1];
    return 0;
}

void fixture_free(fixture *fx)
{
    free(fx->k);
    free(fx->v);
    free(fx->q);
    memset(fx, 0, sizeof *fx);
}
