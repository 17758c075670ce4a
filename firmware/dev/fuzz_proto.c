/* fuzz_proto.c -- a libFuzzer target for the serial protocol (development only, not shipped).
 *
 * Feeds the input to tinygmm_proto_feed() byte by byte, with the repository's demo model, and
 * checks what a host relies on, aborting (a finding) when any fails:
 *   - every reply line is printable ASCII, ends with a line feed, and carries a matching *CRC;
 *   - at most one reply per received line end, LF or CR (no banner: the fuzzer does not call it);
 *   - after each received line end nothing is left half-written (the output ends with a line feed);
 *   - afterwards a ping is still answered, as the reply's last line.
 * Built with clang -fsanitize=fuzzer,address,undefined by bench/fuzz_proto.py, which also runs it
 * (tests/test_fuzz.py runs it briefly).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinygmm_proto.h"

static uint8_t out[1 << 20];
static size_t out_n;

static void sink(void *user, const uint8_t *data, size_t len)
{
    (void)user;
    if (out_n + len > sizeof out) { /* replies are short and per line: this much means runaway output */
        fprintf(stderr, "fuzz_proto: more than %zu reply bytes\n", sizeof out);
        abort();
    }
    memcpy(out + out_n, data, len);
    out_n += len;
}

static uint32_t fake_clock(void)
{
    static uint32_t t;
    return t += 1000u;
}

static void fail(const char *what, size_t at)
{
    fprintf(stderr, "fuzz_proto: %s (reply byte %zu)\n", what, at);
    abort();
}

static int hex_digit(uint8_t c)
{
    return (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
}

/* Checks every line of out[from..out_n); returns how many there are. */
static size_t check_lines(size_t from)
{
    size_t lines = 0, start = from, i;
    for (i = from; i < out_n; ++i) {
        const uint8_t c = out[i];
        if (c == '\n') {
            uint16_t crc = 0xFFFFu;
            size_t j, star;
            int k;
            uint16_t want = 0;
            if (i - start < 6 || out[i - 5] != '*') {
                fail("reply line without a *CRC ending", i);
            }
            star = i - 5;
            for (j = start; j < star; ++j) {
                crc = tinygmm_proto_crc16(crc, out[j]);
            }
            for (k = 1; k <= 4; ++k) {
                const int h = hex_digit(out[star + (size_t)k]);
                if (h < 0) {
                    fail("CRC is not 4 upper-case hex digits", star);
                }
                want = (uint16_t)(want << 4 | (uint16_t)h);
            }
            if (crc != want) {
                fail("reply CRC does not match its text", star);
            }
            ++lines;
            start = i + 1;
        } else if (c < 0x20 || c > 0x7E) {
            fail("non-printable byte in a reply", i);
        }
    }
    if (start != out_n) {
        fail("reply not ended by a line feed", out_n);
    }
    return lines;
}

static void frame_ping(char *buf, size_t size, unsigned seq, const char *nonce)
{
    uint16_t crc = 0xFFFFu;
    int n = snprintf(buf, size, "%u ping %s", seq, nonce), i;
    for (i = 0; i < n; ++i) {
        crc = tinygmm_proto_crc16(crc, (uint8_t)buf[i]);
    }
    snprintf(buf + n, size - (size_t)n, "*%04X\n", crc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tinygmm_proto p;
    tinygmm_proto_config cfg;
    size_t i, line_ends = 0, lines;
    char ping[64];
    static const char expect[] = "65535 ok ping fz09*";
    out_n = 0;
    memset(&cfg, 0, sizeof cfg);
    cfg.target = "fuzz";
    cfg.rx_buffer = 64;
    cfg.clock_unit = "ns";
    cfg.clock = fake_clock;
    cfg.write = sink;
    tinygmm_proto_init(&p, &cfg);
    for (i = 0; i < size; ++i) {
        tinygmm_proto_feed(&p, data[i]);
        if (data[i] == '\n' || data[i] == '\r') { /* the protocol ends a line at either */
            ++line_ends;
            if (out_n > 0 && out[out_n - 1] != '\n') {
                fail("reply left half-written after a line end", out_n);
            }
        }
    }
    lines = check_lines(0);
    if (lines > line_ends) {
        fail("more reply lines than received lines", out_n);
    }
    /* whatever came before, a fresh line with a ping is answered, and last */
    frame_ping(ping, sizeof ping, 65535u, "fz09");
    {
        const size_t before = out_n;
        tinygmm_proto_feed(&p, '\n');
        for (i = 0; ping[i] != '\0'; ++i) {
            tinygmm_proto_feed(&p, (uint8_t)ping[i]);
        }
        check_lines(before);
        if (out_n < sizeof expect || memcmp(out + out_n - (sizeof expect - 1) - 5, expect, sizeof expect - 1) != 0) {
            fail("a ping after the input was not answered last", out_n);
        }
    }
    return 0;
}
