/* model_internal.h — what the model files share privately. */
#ifndef ATHERIA_MODEL_INTERNAL_H
#define ATHERIA_MODEL_INTERNAL_H

#include "atheria/model.h"

/* 1 if model is the built-in conv stack (model_conv.c). */
int ath_model_is_conv(const ath_model *model);

#endif
