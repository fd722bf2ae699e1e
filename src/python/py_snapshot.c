/* atheria_core._core — the C side of snapshots, ROI matter views and analysis:
 * module functions taking an Engine / DenseEngine (used by the Python layer,
 * python/atheria_core/_engines.py).  Kept in its own file so the engine types'
 * files stay as they are. */
#include "ath_py.h"

#include <string.h>

#include "atheria/analysis.h"
#include "atheria/dense_engine.h"
#include "atheria/engine.h"
#include "atheria/alloc.h"
#include "atheria/snapshot.h"

/* The layouts of py_engine.c / py_dense_engine.c (ATHPY_ENGINE_HEAD, then the C engine). */
typedef struct {
    ATHPY_ENGINE_HEAD
    ath_engine *eng;
} SnapSparse;
typedef struct {
    ATHPY_ENGINE_HEAD
    ath_dense_engine *eng;
} SnapDense;

/* 1 sparse, 2 dense, -1 with an exception. */
static int engine_kind(PyObject *obj, const char *fn) {
    int k = 0;
    if (PyObject_TypeCheck(obj, &AthPyEngine_Type)) k = 1;
    else if (PyObject_TypeCheck(obj, &AthPyDenseEngine_Type)) k = 2;
    if (k == 0) {
        PyErr_Format(PyExc_TypeError, "%s: engine must be an Engine or DenseEngine, got %s", fn,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if ((k == 1 && ((SnapSparse *)obj)->eng == NULL) || (k == 2 && ((SnapDense *)obj)->eng == NULL)) {
        PyErr_Format(PyExc_RuntimeError, "%s: the engine is not initialised", fn);
        return -1;
    }
    if (((AthPyEngineBase *)obj)->busy) {
        PyErr_Format(PyExc_RuntimeError, "%s: the engine is busy (a step runs in another thread)", fn);
        return -1;
    }
    return k;
}

static PyObject *snap_set_step_count(PyObject *self, PyObject *args) {
    PyObject *obj;
    long long step;
    ath_error err;
    ath_status st;
    int k;
    (void)self;
    if (!PyArg_ParseTuple(args, "OL:_set_step_count", &obj, &step)) return NULL;
    if ((k = engine_kind(obj, "_set_step_count")) < 0) return NULL;
    ath_error_clear(&err);
    st = k == 1 ? ath_engine_set_step_count(((SnapSparse *)obj)->eng, (int64_t)step, &err)
                : ath_dense_set_step_count(((SnapDense *)obj)->eng, (int64_t)step, &err);
    if (st != ATH_OK) return athpy_raise(&err);
    Py_RETURN_NONE;
}

/* Growable copy of visited matter. */
typedef struct {
    size_t n, cap, d;
    ath_coord *c;
    ath_cf32 *s;
} collect_ctx;

static ath_status collect_visit(void *vctx, const ath_coord *coords, const ath_cf32 *states, size_t n,
                                ath_error *err) {
    collect_ctx *cx = (collect_ctx *)vctx;
    if (cx->n + n > cx->cap) {
        size_t cap = cx->cap ? cx->cap : 1024;
        ath_coord *c;
        ath_cf32 *s;
        while (cap < cx->n + n) cap *= 2;
        c = (ath_coord *)ath_realloc(cx->c, cap * sizeof *c);
        if (c == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "matter_in_roi: out of memory");
        cx->c = c;
        s = (ath_cf32 *)ath_realloc(cx->s, cap * cx->d * sizeof *s);
        if (s == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "matter_in_roi: out of memory");
        cx->s = s;
        cx->cap = cap;
    }
    memcpy(cx->c + cx->n, coords, n * sizeof *coords);
    memcpy(cx->s + cx->n * cx->d, states, n * cx->d * sizeof *states);
    cx->n += n;
    return ATH_OK;
}

/* roi object -> ath_roi (None: NULL). 0 / 1 (roi set) / -1. */
static int parse_roi_z(PyObject *oroi, long long z, ath_roi *out) {
    int64_t r[4];
    if (oroi == NULL || oroi == Py_None) return 0;
    if (athpy_parse_roi(oroi, INT64_MAX, r) < 0) return -1;
    if (z > ATH_COORD_LIMIT || z < -ATH_COORD_LIMIT) {
        PyErr_SetString(PyExc_OverflowError, "z: out of range (|z| <= 2**60)");
        return -1;
    }
    out->x0 = r[0];
    out->y0 = r[1];
    out->x1 = r[2];
    out->y1 = r[3];
    out->z = (int64_t)z;
    return 1;
}

static PyObject *snap_matter_in_roi(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"engine", "roi", "z", NULL};
    PyObject *obj, *oroi = Py_None, *res = NULL;
    PyArrayObject *ac = NULL, *as = NULL;
    long long z = 0;
    ath_roi roi;
    int has;
    collect_ctx cx;
    ath_error err;
    ath_status st;
    npy_intp dims[2];
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OL:_matter_in_roi", kwlist, &obj, &oroi, &z)) return NULL;
    if (engine_kind(obj, "_matter_in_roi") != 1) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "_matter_in_roi: engine must be an Engine");
        return NULL;
    }
    if ((has = parse_roi_z(oroi, z, &roi)) < 0) return NULL;
    memset(&cx, 0, sizeof cx);
    cx.d = (size_t)ath_engine_get_config(((SnapSparse *)obj)->eng)->d_state;
    ath_error_clear(&err);
    Py_BEGIN_ALLOW_THREADS
    st = ath_engine_visit_matter(((SnapSparse *)obj)->eng, has ? &roi : NULL, collect_visit, &cx, &err);
    Py_END_ALLOW_THREADS
    if (st != ATH_OK) {
        ath_free(cx.c);
        ath_free(cx.s);
        return athpy_raise(&err);
    }
    dims[0] = (npy_intp)cx.n;
    dims[1] = 3;
    ac = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_INT64);
    dims[1] = (npy_intp)cx.d;
    as = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_COMPLEX64);
    if (ac != NULL && as != NULL) {
        if (cx.n) {
            memcpy(PyArray_DATA(ac), cx.c, cx.n * sizeof(ath_coord));
            memcpy(PyArray_DATA(as), cx.s, cx.n * cx.d * sizeof(ath_cf32));
        }
        res = PyTuple_Pack(2, (PyObject *)ac, (PyObject *)as);
    }
    Py_XDECREF(ac);
    Py_XDECREF(as);
    ath_free(cx.c);
    ath_free(cx.s);
    return res;
}

