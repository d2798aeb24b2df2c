#ifndef PKV_DEVICE_SELECT_H
#define PKV_DEVICE_SELECT_H
#include <stddef.h>
#include "patternkv.h"

/* Picks one of n devices of a backend: params->device_index (or env PKV_DEVICE as an index) if >= 0,
 * else the first whose name contains params->device_name (or env PKV_DEVICE when not a number),
 * else the best type: discrete > integrated > virtual > other > cpu, first listed on ties.
 * Returns the index into `devs`, or -1 with a reason in `why`. */
int pkv_select_device(const pkv_context_params *params, const pkv_device_info *devs, size_t n, char *why,
                      size_t why_len);

#endif
