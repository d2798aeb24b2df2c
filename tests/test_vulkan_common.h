/* Helpers of the Vulkan tests: a Vulkan context that FAILS the test in CI (CI=true) when no Vulkan
 * device is found and skips it, saying why, elsewhere. */
#ifndef PKV_TEST_VULKAN_COMMON_H
#define PKV_TEST_VULKAN_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static inline int tv_in_ci(void)
{
    const char *ci = getenv("CI");
    return ci && (strcmp(ci, "true") == 0 || strcmp(ci, "1") == 0);
}

static inline pkv_context *tv_context_with(pkv_context_params *p)
{
    p->backend = PKV_BACKEND_VULKAN;
    pkv_context *ctx = NULL;
    pkv_status st = pkv_context_create(p, &ctx);
    if (st != PKV_OK) {
        if (tv_in_ci()) fail_msg("CI: no Vulkan device: %s (%s)", pkv_status_string(st), pkv_last_error());
        print_message("skipping: no Vulkan device (%s)\n", pkv_last_error());
        skip();
    }
    return ctx;
}

static inline pkv_context *tv_context(void)
{
    pkv_context_params p = pkv_context_params_default();
    return tv_context_with(&p);
}

static inline pkv_context *tv_cpu_context(void)
{
    pkv_context_params p = pkv_context_params_default();
    p.backend = PKV_BACKEND_CPU;
    pkv_context *ctx = NULL;
    TU_OK(pkv_context_create(&p, &ctx));
    return ctx;
}

static inline uint8_t *tv_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(len > 0 ? (size_t)len : 1);
    *n = p && fread(p, 1, (size_t)len, f) == (size_t)len ? (size_t)len : 0;
    fclose(f);
    return p;
}

#endif