static PyObject *result_dict(const ath_analysis *a, const double *channel_energy, int64_t d) {
    PyObject *dict = NULL, *ce = NULL, *edges = NULL, *counts = NULL, *hist = NULL, *bbox = NULL;
    npy_intp n;
    int64_t k;
    dict = PyDict_New();
    if (dict == NULL) return NULL;
    n = (npy_intp)d;
    ce = PyArray_SimpleNew(1, &n, NPY_FLOAT64);
    n = ATH_ANALYSIS_BINS + 1;
    edges = PyArray_SimpleNew(1, &n, NPY_FLOAT64);
    n = ATH_ANALYSIS_BINS;
    counts = PyArray_SimpleNew(1, &n, NPY_INT64);
    if (ce == NULL || edges == NULL || counts == NULL) goto fail;
    for (k = 0; k < d; k++) ((double *)PyArray_DATA((PyArrayObject *)ce))[k] = channel_energy[k];
    memcpy(PyArray_DATA((PyArrayObject *)edges), a->hist_edges, sizeof a->hist_edges);
    memcpy(PyArray_DATA((PyArrayObject *)counts), a->hist_counts, sizeof a->hist_counts);
    hist = Py_BuildValue("{sOsO}", "edges", edges, "counts", counts);
    if (hist == NULL) goto fail;
    if (a->matter_count > 0)
        bbox = Py_BuildValue("(LLLL)", (long long)a->bbox[0], (long long)a->bbox[1], (long long)a->bbox[2],
                             (long long)a->bbox[3]);
    else {
        bbox = Py_None;
        Py_INCREF(bbox);
    }
    if (bbox == NULL) goto fail;
    {
        PyObject *v;
#define PUT(key, expr)                                                                             \
    v = (expr);                                                                                    \
    if (v == NULL || PyDict_SetItemString(dict, key, v) < 0) {                                     \
        Py_XDECREF(v);                                                                             \
        goto fail;                                                                                 \
    }                                                                                              \
    Py_DECREF(v)
        PUT("energy", PyFloat_FromDouble(a->energy));
        PUT("matter_count", PyLong_FromLongLong((long long)a->matter_count));
        Py_INCREF(bbox);
        PUT("bbox", bbox);
        PUT("mean_phase", PyFloat_FromDouble(a->mean_phase));
        PUT("phase_coherence", PyFloat_FromDouble(a->phase_coherence));
        Py_INCREF(ce);
        PUT("channel_energy", ce);
        Py_INCREF(hist);
        PUT("energy_histogram", hist);
#undef PUT
    }
    Py_DECREF(ce);
    Py_DECREF(edges);
    Py_DECREF(counts);
    Py_DECREF(hist);
    Py_DECREF(bbox);
    return dict;
fail:
    Py_XDECREF(dict);
    Py_XDECREF(ce);
    Py_XDECREF(edges);
    Py_XDECREF(counts);
    Py_XDECREF(hist);
    Py_XDECREF(bbox);
    return NULL;
}

