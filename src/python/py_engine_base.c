/* atheria_core._core._EngineBase: the base type of Engine and DenseEngine
 * (py_engine_base.h). */
#include "py_engine_base.h"

#include "convert.h"

PyObject *athpy_engine_new(PyTypeObject *type, const AthPyEngineOps *ops) {
    AthPyEngineBase *self = (AthPyEngineBase *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->ops = ops;
    return (PyObject *)self;
}

int athpy_engine_need(AthPyEngineBase *self) {
    if (self->eng == NULL) {
        PyErr_Format(PyExc_RuntimeError, "%s is not initialised", self->ops->name);
        return -1;
    }
    return 0;
}

static int refuse_busy(AthPyEngineBase *self) {
    PyErr_Format(PyExc_RuntimeError,
                 "%s is busy (another call on it is in flight: a step or bulk call in another thread, "
                 "or a call from the model or from an argument's conversion)",
                 self->ops->name);
    return -1;
}

int athpy_engine_enter(AthPyEngineBase *self) {
    if (athpy_engine_need(self) < 0) return -1;
    if (self->busy) return refuse_busy(self);
    self->busy = 1;
    return 0;
}

void athpy_engine_leave(AthPyEngineBase *self) { self->busy = 0; }

int athpy_engine_init_enter(AthPyEngineBase *self) {
    if (self->busy) return refuse_busy(self);
    self->busy = 1;
    return 0;
}

void athpy_engine_record_exception(AthPyEngineBase *self) {
    PyObject *text = athpy_exception_text();
    if (text == NULL) {
        PyErr_Clear();
        return;
    }
    Py_XSETREF(self->last_error, text);
}

PyObject *athpy_engine_raise_and_record(AthPyEngineBase *self, const ath_error *err) {
    athpy_raise(err);
    athpy_engine_record_exception(self);
    return NULL;
}

int athpy_engine_options(PyObject *oseed, uint64_t *seed, PyObject *odevice, PyObject **device) {
    if (oseed != NULL && athpy_uint64(oseed, "seed", PyExc_ValueError, seed) < 0) return -1;
    *device = odevice != NULL ? athpy_parse_device(odevice) : PyUnicode_FromString("cpu");
    return *device == NULL ? -1 : 0;
}

int athpy_engine_adopt(AthPyEngineBase *self, ath_status st, void *eng, const ath_error *err, PyObject *device) {
    PyObject *empty;
    if (st != ATH_OK) {
        self->busy = 0;
        Py_DECREF(device);
        athpy_raise(err);
        return -1;
    }
    empty = PyUnicode_FromString("");
    if (empty == NULL) {
        self->busy = 0;
        self->ops->destroy(eng);
        Py_DECREF(device);
        return -1;
    }
    /* (re)initialise: nothing below runs Python code until the old model
     * references are dropped, after the old engine that used them is gone */
    if (self->eng != NULL) self->ops->destroy(self->eng);
    self->eng = eng;
    self->busy = 0;
    athpy_engine_drop_model(self);
    Py_XSETREF(self->device, device);
    Py_XSETREF(self->last_error, empty);
    return 0;
}

void athpy_engine_drop_model(AthPyEngineBase *self) {
    Py_CLEAR(self->model_obj);
    Py_CLEAR(self->model_owner);
}

void athpy_engine_keep_model(AthPyEngineBase *self, PyObject *model, PyObject *owner) {
    Py_INCREF(model);
    Py_XSETREF(self->model_obj, model);
    Py_XSETREF(self->model_owner, owner);
}

/* ---- slots ---- */

int athpy_engine_traverse(PyObject *op, visitproc visit, void *arg) {
    AthPyEngineBase *self = (AthPyEngineBase *)op;
    Py_VISIT(self->model_obj);
    Py_VISIT(self->model_owner);
    return 0;
}

int athpy_engine_clear(PyObject *op) {
    AthPyEngineBase *self = (AthPyEngineBase *)op;
    if (self->eng != NULL && !self->busy) self->ops->unset_model(self->eng);
    athpy_engine_drop_model(self);
    return 0;
}

static void base_dealloc(PyObject *op) {
    AthPyEngineBase *self = (AthPyEngineBase *)op;
    PyObject_GC_UnTrack(op);
    if (self->eng != NULL) self->ops->destroy(self->eng); /* before the model it uses */
    self->eng = NULL;
    athpy_engine_drop_model(self);
    Py_CLEAR(self->device);
    Py_CLEAR(self->last_error);
    Py_TYPE(op)->tp_free(op);
}

/* ---- methods ---- */

static PyObject *base_set_model(PyObject *op, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"model", NULL};
    AthPyEngineBase *self = (AthPyEngineBase *)op;
    PyObject *model;
    int r = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:set_model", kwlist, &model)) return NULL;
    if (athpy_engine_enter(self) < 0) return NULL;
    Py_INCREF(model); /* the caller's tuple may be the only owner, and install runs Python code */
    if (model == Py_None) {
        self->ops->unset_model(self->eng);
        athpy_engine_drop_model(self);
    } else {
        r = self->ops->install(self, model);
    }
    athpy_engine_leave(self);
    Py_DECREF(model);
    if (r < 0) return NULL;
    Py_RETURN_NONE;
}

