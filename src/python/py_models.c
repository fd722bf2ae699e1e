/* Models for the engines: the ZeroModel and ConvModel Python types (each
 * owns an ath_model), the Python-callable adapter (any callable taking a
 * float32 batch, wrapped as an ath_model), model resolution for set_model.
 *
 * Functions shared with py_engine.c / py_dense_engine.c (declared in ath_py.h):
 *   athpy_model_resolve, athpy_model_probe_zero,
 *   athpy_parse_device, athpy_exception_text. */
#include "ath_py.h"

#include <stdio.h>
#include <string.h>

#include "atheria/model.h"

#define ATHPY_MODEL_CAPSULE "atheria_core.model"
#define ATHPY_CALLABLE_CAPSULE "atheria_core._callable_model"

/* ------------------------------------------------------------ helpers */

/* obj (an array-like; a torch tensor, also one that requires grad or lives
 * on a GPU, goes through .detach().cpu() first) as a NumPy array (new
 * reference).  NULL with *unconvertible = 0 and the exception of
 * detach()/cpu() pending, or NULL with *unconvertible = 1 and no exception
 * when NumPy cannot convert it (the caller raises its own error). */
static PyArrayObject *host_array(PyObject *obj, int *unconvertible) {
    PyObject *src = obj;
    PyArrayObject *raw;
    *unconvertible = 0;
    Py_INCREF(src);
    if (!PyArray_Check(src) && PyObject_HasAttrString(src, "detach") &&
        PyObject_HasAttrString(src, "cpu")) {
        PyObject *det = PyObject_CallMethod(src, "detach", NULL);
        PyObject *cpu = det != NULL ? PyObject_CallMethod(det, "cpu", NULL) : NULL;
        Py_XDECREF(det);
        Py_DECREF(src);
        if (cpu == NULL) return NULL;
        src = cpu;
    }
    raw = (PyArrayObject *)PyArray_FROM_O(src);
    Py_DECREF(src);
    if (raw == NULL) {
        PyErr_Clear();
        *unconvertible = 1;
    }
    return raw;
}

/* Converts an array-like (NumPy, list, torch tensor, also one that requires
 * grad or lives on a GPU) to a new C-contiguous float32 array.  Complex,
 * bool and object inputs are refused (TypeError).  NULL with an exception. */
static PyArrayObject *to_float32(PyObject *obj, const char *argname) {
    PyArrayObject *raw, *arr;
    int t, unconvertible;
    raw = host_array(obj, &unconvertible);
    if (raw == NULL) {
        if (unconvertible)
            PyErr_Format(PyExc_TypeError, "%s: expected a float array-like, got %s", argname,
                         Py_TYPE(obj)->tp_name);
        return NULL;
    }
    t = PyArray_TYPE(raw);
    if (!(PyTypeNum_ISFLOAT(t) || PyTypeNum_ISINTEGER(t)) || PyTypeNum_ISBOOL(t)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a real (float) array, got dtype %R", argname,
                     (PyObject *)PyArray_DESCR(raw));
        Py_DECREF(raw);
        return NULL;
    }
    arr = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)raw, NPY_FLOAT32,
                                           NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    Py_DECREF(raw);
    return arr;
}