static PyObject *snap_analyze(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"engine", "roi", "z", NULL};
    PyObject *obj, *oroi = Py_None, *res;
    long long z = 0;
    ath_roi roi;
    int has, k;
    int64_t d;
    double *ce;
    ath_analysis a;
    ath_error err;
    ath_status st;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OL:_analyze", kwlist, &obj, &oroi, &z)) return NULL;
    if ((k = engine_kind(obj, "_analyze")) < 0) return NULL;
    if ((has = parse_roi_z(oroi, z, &roi)) < 0) return NULL;
    d = k == 1 ? ath_engine_get_config(((SnapSparse *)obj)->eng)->d_state
               : ath_dense_get_config(((SnapDense *)obj)->eng)->d_state;
    ce = (double *)PyMem_Calloc((size_t)d, sizeof *ce);
    if (ce == NULL) return PyErr_NoMemory();
    ath_error_clear(&err);
    Py_BEGIN_ALLOW_THREADS
    if (k == 1) {
        st = ath_analyze_engine(((SnapSparse *)obj)->eng, has ? &roi : NULL, &a, ce, &err);
    } else {
        const ath_dense_config *cfg = ath_dense_get_config(((SnapDense *)obj)->eng);
        ath_roi full = {0, 0, cfg->grid_size, cfg->grid_size, 0};
        if (!has) roi = full;
        st = ath_analyze_dense(ath_dense_state(((SnapDense *)obj)->eng), cfg->grid_size, cfg->grid_size,
                               cfg->d_state, &roi, &a, ce, &err);
    }
    Py_END_ALLOW_THREADS
    if (st != ATH_OK) {
        PyMem_Free(ce);
        return athpy_raise(&err);
    }
    res = result_dict(&a, ce, d);
    PyMem_Free(ce);
    return res;
}

static PyObject *snap_model_object(PyObject *self, PyObject *obj) {
    PyObject *m;
    (void)self;
    if (engine_kind(obj, "_model_object") < 0) return NULL;
    m = ((AthPyEngineBase *)obj)->model_obj;
    if (m == NULL) Py_RETURN_NONE;
    Py_INCREF(m);
    return m;
}

