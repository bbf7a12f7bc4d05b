/* cloudmon: 16- and 32-bit fields of a capture file, in the file's byte order (swapped: not the host's). */
#ifndef CLOUDMON_RDSWAP_H
#define CLOUDMON_RDSWAP_H

#include <stdbool.h>
#include <stdint.h>

static inline uint16_t cm_rd16(const uint8_t *p, bool swapped)
{
    uint16_t v;
    __builtin_memcpy(&v, p, 2);
    return swapped ? __builtin_bswap16(v) : v;
}

static inline uint32_t cm_rd32(const uint8_t *p, bool swapped)
{
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return swapped ? __builtin_bswap32(v) : v;
}

#endif
