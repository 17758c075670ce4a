/* simavr_bridge.c -- run an AVR firmware ELF in simavr with UART0 bridged to a pseudo-terminal.
 *
 * Single-threaded: one loop runs the AVR and, every few thousand instructions, moves bytes
 * between UART0 and the pty master (non-blocking). Bytes from the client are fed to the UART
 * only while simavr signals room (UART_IRQ_OUT_XON .. UART_IRQ_OUT_XOFF), so simavr's receive
 * fifo is never overrun; from there they reach the firmware at the configured baud rate, in
 * emulated time, as on a real wire. Nothing of Debian's libsimavrparts (uart_pty) is used.
 *
 * A board with a bootloader (-b, -B): the bootloader image (Intel hex) is burned at its addresses
 * into a flash of 0xFF, the reset vector is the boot section's start (the BOOTRST fuse), and an
 * application ELF, if given, is already in flash beside it. Code in the boot section runs at most
 * at real time, so that a bootloader's watchdog timeout is the seconds its uploader expects.
 * With -k the board outlives its clients: it pauses while nobody holds the pty (the next client
 * finds it where the last one left it, its flash included) and takes commands on stdin, one a
 * line: "reset" is an external reset (the reset button, or the DTR pulse a pty cannot carry),
 * acknowledged on stdout by "reset cycles=C"; end of input stops the board (exit 0, "closed").
 *
 * Output protocol on stdout (all other library chatter goes to stderr):
 *   first line:  the slave pty path, e.g. "/dev/pts/7"
 *   then (-k):   "reset cycles=C" for each reset command done
 *   last line:   "exit reason=REASON code=N cycles=C seconds=S mhz=M"
 * Exit codes: 0 client hung up (-k: stdin closed), 1 setup error, 2 firmware crashed, 3 cycle limit,
 *   4 wall-clock limit, 5 firmware halted (sleep with interrupts off), 128+N signal N.
 *
 * Build: gcc -O2 -Wall -Wextra -I/usr/include/simavr simavr_bridge.c -lsimavr -lutil
 * Usage: simavr_bridge [-m MCU] [-f HZ] [-n] [-t SECONDS] [-c CYCLES] [-r FACTOR] [-i N] [-v]
 *                      [-b BOOT.hex -B ADDRESS] [-k] [FIRMWARE.elf]
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
    RUNNING = -1, /* not an exit code: the run goes on */
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

/* Services between two looks at the control input (-k): about 1 ms of wall time unthrottled. */
#define CONTROL_EVERY 32u
/* The longest Intel hex line we read (255 data bytes make 521 characters). */
#define HEX_LINE_MAX 600

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
static uint32_t boot_start; /* byte address of the boot section, 0: no bootloader */
/* Real-time throttling: the factor in force and where (cycle, wall time) it was last rebased. */
static double throttle, factor_now;
static avr_cycle_count_t base_cycle;
static double base_time;
/* -k: the control input (stdin), what was read of its current line, and where replies go. */
static int keep;
static char control_line[64];
static size_t control_len;
static FILE *report;

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

/* The throttle factor for where the CPU is: a bootloader runs at most at real time (its watchdog
 * timeout is in seconds its uploader counts on), the application as asked (0: unthrottled). */
static double factor_for(const avr_t *avr)
{
    if (boot_start && avr->pc >= boot_start) {
        return throttle > 0 && throttle < 1 ? throttle : 1.0;
    }
    return throttle;
}

static void rebase_throttle(const avr_t *avr)
{
    factor_now = factor_for(avr);
    base_cycle = avr->cycle;
    base_time = now_seconds();
}

