/* tp_line.c -- the public entry points: received bytes into lines, the frame check of a line
 * (SEQ ... *CRC) and the dispatch to its command, human lines (no frame) among them; the boot banner.
 *
 * Every line is executed as soon as its line end arrives; nothing is kept between lines, so
 * after any garbage the next line is served. The line buffer is written only below its size.
 */
#include "tp_internal.h"

#define TP_ECHO_MAX 16u /* characters of an unknown command echoed back */

static void dispatch(tinygmm_proto *p, uint16_t seq, uint8_t *cur, uint8_t *end)
{
    tp_tok cmd;
    uint8_t op;
    if (!tp_next_tok(&cur, end, &cmd)) {
        tp_reply_err(p, seq, TP_STR("bad_frame"), TP_STR("no command"));
        return;
    }
    op = tp_parse_op(&cmd);
    if (op == OP_NONE && seq == TP_UNSOLICITED_SEQ && tp_all_numbers(cmd.s, cmd.s + cmd.n)) {
        op = OP_PREDICT; /* a person's line starting with a number: "25 80", "-1.5 2" */
        cur = cmd.s;
    }
    if (op != OP_NONE) {
        tp_cmd_single(p, seq, op, cur, end);
    } else if (tp_tok_is(&cmd, TP_STR("hello")) || tp_tok_is(&cmd, TP_STR("info"))) {
        tp_cmd_hello(p, seq);
    } else if (tp_tok_is(&cmd, TP_STR("ping"))) {
        tp_cmd_ping(p, seq, cur, end);
    } else if (tp_tok_is(&cmd, TP_STR("batch"))) {
        tp_cmd_batch(p, seq, cur, end);
    } else if (tp_tok_is(&cmd, TP_STR("bench"))) {
        tp_cmd_bench(p, seq, cur, end);
    } else if (tp_tok_is(&cmd, TP_STR("help"))) {
        tp_cmd_help(p, seq);
    } else {
        tp_err_begin(p, seq, TP_STR("unknown_command"));
        tp_out_char(p, ' ');
        tp_out_echo(p, cmd.s, cmd.n < TP_ECHO_MAX ? cmd.n : TP_ECHO_MAX);
        tp_out_end(p);
    }
}

/* The seq a line starts with ("123 ..."), or 0 when it does not start with one. */
static uint16_t leading_seq(const uint8_t *s, size_t n)
{
    size_t i = 0;
    uint16_t seq = 0;
    while (i < n && tp_is_digit(s[i])) {
        ++i;
    }
    if (i < n && !tp_is_blank(s[i])) {
        return 0;
    }
    return tp_parse_u16(s, i, &seq) ? seq : 0;
}

/* 1 for a person's line of numbers ("25 80"): no '*' and every token a number. */
static int numbers_alone(uint8_t *s, uint8_t *end)
{
    return memchr(s, '*', (size_t)(end - s)) == NULL && tp_all_numbers(s, end);
}

static void process_line(tinygmm_proto *p)
{
    uint8_t *s = p->line;
    uint8_t *end = p->line + p->len;
    uint16_t seq = TP_UNSOLICITED_SEQ;
    while (s < end && tp_is_blank(*s)) {
        ++s;
    }
    while (end > s && tp_is_blank(end[-1])) {
        --end;
    }
    if (s == end) {
        return;
    }
    if (tp_is_digit(*s) && !numbers_alone(s, end)) { /* framed: SEQ ... *CRC */
        const size_t n = (size_t)(end - s);
        uint32_t given;
        uint16_t crc = TP_CRC_INIT;
        size_t i;
        seq = leading_seq(s, n);
        if (n < 7 || s[n - 5] != '*' || !tp_parse_hex(s + n - 4, 4, &given) || seq == 0) {
            tp_reply_err(p, seq, TP_STR("bad_frame"), TP_STR("want SEQ COMMAND ARGS*CRC"));
            return;
        }
        for (i = 0; i < n - 5; ++i) {
            crc = tinygmm_proto_crc16(crc, s[i]);
            if (i % TP_POLL_EVERY == 0u) {
                tp_poll(p);
            }
        }
        if (crc != (uint16_t)given) {
            tp_err_begin(p, seq, TP_STR("bad_crc"));
            tp_out_pstr(p, TP_STR(" got "));
            tp_out_hex(p, given, 4, 1);
            tp_out_pstr(p, TP_STR(" want "));
            tp_out_hex(p, crc, 4, 1);
            tp_out_end(p);
            return;
        }
        end = s + n - 5;
        while (s < end && tp_is_digit(*s)) { /* skip the seq */
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
    tp_out_begin(p, TP_UNSOLICITED_SEQ, TP_STR("boot"));
    tp_out_key(p, TP_STR("proto"));
    tp_out_u32(p, TINYGMM_PROTO_VERSION);
    tp_out_key(p, TP_STR("model"));
    tp_out_pstr(p, tp_model_id());
    tp_out_key(p, TP_STR("target"));
    tp_out_cstr(p, p->cfg.target);
    tp_out_pstr(p, TP_STR(" (type help)")); /* for people: hosts read key=value words only */
    tp_out_end(p);
}

void tinygmm_proto_feed(tinygmm_proto *p, uint8_t byte)
{
    if (byte == '\n' || byte == '\r') {
        if (p->overflow) {
            tp_err_begin(p, leading_seq(p->line, p->len), TP_STR("line_too_long"));
            tp_out_pstr(p, TP_STR(" max="));
            tp_out_u32(p, TINYGMM_PROTO_LINE_MAX);
            tp_out_end(p);
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
