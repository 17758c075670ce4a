/* cortexm_start.c -- start-up code of the Cortex-M machines (mps2-an386, mps2-an500, microbit).
 *
 * The core reads its initial stack pointer and reset handler from the vector table at address 0.
 * The reset handler copies .data from flash, zeroes .bss, turns the FPU on where the build uses
 * one (without that the first float instruction faults), and calls main. Any fault stops in a
 * loop: the host then sees no reply and times out, naming the emulator. Symbols from
 * cortexm.ld, which each machine's linker script includes.
 */
#if defined(__arm__)
#include <stdint.h>

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[], __stack_top[];
int main(void);

/* CPACR of the System Control Block: full access to coprocessors 10 and 11 (the FPU). */
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define CPACR_CP10_CP11_FULL (0xFu << 20)

void bare_reset(void);
void bare_fault(void);

void bare_reset(void)
{
    const uint32_t *from = __data_load;
    uint32_t *to;
#if defined(__ARM_FP)
    SCB_CPACR |= CPACR_CP10_CP11_FULL;
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    for (to = __data_start; to < __data_end;) {
        *to++ = *from++;
    }
    for (to = __bss_start; to < __bss_end;) {
        *to++ = 0;
    }
    (void)main();
    bare_fault();
}

void bare_fault(void)
{
    for (;;) {
    }
}

typedef void (*bare_handler)(void);

/* Initial SP, reset, then NMI, HardFault and the ARMv7-M faults (reserved on ARMv6-M). */
__attribute__((section(".vectors"), used)) static const bare_handler bare_vectors[16] = {
    (bare_handler)(uintptr_t)__stack_top, bare_reset, bare_fault, bare_fault, bare_fault, bare_fault, bare_fault,
};
#endif
