/* models.h — what the model files of the extension share:
 *   model_zero.c      ZeroModel (C built-in, delta = 0)
 *   model_conv.c      ConvModel (C built-in conv stack)
 *   model_callable.c  the adapter that runs a Python callable as an ath_model
 *   model_resolve.c   set_model's argument -> ath_model, the zero probe
 *   model_load.c      the loader registered by atheria_core._model_loader (file loading) */
#ifndef ATHERIA_PY_MODELS_H
#define ATHERIA_PY_MODELS_H

#include "ath_py.h"

#define ATHPY_MODEL_CAPSULE "atheria_core.model"
#define ATHPY_CALLABLE_CAPSULE "atheria_core._callable_model"

typedef struct {
    PyObject_HEAD
    ath_model *model;
} AthPyZeroModel;

typedef struct {
    PyObject_HEAD
    ath_model *model;
    PyObject *weights;    /* tuple of float32 arrays */
    PyObject *biases;     /* tuple of float32 arrays or None */
    PyObject *activation; /* str */
    int64_t channels;
    int64_t n_layers;
} AthPyConvModel;

/* A new ATHPY_CALLABLE_CAPSULE capsule holding an ath_model that calls obj
 * (obj's receptive_radius / zero_preserving / has_memory attributes are read
 * now).  NULL with an exception. */
PyObject *athpy_wrap_callable(PyObject *obj);

#endif
