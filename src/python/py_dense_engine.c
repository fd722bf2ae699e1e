/* atheria_core._core.DenseEngine — the bounded dense engine
 * (include/atheria/dense_engine.h).  Same conventions as py_engine.c: the
 * GIL is released around step and the visualisation, the engine is busy
 * meanwhile, and it keeps a reference to its Python model object. */
#include "ath_py.h"

#include <math.h>
#include <string.h>

#include "atheria/dense_engine.h"
#include "atheria/viz.h"

typedef struct {
    ATHPY_ENGINE_HEAD
    ath_dense_engine *eng;
} AthPyDense;

#define BASE(self) ((AthPyEngineBase *)(self))

ATHPY_ENGINE_KIND(AthPyDense, dense, ath_dense_engine, ath_dense_destroy, ath_dense_set_model, ath_dense_get_config,
                  "DenseEngine", "a step")

static int dense_init(AthPyDense *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"grid_size", "d_state", "device", "gamma_decay", "unitary",
                             "seed", "vacuum_strength", "extent", NULL};
    long long grid_size, d_state;
    PyObject *odevice = NULL, *oseed = NULL, *oext = NULL, *device;
    ath_status st;
    double gamma = 0.0, strength = 0.1;
    int unitary = 0;
    ath_dense_config cfg;
    ath_dense_engine *eng = NULL;
    ath_error err;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "LL|O$dpOdO:DenseEngine", kwlist, &grid_size, &d_state,
                                     &odevice, &gamma, &unitary, &oseed, &strength, &oext))
        return -1;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "DenseEngine is busy");
        return -1;
    }
    /* range checks before the config (its fields are int64) */
    if (d_state < 1 || d_state > ATH_MAX_D_STATE) {
        PyErr_Format(PyExc_ValueError, "d_state must be in [1, %d], got %lld", ATH_MAX_D_STATE, d_state);
        return -1;
    }
    ath_dense_config_default(&cfg, (int64_t)grid_size, (int64_t)d_state);
    cfg.gamma_decay = gamma;
    cfg.unitary = unitary;
    cfg.vacuum_strength = strength;
    if (oext != NULL) {
        const char *s;
        if (!PyUnicode_Check(oext)) {
            PyErr_Format(PyExc_TypeError, "extent: expected 'zero' or 'periodic', got %s",
                         Py_TYPE(oext)->tp_name);
            return -1;
        }
        s = PyUnicode_AsUTF8(oext);
        if (s == NULL) return -1;
        if (strcmp(s, "zero") == 0) cfg.periodic = 0;
        else if (strcmp(s, "periodic") == 0) cfg.periodic = 1;
        else {
            PyErr_Format(PyExc_ValueError, "extent: expected 'zero' or 'periodic', got %R", oext);
            return -1;
        }
    }
    if (athpy_engine_options(oseed, &cfg.seed, odevice, &device) < 0) return -1;
    st = ath_dense_create(&cfg, &eng, &err);
    return athpy_engine_adopt(BASE(self), &dense_kind, st, eng, &err, device);
}

static int dense_install(AthPyEngineBase *base, PyObject *model) {
    AthPyDense *self = (AthPyDense *)base;
    ath_model *m = NULL;
    PyObject *owner = NULL;
    ath_error err;
    ath_status st;
    if (model == Py_None) {
        dense_unset_model(base);
        athpy_engine_drop_model(base);
        return 0;
    }
    if (athpy_model_resolve(model, &owner, &m) < 0) return -1;
    ath_error_clear(&err);
    self->busy = 1; /* reset_memory may run Python code */
    st = ath_dense_set_model(self->eng, m, &err);
    self->busy = 0;
    if (st != ATH_OK) {
        Py_DECREF(owner);
        athpy_raise(&err);
        return -1;
    }
    athpy_engine_keep_model(base, model, owner);
    return 0;
}

static PyObject *dense_has_model(AthPyDense *self, PyObject *noargs) {
    (void)noargs;
    if (athpy_engine_need(BASE(self), &dense_kind) < 0) return NULL;
    return PyBool_FromLong(ath_dense_get_model(self->eng) != NULL);
}

