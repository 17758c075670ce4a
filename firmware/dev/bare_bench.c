/* bare_bench.c -- instructions of tinygmm_predict / tinygmm_score (and of emlearn's generated code for
 * the same model) on a CPU class in QEMU, counted by the bare glue's exact counter (src/bare/bare.h).
 *
 * Built by bench/device_cost.py with the class's flags (its board manifest in
 * pio-offline/platforms/tinygmm-qemu) around three headers: BENCH_MODEL_HEADER (tinygmm's model,
 * gmm_model), BENCH_POINTS_HEADER (bench_points[BENCH_N][D] in flash) and, optionally,
 * BENCH_EMLEARN_HEADER (emlearn's code for the same model, bench_eml_* functions). One line per
 * point on the UART: empty predict label score emlearn_predict emlearn_label emlearn_score (the
 * empty measurement is the counter's own cost, subtracted by the host), then "end".
 * With BENCH_CALIBRATE instead: the instructions of blocks of 1000 and 3000 nops (a test checks
 * that they differ by exactly 2000).
 */
#include <stdint.h>
#include <string.h>

#include "bare.h"

static void put_number(uint32_t v)
{
    char digits[12];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    while (n > 0) {
        bare_uart_write((uint8_t)digits[--n]);
    }
}

static void put_row(const uint32_t *values, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        if (i > 0) {
            bare_uart_write(' ');
        }
        put_number(values[i]);
    }
    bare_uart_write('\n');
}

#if defined(BENCH_CALIBRATE)
#define NOP10 "nop\n\tnop\n\tnop\n\tnop\n\tnop\n\tnop\n\tnop\n\tnop\n\tnop\n\tnop\n\t"
#define NOP100 NOP10 NOP10 NOP10 NOP10 NOP10 NOP10 NOP10 NOP10 NOP10 NOP10
#define NOP1000 NOP100 NOP100 NOP100 NOP100 NOP100 NOP100 NOP100 NOP100 NOP100 NOP100

/* Two functions that differ only in their nops, so the counter's own cost is the same in both. */
#define MEASURE(name, nops)                                                                            \
    __attribute__((noinline)) static uint32_t name(void)                                              \
    {                                                                                                  \
        const uint32_t t0 = bare_instructions();                                                       \
        __asm volatile(nops);                                                                          \
        return bare_instructions() - t0;                                                               \
    }
MEASURE(nops_1000, NOP1000)
MEASURE(nops_3000, NOP1000 NOP1000 NOP1000)

static void bench(void)
{
    uint32_t row[2];
    row[0] = nops_1000();
    row[1] = nops_3000();
    put_row(row, 2);
}
#else
#include BENCH_MODEL_HEADER
#include BENCH_POINTS_HEADER
#if defined(BENCH_EMLEARN_HEADER)
#include BENCH_EMLEARN_HEADER
#endif

#define D TINYGMM_MAX_FEATURES
#define K GMM_MODEL_N_COMPONENTS

/* emlearn has no predict: the argmax of its log-probabilities, as its Python wrapper does. */
static int32_t eml_label(const float *x, float *lp)
{
#if defined(BENCH_EMLEARN_HEADER)
    int32_t best = 0, k;
    (void)bench_eml_predict_log_proba(x, D, lp);
    for (k = 1; k < K; ++k) {
        if (lp[k] > lp[best]) {
            best = k;
        }
    }
    return best;
#else
    (void)x;
    (void)lp;
    return -1;
#endif
}

static void bench(void)
{
    int i;
    for (i = 0; i < BENCH_N; ++i) {
        static volatile float sink;
        float x[D], lp[K], score = 0.0f;
        int label = -1;
        uint32_t t0, t1, row[7] = {0, 0, 0, 0, 0, 0, 0};
        memcpy(x, bench_points[i], sizeof x);
        t0 = bare_instructions();
        t1 = bare_instructions();
        row[0] = t1 - t0;
        t0 = bare_instructions();
        (void)tinygmm_predict(&gmm_model, x, D, &label);
        t1 = bare_instructions();
        row[1] = t1 - t0;
        row[2] = (uint32_t)label;
        t0 = bare_instructions();
        (void)tinygmm_score(&gmm_model, x, D, &score);
        t1 = bare_instructions();
        row[3] = t1 - t0;
        sink = score;
#if defined(BENCH_EMLEARN_HEADER)
        t0 = bare_instructions();
        label = (int)eml_label(x, lp);
        t1 = bare_instructions();
        row[4] = t1 - t0;
        row[5] = (uint32_t)label;
        t0 = bare_instructions();
        (void)bench_eml_score(x, D, lp, &score);
        t1 = bare_instructions();
        row[6] = t1 - t0;
        sink = score;
#else
        (void)eml_label(x, lp);
#endif
        (void)sink; /* read once outside the counts: without emlearn it is otherwise only set */
        put_row(row, 7);
    }
}
#endif

int main(void)
{
    bare_uart_init();
    bare_clock_init();
    bench();
    bare_uart_write('e');
    bare_uart_write('n');
    bare_uart_write('d');
    bare_uart_write('\n');
    for (;;) {
    }
}