static void format_shape(char *buf, size_t size, int ndim, const npy_intp *dims) {
    size_t used = 0;
    int i;
    used += (size_t)snprintf(buf + used, size - used, "(");
    for (i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i + 1 < ndim || ndim == 1 ? "%lld, " : "%lld",
                                 (long long)dims[i]);
    if (ndim == 1 && used >= 2 && used < size) used -= 1; /* "(n,)" */
    if (used < size) snprintf(buf + used, size - used, ")");
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

PyObject *athpy_parse_device(PyObject *obj) {
    const char *s;
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "device: expected 'cpu', 'cuda' or 'cuda:N', got %s",
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    s = PyUnicode_AsUTF8(obj);
    if (s == NULL) return NULL;
    if (strcmp(s, "cpu") == 0 || strcmp(s, "cuda") == 0) {
        Py_INCREF(obj);
        return obj;
    }
    if (strncmp(s, "cuda:", 5) == 0 && s[5] != '\0' && strlen(s + 5) <= 6) {
        const char *p = s + 5;
        while (*p >= '0' && *p <= '9') p++;
        if (*p == '\0') {
            Py_INCREF(obj);
            return obj;
        }
    }
    PyErr_Format(PyExc_ValueError, "device: expected 'cpu', 'cuda' or 'cuda:N', got %R", obj);
    return NULL;
}

/* ------------------------------------------------- callable adapter */

typedef struct pycall_ctx {
    PyObject *callable;
    int has_memory;
} pycall_ctx;

static ath_status pycall_forward(void *vctx, const float *in, const int64_t shape[4], float *out,
                                 int want_center, ath_out_layout *layout, ath_error *err) {
    pycall_ctx *ctx = (pycall_ctx *)vctx;
    PyGILState_STATE gil = PyGILState_Ensure();
    npy_intp dims[4];
    PyObject *batch = NULL, *res = NULL;
    PyArrayObject *arr = NULL;
    ath_status st = ATH_ERR_PYTHON;
    size_t n = 1;
    int k;

    for (k = 0; k < 4; k++) {
        dims[k] = (npy_intp)shape[k];
        n *= (size_t)shape[k];
    }
    batch = PyArray_SimpleNew(4, dims, NPY_FLOAT32);
    if (batch == NULL) goto done;
    memcpy(PyArray_DATA((PyArrayObject *)batch), in, n * sizeof(float));
    res = PyObject_CallOneArg(ctx->callable, batch);
    if (res == NULL) goto done; /* the model's own exception propagates */
    if (!PyArray_Check(res) && !PyObject_HasAttrString(res, "detach") && !PySequence_Check(res)) {
        PyErr_Format(PyExc_ValueError,
                     "model returned %s, expected a float32 array of shape (B, C, H, W)",
                     Py_TYPE(res)->tp_name);
        goto done;
    }
    {
        PyArrayObject *raw;
        int t, unconvertible;
        raw = host_array(res, &unconvertible);
        if (raw == NULL) {
            if (unconvertible)
                PyErr_Format(PyExc_ValueError,
                             "model returned %s that is not convertible to a float32 array",
                             Py_TYPE(res)->tp_name);
            goto done;
        }
        t = PyArray_TYPE(raw);
        if (!PyTypeNum_ISFLOAT(t)) {
            PyErr_Format(PyExc_ValueError,
                         "model returned dtype %S, expected a float dtype (float32) of shape "
                         "(B, C, H, W)",
                         (PyObject *)PyArray_DESCR(raw));
            Py_DECREF(raw);
            goto done;
        }
        arr = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)raw, NPY_FLOAT32,
                                               NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
        Py_DECREF(raw);
        if (arr == NULL) goto done;
    }
    if (PyArray_NDIM(arr) == 4 && PyArray_DIM(arr, 0) == dims[0] && PyArray_DIM(arr, 1) == dims[1] &&
        PyArray_DIM(arr, 2) == dims[2] && PyArray_DIM(arr, 3) == dims[3]) {
        memcpy(out, PyArray_DATA(arr), n * sizeof(float));
        *layout = ATH_OUT_FULL;
        st = ATH_OK;
    } else if (want_center && PyArray_NDIM(arr) == 2 && PyArray_DIM(arr, 0) == dims[0] &&
               PyArray_DIM(arr, 1) == dims[1]) {
        memcpy(out, PyArray_DATA(arr), (size_t)(dims[0] * dims[1]) * sizeof(float));
        *layout = ATH_OUT_CENTER;
        st = ATH_OK;
    } else {
        char got[160], want[96];
        format_shape(got, sizeof got, PyArray_NDIM(arr), PyArray_DIMS(arr));
        format_shape(want, sizeof want, 4, dims);
        if (want_center)
            PyErr_Format(PyExc_ValueError, "model returned shape %s, expected %s or (%lld, %lld)", got,
                         want, (long long)dims[0], (long long)dims[1]);
        else
            PyErr_Format(PyExc_ValueError, "model returned shape %s, expected %s", got, want);
    }
done:
    if (st != ATH_OK) ath_error_set(err, ATH_ERR_PYTHON, "the Python model raised an exception");
    Py_XDECREF(arr);
    Py_XDECREF(res);
    Py_XDECREF(batch);
    PyGILState_Release(gil);
    return st;
}

