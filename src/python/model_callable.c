/* The Python-callable adapter: any callable taking a float32 (B, C, H, W)
 * batch, run as an ath_model (called with the GIL re-acquired). */
#include "models.h"
#include "atheria/alloc.h"
#include "convert.h"

#include <stdio.h>
#include <string.h>

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
        int t;
        raw = athpy_host_array(res, "model output");
        if (raw == NULL) {
            if (PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError,
                             "model returned %s that is not convertible to a float32 array",
                             Py_TYPE(res)->tp_name);
            }
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
        athpy_format_shape(got, sizeof got, PyArray_NDIM(arr), PyArray_DIMS(arr));
        athpy_format_shape(want, sizeof want, 4, dims);
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

PyObject *athpy_wrap_callable(PyObject *obj) {
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
    m = (ath_model *)ath_calloc(1, sizeof *m);
    if (ctx == NULL || m == NULL) {
        PyMem_RawFree(ctx);
        ath_free(m);
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
