/* atheria_core._core.DenseEngine — the bounded dense engine
 * (include/atheria/dense_engine.h).  Same conventions as py_engine.c: the
 * GIL is released around step and the visualisation, the engine is busy
 * meanwhile, and it keeps a reference to its Python model object. */
#include "py_engine_base.h"

#include <math.h>
#include <string.h>

#include "atheria/dense_engine.h"
#include "atheria/viz.h"
#include "convert.h"

typedef struct {
    AthPyEngineBase base; /* base.eng is an ath_dense_engine */
} AthPyDense;

#define BASE(self) ATHPY_BASE(self)
#define ENG(self) ((ath_dense_engine *)ATHPY_BASE(self)->eng)
#define CFG(self) ath_dense_get_config(ENG(self))

static void ops_destroy(void *eng) { ath_dense_destroy((ath_dense_engine *)eng); }
static void ops_unset_model(void *eng) { ath_dense_set_model((ath_dense_engine *)eng, NULL, NULL); }
static void ops_config(const void *eng, AthPyEngineConfig *out) {
    const ath_dense_config *c = ath_dense_get_config((const ath_dense_engine *)eng);
    out->d_state = (long long)c->d_state;
    out->grid_size = (long long)c->grid_size;
    out->gamma_decay = c->gamma_decay;
    out->vacuum_strength = c->vacuum_strength;
    out->unitary = c->unitary;
    out->seed = (unsigned long long)c->seed;
}
static int ops_has_model(const void *eng) { return ath_dense_get_model((const ath_dense_engine *)eng) != NULL; }
static int dense_install(AthPyEngineBase *base, PyObject *model);

static const AthPyEngineOps dense_ops = {.name = "DenseEngine",
                                         .destroy = ops_destroy,
                                         .unset_model = ops_unset_model,
                                         .config = ops_config,
                                         .has_model = ops_has_model,
                                         .install = dense_install};

static PyObject *dense_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    (void)args;
    (void)kwargs;
    return athpy_engine_new(type, &dense_ops);
}

#define ENTER(self) \
    do { if (athpy_engine_enter(BASE(self)) < 0) return NULL; } while (0)
#define LEAVE_RETURN(self, r) \
    do { PyObject *r_ = (r); athpy_engine_leave(BASE(self)); return r_; } while (0)

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
    /* range checks before the config (its fields are int64) */
    if (d_state < 1 || d_state > ATH_MAX_D_STATE) {
        PyErr_Format(PyExc_ValueError, "d_state must be in [1, %d], got %lld", ATH_MAX_D_STATE, d_state);
        return -1;
    }
    if (athpy_engine_init_enter(BASE(self)) < 0) return -1;
    ath_dense_config_default(&cfg, (int64_t)grid_size, (int64_t)d_state);
    cfg.gamma_decay = gamma;
    cfg.unitary = unitary;
    cfg.vacuum_strength = strength;
    if (oext != NULL) {
        const char *s;
        if (!PyUnicode_Check(oext)) {
            PyErr_Format(PyExc_TypeError, "extent: expected 'zero' or 'periodic', got %s",
                         Py_TYPE(oext)->tp_name);
            goto fail;
        }
        s = PyUnicode_AsUTF8(oext);
        if (s == NULL) goto fail;
        if (strcmp(s, "zero") == 0) cfg.periodic = 0;
        else if (strcmp(s, "periodic") == 0) cfg.periodic = 1;
        else {
            PyErr_Format(PyExc_ValueError, "extent: expected 'zero' or 'periodic', got %R", oext);
            goto fail;
        }
    }
    if (athpy_engine_options(oseed, &cfg.seed, odevice, &device) < 0) goto fail;
    st = ath_dense_create(&cfg, &eng, &err);
    return athpy_engine_adopt(BASE(self), st, eng, &err, device);
fail:
    athpy_engine_leave(BASE(self));
    return -1;
}

static int dense_install(AthPyEngineBase *base, PyObject *model) {
    ath_model *m = NULL;
    PyObject *owner = NULL;
    ath_error err;
    ath_status st;
    if (athpy_model_resolve(model, &owner, &m) < 0) return -1;
    ath_error_clear(&err);
    /* reset_memory may run Python code (the caller holds the busy guard) */
    st = ath_dense_set_model((ath_dense_engine *)base->eng, m, &err);
    if (st != ATH_OK) {
        Py_DECREF(owner);
        athpy_raise(&err);
        return -1;
    }
    athpy_engine_keep_model(base, model, owner);
    return 0;
}


