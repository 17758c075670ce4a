/* tp_numbers.c -- numbers in request lines: seq and counts (decimal), the CRC (hex), and floats
 * (8 hex digits of a bit pattern, or decimal text). */
#include "tp_internal.h"

#include <stdlib.h>

static int hex_value(uint8_t c)
{
    if (tp_is_digit(c)) {
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

/* Unsigned decimal of 1 to 5 digits, at most 65535. */
int tp_parse_u16(const uint8_t *s, size_t n, uint16_t *out)
{
    uint32_t v = 0;
    size_t i;
    if (n == 0 || n > 5) {
        return 0;
    }
    for (i = 0; i < n; ++i) {
        if (!tp_is_digit(s[i])) {
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

int tp_parse_hex(const uint8_t *s, size_t n, uint32_t *out)
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

static int lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c; }

static int is_word(const uint8_t *s, size_t n, const char *word)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        if (word[i] == '\0' || lower(s[i]) != word[i]) {
            return 0;
        }
    }
    return word[n] == '\0';
}

/* The protocol's own decimal grammar, so that every device accepts the same numbers whatever its C
 * library's strtod also takes (glibc reads 0x1p3 and nan(123); avr-libc does not):
 *   [+-] (digits [. [digits]] | . digits) [(e|E) [+-] digits]   or   [+-] (inf | infinity | nan) */
static int is_decimal(const uint8_t *s, size_t n)
{
    size_t i = 0, mantissa = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        ++i;
    }
    if (is_word(s + i, n - i, "inf") || is_word(s + i, n - i, "infinity") || is_word(s + i, n - i, "nan")) {
        return 1;
    }
    while (i < n && tp_is_digit(s[i])) {
        ++i;
        ++mantissa;
    }
    if (i < n && s[i] == '.') {
        ++i;
        while (i < n && tp_is_digit(s[i])) {
            ++i;
            ++mantissa;
        }
    }
    if (mantissa == 0) {
        return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t exponent = 0;
        ++i;
        if (i < n && (s[i] == '+' || s[i] == '-')) {
            ++i;
        }
        while (i < n && tp_is_digit(s[i])) {
            ++i;
            ++exponent;
        }
        if (exponent == 0) {
            return 0;
        }
    }
    return i == n;
}

/* Exactly 8 hex digits: a bit pattern; else a decimal of the protocol's grammar, converted by the
 * C library. The token is NUL-terminated in place for strtof (line[] has one spare byte past its
 * last token). */
static int parse_float(tp_tok *t, float *out)
{
    uint32_t bits;
    char *endp;
    uint8_t saved;
    float v;
    if (t->n == 8 && tp_parse_hex(t->s, 8, &bits)) {
        memcpy(out, &bits, sizeof bits);
        return 1;
    }
    if (!is_decimal(t->s, t->n)) {
        return 0;
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

/* Reads the remaining tokens as floats into x (at most x_max kept, all counted).
 * Returns 0, or the 1-based position of the first token that is not a number. */
int tp_parse_vector(uint8_t *cur, uint8_t *end, float *x, int x_max, int *n)
{
    tp_tok t;
    float v;
    *n = 0;
    while (tp_next_tok(&cur, end, &t)) {
        if (!parse_float(&t, &v)) {
            return *n + 1;
        }
        if (*n < x_max) {
            x[*n] = v;
        }
        ++*n;
    }
    return 0;
}

/* 1 when every token in [cur, end) is a number (a person's predict: "25 80"). */
int tp_all_numbers(uint8_t *cur, uint8_t *end)
{
    float unused;
    int n;
    return tp_parse_vector(cur, end, &unused, 0, &n) == 0;
}
