/* atheria_core._core — the module object: types, module functions, NumPy init. */
#define ATH_PY_MODULE_MAIN
#include "convert.h"

#ifndef ATH_VERSION
#define ATH_VERSION "0.0.0"
#endif

static PyObject *mod_get_version(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    return PyUnicode_FromString(ATH_VERSION);
}

static PyObject *mod_set_num_threads(PyObject *self, PyObject *args, PyObject *kwargs) {
    /* num_threads= is the original module's name; n= the older one here */
    static char *kwlist[] = {"num_threads", "n", NULL};
    PyObject *onum = NULL, *on = NULL;
    int64_t n;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O$O:set_num_threads", kwlist, &onum, &on)) return NULL;
    if ((onum == NULL) == (on == NULL)) {
        PyErr_SetString(PyExc_TypeError, "set_num_threads: expected the thread count (num_threads=), once");
        return NULL;
    }
    if (athpy_index(onum != NULL ? onum : on, "num_threads", 1, 4096, ATHPY_INT_RANGE_VALUE, &n) < 0)
        return NULL;
    ath_set_num_threads((int)n);
    Py_RETURN_NONE;
}

static PyObject *mod_get_max_threads(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    return PyLong_FromLong(ath_get_max_threads());
}

static PyObject *mod_has_openmp(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    return PyBool_FromLong(ath_has_openmp());
}

static PyObject *mod_add(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"i", "j", NULL};
    PyObject *oi, *oj;
    int64_t i, j, r;
    (void)self;
    /* original API: a smoke test of the binding, on int64 values; a sum
     * outside int64 is an OverflowError, never a wrapped value */
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:add", kwlist, &oi, &oj)) return NULL;
    if (athpy_index(oi, "i", INT64_MIN, INT64_MAX, ATHPY_INT_ALLOW_BOOL, &i) < 0 ||
        athpy_index(oj, "j", INT64_MIN, INT64_MAX, ATHPY_INT_ALLOW_BOOL, &j) < 0)
        return NULL;
    if (__builtin_add_overflow(i, j, &r))
        return PyErr_Format(PyExc_OverflowError, "add: %lld + %lld does not fit in a 64-bit integer", (long long)i,
                            (long long)j);
    return PyLong_FromLongLong((long long)r);
}

static PyMethodDef module_methods[] = {
    {"get_version", mod_get_version, METH_NOARGS, "get_version() -> str"},
    {"set_num_threads", (PyCFunction)(void (*)(void))mod_set_num_threads,
     METH_VARARGS | METH_KEYWORDS, "set_num_threads(num_threads): OpenMP threads used by the C engine (n= is accepted too)."},
    {"get_max_threads", mod_get_max_threads, METH_NOARGS, "get_max_threads() -> int"},
    {"has_openmp", mod_has_openmp, METH_NOARGS, "has_openmp() -> bool: built with OpenMP."},
    {"add", (PyCFunction)(void (*)(void))mod_add, METH_VARARGS | METH_KEYWORDS,
     "add(i, j) -> int: i + j (binding smoke test of the original module)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT, "_core", "atheria_core native extension (C).", -1, module_methods,
    NULL, NULL, NULL, NULL};

static int add_type(PyObject *m, PyTypeObject *type, const char *name) {
    if (PyType_Ready(type) < 0) return -1;
    Py_INCREF(type);
    if (PyModule_AddObject(m, name, (PyObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__core(void) {
    PyObject *m;
    import_array();
    m = PyModule_Create(&core_module);
    if (m == NULL) return NULL;
    if (PyModule_AddStringConstant(m, "__version__", ATH_VERSION) < 0 ||
        PyModule_AddFunctions(m, athpy_torch_methods) < 0 ||
        add_type(m, &AthPyCoord3D_Type, "Coord3D") < 0 ||
        add_type(m, &AthPySparseMap_Type, "SparseMap") < 0 ||
        add_type(m, &AthPyHarmonicVacuum_Type, "HarmonicVacuum") < 0 ||
        add_type(m, &AthPyZeroModel_Type, "ZeroModel") < 0 ||
        add_type(m, &AthPyConvModel_Type, "ConvModel") < 0 ||
        PyType_Ready(&AthPyEngineBase_Type) < 0 || /* the engines' base: not exported */
        add_type(m, &AthPyEngine_Type, "Engine") < 0 ||
        add_type(m, &AthPyDenseEngine_Type, "DenseEngine") < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