static PyObject *step_impl(AthPyDense *self, PyObject *on) {
    int64_t n = 1, i;
    if (on != NULL && athpy_index(on, "n", 0, INT64_MAX, ATHPY_INT_RANGE_VALUE, &n) < 0) return NULL;
    for (i = 0; i < n; i++) {
        ath_error err;
        ath_status st;
        ath_error_clear(&err);
        Py_BEGIN_ALLOW_THREADS
        st = ath_dense_step(ENG(self), &err);
        Py_END_ALLOW_THREADS
        if (st != ATH_OK) return athpy_engine_raise_and_record(BASE(self), &err);
        if (n > 1 && PyErr_CheckSignals() < 0) return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *dense_step(AthPyDense *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"n", NULL};
    PyObject *on = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:step", kwlist, &on)) return NULL;
    ENTER(self);
    LEAVE_RETURN(self, step_impl(self, on));
}

static PyObject *get_state_impl(AthPyDense *self) {
    const ath_dense_config *c = CFG(self);
    npy_intp dims[3];
    PyObject *res;
    dims[0] = dims[1] = (npy_intp)c->grid_size;
    dims[2] = (npy_intp)c->d_state;
    res = PyArray_SimpleNew(3, dims, NPY_COMPLEX64);
    if (res == NULL) return NULL;
    memcpy(PyArray_DATA((PyArrayObject *)res), ath_dense_state(ENG(self)),
           (size_t)(dims[0] * dims[1] * dims[2]) * sizeof(ath_cf32));
    return res;
}

static PyObject *dense_get_state(AthPyDense *self, PyObject *noargs) {
    (void)noargs;
    ENTER(self);
    LEAVE_RETURN(self, get_state_impl(self));
}

static PyObject *set_state_impl(AthPyDense *self, PyObject *opsi) {
    PyArrayObject *arr;
    npy_intp g, d;
    int nd, ok;
    ath_error err;
    ath_status st;
    arr = athpy_complex_array(opsi, "psi");
    if (arr == NULL) return NULL;
    /* sizes only now: every conversion has run */
    g = (npy_intp)CFG(self)->grid_size;
    d = (npy_intp)CFG(self)->d_state;
    nd = PyArray_NDIM(arr);
    ok = (nd == 3 && PyArray_DIM(arr, 0) == g && PyArray_DIM(arr, 1) == g && PyArray_DIM(arr, 2) == d) ||
         (nd == 4 && PyArray_DIM(arr, 0) == 1 && PyArray_DIM(arr, 1) == g && PyArray_DIM(arr, 2) == g &&
          PyArray_DIM(arr, 3) == d);
    if (!ok) {
        char shape[160];
        athpy_format_shape(shape, sizeof shape, nd, PyArray_DIMS(arr));
        PyErr_Format(PyExc_ValueError, "psi: expected shape (%lld, %lld, %lld) or (1, %lld, %lld, %lld), got %s",
                     (long long)g, (long long)g, (long long)d, (long long)g, (long long)g, (long long)d, shape);
        Py_DECREF(arr);
        return NULL;
    }
    st = ath_dense_set_state(ENG(self), (const ath_cf32 *)PyArray_DATA(arr), &err);
    Py_DECREF(arr);
    if (st != ATH_OK) return athpy_raise(&err);
    Py_RETURN_NONE;
}

static PyObject *dense_set_state(AthPyDense *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"psi", NULL};
    PyObject *opsi;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:set_state", kwlist, &opsi)) return NULL;
    ENTER(self);
    LEAVE_RETURN(self, set_state_impl(self, opsi));
}

static PyObject *dense_get_step_count(AthPyDense *self, PyObject *noargs) {
    (void)noargs;
    ENTER(self);
    LEAVE_RETURN(self, PyLong_FromLongLong((long long)ath_dense_step_count(ENG(self))));
}

static PyObject *dense_clear(AthPyDense *self, PyObject *noargs) {
    (void)noargs;
    ENTER(self);
    ath_dense_reset(ENG(self)); /* reset_memory may run Python code: the guard is held */
    athpy_engine_leave(BASE(self));
    Py_RETURN_NONE;
}

/* params[key] of a dict this code owns (a private copy: the caller's dict
 * may change while a value's __float__ runs). */
