/* A machine without the GPU backend's driver library (PKV_TEST_BACKEND=vulkan or opencl): the test
 * points the backend's loader at a library that does not exist. The backend must refuse with a
 * reason, AUTO must still start another backend and say why it passed this one over, and the
 * device list must leave the backend out. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void missing_driver_has_a_reason_and_auto_falls_back(void **state)
{
    (void)state;
    const pkv_backend_kind kind = tu_backend();
    const char *var = kind == PKV_BACKEND_VULKAN ? "PKV_VULKAN_LIBRARY" : "PKV_OPENCL_LIBRARY";
    if (kind != PKV_BACKEND_VULKAN && kind != PKV_BACKEND_OPENCL) fail_msg("PKV_TEST_BACKEND must be vulkan or opencl");
    setenv(var, "/nonexistent/libdriver.so.1", 1);
    unsetenv("PKV_BACKEND");

    pkv_context_params p = pkv_context_params_default();
    p.backend = kind;
    pkv_context *ctx = NULL;
    assert_int_equal(pkv_context_create(&p, &ctx), PKV_ERR_BACKEND_UNAVAILABLE);
    assert_null(ctx);
    assert_non_null(strstr(pkv_last_error(), "not found"));

    p.backend = PKV_BACKEND_AUTO;
    TU_OK(pkv_context_create(&p, &ctx));
    pkv_device_info info = {.struct_size = sizeof info};
    char why[512], expect[64];
    TU_OK(pkv_context_device(ctx, &info, why, sizeof why));
    assert_int_not_equal(info.backend, kind);
    snprintf(expect, sizeof expect, "%s: ", pkv_backend_name(kind));
    assert_non_null(strstr(why, expect));
    assert_non_null(strstr(why, "not found"));
    TU_OK(pkv_context_free(ctx));

    pkv_device_info devs[16] = {{.struct_size = sizeof(pkv_device_info)}};
    size_t n = 0;
    TU_OK(pkv_list_devices(NULL, devs, 16, &n));
    for (size_t i = 0; i < n && i < 16; i++) assert_int_not_equal(devs[i].backend, kind);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(missing_driver_has_a_reason_and_auto_falls_back)};
    return tu_run_tests(tests, NULL, NULL);
}