/* The ath_model of an "atheria_core.model" capsule with the snapshot memory ops, or NULL. */
static ath_model *memory_model(PyObject *cap) {
    ath_model *m;
    if (!PyCapsule_IsValid(cap, "atheria_core.model")) {
        PyErr_Format(PyExc_TypeError, "expected an atheria_core.model capsule, got %s", Py_TYPE(cap)->tp_name);
        return NULL;
    }
    m = (ath_model *)PyCapsule_GetPointer(cap, "atheria_core.model");
    if (m == NULL) return NULL;
    if (m->ops == NULL || m->ops->memory_size == NULL || m->ops->memory_get == NULL || m->ops->memory_set == NULL) {
        PyErr_SetString(PyExc_ValueError, "this model has no snapshot memory (not a memory model)");
        return NULL;
    }
    return m;
}

static PyObject *snap_capsule_memory_get(PyObject *self, PyObject *cap) {
    ath_model *m = memory_model(cap);
    PyArrayObject *arr;
    npy_intp n;
    ath_error err;
    (void)self;
    if (m == NULL) {
        /* a stateless model has no memory: None, like a memory model before its first step */
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    n = (npy_intp)m->ops->memory_size(m->ctx);
    if (n <= 0) Py_RETURN_NONE;
    arr = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_FLOAT32);
    if (arr == NULL) return NULL;
    ath_error_clear(&err);
    if (m->ops->memory_get(m->ctx, (float *)PyArray_DATA(arr), (int64_t)n, &err) != ATH_OK) {
        Py_DECREF(arr);
        return athpy_raise(&err);
    }
    return (PyObject *)arr;
}

static PyObject *snap_capsule_memory_set(PyObject *self, PyObject *args) {
    PyObject *cap, *obj;
    PyArrayObject *arr;
    ath_model *m;
    ath_error err;
    ath_status st;
    (void)self;
    if (!PyArg_ParseTuple(args, "OO:_capsule_memory_set", &cap, &obj)) return NULL;
    if ((m = memory_model(cap)) == NULL) return NULL;
    arr = (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_FLOAT32, NPY_ARRAY_IN_ARRAY);
    if (arr == NULL) return NULL;
    if (PyArray_NDIM(arr) != 1) {
        Py_DECREF(arr);
        PyErr_SetString(PyExc_ValueError, "_capsule_memory_set: memory must be a 1-D float32 array");
        return NULL;
    }
    ath_error_clear(&err);
    st = m->ops->memory_set(m->ctx, (const float *)PyArray_DATA(arr), (int64_t)PyArray_SIZE(arr), &err);
    Py_DECREF(arr);
    if (st != ATH_OK) return athpy_raise(&err);
    Py_RETURN_NONE;
}

/* ---- the file format (src/core/snapshot.c) ---- */

static int numpy_type(int dtype) {
    switch (dtype) {
    case ATH_SNAP_I64: return NPY_INT64;
    case ATH_SNAP_F32: return NPY_FLOAT32;
    case ATH_SNAP_C64: return NPY_COMPLEX64;
    case ATH_SNAP_F64: return NPY_FLOAT64;
    case ATH_SNAP_U8: return NPY_UINT8;
    default: return -1;
    }
}

static int snap_dtype(int npy) {
    switch (npy) {
    case NPY_INT64: return ATH_SNAP_I64;
    case NPY_FLOAT32: return ATH_SNAP_F32;
    case NPY_COMPLEX64: return ATH_SNAP_C64;
    case NPY_FLOAT64: return ATH_SNAP_F64;
    case NPY_UINT8: return ATH_SNAP_U8;
    default: return 0;
    }
}

