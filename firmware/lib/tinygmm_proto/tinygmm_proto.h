/* tinygmm_proto.h -- the serial protocol of docs/protocol.md around the tinygmm core.
 *
 * Portable C99/C++11, no malloc, no double arithmetic: one context holding a fixed line
 * buffer. The platform glue feeds received bytes one at a time with tinygmm_proto_feed();
 * replies leave through the write callback in small chunks, each reply ending with a
 * newline. The compiled-in model is the header "tinygmm_model.h" that `tinygmm export` writes
 * (symbol TINYGMM_PROTO_MODEL, default gmm_model as the export names it).
 */
#ifndef TINYGMM_PROTO_H
#define TINYGMM_PROTO_H

#include <stddef.h>
#include <stdint.h>

/* docs/protocol.md; host/tinygmm/link/protocol.py PROTOCOL_VERSION must agree (tested). */
#define TINYGMM_PROTO_VERSION 1

/* Longest accepted line, line end excluded. The Uno has 2 KB of RAM: 512 bytes carry a
 * 45-vector D=2 batch (71% of the raw payload limit, docs/protocol.md); elsewhere RAM is plenty. */
#ifndef TINYGMM_PROTO_LINE_MAX
#if defined(__AVR__)
#define TINYGMM_PROTO_LINE_MAX 512
#else
#define TINYGMM_PROTO_LINE_MAX 2048
#endif
#endif
#if TINYGMM_PROTO_LINE_MAX < 64 || TINYGMM_PROTO_LINE_MAX > 65000
#error "TINYGMM_PROTO_LINE_MAX must be between 64 and 65000"
#endif

/* Reply bytes staged before one write callback (a per-byte callback would cost a syscall
 * per byte on native; on AVR every byte of RAM counts). */
#ifndef TINYGMM_PROTO_OUT_CHUNK
#if defined(__AVR__)
#define TINYGMM_PROTO_OUT_CHUNK 16
#else
#define TINYGMM_PROTO_OUT_CHUNK 128
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Sends len reply bytes; must not return before they are queued. */
typedef void (*tinygmm_proto_write_fn)(void *user, const uint8_t *data, size_t len);
/* A free-running 32-bit clock for `bench` (wraps modulo 2^32). */
typedef uint32_t (*tinygmm_proto_clock_fn)(void);
/* Called during long work on a line (between batch vectors, every 32 bytes of a CRC): a glue whose
 * receive hardware is polled, not interrupt-driven, may move received bytes into its own queue
 * here, so the link keeps flowing while the device computes; hello's rx= then reports both. */
typedef void (*tinygmm_proto_poll_fn)(void *user);

typedef struct tinygmm_proto_config {
    const char *target;           /* board or platform name reported by hello, e.g. "uno" */
    uint16_t rx_buffer;           /* bytes the transport queues while the device computes */
    const char *clock_unit;       /* "cycles", "us" or "ns" */
    tinygmm_proto_clock_fn clock; /* NULL: bench replies bad_args */
    tinygmm_proto_write_fn write;
    void *user;                   /* passed to write and poll */
    tinygmm_proto_poll_fn poll;   /* NULL: nothing to drain */
} tinygmm_proto_config;

typedef struct tinygmm_proto {
    tinygmm_proto_config cfg;
    uint16_t len;       /* bytes in line[] */
    uint8_t overflow;   /* the current line outgrew line[]: dropping until its end */
    uint8_t out_len;    /* bytes staged in out[] */
    uint16_t out_crc;   /* CRC of the reply line so far */
    uint8_t b64_n;      /* bytes held in b64_acc (base64 encoder) */
    uint8_t b64_acc[3];
    uint8_t out[TINYGMM_PROTO_OUT_CHUNK];
    uint8_t line[TINYGMM_PROTO_LINE_MAX + 1]; /* +1: room to NUL-terminate the last token */
} tinygmm_proto;

void tinygmm_proto_init(tinygmm_proto *p, const tinygmm_proto_config *cfg);
/* Writes the boot banner: 0 boot proto=1 model=ID target=NAME*CRC */
void tinygmm_proto_banner(tinygmm_proto *p);
/* Consumes one received byte; a complete line is executed and answered before returning. */
void tinygmm_proto_feed(tinygmm_proto *p, uint8_t byte);
/* CRC-16/CCITT-FALSE step (exposed for tests and tools). */
uint16_t tinygmm_proto_crc16(uint16_t crc, uint8_t byte);

#ifdef __cplusplus
}
#endif

#endif /* TINYGMM_PROTO_H */
