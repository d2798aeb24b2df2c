/* The public fp16 conversions: arrays through the shared scalar functions. */
#include "f16.h"
#include "internal.h"

pkv_status pkv_f32_to_f16_array(const float *src, uint16_t *dst, size_t n)
{
    if (n && (!src || !dst)) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_f32_to_f16_array: null argument");
    for (size_t i = 0; i < n; i++) dst[i] = (uint16_t)pkv_f32_to_f16(src[i]);
    return PKV_OK;
}

pkv_status pkv_f16_to_f32_array(const uint16_t *src, float *dst, size_t n)
{
    if (n && (!src || !dst)) return pkv_fail(NULL, PKV_ERR_INVALID_ARGUMENT, "pkv_f16_to_f32_array: null argument");
    for (size_t i = 0; i < n; i++) dst[i] = pkv_f16_to_f32(src[i]);
    return PKV_OK;
}
