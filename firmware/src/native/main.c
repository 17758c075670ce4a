/* native/main.c -- the protocol over stdin/stdout for host runs (docs/protocol.md).
 *
 * Reads whatever bytes are available and feeds them one by one; every reply is written with
 * write(2) as soon as it is complete (no stdio buffering). Exits 0 at end of input.
 *
 * A terminal in line mode (ICANON set when the program starts) is a person's: it is left as it is,
 * so its line discipline echoes and edits what is typed, hands over whole lines, writes line ends
 * as CR LF, and ends the program on Ctrl-D (end of input), Ctrl-C or Ctrl-\ (signals). Any other
 * terminal or pseudo-terminal (a host's, which PtyTransport sets raw before starting the program,
 * like a serial port) is switched to raw mode, so the line discipline neither echoes requests nor
 * rewrites line ends. Pipes are used as they are.
 */
#define _DEFAULT_SOURCE /* cfmakeraw */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "tinygmm_proto.h"

#ifndef TINYGMM_TARGET
#define TINYGMM_TARGET "native"
#endif
/* A pipe or pty blocks the writer instead of dropping bytes; 4096 is what a Linux pty holds. */
#ifndef TINYGMM_RX_BUFFER_BYTES
#define TINYGMM_RX_BUFFER_BYTES 4096
#endif

static void write_all(void *user, const uint8_t *data, size_t len)
{
    (void)user;
    while (len > 0) {
        const ssize_t n = write(STDOUT_FILENO, data, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            _exit(1); /* the host hung up */
        }
        data += n;
        len -= (size_t)n;
    }
}

static uint32_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec);
}

/* Raw mode for a terminal that is not in line mode already (see the top of this file). */
static void make_raw_unless_line_mode(int fd)
{
    struct termios t;
    if (isatty(fd) && tcgetattr(fd, &t) == 0 && (t.c_lflag & ICANON) == 0) {
        cfmakeraw(&t);
        (void)tcsetattr(fd, TCSANOW, &t);
    }
}

int main(void)
{
    static tinygmm_proto proto;
    tinygmm_proto_config cfg;
    uint8_t buf[256];
    cfg.target = TINYGMM_TARGET;
    cfg.rx_buffer = TINYGMM_RX_BUFFER_BYTES;
    cfg.clock_unit = "ns";
    cfg.clock = clock_ns;
    cfg.write = write_all;
    cfg.user = NULL;
    cfg.poll = NULL; /* the pipe or pty buffers far more than a batch line */
    make_raw_unless_line_mode(STDIN_FILENO);
    tinygmm_proto_init(&proto, &cfg);
    tinygmm_proto_banner(&proto);
    for (;;) {
        const ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        ssize_t i;
        if (n == 0) {
            return 0;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EIO ? 0 : 1; /* EIO: the pty's other side closed */
        }
        for (i = 0; i < n; ++i) {
            tinygmm_proto_feed(&proto, buf[i]);
        }
    }
}
