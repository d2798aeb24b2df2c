/* IEEE binary16 <-> binary32 for the CLI's file readers (the library has its own, internal). */
#ifndef PKV_CLI_F16_H
#define PKV_CLI_F16_H

#include <stdint.h>

float cli_f16_to_f32(uint16_t h);
uint16_t cli_f32_to_f16(float f); /* round to nearest even; overflow gives Inf */

#endif
