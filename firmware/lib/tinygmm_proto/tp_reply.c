/* tp_reply.c -- writing reply lines: bytes staged in p->out and handed to the write callback in
 * chunks, the running CRC, numbers, and the "SEQ ok|err ..." head and "*CRC" end of a frame. */
#include "tp_internal.h"

#if TINYGMM_PROTO_OUT_CHUNK < 8 || TINYGMM_PROTO_OUT_CHUNK > 255
#error "TINYGMM_PROTO_OUT_CHUNK must be between 8 and 255"
#endif

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

void tp_out_char(tinygmm_proto *p, char c)
{
    p->out_crc = tinygmm_proto_crc16(p->out_crc, (uint8_t)c);
    out_raw(p, (uint8_t)c);
}

/* A string in flash (TP_STR / TP_FLASH). */
void tp_out_pstr(tinygmm_proto *p, const char *s)
{
    char c;
    while ((c = TP_CHAR(s)) != '\0') {
        tp_out_char(p, c);
        ++s;
    }
}

/* A string in RAM. */
void tp_out_cstr(tinygmm_proto *p, const char *s)
{
    while (*s != '\0') {
        tp_out_char(p, *s++);
    }
}

/* Untrusted bytes (echoes): printable ASCII only, so a reply stays one clean line. */
void tp_out_echo(tinygmm_proto *p, const uint8_t *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        tp_out_char(p, (s[i] > ' ' && s[i] < 0x7F) ? (char)s[i] : '?');
    }
}

void tp_out_u32(tinygmm_proto *p, uint32_t v)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (char)(v % 10u));
        v /= 10u;
    } while (v != 0);
    while (n > 0) {
        tp_out_char(p, digits[--n]);
    }
}

/* Computed, not a table: a string table would be RAM on AVR. */
static char hex_digit(uint32_t v, int upper)
{
    v &= 0xFu;
    return v < 10u ? (char)('0' + (char)v) : (char)((upper ? 'A' : 'a') + (char)(v - 10u));
}

void tp_out_hex(tinygmm_proto *p, uint32_t v, int n_digits, int upper)
{
    int i;
    for (i = n_digits - 1; i >= 0; --i) {
        tp_out_char(p, hex_digit(v >> (4 * i), upper));
    }
}

/* " XXXXXXXX": the float's bit pattern; to a person " DECIMAL (XXXXXXXX)", the pattern kept for
 * exactness. */
void tp_out_float(tinygmm_proto *p, float v, int human)
{
    tp_out_char(p, ' ');
    if (human) {
        char text[TP_FLOAT_TEXT_MAX];
        const size_t n = tp_format_float(v, text);
        size_t i;
        for (i = 0; i < n; ++i) {
            tp_out_char(p, text[i]);
        }
        tp_out_pstr(p, TP_STR(" ("));
    }
    tp_out_hex(p, tp_float_bits(v), 8, 0);
    if (human) {
        tp_out_char(p, ')');
    }
}

/* " key=" */
void tp_out_key(tinygmm_proto *p, const char *key_flash)
{
    tp_out_char(p, ' ');
    tp_out_pstr(p, key_flash);
    tp_out_char(p, '=');
}

void tp_out_begin(tinygmm_proto *p, uint16_t seq, const char *kind_flash)
{
    p->out_crc = TP_CRC_INIT;
    tp_out_u32(p, seq);
    tp_out_char(p, ' ');
    tp_out_pstr(p, kind_flash);
}

void tp_out_end(tinygmm_proto *p)
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

void tp_ok_begin(tinygmm_proto *p, uint16_t seq, const char *command_flash)
{
    tp_out_begin(p, seq, TP_STR("ok "));
    tp_out_pstr(p, command_flash);
}

void tp_err_begin(tinygmm_proto *p, uint16_t seq, const char *code_flash)
{
    tp_out_begin(p, seq, TP_STR("err "));
    tp_out_pstr(p, code_flash);
}

/* A whole error reply: "SEQ err CODE[ DETAIL]*CRC". */
void tp_reply_err(tinygmm_proto *p, uint16_t seq, const char *code_flash, const char *detail_flash)
{
    tp_err_begin(p, seq, code_flash);
    if (detail_flash != NULL) {
        tp_out_char(p, ' ');
        tp_out_pstr(p, detail_flash);
    }
    tp_out_end(p);
}
