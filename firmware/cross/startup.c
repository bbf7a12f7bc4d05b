/* Reset handler and vector table for the Cortex-M3 image: copy .data, clear .bss, run main. */
#include <stdint.h>
#include <string.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
void sw_reset_handler(void);
void sw_default_handler(void);

void sw_default_handler(void)
{
    for (;;) {
    }
}

void sw_reset_handler(void)
{
    memcpy(&_sdata, &_sidata, (size_t)((char *)&_edata - (char *)&_sdata));
    memset(&_sbss, 0, (size_t)((char *)&_ebss - (char *)&_sbss));
    (void)main();
    for (;;) {
    }
}

/* Initial stack pointer, reset, NMI, HardFault, then the remaining core exceptions. */
__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(uintptr_t)&_estack, sw_reset_handler, sw_default_handler, sw_default_handler,
    sw_default_handler, sw_default_handler, sw_default_handler, 0, 0, 0, 0,
    sw_default_handler, sw_default_handler, 0, sw_default_handler, sw_default_handler,
};
