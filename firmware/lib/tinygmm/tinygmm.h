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
/* Largest component count: sizes the first-row cache of predict and score (8 bytes per
 * component of stack); set the same way as TINYGMM_MAX_FEATURES. */
#ifndef TINYGMM_MAX_COMPONENTS
#define TINYGMM_MAX_COMPONENTS 16
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
    TINYGMM_ERR_MODEL = 4,        /* unknown covariance type, K or D of 0 or above TINYGMM_MAX_* */
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
    if (m->n_components == 0 || D == 0 || D > TINYGMM_MAX_FEATURES ||
        m->n_components > TINYGMM_MAX_COMPONENTS || m->covariance_type > TINYGMM_SPHERICAL) {
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

/* 1 while a candidate log-joint `cand` of component k can still beat (limit, limit_k): it is
 * higher, or equal with a lower index (ties go to the lowest index). NaN never survives. */
static inline int tinygmm__alive(float cand, int k, float limit, int limit_k)
{
    return cand > limit || (cand == limit && k <= limit_k);
}

/* Add rows [from, D) of component k's quadratic form to *s and return bias_k - *s (the
 * log-joint once every row is in). Stops as soon as the component cannot beat
 * (limit, limit_k): the partial sum of squares only grows (round-to-nearest is monotone
 * and every term is >= 0), so a component pruned here would lose with all rows too, and
 * the pruning is exact. A NaN sum (inf - inf inside a row) is pruned as an overflow.
 * *alive is 0 when pruned. With from == D nothing is added and the value is re-derived
 * from *s by the same operation, so every path yields the same bits. */
static inline float tinygmm__rows(const tinygmm_model *m, const float *z, int k, int from, int to, float *s_io,
                                  float limit, int limit_k, int *alive)
{
    const int D = m->n_features;
    const int ct = m->covariance_type;
    const float bias = TINYGMM_READ_FLOAT(m->bias + k);
    const float *off = m->offset + (size_t)k * (size_t)D;
    const float *a = m->factor;
    float s = *s_io;
    float h = 0.0f;
    float cand = bias;
    int i, j;

    if (ct == TINYGMM_FULL) {
        a += (size_t)k * ((size_t)D * (size_t)(D + 1) / 2u) + (size_t)from * (size_t)(from + 1) / 2u;
    } else if (ct == TINYGMM_DIAG) {
        a += (size_t)k * (size_t)D;
    } else if (ct == TINYGMM_SPHERICAL) {
        h = TINYGMM_READ_FLOAT(a + k);
    }
    if (from >= to) {
        cand = (ct == TINYGMM_SPHERICAL) ? bias - s * h : bias - s;
    }
    for (i = from; i < to; ++i) {
        float y;
        if (ct == TINYGMM_FULL) {
            y = TINYGMM_READ_FLOAT(a) * z[0];
            for (j = 1; j <= i; ++j) {
                y += TINYGMM_READ_FLOAT(a + j) * z[j];
            }
            a += i + 1;
            y = y - TINYGMM_READ_FLOAT(off + i);
        } else if (ct == TINYGMM_DIAG) {
            y = (z[i] - TINYGMM_READ_FLOAT(off + i)) * TINYGMM_READ_FLOAT(a + i);
        } else { /* tied (z holds w = A z) and spherical */
            y = z[i] - TINYGMM_READ_FLOAT(off + i);
        }
        s += y * y;
        cand = (ct == TINYGMM_SPHERICAL) ? bias - s * h : bias - s;
        if (!tinygmm__alive(cand, k, limit, limit_k)) {
            break;
        }
    }
    *s_io = s;
    *alive = tinygmm__alive(cand, k, limit, limit_k);
    return cand;
}

/* Argmax of the log-joints (lowest index on ties). The first row of every component is
 * evaluated first (kept in s0/c0: partial sum and candidate); the component with the best
 * first row is finished first, and the others are pruned against it, most often straight
 * from their cached first row. */
static inline int tinygmm__argmax(const tinygmm_model *m, const float *z, float *s0, float *c0, float *best_out)
{
    const int K = m->n_components;
    const int D = m->n_features;
    float best = TINYGMM__NEG_INF;
    int best_k = K; /* sentinel above every index: the first finite or -inf result wins */
    int first = K;
    int k, alive;

    {
        /* Row 0 of every component, inline: the same operations as tinygmm__rows(k, 0, 1)
         * (0 + y*y == y*y exactly), without a call per component. */
        const int ct = m->covariance_type;
        const size_t step = (ct == TINYGMM_FULL) ? (size_t)D * (size_t)(D + 1) / 2u : (size_t)D;
        const float *a = m->factor;
        const float *off = m->offset;
        for (k = 0; k < K; ++k, off += D, a += step) {
            const float bias = TINYGMM_READ_FLOAT(m->bias + k);
            float y;
            if (ct == TINYGMM_FULL) {
                y = TINYGMM_READ_FLOAT(a) * z[0];
                y = y - TINYGMM_READ_FLOAT(off);
            } else if (ct == TINYGMM_DIAG) {
                y = (z[0] - TINYGMM_READ_FLOAT(off)) * TINYGMM_READ_FLOAT(a);
            } else {
                y = z[0] - TINYGMM_READ_FLOAT(off);
            }
            s0[k] = y * y;
            c0[k] = (ct == TINYGMM_SPHERICAL) ? bias - s0[k] * TINYGMM_READ_FLOAT(m->factor + k) : bias - s0[k];
            /* NaN (an overflowed row) never becomes first */
            if (first == K ? c0[k] == c0[k] : c0[k] > c0[first]) {
                first = k;
            }
        }
    }
    if (first == K) { /* every first row overflowed */
        *best_out = best;
        return 0;
    }
    for (k = first; k < K + first; ++k) {
        const int kk = (k < K) ? k : k - K;
        if (kk == first || tinygmm__alive(c0[kk], kk, best, best_k)) {
            float s = s0[kk];
            const float lj = tinygmm__rows(m, z, kk, 1, D, &s, best, best_k, &alive);
            if (alive) { /* survived the last row: strictly better, or equal with a lower index */
                best = lj;
                best_k = kk;
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
    int k, alive;
    if (st != TINYGMM_OK) {
        return st;
    }
    for (k = 0; k < m.n_components; ++k) {
        float s = 0.0f;
        const float lj = tinygmm__rows(&m, z, k, 0, m.n_features, &s, TINYGMM__NEG_INF, m.n_components, &alive);
        out[k] = alive ? lj : TINYGMM__NEG_INF;
        if (!alive || lj == TINYGMM__NEG_INF) {
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
    float s0[TINYGMM_MAX_COMPONENTS], c0[TINYGMM_MAX_COMPONENTS];
    float best;
    int k;
    tinygmm_status st = tinygmm__prepare(model, x, n_features, &m, z);
    if (st != TINYGMM_OK) {
        return st;
    }
    k = tinygmm__argmax(&m, z, s0, c0, &best);
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
    float s0[TINYGMM_MAX_COMPONENTS], c0[TINYGMM_MAX_COMPONENTS];
    float best, limit, sum = 1.0f;
    int k, top, alive;
    tinygmm_status st = tinygmm__prepare(model, x, n_features, &m, z);
    if (st != TINYGMM_OK) {
        return st;
    }
    top = tinygmm__argmax(&m, z, s0, c0, &best);
    if (best == TINYGMM__NEG_INF) {
        return TINYGMM_ERR_OVERFLOW;
    }
    limit = best - TINYGMM_LSE_PRUNE;
    for (k = 0; k < m.n_components; ++k) {
        if (k != top && tinygmm__alive(c0[k], k, limit, m.n_components)) {
            float s = s0[k];
            const float lj = tinygmm__rows(&m, z, k, 1, m.n_features, &s, limit, m.n_components, &alive);
            if (alive) {
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
