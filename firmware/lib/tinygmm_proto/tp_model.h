/* tp_model.h -- the compiled-in model as the protocol files see it (private).
 *
 * Included by the files that need the model's sizes or the core's types: tp_result and the
 * vector buffers are sized by the TINYGMM_MAX_* the rendered header sets, so every file
 * using them must include it the same way, through here. Only tp_model.c names the model.
 */
#ifndef TP_MODEL_H
#define TP_MODEL_H

#include "tinygmm_model.h" /* first: it sets TINYGMM_MAX_* for this model before tinygmm.h */
#include "tinygmm.h"       /* already included above; named so PlatformIO's LDF links lib/tinygmm */
#include "tp_internal.h"

/* A failed float result: a NaN with the status in its low byte (a valid result is never NaN). */
#define TP_NAN_STATUS UINT32_C(0x7FC00000)

typedef struct tp_result {
    int label; /* predict */
    int flag;  /* anomaly */
    float score;
    float vec[TINYGMM_MAX_COMPONENTS]; /* log_joint, proba */
} tp_result;

#ifdef __cplusplus
extern "C" {
#endif

/* The model (in flash on AVR: read it with TINYGMM_READ_MODEL or the core's accessors). */
const tinygmm_model *tp_model(void);
const char *tp_op_name(uint8_t op);
tinygmm_status tp_run_op(uint8_t op, const float *x, int n, tp_result *r);
int tp_op_succeeded(uint8_t op, tinygmm_status st, const tp_result *r);
const char *tp_status_code(tinygmm_status st);
uint8_t tp_result_byte(uint8_t op, const tp_result *r);

#ifdef __cplusplus
}
#endif

static inline int tp_model_features(void) { return tinygmm_n_features(tp_model()); }
static inline int tp_model_components(void) { return tinygmm_n_components(tp_model()); }

#endif /* TP_MODEL_H */
