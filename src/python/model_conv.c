/* ConvModel: the C built-in stack of Conv2d layers (weights copied to float32). */
#include "models.h"
#include "convert.h"

#include <stdio.h>
#include <string.h>

static int parse_activation(PyObject *obj, ath_activation *out) {
    const char *s;
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "activation: expected a str, got %s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    s = PyUnicode_AsUTF8(obj);
    if (s == NULL) return -1;
    if (strcmp(s, "relu") == 0) *out = ATH_ACT_RELU;
    else if (strcmp(s, "tanh") == 0) *out = ATH_ACT_TANH;
    else if (strcmp(s, "gelu") == 0) *out = ATH_ACT_GELU;
    else if (strcmp(s, "identity") == 0) *out = ATH_ACT_IDENTITY;
    else {
        PyErr_Format(PyExc_ValueError,
                     "activation: expected 'relu', 'tanh', 'gelu' or 'identity', got %R", obj);
        return -1;
    }
    return 0;
}

static PyObject *conv_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"weights", "biases", "activation", NULL};
    PyObject *oweights, *obiases = Py_None, *oact = NULL;
    PyObject *wseq = NULL, *bseq = NULL, *wtuple = NULL, *btuple = NULL;
    ath_conv_layer_spec *specs = NULL;
    ath_activation act = ATH_ACT_RELU;
    AthPyConvModel *self = NULL;
    Py_ssize_t n, i;
    ath_error err;
    ath_model *m = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OO:ConvModel", kwlist, &oweights, &obiases, &oact))
        return NULL;
    if (oact != NULL && parse_activation(oact, &act) < 0) return NULL;
    if (PyArray_Check(oweights) || PyUnicode_Check(oweights) || !PySequence_Check(oweights)) {
        PyErr_SetString(PyExc_TypeError, "weights: expected a sequence of 4-D arrays (out, in, k, k)");
        return NULL;
    }
    wseq = PySequence_Fast(oweights, "weights: expected a sequence of arrays");
    if (wseq == NULL) return NULL;
    n = PySequence_Fast_GET_SIZE(wseq);
    if (n < 1 || n > 1024) {
        PyErr_Format(PyExc_ValueError, "weights: expected 1 to 1024 layers, got %zd", n);
        goto fail;
    }
    if (obiases != Py_None) {
        if (PyArray_Check(obiases) || PyUnicode_Check(obiases) || !PySequence_Check(obiases)) {
            PyErr_SetString(PyExc_TypeError, "biases: expected None or a sequence of 1-D arrays / None");
            goto fail;
        }
        bseq = PySequence_Fast(obiases, "biases: expected a sequence");
        if (bseq == NULL) goto fail;
        if (PySequence_Fast_GET_SIZE(bseq) != n) {
            PyErr_Format(PyExc_ValueError, "biases: expected %zd entries (one per layer), got %zd", n,
                         PySequence_Fast_GET_SIZE(bseq));
            goto fail;
        }
    }
    wtuple = PyTuple_New(n);
    btuple = PyTuple_New(n);
    specs = (ath_conv_layer_spec *)PyMem_Calloc((size_t)n, sizeof *specs);
    if (wtuple == NULL || btuple == NULL || specs == NULL) {
        if (specs == NULL) PyErr_NoMemory();
        goto fail;
    }
    for (i = 0; i < n; i++) {
        char name[48];
        PyArrayObject *w, *b = NULL;
        PyObject *ob = bseq != NULL ? PySequence_Fast_GET_ITEM(bseq, i) : Py_None;
        snprintf(name, sizeof name, "weights[%zd]", i);
        w = athpy_float32_array(PySequence_Fast_GET_ITEM(wseq, i), name);
        if (w == NULL) goto fail;
        PyTuple_SET_ITEM(wtuple, i, (PyObject *)w);
        if (PyArray_NDIM(w) != 4 || PyArray_DIM(w, 2) != PyArray_DIM(w, 3) || PyArray_DIM(w, 2) % 2 == 0 ||
            PyArray_DIM(w, 0) < 1 || PyArray_DIM(w, 1) < 1) {
            char got[160];
            athpy_format_shape(got, sizeof got, PyArray_NDIM(w), PyArray_DIMS(w));
            PyErr_Format(PyExc_ValueError,
                         "%s: expected shape (out, in, k, k) with odd k, got %s", name, got);
            goto fail;
        }
        if (ob != Py_None) {
            snprintf(name, sizeof name, "biases[%zd]", i);
            b = athpy_float32_array(ob, name);
            if (b == NULL) goto fail;
            if (PyArray_NDIM(b) != 1 || PyArray_DIM(b, 0) != PyArray_DIM(w, 0)) {
                char got[160];
                athpy_format_shape(got, sizeof got, PyArray_NDIM(b), PyArray_DIMS(b));
                PyErr_Format(PyExc_ValueError, "%s: expected shape (%lld,), got %s", name,
                             (long long)PyArray_DIM(w, 0), got);
                Py_DECREF(b);
                goto fail;
            }
            PyTuple_SET_ITEM(btuple, i, (PyObject *)b);
        } else {
            Py_INCREF(Py_None);
            PyTuple_SET_ITEM(btuple, i, Py_None);
        }
        specs[i].out_channels = PyArray_DIM(w, 0);
        specs[i].in_channels = PyArray_DIM(w, 1);
        specs[i].kernel = PyArray_DIM(w, 2);
        specs[i].weight = (const float *)PyArray_DATA(w);
        specs[i].bias = b != NULL ? (const float *)PyArray_DATA(b) : NULL;
    }
    if (ath_model_conv_create((size_t)n, specs, act, &m, &err) != ATH_OK) {
        athpy_raise(&err);
        goto fail;
    }
    self = (AthPyConvModel *)type->tp_alloc(type, 0);
    if (self == NULL) {
        ath_model_destroy(m);
        goto fail;
    }
    self->model = m;
    self->weights = wtuple;
    self->biases = btuple;
    self->activation = PyUnicode_FromString(act == ATH_ACT_RELU   ? "relu"
                                            : act == ATH_ACT_TANH ? "tanh"
                                            : act == ATH_ACT_GELU ? "gelu"
                                                                  : "identity");
    self->channels = m->channels;
    self->n_layers = (int64_t)n;
    PyMem_Free(specs);
    Py_DECREF(wseq);
    Py_XDECREF(bseq);
    if (self->activation == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;

fail:
    PyMem_Free(specs);
    Py_XDECREF(wtuple);
    Py_XDECREF(btuple);
    Py_XDECREF(wseq);
    Py_XDECREF(bseq);
    return NULL;
}

