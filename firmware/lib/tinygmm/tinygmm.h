/* tinygmm.h -- Gaussian mixture inference in float32 for microcontrollers (header only).
 *
 * C99 and C++11, no malloc, no double arithmetic, no global mutable state; every
 * function is `static inline`, so several translation units may include this file.
 * Model parameters are `static const` arrays in the header `tinygmm export` writes (in PROGMEM
 * on AVR, read back with pgm_read_float; plain const, i.e. flash, elsewhere).
 * Build with -ffp-contract=off: the host twin (host/tinygmm/device/twin.py) reproduces the
 * log-joints bit for bit only if no multiply-add is fused.
 *
 * Per component k the log-joint is
 *     log_joint_k(x) = bias_k - ||y_k||^2
 * with every constant folded at export (bias_k = log w_k - D/2 log 2pi + log det L_k)
 * and the factors pre-multiplied by sqrt(1/2), so no 0.5 is applied on the device.
 * The input is first rotated into the model's feature order (feature 0 = input feature `lead`,
 * chosen at export so that row 0 prunes best) and centred by the training mean c, z = x - c
 * (exact for points near the data, Sterbenz), which keeps large offsets (1e5) out of every later product:
 *   full       y_i = sum_{j<=i} A_ij z_j - b_ki   packed lower-triangular A_k, b_k = A_k m_k
 *   tied       the same with one shared A, so w = A z is computed once per call
 *   diag       y_i = (z_i - m_ki) * a_ki
 *   spherical  ||y||^2 = sum_i (z_i - m_ki)^2 * h_k, h_k = 1/(2 var_k)
 * where m_k is the component mean relative to c. A scaler is folded into A (exact in
 * float64 before the one rounding to float32) except for spherical models, which keep
 * a per-feature inverse scale applied once to z.
 * For tied models predict uses the linear score t_k = c_k + b_k . w, c_k = (bias_k - ||b_k||^2) / 2
 * (folded at export): log_joint_k = 2 t_k - ||w||^2 exactly, and ||w||^2 is common to every
 * component. Far from the data ||w||^2 is huge and each float32 log-joint carries an error
 * ~ u ||w||^2, while differences between components are only linear in w; t_k's error is
 * ~ u |b_k| |w|, the scale of those differences, so predict follows float64 there too.
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

/* Largest D for which predict and score evaluate every component in full, in index order, instead
 * of searching with pruning (tinygmm__direct): the same operations in the same order, so the same
 * results bit for bit; only the cost differs. With float arithmetic in hardware a few rows cost
 * less than the search's bookkeeping (first-row cache, order keys, kill thresholds); with soft
 * float (AVR, Cortex-M0, RV32 without F) every pruned row saves library calls, so 0 there. Define it
 * before the first include to choose (0: always search). */
#ifndef TINYGMM_DIRECT_FEATURES
#if (defined(__ARM_FP) && (__ARM_FP & 4)) || defined(__riscv_flen) || defined(__XTENSA_HARD_FLOAT__) ||          \
    defined(__x86_64__) || defined(__aarch64__) || defined(_M_X64) || defined(_M_ARM64)
#define TINYGMM_DIRECT_FEATURES 3
#else
#define TINYGMM_DIRECT_FEATURES 0
#endif
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

/* A model as `tinygmm export` writes it; K components, D features. On AVR the struct
 * itself lives in PROGMEM too and is copied to the stack (about 16 bytes) per call. */
