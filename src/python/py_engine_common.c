/* Machinery shared by atheria_core._core.Engine (py_engine.c) and
 * DenseEngine (py_dense_engine.c): both start with ATHPY_ENGINE_HEAD
 * (ath_py.h), and what differs between them is an AthPyEngineKind. */
#include "ath_py.h"

int athpy_engine_need(AthPyEngineBase *self, const AthPyEngineKind *kind) {
    if (!kind->initialised(self)) {
        PyErr_Format(PyExc_RuntimeError, "%s is not initialised", kind->name);
        return -1;
    }
    return 0;
}

int athpy_engine_ready(AthPyEngineBase *self, const AthPyEngineKind *kind) {
    if (athpy_engine_need(self, kind) < 0) return -1;
    if (self->busy) {
        PyErr_Format(PyExc_RuntimeError, "%s is busy (%s is running in another thread)", kind->name,
                     kind->busy_what);
        return -1;
    }
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

int athpy_parse_seed(PyObject *obj, uint64_t *out) {
    PyObject *idx;
    unsigned long long v;
    if (PyFloat_Check(obj) || PyBool_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "seed: expected an int, got %s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    idx = PyNumber_Index(obj);
    if (idx == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "seed: expected an int, got %s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    v = PyLong_AsUnsignedLongLong(idx);
    Py_DECREF(idx);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "seed: must be in [0, 2**64), got %R", obj);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

int athpy_engine_options(PyObject *oseed, uint64_t *seed, PyObject *odevice, PyObject **device) {
    if (oseed != NULL && athpy_parse_seed(oseed, seed) < 0) return -1;
    *device = odevice != NULL ? athpy_parse_device(odevice) : PyUnicode_FromString("cpu");
    return *device == NULL ? -1 : 0;
}

int athpy_engine_adopt(AthPyEngineBase *self, const AthPyEngineKind *kind, ath_status st, void *eng,
                       const ath_error *err, PyObject *device) {
    if (st != ATH_OK) {
        Py_DECREF(device);
        athpy_raise(err);
        return -1;
    }
    kind->replace(self, eng); /* (re)initialise */
    athpy_engine_drop_model(self);
    Py_XSETREF(self->device, device);
    Py_XSETREF(self->last_error, PyUnicode_FromString(""));
    return self->last_error == NULL ? -1 : 0;
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

int athpy_engine_traverse(AthPyEngineBase *self, visitproc visit, void *arg) {
    Py_VISIT(self->model_obj);
    Py_VISIT(self->model_owner);
    return 0;
}

int athpy_engine_clear_refs(AthPyEngineBase *self, const AthPyEngineKind *kind) {
    if (kind->initialised(self) && !self->busy) kind->unset_model(self);
    athpy_engine_drop_model(self);
    return 0;
}

void athpy_engine_dealloc(AthPyEngineBase *self, const AthPyEngineKind *kind) {
    PyObject_GC_UnTrack(self);
    kind->replace(self, NULL);
    athpy_engine_drop_model(self);
    Py_CLEAR(self->device);
    Py_CLEAR(self->last_error);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyObject *athpy_engine_set_model(AthPyEngineBase *self, PyObject *args, PyObject *kwargs,
                                 const AthPyEngineKind *kind) {
    static char *kwlist[] = {"model", NULL};
    PyObject *model;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:set_model", kwlist, &model)) return NULL;
    if (athpy_engine_ready(self, kind) < 0) return NULL;
    if (kind->install(self, model) < 0) return NULL;
    Py_RETURN_NONE;
}

/* load_model(path) (also load_model(model_path=...)): the registered loader
 * (athpy_model_load) picks the route and builds the model; False + last_error
 * "<file>: <cause>" for an ordinary failure.  KeyboardInterrupt, SystemExit
 * and other non-Exception BaseExceptions propagate. */
PyObject *athpy_engine_load_model(AthPyEngineBase *self, PyObject *args, PyObject *kwargs,
                                  const AthPyEngineKind *kind) {
    static char *kwlist[] = {"path", "model_path", NULL};
    PyObject *path = NULL, *model_path = NULL, *model;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:load_model", kwlist, &path, &model_path)) return NULL;
    if ((path == NULL) == (model_path == NULL)) {
        PyErr_SetString(PyExc_TypeError, "load_model() takes exactly one of path or model_path");
        return NULL;
    }
    if (path == NULL) path = model_path;
    if (athpy_engine_ready(self, kind) < 0) return NULL;
    model = athpy_model_load((PyObject *)self, path);
    if (model == NULL || kind->install(self, model) < 0) {
        Py_XDECREF(model);
        if (!PyErr_ExceptionMatches(PyExc_Exception)) return NULL;
        athpy_engine_record_exception(self);
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    Py_DECREF(model);
    Py_XSETREF(self->last_error, PyUnicode_FromString(""));
    if (self->last_error == NULL) return NULL;
    Py_RETURN_TRUE;
}

PyObject *athpy_engine_get_device(AthPyEngineBase *self, void *kind) {
    if (athpy_engine_need(self, (const AthPyEngineKind *)kind) < 0) return NULL;
    Py_INCREF(self->device);
    return self->device;
}

#define CONFIG_GETTER(field, convert)                                                              \
    PyObject *athpy_engine_get_##field(AthPyEngineBase *self, void *kind) {                        \
        AthPyEngineConfig c;                                                                       \
        if (athpy_engine_need(self, (const AthPyEngineKind *)kind) < 0) return NULL;              \
        ((const AthPyEngineKind *)kind)->config(self, &c);                                         \
        return convert(c.field);                                                                   \
    }
CONFIG_GETTER(d_state, PyLong_FromLongLong)
CONFIG_GETTER(grid_size, PyLong_FromLongLong)
CONFIG_GETTER(gamma_decay, PyFloat_FromDouble)
CONFIG_GETTER(unitary, PyBool_FromLong)
CONFIG_GETTER(seed, PyLong_FromUnsignedLongLong)
CONFIG_GETTER(vacuum_strength, PyFloat_FromDouble)

PyObject *athpy_engine_get_last_error(AthPyEngineBase *self, PyObject *noargs) {
    (void)noargs;
    if (self->last_error == NULL) return PyUnicode_FromString("");
    Py_INCREF(self->last_error);
    return self->last_error;
}

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

PyObject *athpy_viz_image(AthPyEngineBase *self, ath_viz_type type, const ath_cf32 *field, int64_t h,
                          int64_t w, int64_t d, long long channel) {
    npy_intp dims[2];
    PyObject *res;
    ath_error err;
    ath_status s;
    dims[0] = (npy_intp)h;
    dims[1] = (npy_intp)w;
    res = PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (res == NULL || h == 0 || w == 0) return res;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    s = ath_viz_compute(type, field, h, w, d, (int64_t)channel, (float *)PyArray_DATA((PyArrayObject *)res), &err);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (s != ATH_OK) {
        Py_DECREF(res);
        return athpy_raise(&err);
    }
    return res;
}
