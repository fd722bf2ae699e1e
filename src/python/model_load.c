/* The bridge from Engine.load_model to atheria_core._model_loader (which
 * owns the file formats). */
#include "models.h"

PyObject *athpy_model_load(PyObject *path, PyObject *device) {
    PyObject *mod, *res;
    mod = PyImport_ImportModule("atheria_core._model_loader");
    if (mod == NULL) return NULL;
    res = PyObject_CallMethod(mod, "load_model_for_native_engine", "OO", path, device);
    Py_DECREF(mod);
    return res;
}