static PyObject *dense_step(AthPyDense *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"n", NULL};
    long long n = 1, i;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|L:step", kwlist, &n)) return NULL;
    if (ready(self) < 0) return NULL;
    if (n < 0) return PyErr_Format(PyExc_ValueError, "step: n must be >= 0, got %lld", n);
    for (i = 0; i < n; i++) {
        ath_error err;
        ath_status st;
        ath_error_clear(&err);
        self->busy = 1;
        Py_BEGIN_ALLOW_THREADS
        st = ath_dense_step(self->eng, &err);
        Py_END_ALLOW_THREADS
        self->busy = 0;
        if (st != ATH_OK) return athpy_engine_raise_and_record(BASE(self), &err);
        if (n > 1 && PyErr_CheckSignals() < 0) return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *dense_get_state(AthPyDense *self, PyObject *noargs) {
    const ath_dense_config *c;
    npy_intp dims[3];
    PyObject *res;
    (void)noargs;
    if (ready(self) < 0) return NULL;
    c = ath_dense_get_config(self->eng);
    dims[0] = dims[1] = (npy_intp)c->grid_size;
    dims[2] = (npy_intp)c->d_state;
    res = PyArray_SimpleNew(3, dims, NPY_COMPLEX64);
    if (res == NULL) return NULL;
    memcpy(PyArray_DATA((PyArrayObject *)res), ath_dense_state(self->eng),
           (size_t)(dims[0] * dims[1] * dims[2]) * sizeof(ath_cf32));
    return res;
}

static PyObject *dense_set_state(AthPyDense *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"psi", NULL};
    const ath_dense_config *c;
    PyObject *opsi;
    PyArrayObject *arr;
    npy_intp g, d;
    int nd, ok;
    ath_error err;
    ath_status st;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:set_state", kwlist, &opsi)) return NULL;
    if (ready(self) < 0) return NULL;
    c = ath_dense_get_config(self->eng);
    g = (npy_intp)c->grid_size;
    d = (npy_intp)c->d_state;
    if (PyArray_Check(opsi)) {
        int t = PyArray_TYPE((PyArrayObject *)opsi);
        if (!PyTypeNum_ISNUMBER(t) || PyTypeNum_ISBOOL(t))
            return PyErr_Format(PyExc_TypeError, "psi: expected a numeric (complex) array, got dtype %R",
                                (PyObject *)PyArray_DESCR((PyArrayObject *)opsi));
    }
    arr = (PyArrayObject *)PyArray_FROM_OTF(opsi, NPY_COMPLEX64, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    if (arr == NULL) {
        PyErr_Clear();
        return PyErr_Format(PyExc_TypeError, "psi: expected a complex array-like of shape (%lld, %lld, %lld)",
                            (long long)g, (long long)g, (long long)d);
    }
    nd = PyArray_NDIM(arr);
    ok = (nd == 3 && PyArray_DIM(arr, 0) == g && PyArray_DIM(arr, 1) == g && PyArray_DIM(arr, 2) == d) ||
         (nd == 4 && PyArray_DIM(arr, 0) == 1 && PyArray_DIM(arr, 1) == g && PyArray_DIM(arr, 2) == g &&
          PyArray_DIM(arr, 3) == d);
    if (!ok) {
        PyObject *shape = PyObject_GetAttrString((PyObject *)arr, "shape");
        PyErr_Format(PyExc_ValueError, "psi: expected shape (%lld, %lld, %lld) or (1, %lld, %lld, %lld), got %S",
                     (long long)g, (long long)g, (long long)d, (long long)g, (long long)g, (long long)d,
                     shape != NULL ? shape : Py_None);
        Py_XDECREF(shape);
        Py_DECREF(arr);
        return NULL;
    }
    st = ath_dense_set_state(self->eng, (const ath_cf32 *)PyArray_DATA(arr), &err);
    Py_DECREF(arr);
    if (st != ATH_OK) return athpy_raise(&err);
    Py_RETURN_NONE;
}

static PyObject *dense_get_step_count(AthPyDense *self, PyObject *noargs) {
    (void)noargs;
    if (ready(self) < 0) return NULL;
    return PyLong_FromLongLong((long long)ath_dense_step_count(self->eng));
}

static PyObject *dense_clear(AthPyDense *self, PyObject *noargs) {
    (void)noargs;
    if (ready(self) < 0) return NULL;
    self->busy = 1; /* reset_memory may run Python code */
    ath_dense_reset(self->eng);
    self->busy = 0;
    Py_RETURN_NONE;
}

static int param_value(PyObject *params, const char *key, double *out) {
    PyObject *v = PyDict_GetItemString(params, key); /* borrowed */
    double x;
    if (v == NULL) return 0;
    if (PyBool_Check(v) || !(PyFloat_Check(v) || PyLong_Check(v) || PyNumber_Check(v)) ||
        PyUnicode_Check(v)) {
        PyErr_Format(PyExc_TypeError, "apply_tool: params['%s'] must be a number, got %s", key,
                     Py_TYPE(v)->tp_name);
        return -1;
    }
    x = PyFloat_AsDouble(v);
    if (x == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "apply_tool: params['%s'] must be a real number, got %R", key, v);
        return -1;
    }
    if (!isfinite(x)) {
        PyErr_Format(PyExc_ValueError, "apply_tool: params['%s'] must be finite, got %R", key, v);
        return -1;
    }
    *out = x;
    return 0;
}

