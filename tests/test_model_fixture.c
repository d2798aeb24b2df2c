/* The fixture through the CLI's safetensors reader (bench/pkv/safetensors.c): k, v and q as fp32. */
#include "test_model_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"

static float *read_tensor(const char *path, const char *name, uint32_t shape[4])
{
    cli_tensor t;
    char err[512];
    if (cli_safetensors_load(path, name, &t, err, sizeof err) != 0) {
        fprintf(stderr, "%s: tensor %s: %s\n", path, name, err);
        return NULL;
    }
    if (t.rank != 4) {
        fprintf(stderr, "%s: tensor %s has rank %u, not 4\n", path, name, t.rank);
        cli_tensor_free(&t);
        return NULL;
    }
    for (int i = 0; i < 4; i++) shape[i] = (uint32_t)t.shape[i];
    return t.data; /* ours now: cli_tensor_free is not called */
}

int fixture_load(const char *path, fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    uint32_t ks[4] = {0}, vs[4] = {0}, qs[4] = {0};
    fx->k = read_tensor(path, "k", ks);
    fx->v = read_tensor(path, "v", vs);
    fx->q = read_tensor(path, "q", qs);
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