static void conv_dealloc(AthPyConvModel *self) {
    ath_model_destroy(self->model);
    Py_XDECREF(self->weights);
    Py_XDECREF(self->biases);
    Py_XDECREF(self->activation);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *conv_call(AthPyConvModel *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"batch", NULL};
    PyObject *obatch, *res;
    PyArrayObject *arr;
    int64_t shape[4];
    ath_out_layout lay;
    ath_status st;
    ath_error err;
    int k;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:ConvModel.__call__", kwlist, &obatch)) return NULL;
    arr = athpy_float32_array(obatch, "batch");
    if (arr == NULL) return NULL;
    if (PyArray_NDIM(arr) != 4 || PyArray_DIM(arr, 1) != self->channels) {
        char got[160];
        athpy_format_shape(got, sizeof got, PyArray_NDIM(arr), PyArray_DIMS(arr));
        PyErr_Format(PyExc_ValueError, "batch: expected shape (B, %lld, H, W), got %s",
                     (long long)self->channels, got);
        Py_DECREF(arr);
        return NULL;
    }
    for (k = 0; k < 4; k++) shape[k] = PyArray_DIM(arr, k);
    if ((double)shape[0] * shape[1] * shape[2] * shape[3] > (double)((int64_t)1 << 31)) {
        PyErr_SetString(PyExc_ValueError, "batch: too large (more than 2**31 values)");
        Py_DECREF(arr);
        return NULL;
    }
    res = PyArray_SimpleNew(4, PyArray_DIMS(arr), NPY_FLOAT32);
    if (res == NULL) {
        Py_DECREF(arr);
        return NULL;
    }
    if (PyArray_SIZE(arr) == 0) {
        Py_DECREF(arr);
        return res;
    }
    Py_BEGIN_ALLOW_THREADS
    st = ath_model_forward(self->model, (const float *)PyArray_DATA(arr), shape,
                           (float *)PyArray_DATA((PyArrayObject *)res), 0, &lay, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(arr);
    if (st != ATH_OK) {
        Py_DECREF(res);
        return athpy_raise(&err);
    }
    return res;
}

static PyObject *conv_get_radius(AthPyConvModel *self, void *c) {
    (void)c;
    return PyLong_FromLongLong((long long)self->model->receptive_radius);
}
static PyObject *conv_get_channels(AthPyConvModel *self, void *c) {
    (void)c;
    return PyLong_FromLongLong((long long)self->channels);
}
static PyObject *conv_get_n_layers(AthPyConvModel *self, void *c) {
    (void)c;
    return PyLong_FromLongLong((long long)self->n_layers);
}
static PyObject *conv_get_activation(AthPyConvModel *self, void *c) {
    (void)c;
    Py_INCREF(self->activation);
    return self->activation;
}
static PyObject *conv_get_zero_preserving(AthPyConvModel *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->model->zero_preserving == 1);
}
static PyObject *conv_get_has_memory(AthPyConvModel *self, void *c) {
    (void)self;
    (void)c;
    Py_RETURN_FALSE;
}
static PyObject *copy_tuple(PyObject *t) {
    Py_ssize_t i, n = PyTuple_GET_SIZE(t);
    PyObject *r = PyList_New(n);
    if (r == NULL) return NULL;
    for (i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(t, i), *c;
        if (item == Py_None) {
            Py_INCREF(Py_None);
            c = Py_None;
        } else {
            c = PyArray_NewCopy((PyArrayObject *)item, NPY_CORDER);
            if (c == NULL) {
                Py_DECREF(r);
                return NULL;
            }
        }
        PyList_SET_ITEM(r, i, c);
    }
    return r;
}
static PyObject *conv_get_weights(AthPyConvModel *self, void *c) {
    (void)c;
    return copy_tuple(self->weights);
}
static PyObject *conv_get_biases(AthPyConvModel *self, void *c) {
    (void)c;
    return copy_tuple(self->biases);
}

