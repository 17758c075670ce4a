/* arduino/main.cpp -- the protocol over Arduino Serial (Uno, ESP32 and other Arduino cores).
 *
 * setup() opens Serial at TINYGMM_BAUD and prints the banner; loop() moves every received byte
 * into the protocol, which answers each complete line before returning. While a line is being
 * computed the core's receive ring (reported as rx= in hello) is all that holds new bytes: the
 * host's flow-control rule (docs/protocol.md) keeps it from overflowing, however long a vector takes.
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

/* Bytes the core's receive ring holds while the sketch computes or writes. Its receive interrupt
 * fills the ring whatever the sketch is doing (a long inference, a reply blocked in
 * Serial.write), so the ring alone is what may be in flight. The AVR core's ring of
 * SERIAL_RX_BUFFER_SIZE (64 by default; tinygmm's platformio.ini makes it 416 on the Uno, as much
 * as a polled queue held before, without depending on how often it is polled) keeps one slot empty
 * to tell full from empty, and its ISR drops a byte that finds it full. On ESP32 the size is set
 * below before Serial.begin(). */
#ifndef TINYGMM_RX_BUFFER_BYTES
#if defined(ARDUINO_ARCH_ESP32)
#define TINYGMM_RX_BUFFER_BYTES 256
#elif defined(SERIAL_RX_BUFFER_SIZE)
#define TINYGMM_RX_BUFFER_BYTES (SERIAL_RX_BUFFER_SIZE - 1)
#else
#define TINYGMM_RX_BUFFER_BYTES 63
#endif
#endif

/* A byte may still be in the UART's own receive register when the host counts it as sent. */
#define TINYGMM_RX_SLACK 2

static tinygmm_proto proto;

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
    cfg.rx_buffer = TINYGMM_RX_BUFFER_BYTES - TINYGMM_RX_SLACK;
    cfg.clock_unit = TINYGMM_CLOCK_UNIT;
    cfg.clock = TINYGMM_CLOCK;
    cfg.write = serial_write;
    cfg.user = NULL;
    cfg.poll = NULL; /* the receive interrupt fills the ring: nothing to drain during work */
    tinygmm_proto_init(&proto, &cfg);
    tinygmm_proto_banner(&proto);
}

void loop()
{
    while (Serial.available() > 0) {
        tinygmm_proto_feed(&proto, (uint8_t)Serial.read());
    }
}