/* load_model(path) / load_model(model_path=...): the registered loader picks
 * the route and builds the model; False + last_error "<file>: <cause>" for
 * an ordinary failure.  KeyboardInterrupt, SystemExit and other
 * non-Exception BaseExceptions propagate. */
static PyObject *base_load_model(PyObject *op, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"path", "model_path", NULL};
    AthPyEngineBase *self = (AthPyEngineBase *)op;
    PyObject *path = NULL, *model_path = NULL, *model, *empty;
    int r;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:load_model", kwlist, &path, &model_path)) return NULL;
    if ((path == NULL) == (model_path == NULL)) {
        PyErr_SetString(PyExc_TypeError, "load_model() takes exactly one of path or model_path");
        return NULL;
    }
    if (path == NULL) path = model_path;
    if (athpy_engine_enter(self) < 0) return NULL;
    model = athpy_model_load(op, path);
    r = model != NULL ? self->ops->install(self, model) : -1;
    athpy_engine_leave(self);
    if (r < 0) {
        Py_XDECREF(model);
        if (!PyErr_ExceptionMatches(PyExc_Exception)) return NULL;
        athpy_engine_record_exception(self);
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    Py_DECREF(model);
    empty = PyUnicode_FromString("");
    if (empty == NULL) return NULL;
    Py_XSETREF(self->last_error, empty);
    Py_RETURN_TRUE;
}

static PyObject *base_has_model(PyObject *op, PyObject *noargs) {
    AthPyEngineBase *self = (AthPyEngineBase *)op;
    (void)noargs;
    if (athpy_engine_need(self) < 0) return NULL;
    return PyBool_FromLong(self->ops->has_model(self->eng));
}

static PyObject *base_get_last_error(PyObject *op, PyObject *noargs) {
    AthPyEngineBase *self = (AthPyEngineBase *)op;
    (void)noargs;
    if (self->last_error == NULL) return PyUnicode_FromString("");
    Py_INCREF(self->last_error);
    return self->last_error;
}

/* ---- attributes ---- */

static PyObject *base_get_device(PyObject *op, void *closure) {
    AthPyEngineBase *self = (AthPyEngineBase *)op;
    (void)closure;
    if (athpy_engine_need(self) < 0) return NULL;
    Py_INCREF(self->device);
    return self->device;
}

#define CONFIG_GETTER(field, convert)                                                              \
    static PyObject *base_get_##field(PyObject *op, void *closure) {                               \
        AthPyEngineBase *self = (AthPyEngineBase *)op;                                             \
        AthPyEngineConfig c;                                                                       \
        (void)closure;                                                                             \
        if (athpy_engine_need(self) < 0) return NULL;                                              \
        self->ops->config(self->eng, &c);                                                          \
        return convert(c.field);                                                                   \
    }
