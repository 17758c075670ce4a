/* tp_decimal.c -- a float in decimal for people (human-mode replies): what printf's "%.6g" writes,
 * without printf's float support (not linked on AVR) and without double arithmetic.
 *
 * Exact: the float is m * 2^e with integers m < 2^24 and -149 <= e <= 104, so it equals the integer
 * N = m * 2^e (e >= 0), or N = m * 5^-e times 10^e (e < 0). N is built in a little-endian byte
 * array (at most 24 + 149 * log2(5) < 370 bits) and its decimal digits taken by repeated division
 * by 10; the 7 leading digits and whether any digit after them is nonzero round it to 6 significant
 * digits, to nearest with ties to even, as glibc and Python do. Slow (tens of ms on an Uno for the
 * tiniest floats) but only human requests use it.
 */
#include "tp_internal.h"

#define TP_BIG_BYTES 47 /* 370 bits */
#define TP_DIGITS 6     /* significant digits written */
#define TP_TOP 1000000u /* 10^TP_DIGITS: the place of the 7th digit kept for rounding */

/* n = N * k (k <= 5: the carry out of a byte stays below one byte). */
static void big_mul(uint8_t *big, uint8_t *n, uint8_t k)
{
    uint8_t i, carry = 0;
    for (i = 0; i < *n; ++i) {
        const uint16_t t = (uint16_t)(big[i] * k + carry);
        big[i] = (uint8_t)t;
        carry = (uint8_t)(t >> 8);
    }
    if (carry != 0) {
        big[(*n)++] = carry;
    }
}

/* N = N / 10; returns N % 10. */
static uint8_t big_div10(uint8_t *big, uint8_t *n)
{
    uint16_t rem = 0;
    uint8_t i = *n;
    while (i > 0) {
        --i;
        rem = (uint16_t)(rem << 8 | big[i]);
        big[i] = (uint8_t)(rem / 10u);
        rem = (uint16_t)(rem % 10u);
    }
    while (*n > 0 && big[*n - 1] == 0) {
        --*n;
    }
    return (uint8_t)rem;
}

static char *put_word(char *o, const char *word_flash)
{
    char c;
    while ((c = TP_CHAR(word_flash)) != '\0') {
        *o++ = c;
        ++word_flash;
    }
    return o;
}

size_t tp_format_float(float v, char *buf)
{
    const uint32_t bits = tp_float_bits(v);
    uint32_t m = bits & 0x7FFFFFu, top = 0, place = 1;
    int e = (int)((bits >> 23) & 0xFFu), x = 0, i, nd;
    uint8_t big[TP_BIG_BYTES], n = 0, sticky = 0, r;
    char digits[TP_DIGITS];
    char *o = buf;
    if ((bits >> 31) != 0 && !(e == 0xFF && m != 0)) { /* nan is written without a sign */
        *o++ = '-';
    }
    if (e == 0xFF) {
        o = put_word(o, m != 0 ? TP_STR("nan") : TP_STR("inf"));
        return (size_t)(o - buf);
    }
    if (e == 0) { /* subnormal */
        e = 1;
    } else {
        m |= 0x800000u;
    }
    e -= 150; /* v = m * 2^e */
    if (m == 0) {
        *o++ = '0';
        return (size_t)(o - buf);
    }
    while (e < 0 && (m & 1u) == 0) { /* a smaller N, the same value */
        m >>= 1;
        ++e;
    }
    for (; m != 0; m >>= 8) {
        big[n++] = (uint8_t)m;
    }
    for (i = e < 0 ? -e : e; i > 0; --i) {
        big_mul(big, &n, e < 0 ? 5u : 2u);
    }
    /* the digits of N, least significant first: top keeps the 7 most significant so far */
    while (n > 0) {
        const uint8_t d = big_div10(big, &n);
        if (place > TP_TOP) {
            sticky = (uint8_t)(sticky | (top % 10u != 0));
            top = top / 10u + d * TP_TOP;
        } else {
            top += d * place;
            place *= 10u;
        }
        ++x;
    }
    x += (e < 0 ? e : 0) - 1; /* the decimal exponent of the leading digit */
    while (place <= TP_TOP) { /* fewer than 7 digits: pad to 7 */
        top *= 10u;
        place *= 10u;
    }
    r = (uint8_t)(top % 10u);
    top /= 10u;
    if (r > 5u || (r == 5u && (sticky || (top & 1u)))) {
        ++top;
    }
    if (top == TP_TOP) { /* 999999.5 -> 1000000 */
        top /= 10u;
        ++x;
    }
    for (i = TP_DIGITS - 1; i >= 0; --i, top /= 10u) {
        digits[i] = (char)('0' + (char)(top % 10u));
    }
    for (nd = TP_DIGITS; digits[nd - 1] == '0'; --nd) { /* %g drops trailing zeros */
    }
    if (x < -4 || x >= TP_DIGITS) { /* d.ddddde+XX */
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            for (i = 1; i < nd; ++i) {
                *o++ = digits[i];
            }
        }
        *o++ = 'e';
        *o++ = x < 0 ? '-' : '+';
        x = x < 0 ? -x : x; /* |x| <= 45: two digits */
        *o++ = (char)('0' + (char)(x / 10));
        *o++ = (char)('0' + (char)(x % 10));
    } else if (x >= 0) { /* ddd.ddd */
        for (i = 0; i < nd || i <= x; ++i) {
            if (i == x + 1) {
                *o++ = '.';
            }
            *o++ = i < nd ? digits[i] : '0';
        }
    } else { /* 0.000ddd */
        *o++ = '0';
        *o++ = '.';
        for (i = x; i < -1; ++i) {
            *o++ = '0';
        }
        for (i = 0; i < nd; ++i) {
            *o++ = digits[i];
        }
    }
    return (size_t)(o - buf);
}