/* _snapshot_encode(meta: bytes, arrays: list of (name, ndarray)) -> bytes */
static PyObject *snap_encode(PyObject *self, PyObject *args) {
    PyObject *meta, *list, *res = NULL, *fast = NULL;
    Py_ssize_t n, i, nkeep = 0;
    ath_snap_section *sec = NULL;
    PyArrayObject **keep = NULL;
    unsigned char *out = NULL;
    size_t out_len = 0;
    ath_error err;
    ath_status st;
    (void)self;
    if (!PyArg_ParseTuple(args, "SO:_snapshot_encode", &meta, &list)) return NULL;
    fast = PySequence_Fast(list, "_snapshot_encode: arrays must be a sequence of (name, array)");
    if (fast == NULL) return NULL;
    n = PySequence_Fast_GET_SIZE(fast);
    sec = (ath_snap_section *)PyMem_Calloc((size_t)n + 1, sizeof *sec);
    keep = (PyArrayObject **)PyMem_Calloc((size_t)n + 1, sizeof *keep);
    if (sec == NULL || keep == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    strcpy(sec[0].name, "meta");
    sec[0].is_json = 1;
    sec[0].data = (const unsigned char *)PyBytes_AS_STRING(meta);
    sec[0].nbytes = (size_t)PyBytes_GET_SIZE(meta);
    for (i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i), *oarr;
        const char *name;
        Py_ssize_t nl;
        PyArrayObject *arr;
        int d, code;
        if (!PyArg_ParseTuple(item, "s#O:_snapshot_encode item", &name, &nl, &oarr)) goto done;
        if (nl > ATH_SNAPSHOT_MAX_NAME || (Py_ssize_t)strlen(name) != nl) {
            PyErr_SetString(PyExc_ValueError, "_snapshot_encode: bad section name");
            goto done;
        }
        if (!PyArray_Check(oarr) || (code = snap_dtype(PyArray_TYPE((PyArrayObject *)oarr))) == 0 ||
            PyArray_NDIM((PyArrayObject *)oarr) > ATH_SNAPSHOT_MAX_NDIM) {
            PyErr_Format(PyExc_ValueError, "_snapshot_encode: array '%s' has an unsupported dtype or ndim", name);
            goto done;
        }
        arr = (PyArrayObject *)PyArray_FROM_OTF(oarr, PyArray_TYPE((PyArrayObject *)oarr),
                                                NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | NPY_ARRAY_NOTSWAPPED);
        if (arr == NULL) goto done;
        keep[nkeep++] = arr;
        memcpy(sec[i + 1].name, name, (size_t)nl);
        sec[i + 1].dtype = code;
        sec[i + 1].ndim = PyArray_NDIM(arr);
        for (d = 0; d < PyArray_NDIM(arr); d++) sec[i + 1].shape[d] = (int64_t)PyArray_DIM(arr, d);
        sec[i + 1].data = (const unsigned char *)PyArray_DATA(arr);
        sec[i + 1].nbytes = (size_t)PyArray_NBYTES(arr);
    }
    ath_error_clear(&err);
    st = ath_snapshot_encode(sec, (size_t)n + 1, &out, &out_len, &err);
    if (st != ATH_OK) {
        athpy_raise(&err);
        goto done;
    }
    res = PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)out_len);
    ath_free(out);
done:
    for (i = 0; i < nkeep; i++) Py_DECREF(keep[i]);
    PyMem_Free(keep);
    PyMem_Free(sec);
    Py_XDECREF(fast);
    return res;
}

/* _snapshot_decode(data: bytes, source: str) -> (True, meta bytes, [(name, ndarray)])
 * or (False, problem name, message) */
