/* bare.h -- what the bare-metal protocol loop (main.c) needs from a machine: a polled UART and a
 * counter of executed instructions. Exactly one machine file (mps2.c, microbit.c, riscv_virt.c)
 * is compiled in, chosen by the TINYGMM_MACHINE_* define of the board manifest.
 *
 * These machines run in QEMU only (the CPU classes of the board table): QEMU's UART models take
 * the next byte only once the firmware has read the last, so a polled UART loses nothing and
 * bytes in flight wait in the host's socket.
 */
#ifndef TINYGMM_BARE_H
#define TINYGMM_BARE_H

#include <stdint.h>

void bare_uart_init(void);
/* The next received byte, or -1 when none is waiting. */
int bare_uart_read(void);
/* Sends one byte, waiting while the transmitter is full. */
void bare_uart_write(uint8_t byte);

void bare_clock_init(void);
/* Instructions executed (modulo 2^32), exact under QEMU's -icount: differences are what count. */
uint32_t bare_instructions(void);

/* A free-running 32-bit tick counter of QEMU's virtual clock, extended to 64 bits (read at least
 * once per wrap: bench reads it before and after each run). Under -icount shift=10 an
 * instruction lasts 1024 ns of virtual time; a counter started on an instruction boundary has
 * ticks = floor(I * 1024 / T) after I instructions, T its tick in ns, so ticks * T / 1024 lies
 * less than T / 1024 (< 0.07 for T <= 62.5 ns) below I, and rounding it gives I exactly. */
static inline uint64_t bare_ticks(uint32_t now)
{
    static uint32_t last;
    static uint64_t total;
    total += (uint32_t)(now - last);
    last = now;
    return total;
}

#endif /* TINYGMM_BARE_H */