/* Sleep while the emulation is ahead of the throttled clock, waking up for the client's bytes. */
static void throttle_wait(const avr_t *avr, int master)
{
    double ahead;
    if (factor_for(avr) != factor_now) {
        rebase_throttle(avr);
    }
    if (factor_now <= 0) {
        return;
    }
    ahead = (double)(avr->cycle - base_cycle) / ((double)avr->frequency * factor_now) - (now_seconds() - base_time);
    if (ahead > 50e-6) {
        struct pollfd p = {master, POLLIN, 0};
        struct timespec ts;
        ts.tv_sec = (time_t)ahead;
        ts.tv_nsec = (long)((ahead - (double)ts.tv_sec) * 1e9);
        (void)ppoll(&p, 1, &ts, NULL);
    }
}

static int hex_byte(const char *p, uint8_t *out)
{
    unsigned v = 0;
    for (int i = 0; i < 2; i++) {
        const char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (unsigned)(c - '0');
        } else if (c >= 'A' && c <= 'F') {
            v |= (unsigned)(c - 'A' + 10);
        } else if (c >= 'a' && c <= 'f') {
            v |= (unsigned)(c - 'a' + 10);
        } else {
            return -1;
        }
    }
    *out = (uint8_t)v;
    return 0;
}

/* Burn an Intel hex image into flash: every byte must lie in the boot section [boot_start, flash
 * end] and be written once (a real chip holds nothing past its flash, and an image whose records
 * overlap has lost some of its code). Returns the number of bytes burned. */
static unsigned burn_hex(avr_t *avr, const char *path)
{
    const uint32_t size = avr->flashend + 1;
    uint8_t *seen = calloc(size, 1);
    FILE *f = fopen(path, "r");
    char line[HEX_LINE_MAX];
    uint32_t segment = 0;
    unsigned lineno = 0, burned = 0;

    if (!f) {
        die("cannot read the bootloader %s: %s", path, strerror(errno));
    }
    if (!seen) {
        die("out of memory");
    }
    while (fgets(line, sizeof line, f)) {
        uint8_t rec[HEX_LINE_MAX / 2];
        size_t n = 0, len;
        unsigned sum = 0;
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        len = strlen(line);
        if (len == 0) {
            continue;
        }
        if (line[0] != ':' || len % 2 != 1) {
            die("%s line %u: not an Intel hex record", path, lineno);
        }
        for (size_t i = 1; i < len; i += 2) {
            if (hex_byte(line + i, &rec[n]) != 0) {
                die("%s line %u: not an Intel hex record", path, lineno);
            }
            sum += rec[n++];
        }
        if (n < 5 || (size_t)rec[0] + 5 != n || (sum & 0xff) != 0) {
            die("%s line %u: bad record length or checksum", path, lineno);
        }
        if (rec[3] == 1) {
            break; /* end of file */
        } else if (rec[3] == 2 || rec[3] == 4) {
            segment = ((uint32_t)rec[4] << 8 | rec[5]) << (rec[3] == 2 ? 4 : 16);
            continue;
        } else if (rec[3] != 0) {
            continue; /* 03, 05: a start address, which a chip has no use for */
        }
        for (unsigned i = 0; i < rec[0]; i++) {
            const uint32_t at = segment + ((uint32_t)rec[1] << 8 | rec[2]) + i;
            if (at < boot_start || at >= size) {
                die("%s line %u: byte at 0x%x lies outside the boot section 0x%x-0x%x: the image does not fit "
                    "the board", path, lineno, (unsigned)at, (unsigned)boot_start, (unsigned)size - 1);
            }
            if (seen[at]) {
                die("%s line %u: byte at 0x%x is written twice (overlapping records: part of the code is lost)",
                    path, lineno, (unsigned)at);
            }
            seen[at] = 1;
            avr->flash[at] = rec[4 + i];
            burned++;
        }
    }
    fclose(f);
    free(seen);
    if (!burned) {
        die("%s holds no data", path);
    }
    return burned;
}

/* Registers as a reset leaves them on a real chip. simavr 1.6's avr_reset leaves the stack pointer
 * at 0 (the application's start-up code sets it; a bootloader need not, and Optiboot does not). */
static void after_reset(avr_t *avr)
{
    avr->data[R_SPL] = (uint8_t)(avr->ramend & 0xff);
    avr->data[R_SPH] = (uint8_t)(avr->ramend >> 8);
    room = 0; /* the UART is off until the code enables its receiver again */
}

