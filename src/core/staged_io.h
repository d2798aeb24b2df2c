#ifndef PKV_STAGED_IO_H
#define PKV_STAGED_IO_H
#include "internal.h"

/* How a backend reads and writes an application buffer (a VkBuffer or cl_mem as a 64-bit handle). */
typedef struct pkv_app_io {
    const char *fn; /* the public function, for messages */
    pkv_status (*read)(pkv_cache *c, const char *fn, uint64_t buf, size_t offset, void *host, size_t bytes);
    pkv_status (*write)(pkv_cache *c, const char *fn, uint64_t buf, size_t offset, const void *host, size_t bytes);
} pkv_app_io;

pkv_status pkv_staged_check(const pkv_cache *cache, pkv_backend_kind kind, const char *fn);
pkv_status pkv_staged_append(pkv_cache *cache, const pkv_app_io *io, pkv_seq seq, uint32_t layer, uint32_t n_tokens,
                             uint64_t k, size_t k_offset, uint64_t v, size_t v_offset, pkv_dtype dtype);
pkv_status pkv_staged_attention(pkv_cache *cache, const pkv_app_io *io, const pkv_attention_params *params, uint64_t q,
                                size_t q_offset, uint64_t out, size_t out_offset);

#endif
