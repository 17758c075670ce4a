/* tp_cmd_eval.c -- the commands that evaluate the model: one vector in text (predict, log_joint,
 * score, proba, anomaly), many in base64 (batch), and one repeated under the clock (bench). */
#include "tp_model.h"

/* Batch records: an error byte record is 0xFF then the status; a float record a NaN with the
 * status in its low byte, TP_NAN_STATUS (a valid result is never NaN, a label never 255: K <= 255). */
#define TP_BATCH_ERROR_BYTE 0xFFu

/* Reads a vector into x; on failure sends the error reply and returns 0. */
static int take_vector(tinygmm_proto *p, uint16_t seq, uint8_t *cur, uint8_t *end, float *x)
{
    int n, bad = tp_parse_vector(cur, end, x, TINYGMM_MAX_FEATURES, &n);
    if (bad != 0) {
        tp_err_begin(p, seq, TP_STR("bad_number"));
        tp_out_pstr(p, TP_STR(" arg="));
        tp_out_u32(p, (uint32_t)bad);
        tp_out_end(p);
        return 0;
    }
    if (n != tp_model_features()) {
        tp_err_begin(p, seq, TP_STR("features"));
        tp_out_pstr(p, TP_STR(" want "));
        tp_out_u32(p, (uint32_t)tp_model_features());
        tp_out_pstr(p, TP_STR(" got "));
        tp_out_u32(p, (uint32_t)n);
        tp_out_end(p);
        return 0;
    }
    return 1;
}

void tp_cmd_single(tinygmm_proto *p, uint16_t seq, uint8_t op, uint8_t *cur, uint8_t *end)
{
    float x[TINYGMM_MAX_FEATURES];
    tp_result r;
    tinygmm_status st;
    int k;
    if (!take_vector(p, seq, cur, end, x)) {
        return;
    }
    st = tp_run_op(op, x, tp_model_features(), &r);
    if (!tp_op_succeeded(op, st, &r)) {
        tp_reply_err(p, seq, tp_status_code(st), NULL);
        return;
    }
    tp_ok_begin(p, seq, tp_op_name(op));
    switch (op) {
    case OP_PREDICT:
        tp_out_char(p, ' ');
        tp_out_u32(p, (uint32_t)r.label);
        break;
    case OP_ANOMALY:
        tp_out_char(p, ' ');
        tp_out_u32(p, (uint32_t)r.flag);
        break;
    case OP_SCORE:
        tp_out_float(p, r.score, seq == TP_UNSOLICITED_SEQ);
        break;
    default:
        for (k = 0; k < tp_model_components(); ++k) {
            tp_out_float(p, r.vec[k], seq == TP_UNSOLICITED_SEQ);
        }
    }
    tp_out_end(p);
}

static void put_record(tinygmm_proto *p, uint8_t op, tinygmm_status st, const tp_result *r)
{
    int k;
    const int ok = tp_op_succeeded(op, st, r);
    if (op == OP_PREDICT || op == OP_ANOMALY) {
        if (ok) {
            tp_b64_put(p, (uint8_t)(op == OP_PREDICT ? r->label : r->flag));
        } else {
            tp_b64_put(p, TP_BATCH_ERROR_BYTE);
            tp_b64_put(p, (uint8_t)st);
        }
    } else if (op == OP_SCORE) {
        tp_b64_put_u32(p, ok ? tp_float_bits(r->score) : TP_NAN_STATUS | (uint32_t)st);
    } else {
        for (k = 0; k < tp_model_components(); ++k) {
            tp_b64_put_u32(p, ok ? tp_float_bits(r->vec[k]) : TP_NAN_STATUS | (uint32_t)st);
        }
    }
}

/* "SEQ ok CMD OP N " -- the head batch and bench replies share. */
static void ok_op_count(tinygmm_proto *p, uint16_t seq, const char *command_flash, uint8_t op, uint16_t n)
{
    tp_ok_begin(p, seq, command_flash);
    tp_out_char(p, ' ');
    tp_out_pstr(p, tp_op_name(op));
    tp_out_char(p, ' ');
    tp_out_u32(p, n);
    tp_out_char(p, ' ');
}

