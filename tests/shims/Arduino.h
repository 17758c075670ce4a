/* A minimal stand-in for the Arduino core, enough to compile and run the Arduino glue on the
 * host: Serial reads stdin and writes stdout. Used where no ESP32 toolchain is reachable. */
#ifndef TINYGMM_TEST_ARDUINO_SHIM_H
#define TINYGMM_TEST_ARDUINO_SHIM_H

#include <stddef.h>
#include <stdint.h>

/* As in the Arduino cores, a serial port is a Stream: what tinygmm_serial.h takes. */
class Stream {
public:
    virtual int available() = 0;
    virtual int read() = 0;
    virtual size_t write(const uint8_t *data, size_t len) = 0;

protected:
    ~Stream() {}
};

class HardwareSerial : public Stream {
public:
    void begin(unsigned long baud);
    size_t setRxBufferSize(size_t size);
    explicit operator bool() const { return true; }
    int available() override;
    int read() override;
    size_t write(const uint8_t *data, size_t len) override;
    bool eof() const { return eof_; }

private:
    int next_ = -1;
    bool eof_ = false;
};

extern HardwareSerial Serial;
unsigned long micros();
void setup();
void loop();

#endif
