/* tinygmm_driver.h -- what both translation units of the test driver include: the rendered model
 * header when the driver is built with one, else the core sized for any model read at run time. */
#ifndef TINYGMM_DRIVER_H
#define TINYGMM_DRIVER_H

#ifdef DRIVER_MODEL_HEADER
#include DRIVER_MODEL_HEADER
#else
#define TINYGMM_MAX_FEATURES 64 /* room for any model the tests read at run time */
#define TINYGMM_MAX_COMPONENTS 64
#include "tinygmm.h"
#endif

/* Defined in tinygmm_driver_tu2.c: the same header included from a second translation unit. */
int driver_tu2_predict(const tinygmm_model *model, const float *x, int n_features, int *label);

#endif
