/* Mapping of C status codes to Python exceptions, and exception text. */
#include "ath_py.h"

PyObject *athpy_raise(const ath_error *err) {
    PyObject *exc;
    if (err->code == ATH_ERR_PYTHON) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, err->message[0] ? err->message : "unknown error");
        return NULL;
    }
    switch (err->code) {
    case ATH_ERR_NOMEM: exc = PyExc_MemoryError; break;
    case ATH_ERR_INVALID: exc = PyExc_ValueError; break;
    case ATH_ERR_NONFINITE: exc = PyExc_ValueError; break;
    case ATH_ERR_RANGE: exc = PyExc_OverflowError; break;
    case ATH_ERR_NOT_FOUND: exc = PyExc_KeyError; break;
    case ATH_ERR_IO: exc = PyExc_OSError; break;
    default: exc = PyExc_RuntimeError; break;
    }
    PyErr_SetString(exc, err->message[0] ? err->message : ath_status_name(err->code));
    return NULL;
}

PyObject *athpy_exception_text(void) {
    PyObject *type, *value, *tb, *text;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) return PyUnicode_FromString("");
    PyErr_NormalizeException(&type, &value, &tb);
    text = value != NULL ? PyObject_Str(value) : NULL;
    if (text == NULL) {
        PyErr_Clear();
        text = PyUnicode_FromString(((PyTypeObject *)type)->tp_name);
    } else if (PyUnicode_GetLength(text) == 0) {
        Py_DECREF(text);
        text = PyUnicode_FromString(((PyTypeObject *)type)->tp_name);
    }
    PyErr_Restore(type, value, tb);
    return text;
}

