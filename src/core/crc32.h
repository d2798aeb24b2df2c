#ifndef PKV_CRC32_H
#define PKV_CRC32_H
#include <stddef.h>
#include <stdint.h>
/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32). Start with crc = 0. */
uint32_t pkv_crc32(uint32_t crc, const void *data, size_t n);
#endif
