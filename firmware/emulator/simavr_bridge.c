/* simavr_bridge.c -- run an AVR firmware ELF in simavr with UART0 bridged to a pseudo-terminal.
 *
 * Single-threaded: one loop runs the AVR and, every few thousand instructions, moves bytes
 * between UART0 and the pty master (non-blocking). Bytes from the client are fed to the UART
 * only while simavr signals room (UART_IRQ_OUT_XON .. UART_IRQ_OUT_XOFF), so simavr's receive
 * fifo is never overrun; from there they reach the firmware at the configured baud rate, in
 * emulated time, as on a real wire. Nothing of Debian's libsimavrparts (uart_pty) is used.
 *
 * Output protocol on stdout (all other library chatter goes to stderr):
 *   first line:  the slave pty path, e.g. "/dev/pts/7"
 *   last line:   "exit reason=REASON code=N cycles=C seconds=S mhz=M"
 * Exit codes: 0 client hung up, 1 setup error, 2 firmware crashed, 3 cycle limit,
 *   4 wall-clock limit, 5 firmware halted (sleep with interrupts off), 128+N signal N.
 *
 * Build: gcc -O2 -Wall -Wextra -I/usr/include/simavr simavr_bridge.c -lsimavr -lutil
 * Usage: simavr_bridge [-m MCU] [-f HZ] [-n] [-t SECONDS] [-c CYCLES] [-r FACTOR] [-i N] [-v] FIRMWARE.elf
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <simavr/avr_uart.h>
#include <simavr/sim_avr.h>
#include <simavr/sim_elf.h>
#include <simavr/sim_io.h>
#include <simavr/sim_irq.h>

enum {
    EXIT_HANGUP = 0,
    EXIT_SETUP = 1,
    EXIT_CRASHED = 2,
    EXIT_CYCLE_LIMIT = 3,
    EXIT_WALL_LIMIT = 4,
    EXIT_HALTED = 5,
};

#define DEFAULT_MCU "atmega328p"
#define DEFAULT_FREQUENCY 16000000u
/* Instructions between two I/O services: ~30-60 us of wall time unthrottled. */
#define DEFAULT_SERVICE_INTERVAL 2048u
/* While waiting for a client to open the pty: how often to look (ms). */
#define CLIENT_POLL_MS 5
#define IO_CHUNK 4096
/* Output waiting without a line end is sent after this many cycles without a new byte (1 ms at 16 MHz). */
#define OUTPUT_IDLE_CYCLES 16000u

/* Bytes from the firmware not yet written to the pty, and bytes from the client not yet fed. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} buffer_t;

static buffer_t to_client, to_avr;
static size_t to_avr_pos;
static avr_cycle_count_t last_output_cycle; /* when the firmware last wrote a byte */
static int room;          /* simavr's UART input fifo accepts bytes (XON seen, no XOFF since) */
static int verbose;
static volatile sig_atomic_t got_signal;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("simavr_bridge: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(EXIT_SETUP);
}

