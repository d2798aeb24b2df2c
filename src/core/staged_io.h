#ifndef PKV_STAGED_IO_H
#define PKV_STAGED_IO_H
#include "internal.h"

/* PKV_OK when the cache runs on backend `kind`; else PKV_ERR_UNSUPPORTED naming fn (or
 * PKV_ERR_INVALID_ARGUMENT for a NULL cache). */
pkv_status pkv_staged_check(const pkv_cache *cache, pkv_backend_kind kind, const char *fn);

#endif
