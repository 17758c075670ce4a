/* mps2.c -- QEMU's mps2-an386 (Cortex-M4F) and mps2-an500 (Cortex-M7): CMSDK APB UART0 and the
 * FPGAIO counter (QEMU hw/char/cmsdk-apb-uart.c, hw/misc/mps2-fpgaio.c; ARM AN386 and AN500).
 */
#if defined(TINYGMM_MACHINE_MPS2)
#include "bare.h"

#define REG(addr) (*(volatile uint32_t *)(addr))
#define UART0 0x40004000u
#define UART_DATA REG(UART0 + 0x00u)
#define UART_STATE REG(UART0 + 0x04u)
#define UART_CTRL REG(UART0 + 0x08u)
#define UART_BAUDDIV REG(UART0 + 0x10u)
#define STATE_TX_FULL 0x1u
#define STATE_RX_FULL 0x2u
#define CTRL_TX_EN 0x1u
#define CTRL_RX_EN 0x2u
/* Counts at 25 MHz of QEMU's virtual clock. */
#define FPGAIO_COUNTER REG(0x40028018u)

void bare_uart_init(void)
{
    UART_BAUDDIV = 16u; /* the smallest divider the UART accepts; QEMU ignores the rate */
    UART_CTRL = CTRL_TX_EN | CTRL_RX_EN;
}

int bare_uart_read(void)
{
    return (UART_STATE & STATE_RX_FULL) ? (int)(UART_DATA & 0xFFu) : -1;
}

void bare_uart_write(uint8_t byte)
{
    while (UART_STATE & STATE_TX_FULL) {
    }
    UART_DATA = byte;
}

void bare_clock_init(void) { (void)bare_ticks(FPGAIO_COUNTER); }

/* Under -icount shift=10 an instruction lasts 1024 ns of virtual time and a counter tick 40 ns:
 * instructions = ticks * 40 / 1024 = ticks * 5 / 128, rounded (exact: see bare_ticks). */
uint32_t bare_instructions(void)
{
    return (uint32_t)((bare_ticks(FPGAIO_COUNTER) * 5u + 64u) >> 7);
}
#endif