CONFIG_GETTER(d_state, PyLong_FromLongLong)
CONFIG_GETTER(grid_size, PyLong_FromLongLong)
CONFIG_GETTER(gamma_decay, PyFloat_FromDouble)
CONFIG_GETTER(unitary, PyBool_FromLong)
CONFIG_GETTER(seed, PyLong_FromUnsignedLongLong)
CONFIG_GETTER(vacuum_strength, PyFloat_FromDouble)

static PyGetSetDef base_getset[] = {
    {"d_state", base_get_d_state, NULL, "complex channels per cell", NULL},
    {"grid_size", base_get_grid_size, NULL, "side of the (default) window, cells", NULL},
    {"device", base_get_device, NULL, "'cpu', 'cuda' or 'cuda:N' (where models run)", NULL},
    {"gamma_decay", base_get_gamma_decay, NULL, "dissipation rate per step", NULL},
    {"unitary", base_get_unitary, NULL, "norm-preserving update", NULL},
    {"seed", base_get_seed, NULL, "vacuum seed (uint64)", NULL},
    {"vacuum_strength", base_get_vacuum_strength, NULL, "vacuum amplitude", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

#define KW (PyCFunction)(void (*)(void))
static PyMethodDef base_methods[] = {
    {"set_model", KW base_set_model, METH_VARARGS | METH_KEYWORDS,
     "set_model(model): ZeroModel, ConvModel, a callable taking a float32 batch, an "
     "'atheria_core.model' capsule, or None."},
    {"load_model", KW base_load_model, METH_VARARGS | METH_KEYWORDS,
     "load_model(path) / load_model(model_path=...) -> bool: a TorchScript or .pt2 file, route chosen by\n"
     "atheria_core._model_loader; False + get_last_error() ('<file>: <cause>') on failure."},
    {"has_model", base_has_model, METH_NOARGS, "has_model() -> bool"},
    {"get_last_error", base_get_last_error, METH_NOARGS, "get_last_error() -> str"},
    {NULL, NULL, 0, NULL}};

PyTypeObject AthPyEngineBase_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atheria_core._core._EngineBase",
    .tp_doc = "The base of Engine and DenseEngine (not instantiable).",
    .tp_basicsize = sizeof(AthPyEngineBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = base_dealloc,
    .tp_traverse = athpy_engine_traverse,
    .tp_clear = athpy_engine_clear,
    .tp_methods = base_methods,
    .tp_getset = base_getset,
};

/* ---- visualisation shared by both engines ---- */

int athpy_viz_args(const char *name, long long channel, int64_t d, ath_viz_type *type) {
    ath_error err;
    if (ath_viz_parse(name, type, &err) != ATH_OK) {
        athpy_raise(&err);
        return -1;
    }
    if (channel < 0 || channel >= d) {
        PyErr_Format(PyExc_ValueError, "channel: must be in [0, %lld), got %lld", (long long)d, channel);
        return -1;
    }
    return 0;
}

PyObject *athpy_viz_image(ath_viz_type type, const ath_cf32 *field, int64_t h, int64_t w, int64_t d,
                          long long channel) {
    npy_intp dims[3];
    int64_t shape[3];
    int ndim = ath_viz_shape(type, h, w, shape), i;
    PyObject *res;
    ath_error err;
    ath_status s;
    /* (h, w), or (h, w, 3) / (5, h, w) for the holographic views (viz.h) */
    if (ndim == 0) return PyErr_Format(PyExc_ValueError, "viz_type: unknown visualisation type %d", (int)type);
    for (i = 0; i < ndim; i++) dims[i] = (npy_intp)shape[i];
    res = PyArray_SimpleNew(ndim, dims, NPY_FLOAT32);
    if (res == NULL || h == 0 || w == 0) return res;
    Py_BEGIN_ALLOW_THREADS
    s = ath_viz_compute(type, field, h, w, d, (int64_t)channel, (float *)PyArray_DATA((PyArrayObject *)res), &err);
    Py_END_ALLOW_THREADS
    if (s != ATH_OK) {
        Py_DECREF(res);
        return athpy_raise(&err);
    }
    return res;
}
