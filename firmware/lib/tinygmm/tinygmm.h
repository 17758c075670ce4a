/* tinygmm.h -- Gaussian mixture inference in float32 for microcontrollers (header only).
 *
 * C99 and C++11, no malloc, no double arithmetic, no global mutable state; every
 * function is `static inline`, so several translation units may include this file.
 * Model parameters are `static const` arrays written by `tinygmm render` (in PROGMEM
 * on AVR, read back with pgm_read_float; plain const, i.e. flash, elsewhere).
 * Build with -ffp-contract=off: the host twin (host/tinygmm/twin.py) reproduces the
 * log-joints bit for bit only if no multiply-add is fused.
 *
 * Per component k the log-joint is
 *     log_joint_k(x) = bias_k - ||y_k||^2
 * with every constant folded at export (bias_k = log w_k - D/2 log 2pi + log det L_k)
 * and the factors pre-multiplied by sqrt(1/2), so no 0.5 is applied on the device.
 * The input is first centred by the training mean c, z = x - c (exact for points near
 * the data, Sterbenz), which keeps large offsets (1e5) out of every later product:
 *   full       y_i = sum_{j<=i} A_ij z_j - b_ki   packed lower-triangular A_k, b_k = A_k m_k
 *   tied       the same with one shared A, so w = A z is computed once per call
 *   diag       y_i = (z_i - m_ki) * a_ki
 *   spherical  ||y||^2 = sum_i (z_i - m_ki)^2 * h_k, h_k = 1/(2 var_k)
 * where m_k is the component mean relative to c. A scaler is folded into A (exact in
 * float64 before the one rounding to float32) except for spherical models, which keep
 * a per-feature inverse scale applied once to z.
 *
 * The log-joint is the log-density of the *scaled* input (as the host's score_samples),
 * so the stored anomaly threshold applies to tinygmm_score directly.
 */
#ifndef TINYGMM_H
#define TINYGMM_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVR__)
#include <avr/pgmspace.h>
#define TINYGMM_PROGMEM PROGMEM
#define TINYGMM_READ_FLOAT(p) pgm_read_float(p)
#define TINYGMM_READ_MODEL(dst, src) memcpy_P((dst), (src), sizeof(*(dst)))
#else
#define TINYGMM_PROGMEM
#define TINYGMM_READ_FLOAT(p) (*(p))
#define TINYGMM_READ_MODEL(dst, src) (*(dst) = *(src))
#endif

/* avr-libc's double is float (32 bits) and its expf/logf are macros for exp/log, whose
 * double signature trips -Wdouble-promotion; explicit casts there cost nothing. */
#if defined(__AVR__)
#define TINYGMM__EXPF(v) ((float)exp((double)(v)))
#define TINYGMM__LOGF(v) ((float)log((double)(v)))
#else
#define TINYGMM__EXPF(v) expf(v)
#define TINYGMM__LOGF(v) logf(v)
#endif
/* INFINITY is a double on avr-libc. */
#define TINYGMM__NEG_INF (-(float)INFINITY)

/* Rendered model objects are static: a translation unit that includes a model header
 * without using it must not get a -Wunused warning. */
#if defined(__GNUC__) || defined(__clang__)
#define TINYGMM_UNUSED __attribute__((unused))
#else
#define TINYGMM_UNUSED
#endif

/* Largest feature count any included model may have: sizes the one stack buffer
 * (4 bytes per feature). A rendered model header sets it to its own D unless it is
 * already defined; define it yourself before the first include to mix models. */
#ifndef TINYGMM_MAX_FEATURES
#define TINYGMM_MAX_FEATURES 16
#endif

/* Log-sum-exp terms exp(d) with d < -17 are skipped: exp(-17) = 4.1e-8 < 2^-24, so
 * adding one to a running sum that starts at 1 cannot change a float32 (round to
 * nearest). Skipping them is therefore exact, not an approximation. */
#define TINYGMM_LSE_SKIP (-17.0f)
/* A component still more than 18 below the best log-joint after some rows is pruned
 * from the score: its final log-joint is lower still, so its term is skipped anyway
 * (18, not 17, leaves room for the rounding of best - 18). */
#define TINYGMM_LSE_PRUNE 18.0f

