/* atheria_core._core — the module object: types, module functions, NumPy init. */
#define ATH_PY_MODULE_MAIN
#include "ath_py.h"

#ifndef ATH_VERSION
#define ATH_VERSION "0.0.0"
#endif

static PyObject *mod_get_version(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    return PyUnicode_FromString(ATH_VERSION);
}

static PyObject *mod_set_num_threads(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"n", NULL};
    int n;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "i:set_num_threads", kwlist, &n)) return NULL;
    if (n < 1 || n > 4096) {
        PyErr_Format(PyExc_ValueError, "set_num_threads: n must be in [1, 4096], got %d", n);
        return NULL;
    }
    ath_set_num_threads(n);
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
    long long i, j;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "LL:add", kwlist, &i, &j)) return NULL;
    return PyLong_FromLongLong(i + j); /* original API: a smoke test of the binding */
}

static PyMethodDef module_methods[] = {
    {"get_version", mod_get_version, METH_NOARGS, "get_version() -> str"},
    {"set_num_threads", (PyCFunction)(void (*)(void))mod_set_num_threads,
     METH_VARARGS | METH_KEYWORDS, "set_num_threads(n): OpenMP threads used by the C engine."},
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
        PyModule_AddFunctions(m, athpy_snapshot_methods) < 0 ||
        add_type(m, &AthPyCoord3D_Type, "Coord3D") < 0 ||
        add_type(m, &AthPySparseMap_Type, "SparseMap") < 0 ||
        add_type(m, &AthPyHarmonicVacuum_Type, "HarmonicVacuum") < 0 ||
        add_type(m, &AthPyZeroModel_Type, "ZeroModel") < 0 ||
        add_type(m, &AthPyConvModel_Type, "ConvModel") < 0 ||
        add_type(m, &AthPyEngine_Type, "Engine") < 0 ||
        add_type(m, &AthPyDenseEngine_Type, "DenseEngine") < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