/* An external reset: the reset pin pulled low (the button, or DTR through the Uno's capacitor).
 * Bytes the client sent that the chip had not taken are lost, as on a wire into a chip in reset. */
static void external_reset(avr_t *avr)
{
    avr_reset(avr);
    after_reset(avr);
    avr_regbit_set(avr, avr->reset_flags.extrf);
    to_avr.len = to_avr_pos = 0;
    fprintf(report, "reset cycles=%" PRIu64 "\n", (uint64_t)avr->cycle);
    fflush(report);
}

/* -k: run the commands waiting on stdin. Returns RUNNING, or EXIT_HANGUP once stdin is closed. */
static int control(avr_t *avr)
{
    char chunk[256];
    ssize_t n;
    if (!keep) {
        return RUNNING;
    }
    while ((n = read(STDIN_FILENO, chunk, sizeof chunk)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (chunk[i] != '\n') {
                if (control_len < sizeof control_line - 1) {
                    control_line[control_len++] = chunk[i];
                }
                continue;
            }
            control_line[control_len] = 0;
            control_len = 0;
            if (strcmp(control_line, "reset") == 0) {
                external_reset(avr);
            } else {
                fprintf(stderr, "simavr_bridge: unknown command '%s' (known: reset)\n", control_line);
            }
        }
    }
    if (n == 0) {
        return EXIT_HANGUP; /* stdin closed: the board is no longer wanted */
    }
    return errno == EAGAIN || errno == EINTR ? RUNNING : EXIT_HANGUP;
}

/* Wait until a client opens the pty (the board does not run meanwhile). Returns RUNNING once one
 * did, else the exit code, with *reason set. */
static int await_client(avr_t *avr, int master, double wall_limit, double start_time, const char *path,
                        const char **reason)
{
    for (;;) {
        int c = client_connected(master), code;
        if (c < 0) {
            die("poll: %s", strerror(errno));
        }
        if (c) {
            return RUNNING;
        }
        if (got_signal) {
            *reason = "signal";
            return 128 + got_signal;
        }
        if (wall_limit > 0 && now_seconds() - start_time >= wall_limit) {
            *reason = "wall_limit";
            fprintf(stderr, "simavr_bridge: wall-clock limit of %g s reached (no client opened %s)\n", wall_limit, path);
            return EXIT_WALL_LIMIT;
        }
        if ((code = control(avr)) != RUNNING) {
            *reason = "closed";
            return code;
        }
        if (keep) {
            struct pollfd p = {STDIN_FILENO, POLLIN, 0};
            (void)poll(&p, 1, CLIENT_POLL_MS);
        } else {
            poll(NULL, 0, CLIENT_POLL_MS);
        }
    }
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
            "usage: %s [-m MCU] [-f HZ] [-n] [-t SECONDS] [-c CYCLES] [-r FACTOR] [-i N] [-v]\n"
            "          [-b BOOT.hex -B ADDRESS] [-k] [FIRMWARE.elf]\n"
            "  -m MCU      simavr core (default: the ELF's .mmcu section, else " DEFAULT_MCU ")\n"
            "  -f HZ       clock (default: the ELF's, else 16000000)\n"
            "  -n          start at once instead of waiting for a client to open the pty\n"
            "  -t SECONDS  wall-clock limit (exit 4)\n"
            "  -c CYCLES   cycle limit (exit 3)\n"
            "  -r FACTOR   throttle to FACTOR x real time (1 = real time; default: as fast as possible)\n"
            "  -i N        instructions between two UART services (default %u)\n"
            "  -v          simavr warnings on stderr\n"
            "  -b BOOT.hex a bootloader image burned into flash; the chip resets into it (no ELF: empty application)\n"
            "  -B ADDRESS  the boot section's start, in bytes (the reset vector with the BOOTRST fuse)\n"
            "  -k          keep the board across clients (it pauses while none is there); commands on stdin\n",
            argv0, DEFAULT_SERVICE_INTERVAL);
    exit(EXIT_SETUP);
}

