/* bare/main.c -- the protocol over a polled UART on a bare-metal CPU-class machine (docs/protocol.md).
 *
 * The machine file supplies the UART and an instruction counter (bare.h); start-up code runs
 * before main: cortexm_start.c on Cortex-M, picolibc's crt0 on RISC-V. bench reports
 * instructions, exact under QEMU's -icount.
 */
#include "bare.h"
#include "tinygmm_proto.h"

#ifndef TINYGMM_TARGET
#define TINYGMM_TARGET "bare"
#endif
/* Nothing is lost whatever the host has in flight (bare.h): as much as a line holds, like native. */
#ifndef TINYGMM_RX_BUFFER_BYTES
#define TINYGMM_RX_BUFFER_BYTES 4096
#endif

static void uart_write_all(void *user, const uint8_t *data, size_t len)
{
    (void)user;
    while (len-- > 0) {
        bare_uart_write(*data++);
    }
}

int main(void)
{
    static tinygmm_proto proto;
    tinygmm_proto_config cfg;
    bare_uart_init();
    bare_clock_init();
    cfg.target = TINYGMM_TARGET;
    cfg.rx_buffer = TINYGMM_RX_BUFFER_BYTES;
    cfg.clock_unit = "instructions";
    cfg.clock = bare_instructions;
    cfg.write = uart_write_all;
    cfg.user = NULL;
    cfg.poll = NULL; /* the UART holds back what the firmware has not read (bare.h) */
    tinygmm_proto_init(&proto, &cfg);
    tinygmm_proto_banner(&proto);
    for (;;) {
        const int c = bare_uart_read();
        if (c >= 0) {
            tinygmm_proto_feed(&proto, (uint8_t)c);
        }
    }
}
