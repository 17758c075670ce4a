/* tp_base64.c -- base64 (RFC 4648): the encoder of batch replies (through p->b64_acc) and the
 * in-place decoder of batch requests. */
#include "tp_internal.h"

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
    tp_out_char(p, b64_char(v >> 18));
    tp_out_char(p, b64_char(v >> 12));
    tp_out_char(p, n_bytes > 1 ? b64_char(v >> 6) : '=');
    tp_out_char(p, n_bytes > 2 ? b64_char(v) : '=');
}

/* Encodes one byte into the reply (start with p->b64_n = 0, end with tp_b64_finish). */
void tp_b64_put(tinygmm_proto *p, uint8_t byte)
{
    p->b64_acc[p->b64_n++] = byte;
    if (p->b64_n == 3) {
        b64_emit(p, 3);
        p->b64_n = 0;
    }
}

void tp_b64_put_u32(tinygmm_proto *p, uint32_t v)
{
    int i;
    for (i = 0; i < 4; ++i) {
        tp_b64_put(p, (uint8_t)(v >> (8 * i))); /* little-endian */
    }
}

/* Emits the bytes still held, padded with '='. */
void tp_b64_finish(tinygmm_proto *p)
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
int tp_b64_decode(const tinygmm_proto *p, uint8_t *s, size_t n, size_t *decoded)
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