static PyObject *conv_repr(AthPyConvModel *self) {
    return PyUnicode_FromFormat("ConvModel(n_layers=%lld, channels=%lld, receptive_radius=%lld, activation=%R)",
                                (long long)self->n_layers, (long long)self->channels,
                                (long long)self->model->receptive_radius, self->activation);
}

static PyGetSetDef conv_getset[] = {
    {"receptive_radius", (getter)conv_get_radius, NULL, "sum of k//2 over the layers", NULL},
    {"channels", (getter)conv_get_channels, NULL, "input channels (= 2 * d_state)", NULL},
    {"n_layers", (getter)conv_get_n_layers, NULL, "number of conv layers", NULL},
    {"activation", (getter)conv_get_activation, NULL, "activation between layers", NULL},
    {"zero_preserving", (getter)conv_get_zero_preserving, NULL, "True when every bias is absent or zero", NULL},
    {"has_memory", (getter)conv_get_has_memory, NULL, "False", NULL},
    {"weights", (getter)conv_get_weights, NULL, "copies of the float32 weights", NULL},
    {"biases", (getter)conv_get_biases, NULL, "copies of the float32 biases (None where absent)", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

PyTypeObject AthPyConvModel_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atheria_core._core.ConvModel",
    .tp_doc = "ConvModel(weights, biases=None, activation='relu'): a stack of "
              "torch.nn.Conv2d(in, out, k, padding=k//2) layers (C built-in).",
    .tp_basicsize = sizeof(AthPyConvModel),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = conv_new,
    .tp_dealloc = (destructor)conv_dealloc,
    .tp_call = (ternaryfunc)conv_call,
    .tp_repr = (reprfunc)conv_repr,
    .tp_getset = conv_getset,
};
