/* tinygmm_driver_tu2.c -- a second translation unit including the core (and the rendered
 * model header, when the driver uses one): the link fails if anything is not static. */
#include "tinygmm_driver.h"

int driver_tu2_predict(const tinygmm_model *model, const float *x, int n_features, int *label)
{
#ifdef DRIVER_MODEL_HEADER
    (void)model;
    return (int)tinygmm_predict(&DRIVER_MODEL, x, n_features, label);
#else
    return (int)tinygmm_predict(model, x, n_features, label);
#endif
}
