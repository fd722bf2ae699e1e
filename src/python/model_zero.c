/* ZeroModel: the C built-in model whose update is zero everywhere. */
#include "models.h"
#include "convert.h"

static PyObject *zero_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {NULL};
    AthPyZeroModel *self;
    ath_error err;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, ":ZeroModel", kwlist)) return NULL;
    self = (AthPyZeroModel *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    if (ath_model_zero_create(-1, &self->model, &err) != ATH_OK) {
        Py_DECREF(self);
        return athpy_raise(&err);
    }
    return (PyObject *)self;
}

static void zero_dealloc(AthPyZeroModel *self) {
    ath_model_destroy(self->model);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *zero_call(AthPyZeroModel *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"batch", NULL};
    PyObject *obatch;
    PyArrayObject *arr;
    PyObject *res;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:ZeroModel.__call__", kwlist, &obatch)) return NULL;
    arr = athpy_float32_array(obatch, "batch");
    if (arr == NULL) return NULL;
    if (PyArray_NDIM(arr) != 4) {
        PyErr_Format(PyExc_ValueError, "batch: expected shape (B, C, H, W), got ndim=%d",
                     PyArray_NDIM(arr));
        Py_DECREF(arr);
        return NULL;
    }
    res = PyArray_ZEROS(4, PyArray_DIMS(arr), NPY_FLOAT32, 0);
    Py_DECREF(arr);
    return res;
}

static PyObject *zero_get_radius(AthPyZeroModel *self, void *closure) {
    (void)self;
    (void)closure;
    return PyLong_FromLong(0);
}
static PyObject *zero_get_true(AthPyZeroModel *self, void *closure) {
    (void)self;
    (void)closure;
    Py_RETURN_TRUE;
}
static PyObject *zero_get_false(AthPyZeroModel *self, void *closure) {
    (void)self;
    (void)closure;
    Py_RETURN_FALSE;
}

static PyObject *zero_repr(AthPyZeroModel *self) {
    (void)self;
    return PyUnicode_FromString("ZeroModel()");
}

static PyGetSetDef zero_getset[] = {
    {"receptive_radius", (getter)zero_get_radius, NULL, "0", NULL},
    {"zero_preserving", (getter)zero_get_true, NULL, "True", NULL},
    {"has_memory", (getter)zero_get_false, NULL, "False", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

PyTypeObject AthPyZeroModel_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atheria_core._core.ZeroModel",
    .tp_doc = "ZeroModel(): delta = 0 for every input (C built-in).",
    .tp_basicsize = sizeof(AthPyZeroModel),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = zero_new,
    .tp_dealloc = (destructor)zero_dealloc,
    .tp_call = (ternaryfunc)zero_call,
    .tp_repr = (reprfunc)zero_repr,
    .tp_getset = zero_getset,
};
