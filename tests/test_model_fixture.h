/* Reads the committed KV fixture (data/tinyllm/kv_fixture.safetensors, written by tools/dump_kv.py)
 * for the model tests: k, v [layers][kv_heads][tokens][head_dim] and q [layers][q_heads][tokens][head_dim],
 * fp16 on disk, fp32 here. */
#ifndef PKV_TEST_MODEL_FIXTURE_H
#define PKV_TEST_MODEL_FIXTURE_H

#include <stdint.h>

typedef struct fixture {
    uint32_t layers, kv_heads, q_heads, tokens, head_dim;
    float *k, *v, *q;
} fixture;

/* 0 on success; on failure -1 and a message on stderr. */
int fixture_load(const char *path, fixture *f);
void fixture_free(fixture *f);

static inline const float *fixture_row(const fixture *f, const float *base, uint32_t heads, uint32_t layer,
                                       uint32_t head, uint32_t t)
{
    return base + (((uint64_t)layer * heads + head) * f->tokens + t) * f->head_dim;
}

#endif