static void pycall_method(pycall_ctx *ctx, const char *name) {
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *type, *value, *tb, *r;
    PyErr_Fetch(&type, &value, &tb); /* a failed forward may have left its exception pending */
    r = PyObject_CallMethod(ctx->callable, name, NULL);
    if (r == NULL)
        PyErr_WriteUnraisable(ctx->callable);
    else
        Py_DECREF(r);
    PyErr_Restore(type, value, tb);
    PyGILState_Release(gil);
}

static void pycall_commit(void *ctx) { pycall_method((pycall_ctx *)ctx, "commit_memory"); }
static void pycall_discard(void *ctx) { pycall_method((pycall_ctx *)ctx, "discard_memory"); }
static void pycall_reset(void *ctx) { pycall_method((pycall_ctx *)ctx, "reset_memory"); }

/* Called from the capsule destructor, i.e. with the GIL held. */
static void pycall_destroy(void *vctx) {
    pycall_ctx *ctx = (pycall_ctx *)vctx;
    if (ctx == NULL) return;
    Py_XDECREF(ctx->callable);
    PyMem_RawFree(ctx);
}

static const ath_model_ops pycall_ops = {"python-callable", pycall_forward, NULL, NULL, NULL,
                                         pycall_destroy};
static const ath_model_ops pycall_mem_ops = {"python-callable", pycall_forward, pycall_commit,
                                             pycall_discard, pycall_reset, pycall_destroy};

static void callable_capsule_destructor(PyObject *cap) {
    ath_model *m = (ath_model *)PyCapsule_GetPointer(cap, ATHPY_CALLABLE_CAPSULE);
    if (m == NULL) {
        PyErr_Clear();
        return;
    }
    ath_model_destroy(m);
}

/* Optional attribute: 1 present (new ref in *out), 0 absent or None, -1 error. */
static int optional_attr(PyObject *obj, const char *name, PyObject **out) {
    PyObject *v;
    *out = NULL;
    if (!PyObject_HasAttrString(obj, name)) return 0;
    v = PyObject_GetAttrString(obj, name);
    if (v == NULL) return -1;
    if (v == Py_None) {
        Py_DECREF(v);
        return 0;
    }
    *out = v;
    return 1;
}