typedef enum tinygmm_status {
    TINYGMM_OK = 0,
    TINYGMM_ERR_FEATURES = 1,     /* n_features differs from the model's */
    TINYGMM_ERR_NONFINITE = 2,    /* an input is NaN or +-Inf */
    TINYGMM_ERR_OVERFLOW = 3,     /* the quadratic form overflows float32: every component's
                                     (predict, score, proba, anomaly) or some (log_joint) */
    TINYGMM_ERR_MODEL = 4,        /* unknown covariance type, K or D of 0, D > TINYGMM_MAX_FEATURES */
    TINYGMM_ERR_NO_THRESHOLD = 5  /* tinygmm_anomaly on a model saved without a threshold */
} tinygmm_status;

enum {
    TINYGMM_FULL = 0,
    TINYGMM_TIED = 1,
    TINYGMM_DIAG = 2,
    TINYGMM_SPHERICAL = 3
};

/* A model as rendered by `tinygmm render`; K components, D features. On AVR the struct
 * itself lives in PROGMEM too and is copied to the stack (about 16 bytes) per call. */
typedef struct tinygmm_model {
    const float *centre;     /* (D) training mean, subtracted from x first */
    const float *inv_scale;  /* (D) 1/scale applied after centring, or NULL (scaler folded) */
    const float *bias;       /* (K) log w_k - D/2 log 2pi + log det L_k */
    const float *offset;     /* (K*D) full/tied: b_k = A_k m_k; diag/spherical: m_k */
    const float *factor;     /* full (K * D(D+1)/2), tied (D(D+1)/2) packed rows of A;
                                diag (K*D) a_k; spherical (K) h_k */
    float anomaly_threshold; /* on tinygmm_score; valid if has_threshold */
    uint8_t n_components;
    uint8_t n_features;
    uint8_t covariance_type; /* TINYGMM_FULL ... TINYGMM_SPHERICAL */
    uint8_t has_threshold;
} tinygmm_model;

static inline int tinygmm_n_components(const tinygmm_model *model)
{
    tinygmm_model m;
    TINYGMM_READ_MODEL(&m, model);
    return m.n_components;
}

static inline int tinygmm_n_features(const tinygmm_model *model)
{
    tinygmm_model m;
    TINYGMM_READ_MODEL(&m, model);
    return m.n_features;
}

/* ---- internals ---------------------------------------------------------------- */

/* Finite test on the bits (no libm, same on every target). */
static inline int tinygmm__finite(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (u & UINT32_C(0x7F800000)) != UINT32_C(0x7F800000);
}

/* Read the model header and turn x into z: centred, scaled if the model keeps a
 * scale, and for tied models multiplied by the shared factor (w = A z). */
static inline tinygmm_status tinygmm__prepare(const tinygmm_model *model, const float *x, int n_features,
                                              tinygmm_model *m, float *z)
{
    int D, i, j;
    TINYGMM_READ_MODEL(m, model);
    D = m->n_features;
    if (m->n_components == 0 || D == 0 || D > TINYGMM_MAX_FEATURES || m->covariance_type > TINYGMM_SPHERICAL) {
        return TINYGMM_ERR_MODEL;
    }
    if (n_features != D) {
        return TINYGMM_ERR_FEATURES;
    }
    for (i = 0; i < D; ++i) {
        if (!tinygmm__finite(x[i])) {
            return TINYGMM_ERR_NONFINITE;
        }
    }
    for (i = 0; i < D; ++i) {
        z[i] = x[i] - TINYGMM_READ_FLOAT(m->centre + i);
        if (m->inv_scale != NULL) {
            z[i] = z[i] * TINYGMM_READ_FLOAT(m->inv_scale + i);
        }
    }
    if (m->covariance_type == TINYGMM_TIED) {
        /* In place from the last row down: row i reads z[0..i], which are still untouched. */
        for (i = D - 1; i >= 0; --i) {
            const float *a = m->factor + (size_t)i * (size_t)(i + 1) / 2u;
            float acc = TINYGMM_READ_FLOAT(a) * z[0];
            for (j = 1; j <= i; ++j) {
                acc += TINYGMM_READ_FLOAT(a + j) * z[j];
            }
            z[i] = acc;
        }
    }
    /* A finite x can still leave float32's range once centred or scaled (|x - c| > FLT_MAX):
     * then the quadratic form overflows for every component. */
    for (i = 0; i < D; ++i) {
        if (!tinygmm__finite(z[i])) {
            return TINYGMM_ERR_OVERFLOW;
        }
    }
    return TINYGMM_OK;
}

/* Evaluate the first `rows` rows of component k's quadratic form and return
 * bias_k - partial sum. Stops as soon as the component cannot beat (limit, limit_k):
 * it survives while cand > limit, or cand == limit and k <= limit_k (lower index wins
 * ties). The partial sum of squares only grows (round-to-nearest is monotone and
 * every term is >= 0), so a component pruned here would lose with all rows too: the
 * pruning is exact. A NaN sum (inf - inf inside a row) is pruned as an overflow.
 * *done is 1 when all D rows were evaluated without pruning; the value returned is
 * then the log-joint, bit for bit what tinygmm_log_joint stores. */