typedef struct tinygmm_model {
    const float *centre;     /* (D) training mean, subtracted from x first */
    const float *inv_scale;  /* (D) 1/scale applied after centring, or NULL (scaler folded) */
    const float *bias;       /* (K) log w_k - D/2 log 2pi + log det L_k */
    const float *offset;     /* (K*D) full/tied: b_k = A_k m_k; diag/spherical: m_k */
    const float *factor;     /* full (K * D(D+1)/2), tied (D(D+1)/2) packed rows of A;
                                diag (K*D) a_k; spherical (K) h_k */
    const float *tied_bias;  /* tied (K): (bias_k - ||b_k||^2) / 2, the constant of predict's
                                linear score; NULL for the other types */
    float anomaly_threshold; /* on tinygmm_score; valid if has_threshold */
    uint8_t n_components;
    uint8_t n_features;
    uint8_t covariance_type; /* TINYGMM_FULL ... TINYGMM_SPHERICAL */
    uint8_t has_threshold;
    uint8_t lead;            /* feature i of every array above is input feature (i + lead) mod D:
                                the export puts the feature that prunes best first (0: input order) */
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
        m->n_components > TINYGMM_MAX_COMPONENTS || m->covariance_type > TINYGMM_SPHERICAL || m->lead >= D ||
        (m->covariance_type == TINYGMM_TIED && m->tied_bias == NULL)) {
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
    for (i = 0, j = m->lead; i < D; ++i, j = (j + 1 < D) ? j + 1 : 0) {
        z[i] = x[j] - TINYGMM_READ_FLOAT(m->centre + i);
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

/* IEEE bits of a float. */
static inline uint32_t tinygmm__bits(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

static inline int tinygmm__isnan(float v)
{
    return (tinygmm__bits(v) & UINT32_C(0x7FFFFFFF)) > UINT32_C(0x7F800000);
}

/* An order key: key(a) < key(b) as unsigned integers iff a < b, for floats that are not NaN
 * (-0 and +0 share a key). Comparing keys costs a few instructions; a float comparison is a
 * library call on AVR. */
static inline uint32_t tinygmm__key(float v)
{
    const uint32_t u = tinygmm__bits(v);
    return (u & UINT32_C(0x80000000)) ? UINT32_C(0) - u : (u | UINT32_C(0x80000000));
}

/* The search loop is kept out of line (and shared by predict and score): inlined, its size
 * would follow each model's K and D. Unused in a translation unit, it does not warn. */
#if defined(__GNUC__) || defined(__clang__)
#define TINYGMM__OUTLINE static __attribute__((noinline, unused))
#else
#define TINYGMM__OUTLINE static inline
#endif

/* Kill threshold that prunes only NaN sums: every NaN's bits, read as unsigned, lie above +inf's. */
#define TINYGMM__NEVER UINT32_C(0x7F800001)

/* The kill threshold of a component with bias `bias` against `limit` (it loses once
 * fl(bias - s) < limit): the bits T such that every partial sum of squares s >= 0 with
 * bits(s) >= T (non-negative floats order like their bits) ends below limit. With p the float
 * just below limit and t = fl(bias - p), T = bits(t) + 1 is above the real bias - p, so
 * s >= T gives bias - s < p and fl(bias - s) <= p < limit (rounding is monotone, and s only
 * grows). Conservative by about an ulp of t; the exact comparison after the last row decides
 * the rest, so pruning stays exact. NaN sums are always killed. */
static inline uint32_t tinygmm__kill(float bias, float limit)
{
    uint32_t u = tinygmm__bits(limit);
    float p;
    if (u == UINT32_C(0xFF800000)) { /* limit -inf: nothing loses */
        return TINYGMM__NEVER;
    }
    u = (u == 0u) ? UINT32_C(0x80000001) : (u & UINT32_C(0x80000000)) ? u + 1u : u - 1u;
    memcpy(&p, &u, sizeof p);
    u = tinygmm__bits(bias - p);
    return (u & UINT32_C(0x80000000)) ? 0u : u + 1u; /* t < 0: even s = 0 loses */
}

/* 1 if a candidate with key ck of component k beats the best (key bk, index best_k): higher,
 * or equal with a lower index (ties go to the lowest index). */
static inline int tinygmm__beats(uint32_t ck, int k, uint32_t bk, int best_k)
{
    return ck > bk || (ck == bk && k <= best_k);
}

/* Where component k's parameters start: its offsets and (full, diag) its factor. */
static inline const float *tinygmm__offset_of(const tinygmm_model *m, int k)
{
    return m->offset + (size_t)k * (size_t)m->n_features;
}

static inline const float *tinygmm__factor_of(const tinygmm_model *m, int k)
{
    const size_t D = m->n_features;
    const int ct = m->covariance_type;
    return m->factor + (ct == TINYGMM_FULL ? (size_t)k * (D * (D + 1u) / 2u) : ct == TINYGMM_DIAG ? (size_t)k * D : 0u);
}

/* Row 0 of a component's quadratic form, y_0^2 (never NaN: z is finite); a and off point to
 * its factor and offsets. */
static inline float tinygmm__row0(int ct, const float *z, const float *a, const float *off)
{
    float y;
    if (ct == TINYGMM_FULL) {
        y = TINYGMM_READ_FLOAT(a) * z[0];
        y = y - TINYGMM_READ_FLOAT(off);
    } else {
        y = z[0] - TINYGMM_READ_FLOAT(off);
        if (ct == TINYGMM_DIAG) {
            y = y * TINYGMM_READ_FLOAT(a);
        }
    } /* tied (z holds w = A z) and spherical: y = z_0 - m_0 */
    return y * y;
}

/* Read the float at *p from flash and advance *p. On AVR the address stays in Z across the
 * four lpm (pgm_read_float reloads it and the pointer arithmetic is separate). */
#if defined(__AVR__)
static inline float tinygmm__next(const float **p)
{
    float v;
    const float *q = *p;
    __asm__("lpm %A0, Z+\n\tlpm %B0, Z+\n\tlpm %C0, Z+\n\tlpm %D0, Z+" : "=r"(v), "+z"(q));
    *p = q;
    return v;
}
#else
static inline float tinygmm__next(const float **p)
{
    return *(*p)++;
}
#endif

/* tinygmm__rest for a full covariance (the hot case, kept out of line so that its pointers
 * and counters stay in registers): a points to the component's packed factor, off to its
 * offsets, both at row 0. The same operations in the same order as the generic loop. */
TINYGMM__OUTLINE int tinygmm__rest_full(const float *a, const float *off, const float *z, uint8_t D, float *s_io,
                                        uint32_t kill)
{
    const float *const z_end = z + D;
    const float *row_end = z + 2; /* row i reads z[0..i] */
    float s = *s_io;
    ++a;
    ++off;
    for (; row_end <= z_end; ++row_end) {
        const float *zp = z;
        float y = tinygmm__next(&a) * *zp++;
        do {
            y += tinygmm__next(&a) * *zp++;
        } while (zp != row_end);
        y = y - tinygmm__next(&off);
        s += y * y;
        if (tinygmm__bits(s) >= kill) {
            return 0;
        }
    }
    *s_io = s;
    return 1;
}

/* Add rows [1, D) of component k's quadratic form to *s (which holds row 0), left to right.
 * Returns 0 (pruned) as soon as bits(*s) >= kill: the partial sum only grows (round-to-nearest
 * is monotone and every term is >= 0), so the component loses (see tinygmm__kill). */
static inline int tinygmm__rest(const tinygmm_model *m, const float *z, int k, float *s_io, uint32_t kill)
{
    const int D = m->n_features;
    const int ct = m->covariance_type;
    const float *off = tinygmm__offset_of(m, k);
    const float *a = tinygmm__factor_of(m, k);
    float s = *s_io;
    int i;
    if (ct == TINYGMM_FULL) {
        return tinygmm__rest_full(a, off, z, m->n_features, s_io, kill);
    }
    for (i = 1; i < D; ++i) {
        float y = z[i] - TINYGMM_READ_FLOAT(off + i);
        if (ct == TINYGMM_DIAG) {
            y = y * TINYGMM_READ_FLOAT(a + i);
        }
        s += y * y;
        if (tinygmm__bits(s) >= kill) {
            return 0;
        }
    }
    *s_io = s;
    return 1;
}

/* The log-joint from the full sum of squares s. */
static inline float tinygmm__from_sum(const tinygmm_model *m, int k, float bias, float s)
{
    return (m->covariance_type == TINYGMM_SPHERICAL) ? bias - s * TINYGMM_READ_FLOAT(m->factor + k) : bias - s;
}

/* Kill threshold of component k against limit: pruning needs at least two rows after row 0 to
 * pay for its subtraction (the last row is decided by the exact comparison anyway), and the
 * spherical h_k would need a division. */
static inline uint32_t tinygmm__kill_for(const tinygmm_model *m, float bias, float limit)
{
    return (m->n_features <= 2 || m->covariance_type == TINYGMM_SPHERICAL) ? TINYGMM__NEVER : tinygmm__kill(bias, limit);
}

/* tinygmm__first_rows for a full covariance, out of line so that its pointers stay in
 * registers: the same operations as tinygmm__row0 and tinygmm__from_sum. */
TINYGMM__OUTLINE uint16_t tinygmm__first_rows_full(const tinygmm_model *m, float z0, float *s0, uint32_t *key)
{
    const uint8_t K = m->n_components;
    const uint8_t D = m->n_features;
    const size_t step = (size_t)D * (size_t)(D + 1u) / 2u - 1u; /* after reading a_00 */
    const float *a = m->factor;
    const float *off = m->offset;
    const float *bias = m->bias;
    uint32_t top = 0u, top2 = 0u; /* below every key */
    uint8_t k, first = K, second = K; /* K: none yet */
    for (k = 0; k < K; ++k) {
        float s, c;
        uint32_t ck;
        s = tinygmm__next(&a) * z0;
        s = s - TINYGMM_READ_FLOAT(off);
        s = s * s;
        c = tinygmm__next(&bias) - s;
        a += step;
        off += D;
        ck = tinygmm__key(c);
        *s0++ = s;
        *key++ = ck;
        if (ck > top) {
            top2 = top;
            second = first;
            top = ck;
            first = k;
        } else if (ck > top2) {
            top2 = ck;
            second = k;
        }
    }
    return (uint16_t)(first | (second << 8));
}

/* Row 0 of every component: s0[k] = y_0^2 and key[k] = key(bias_k - s0[k]) (the candidate
 * after row 0, an upper bound of the log-joint). Returns the components with the highest and
 * the second highest candidates (lowest index on ties; the second is K if K = 1), packed as
 * first | second << 8: they are finished first. */
static inline uint16_t tinygmm__first_rows(const tinygmm_model *m, const float *z, float *s0, uint32_t *key)
{
    const int K = m->n_components;
    const int ct = m->covariance_type;
    const size_t D = m->n_features;
    const size_t step = (ct == TINYGMM_DIAG) ? D : 0u;
    const float *a = m->factor;
    const float *off = m->offset;
    uint32_t top = 0u, top2 = 0u; /* below every key */
    uint8_t k, first = (uint8_t)K, second = (uint8_t)K; /* K: none yet */
    if (ct == TINYGMM_FULL) {
        return tinygmm__first_rows_full(m, z[0], s0, key);
    }
    for (k = 0; k < K; ++k, a += step, off += D) {
        const float s = tinygmm__row0(ct, z, a, off);
        const uint32_t ck = tinygmm__key(tinygmm__from_sum(m, k, TINYGMM_READ_FLOAT(m->bias + k), s));
        s0[k] = s;
        key[k] = ck;
        if (ck > top) {
            top2 = top;
            second = first;
            top = ck;
            first = k;
        } else if (ck > top2) {
            top2 = ck;
            second = k;
        }
    }
    return (uint16_t)(first | (second << 8));
}

/* The state of a search: the best log-joint so far and the limit a component must reach. */
typedef struct tinygmm__best {
    float best, limit;
    uint32_t bk, lk;         /* their order keys */
    uint8_t best_k, limit_k; /* K: none yet (above every index, the first result wins) */
    uint8_t for_score;
} tinygmm__best;

/* Finish component k (s = its first row), which passed the first-row test, and update the
 * best and the limit; returns its log-joint (-inf if pruned by the kill threshold or
 * overflowed). Out of line: the search loop around it then keeps few values live. */
TINYGMM__OUTLINE float tinygmm__finish(const tinygmm_model *m, const float *z, uint8_t k, float s, tinygmm__best *b)
{
    const float bias = TINYGMM_READ_FLOAT(m->bias + k);
    float v = TINYGMM__NEG_INF;
    uint32_t vk;
    if (tinygmm__rest(m, z, k, &s, tinygmm__kill_for(m, bias, b->limit))) {
        v = tinygmm__from_sum(m, k, bias, s);
        if (tinygmm__isnan(v)) {
            v = TINYGMM__NEG_INF;
        }
    }
    vk = tinygmm__key(v);
    if (tinygmm__beats(vk, k, b->bk, b->best_k)) {
        b->best = v;
        b->bk = vk;
        b->best_k = k;
        if (b->for_score) {
            b->limit = v - TINYGMM_LSE_PRUNE;
            b->lk = tinygmm__key(b->limit);
        } else {
            b->limit = v;
            b->lk = vk;
            b->limit_k = k;
        }
    }
    return v;
}

/* The search shared by predict and score. Row 0 of every component first; the two components
 * with the best first rows are finished first, then the others in index order, each pruned
 * once it cannot reach the limit: the best so far (predict: exact argmax, lowest index on
 * ties) or the best so far - TINYGMM_LSE_PRUNE (score: every term it could still add is
 * skipped anyway, see TINYGMM_LSE_SKIP). Most are pruned straight from their first row (their
 * final key is at most the first row's, so they could not become the best either), the rest by
 * the kill threshold (an integer comparison per row). The order changes no result: pruning is
 * exact and ties go to the lowest index whatever the order. On return lj[k] holds the
 * log-joint of every component finished (-inf for pruned and overflowed ones), *best_out the
 * highest; returns its index. lj holds the first rows meanwhile. */
TINYGMM__OUTLINE int tinygmm__search(const tinygmm_model *m, const float *z, float *lj, uint32_t *key, int for_score,
                                     float *best_out)
{
    const uint8_t K = m->n_components;
    const uint16_t top2 = tinygmm__first_rows(m, z, lj, key);
    const uint8_t first = (uint8_t)top2, second = (uint8_t)(top2 >> 8);
    tinygmm__best b;
    uint8_t k;
    b.best = TINYGMM__NEG_INF;
    b.limit = TINYGMM__NEG_INF;
    b.bk = tinygmm__key(TINYGMM__NEG_INF);
    b.lk = b.bk;
    b.best_k = K;
    b.limit_k = K;
    b.for_score = (uint8_t)(for_score != 0);
    /* The limit is -inf: the first always passes its first-row test. */
    lj[first] = tinygmm__finish(m, z, first, lj[first], &b);
    if (second < K) {
        lj[second] = tinygmm__beats(key[second], second, b.lk, b.limit_k)
                         ? tinygmm__finish(m, z, second, lj[second], &b)
                         : TINYGMM__NEG_INF;
    }
    for (k = 0; k < K; ++k) {
        if (k != first && k != second) {
            lj[k] = tinygmm__beats(key[k], k, b.lk, b.limit_k) ? tinygmm__finish(m, z, k, lj[k], &b)
                                                                : TINYGMM__NEG_INF;
        }
    }
    *best_out = b.best;
    return b.best_k;
}

/* The argmax step of tinygmm__direct: lj[k] = v; *best_v and *best become v and k if v is higher
 * (strictly: the lowest index wins ties; never for a NaN v, which the log-sum-exp of
 * tinygmm_score skips as it skips -inf). A float comparison, as the direct evaluation is meant for
 * hardware float; *best_v stays -inf if no component is finite (overflow). */
static inline void tinygmm__take(float v, uint8_t k, float *lj, float *best_v, uint8_t *best)
{
    lj[k] = v;
    if (v > *best_v) {
        *best_v = v;
        *best = k;
    }
}

/* tinygmm__direct for a full covariance, out of line so that its pointers stay in registers: the
 * operations of tinygmm__first_rows_full, tinygmm__rest_full and tinygmm__from_sum in the same
 * order (D = 2 and 3 written out: their rows are mostly loop overhead otherwise). */
TINYGMM__OUTLINE uint8_t tinygmm__direct_full(const tinygmm_model *m, const float *z, float *lj, float *best_out)
{
    const uint8_t K = m->n_components;
    const float *const z_end = z + m->n_features;
    const float *a = m->factor;
    const float *off = m->offset;
    const float *bias = m->bias;
    float best_v = TINYGMM__NEG_INF;
    uint8_t k, best = 0u;
    if (m->n_features == 2) {
        const float z0 = z[0], z1 = z[1];
        for (k = 0; k < K; ++k) {
            float y0, y1, s;
            y0 = tinygmm__next(&a) * z0;
            y0 = y0 - tinygmm__next(&off);
            y1 = tinygmm__next(&a) * z0;
            y1 += tinygmm__next(&a) * z1;
            y1 = y1 - tinygmm__next(&off);
            s = y0 * y0;
            s += y1 * y1;
            tinygmm__take(tinygmm__next(&bias) - s, k, lj, &best_v, &best);
        }
    } else if (m->n_features == 3) {
        const float z0 = z[0], z1 = z[1], z2 = z[2];
        for (k = 0; k < K; ++k) {
            float y0, y1, y2, s;
            y0 = tinygmm__next(&a) * z0;
            y0 = y0 - tinygmm__next(&off);
            y1 = tinygmm__next(&a) * z0;
            y1 += tinygmm__next(&a) * z1;
            y1 = y1 - tinygmm__next(&off);
            y2 = tinygmm__next(&a) * z0;
            y2 += tinygmm__next(&a) * z1;
            y2 += tinygmm__next(&a) * z2;
            y2 = y2 - tinygmm__next(&off);
            s = y0 * y0;
            s += y1 * y1;
            s += y2 * y2;
            tinygmm__take(tinygmm__next(&bias) - s, k, lj, &best_v, &best);
        }
    } else {
        for (k = 0; k < K; ++k) {
            const float *row_end;
            float y = tinygmm__next(&a) * z[0];
            float s;
            y = y - tinygmm__next(&off);
            s = y * y;
            for (row_end = z + 2; row_end <= z_end; ++row_end) { /* row i reads z[0..i] */
                const float *zp = z;
                y = tinygmm__next(&a) * *zp++;
                do {
                    y += tinygmm__next(&a) * *zp++;
                } while (zp != row_end);
                y = y - tinygmm__next(&off);
                s += y * y;
            }
            tinygmm__take(tinygmm__next(&bias) - s, k, lj, &best_v, &best);
        }
    }
    *best_out = best_v;
    return best;
}

/* tinygmm__direct for the other types (diag, spherical; tied in score, z holding w = A z): the
 * operations of tinygmm__row0, tinygmm__rest and tinygmm__from_sum in the same order. */
TINYGMM__OUTLINE uint8_t tinygmm__direct_other(const tinygmm_model *m, const float *z, float *lj, float *best_out)
{
    const uint8_t K = m->n_components;
    const uint8_t ct = m->covariance_type;
    const float *const z_end = z + m->n_features;
    const float *off = m->offset;
    const float *a = m->factor; /* diag: a_k (K x D); spherical: h_k (K); tied: unused */
    const float *bias = m->bias;
    float best_v = TINYGMM__NEG_INF;
    uint8_t k, best = 0u;
    for (k = 0; k < K; ++k) {
        const float *zp = z;
        float s = 0.0f, v; /* 0 + y_0^2 is y_0^2 exactly (a square is never -0): row 0 as tinygmm__row0 */
        do {
            float y = *zp++ - tinygmm__next(&off);
            if (ct == TINYGMM_DIAG) {
                y = y * tinygmm__next(&a);
            }
            s += y * y;
        } while (zp != z_end);
        v = tinygmm__next(&bias);
        if (ct == TINYGMM_SPHERICAL) {
            v = v - s * tinygmm__next(&a);
        } else {
            v = v - s;
        }
        tinygmm__take(v, k, lj, &best_v, &best);
    }
    *best_out = best_v;
    return best;
}

/* Every component evaluated in full, in index order, with no pruning: lj[k] = its log-joint (-inf
 * if its quadratic form overflowed, NaN if it is NaN); returns the argmax (lowest index on ties;
 * NaN never wins), its log-joint in *best_out (-inf if none is finite). The operations of the
 * search in the same order, so every log-joint equals the search's (and the twin's) bit for bit;
 * used for small D (TINYGMM_DIRECT_FEATURES). */
static inline int tinygmm__direct(const tinygmm_model *m, const float *z, float *lj, float *best_out)
{
    return (m->covariance_type == TINYGMM_FULL) ? tinygmm__direct_full(m, z, lj, best_out)
                                                 : tinygmm__direct_other(m, z, lj, best_out);
}

/* Predict for a tied model: the argmax over k of t_k = c_k + sum_i b_ki w_i (c_k = tied_bias[k],
 * terms added left to right, lowest index on ties), w = A z as tinygmm__prepare left it. Every
 * component costs D multiply-adds (a partial dot product bounds nothing, so nothing is pruned).
 * Returns -1 if the highest t_k is not finite (+inf or NaN: float32 overflow). */
TINYGMM__OUTLINE int tinygmm__predict_tied(const tinygmm_model *m, const float *w)
{
    const uint8_t K = m->n_components;
    const float *const w_end = w + m->n_features;
    const float *b = m->offset;
    const float *c = m->tied_bias;
    uint32_t top = 0u; /* below every key */
    uint8_t k, best = 0u;
    for (k = 0; k < K; ++k) {
        const float *wp = w;
        float t = tinygmm__next(&c);
        uint32_t tk;
        do {
            t += tinygmm__next(&b) * *wp++;
        } while (wp != w_end);
        tk = tinygmm__key(t);
        if (tk > top) {
            top = tk;
            best = k;
        }
    }
    /* NaN keys lie above +inf's: a best that is not finite means some t_k overflowed upwards or is
     * NaN (then the argmax is unknown); a -inf elsewhere is simply below a finite best. */
    return (top > tinygmm__key(FLT_MAX)) ? -1 : best;
}

/* ---- public API ----------------------------------------------------------------- */

/* out[k] = log-joint of component k (K floats). TINYGMM_ERR_OVERFLOW if any component's
 * quadratic form overflowed; that entry is -INFINITY and the others are valid. */
static inline tinygmm_status tinygmm_log_joint(const tinygmm_model *model, const float *x, int n_features, float *out)
{
    tinygmm_model m;
    float z[TINYGMM_MAX_FEATURES];
    tinygmm_status st = tinygmm__prepare(model, x, n_features, &m, z);
    int k;
    if (st != TINYGMM_OK) {
        return st;
    }
    for (k = 0; k < m.n_components; ++k) {
        float s = tinygmm__row0(m.covariance_type, z, tinygmm__factor_of(&m, k), tinygmm__offset_of(&m, k));
        const float lj = tinygmm__rest(&m, z, k, &s, TINYGMM__NEVER)
                             ? tinygmm__from_sum(&m, k, TINYGMM_READ_FLOAT(m.bias + k), s)
                             : TINYGMM__NEG_INF;
        out[k] = lj;
        if (lj == TINYGMM__NEG_INF) {
            st = TINYGMM_ERR_OVERFLOW;
        }
    }
    return st;
}

/* *label = the most likely component (argmax of the log-joints, no exp; lowest index on ties):
 * the pruning search, or for D <= TINYGMM_DIRECT_FEATURES every component in full (same result).
 * Tied models: argmax of the linear score (see the top of this file); TINYGMM_ERR_OVERFLOW
 * there means that the highest score is +inf or NaN (float32 overflow). */
static inline tinygmm_status tinygmm_predict(const tinygmm_model *model, const float *x, int n_features, int *label)
{
    tinygmm_model m;
    float z[TINYGMM_MAX_FEATURES];
    float s0[TINYGMM_MAX_COMPONENTS];
    uint32_t key[TINYGMM_MAX_COMPONENTS];
    float best;
    int k;
    tinygmm_status st = tinygmm__prepare(model, x, n_features, &m, z);
    if (st != TINYGMM_OK) {
        return st;
    }
    if (m.covariance_type == TINYGMM_TIED) {
        k = tinygmm__predict_tied(&m, z);
        if (k < 0) {
            return TINYGMM_ERR_OVERFLOW;
        }
        *label = k;
        return TINYGMM_OK;
    }
#if TINYGMM_DIRECT_FEATURES > 0
    if (m.n_features <= TINYGMM_DIRECT_FEATURES) {
        k = tinygmm__direct(&m, z, s0, &best);
    } else
#endif
    {
        k = tinygmm__search(&m, z, s0, key, 0, &best);
    }
    if (best == TINYGMM__NEG_INF) {
        return TINYGMM_ERR_OVERFLOW;
    }
    *label = k;
    return TINYGMM_OK;
}

/* *score = log p(x) = m + log(1 + sum_{k != argmax} exp(lj_k - m)), m the largest
 * log-joint; the terms are added in index order, those with lj_k - m < -17 skipped.
 * One pass: the two components with the best first rows are finished first, and every other is
 * pruned once it cannot reach (best so far) - 18, at which point its term is skipped anyway
 * (exact, see TINYGMM_LSE_SKIP); the log-joints of the others are kept for the sum. For
 * D <= TINYGMM_DIRECT_FEATURES every component in full instead (the same sum bit for bit). */
static inline tinygmm_status tinygmm_score(const tinygmm_model *model, const float *x, int n_features, float *score)
{
    tinygmm_model m;
    float z[TINYGMM_MAX_FEATURES];
    float lj[TINYGMM_MAX_COMPONENTS]; /* s0 (first rows), then the log-joints (-inf if pruned) */
    uint32_t key[TINYGMM_MAX_COMPONENTS];
    float best, sum = 1.0f;
    int k, K, best_k;
    tinygmm_status st = tinygmm__prepare(model, x, n_features, &m, z);
    if (st != TINYGMM_OK) {
        return st;
    }
    K = m.n_components;
#if TINYGMM_DIRECT_FEATURES > 0
    if (m.n_features <= TINYGMM_DIRECT_FEATURES) {
        best_k = tinygmm__direct(&m, z, lj, &best);
    } else
#endif
    {
        best_k = tinygmm__search(&m, z, lj, key, 1, &best);
    }
    if (best == TINYGMM__NEG_INF) {
        return TINYGMM_ERR_OVERFLOW;
    }
    for (k = 0; k < K; ++k) {
        if (k != best_k) {
            const float d = lj[k] - best;
            if (d >= TINYGMM_LSE_SKIP) { /* false for NaN (a NaN log-joint of tinygmm__direct) */
                sum += TINYGMM__EXPF(d);
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
    int k, K = tinygmm_n_components(model), top = 0;
    tinygmm_status st;
    /* log_joint leaves proba unwritten when the centred input itself overflows: -inf then
     * reads as "every component overflowed" below instead of as uninitialised memory. */
    for (k = 0; k < K && k < TINYGMM_MAX_COMPONENTS; ++k) {
        proba[k] = TINYGMM__NEG_INF;
    }
    st = tinygmm_log_joint(model, x, n_features, proba);
    if (st != TINYGMM_OK && st != TINYGMM_ERR_OVERFLOW) {
        return st;
    }
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
