/* A user's own Arduino firmware, as tinygmm's tests imagine one: it reads a (stand-in) sensor every
 * 200 ms, labels each reading with the room_sensor model and prints it, and blinks the LED on an
 * anomaly. Written against the library `tinygmm export --library` made (lib_deps), not against the
 * generated project: its only tinygmm-specific lines are the model calls and the two hook calls. */
#include <Arduino.h>
#include <room_sensor.h>
#include <tinygmm_serial.h>

static unsigned long last_reading;
static unsigned int reading_count;

/* The stand-in sensor: a slow sweep over the data's range (two features). */
static void read_sensor(float *x)
{
    const int t = (int)(reading_count % 40u);
    x[0] = -4.0f + 0.25f * (float)t;
    x[1] = 6.0f - 0.3f * (float)(t % 17);
}

void setup()
{
    pinMode(LED_BUILTIN, OUTPUT);
    Serial.begin(115200);
    tinygmm_serial_begin(Serial); /* the test build answers tinygmm on Serial; a no-op otherwise */
}

void loop()
{
    float x[ROOM_SENSOR_N_FEATURES];
    int component = -1, anomaly = 0;
    float score = 0.0f;

    tinygmm_serial_poll();
    if (millis() - last_reading < 200) {
        return;
    }
    last_reading = millis();
    read_sensor(x);
    ++reading_count;
    if (tinygmm_predict(&room_sensor, x, ROOM_SENSOR_N_FEATURES, &component) != TINYGMM_OK
        || tinygmm_score(&room_sensor, x, ROOM_SENSOR_N_FEATURES, &score) != TINYGMM_OK
        || tinygmm_anomaly(&room_sensor, x, ROOM_SENSOR_N_FEATURES, &anomaly) != TINYGMM_OK) {
        Serial.println(F("sensor: unusable reading"));
        return;
    }
    digitalWrite(LED_BUILTIN, anomaly ? HIGH : LOW);
    Serial.print(F("sensor: component "));
    Serial.print(component);
    Serial.print(F(" log-density "));
    Serial.println((double)score, 2);
}