static inline float tinygmm__eval(const tinygmm_model *m, const float *z, int k, int rows, float limit, int limit_k,
                                  int *done)
{
    const int D = m->n_features;
    const float bias = TINYGMM_READ_FLOAT(m->bias + k);
    const float *off = m->offset + (size_t)k * (size_t)D;
    const float *a = m->factor;
    float s = 0.0f;
    float cand = bias;
    float h = 0.0f;
    int i, j;

    if (m->covariance_type == TINYGMM_FULL) {
        a += (size_t)k * ((size_t)D * (size_t)(D + 1) / 2u);
    } else if (m->covariance_type == TINYGMM_DIAG) {
        a += (size_t)k * (size_t)D;
    } else if (m->covariance_type == TINYGMM_SPHERICAL) {
        h = TINYGMM_READ_FLOAT(a + k);
    }
    for (i = 0; i < rows; ++i) {
        float y;
        switch (m->covariance_type) {
        case TINYGMM_FULL:
            y = TINYGMM_READ_FLOAT(a) * z[0];
            for (j = 1; j <= i; ++j) {
                y += TINYGMM_READ_FLOAT(a + j) * z[j];
            }
            a += i + 1;
            y = y - TINYGMM_READ_FLOAT(off + i);
            break;
        case TINYGMM_TIED: /* z already holds w = A z */
            y = z[i] - TINYGMM_READ_FLOAT(off + i);
            break;
        case TINYGMM_DIAG:
            y = (z[i] - TINYGMM_READ_FLOAT(off + i)) * TINYGMM_READ_FLOAT(a + i);
            break;
        default: /* TINYGMM_SPHERICAL */
            y = z[i] - TINYGMM_READ_FLOAT(off + i);
            break;
        }
        s += y * y;
        cand = (m->covariance_type == TINYGMM_SPHERICAL) ? bias - s * h : bias - s;
        if (!(cand > limit || (cand == limit && k <= limit_k))) {
            *done = 0;
            return cand;
        }
    }
    *done = (rows == D);
    return cand;
}

/* Argmax of the log-joints (lowest index on ties), evaluating the component with
 * the best first row first and pruning the rest against it. */
static inline int tinygmm__argmax(const tinygmm_model *m, const float *z, float *best_out)
{
    const int K = m->n_components;
    const int D = m->n_features;
    float best = TINYGMM__NEG_INF;
    int best_k = K; /* sentinel above every index: the first finite or -inf result wins */
    int first = 0;
    int k, done;

    if (K > 1 && D > 1) {
        float first_cand = TINYGMM__NEG_INF;
        int first_k = K;
        for (k = 0; k < K; ++k) {
            const float c = tinygmm__eval(m, z, k, 1, TINYGMM__NEG_INF, K, &done);
            if (c > first_cand || (c == first_cand && k < first_k)) {
                first_cand = c;
                first_k = k;
            }
        }
        first = (first_k < K) ? first_k : 0;
    }
    {
        const float lj = tinygmm__eval(m, z, first, D, TINYGMM__NEG_INF, K, &done);
        if (done) {
            best = lj;
            best_k = first;
        }
    }
    for (k = 0; k < K; ++k) {
        if (k != first) {
            const float lj = tinygmm__eval(m, z, k, D, best, best_k, &done);
            if (done) { /* survived the last row: strictly better, or equal with a lower index */
                best = lj;
                best_k = k;
            }
        }
    }
    *best_out = best;
    return best_k;
}

/* ---- public API ----------------------------------------------------------------- */

/* out[k] = log-joint of component k (K floats). TINYGMM_ERR_OVERFLOW if any component's
 * quadratic form overflowed; that entry is -INFINITY and the others are valid. */
static inline tinygmm_status tinygmm_log_joint(const tinygmm_model *model, const float *x, int n_features, float *out)
{
    tinygmm_model m;
    float z[TINYGMM_MAX_FEATURES];
    tinygmm_status st = tinygmm__prepare(model, x, n_features, &m, z);
    int k, done;
    if (st != TINYGMM_OK) {
        return st;
    }
    for (k = 0; k < m.n_components; ++k) {
        const float lj = tinygmm__eval(&m, z, k, m.n_features, TINYGMM__NEG_INF, m.n_components, &done);
        out[k] = done ? lj : TINYGMM__NEG_INF;
        if (!done || lj == TINYGMM__NEG_INF) {
            st = TINYGMM_ERR_OVERFLOW;
        }
    }
    return st;
}

