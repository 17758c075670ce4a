/* A user's own firmware, native variant (its main() instead of setup()/loop()): reads a stand-in
 * sensor, labels each reading with the room_sensor model and prints it. Its test build (the macro
 * TINYGMM_PROTO, which `tinygmm verify` and `pio test` add) also answers tinygmm on stdin/stdout
 * through the protocol's plain C hook, and runs until stdin ends; the normal build prints
 * READINGS readings and exits. Readings print as exact hex floats, so a test can recompute them. */
#define _POSIX_C_SOURCE 200809L

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <room_sensor.h>
#ifdef TINYGMM_PROTO
#include <tinygmm_proto.h>
#endif

#define READINGS 60

static void read_sensor(int t, float *x)
{
    x[0] = -4.0f + 0.25f * (float)(t % 40);
    x[1] = 6.0f - 0.3f * (float)(t % 17);
}

static void report(int t)
{
    float x[ROOM_SENSOR_N_FEATURES];
    int component = -1;
    float score = 0.0f;
    read_sensor(t, x);
    if (tinygmm_predict(&room_sensor, x, ROOM_SENSOR_N_FEATURES, &component) != TINYGMM_OK
        || tinygmm_score(&room_sensor, x, ROOM_SENSOR_N_FEATURES, &score) != TINYGMM_OK) {
        printf("sensor: unusable reading\n");
        return;
    }
    printf("sensor: x %a %a component %d log-density %a\n", (double)x[0], (double)x[1], component, (double)score);
}

#ifdef TINYGMM_PROTO
static void write_reply(void *user, const uint8_t *data, size_t len)
{
    (void)user;
    while (len > 0) {
        const ssize_t n = write(STDOUT_FILENO, data, len);
        if (n <= 0) {
            _exit(1);
        }
        data += n;
        len -= (size_t)n;
    }
}
#endif

int main(void)
{
    int t;
#ifdef TINYGMM_PROTO
    static tinygmm_proto proto;
    tinygmm_proto_config cfg = {"native", 4096, "us", NULL, write_reply, NULL, NULL};
    tinygmm_proto_init(&proto, &cfg);
    tinygmm_proto_banner(&proto);
#endif
    setvbuf(stdout, NULL, _IOLBF, 0); /* whole lines, never half of one beside a reply */
    for (t = 0;; ++t) {
#ifdef TINYGMM_PROTO
        struct pollfd in = {STDIN_FILENO, POLLIN, 0};
        uint8_t buf[256];
        ssize_t n = 0, i;
        if (poll(&in, 1, 10) > 0) { /* the sensor's 10 ms period, spent listening */
            n = read(STDIN_FILENO, buf, sizeof buf);
            if (n <= 0) {
                return 0; /* the host hung up */
            }
        }
        for (i = 0; i < n; ++i) {
            tinygmm_proto_feed(&proto, buf[i]);
        }
        if (t % 10 != 0) {
            continue;
        }
#else
        if (t == READINGS) {
            return 0;
        }
#endif
        report(t);
    }
}
