/* set_model's argument as an ath_model, and the zero-preservation probe. */
#include "models.h"

int athpy_model_resolve(PyObject *obj, PyObject **owner, ath_model **model) {
    if (PyObject_TypeCheck(obj, &AthPyZeroModel_Type)) {
        *model = ((AthPyZeroModel *)obj)->model;
    } else if (PyObject_TypeCheck(obj, &AthPyConvModel_Type)) {
        *model = ((AthPyConvModel *)obj)->model;
    } else if (PyCapsule_CheckExact(obj)) {
        ath_model *m;
        if (!PyCapsule_IsValid(obj, ATHPY_MODEL_CAPSULE)) {
            const char *name = PyCapsule_GetName(obj);
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "model: capsule %s is not an '" ATHPY_MODEL_CAPSULE "' capsule",
                         name != NULL ? name : "(unnamed)");
            return -1;
        }
        m = (ath_model *)PyCapsule_GetPointer(obj, ATHPY_MODEL_CAPSULE);
        if (m == NULL) return -1;
        if (m->ops == NULL || m->ops->forward == NULL) {
            PyErr_SetString(PyExc_ValueError, "model: capsule holds an ath_model without forward()");
            return -1;
        }
        *model = m;
    } else if (PyCallable_Check(obj)) {
        PyObject *cap = athpy_wrap_callable(obj);
        if (cap == NULL) return -1;
        *model = (ath_model *)PyCapsule_GetPointer(cap, ATHPY_CALLABLE_CAPSULE);
        *owner = cap;
        return 0;
    } else {
        PyErr_Format(PyExc_TypeError,
                     "model: expected a ZeroModel, a ConvModel, a callable taking a float32 batch, "
                     "or an '" ATHPY_MODEL_CAPSULE "' capsule, got %s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (*model == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "model: not initialised");
        return -1;
    }
    Py_INCREF(obj);
    *owner = obj;
    return 0;
}

int athpy_model_probe_zero(ath_model *model, int64_t channels, int64_t h, int64_t w) {
    ath_error err;
    ath_status st;
    int is_zero = 0;
    ath_error_clear(&err);
    st = ath_model_probe_zero(model, channels, h, w, &is_zero, &err);
    if (st != ATH_OK) {
        athpy_raise(&err);
        return -1;
    }
    return is_zero;
}