static PyObject *dense_apply_tool(AthPyDense *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"action", "params", NULL};
    static const char *const keys[] = {"x", "y", "radius", "strength", "angle"};
    const char *action;
    PyObject *params = Py_None, *key;
    Py_ssize_t pos = 0;
    ath_tool tool;
    ath_tool_params p;
    double w;
    ath_error err;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|O:apply_tool", kwlist, &action, &params)) return NULL;
    if (ready(self) < 0) return NULL;
    if (strcmp(action, "collapse") == 0) tool = ATH_TOOL_COLLAPSE;
    else if (strcmp(action, "vortex") == 0) tool = ATH_TOOL_VORTEX;
    else if (strcmp(action, "wave") == 0) tool = ATH_TOOL_WAVE;
    else
        return PyErr_Format(PyExc_ValueError,
                            "apply_tool: unknown action '%s' (expected 'collapse', 'vortex' or 'wave')",
                            action);
    w = (double)ath_dense_get_config(self->eng)->grid_size;
    p.x = w / 2.0;
    p.y = w / 2.0;
    p.radius = w / 8.0 > 1.0 ? w / 8.0 : 1.0;
    p.strength = 1.0;
    p.angle = 0.0;
    if (params != Py_None) {
        PyObject *value;
        if (!PyDict_Check(params))
            return PyErr_Format(PyExc_TypeError, "apply_tool: params must be a dict or None, got %s",
                                Py_TYPE(params)->tp_name);
        while (PyDict_Next(params, &pos, &key, &value)) {
            const char *k;
            int i, known = 0;
            if (!PyUnicode_Check(key))
                return PyErr_Format(PyExc_ValueError, "apply_tool: unknown parameter %R", key);
            k = PyUnicode_AsUTF8(key);
            if (k == NULL) return NULL;
            for (i = 0; i < 5; i++)
                if (strcmp(k, keys[i]) == 0) known = 1;
            if (!known)
                return PyErr_Format(PyExc_ValueError,
                                    "apply_tool: unknown parameter '%s' (expected x, y, radius, strength, angle)",
                                    k);
        }
        if (param_value(params, "x", &p.x) < 0 || param_value(params, "y", &p.y) < 0 ||
            param_value(params, "radius", &p.radius) < 0 || param_value(params, "strength", &p.strength) < 0 ||
            param_value(params, "angle", &p.angle) < 0)
            return NULL;
    }
    if (ath_dense_apply_tool(self->eng, tool, &p, &err) != ATH_OK) return athpy_raise(&err);
    Py_RETURN_NONE;
}

