/* tp_decimal.c -- a float in decimal for people (human-mode replies): what printf's "%.6g" writes,
 * without printf's float support (not linked on AVR) and without any float arithmetic.
 *
 * Exact: the float is m * 2^e with integers m < 2^24 and -149 <= e <= 104, so it equals the integer
 * N = m * 2^e (e >= 0), or N = m * 5^-e times 10^e (e < 0). N is built in decimal, one digit per
 * byte (at most 24 + 149 * log2(5) < 370 bits: 112 digits), by multiplying m's digits by 2 or 5;
 * its 7 leading digits, and whether any digit after them is nonzero, round it to 6 significant
 * digits, to nearest with ties to even, as glibc and Python do. Slow (up to ~17 ms on an Uno, for
 * the tiniest floats) but only human requests use it.
 */
#include "tp_internal.h"

#define TP_N_DIGITS 112 /* decimal digits of m * 5^149 < 2^370 */
#define TP_DIGITS 6     /* significant digits written */
#define TP_KEPT 7       /* digits kept: one more to round by */

/* The leading TP_DIGITS decimal digits of m * 2^e (m != 0) into dig[0..TP_DIGITS), most significant
 * first, rounded to nearest with ties to even; returns the decimal exponent of dig[0]. */
static int8_t leading_digits(uint32_t m, int e, uint8_t *dig)
{
    uint8_t num[TP_N_DIGITS]; /* N, least significant digit first */
    uint8_t n = 0, k, i, c, d, sticky = 0;
    const uint8_t factor = e < 0 ? 5u : 2u;
    int8_t x;
    for (; m != 0; m /= 10u) {
        num[n++] = (uint8_t)(m % 10u);
    }
    for (k = (uint8_t)(e < 0 ? -e : e); k > 0; --k) {
        for (i = 0, c = 0; i < n; ++i) { /* carries stay below 5 */
            d = (uint8_t)(num[i] * factor + c);
            for (c = 0; d >= 10u; ++c) {
                d = (uint8_t)(d - 10u);
            }
            num[i] = d;
        }
        if (c != 0) {
            num[n++] = c;
        }
    }
    for (i = 0; i < n; ++i) { /* the leading TP_KEPT digits; of the rest, only whether any is nonzero */
        if (i < TP_KEPT) {
            dig[i] = num[n - 1u - i];
        } else {
            sticky |= num[n - 1u - i];
        }
    }
    for (; i < TP_KEPT; ++i) {
        dig[i] = 0;
    }
    x = (int8_t)(n - 1 + (e < 0 ? e : 0)); /* v = N * 10^e for e < 0 */
    /* up on more than half, and on exactly half when that makes the last digit even */
    if (dig[TP_DIGITS] > 5u || (dig[TP_DIGITS] == 5u && (sticky != 0 || (dig[TP_DIGITS - 1] & 1u) != 0))) {
        for (k = TP_DIGITS; k > 0 && ++dig[k - 1] == 10u; --k) {
            dig[k - 1] = 0;
        }
        if (k == 0) { /* 999999.5 -> 1000000 */
            dig[0] = 1;
            ++x;
        }
    }
    return x;
}

/* The digits as %g writes them: fixed for -4 <= x < TP_DIGITS ("0.000123", "4.5", "120"), else
 * "d.ddddde+XX"; trailing zeros dropped. Returns the end of the text. */
static char *write_g(char *o, const uint8_t *dig, int8_t x)
{
    int8_t i, nd, point = (x < -4 || x >= TP_DIGITS) ? 0 : x;
    uint8_t k;
    for (nd = TP_DIGITS; dig[nd - 1] == 0; --nd) {
    }
    for (i = point < 0 ? point : 0; i < nd || i <= point; ++i) { /* digit i is worth 10^(point - i) */
        if (i == point + 1) {
            *o++ = '.';
        }
        *o++ = (char)('0' + (i < 0 || i >= nd ? 0 : dig[i]));
    }
    if (point != x) {
        *o++ = 'e';
        *o++ = x < 0 ? '-' : '+';
        k = (uint8_t)(x < 0 ? -x : x); /* at most 45: two digits */
        for (i = 0; k >= 10u; ++i) {
            k = (uint8_t)(k - 10u);
        }
        *o++ = (char)('0' + i);
        *o++ = (char)('0' + k);
    }
    return o;
}

size_t tp_format_float(float v, char *buf)
{
    const uint32_t bits = tp_float_bits(v);
    const uint32_t m = bits & 0x7FFFFFu;
    const uint8_t e = (uint8_t)(bits >> 23);
    uint8_t dig[TP_KEPT];
    const char *word;
    char *o = buf;
    if ((bits >> 31) != 0 && !(e == 0xFFu && m != 0)) { /* nan is written without a sign */
        *o++ = '-';
    }
    if (e == 0xFFu) {
        for (word = m != 0 ? TP_STR("nan") : TP_STR("inf"); TP_CHAR(word) != '\0'; ++word) {
            *o++ = TP_CHAR(word);
        }
    } else if (e == 0 && m == 0) {
        *o++ = '0';
    } else { /* v = m * 2^(e - 150) with the implicit bit; subnormals: e = 1 without it */
        o = write_g(o, dig, leading_digits(e == 0 ? m : (m | 0x800000u), (e == 0 ? 1 : e) - 150, dig));
    }
    return (size_t)(o - buf);
}
