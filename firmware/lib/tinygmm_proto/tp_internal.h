/* tp_internal.h -- what the files of the protocol library share (private: the glue includes
 * tinygmm_proto.h only).
 *
 * A name with the tp_ prefix is shared between the files and declared here or in tp_model.h;
 * a name without it is static to its file. This header does not see the model: the files
 * that need it (its K and D, the core's operations) include tp_model.h as well.
 */
#ifndef TP_INTERNAL_H
#define TP_INTERNAL_H

#include "tinygmm_proto.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* All constant strings live in flash on AVR (PSTR), where .rodata would otherwise be RAM. */
#if defined(__AVR__)
#include <avr/pgmspace.h>
#define TP_STR(s) PSTR(s)
#define TP_FLASH PROGMEM
#define TP_CHAR(p) ((char)pgm_read_byte(p))
#else
#define TP_STR(s) (s)
#define TP_FLASH
#define TP_CHAR(p) (*(p))
#endif

#define TP_CRC_INIT 0xFFFFu
/* The seq of lines the host did not ask for: the banner and the replies to human requests (typed
 * without SEQ and CRC). A request answered with it is a person's: decimal floats, help with arguments. */
#define TP_UNSOLICITED_SEQ 0u
/* Lets the glue drain its receive hardware during long work on a line (see tinygmm_proto_poll_fn):
 * at 115200 baud a byte arrives every ~1400 AVR cycles, and the Uno's ring holds 63. */
#define TP_POLL_EVERY 32u

enum { OP_PREDICT, OP_LOG_JOINT, OP_SCORE, OP_PROBA, OP_ANOMALY, OP_NONE };

typedef struct tp_tok {
    uint8_t *s;
    size_t n;
} tp_tok;

static inline int tp_is_blank(uint8_t c) { return c == ' ' || c == '\t'; }
static inline int tp_is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static inline uint32_t tp_float_bits(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

static inline void tp_poll(const tinygmm_proto *p)
{
    if (p->cfg.poll != NULL) {
        p->cfg.poll(p->cfg.user);
    }
}

#ifdef __cplusplus
extern "C" {
#endif

/* tp_reply.c: a reply line, staged in p->out and framed with its CRC. Strings named *_flash
 * are TP_STR / TP_FLASH strings. */
void tp_out_char(tinygmm_proto *p, char c);
void tp_out_pstr(tinygmm_proto *p, const char *s);
void tp_out_cstr(tinygmm_proto *p, const char *s);
void tp_out_echo(tinygmm_proto *p, const uint8_t *s, size_t n);
void tp_out_u32(tinygmm_proto *p, uint32_t v);
void tp_out_hex(tinygmm_proto *p, uint32_t v, int n_digits, int upper);
void tp_out_float(tinygmm_proto *p, float v, int human);
void tp_out_key(tinygmm_proto *p, const char *key_flash);
void tp_out_begin(tinygmm_proto *p, uint16_t seq, const char *kind_flash);
void tp_out_end(tinygmm_proto *p);
void tp_ok_begin(tinygmm_proto *p, uint16_t seq, const char *command_flash);
void tp_err_begin(tinygmm_proto *p, uint16_t seq, const char *code_flash);
void tp_reply_err(tinygmm_proto *p, uint16_t seq, const char *code_flash, const char *detail_flash);

/* tp_decimal.c: v as printf's "%.6g" writes it ("-4.53125", "1e-30", "inf"), no NUL; returns its
 * length, at most TP_FLOAT_TEXT_MAX. */
#define TP_FLOAT_TEXT_MAX 12
size_t tp_format_float(float v, char *buf);

/* tp_base64.c */
void tp_b64_put(tinygmm_proto *p, uint8_t byte);
void tp_b64_put_u32(tinygmm_proto *p, uint32_t v);
void tp_b64_finish(tinygmm_proto *p);
int tp_b64_decode(const tinygmm_proto *p, uint8_t *s, size_t n, size_t *decoded);

/* tp_tokens.c */
int tp_next_tok(uint8_t **cur, uint8_t *end, tp_tok *t);
int tp_tok_is(const tp_tok *t, const char *name_flash);

/* tp_numbers.c */
int tp_parse_u16(const uint8_t *s, size_t n, uint16_t *out);
int tp_parse_hex(const uint8_t *s, size_t n, uint32_t *out);
int tp_parse_vector(uint8_t *cur, uint8_t *end, float *x, int x_max, int *n);
int tp_all_numbers(uint8_t *cur, uint8_t *end);

/* tp_model.c (the parts that need no model types; the rest is in tp_model.h) */
const char *tp_model_id(void);
uint8_t tp_parse_op(const tp_tok *t);

/* tp_cmd_info.c */
void tp_cmd_hello(tinygmm_proto *p, uint16_t seq);
void tp_cmd_ping(tinygmm_proto *p, uint16_t seq, uint8_t *cur, uint8_t *end);
void tp_cmd_help(tinygmm_proto *p, uint16_t seq);

/* tp_cmd_eval.c */
void tp_cmd_single(tinygmm_proto *p, uint16_t seq, uint8_t op, uint8_t *cur, uint8_t *end);
void tp_cmd_batch(tinygmm_proto *p, uint16_t seq, uint8_t *cur, uint8_t *end);
void tp_cmd_bench(tinygmm_proto *p, uint16_t seq, uint8_t *cur, uint8_t *end);

#ifdef __cplusplus
}
#endif

#endif /* TP_INTERNAL_H */
