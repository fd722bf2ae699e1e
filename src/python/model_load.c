/* The model loader behind Engine.load_model / DenseEngine.load_model.
 *
 * The extension does not decide how a file is loaded, and imports no Python
 * module for it: atheria_core._model_loader (the one owner of that decision,
 * docs/torchscript.md) registers a callable at import with
 * _core._set_model_loader(), and load_model calls it as
 * loader(engine, path) -> model (anything set_model accepts).  The reference
 * is guarded by the GIL. */
#include "models.h"

static PyObject *g_model_loader = NULL;

PyObject *athpy_set_model_loader(PyObject *self, PyObject *loader) {
    PyObject *old;
    (void)self;
    if (loader != Py_None && !PyCallable_Check(loader))
        return PyErr_Format(PyExc_TypeError, "_set_model_loader: expected a callable or None, got %s",
                            Py_TYPE(loader)->tp_name);
    old = g_model_loader;
    if (loader == Py_None) {
        g_model_loader = NULL;
    } else {
        Py_INCREF(loader);
        g_model_loader = loader;
    }
    Py_XDECREF(old);
    Py_RETURN_NONE;
}

PyObject *athpy_model_load(PyObject *engine, PyObject *path) {
    PyObject *loader = g_model_loader, *res;
    if (loader == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "no model loader registered (import atheria_core, which registers "
                        "atheria_core._model_loader)");
        return NULL;
    }
    Py_INCREF(loader); /* the loader may replace itself while running */
    res = PyObject_CallFunctionObjArgs(loader, engine, path, NULL);
    Py_DECREF(loader);
    return res;
}