int main(int argc, char **argv)
{
    const char *mcu = NULL, *boot_path = NULL, *elf_path = NULL;
    uint32_t frequency = 0;
    int wait_for_client = 1;
    double wall_limit = 0.0;
    uint64_t cycle_limit = 0;
    unsigned interval = DEFAULT_SERVICE_INTERVAL, controls = 0;
    elf_firmware_t fw;
    avr_t *avr;
    int master, slave, opt, report_fd, code = EXIT_HANGUP;
    const char *reason = "hangup";
    char path[256];
    avr_irq_t *uart_in;
    uint32_t uart_flags = 0;
    double start_time, elapsed;
    unsigned countdown;

    while ((opt = getopt(argc, argv, "m:f:nt:c:r:i:vb:B:kh")) != -1) {
        switch (opt) {
        case 'm': mcu = optarg; break;
        case 'f': frequency = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'n': wait_for_client = 0; break;
        case 't': wall_limit = strtod(optarg, NULL); break;
        case 'c': cycle_limit = strtoull(optarg, NULL, 10); break;
        case 'r': throttle = strtod(optarg, NULL); break;
        case 'i': interval = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'v': verbose = 1; break;
        case 'b': boot_path = optarg; break;
        case 'B': boot_start = (uint32_t)strtoul(optarg, NULL, 0); break;
        case 'k': keep = 1; break;
        default: usage(argv[0]);
        }
    }
    if (optind < argc - 1 || interval == 0 || (optind == argc && !boot_path) || !boot_path != !boot_start) {
        usage(argv[0]);
    }
    if (optind == argc - 1) {
        elf_path = argv[optind];
    }

    /* stdout carries only our lines: keep it aside, send every library printf to stderr. */
    report_fd = dup(STDOUT_FILENO);
    if (report_fd < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        die("cannot set up stdout: %s", strerror(errno));
    }
    report = fdopen(report_fd, "w");
    if (!report) {
        die("cannot set up stdout: %s", strerror(errno));
    }
    if (keep && fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK) != 0) {
        die("cannot set up stdin: %s", strerror(errno));
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGHUP, on_signal);
    avr_global_logger_set(logger);

    memset(&fw, 0, sizeof fw);
    if (elf_path && elf_read_firmware(elf_path, &fw) != 0) {
        die("cannot read the firmware ELF %s", elf_path);
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
    if (elf_path) {
        avr_load_firmware(avr, &fw);
    }
    if (boot_path) {
        if (boot_start > avr->flashend) {
            die("boot section start 0x%x lies past %s's flash (0x%x bytes)", (unsigned)boot_start, mcu,
                (unsigned)avr->flashend + 1);
        }
        (void)burn_hex(avr, boot_path);
        avr->codeend = avr->flashend; /* the bootloader writes code anywhere below itself */
        avr->reset_pc = boot_start;    /* BOOTRST: reset starts the bootloader */
        avr->pc = boot_start;
        after_reset(avr);              /* power-on: MCUSR holds PORF only (avr_init set it) */
    }

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
    if (wait_for_client && (code = await_client(avr, master, wall_limit, start_time, path, &reason)) != RUNNING) {
        goto done;
    }
    code = EXIT_HANGUP;
    start_time = now_seconds();
    rebase_throttle(avr);
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
                if (!keep) {
                    break; /* client hung up */
                }
                /* The board waits, as it is, for its next client; what was on the wire is gone. */
                to_client.len = 0;
                to_avr.len = to_avr_pos = 0;
                if ((code = await_client(avr, master, wall_limit, start_time, path, &reason)) != RUNNING) {
                    break;
                }
                code = EXIT_HANGUP;
                rebase_throttle(avr);
                continue;
            }
            if (keep && ++controls % CONTROL_EVERY == 0 && control(avr) != RUNNING) {
                reason = "closed";
                break;
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
            throttle_wait(avr, master);
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
