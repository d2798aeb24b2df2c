#include "crc32.h"

#include <string.h>

static uint32_t crc_byte(uint32_t crc, uint8_t b)
{
    crc ^= b;
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    return crc;
}

/* Long inputs (cache files hold hundreds of MB) go 8 bytes at a time through tables ("slicing by 8"),
 * built per call on the stack: 2048 entries cost microseconds and need no shared state. */
enum { SLICE_MIN = 16384 };

uint32_t pkv_crc32(uint32_t crc, const void *data, size_t n)
{
    const uint8_t *p = data;
    crc = ~crc;
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (n >= SLICE_MIN) {
        uint32_t t[8][256];
        for (uint32_t i = 0; i < 256; i++) t[0][i] = crc_byte(0, (uint8_t)i);
        for (uint32_t i = 0; i < 256; i++)
            for (int s = 1; s < 8; s++) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 255u];
        for (; n >= 8; n -= 8, p += 8) {
            uint32_t lo, hi;
            memcpy(&lo, p, 4), memcpy(&hi, p + 4, 4); /* little-endian words, as the tables assume */
            lo ^= crc;
            crc = t[7][lo & 255u] ^ t[6][(lo >> 8) & 255u] ^ t[5][(lo >> 16) & 255u] ^ t[4][lo >> 24] ^
                  t[3][hi & 255u] ^ t[2][(hi >> 8) & 255u] ^ t[1][(hi >> 16) & 255u] ^ t[0][hi >> 24];
        }
    }
#endif
    while (n--) crc = crc_byte(crc, *p++);
    return ~crc;
}
