/* The shim's Serial (stdin/stdout) and a main() that runs setup() then loop() until stdin ends. */
#include "Arduino.h"

#include <chrono>
#include <cstdio>
#include <poll.h>
#include <unistd.h>

HardwareSerial Serial;

void HardwareSerial::begin(unsigned long) { setvbuf(stdout, NULL, _IONBF, 0); }
size_t HardwareSerial::setRxBufferSize(size_t size) { return size; }

int HardwareSerial::available()
{
    /* non-blocking, as on a board: a byte is available only once it has arrived */
    if (next_ < 0 && !eof_) {
        struct pollfd fd = {0, POLLIN, 0};
        if (poll(&fd, 1, 0) > 0) {
            unsigned char c;
            const ssize_t n = ::read(0, &c, 1);
            eof_ = n <= 0;
            next_ = n == 1 ? c : -1;
        }
    }
    return next_ >= 0 ? 1 : 0;
}

int HardwareSerial::read()
{
    const int c = available() ? next_ : -1;
    next_ = -1;
    return c;
}

size_t HardwareSerial::write(const uint8_t *data, size_t len) { return fwrite(data, 1, len, stdout); }

unsigned long micros()
{
    using namespace std::chrono;
    return (unsigned long)duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

int main()
{
    setup();
    while (!Serial.eof()) {
        loop();
    }
    return 0;
}
