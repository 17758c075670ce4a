/* microbit.c -- QEMU's microbit (nRF51822, Cortex-M0): UART0 and TIMER0 (Nordic nRF51 Series
 * Reference Manual v3.0; QEMU hw/char/nrf51_uart.c, hw/timer/nrf51_timer.c).
 */
#if defined(TINYGMM_MACHINE_MICROBIT)
#include "bare.h"

#define REG(addr) (*(volatile uint32_t *)(addr))
#define UART0 0x40002000u
#define UART_STARTRX REG(UART0 + 0x000u)
#define UART_STARTTX REG(UART0 + 0x008u)
#define UART_RXDRDY REG(UART0 + 0x108u)
#define UART_TXDRDY REG(UART0 + 0x11Cu)
#define UART_ENABLE REG(UART0 + 0x500u)
#define UART_RXD REG(UART0 + 0x518u)
#define UART_TXD REG(UART0 + 0x51Cu)
#define UART_ENABLE_ON 4u
#define TIMER0 0x40008000u
#define TIMER_START REG(TIMER0 + 0x000u)
#define TIMER_CAPTURE0 REG(TIMER0 + 0x040u)
#define TIMER_MODE REG(TIMER0 + 0x504u)
#define TIMER_BITMODE REG(TIMER0 + 0x508u)
#define TIMER_PRESCALER REG(TIMER0 + 0x510u)
#define TIMER_CC0 REG(TIMER0 + 0x540u)
#define TIMER_BITMODE_32 3u

void bare_uart_init(void)
{
    UART_ENABLE = UART_ENABLE_ON;
    UART_STARTRX = 1u;
    UART_STARTTX = 1u;
}

int bare_uart_read(void)
{
    if (UART_RXDRDY == 0u) {
        return -1;
    }
    UART_RXDRDY = 0u; /* before reading RXD, which raises it again while its FIFO holds more */
    return (int)(UART_RXD & 0xFFu);
}

void bare_uart_write(uint8_t byte)
{
    UART_TXD = byte;
    while (UART_TXDRDY == 0u) {
    }
    UART_TXDRDY = 0u;
}

static uint32_t timer_now(void)
{
    TIMER_CAPTURE0 = 1u;
    return TIMER_CC0;
}

void bare_clock_init(void)
{
    TIMER_MODE = 0u; /* timer, not counter */
    TIMER_BITMODE = TIMER_BITMODE_32;
    TIMER_PRESCALER = 0u; /* 16 MHz */
    TIMER_START = 1u;
    (void)bare_ticks(timer_now());
}

/* Under -icount shift=10 an instruction lasts 1024 ns of virtual time and a tick 62.5 ns:
 * instructions = ticks * 62.5 / 1024 = ticks * 125 / 2048, rounded (exact: see bare_ticks). */
uint32_t bare_instructions(void)
{
    return (uint32_t)((bare_ticks(timer_now()) * 125u + 1024u) >> 11);
}
#endif
