/* simavr_cycles.c -- run an ATmega328P ELF in simavr and print exact cycle counts of marked code.
 *
 * The firmware brackets each measured call with writes to GPIOR0 (1 = start, 2..255 = stop, the
 * value tags the kind of call), then writes a result byte to GPIOR1, which prints
 * "<tag> <cycles> <result>". Interrupts stay off in the firmware, so counts are
 * exact and repeatable. The run ends when the firmware does cli(); sleep_cpu().
 * Build: gcc -O2 -I/usr/include/simavr simavr_cycles.c -lsimavr -lutil -o simavr_cycles
 * Usage: simavr_cycles firmware.elf [max_cycles]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <simavr/sim_avr.h>
#include <simavr/sim_elf.h>
#include <simavr/sim_io.h>

#define GPIOR0_DATA AVR_IO_TO_DATA(0x1E)
#define GPIOR1_DATA AVR_IO_TO_DATA(0x2A)

static avr_cycle_count_t start_cycle, pending_cycles;
static unsigned pending_tag;

static void on_result(struct avr_t *avr, avr_io_addr_t addr, uint8_t v, void *param)
{
    (void)avr; (void)addr; (void)param;
    if (pending_tag) {
        printf("%u %" PRIu64 " %u\n", pending_tag, (uint64_t)pending_cycles, (unsigned)v);
        pending_tag = 0;
    }
}

static void on_marker(struct avr_t *avr, avr_io_addr_t addr, uint8_t v, void *param)
{
    (void)addr; (void)param;
    if (v == 1) {
        start_cycle = avr->cycle;
    } else {
        pending_cycles = avr->cycle - start_cycle;
        pending_tag = v;
    }
}

int main(int argc, char **argv)
{
    elf_firmware_t fw = {0};
    avr_t *avr;
    int state;
    uint64_t max_cycles = argc > 2 ? strtoull(argv[2], NULL, 10) : 4000000000ull;
    if (argc < 2) {
        fprintf(stderr, "usage: %s firmware.elf [max_cycles]\n", argv[0]);
        return 2;
    }
    if (elf_read_firmware(argv[1], &fw) != 0) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 2;
    }
    avr = avr_make_mcu_by_name("atmega328p");
    if (!avr) {
        fprintf(stderr, "simavr has no atmega328p\n");
        return 2;
    }
    avr_init(avr);
    avr->frequency = 16000000;
    avr->log = 0;
    avr_load_firmware(avr, &fw);
    avr_register_io_write(avr, GPIOR0_DATA, on_marker, NULL);
    avr_register_io_write(avr, GPIOR1_DATA, on_result, NULL);
    do {
        state = avr_run(avr);
    } while (state != cpu_Done && state != cpu_Crashed && avr->cycle < max_cycles);
    fflush(stdout);
    if (state == cpu_Crashed) {
        fprintf(stderr, "firmware crashed at pc 0x%x\n", (unsigned)avr->pc);
        return 1;
    }
    return state == cpu_Done ? 0 : 3;
}
