/* tinygmm_proto.c -- parser and replies of the serial protocol (docs/protocol.md).
 *
 * Every line is executed as soon as its line end arrives; nothing is kept between lines, so
 * after any garbage the next line is served. The line buffer is written only below its size.
 * All constant strings live in flash on AVR (PSTR), where .rodata would otherwise be RAM.
 */
#include "tinygmm_model.h" /* first: it sets TINYGMM_MAX_* for this model before tinygmm.h */
#include "tinygmm.h"       /* already included above; named so PlatformIO's LDF links lib/tinygmm */
#include "tinygmm_proto.h"

#include <stdlib.h>
#include <string.h>

#ifndef TINYGMM_PROTO_MODEL
#define TINYGMM_PROTO_MODEL gmm_model /* the symbol `tinygmm render` writes by default */
#endif
#define TP_CAT_(a, b) a##b
#define TP_CAT(a, b) TP_CAT_(a, b)
#define TP_MODEL (&TINYGMM_PROTO_MODEL)
#define TP_MODEL_ID TP_CAT(TINYGMM_PROTO_MODEL, _id) /* the header's flash copy of the id */

#if defined(__AVR__)
#include <avr/pgmspace.h>
#define TP_STR(s) PSTR(s)
#define TP_FLASH PROGMEM
#define TP_CHAR(p) ((char)pgm_read_byte(p))
#else
#define TP_STR(s) (s)
#define TP_FLASH
#define TP_CHAR(p) (*(p))
#endif

#if TINYGMM_PROTO_OUT_CHUNK < 8 || TINYGMM_PROTO_OUT_CHUNK > 255
#error "TINYGMM_PROTO_OUT_CHUNK must be between 8 and 255"
#endif

enum { OP_PREDICT, OP_LOG_JOINT, OP_SCORE, OP_PROBA, OP_ANOMALY, OP_NONE };

/* Bytes of a batch line outside its base64 at worst: "65535 batch log_joint 65535 " + "*XXXX". */
#define TP_BATCH_OVERHEAD 33u
/* Batch records: an error byte record is 0xFF then the status; a float record a NaN with the
 * status in its low byte (a valid result is never NaN, a label never 255: K <= 255). */
#define TP_BATCH_ERROR_BYTE 0xFFu
#define TP_NAN_STATUS UINT32_C(0x7FC00000)
#define TP_NONCE_MAX 32u
#define TP_ECHO_MAX 16u /* characters of an unknown command echoed back */
#define TP_CRC_INIT 0xFFFFu

#if defined(__clang__)
#define TP_CC_FAMILY "clang-"
#elif defined(__GNUC__)
#define TP_CC_FAMILY "gcc-"
#else
#define TP_CC_FAMILY "cc-"
#endif
#if defined(__VERSION__)
static const char tp_cc[] TP_FLASH = TP_CC_FAMILY __VERSION__;
#else
static const char tp_cc[] TP_FLASH = TP_CC_FAMILY "unknown";
#endif

typedef struct tp_tok {
    uint8_t *s;
    size_t n;
} tp_tok;

typedef struct tp_result {
    int label; /* predict */
    int flag;  /* anomaly */
    float score;
    float vec[TINYGMM_MAX_COMPONENTS]; /* log_joint, proba */
} tp_result;

/* ---- CRC and output -------------------------------------------------------------- */

uint16_t tinygmm_proto_crc16(uint16_t crc, uint8_t byte)
{
    int i;
    crc = (uint16_t)(crc ^ (uint16_t)((uint16_t)byte << 8));
    for (i = 0; i < 8; ++i) {
        crc = (crc & 0x8000u) ? (uint16_t)((uint16_t)(crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
    }
    return crc;
}

static void out_flush(tinygmm_proto *p)
{
    if (p->out_len != 0) {
        p->cfg.write(p->cfg.user, p->out, p->out_len);
        p->out_len = 0;
    }
}

/* A byte outside the CRC (the frame's "*CRC\n"). */
static void out_raw(tinygmm_proto *p, uint8_t c)
{
    p->out[p->out_len++] = c;
    if (p->out_len == TINYGMM_PROTO_OUT_CHUNK) {
        out_flush(p);
    }
}

static void out_char(tinygmm_proto *p, char c)
{
    p->out_crc = tinygmm_proto_crc16(p->out_crc, (uint8_t)c);
    out_raw(p, (uint8_t)c);
}

/* A string in flash (TP_STR / TP_FLASH). */
static void out_pstr(tinygmm_proto *p, const char *s)
{
    char c;
    while ((c = TP_CHAR(s)) != '\0') {
        out_char(p, c);
        ++s;
    }
}

/* A string in RAM. */
static void out_cstr(tinygmm_proto *p, const char *s)
{
    while (*s != '\0') {
        out_char(p, *s++);
    }
}

/* Untrusted bytes (echoes): printable ASCII only, so a reply stays one clean line. */
static void out_echo(tinygmm_proto *p, const uint8_t *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        out_char(p, (s[i] > ' ' && s[i] < 0x7F) ? (char)s[i] : '?');
    }
}

static void out_u32(tinygmm_proto *p, uint32_t v)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (char)(v % 10u));
        v /= 10u;
    } while (v != 0);
    while (n > 0) {
        out_char(p, digits[--n]);
    }
}