static PyObject *wrap_callable(PyObject *obj) {
    pycall_ctx *ctx;
    ath_model *m;
    PyObject *v, *cap;
    int64_t radius = -1;
    int zero_preserving = -1, has_memory = 0, r;

    r = optional_attr(obj, "receptive_radius", &v);
    if (r < 0) return NULL;
    if (r > 0) {
        long long rr;
        if (!PyLong_Check(v) || PyBool_Check(v)) {
            PyErr_Format(PyExc_TypeError, "model.receptive_radius must be an int or None, got %s",
                         Py_TYPE(v)->tp_name);
            Py_DECREF(v);
            return NULL;
        }
        rr = PyLong_AsLongLong(v);
        Py_DECREF(v);
        if (rr == -1 && PyErr_Occurred()) return NULL;
        if (rr < -1 || rr > ATH_MAX_GRID_SIZE) {
            PyErr_Format(PyExc_ValueError,
                         "model.receptive_radius must be in [0, 2**20] (or -1 / None: unknown), got %lld", rr);
            return NULL;
        }
        radius = (int64_t)rr; /* -1: unknown */
    }
    r = optional_attr(obj, "zero_preserving", &v);
    if (r < 0) return NULL;
    if (r > 0) {
        zero_preserving = PyObject_IsTrue(v);
        Py_DECREF(v);
        if (zero_preserving < 0) return NULL;
    }
    r = optional_attr(obj, "has_memory", &v);
    if (r < 0) return NULL;
    if (r > 0) {
        has_memory = PyObject_IsTrue(v);
        Py_DECREF(v);
        if (has_memory < 0) return NULL;
    }
    if (has_memory) {
        static const char *names[3] = {"commit_memory", "discard_memory", "reset_memory"};
        int i;
        for (i = 0; i < 3; i++) {
            PyObject *meth = PyObject_GetAttrString(obj, names[i]);
            int ok = meth != NULL && PyCallable_Check(meth);
            Py_XDECREF(meth);
            if (!ok) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError,
                             "model has has_memory=True but no callable %s() (the memory protocol "
                             "needs commit_memory, discard_memory and reset_memory)",
                             names[i]);
                return NULL;
            }
        }
    }
    ctx = (pycall_ctx *)PyMem_RawMalloc(sizeof *ctx);
    m = (ath_model *)calloc(1, sizeof *m);
    if (ctx == NULL || m == NULL) {
        PyMem_RawFree(ctx);
        free(m);
        return PyErr_NoMemory();
    }
    Py_INCREF(obj);
    ctx->callable = obj;
    ctx->has_memory = has_memory;
    m->ops = has_memory ? &pycall_mem_ops : &pycall_ops;
    m->ctx = ctx;
    m->channels = -1;
    m->receptive_radius = radius;
    m->zero_preserving = zero_preserving;
    m->has_memory = has_memory;
    cap = PyCapsule_New(m, ATHPY_CALLABLE_CAPSULE, callable_capsule_destructor);
    if (cap == NULL) ath_model_destroy(m);
    return cap;
}

/* ------------------------------------------------------- ZeroModel */

typedef struct {
    PyObject_HEAD
    ath_model *model;
} AthPyZeroModel;

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
    arr = to_float32(obatch, "batch");
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

/* ------------------------------------------------------- ConvModel */

typedef struct {
    PyObject_HEAD
    ath_model *model;
    PyObject *weights;    /* tuple of float32 arrays */
    PyObject *biases;     /* tuple of float32 arrays or None */
    PyObject *activation; /* str */
    int64_t channels;
    int64_t n_layers;
} AthPyConvModel;

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
        w = to_float32(PySequence_Fast_GET_ITEM(wseq, i), name);
        if (w == NULL) goto fail;
        PyTuple_SET_ITEM(wtuple, i, (PyObject *)w);
        if (PyArray_NDIM(w) != 4 || PyArray_DIM(w, 2) != PyArray_DIM(w, 3) || PyArray_DIM(w, 2) % 2 == 0 ||
            PyArray_DIM(w, 0) < 1 || PyArray_DIM(w, 1) < 1) {
            char got[160];
            format_shape(got, sizeof got, PyArray_NDIM(w), PyArray_DIMS(w));
            PyErr_Format(PyExc_ValueError,
                         "%s: expected shape (out, in, k, k) with odd k, got %s", name, got);
            goto fail;
        }
        if (ob != Py_None) {
            snprintf(name, sizeof name, "biases[%zd]", i);
            b = to_float32(ob, name);
            if (b == NULL) goto fail;
            if (PyArray_NDIM(b) != 1 || PyArray_DIM(b, 0) != PyArray_DIM(w, 0)) {
                char got[160];
                format_shape(got, sizeof got, PyArray_NDIM(b), PyArray_DIMS(b));
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
    arr = to_float32(obatch, "batch");
    if (arr == NULL) return NULL;
    if (PyArray_NDIM(arr) != 4 || PyArray_DIM(arr, 1) != self->channels) {
        char got[160];
        format_shape(got, sizeof got, PyArray_NDIM(arr), PyArray_DIMS(arr));
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

/* -------------------------------------------------- shared helpers */

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
        PyObject *cap = wrap_callable(obj);
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
