/* riscv_virt.c -- QEMU's riscv32 virt machine: the NS16550A UART at 0x10000000 and the instret
 * counter (QEMU hw/riscv/virt.c, hw/char/serial.c; RISC-V unprivileged ISA, "Zicntr").
 * Start-up is picolibc's crt0 (stack, .data, .bss, thread-local errno for expf/logf).
 */
#if defined(TINYGMM_MACHINE_RISCV_VIRT)
#include "bare.h"

#define REG8(addr) (*(volatile uint8_t *)(addr))
#define UART0 0x10000000u
#define UART_RBR_THR REG8(UART0 + 0u)
#define UART_IER REG8(UART0 + 1u)
#define UART_LSR REG8(UART0 + 5u)
#define LSR_DATA_READY 0x01u
#define LSR_THR_EMPTY 0x20u

void bare_uart_init(void) { UART_IER = 0u; }

int bare_uart_read(void)
{
    return (UART_LSR & LSR_DATA_READY) ? (int)UART_RBR_THR : -1;
}

void bare_uart_write(uint8_t byte)
{
    while ((UART_LSR & LSR_THR_EMPTY) == 0u) {
    }
    UART_RBR_THR = byte;
}

void bare_clock_init(void) {}

/* QEMU's instret is its virtual clock in ns under -icount: with shift=0 that is one per
 * instruction. The multilib is rv32im(c) without Zicsr in -march, so the assembler is told here. */
uint32_t bare_instructions(void)
{
    uint32_t n;
    __asm volatile(".option push\n\t.option arch, +zicsr\n\tcsrr %0, instret\n\t.option pop" : "=r"(n));
    return n;
}
#endif
