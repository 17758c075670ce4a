/* tinygmm_serial.cpp -- tinygmm_serial.h's two calls: the protocol on an Arduino Stream.
 * Compiled to nothing outside a test build (TINYGMM_PROTO) and off Arduino. */
#if defined(TINYGMM_PROTO) && defined(ARDUINO)

#include "tinygmm_serial.h"

/* The name hello reports; the host checks it is the board under test. */
#ifndef TINYGMM_TARGET
#if defined(ARDUINO_AVR_UNO)
#define TINYGMM_TARGET "uno"
#elif defined(ARDUINO_ARCH_ESP32)
#define TINYGMM_TARGET "esp32"
#else
#define TINYGMM_TARGET "arduino"
#endif
#endif

/* A byte may still be in the UART's own receive register when the host counts it as sent. */
#define TINYGMM_RX_SLACK 2

static tinygmm_proto proto;
static Stream *link_port;

static void write_reply(void *user, const uint8_t *data, size_t len)
{
    (void)user;
    link_port->write(data, len);
}

static uint32_t clock_us(void) { return (uint32_t)micros(); }

void tinygmm_serial_begin(Stream &port, tinygmm_proto_clock_fn clock, const char *clock_unit)
{
    tinygmm_proto_config cfg;
    link_port = &port;
    cfg.target = TINYGMM_TARGET;
    cfg.rx_buffer = TINYGMM_RX_BUFFER_BYTES - TINYGMM_RX_SLACK;
    cfg.clock_unit = clock != NULL ? clock_unit : "us";
    cfg.clock = clock != NULL ? clock : clock_us;
    cfg.write = write_reply;
    cfg.user = NULL;
    cfg.poll = NULL; /* the receive interrupt fills the ring: nothing to drain during work */
    tinygmm_proto_init(&proto, &cfg);
    tinygmm_proto_banner(&proto);
}

void tinygmm_serial_poll(void)
{
    while (link_port != NULL && link_port->available() > 0) {
        tinygmm_proto_feed(&proto, (uint8_t)link_port->read());
    }
}

#endif
