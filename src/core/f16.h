/* IEEE binary16 <-> binary32, round-to-nearest-even, saturating to +-65504 (docs/NUMERICS.md). */
#ifndef PKV_F16_H
#define PKV_F16_H
#include <stddef.h>
#include <stdint.h>

uint16_t pkv_f32_to_f16(float f);
float pkv_f16_to_f32(uint16_t h);
#define PKV_F16_MAX 65504.0f

#endif
