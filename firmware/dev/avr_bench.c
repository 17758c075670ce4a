/* avr_bench.c -- cycle counts of tinygmm_predict and tinygmm_score on the ATmega328P, run by
 * simavr_cycles (bench/device_cost.py builds it). Points come from BENCH_POINTS_HEADER
 * (BENCH_N points of the model's D floats, in PROGMEM). Interrupts stay off: counts are exact.
 * Tags: 2 = empty call (overhead), 3 = predict (result: label), 4 = score (result: status). */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
#include <stdint.h>

#include BENCH_MODEL_HEADER
#include BENCH_POINTS_HEADER

#define D GMM_MODEL_N_FEATURES

static float bench_x[D];
static volatile float bench_sink;

__attribute__((noinline)) static int empty_call(const float *x)
{
    __asm__ __volatile__("" ::: "memory");
    return (int)x[0];
}

__attribute__((noinline)) static int predict_call(const float *x)
{
    int label = -1;
    return tinygmm_predict(&gmm_model, x, D, &label) == TINYGMM_OK ? label : 255;
}

__attribute__((noinline)) static int score_call(const float *x)
{
    float s = 0.0f;
    const tinygmm_status st = tinygmm_score(&gmm_model, x, D, &s);
    bench_sink = s;
    return (int)st;
}

int main(void)
{
    uint16_t i;
    int r;
    cli();
    for (i = 0; i < BENCH_N; ++i) {
        memcpy_P(bench_x, bench_points[i], sizeof bench_x);
        GPIOR0 = 1;
        r = empty_call(bench_x);
        GPIOR0 = 2;
        GPIOR1 = (uint8_t)r;
        GPIOR0 = 1;
        r = predict_call(bench_x);
        GPIOR0 = 3;
        GPIOR1 = (uint8_t)r;
        GPIOR0 = 1;
        r = score_call(bench_x);
        GPIOR0 = 4;
        GPIOR1 = (uint8_t)r;
    }
    sleep_enable();
    for (;;) {
        sleep_cpu();
    }
}