static PyObject *snap_decode(PyObject *self, PyObject *args) {
    Py_buffer buf;
    const char *source;
    ath_snap_section *sec = NULL;
    size_t n = 0, i;
    ath_snap_problem problem = ATH_SNAP_FINE;
    ath_error err;
    ath_status st;
    PyObject *list = NULL, *meta = NULL, *res = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*s:_snapshot_decode", &buf, &source)) return NULL;
    ath_error_clear(&err);
    st = ath_snapshot_parse(buf.buf, (size_t)buf.len, source, &sec, &n, &problem, &err);
    if (st != ATH_OK) {
        PyBuffer_Release(&buf);
        if (st == ATH_ERR_NOMEM) return athpy_raise(&err);
        return Py_BuildValue("(Oss)", Py_False, ath_snap_problem_name(problem), err.message);
    }
    list = PyList_New(0);
    if (list == NULL) goto done;
    for (i = 0; i < n; i++) {
        if (sec[i].is_json) {
            Py_XSETREF(meta, PyBytes_FromStringAndSize((const char *)sec[i].data, (Py_ssize_t)sec[i].nbytes));
            if (meta == NULL) goto done;
        } else {
            npy_intp dims[ATH_SNAPSHOT_MAX_NDIM];
            PyObject *arr, *item;
            int d;
            for (d = 0; d < sec[i].ndim; d++) dims[d] = (npy_intp)sec[i].shape[d];
            arr = PyArray_SimpleNew(sec[i].ndim, dims, numpy_type(sec[i].dtype));
            if (arr == NULL) goto done;
            if (sec[i].nbytes) memcpy(PyArray_DATA((PyArrayObject *)arr), sec[i].data, sec[i].nbytes);
            item = Py_BuildValue("(sN)", sec[i].name, arr);
            if (item == NULL || PyList_Append(list, item) < 0) {
                Py_XDECREF(item);
                goto done;
            }
            Py_DECREF(item);
        }
    }
    res = Py_BuildValue("(OOO)", Py_True, meta, list);
done:
    Py_XDECREF(meta);
    Py_XDECREF(list);
    ath_free(sec);
    PyBuffer_Release(&buf);
    return res;
}

static PyObject *snap_write_file(PyObject *self, PyObject *args) {
    PyObject *opath = NULL;
    Py_buffer buf;
    ath_error err;
    ath_status st;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&y*:_snapshot_write_file", PyUnicode_FSConverter, &opath, &buf)) return NULL;
    ath_error_clear(&err);
    Py_BEGIN_ALLOW_THREADS
    st = ath_snapshot_write_file(PyBytes_AS_STRING(opath), buf.buf, (size_t)buf.len, &err);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    Py_DECREF(opath);
    if (st != ATH_OK) {
        PyErr_SetString(PyExc_OSError, err.message);
        return NULL;
    }
    Py_RETURN_NONE;
}

#define KW (PyCFunction)(void (*)(void))
PyMethodDef athpy_snapshot_methods[] = {
    {"_snapshot_encode", snap_encode, METH_VARARGS,
     "_snapshot_encode(meta_json: bytes, arrays: [(name, ndarray)]) -> bytes (docs/snapshots.md)."},
    {"_snapshot_decode", snap_decode, METH_VARARGS,
     "_snapshot_decode(data, source) -> (True, meta_json, [(name, ndarray)]) or (False, problem, message)."},
    {"_snapshot_write_file", snap_write_file, METH_VARARGS,
     "_snapshot_write_file(path, data): atomic write (temp file, fsync, rename, fsync of the directory)."},
    {"_capsule_memory_get", snap_capsule_memory_get, METH_O,
     "_capsule_memory_get(model) -> float32 (n,) committed memory (h then c) or None."},
    {"_capsule_memory_set", snap_capsule_memory_set, METH_VARARGS,
     "_capsule_memory_set(model, flat): replaces the committed memory (applied at the next forward)."},
    {"_model_object", snap_model_object, METH_O,
     "_model_object(engine) -> what set_model / load_model installed (a model, callable or capsule), or None."},
    {"_set_step_count", snap_set_step_count, METH_VARARGS,
     "_set_step_count(engine, step): restores the step count of an Engine / DenseEngine (snapshots)."},
    {"_matter_in_roi", KW snap_matter_in_roi, METH_VARARGS | METH_KEYWORDS,
     "_matter_in_roi(engine, roi=None, z=0) -> (coords (N,3) int64, states (N,d) complex64): the matter "
     "inside roi (all matter for None); cost grows with the region and its matter."},
    {"_analyze", KW snap_analyze, METH_VARARGS | METH_KEYWORDS,
     "_analyze(engine, roi=None, z=0) -> dict (docs/snapshots.md#analysis), computed in C."},
    {NULL, NULL, 0, NULL}};