/* Computed, not a table: a string table would be RAM on AVR. */
static char hex_digit(uint32_t v, int upper)
{
    v &= 0xFu;
    return v < 10u ? (char)('0' + (char)v) : (char)((upper ? 'A' : 'a') + (char)(v - 10u));
}

static void out_hex(tinygmm_proto *p, uint32_t v, int n_digits, int upper)
{
    int i;
    for (i = n_digits - 1; i >= 0; --i) {
        out_char(p, hex_digit(v >> (4 * i), upper));
    }
}

static uint32_t float_bits(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

static void out_float(tinygmm_proto *p, float v)
{
    out_char(p, ' ');
    out_hex(p, float_bits(v), 8, 0);
}

/* " key=" */
static void out_key(tinygmm_proto *p, const char *key_flash)
{
    out_char(p, ' ');
    out_pstr(p, key_flash);
    out_char(p, '=');
}

static void out_begin(tinygmm_proto *p, uint16_t seq, const char *kind_flash)
{
    p->out_crc = TP_CRC_INIT;
    out_u32(p, seq);
    out_char(p, ' ');
    out_pstr(p, kind_flash);
}

static void out_end(tinygmm_proto *p)
{
    const uint16_t crc = p->out_crc;
    int i;
    out_raw(p, '*');
    for (i = 3; i >= 0; --i) {
        out_raw(p, (uint8_t)hex_digit((uint32_t)crc >> (4 * i), 1));
    }
    out_raw(p, '\n');
    out_flush(p);
}

static void ok_begin(tinygmm_proto *p, uint16_t seq, const char *command_flash)
{
    out_begin(p, seq, TP_STR("ok "));
    out_pstr(p, command_flash);
}

static void err_begin(tinygmm_proto *p, uint16_t seq, const char *code_flash)
{
    out_begin(p, seq, TP_STR("err "));
    out_pstr(p, code_flash);
}

static void reply_err(tinygmm_proto *p, uint16_t seq, const char *code_flash, const char *detail_flash)
{
    err_begin(p, seq, code_flash);
    if (detail_flash != NULL) {
        out_char(p, ' ');
        out_pstr(p, detail_flash);
    }
    out_end(p);
}

/* ---- base64 (RFC 4648) ------------------------------------------------------------- */

static char b64_char(uint32_t v)
{
    v &= 0x3Fu;
    if (v < 26u) {
        return (char)('A' + (char)v);
    }
    if (v < 52u) {
        return (char)('a' + (char)(v - 26u));
    }
    if (v < 62u) {
        return (char)('0' + (char)(v - 52u));
    }
    return v == 62u ? '+' : '/';
}

static void b64_emit(tinygmm_proto *p, int n_bytes)
{
    const uint32_t v = ((uint32_t)p->b64_acc[0] << 16) | ((uint32_t)p->b64_acc[1] << 8) | p->b64_acc[2];
    out_char(p, b64_char(v >> 18));
    out_char(p, b64_char(v >> 12));
    out_char(p, n_bytes > 1 ? b64_char(v >> 6) : '=');
    out_char(p, n_bytes > 2 ? b64_char(v) : '=');
}

static void b64_put(tinygmm_proto *p, uint8_t byte)
{
    p->b64_acc[p->b64_n++] = byte;
    if (p->b64_n == 3) {
        b64_emit(p, 3);
        p->b64_n = 0;
    }
}

static void b64_put_u32(tinygmm_proto *p, uint32_t v)
{
    int i;
    for (i = 0; i < 4; ++i) {
        b64_put(p, (uint8_t)(v >> (8 * i))); /* little-endian */
    }
}

static void b64_finish(tinygmm_proto *p)
{
    if (p->b64_n != 0) {
        int i;
        for (i = p->b64_n; i < 3; ++i) {
            p->b64_acc[i] = 0;
        }
        b64_emit(p, p->b64_n);
        p->b64_n = 0;
    }
}

static int b64_value(uint8_t c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    return c == '/' ? 63 : -1;
}

/* Decodes s[0, n) in place (the output never overtakes the input); 0 on malformed input. */
/* Lets the glue drain its receive hardware during long work on a line (see tinygmm_proto_poll_fn):
 * at 115200 baud a byte arrives every ~1400 AVR cycles, and the Uno's ring holds 63. */
#define TP_POLL_EVERY 32u
static void tp_poll(const tinygmm_proto *p)
{
    if (p->cfg.poll != NULL) {
        p->cfg.poll(p->cfg.user);
    }
}

static int b64_decode(const tinygmm_proto *p, uint8_t *s, size_t n, size_t *decoded)
{
    size_t i, o = 0, pad = 0;
    if (n == 0 || n % 4u != 0) {
        return 0;
    }
    if (s[n - 1] == '=') {
        pad = (s[n - 2] == '=') ? 2u : 1u;
    }
    for (i = 0; i < n; i += 4) {
        int v[4], j;
        uint32_t w;
        if (i % (4u * TP_POLL_EVERY) == 0u) { /* ~3 ms for a 512-byte line on an Uno */
            tp_poll(p);
        }
        for (j = 0; j < 4; ++j) {
            const int is_pad = (i + 4 == n) && (size_t)j >= 4u - pad;
            v[j] = is_pad ? 0 : b64_value(s[i + (size_t)j]);
            if (v[j] < 0) {
                return 0;
            }
        }
        w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) | (uint32_t)v[3];
        s[o++] = (uint8_t)(w >> 16);
        if (i + 4 < n || pad < 2) {
            s[o++] = (uint8_t)(w >> 8);
        }
        if (i + 4 < n || pad < 1) {
            s[o++] = (uint8_t)w;
        }
    }
    *decoded = o;
    return 1;
}

