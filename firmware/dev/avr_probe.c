/* avr_probe.c -- smallest program using every core entry point with one rendered model,
 * built with avr-gcc to measure what the core and the model cost on the Uno (flash and RAM)
 * and to check that the model data lands in flash. Inputs and outputs go through volatiles
 * so nothing is optimised away.
 * Build: avr-gcc -mmcu=atmega328p -Os -ffp-contract=off -I../lib/tinygmm
 *        -DPROBE_MODEL_HEADER='"model.h"' -DPROBE_MODEL=gmm_model avr_probe.c -lm
 * Without PROBE_MODEL_HEADER the program reads the same volatiles but calls nothing (the baseline). */
#include <stdint.h>

#ifdef PROBE_MODEL_HEADER
#include PROBE_MODEL_HEADER
#define PROBE_D TINYGMM_MAX_FEATURES
#else
#define PROBE_D 1
#endif

volatile float probe_in[PROBE_D];
volatile float probe_out;
volatile int probe_status;

int main(void)
{
    float x[PROBE_D];
    int i;
    for (i = 0; i < PROBE_D; ++i) {
        x[i] = probe_in[i];
    }
#ifdef PROBE_MODEL_HEADER
    {
        float lj[PROBE_MODEL_N_COMPONENTS];
        float score = 0.0f;
        int label = 0, flag = 0;
        probe_status = (int)tinygmm_predict(&PROBE_MODEL, x, PROBE_D, &label);
        probe_out = (float)label;
        probe_status = (int)tinygmm_score(&PROBE_MODEL, x, PROBE_D, &score);
        probe_out = score;
        probe_status = (int)tinygmm_log_joint(&PROBE_MODEL, x, PROBE_D, lj);
        probe_out = lj[0];
        probe_status = (int)tinygmm_predict_proba(&PROBE_MODEL, x, PROBE_D, lj);
        probe_out = lj[0];
        probe_status = (int)tinygmm_anomaly(&PROBE_MODEL, x, PROBE_D, &flag);
        probe_out = (float)flag;
    }
#else
    probe_out = x[0];
#endif
    for (;;) {
    }
}
