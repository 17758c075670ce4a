/* arduino/main.cpp -- the protocol over Arduino Serial (Uno, ESP32 and other Arduino cores).
 *
 * setup() opens Serial at TINYGMM_BAUD and starts the protocol (tinygmm_serial.h: the same two calls
 * a user's own firmware makes); loop() feeds it every received byte, and it answers each complete
 * line before returning. While a line is being computed the core's receive ring (reported as rx= in
 * hello) is all that holds new bytes: the host's flow-control rule (docs/protocol.md) keeps it from
 * overflowing, however long a vector takes. The AVR core's ring is SERIAL_RX_BUFFER_SIZE bytes
 * (64 by default; tinygmm's platformio.ini makes it 256 on the Uno: a power of two, as the core wraps
 * its indices with %, and no more, as larger rings get 16-bit indices the core does not update
 * atomically); on ESP32 the size is set below before Serial.begin().
 * bench timing: Timer1 cycles on AVR (16-bit counter at clk/1 plus an overflow count),
 * micros() elsewhere.
 */
#include <Arduino.h>

#include "tinygmm_serial.h"

#ifndef TINYGMM_BAUD
#define TINYGMM_BAUD 115200
#endif

#if defined(__AVR__)
static volatile uint16_t timer1_overflows;

ISR(TIMER1_OVF_vect) { ++timer1_overflows; }

/* Timer1 free-running at the CPU clock; Arduino uses it only for PWM on pins 9/10 (a user's own
 * firmware may not spare it: there tinygmm_serial_begin times with micros()). */
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
#endif

void setup()
{
#if defined(ARDUINO_ARCH_ESP32)
    Serial.setRxBufferSize(TINYGMM_RX_BUFFER_BYTES);
#endif
    Serial.begin(TINYGMM_BAUD);
    while (!Serial) { /* boards with native USB: wait for the host to open the port */
    }
#if defined(__AVR__)
    timer1_start();
    tinygmm_serial_begin(Serial, clock_cycles, "cycles");
#else
    tinygmm_serial_begin(Serial);
#endif
}

void loop() { tinygmm_serial_poll(); }
