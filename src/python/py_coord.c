/* STUB — replaced by the real implementation. */
#include "ath_py.h"

PyTypeObject AthPyCoord3D_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atheria_core._core.Coord3D",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
};
PyObject *athpy_coord_new(ath_coord c) { (void)c; Py_RETURN_NONE; }