static void buffer_push(buffer_t *b, const uint8_t *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : IO_CHUNK;
        while (cap < b->len + len) {
            cap *= 2;
        }
        b->data = realloc(b->data, cap);
        if (!b->data) {
            die("out of memory");
        }
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static void buffer_drop(buffer_t *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

static void on_signal(int sig)
{
    got_signal = sig;
}

/* simavr's messages: errors always (verbose: warnings too), never on stdout. */
static void logger(struct avr_t *avr, const int level, const char *format, va_list ap)
{
    (void)avr;
    if (level <= LOG_ERROR || (verbose && level <= LOG_WARNING)) {
        vfprintf(stderr, format, ap);
    }
}

/* The firmware is not interrupted by wall-clock sleeps: throttling is done by the main loop. */
static void no_sleep(avr_t *avr, avr_cycle_count_t how_long)
{
    (void)avr;
    (void)how_long;
}

static void on_uart_output(struct avr_irq_t *irq, uint32_t value, void *param)
{
    uint8_t byte = (uint8_t)value;
    avr_t *avr = param;
    (void)irq;
    buffer_push(&to_client, &byte, 1);
    last_output_cycle = avr->cycle;
}

static void on_xon(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)value;
    (void)param;
    room = 1;
}

static void on_xoff(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)param;
    if (value) {
        room = 0;
    }
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void set_raw(int fd)
{
    struct termios t;
    if (tcgetattr(fd, &t) == 0) {
        cfmakeraw(&t);
        t.c_cc[VMIN] = 1;
        t.c_cc[VTIME] = 0;
        (void)tcsetattr(fd, TCSANOW, &t);
    }
}

/* Has some process the slave side open? (With no slave open, the master polls POLLHUP.) */
static int client_connected(int master)
{
    struct pollfd p = {master, POLLIN, 0};
    if (poll(&p, 1, 0) < 0) {
        return errno == EINTR ? 0 : -1;
    }
    return !(p.revents & POLLHUP);
}

/* Move bytes both ways. Returns 0 while the client is there, 1 once it hung up.
 * Output goes out at a line end, after OUTPUT_IDLE_CYCLES without a new byte, or in big chunks
 * (like a USB-serial chip's latency timer), not two bytes at a time; `force` sends it all. */
static int service(avr_t *avr, int master, avr_irq_t *uart_in, int force)
{
    const int flush = force || (to_client.len > 0 && (to_client.data[to_client.len - 1] == '\n'
                                                      || avr->cycle - last_output_cycle > OUTPUT_IDLE_CYCLES
                                                      || to_client.len >= IO_CHUNK));
    while (flush && to_client.len > 0) {
        ssize_t n = write(master, to_client.data, to_client.len);
        if (n > 0) {
            buffer_drop(&to_client, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            break; /* the pty is full: the client is slow; keep the bytes */
        }
        return 1; /* EIO: the slave side is closed */
    }
    if (to_avr_pos == to_avr.len) {
        uint8_t chunk[IO_CHUNK];
        ssize_t n;
        to_avr.len = to_avr_pos = 0;
        n = read(master, chunk, sizeof chunk);
        if (n > 0) {
            buffer_push(&to_avr, chunk, (size_t)n);
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            return 1; /* EIO: hung up */
        }
    } else if (client_connected(master) == 0) {
        return 1;
    }
    /* Feed while simavr has room: XOFF arrives from inside avr_raise_irq when its fifo fills. */
    while (room && to_avr_pos < to_avr.len) {
        avr_raise_irq(uart_in, to_avr.data[to_avr_pos++]);
    }
    return 0;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [-m MCU] [-f HZ] [-n] [-t SECONDS] [-c CYCLES] [-r FACTOR] [-i N] [-v] FIRMWARE.elf\n"
            "  -m MCU      simavr core (default: the ELF's .mmcu section, else " DEFAULT_MCU ")\n"
            "  -f HZ       clock (default: the ELF's, else 16000000)\n"
            "  -n          start at once instead of waiting for a client to open the pty\n"
            "  -t SECONDS  wall-clock limit (exit 4)\n"
            "  -c CYCLES   cycle limit (exit 3)\n"
            "  -r FACTOR   throttle to FACTOR x real time (1 = real time; default: as fast as possible)\n"
            "  -i N        instructions between two UART services (default %u)\n"
            "  -v          simavr warnings on stderr\n",
            argv0, DEFAULT_SERVICE_INTERVAL);
    exit(EXIT_SETUP);
}

int main(int argc, char **argv)
{
    const char *mcu = NULL;
    uint32_t frequency = 0;
    int wait_for_client = 1;
    double wall_limit = 0.0, throttle = 0.0;
    uint64_t cycle_limit = 0;
    unsigned interval = DEFAULT_SERVICE_INTERVAL;
    elf_firmware_t fw;
    avr_t *avr;
    int master, slave, opt, report_fd, code = EXIT_HANGUP;
    const char *reason = "hangup";
    char path[256];
    avr_irq_t *uart_in;
    uint32_t uart_flags = 0;
    uint64_t start_cycle;
    double start_time, elapsed;
    unsigned countdown;
    FILE *report;

    while ((opt = getopt(argc, argv, "m:f:nt:c:r:i:vh")) != -1) {
        switch (opt) {
        case 'm': mcu = optarg; break;
        case 'f': frequency = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'n': wait_for_client = 0; break;
        case 't': wall_limit = strtod(optarg, NULL); break;
        case 'c': cycle_limit = strtoull(optarg, NULL, 10); break;
        case 'r': throttle = strtod(optarg, NULL); break;
        case 'i': interval = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'v': verbose = 1; break;
        default: usage(argv[0]);
        }
    }
    if (optind != argc - 1 || interval == 0) {
        usage(argv[0]);
    }

    /* stdout carries only our two lines: keep it aside, send every library printf to stderr. */
    report_fd = dup(STDOUT_FILENO);
    if (report_fd < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        die("cannot set up stdout: %s", strerror(errno));
    }
    report = fdopen(report_fd, "w");
    if (!report) {
        die("cannot set up stdout: %s", strerror(errno));
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGHUP, on_signal);
    avr_global_logger_set(logger);

    memset(&fw, 0, sizeof fw);
    if (elf_read_firmware(argv[optind], &fw) != 0) {
        die("cannot read the firmware ELF %s", argv[optind]);
    }
    if (!mcu) {
        mcu = fw.mmcu[0] ? fw.mmcu : DEFAULT_MCU;
    }
    if (!frequency) {
        frequency = fw.frequency ? fw.frequency : DEFAULT_FREQUENCY;
    }
    avr = avr_make_mcu_by_name(mcu);
    if (!avr) {
        die("simavr has no core named %s", mcu);
    }
    avr_init(avr);
    avr->frequency = frequency;
    avr->log = verbose ? LOG_WARNING : LOG_ERROR;
    avr->sleep = no_sleep;
    avr_load_firmware(avr, &fw);

    /* UART0: no console echo, no usleep() in the firmware's polling loops. */
    if (avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &uart_flags) != 0) {
        die("%s has no UART0", mcu);
    }
    uart_in = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), on_uart_output, avr);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XON), on_xon, NULL);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XOFF), on_xoff, NULL);
    room = 0; /* until the firmware enables its receiver, bytes would be dropped */

    if (openpty(&master, &slave, path, NULL, NULL) != 0) {
        die("openpty: %s", strerror(errno));
    }
    set_raw(slave);
    if (fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK) != 0) {
        die("fcntl: %s", strerror(errno));
    }
    close(slave); /* from now on, POLLHUP on the master means: no client */
    fprintf(report, "%s\n", path);
    fflush(report);

    start_time = now_seconds();
    if (wait_for_client) {
        for (;;) {
            int c = client_connected(master);
            if (c < 0) {
                die("poll: %s", strerror(errno));
            }
            if (c) {
                break;
            }
            if (got_signal) {
                reason = "signal";
                code = 128 + got_signal;
                goto done;
            }
            if (wall_limit > 0 && now_seconds() - start_time >= wall_limit) {
                reason = "wall_limit";
                code = EXIT_WALL_LIMIT;
                fprintf(stderr, "simavr_bridge: wall-clock limit of %g s reached (no client opened %s)\n",
                        wall_limit, path);
                goto done;
            }
            poll(NULL, 0, CLIENT_POLL_MS);
        }
    }

    start_cycle = avr->cycle;
    start_time = now_seconds();
    {
        int connected = wait_for_client;
        countdown = interval;
        for (;;) {
            const int state = avr_run(avr);
            if (state == cpu_Done) {
                reason = "halted";
                code = EXIT_HALTED;
                fprintf(stderr, "simavr_bridge: the firmware halted (sleep with interrupts off) at cycle %" PRIu64 "\n",
                        (uint64_t)avr->cycle);
                break;
            }
            if (state == cpu_Crashed) {
                reason = "crashed";
                code = EXIT_CRASHED;
                fprintf(stderr, "simavr_bridge: the firmware crashed at pc 0x%x, cycle %" PRIu64 "\n",
                        (unsigned)avr->pc, (uint64_t)avr->cycle);
                break;
            }
            if (cycle_limit && avr->cycle >= cycle_limit) {
                reason = "cycle_limit";
                code = EXIT_CYCLE_LIMIT;
                fprintf(stderr, "simavr_bridge: cycle limit of %" PRIu64 " cycles reached\n", cycle_limit);
                break;
            }
            if (--countdown) {
                continue;
            }
            countdown = interval;
            if (!connected) {
                connected = client_connected(master) == 1;
                to_client.len = 0; /* nobody listens: the bytes are gone, as on an open wire */
            } else if (service(avr, master, uart_in, 0)) {
                break; /* client hung up */
            }
            if (got_signal) {
                reason = "signal";
                code = 128 + got_signal;
                break;
            }
            elapsed = now_seconds() - start_time;
            if (wall_limit > 0 && elapsed >= wall_limit) {
                reason = "wall_limit";
                code = EXIT_WALL_LIMIT;
                fprintf(stderr, "simavr_bridge: wall-clock limit of %g s reached at cycle %" PRIu64 "\n",
                        wall_limit, (uint64_t)avr->cycle);
                break;
            }
            if (throttle > 0) {
                const double ahead = (double)(avr->cycle - start_cycle) / ((double)frequency * throttle) - elapsed;
                if (ahead > 50e-6) { /* wait, but wake up for the client's bytes */
                    struct pollfd p = {master, POLLIN, 0};
                    struct timespec ts;
                    ts.tv_sec = (time_t)ahead;
                    ts.tv_nsec = (long)((ahead - (double)ts.tv_sec) * 1e9);
                    (void)ppoll(&p, 1, &ts, NULL);
                }
            }
        }
        if (connected && code != EXIT_HANGUP) {
            (void)service(avr, master, uart_in, 1); /* last bytes of the firmware, if anyone listens */
        }
    }

done:
    elapsed = now_seconds() - start_time;
    fprintf(report, "exit reason=%s code=%d cycles=%" PRIu64 " seconds=%.6f mhz=%.3f\n", reason, code,
            (uint64_t)avr->cycle, elapsed, elapsed > 0 ? (double)avr->cycle / elapsed / 1e6 : 0.0);
    fclose(report);
    close(master);
    return code;
}
