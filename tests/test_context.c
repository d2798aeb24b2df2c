#define _POSIX_C_SOURCE 200809L
/* Contexts: what AUTO picks and why, device listing, backend names, bad requests. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void auto_prefers_a_gpu_and_passes_over_cpu_type_devices(void **state)
{
    (void)state;
    unsetenv("PKV_BACKEND");
    unsetenv("PKV_DEVICE");
    pkv_device_info devs[64] = {{.struct_size = sizeof(pkv_device_info)}};
    size_t n = 0;
    TU_OK(pkv_list_devices(NULL, devs, 64, &n));
    assert_true(n >= 1 && n <= 64);
    int gpu = 0, has_cpu_backend = 0;
    for (size_t i = 0; i < n; i++) {
        gpu |= devs[i].backend != PKV_BACKEND_CPU && devs[i].type != PKV_DEVICE_CPU;
        has_cpu_backend |= devs[i].backend == PKV_BACKEND_CPU;
        assert_true(strlen(devs[i].name) > 0);
    }
    assert_true(has_cpu_backend);
    pkv_context *ctx;
    TU_OK(pkv_context_create(NULL, &ctx));
    pkv_device_info info = {.struct_size = sizeof info};
    char why[512];
    TU_OK(pkv_context_device(ctx, &info, why, sizeof why));
    if (gpu) assert_true(info.backend != PKV_BACKEND_CPU && info.type != PKV_DEVICE_CPU);
    else assert_int_equal(info.backend, PKV_BACKEND_CPU);
    assert_non_null(strstr(why, "auto: chose"));
    /* Every other backend that has only a CPU device is named with its reason. */
    for (size_t i = 0; i < n; i++)
        if (!gpu && devs[i].backend != PKV_BACKEND_CPU) assert_non_null(strstr(why, "only a CPU device"));
    pkv_context_free(ctx);
}

static void naming_a_backend_or_device_overrides_the_preference(void **state)
{
    (void)state;
    pkv_device_info devs[64] = {{.struct_size = sizeof(pkv_device_info)}};
    size_t n = 0;
    TU_OK(pkv_list_devices(NULL, devs, 64, &n));
    for (size_t i = 0; i < n; i++) {
        if (devs[i].backend == PKV_BACKEND_CPU) continue;
        pkv_context_params p = pkv_context_params_default();
        p.backend = devs[i].backend;
        p.device_name = devs[i].name;
        pkv_context *ctx;
        TU_OK(pkv_context_create(&p, &ctx));
        pkv_device_info info = {.struct_size = sizeof info};
        TU_OK(pkv_context_device(ctx, &info, NULL, 0));
        assert_int_equal(info.backend, devs[i].backend);
        assert_string_equal(info.name, devs[i].name);
        pkv_context_free(ctx);
    }
    pkv_context_params p = pkv_context_params_default();
    p.device_name = "no device is called this";
    pkv_context *ctx = NULL;
    assert_int_equal(pkv_context_create(&p, &ctx), PKV_ERR_BACKEND_UNAVAILABLE);
    assert_null(ctx);
    assert_non_null(strstr(pkv_last_error(), "no device name contains"));
}

static void backend_names_round_trip(void **state)
{
    (void)state;
    for (int k = 0; k < PKV_BACKEND_COUNT; k++) {
        pkv_backend_kind back;
        TU_OK(pkv_backend_from_name(pkv_backend_name((pkv_backend_kind)k), &back));
        assert_int_equal(back, k);
    }
    pkv_backend_kind b;
    assert_int_equal(pkv_backend_from_name("cuda", &b), PKV_ERR_INVALID_ARGUMENT);
    setenv("PKV_BACKEND", "cuda", 1);
    pkv_context *ctx = NULL;
    assert_int_equal(pkv_context_create(NULL, &ctx), PKV_ERR_INVALID_ARGUMENT);
    unsetenv("PKV_BACKEND");
    assert_int_equal(pkv_list_devices(NULL, NULL, 4, NULL), PKV_ERR_INVALID_ARGUMENT);
    assert_string_equal(pkv_version_string(), PKV_VERSION_STRING);
    assert_int_equal(pkv_version_number(), PKV_VERSION_NUMBER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(auto_prefers_a_gpu_and_passes_over_cpu_type_devices),
        cmocka_unit_test(naming_a_backend_or_device_overrides_the_preference),
        cmocka_unit_test(backend_names_round_trip),
    };
    return tu_run_tests(tests, NULL, NULL);
}
