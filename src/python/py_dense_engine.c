/* STUB — replaced by the real implementation. */
#include "ath_py.h"

PyTypeObject AthPyDenseEngine_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atheria_core._core.DenseEngine",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
};
