/* tp_cmd_info.c -- the commands about the device rather than a vector: hello (alias info),
 * ping and help. */
#include "tp_model.h"

/* Bytes of a batch line outside its base64 at worst: "65535 batch log_joint 65535 " + "*XXXX". */
#define TP_BATCH_OVERHEAD 33u
#define TP_NONCE_MAX 32u

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

/* 1 when a*b - c is fused in this build (a = 1 + 2^-12, c = 1 + 2^-11: a*a rounds to c,
 * so unfused it is 0 and fused 2^-24). volatile keeps the compiler from folding it. */
static int fma_contracted(void)
{
    volatile float a = 1.000244140625f;
    volatile float c = 1.00048828125f;
    const float x = a, y = c;
    return x * x - y != 0.0f;
}

/* An if-chain, not a switch (see tp_op_name). */
static const char *covariance_name(uint8_t code)
{
    if (code == TINYGMM_FULL) {
        return TP_STR("full");
    }
    if (code == TINYGMM_TIED) {
        return TP_STR("tied");
    }
    if (code == TINYGMM_DIAG) {
        return TP_STR("diag");
    }
    return TP_STR("spherical");
}

/* The most vectors one batch line carries (hello's batch=). */
static uint32_t batch_max_vectors(void)
{
    const uint32_t b64_chars = ((uint32_t)TINYGMM_PROTO_LINE_MAX - TP_BATCH_OVERHEAD) / 4u * 4u;
    return b64_chars / 4u * 3u / (4u * (uint32_t)tp_model_features());
}

void tp_cmd_hello(tinygmm_proto *p, uint16_t seq)
{
    tinygmm_model m;
    const char *cc = tp_cc;
    char c;
    TINYGMM_READ_MODEL(&m, tp_model());
    tp_ok_begin(p, seq, TP_STR("hello"));
    tp_out_key(p, TP_STR("proto"));
    tp_out_u32(p, TINYGMM_PROTO_VERSION);
    tp_out_key(p, TP_STR("model"));
    tp_out_pstr(p, tp_model_id());
    tp_out_key(p, TP_STR("k"));
    tp_out_u32(p, m.n_components);
    tp_out_key(p, TP_STR("d"));
    tp_out_u32(p, m.n_features);
    tp_out_key(p, TP_STR("cov"));
    tp_out_pstr(p, covariance_name(m.covariance_type));
    tp_out_key(p, TP_STR("target"));
    tp_out_cstr(p, p->cfg.target);
    tp_out_key(p, TP_STR("float"));
    tp_out_u32(p, (uint32_t)sizeof(float));
    tp_out_key(p, TP_STR("double"));
    tp_out_u32(p, (uint32_t)sizeof(double));
    tp_out_key(p, TP_STR("rx"));
    tp_out_u32(p, p->cfg.rx_buffer);
    tp_out_key(p, TP_STR("line"));
    tp_out_u32(p, TINYGMM_PROTO_LINE_MAX);
    tp_out_key(p, TP_STR("batch"));
    tp_out_u32(p, batch_max_vectors());
    tp_out_key(p, TP_STR("thr"));
    tp_out_u32(p, m.has_threshold);
    tp_out_key(p, TP_STR("fma"));
    tp_out_u32(p, (uint32_t)fma_contracted());
    tp_out_key(p, TP_STR("clock"));
    if (p->cfg.clock != NULL) {
        tp_out_cstr(p, p->cfg.clock_unit);
    } else {
        tp_out_pstr(p, TP_STR("none"));
    }
    tp_out_key(p, TP_STR("opt"));
#if defined(__OPTIMIZE_SIZE__)
    tp_out_pstr(p, TP_STR("size"));
#elif defined(__OPTIMIZE__)
    tp_out_pstr(p, TP_STR("speed"));
#else
    tp_out_pstr(p, TP_STR("none"));
#endif
    tp_out_key(p, TP_STR("cc"));
    while ((c = TP_CHAR(cc)) != '\0') { /* the compiler's version string may hold spaces */
        tp_out_char(p, c == ' ' ? '_' : c);
        ++cc;
    }
    tp_out_end(p);
}

void tp_cmd_ping(tinygmm_proto *p, uint16_t seq, uint8_t *cur, uint8_t *end)
{
    tp_tok nonce, extra;
    size_t i;
    if (!tp_next_tok(&cur, end, &nonce) || tp_next_tok(&cur, end, &extra) || nonce.n > TP_NONCE_MAX) {
        tp_reply_err(p, seq, TP_STR("bad_args"), TP_STR("want ping NONCE"));
        return;
    }
    for (i = 0; i < nonce.n; ++i) {
        const uint8_t c = nonce.s[i];
        if (!(tp_is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-')) {
            tp_reply_err(p, seq, TP_STR("bad_args"), TP_STR("nonce"));
            return;
        }
    }
    tp_ok_begin(p, seq, TP_STR("ping"));
    tp_out_char(p, ' ');
    tp_out_echo(p, nonce.s, nonce.n);
    tp_out_end(p);
}

/* The commands and their arguments ('#': the vector x1..xD), '|' between commands; after ';' a note
 * for people. */
static const char tp_help[] TP_FLASH = "hello|ping NONCE|predict #|log_joint #|score #|proba #|anomaly #|"
                                       "batch OP N BASE64|bench OP N #; # alone: predict";

/* "x1..xD" ("x1" when D = 1) */
static void out_vector_args(tinygmm_proto *p)
{
    const int d = tp_model_features();
    tp_out_pstr(p, TP_STR("x1"));
    if (d > 1) {
        tp_out_pstr(p, TP_STR("..x"));
        tp_out_u32(p, (uint32_t)d);
    }
}

/* To a framed request the command names, as before; to a person their arguments and the note too. */
void tp_cmd_help(tinygmm_proto *p, uint16_t seq)
{
    const int human = seq == TP_UNSOLICITED_SEQ;
    const char *s = tp_help;
    int in_args = 0;
    char c;
    tp_ok_begin(p, seq, TP_STR("help "));
    while ((c = TP_CHAR(s++)) != '\0' && (human || c != ';')) {
        if (c == '|') {
            in_args = 0;
            if (human) {
                tp_out_char(p, ',');
            }
            c = ' ';
        } else if (!human && (in_args || c == ' ')) {
            in_args = 1;
            continue;
        }
        if (c == '#') {
            out_vector_args(p);
        } else {
            tp_out_char(p, c);
        }
    }
    tp_out_end(p);
}