static PyObject *dense_compute_visualization(AthPyDense *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"viz_type", "roi", "channel", NULL};
    const char *name;
    PyObject *oroi = Py_None, *res;
    long long channel = 0;
    int64_t roi[4], g, d, y, h, w;
    ath_viz_type type;
    ath_cf32 *sub;
    const ath_cf32 *field;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|O$L:compute_visualization", kwlist, &name, &oroi,
                                     &channel))
        return NULL;
    if (ready(self) < 0) return NULL;
    g = ath_dense_get_config(self->eng)->grid_size;
    d = ath_dense_get_config(self->eng)->d_state;
    if (athpy_viz_args(name, channel, d, &type) < 0) return NULL;
    if (oroi == Py_None) {
        roi[0] = roi[1] = 0;
        roi[2] = roi[3] = g;
    } else {
        if (athpy_parse_roi(oroi, ATHPY_MAX_REGION_CELLS, roi) < 0) return NULL;
        if (roi[0] < 0 || roi[1] < 0 || roi[2] > g || roi[3] > g)
            return PyErr_Format(PyExc_ValueError, "roi: must lie inside the grid [0, %lld)^2, got (%lld, %lld, %lld, %lld)",
                                (long long)g, (long long)roi[0], (long long)roi[1], (long long)roi[2],
                                (long long)roi[3]);
    }
    h = roi[3] - roi[1];
    w = roi[2] - roi[0];
    if (h == 0 || w == 0) return athpy_viz_image(BASE(self), type, NULL, h, w, d, channel);
    sub = (ath_cf32 *)PyMem_RawMalloc((size_t)(h * w * d) * sizeof(ath_cf32));
    if (sub == NULL) return PyErr_NoMemory();
    field = ath_dense_state(self->eng);
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    for (y = 0; y < h; y++)
        memcpy(sub + y * w * d, field + ((roi[1] + y) * g + roi[0]) * d, (size_t)(w * d) * sizeof(ath_cf32));
    Py_END_ALLOW_THREADS
    self->busy = 0;
    res = athpy_viz_image(BASE(self), type, sub, h, w, d, channel);
    PyMem_RawFree(sub);
    return res;
}

static PyObject *dense_repr(AthPyDense *self) {
    const ath_dense_config *c;
    if (self->eng == NULL) return PyUnicode_FromString("DenseEngine(<uninitialised>)");
    c = ath_dense_get_config(self->eng);
    return PyUnicode_FromFormat("DenseEngine(grid_size=%lld, d_state=%lld, step=%lld)", (long long)c->grid_size,
                                (long long)c->d_state, (long long)ath_dense_step_count(self->eng));
}

#define CFG(self) ath_dense_get_config((self)->eng)
#define NEED_ENG(self) \
    do { if (athpy_engine_need(BASE(self), &dense_kind) < 0) return NULL; } while (0)

static PyObject *get_extent(AthPyDense *s, void *c) {
    (void)c;
    NEED_ENG(s);
    return PyUnicode_FromString(CFG(s)->periodic ? "periodic" : "zero");
}

static PyGetSetDef dense_getset[] = {
    ATHPY_ENGINE_GETSET(dense_kind),
    {"extent", (getter)get_extent, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL}};

#define KW (PyCFunction)(void (*)(void))
static PyMethodDef dense_methods[] = {
    ATHPY_ENGINE_METHODS(dense),
    {"set_model", KW dense_set_model, METH_VARARGS | METH_KEYWORDS,
     "set_model(model): callables get the whole float32 (1, 2d, H, W) field and return (1, 2d, H, W)."},
    {"has_model", (PyCFunction)dense_has_model, METH_NOARGS, NULL},
    {"step", KW dense_step, METH_VARARGS | METH_KEYWORDS, "step(n=1)"},
    {"get_state", (PyCFunction)dense_get_state, METH_NOARGS, "get_state() -> (H, W, d) complex64 copy"},
    {"set_state", KW dense_set_state, METH_VARARGS | METH_KEYWORDS, "set_state(psi): (H, W, d) or (1, H, W, d)"},
    {"get_step_count", (PyCFunction)dense_get_step_count, METH_NOARGS, NULL},
    {"clear", (PyCFunction)dense_clear, METH_NOARGS, "Back to the vacuum at step 0, step count 0, memory reset."},
    {"apply_tool", KW dense_apply_tool, METH_VARARGS | METH_KEYWORDS, "apply_tool(action, params=None): docs/tools.md"},
    {"generate_bulk_state", KW athpy_dense_generate_bulk_state, METH_VARARGS | METH_KEYWORDS,
     "generate_bulk_state(base_field, depth) -> (1, depth*C, H, W) float32: the field and depth-1 blurs"},
    {"compute_visualization", KW dense_compute_visualization, METH_VARARGS | METH_KEYWORDS,
     "compute_visualization(viz_type, roi=None, *, channel=0) -> (h, w) float32"},
    {NULL, NULL, 0, NULL}};

PyTypeObject AthPyDenseEngine_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atheria_core._core.DenseEngine",
    .tp_doc = "DenseEngine(grid_size, d_state, device='cpu', *, gamma_decay=0.0, unitary=False, seed=0, "
              "vacuum_strength=0.1, extent='zero'): a bounded grid evaluated whole.",
    .tp_basicsize = sizeof(AthPyDense),
    ATHPY_ENGINE_SLOTS(dense),
};
