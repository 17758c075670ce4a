/* tp_model.c -- the compiled-in model and the five operations on it (predict, log_joint, score,
 * proba, anomaly): their names, the core call behind each, and the core's status codes. The
 * only file that names the model. */
#include "tp_model.h"

#ifndef TINYGMM_PROTO_MODEL
#define TINYGMM_PROTO_MODEL gmm_model /* the symbol `tinygmm export` writes by default */
#endif
#define TP_CAT_(a, b) a##b
#define TP_CAT(a, b) TP_CAT_(a, b)
#define TP_MODEL (&TINYGMM_PROTO_MODEL)
#define TP_MODEL_ID TP_CAT(TINYGMM_PROTO_MODEL, _id) /* the header's flash copy of the id */

const tinygmm_model *tp_model(void) { return TP_MODEL; }

/* The model id, a flash string in the rendered header. */
const char *tp_model_id(void) { return TP_MODEL_ID; }

uint8_t tp_parse_op(const tp_tok *t)
{
    if (tp_tok_is(t, TP_STR("predict"))) {
        return OP_PREDICT;
    }
    if (tp_tok_is(t, TP_STR("log_joint"))) {
        return OP_LOG_JOINT;
    }
    if (tp_tok_is(t, TP_STR("score"))) {
        return OP_SCORE;
    }
    if (tp_tok_is(t, TP_STR("proba"))) {
        return OP_PROBA;
    }
    if (tp_tok_is(t, TP_STR("anomaly"))) {
        return OP_ANOMALY;
    }
    return OP_NONE;
}

/* Names are looked up by if-chains, not a switch: GCC turns a switch that only returns constants
 * into a table of pointers in .rodata, and .rodata is RAM on AVR. */
const char *tp_op_name(uint8_t op)
{
    if (op == OP_PREDICT) {
        return TP_STR("predict");
    }
    if (op == OP_LOG_JOINT) {
        return TP_STR("log_joint");
    }
    if (op == OP_SCORE) {
        return TP_STR("score");
    }
    if (op == OP_PROBA) {
        return TP_STR("proba");
    }
    return TP_STR("anomaly");
}

tinygmm_status tp_run_op(uint8_t op, const float *x, int n, tp_result *r)
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
    case OP_PROBA: return tinygmm_predict_proba(TP_MODEL, x, n, r->vec);
    default: return tinygmm_anomaly(TP_MODEL, x, n, &r->flag);
    }
}

/* log_joint's overflow that carries K log-joints (-inf where overflowed) is a result. */
int tp_op_succeeded(uint8_t op, tinygmm_status st, const tp_result *r)
{
    return st == TINYGMM_OK || (op == OP_LOG_JOINT && st == TINYGMM_ERR_OVERFLOW && r->vec[0] == r->vec[0]);
}

/* The error code of a failed operation (docs/protocol.md). */
const char *tp_status_code(tinygmm_status st)
{
    if (st == TINYGMM_ERR_FEATURES) {
        return TP_STR("features");
    }
    if (st == TINYGMM_ERR_NONFINITE) {
        return TP_STR("nonfinite");
    }
    if (st == TINYGMM_ERR_OVERFLOW) {
        return TP_STR("overflow");
    }
    if (st == TINYGMM_ERR_NO_THRESHOLD) {
        return TP_STR("no_threshold");
    }
    return TP_STR("model");
}

/* A byte of the result, so the benchmark loop cannot be optimised away. */
uint8_t tp_result_byte(uint8_t op, const tp_result *r)
{
    switch (op) {
    case OP_PREDICT: return (uint8_t)r->label;
    case OP_ANOMALY: return (uint8_t)r->flag;
    case OP_SCORE: return (uint8_t)tp_float_bits(r->score);
    default: return (uint8_t)tp_float_bits(r->vec[0]);
    }
}