/* ---- tokens and numbers ------------------------------------------------------------ */

static int is_blank(uint8_t c) { return c == ' ' || c == '\t'; }
static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static int hex_value(uint8_t c)
{
    if (is_digit(c)) {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static int next_tok(uint8_t **cur, uint8_t *end, tp_tok *t)
{
    uint8_t *s = *cur;
    while (s < end && is_blank(*s)) {
        ++s;
    }
    if (s == end) {
        *cur = s;
        return 0;
    }
    t->s = s;
    while (s < end && !is_blank(*s)) {
        ++s;
    }
    t->n = (size_t)(s - t->s);
    *cur = s;
    return 1;
}

/* 1 when the token spells the flash string exactly. */
static int tok_is(const tp_tok *t, const char *name_flash)
{
    size_t i;
    for (i = 0; i < t->n; ++i) {
        const char c = TP_CHAR(name_flash + i);
        if (c == '\0' || c != (char)t->s[i]) { /* never read past the name's end */
            return 0;
        }
    }
    return TP_CHAR(name_flash + t->n) == '\0';
}

/* Unsigned decimal of 1 to 5 digits, at most 65535. */
static int parse_u16(const uint8_t *s, size_t n, uint16_t *out)
{
    uint32_t v = 0;
    size_t i;
    if (n == 0 || n > 5) {
        return 0;
    }
    for (i = 0; i < n; ++i) {
        if (!is_digit(s[i])) {
            return 0;
        }
        v = v * 10u + (uint32_t)(s[i] - '0');
    }
    if (v > 65535u) {
        return 0;
    }
    *out = (uint16_t)v;
    return 1;
}

static int parse_hex(const uint8_t *s, size_t n, uint32_t *out)
{
    uint32_t v = 0;
    size_t i;
    for (i = 0; i < n; ++i) {
        const int h = hex_value(s[i]);
        if (h < 0) {
            return 0;
        }
        v = (v << 4) | (uint32_t)h;
    }
    *out = v;
    return 1;
}

/* Exactly 8 hex digits: a bit pattern; anything else: a decimal for the C library. The token is
 * NUL-terminated in place for strtof (line[] has one spare byte past its last token). */
static int parse_float(tp_tok *t, float *out)
{
    uint32_t bits;
    char *endp;
    uint8_t saved;
    float v;
    if (t->n == 8 && parse_hex(t->s, 8, &bits)) {
        memcpy(out, &bits, sizeof bits);
        return 1;
    }
    saved = t->s[t->n];
    t->s[t->n] = '\0';
#if defined(__AVR__)
    v = (float)strtod((const char *)t->s, &endp); /* avr-libc: double is float */
#else
    v = strtof((const char *)t->s, &endp);
#endif
    t->s[t->n] = saved;
    if (endp != (char *)t->s + t->n) {
        return 0;
    }
    *out = v;
    return 1;
}

/* Reads the remaining tokens as floats into x (at most TINYGMM_MAX_FEATURES kept, all counted).
 * Returns 0, or the 1-based position of the first token that is not a number. */
static int parse_vector(uint8_t *cur, uint8_t *end, float *x, int *n)
{
    tp_tok t;
    float v;
    *n = 0;
    while (next_tok(&cur, end, &t)) {
        if (!parse_float(&t, &v)) {
            return *n + 1;
        }
        if (*n < TINYGMM_MAX_FEATURES) {
            x[*n] = v;
        }
        ++*n;
    }
    return 0;
}

/* ---- the model --------------------------------------------------------------------- */

static int model_features(void) { return tinygmm_n_features(TP_MODEL); }
static int model_components(void) { return tinygmm_n_components(TP_MODEL); }

static uint8_t parse_op(const tp_tok *t)
{
    if (tok_is(t, TP_STR("predict"))) {
        return OP_PREDICT;
    }
    if (tok_is(t, TP_STR("log_joint"))) {
        return OP_LOG_JOINT;
    }
    if (tok_is(t, TP_STR("score"))) {
        return OP_SCORE;
    }
    if (tok_is(t, TP_STR("proba"))) {
        return OP_PROBA;
    }
    if (tok_is(t, TP_STR("anomaly"))) {
        return OP_ANOMALY;
    }
    return OP_NONE;
}

static const char *op_name(uint8_t op)
{
    switch (op) {
    case OP_PREDICT: return TP_STR("predict");
    case OP_LOG_JOINT: return TP_STR("log_joint");
    case OP_SCORE: return TP_STR("score");
    case OP_PROBA: return TP_STR("proba");
    default: return TP_STR("anomaly");
    }
}

static tinygmm_status run_op(uint8_t op, const float *x, int n, tp_result *r)
{
    const uint32_t nan_bits = TP_NAN_STATUS;
    int k;
    r->flag = 0; /* the core writes outputs only on success: keep every read defined */
    r->label = 0;
    switch (op) {
    case OP_PREDICT: return tinygmm_predict(TP_MODEL, x, n, &r->label);
    case OP_LOG_JOINT:
        /* ERR_OVERFLOW comes with K values (-inf where a component overflowed) or, when the
         * centred input itself overflowed, with none: the NaN left in vec[0] tells them apart. */
        for (k = 0; k < TINYGMM_MAX_COMPONENTS; ++k) {
            memcpy(&r->vec[k], &nan_bits, sizeof nan_bits);
        }
        return tinygmm_log_joint(TP_MODEL, x, n, r->vec);
    case OP_SCORE: return tinygmm_score(TP_MODEL, x, n, &r->score);
    case OP_PROBA:
        /* Work-around: tinygmm_predict_proba reads proba[] as log-joints even when
         * tinygmm_log_joint overflowed before writing it; all -inf makes that an ERR_OVERFLOW,
         * as the twin says. */
        for (k = 0; k < TINYGMM_MAX_COMPONENTS; ++k) {
            r->vec[k] = TINYGMM__NEG_INF;
        }
        return tinygmm_predict_proba(TP_MODEL, x, n, r->vec);
    default: return tinygmm_anomaly(TP_MODEL, x, n, &r->flag);
    }
}

/* log_joint's overflow that carries K log-joints (-inf where overflowed) is a result. */
static int op_succeeded(uint8_t op, tinygmm_status st, const tp_result *r)
{
    return st == TINYGMM_OK || (op == OP_LOG_JOINT && st == TINYGMM_ERR_OVERFLOW && r->vec[0] == r->vec[0]);
}

static const char *status_code(tinygmm_status st)
{
    switch (st) {
    case TINYGMM_ERR_FEATURES: return TP_STR("features");
    case TINYGMM_ERR_NONFINITE: return TP_STR("nonfinite");
    case TINYGMM_ERR_OVERFLOW: return TP_STR("overflow");
    case TINYGMM_ERR_NO_THRESHOLD: return TP_STR("no_threshold");
    default: return TP_STR("model");
    }
}

/* A byte of the result, so the benchmark loop cannot be optimised away. */
static uint8_t result_byte(uint8_t op, const tp_result *r)
{
    switch (op) {
    case OP_PREDICT: return (uint8_t)r->label;
    case OP_ANOMALY: return (uint8_t)r->flag;
    case OP_SCORE: return (uint8_t)float_bits(r->score);
    default: return (uint8_t)float_bits(r->vec[0]);
    }
}

/* Reads a vector into x; on failure sends the error reply and returns 0. */
static int take_vector(tinygmm_proto *p, uint16_t seq, uint8_t *cur, uint8_t *end, float *x)
{
    int n, bad = parse_vector(cur, end, x, &n);
    if (bad != 0) {
        err_begin(p, seq, TP_STR("bad_number"));
        out_pstr(p, TP_STR(" arg="));
        out_u32(p, (uint32_t)bad);
        out_end(p);
        return 0;
    }
    if (n != model_features()) {
        err_begin(p, seq, TP_STR("features"));
        out_pstr(p, TP_STR(" want "));
        out_u32(p, (uint32_t)model_features());
        out_pstr(p, TP_STR(" got "));
        out_u32(p, (uint32_t)n);
        out_end(p);
        return 0;
    }
    return 1;
}

/* ---- commands ------------------------------------------------------------------------ */

/* 1 when a*b - c is fused in this build (a = 1 + 2^-12, c = 1 + 2^-11: a*a rounds to c,
 * so unfused it is 0 and fused 2^-24). volatile keeps the compiler from folding it. */
static int fma_contracted(void)
{
    volatile float a = 1.000244140625f;
    volatile float c = 1.00048828125f;
    const float x = a, y = c;
    return x * x - y != 0.0f;
}

static const char *covariance_name(uint8_t code)
{
    switch (code) {
    case TINYGMM_FULL: return TP_STR("full");
    case TINYGMM_TIED: return TP_STR("tied");
    case TINYGMM_DIAG: return TP_STR("diag");
    default: return TP_STR("spherical");
    }
}

static void out_model_id(tinygmm_proto *p)
{
    out_pstr(p, TP_MODEL_ID); /* a flash string in the rendered header */
}

static uint32_t batch_max_vectors(void)
{
    const uint32_t b64_chars = ((uint32_t)TINYGMM_PROTO_LINE_MAX - TP_BATCH_OVERHEAD) / 4u * 4u;
    return b64_chars / 4u * 3u / (4u * (uint32_t)model_features());
}

static void cmd_hello(tinygmm_proto *p, uint16_t seq)
{
    tinygmm_model m;
    const char *cc = tp_cc;
    char c;
    TINYGMM_READ_MODEL(&m, TP_MODEL);
    ok_begin(p, seq, TP_STR("hello"));
    out_key(p, TP_STR("proto"));
    out_u32(p, TINYGMM_PROTO_VERSION);
    out_key(p, TP_STR("model"));
    out_model_id(p);
    out_key(p, TP_STR("k"));
    out_u32(p, m.n_components);
    out_key(p, TP_STR("d"));
    out_u32(p, m.n_features);
    out_key(p, TP_STR("cov"));
    out_pstr(p, covariance_name(m.covariance_type));
    out_key(p, TP_STR("target"));
    out_cstr(p, p->cfg.target);
    out_key(p, TP_STR("float"));
    out_u32(p, (uint32_t)sizeof(float));
    out_key(p, TP_STR("double"));
    out_u32(p, (uint32_t)sizeof(double));
    out_key(p, TP_STR("rx"));
    out_u32(p, p->cfg.rx_buffer);
    out_key(p, TP_STR("line"));
    out_u32(p, TINYGMM_PROTO_LINE_MAX);
    out_key(p, TP_STR("batch"));
    out_u32(p, batch_max_vectors());
    out_key(p, TP_STR("thr"));
    out_u32(p, m.has_threshold);
    out_key(p, TP_STR("fma"));
    out_u32(p, (uint32_t)fma_contracted());
    out_key(p, TP_STR("clock"));
    if (p->cfg.clock != NULL) {
        out_cstr(p, p->cfg.clock_unit);
    } else {
        out_pstr(p, TP_STR("none"));
    }
    out_key(p, TP_STR("opt"));
#if defined(__OPTIMIZE_SIZE__)
    out_pstr(p, TP_STR("size"));
#elif defined(__OPTIMIZE__)
    out_pstr(p, TP_STR("speed"));
#else
    out_pstr(p, TP_STR("none"));
#endif
    out_key(p, TP_STR("cc"));
    while ((c = TP_CHAR(cc)) != '\0') { /* the compiler's version string may hold spaces */
        out_char(p, c == ' ' ? '_' : c);
        ++cc;
    }
    out_end(p);
}

static void cmd_ping(tinygmm_proto *p, uint16_t seq, uint8_t *cur, uint8_t *end)
{
    tp_tok nonce, extra;
    size_t i;
    if (!next_tok(&cur, end, &nonce) || next_tok(&cur, end, &extra) || nonce.n > TP_NONCE_MAX) {
        reply_err(p, seq, TP_STR("bad_args"), TP_STR("want ping NONCE"));
        return;
    }
    for (i = 0; i < nonce.n; ++i) {
        const uint8_t c = nonce.s[i];
        if (!(is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-')) {
            reply_err(p, seq, TP_STR("bad_args"), TP_STR("nonce"));
            return;
        }
    }
    ok_begin(p, seq, TP_STR("ping"));
    out_char(p, ' ');
    out_echo(p, nonce.s, nonce.n);
    out_end(p);
}

static void cmd_single(tinygmm_proto *p, uint16_t seq, uint8_t op, uint8_t *cur, uint8_t *end)
{
    float x[TINYGMM_MAX_FEATURES];
    tp_result r;
    tinygmm_status st;
    int k;
    if (!take_vector(p, seq, cur, end, x)) {
        return;
    }
    st = run_op(op, x, model_features(), &r);
    if (!op_succeeded(op, st, &r)) {
        reply_err(p, seq, status_code(st), NULL);
        return;
    }
    ok_begin(p, seq, op_name(op));
    switch (op) {
    case OP_PREDICT:
        out_char(p, ' ');
        out_u32(p, (uint32_t)r.label);
        break;
    case OP_ANOMALY:
        out_char(p, ' ');
        out_u32(p, (uint32_t)r.flag);
        break;
    case OP_SCORE:
        out_float(p, r.score);
        break;
    default:
        for (k = 0; k < model_components(); ++k) {
            out_float(p, r.vec[k]);
        }
    }
    out_end(p);
}

static void put_record(tinygmm_proto *p, uint8_t op, tinygmm_status st, const tp_result *r)
{
    int k;
    const int ok = op_succeeded(op, st, r);
    if (op == OP_PREDICT || op == OP_ANOMALY) {
        if (ok) {
            b64_put(p, (uint8_t)(op == OP_PREDICT ? r->label : r->flag));
        } else {
            b64_put(p, TP_BATCH_ERROR_BYTE);
            b64_put(p, (uint8_t)st);
        }
    } else if (op == OP_SCORE) {
        b64_put_u32(p, ok ? float_bits(r->score) : TP_NAN_STATUS | (uint32_t)st);
    } else {
        for (k = 0; k < model_components(); ++k) {
            b64_put_u32(p, ok ? float_bits(r->vec[k]) : TP_NAN_STATUS | (uint32_t)st);
        }
    }
}

/* "SEQ ok CMD OP N " -- the head batch and bench replies share. */
static void ok_op_count(tinygmm_proto *p, uint16_t seq, const char *command_flash, uint8_t op, uint16_t n)
{
    ok_begin(p, seq, command_flash);
    out_char(p, ' ');
    out_pstr(p, op_name(op));
    out_char(p, ' ');
    out_u32(p, n);
    out_char(p, ' ');
}

static void cmd_batch(tinygmm_proto *p, uint16_t seq, uint8_t *cur, uint8_t *end)
{
    tp_tok op_tok, n_tok, data, extra;
    uint8_t op;
    uint16_t n, i;
    size_t decoded;
    const int D = model_features();
    float x[TINYGMM_MAX_FEATURES];
    if (!next_tok(&cur, end, &op_tok) || !next_tok(&cur, end, &n_tok) || !next_tok(&cur, end, &data) ||
        next_tok(&cur, end, &extra)) {
        reply_err(p, seq, TP_STR("bad_args"), TP_STR("want batch OP N BASE64"));
        return;
    }
    op = parse_op(&op_tok);
    if (op == OP_NONE) {
        reply_err(p, seq, TP_STR("bad_args"), TP_STR("OP"));
        return;
    }
    if (!parse_u16(n_tok.s, n_tok.n, &n) || n == 0) {
        reply_err(p, seq, TP_STR("bad_args"), TP_STR("N"));
        return;
    }
    if (!b64_decode(p, data.s, data.n, &decoded)) {
        reply_err(p, seq, TP_STR("bad_args"), TP_STR("base64"));
        return;
    }
    if ((uint32_t)decoded != (uint32_t)n * 4u * (uint32_t)D) {
        err_begin(p, seq, TP_STR("bad_args"));
        out_pstr(p, TP_STR(" want "));
        out_u32(p, (uint32_t)n * 4u * (uint32_t)D);
        out_pstr(p, TP_STR(" bytes got "));
        out_u32(p, (uint32_t)decoded);
        out_end(p);
        return;
    }
    ok_op_count(p, seq, TP_STR("batch"), op, n);
    p->b64_n = 0;
    for (i = 0; i < n; ++i) {
        const uint8_t *b = data.s + (size_t)i * 4u * (size_t)D;
        tp_result r;
        int j;
        for (j = 0; j < D; ++j, b += 4) {
            const uint32_t u = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
            memcpy(&x[j], &u, sizeof u);
        }
        put_record(p, op, run_op(op, x, D, &r), &r);
        tp_poll(p);
    }
    b64_finish(p);
    out_end(p);
}

static void cmd_bench(tinygmm_proto *p, uint16_t seq, uint8_t *cur, uint8_t *end)
{
    tp_tok op_tok, n_tok;
    uint8_t op;
    uint16_t n, i;
    uint32_t t0, t1;
    float x[TINYGMM_MAX_FEATURES];
    tp_result r;
    tinygmm_status st;
    const int D = model_features();
    volatile uint8_t sink = 0;
    if (!next_tok(&cur, end, &op_tok) || !next_tok(&cur, end, &n_tok)) {
        reply_err(p, seq, TP_STR("bad_args"), TP_STR("want bench OP N x1..xD"));
        return;
    }
    op = parse_op(&op_tok);
    if (op == OP_NONE || !parse_u16(n_tok.s, n_tok.n, &n) || n == 0) {
        reply_err(p, seq, TP_STR("bad_args"), TP_STR("want bench OP N x1..xD"));
        return;
    }
    if (p->cfg.clock == NULL) {
        reply_err(p, seq, TP_STR("bad_args"), TP_STR("no clock on this target"));
        return;
    }
    if (!take_vector(p, seq, cur, end, x)) {
        return;
    }
    st = run_op(op, x, D, &r);
    if (!op_succeeded(op, st, &r)) {
        reply_err(p, seq, status_code(st), NULL);
        return;
    }
    t0 = p->cfg.clock();
    for (i = 0; i < n; ++i) {
        (void)run_op(op, x, D, &r);
        sink = (uint8_t)(sink + result_byte(op, &r));
    }
    t1 = p->cfg.clock();
    ok_op_count(p, seq, TP_STR("bench"), op, n);
    out_u32(p, t1 - t0); /* modulo 2^32: right across one wrap */
    out_char(p, ' ');
    out_cstr(p, p->cfg.clock_unit);
    out_end(p);
    (void)sink;
}

static void cmd_help(tinygmm_proto *p, uint16_t seq)
{
    ok_begin(p, seq, TP_STR("help hello ping predict log_joint score proba anomaly batch bench"));
    out_end(p);
}

static void dispatch(tinygmm_proto *p, uint16_t seq, uint8_t *cur, uint8_t *end)
{
    tp_tok cmd;
    uint8_t op;
    if (!next_tok(&cur, end, &cmd)) {
        reply_err(p, seq, TP_STR("bad_frame"), TP_STR("no command"));
        return;
    }
    op = parse_op(&cmd);
    if (op != OP_NONE) {
        cmd_single(p, seq, op, cur, end);
    } else if (tok_is(&cmd, TP_STR("hello")) || tok_is(&cmd, TP_STR("info"))) {
        cmd_hello(p, seq);
    } else if (tok_is(&cmd, TP_STR("ping"))) {
        cmd_ping(p, seq, cur, end);
    } else if (tok_is(&cmd, TP_STR("batch"))) {
        cmd_batch(p, seq, cur, end);
    } else if (tok_is(&cmd, TP_STR("bench"))) {
        cmd_bench(p, seq, cur, end);
    } else if (tok_is(&cmd, TP_STR("help"))) {
        cmd_help(p, seq);
    } else {
        err_begin(p, seq, TP_STR("unknown_command"));
        out_char(p, ' ');
        out_echo(p, cmd.s, cmd.n < TP_ECHO_MAX ? cmd.n : TP_ECHO_MAX);
        out_end(p);
    }
}

/* ---- lines ------------------------------------------------------------------------- */

/* The seq a line starts with ("123 ..."), or 0 when it does not start with one. */
static uint16_t leading_seq(const uint8_t *s, size_t n)
{
    size_t i = 0;
    uint16_t seq = 0;
    while (i < n && is_digit(s[i])) {
        ++i;
    }
    if (i < n && !is_blank(s[i])) {
        return 0;
    }
    return parse_u16(s, i, &seq) ? seq : 0;
}

static void process_line(tinygmm_proto *p)
{
    uint8_t *s = p->line;
    uint8_t *end = p->line + p->len;
    uint16_t seq = 0;
    while (s < end && is_blank(*s)) {
        ++s;
    }
    while (end > s && is_blank(end[-1])) {
        --end;
    }
    if (s == end) {
        return;
    }
    if (is_digit(*s)) { /* framed: SEQ ... *CRC */
        const size_t n = (size_t)(end - s);
        uint32_t given;
        uint16_t crc = TP_CRC_INIT;
        size_t i;
        seq = leading_seq(s, n);
        if (n < 7 || s[n - 5] != '*' || !parse_hex(s + n - 4, 4, &given) || seq == 0) {
            reply_err(p, seq, TP_STR("bad_frame"), TP_STR("want SEQ COMMAND ARGS*CRC"));
            return;
        }
        for (i = 0; i < n - 5; ++i) {
            crc = tinygmm_proto_crc16(crc, s[i]);
            if (i % TP_POLL_EVERY == 0u) {
                tp_poll(p);
            }
        }
        if (crc != (uint16_t)given) {
            err_begin(p, seq, TP_STR("bad_crc"));
            out_pstr(p, TP_STR(" got "));
            out_hex(p, given, 4, 1);
            out_pstr(p, TP_STR(" want "));
            out_hex(p, crc, 4, 1);
            out_end(p);
            return;
        }
        end = s + n - 5;
        while (s < end && is_digit(*s)) { /* skip the seq */
            ++s;
        }
    }
    dispatch(p, seq, s, end);
}

void tinygmm_proto_init(tinygmm_proto *p, const tinygmm_proto_config *cfg)
{
    memset(p, 0, sizeof *p);
    p->cfg = *cfg;
}

void tinygmm_proto_banner(tinygmm_proto *p)
{
    out_begin(p, 0, TP_STR("boot"));
    out_key(p, TP_STR("proto"));
    out_u32(p, TINYGMM_PROTO_VERSION);
    out_key(p, TP_STR("model"));
    out_model_id(p);
    out_key(p, TP_STR("target"));
    out_cstr(p, p->cfg.target);
    out_end(p);
}

void tinygmm_proto_feed(tinygmm_proto *p, uint8_t byte)
{
    if (byte == '\n' || byte == '\r') {
        if (p->overflow) {
            err_begin(p, leading_seq(p->line, p->len), TP_STR("line_too_long"));
            out_pstr(p, TP_STR(" max="));
            out_u32(p, TINYGMM_PROTO_LINE_MAX);
            out_end(p);
        } else if (p->len != 0) {
            process_line(p);
        }
        p->len = 0;
        p->overflow = 0;
        return;
    }
    if (p->overflow) {
        return;
    }
    if (p->len < TINYGMM_PROTO_LINE_MAX) {
        p->line[p->len++] = byte;
    } else {
        p->overflow = 1;
    }
}
