/* arduino/main.cpp -- the protocol over Arduino Serial (Uno, ESP32 and other Arduino cores).
 *
 * setup() opens Serial at TINYGMM_BAUD and prints the banner; loop() moves every received byte
 * into the protocol, which answers each complete line before returning. While a line is being
 * computed the core's receive buffer (reported as rx= in hello) is all that holds new bytes:
 * the host's flow-control rule (docs/protocol.md) keeps it from overflowing.
 * bench timing: Timer1 cycles on AVR (16-bit counter at clk/1 plus an overflow count),
 * micros() elsewhere.
 */
#include <Arduino.h>

#include "tinygmm_proto.h"

#ifndef TINYGMM_BAUD
#define TINYGMM_BAUD 115200
#endif

#ifndef TINYGMM_TARGET
#if defined(ARDUINO_AVR_UNO)
#define TINYGMM_TARGET "uno"
#elif defined(ARDUINO_ARCH_ESP32)
#define TINYGMM_TARGET "esp32"
#else
#define TINYGMM_TARGET "arduino"
#endif
#endif

/* Bytes the core's receive ring holds while the sketch computes. The AVR core's ring of
 * SERIAL_RX_BUFFER_SIZE (64) keeps one slot empty to tell full from empty, and its ISR drops
 * a byte that finds it full: 63 usable (measured in simavr: 64 in flight lose a byte). On ESP32
 * the size is set below before Serial.begin(); otherwise assume the AVR default. */
#ifndef TINYGMM_RX_BUFFER_BYTES
#if defined(ARDUINO_ARCH_ESP32)
#define TINYGMM_RX_BUFFER_BYTES 256
#elif defined(SERIAL_RX_BUFFER_SIZE)
#define TINYGMM_RX_BUFFER_BYTES (SERIAL_RX_BUFFER_SIZE - 1)
#else
#define TINYGMM_RX_BUFFER_BYTES 63
#endif
#endif

/* Bytes moved out of the core's receive ring while a line is worked on (the protocol polls
 * between batch vectors, during its CRC and its base64 decoding), so the host may keep sending
 * while the device computes (hello's rx= counts both). A 44-vector D=2 batch line (~500 bytes)
 * takes ~25 ms on the Uno, in which 115200 baud brings ~290 more bytes. bench/link_throughput.py,
 * D=2 batch predict: 42% of the raw payload limit with the 63-byte ring alone, 57% with a
 * 256-byte queue, 63% with 352 (and no more with 468). */
#ifndef TINYGMM_RX_QUEUE_BYTES
#if defined(__AVR__)
#define TINYGMM_RX_QUEUE_BYTES 352
#else
#define TINYGMM_RX_QUEUE_BYTES 0
#endif
#endif

#define TINYGMM_RX_SLACK (TINYGMM_RX_QUEUE_BYTES > 0 ? 8 : 0)

static tinygmm_proto proto;

#if TINYGMM_RX_QUEUE_BYTES > 0
static uint8_t rx_queue[TINYGMM_RX_QUEUE_BYTES];
/* ring indices wrapped by comparison: a % on a 16-bit index is a ~200-cycle division on AVR,
 * paid twice per received byte */
static uint16_t rx_head, rx_tail, rx_count; /* next byte to feed, next free slot, bytes held */

static void drain_serial(void *user)
{
    (void)user;
    while (rx_count < TINYGMM_RX_QUEUE_BYTES && Serial.available() > 0) {
        rx_queue[rx_tail] = (uint8_t)Serial.read();
        if (++rx_tail == TINYGMM_RX_QUEUE_BYTES) {
            rx_tail = 0;
        }
        ++rx_count;
    }
}
#define TINYGMM_POLL drain_serial
#else
#define TINYGMM_POLL NULL
#endif

static void serial_write(void *user, const uint8_t *data, size_t len)
{
    (void)user;
    Serial.write(data, len);
}

#if defined(__AVR__)
static volatile uint16_t timer1_overflows;

ISR(TIMER1_OVF_vect) { ++timer1_overflows; }

/* Timer1 free-running at the CPU clock; Arduino uses it only for PWM on pins 9/10. */
static void timer1_start(void)
{
    TCCR1A = 0;
    TCCR1B = _BV(CS10);
    TCNT1 = 0;
    TIFR1 = _BV(TOV1);
    TIMSK1 = _BV(TOIE1);
}

static uint32_t clock_cycles(void)
{
    const uint8_t sreg = SREG;
    cli();
    uint16_t high = timer1_overflows;
    const uint16_t low = TCNT1;
    if ((TIFR1 & _BV(TOV1)) && low < 0x8000u) { /* wrapped after cli(), ISR still pending */
        ++high;
    }
    SREG = sreg;
    return ((uint32_t)high << 16) | low;
}
#define TINYGMM_CLOCK clock_cycles
#define TINYGMM_CLOCK_UNIT "cycles"
#else
static uint32_t clock_us(void) { return (uint32_t)micros(); }
#define TINYGMM_CLOCK clock_us
#define TINYGMM_CLOCK_UNIT "us"
#endif

void setup()
{
    tinygmm_proto_config cfg;
#if defined(ARDUINO_ARCH_ESP32)
    Serial.setRxBufferSize(TINYGMM_RX_BUFFER_BYTES);
#endif
    Serial.begin(TINYGMM_BAUD);
    while (!Serial) { /* boards with native USB: wait for the host to open the port */
    }
#if defined(__AVR__)
    timer1_start();
#endif
    cfg.target = TINYGMM_TARGET;
    /* a few bytes of slack: a byte may sit in the UART itself, or land just as a drain ends */
    cfg.rx_buffer = TINYGMM_RX_BUFFER_BYTES + TINYGMM_RX_QUEUE_BYTES - TINYGMM_RX_SLACK;
    cfg.clock_unit = TINYGMM_CLOCK_UNIT;
    cfg.clock = TINYGMM_CLOCK;
    cfg.write = serial_write;
    cfg.user = NULL;
    cfg.poll = TINYGMM_POLL;
    tinygmm_proto_init(&proto, &cfg);
    tinygmm_proto_banner(&proto);
}

void loop()
{
#if TINYGMM_RX_QUEUE_BYTES > 0
    /* Every byte passes through the queue, refilled from the core's ring after each byte fed:
     * order is kept, and the ring is emptied even while queued bytes are being worked off. */
    drain_serial(NULL);
    while (rx_count > 0) {
        const uint8_t byte = rx_queue[rx_head];
        if (++rx_head == TINYGMM_RX_QUEUE_BYTES) {
            rx_head = 0;
        }
        --rx_count;
        tinygmm_proto_feed(&proto, byte); /* a batch line drains the ring between its vectors */
        drain_serial(NULL);
    }
#else
    while (Serial.available() > 0) {
        tinygmm_proto_feed(&proto, (uint8_t)Serial.read());
    }
#endif
}
