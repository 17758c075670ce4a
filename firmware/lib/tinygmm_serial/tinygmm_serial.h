/* tinygmm_serial.h -- the serial protocol (docs/protocol.md) on an Arduino Stream, in a test build only.
 *
 * Two calls put a firmware on speaking terms with `tinygmm verify`, the pytest plugin and `pio test`:
 *
 *     void setup() { Serial.begin(115200); tinygmm_serial_begin(Serial); ... }
 *     void loop()  { tinygmm_serial_poll(); ... }
 *
 * In a test build (TINYGMM_PROTO defined) begin prints the boot banner and poll feeds every received
 * byte to the protocol, which answers each complete line before returning; in any other build both
 * are empty inline functions and no protocol code is compiled. Keep loop() short between polls (no
 * long delay()): while it runs, only the core's receive ring holds the host's bytes.
 * The model the protocol serves is the header "tinygmm_model.h" (a model library generates one).
 */
#ifndef TINYGMM_SERIAL_H
#define TINYGMM_SERIAL_H

#include <Arduino.h>

#include "tinygmm_proto.h"

/* Bytes the port's receive ring holds while the sketch computes or writes (hello's rx=, which the
 * host's flow control keeps to). The core's ring of SERIAL_RX_BUFFER_SIZE (64 by default on AVR)
 * keeps one slot empty. On ESP32 the glue sets this size with Serial.setRxBufferSize(). Another
 * Stream (SoftwareSerial, USB CDC): define TINYGMM_RX_BUFFER_BYTES to what it holds. */
#ifndef TINYGMM_RX_BUFFER_BYTES
#if defined(ARDUINO_ARCH_ESP32)
#define TINYGMM_RX_BUFFER_BYTES 256
#elif defined(ARDUINO_ARCH_MBED) || defined(TEENSYDUINO)
/* USB CDC (Nano 33 BLE, Pico on the mbed core; Teensy): the core's ring (ArduinoCore-mbed's
 * RingBufferN<256>) is refilled from the USB endpoint, which holds the host back when it is full. */
#define TINYGMM_RX_BUFFER_BYTES 256
#elif defined(SERIAL_RX_BUFFER_SIZE)
#define TINYGMM_RX_BUFFER_BYTES (SERIAL_RX_BUFFER_SIZE - 1)
#else
#define TINYGMM_RX_BUFFER_BYTES 63
#endif
#endif

#if defined(TINYGMM_PROTO)
/* Starts the protocol on `port` (already begun) and prints the banner. `clock` times `bench`
 * (NULL: micros(), in "us"). */
void tinygmm_serial_begin(Stream &port, tinygmm_proto_clock_fn clock = NULL, const char *clock_unit = "us");
/* Feeds every byte `port` has received to the protocol. */
void tinygmm_serial_poll(void);
#else
static inline void tinygmm_serial_begin(Stream &, tinygmm_proto_clock_fn = NULL, const char * = "us") {}
static inline void tinygmm_serial_poll(void) {}
#endif

#endif /* TINYGMM_SERIAL_H */
