/* sparkwire firmware: CRC-32 (IEEE 802.3, reflected, init and final XOR 0xFFFFFFFF) of OTA chunks. */
#ifndef SW_CRC32_H
#define SW_CRC32_H
#include <stddef.h>
#include <stdint.h>
uint32_t sw_crc32(const uint8_t *data, size_t len);
#endif
