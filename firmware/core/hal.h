/* sparkwire firmware: the hardware abstraction the core runs on. */
#ifndef SW_HAL_H
#define SW_HAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct sw_hal {
    void *ctx;
    /* Sends all len bytes; returns 0, or -1 when the connection is gone. */
    int (*send)(void *ctx, const uint8_t *buf, size_t len);
    /* Non-blocking receive: bytes read (> 0), 0 when nothing is waiting, -1 when the peer closed or
     * the connection failed. */
    int (*recv)(void *ctx, uint8_t *buf, size_t len);
    /* Milliseconds from any fixed start; may wrap. */
    uint32_t (*millis)(void *ctx);
    /* Fills buf with random bytes; returns 0 or -1. The core itself draws none today (RSA padding is the
     * crypto port's job); a port without its own generator takes its randomness from here. */
    int (*random)(void *ctx, uint8_t *buf, size_t len);
} sw_hal;

#endif