static int param_value(PyObject *params, const char *key, double *out) {
    char argname[48];
    PyObject *v = PyDict_GetItemString(params, key);
    int r;
    if (v == NULL) return 0;
    Py_INCREF(v); /* __float__ runs Python code */
    snprintf(argname, sizeof argname, "apply_tool: params['%s']", key);
    r = athpy_real(v, argname, 1, out);
    Py_DECREF(v);
    return r;
}

static PyObject *apply_tool_impl(AthPyDense *self, const char *action, PyObject *oparams) {
    static const char *const keys[] = {"x", "y", "radius", "strength", "angle"};
    PyObject *params = NULL, *key, *value;
    Py_ssize_t pos = 0;
    ath_tool tool;
    ath_tool_params p;
    double w;
    ath_error err;
    if (strcmp(action, "collapse") == 0) tool = ATH_TOOL_COLLAPSE;
    else if (strcmp(action, "vortex") == 0) tool = ATH_TOOL_VORTEX;
    else if (strcmp(action, "wave") == 0) tool = ATH_TOOL_WAVE;
    else
        return PyErr_Format(PyExc_ValueError,
                            "apply_tool: unknown action '%s' (expected 'collapse', 'vortex' or 'wave')", action);
    if (oparams != Py_None) {
        if (!PyDict_Check(oparams))
            return PyErr_Format(PyExc_TypeError, "apply_tool: params must be a dict or None, got %s",
                                Py_TYPE(oparams)->tp_name);
        params = PyDict_Copy(oparams);
        if (params == NULL) return NULL;
        while (PyDict_Next(params, &pos, &key, &value)) {
            const char *k;
            int i, known = 0;
            if (!PyUnicode_Check(key)) {
                PyErr_Format(PyExc_ValueError, "apply_tool: unknown parameter %R", key);
                goto fail;
            }
            k = PyUnicode_AsUTF8(key);
            if (k == NULL) goto fail;
            for (i = 0; i < 5; i++)
                if (strcmp(k, keys[i]) == 0) known = 1;
            if (!known) {
                PyErr_Format(PyExc_ValueError,
                             "apply_tool: unknown parameter '%s' (expected x, y, radius, strength, angle)", k);
                goto fail;
            }
        }
    }
    /* the defaults need the grid size: read after nothing else can run */
    w = 0.0;
    p.x = p.y = p.radius = p.strength = p.angle = NAN;
    if (params != NULL &&
        (param_value(params, "x", &p.x) < 0 || param_value(params, "y", &p.y) < 0 ||
         param_value(params, "radius", &p.radius) < 0 || param_value(params, "strength", &p.strength) < 0 ||
         param_value(params, "angle", &p.angle) < 0))
        goto fail;
    Py_CLEAR(params);
    w = (double)CFG(self)->grid_size;
    if (isnan(p.x)) p.x = w / 2.0;
    if (isnan(p.y)) p.y = w / 2.0;
    if (isnan(p.radius)) p.radius = w / 8.0 > 1.0 ? w / 8.0 : 1.0;
    if (isnan(p.strength)) p.strength = 1.0;
    if (isnan(p.angle)) p.angle = 0.0;
    if (ath_dense_apply_tool(ENG(self), tool, &p, &err) != ATH_OK) return athpy_raise(&err);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(params);
    return NULL;
}

static PyObject *dense_apply_tool(AthPyDense *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"action", "params", NULL};
    const char *action;
    PyObject *params = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|O:apply_tool", kwlist, &action, &params)) return NULL;
    ENTER(self);
    LEAVE_RETURN(self, apply_tool_impl(self, action, params));
}

