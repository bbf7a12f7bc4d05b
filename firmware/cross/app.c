/* A minimal device application for the Cortex-M3 image: the stack with one function, two variables and
 * an event, over a HAL whose transport is a stub (the Core's CC3000 driver is out of scope). It exists
 * to link the core the way a firmware would and to measure its flash and RAM. */
#include <stdbool.h>
#include <stdint.h>

#include "device.h"

static volatile uint32_t ticks;   /* a SysTick handler would advance this */

static int hal_send(void *ctx, const uint8_t *buf, size_t len)
{
    (void)ctx;
    (void)buf;
    (void)len;
    return -1;
}

static int hal_recv(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    (void)buf;
    (void)len;
    return -1;
}

static uint32_t hal_millis(void *ctx)
{
    (void)ctx;
    return ticks;
}

static int hal_random(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(ticks * 1103515245u + 12345u + i);
    return 0;
}

static int brew(void *user, const char *arg)
{
    (void)user;
    int n = 0;
    while (arg[n])
        n++;
    return n;
}

static sw_device dev;
static int32_t temperature = 21;
static bool ready = true;
/* Key slots as on the Core's external flash (docs/protocol.md 5.6); erased here. */
static const uint8_t device_key[612] = {0xff};
static const uint8_t server_key[294] = {0xff};

int main(void)
{
    static const sw_hal hal = {0, hal_send, hal_recv, hal_millis, hal_random};
    sw_device_config cfg;
    sw_device_defaults(&cfg, 1);
    cfg.private_key = device_key;
    cfg.private_key_len = sizeof device_key;
    cfg.server_key = server_key;
    cfg.server_key_len = sizeof server_key;
    sw_device_init(&dev, &cfg, &hal);
    sw_device_function(&dev, "brew", brew, 0);
    sw_device_variable(&dev, "temperature", SW_VAR_INT, &temperature);
    sw_device_variable(&dev, "ready", SW_VAR_BOOL, &ready);
    for (;;) {
        sw_device_start(&dev);
        while (sw_device_poll(&dev) == SW_RUNNING)
            if (sw_device_connected(&dev))
                sw_device_publish(&dev, "temperature", (const uint8_t *)"21", 2, 60, false);
        ticks++;
    }
}
