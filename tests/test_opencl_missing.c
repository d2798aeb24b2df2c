/* A machine without OpenCL: run with PKV_OPENCL_LIBRARY naming a library that does not exist. The
 * OpenCL backend must refuse with a reason, and AUTO must still start another backend. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void opencl_unavailable_has_a_reason(void **state)
{
    (void)state;
    assert_non_null(getenv("PKV_OPENCL_LIBRARY"));
    pkv_context_params p = pkv_context_params_default();
    p.backend = PKV_BACKEND_OPENCL;
    pkv_context *ctx = NULL;
    assert_int_equal(pkv_context_create(&p, &ctx), PKV_ERR_BACKEND_UNAVAILABLE);
    assert_null(ctx);
    assert_non_null(strstr(pkv_last_error(), "not found"));

    p.backend = PKV_BACKEND_AUTO;
    TU_OK(pkv_context_create(&p, &ctx));
    pkv_device_info info;
    char why[512];
    TU_OK(pkv_context_device(ctx, &info, why, sizeof why));
    assert_int_not_equal(info.backend, PKV_BACKEND_OPENCL);
    TU_OK(pkv_context_free(ctx));

    pkv_device_info devs[16];
    size_t n = 0;
    TU_OK(pkv_list_devices(NULL, devs, 16, &n));
    for (size_t i = 0; i < n && i < 16; i++) assert_int_not_equal(devs[i].backend, PKV_BACKEND_OPENCL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(opencl_unavailable_has_a_reason)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
