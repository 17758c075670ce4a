/* tinygmm_driver.c -- host test driver: evaluates many points per process for the pytest suite.
 *
 * Build (C or C++, see tests/test_core_c.py) with either
 *   -DDRIVER_MODEL_HEADER='"path/model.h"' -DDRIVER_MODEL=name   the rendered model header, or
 *   nothing: the model is read from stdin (float32 arrays laid out as tinygmm_model).
 * stdin (native-endian):
 *   [runtime model only] int32 K, D, covariance_type, has_inv_scale, has_threshold, lead; float32
 *   threshold, centre[D], inv_scale[D] (if present), bias[K], offset[K*D], factor[n]
 *   then int32 n_given, int32 N, float32 x[N][n_given] (n_given is passed as n_features)
 * stdout per point: int32 status and value of each API call, see RECORD in the tests.
 */
#include <stdio.h>
#include <stdlib.h>

#include "tinygmm_driver.h"

static void die(const char *what)
{
    fprintf(stderr, "tinygmm_driver: %s\n", what);
    exit(2);
}

static void read_exact(void *dst, size_t size, size_t count)
{
    if (count != 0 && fread(dst, size, count, stdin) != count) {
        die("short read on stdin");
    }
}

static int32_t read_i32(void)
{
    int32_t v;
    read_exact(&v, sizeof v, 1);
    return v;
}

static float *read_floats(size_t n)
{
    float *p = (float *)malloc((n ? n : 1) * sizeof(float));
    if (p == NULL) {
        die("out of memory");
    }
    read_exact(p, sizeof(float), n);
    return p;
}

static void put_i32(int32_t v) { fwrite(&v, sizeof v, 1, stdout); }
static void put_f32(float v) { fwrite(&v, sizeof v, 1, stdout); }

/* The score from the log-joints, by the formula tinygmm_score documents but without its
 * pruning: equal bit for bit iff the pruning is exact. */
static float score_from_log_joint(const float *lj, int K)
{
    float best = lj[0], sum = 1.0f;
    int k, top = 0;
    for (k = 1; k < K; ++k) {
        if (lj[k] > best) {
            best = lj[k];
            top = k;
        }
    }
    for (k = 0; k < K; ++k) {
        if (k != top) {
            const float d = lj[k] - best;
            if (!(d < TINYGMM_LSE_SKIP)) {
                sum += expf(d);
            }
        }
    }
    return (sum == 1.0f) ? best : best + logf(sum);
}

int main(void)
{
    const tinygmm_model *model;
    int32_t K, D, n_given, N, i, k;
    float *x, *lj, *proba;
#ifdef DRIVER_MODEL_HEADER
    model = &DRIVER_MODEL;
    K = tinygmm_n_components(model);
    D = tinygmm_n_features(model);
    (void)D;
#else
    static tinygmm_model runtime;
    int32_t ct, has_scale, has_thr, lead;
    size_t n_factor;
    K = read_i32();
    D = read_i32();
    ct = read_i32();
    has_scale = read_i32();
    has_thr = read_i32();
    lead = read_i32();
    if (K < 1 || K > 255 || D < 1 || D > 255 || ct < 0 || ct > 3 || lead < 0 || lead >= D) {
        die("bad model header");
    }
    read_exact(&runtime.anomaly_threshold, sizeof(float), 1);
    runtime.centre = read_floats((size_t)D);
    runtime.inv_scale = has_scale ? read_floats((size_t)D) : NULL;
    runtime.bias = read_floats((size_t)K);
    runtime.offset = read_floats((size_t)K * (size_t)D);
    n_factor = ct == TINYGMM_FULL   ? (size_t)K * (size_t)D * (size_t)(D + 1) / 2u
               : ct == TINYGMM_TIED ? (size_t)D * (size_t)(D + 1) / 2u
               : ct == TINYGMM_DIAG ? (size_t)K * (size_t)D
                                    : (size_t)K;
    runtime.factor = read_floats(n_factor);
    runtime.tied_bias = ct == TINYGMM_TIED ? read_floats((size_t)K) : NULL;
    runtime.n_components = (uint8_t)K;
    runtime.n_features = (uint8_t)D;
    runtime.covariance_type = (uint8_t)ct;
    runtime.has_threshold = (uint8_t)(has_thr != 0);
    runtime.lead = (uint8_t)lead;
    model = &runtime;
#endif
    n_given = read_i32();
    N = read_i32();
    if (n_given < 0 || N < 0) {
        die("bad batch header");
    }
    x = read_floats((size_t)n_given * (size_t)N);
    lj = read_floats(0);
    proba = read_floats(0);
    lj = (float *)realloc(lj, (size_t)K * sizeof(float));
    proba = (float *)realloc(proba, (size_t)K * sizeof(float));
    if (lj == NULL || proba == NULL) {
        die("out of memory");
    }
    for (i = 0; i < N; ++i) {
        const float *xi = x + (size_t)i * (size_t)n_given;
        int label = -1, label2 = -1, flag = 0;
        float score = 0.0f;
        tinygmm_status st;

        st = tinygmm_predict(model, xi, n_given, &label);
        put_i32((int32_t)st);
        put_i32(st == TINYGMM_OK ? label : -1);

        st = tinygmm_log_joint(model, xi, n_given, lj);
        put_i32((int32_t)st);
        for (k = 0; k < K; ++k) {
            put_f32((st == TINYGMM_OK || st == TINYGMM_ERR_OVERFLOW) ? lj[k] : NAN);
        }
        put_f32((st == TINYGMM_OK || st == TINYGMM_ERR_OVERFLOW) ? score_from_log_joint(lj, K) : NAN);

        st = tinygmm_score(model, xi, n_given, &score);
        put_i32((int32_t)st);
        put_f32(st == TINYGMM_OK ? score : NAN);

        st = tinygmm_predict_proba(model, xi, n_given, proba);
        put_i32((int32_t)st);
        for (k = 0; k < K; ++k) {
            put_f32(st == TINYGMM_OK ? proba[k] : NAN);
        }

        st = tinygmm_anomaly(model, xi, n_given, &flag);
        put_i32((int32_t)st);
        put_i32(st == TINYGMM_OK ? flag : 0);

        st = (tinygmm_status)driver_tu2_predict(model, xi, n_given, &label2);
        put_i32((int32_t)st);
        put_i32(st == TINYGMM_OK ? label2 : -1);
    }
    free(x);
    free(lj);
    free(proba);
    return fflush(stdout) == 0 ? 0 : 1;
}
