#include "device_select.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int type_rank(pkv_device_type t)
{
    switch (t) {
    case PKV_DEVICE_DISCRETE_GPU: return 0;
    case PKV_DEVICE_INTEGRATED_GPU: return 1;
    case PKV_DEVICE_VIRTUAL_GPU: return 2;
    case PKV_DEVICE_OTHER: return 3;
    default: return 4;
    }
}

int pkv_select_device(const pkv_context_params *params, const pkv_device_info *devs, size_t n, char *why,
                      size_t why_len)
{
    if (n == 0) {
        snprintf(why, why_len, "no device found");
        return -1;
    }
    int index = params ? params->device_index : -1;
    const char *name = params ? params->device_name : NULL;
    const char *env = getenv("PKV_DEVICE");
    if (index < 0 && !name && env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == 0) index = (int)v;
        else name = env;
    }
    if (index >= 0) {
        if ((size_t)index < n) return index;
        snprintf(why, why_len, "device index %d out of range (%zu devices)", index, n);
        return -1;
    }
    if (name) {
        for (size_t i = 0; i < n; i++)
            if (strstr(devs[i].name, name)) return (int)i;
        snprintf(why, why_len, "no device name contains \"%s\"", name);
        return -1;
    }
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (type_rank(devs[i].type) < type_rank(devs[best].type)) best = i;
    return (int)best;
}
