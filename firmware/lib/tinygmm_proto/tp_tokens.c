/* tp_tokens.c -- splitting a line into blank-separated tokens and matching them against names. */
#include "tp_internal.h"

/* The next token from *cur (blanks: space and tab); 0 at the end of the line. */
int tp_next_tok(uint8_t **cur, uint8_t *end, tp_tok *t)
{
    uint8_t *s = *cur;
    while (s < end && tp_is_blank(*s)) {
        ++s;
    }
    if (s == end) {
        *cur = s;
        return 0;
    }
    t->s = s;
    while (s < end && !tp_is_blank(*s)) {
        ++s;
    }
    t->n = (size_t)(s - t->s);
    *cur = s;
    return 1;
}

/* 1 when the token spells the flash string exactly. */
int tp_tok_is(const tp_tok *t, const char *name_flash)
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