/* *label = the most likely component (argmax of the log-joints, no exp; lowest index on ties). */
static inline tinygmm_status tinygmm_predict(const tinygmm_model *model, const float *x, int n_features, int *label)
{
    tinygmm_model m;
    float z[TINYGMM_MAX_FEATURES];
    float best;
    int k;
    tinygmm_status st = tinygmm__prepare(model, x, n_features, &m, z);
    if (st != TINYGMM_OK) {
        return st;
    }
    k = tinygmm__argmax(&m, z, &best);
    if (best == TINYGMM__NEG_INF) {
        return TINYGMM_ERR_OVERFLOW;
    }
    *label = k;
    return TINYGMM_OK;
}

/* *score = log p(x) = m + log(1 + sum_{k != argmax} exp(lj_k - m)), m the largest
 * log-joint; the terms are added in index order. Components that cannot reach
 * m - 17 are pruned (exact, see TINYGMM_LSE_SKIP). */
static inline tinygmm_status tinygmm_score(const tinygmm_model *model, const float *x, int n_features, float *score)
{
    tinygmm_model m;
    float z[TINYGMM_MAX_FEATURES];
    float best, limit, sum = 1.0f;
    int k, top, done;
    tinygmm_status st = tinygmm__prepare(model, x, n_features, &m, z);
    if (st != TINYGMM_OK) {
        return st;
    }
    top = tinygmm__argmax(&m, z, &best);
    if (best == TINYGMM__NEG_INF) {
        return TINYGMM_ERR_OVERFLOW;
    }
    limit = best - TINYGMM_LSE_PRUNE;
    for (k = 0; k < m.n_components; ++k) {
        if (k != top) {
            const float lj = tinygmm__eval(&m, z, k, m.n_features, limit, m.n_components, &done);
            if (done) {
                const float d = lj - best;
                if (!(d < TINYGMM_LSE_SKIP)) {
                    sum += TINYGMM__EXPF(d);
                }
            }
        }
    }
    *score = (sum == 1.0f) ? best : best + TINYGMM__LOGF(sum);
    return TINYGMM_OK;
}

/* proba[k] = posterior of component k (K floats): exp(lj_k - m) / (1 + sum_{k != argmax} exp(lj_k - m)). */
static inline tinygmm_status tinygmm_predict_proba(const tinygmm_model *model, const float *x, int n_features,
                                                   float *proba)
{
    float best = TINYGMM__NEG_INF, sum = 1.0f;
    int k, K, top = 0;
    tinygmm_status st = tinygmm_log_joint(model, x, n_features, proba);
    if (st != TINYGMM_OK && st != TINYGMM_ERR_OVERFLOW) {
        return st;
    }
    K = tinygmm_n_components(model);
    for (k = 0; k < K; ++k) {
        if (proba[k] > best) {
            best = proba[k];
            top = k;
        }
    }
    if (best == TINYGMM__NEG_INF) {
        return TINYGMM_ERR_OVERFLOW;
    }
    for (k = 0; k < K; ++k) {
        proba[k] = (k == top) ? 1.0f : TINYGMM__EXPF(proba[k] - best);
        if (k != top) {
            sum += proba[k];
        }
    }
    for (k = 0; k < K; ++k) {
        proba[k] = proba[k] / sum;
    }
    return TINYGMM_OK;
}

/* *is_anomaly = tinygmm_score(x) < threshold. */
static inline tinygmm_status tinygmm_anomaly_at(const tinygmm_model *model, const float *x, int n_features,
                                                float threshold, int *is_anomaly)
{
    float score;
    const tinygmm_status st = tinygmm_score(model, x, n_features, &score);
    if (st == TINYGMM_OK) {
        *is_anomaly = score < threshold;
    }
    return st;
}

/* *is_anomaly = tinygmm_score(x) < the threshold stored with the model. */
static inline tinygmm_status tinygmm_anomaly(const tinygmm_model *model, const float *x, int n_features,
                                             int *is_anomaly)
{
    tinygmm_model m;
    TINYGMM_READ_MODEL(&m, model);
    if (!m.has_threshold) {
        return TINYGMM_ERR_NO_THRESHOLD;
    }
    return tinygmm_anomaly_at(model, x, n_features, m.anomaly_threshold, is_anomaly);
}

#endif /* TINYGMM_H */