static PyObject *viz_impl(AthPyDense *self, const char *name, PyObject *oroi, long long channel) {
    PyObject *res;
    int64_t roi[4], g, d, y, h, w;
    ath_viz_type type;
    ath_cf32 *sub;
    const ath_cf32 *field;
    if (oroi != Py_None && athpy_parse_roi(oroi, ATHPY_MAX_REGION_CELLS, roi) < 0) return NULL;
    /* every conversion has run: the sizes cannot change any more */
    g = CFG(self)->grid_size;
    d = CFG(self)->d_state;
    if (athpy_viz_args(name, channel, d, &type) < 0) return NULL;
    if (oroi == Py_None) {
        roi[0] = roi[1] = 0;
        roi[2] = roi[3] = g;
    } else if (roi[0] < 0 || roi[1] < 0 || roi[2] > g || roi[3] > g) {
        return PyErr_Format(PyExc_ValueError, "roi: must lie inside the grid [0, %lld)^2, got (%lld, %lld, %lld, %lld)",
                            (long long)g, (long long)roi[0], (long long)roi[1], (long long)roi[2], (long long)roi[3]);
    }
    h = roi[3] - roi[1];
    w = roi[2] - roi[0];
    if (h == 0 || w == 0) return athpy_viz_image(type, NULL, h, w, d, channel);
    sub = (ath_cf32 *)PyMem_RawMalloc((size_t)(h * w * d) * sizeof(ath_cf32));
    if (sub == NULL) return PyErr_NoMemory();
    field = ath_dense_state(ENG(self));
    Py_BEGIN_ALLOW_THREADS
    for (y = 0; y < h; y++)
        memcpy(sub + y * w * d, field + ((roi[1] + y) * g + roi[0]) * d, (size_t)(w * d) * sizeof(ath_cf32));
    Py_END_ALLOW_THREADS
    res = athpy_viz_image(type, sub, h, w, d, channel);
    PyMem_RawFree(sub);
    return res;
}

static PyObject *dense_compute_visualization(AthPyDense *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"viz_type", "roi", "channel", NULL};
    const char *name;
    PyObject *oroi = Py_None;
    long long channel = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|O$L:compute_visualization", kwlist, &name, &oroi, &channel))
        return NULL;
    ENTER(self);
    LEAVE_RETURN(self, viz_impl(self, name, oroi, channel));
}

static PyObject *dense_repr(AthPyDense *self) {
    const ath_dense_config *c;
    if (ENG(self) == NULL) return PyUnicode_FromString("DenseEngine(<uninitialised>)");
    c = CFG(self);
    return PyUnicode_FromFormat("DenseEngine(grid_size=%lld, d_state=%lld, step=%lld)", (long long)c->grid_size,
                                (long long)c->d_state, (long long)ath_dense_step_count(ENG(self)));
}

static PyObject *get_extent(AthPyDense *s, void *c) {
    (void)c;
    if (athpy_engine_need(BASE(s)) < 0) return NULL;
    return PyUnicode_FromString(CFG(s)->periodic ? "periodic" : "zero");
}

static PyGetSetDef dense_getset[] = {
    {"extent", (getter)get_extent, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL}};

#define KW (PyCFunction)(void (*)(void))
static PyMethodDef dense_methods[] = {
    {"step", KW dense_step, METH_VARARGS | METH_KEYWORDS, "step(n=1)"},
    {"get_state", (PyCFunction)dense_get_state, METH_NOARGS, "get_state() -> (H, W, d) complex64 copy"},
    {"set_state", KW dense_set_state, METH_VARARGS | METH_KEYWORDS, "set_state(psi): (H, W, d) or (1, H, W, d)"},
    {"get_step_count", (PyCFunction)dense_get_step_count, METH_NOARGS, NULL},
    {"clear", (PyCFunction)dense_clear, METH_NOARGS, "Back to the vacuum at step 0, step count 0, memory reset."},
    {"apply_tool", KW dense_apply_tool, METH_VARARGS | METH_KEYWORDS, "apply_tool(action, params=None): docs/tools.md"},
    {"compute_visualization", KW dense_compute_visualization, METH_VARARGS | METH_KEYWORDS,
     "compute_visualization(viz_type, roi=None, *, channel=0) -> (h, w) float32"},
    {NULL, NULL, 0, NULL}};

PyTypeObject AthPyDenseEngine_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atheria_core._core.DenseEngine",
    .tp_doc = "DenseEngine(grid_size, d_state, device='cpu', *, gamma_decay=0.0, unitary=False, seed=0, "
              "vacuum_strength=0.1, extent='zero'): a bounded grid evaluated whole.",
    .tp_basicsize = sizeof(AthPyDense),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_base = &AthPyEngineBase_Type,
    .tp_traverse = athpy_engine_traverse,
    .tp_clear = athpy_engine_clear,
    .tp_new = dense_new,
    .tp_init = (initproc)dense_init,
    .tp_repr = (reprfunc)dense_repr,
    .tp_methods = dense_methods,
    .tp_getset = dense_getset,
};