void tp_cmd_batch(tinygmm_proto *p, uint16_t seq, uint8_t *cur, uint8_t *end)
{
    tp_tok op_tok, n_tok, data, extra;
    uint8_t op;
    uint16_t n, i;
    size_t decoded;
    const int D = tp_model_features();
    float x[TINYGMM_MAX_FEATURES];
    if (!tp_next_tok(&cur, end, &op_tok) || !tp_next_tok(&cur, end, &n_tok) || !tp_next_tok(&cur, end, &data) ||
        tp_next_tok(&cur, end, &extra)) {
        tp_reply_err(p, seq, TP_STR("bad_args"), TP_STR("want batch OP N BASE64"));
        return;
    }
    op = tp_parse_op(&op_tok);
    if (op == OP_NONE) {
        tp_reply_err(p, seq, TP_STR("bad_args"), TP_STR("OP"));
        return;
    }
    if (!tp_parse_u16(n_tok.s, n_tok.n, &n) || n == 0) {
        tp_reply_err(p, seq, TP_STR("bad_args"), TP_STR("N"));
        return;
    }
    if (!tp_b64_decode(p, data.s, data.n, &decoded)) {
        tp_reply_err(p, seq, TP_STR("bad_args"), TP_STR("base64"));
        return;
    }
    if ((uint32_t)decoded != (uint32_t)n * 4u * (uint32_t)D) {
        tp_err_begin(p, seq, TP_STR("bad_args"));
        tp_out_pstr(p, TP_STR(" want "));
        tp_out_u32(p, (uint32_t)n * 4u * (uint32_t)D);
        tp_out_pstr(p, TP_STR(" bytes got "));
        tp_out_u32(p, (uint32_t)decoded);
        tp_out_end(p);
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
        put_record(p, op, tp_run_op(op, x, D, &r), &r);
        tp_poll(p);
    }
    tp_b64_finish(p);
    tp_out_end(p);
}

void tp_cmd_bench(tinygmm_proto *p, uint16_t seq, uint8_t *cur, uint8_t *end)
{
    tp_tok op_tok, n_tok;
    uint8_t op;
    uint16_t n, i;
    uint32_t t0, t1;
    float x[TINYGMM_MAX_FEATURES];
    tp_result r;
    tinygmm_status st;
    const int D = tp_model_features();
    volatile uint8_t sink = 0;
    if (!tp_next_tok(&cur, end, &op_tok) || !tp_next_tok(&cur, end, &n_tok)) {
        tp_reply_err(p, seq, TP_STR("bad_args"), TP_STR("want bench OP N x1..xD"));
        return;
    }
    op = tp_parse_op(&op_tok);
    if (op == OP_NONE || !tp_parse_u16(n_tok.s, n_tok.n, &n) || n == 0) {
        tp_reply_err(p, seq, TP_STR("bad_args"), TP_STR("want bench OP N x1..xD"));
        return;
    }
    if (p->cfg.clock == NULL) {
        tp_reply_err(p, seq, TP_STR("bad_args"), TP_STR("no clock on this target"));
        return;
    }
    if (!take_vector(p, seq, cur, end, x)) {
        return;
    }
    st = tp_run_op(op, x, D, &r);
    if (!tp_op_succeeded(op, st, &r)) {
        tp_reply_err(p, seq, tp_status_code(st), NULL);
        return;
    }
    t0 = p->cfg.clock();
    for (i = 0; i < n; ++i) {
        (void)tp_run_op(op, x, D, &r);
        sink = (uint8_t)(sink + tp_result_byte(op, &r));
    }
    t1 = p->cfg.clock();
    ok_op_count(p, seq, TP_STR("bench"), op, n);
    tp_out_u32(p, t1 - t0); /* modulo 2^32: right across one wrap */
    tp_out_char(p, ' ');
    tp_out_cstr(p, p->cfg.clock_unit);
    tp_out_end(p);
    (void)sink;
}
