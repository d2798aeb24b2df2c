/* IEEE binary16 <-> binary32, round to nearest even, saturating to +-65504 (docs/NUMERICS.md):
 * pkv_f32_to_f16 and pkv_f16_to_f32 of shaders/common/pkv_math.h, the same functions the GPU
 * kernels run. */
#ifndef PKV_F16_H
#define PKV_F16_H

#include "pkv_math.h"

#define PKV_F16_MAX 65504.0f

#endif
