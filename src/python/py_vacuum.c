/* HarmonicVacuum: the procedural vacuum of DESIGN §3.2 (immutable). */
#include "convert.h"

#include <math.h>

#include "atheria/vacuum.h"

typedef struct {
    PyObject_HEAD ath_vacuum vac;
} AthPyVacuum;

/* Releases the GIL for bulk work above this many complex values. */
#define VACUUM_NOGIL_MIN 4096

/* Any int64 (step, d_state before its range check). */
static int parse_int64(PyObject *obj, const char *name, int64_t *out) {
    return athpy_index(obj, name, INT64_MIN, INT64_MAX, 0, out);
}

static PyObject *vacuum_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"d_state", "seed", "strength", NULL};
    PyObject *od = NULL, *oseed = NULL;
    double strength = 0.1;
    int64_t d_state;
    unsigned long long seed = 0;
    ath_vacuum vac;
    ath_error err;
    AthPyVacuum *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|Od:HarmonicVacuum", kwlist, &od, &oseed,
                                     &strength))
        return NULL;
    if (parse_int64(od, "d_state", &d_state) < 0) return NULL;
    if (oseed != NULL) {
        uint64_t u;
        if (athpy_uint64(oseed, "seed", PyExc_OverflowError, &u) < 0) return NULL;
        seed = (unsigned long long)u;
    }
    if (d_state < 1 || d_state > ATH_MAX_D_STATE) {
        PyErr_Format(PyExc_ValueError, "d_state: must be in [1, %d], got %lld", ATH_MAX_D_STATE,
                     (long long)d_state);
        return NULL;
    }
    if (!isfinite(strength) || strength < 0.0) {
        PyObject *f = PyFloat_FromDouble(strength);
        if (f != NULL) {
            PyErr_Format(PyExc_ValueError, "strength: must be finite and >= 0, got %R", f);
            Py_DECREF(f);
        }
        return NULL;
    }
    if (ath_vacuum_init(&vac, d_state, (uint64_t)seed, strength, &err) != ATH_OK)
        return athpy_raise(&err);
    self = (AthPyVacuum *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->vac = vac;
    return (PyObject *)self;
}

static PyObject *vacuum_get_fluctuation(PyObject *op, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"coord", "step", NULL};
    AthPyVacuum *self = (AthPyVacuum *)op;
    PyObject *ocoord, *ostep = NULL;
    int64_t step = 0;
    ath_coord c;
    npy_intp dims[1];
    PyArrayObject *out;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:get_fluctuation", kwlist, &ocoord, &ostep))
        return NULL;
    if (athpy_parse_coord(ocoord, "coord", &c) < 0) return NULL;
    if (ostep != NULL && parse_int64(ostep, "step", &step) < 0) return NULL;
    dims[0] = (npy_intp)self->vac.d_state;
    out = (PyArrayObject *)PyArray_EMPTY(1, dims, NPY_COMPLEX64, 0);
    if (out == NULL) return NULL;
    ath_vacuum_cell(&self->vac, c, step, (ath_cf32 *)PyArray_DATA(out));
    return (PyObject *)out;
}

static PyObject *vacuum_region(PyObject *op, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"roi", "step", "z", NULL};
    AthPyVacuum *self = (AthPyVacuum *)op;
    PyObject *oroi, *ostep = NULL, *oz = NULL;
    int64_t roi[4], step = 0, z = 0;
    npy_intp dims[3];
    PyArrayObject *out;
    ath_error err;
    ath_status st;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OO:region", kwlist, &oroi, &ostep, &oz))
        return NULL;
    if (athpy_parse_roi(oroi, ATHPY_MAX_REGION_CELLS / self->vac.d_state, roi) < 0) return NULL;
    if (ostep != NULL && parse_int64(ostep, "step", &step) < 0) return NULL;
    if (athpy_parse_z(oz, "z", &z) < 0) return NULL;
    dims[0] = (npy_intp)(roi[3] - roi[1]);
    dims[1] = (npy_intp)(roi[2] - roi[0]);
    dims[2] = (npy_intp)self->vac.d_state;
    out = (PyArrayObject *)PyArray_EMPTY(3, dims, NPY_COMPLEX64, 0);
    if (out == NULL) return NULL;
    if (PyArray_SIZE(out) >= VACUUM_NOGIL_MIN) {
        Py_BEGIN_ALLOW_THREADS
        st = ath_vacuum_region(&self->vac, roi[0], roi[1], roi[2], roi[3], z, step,
                               (ath_cf32 *)PyArray_DATA(out), &err);
        Py_END_ALLOW_THREADS
    } else {
        st = ath_vacuum_region(&self->vac, roi[0], roi[1], roi[2], roi[3], z, step,
                               (ath_cf32 *)PyArray_DATA(out), &err);
    }
    if (st != ATH_OK) {
        Py_DECREF(out);
        return athpy_raise(&err);
    }
    return (PyObject *)out;
}

static PyObject *vacuum_cells(PyObject *op, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"coords", "step", NULL};
    AthPyVacuum *self = (AthPyVacuum *)op;
    PyObject *ocoords, *ostep = NULL;
    PyArrayObject *coords, *out;
    int64_t step = 0;
    npy_intp dims[2];
    ath_error err;
    ath_status st;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:cells", kwlist, &ocoords, &ostep))
        return NULL;
    if (ostep != NULL && parse_int64(ostep, "step", &step) < 0) return NULL;
    coords = athpy_coords_array(ocoords, "coords");
    if (coords == NULL) return NULL;
    dims[0] = PyArray_DIM(coords, 0);
    dims[1] = (npy_intp)self->vac.d_state;
    if ((int64_t)dims[0] > ATHPY_MAX_REGION_CELLS / self->vac.d_state) {
        Py_DECREF(coords);
        PyErr_Format(PyExc_ValueError, "coords: too many cells (%lld) for d_state %lld",
                     (long long)dims[0], (long long)self->vac.d_state);
        return NULL;
    }
    out = (PyArrayObject *)PyArray_EMPTY(2, dims, NPY_COMPLEX64, 0);
    if (out == NULL) {
        Py_DECREF(coords);
        return NULL;
    }
    if (PyArray_SIZE(out) >= VACUUM_NOGIL_MIN) {
        Py_BEGIN_ALLOW_THREADS
        st = ath_vacuum_cells(&self->vac, (size_t)dims[0], (const ath_coord *)PyArray_DATA(coords),
                              step, (ath_cf32 *)PyArray_DATA(out), &err);
        Py_END_ALLOW_THREADS
    } else {
        st = ath_vacuum_cells(&self->vac, (size_t)dims[0], (const ath_coord *)PyArray_DATA(coords),
                              step, (ath_cf32 *)PyArray_DATA(out), &err);
    }
    Py_DECREF(coords);
    if (st != ATH_OK) {
        Py_DECREF(out);
        return athpy_raise(&err);
    }
    return (PyObject *)out;
}

static PyObject *vacuum_repr(PyObject *op) {
    AthPyVacuum *self = (AthPyVacuum *)op;
    PyObject *strength = PyFloat_FromDouble(self->vac.strength), *r;
    if (strength == NULL) return NULL;
    r = PyUnicode_FromFormat("HarmonicVacuum(d_state=%lld, seed=%llu, strength=%R)",
                             (long long)self->vac.d_state, (unsigned long long)self->vac.seed,
                             strength);
    Py_DECREF(strength);
    return r;
}

static PyObject *vacuum_reduce(PyObject *op, PyObject *noargs) {
    AthPyVacuum *self = (AthPyVacuum *)op;
    (void)noargs;
    return Py_BuildValue("(O(LKd))", (PyObject *)Py_TYPE(op), (long long)self->vac.d_state,
                         (unsigned long long)self->vac.seed, self->vac.strength);
}

static PyObject *vacuum_get_d_state(PyObject *op, void *closure) {
    (void)closure;
    return PyLong_FromLongLong(((AthPyVacuum *)op)->vac.d_state);
}
static PyObject *vacuum_get_seed(PyObject *op, void *closure) {
    (void)closure;
    return PyLong_FromUnsignedLongLong(((AthPyVacuum *)op)->vac.seed);
}
static PyObject *vacuum_get_strength(PyObject *op, void *closure) {
    (void)closure;
    return PyFloat_FromDouble(((AthPyVacuum *)op)->vac.strength);
}

static PyGetSetDef vacuum_getset[] = {
    {"d_state", vacuum_get_d_state, NULL, "channels per cell (read-only)", NULL},
    {"seed", vacuum_get_seed, NULL, "seed, 0 <= seed < 2**64 (read-only)", NULL},
    {"strength", vacuum_get_strength, NULL, "noise strength (read-only)", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyMethodDef vacuum_methods[] = {
    {"get_fluctuation", (PyCFunction)(void (*)(void))vacuum_get_fluctuation,
     METH_VARARGS | METH_KEYWORDS, "get_fluctuation(coord, step=0) -> (d_state,) complex64"},
    {"region", (PyCFunction)(void (*)(void))vacuum_region, METH_VARARGS | METH_KEYWORDS,
     "region(roi, step=0, z=0) -> (y1-y0, x1-x0, d_state) complex64"},
    {"cells", (PyCFunction)(void (*)(void))vacuum_cells, METH_VARARGS | METH_KEYWORDS,
     "cells(coords, step=0) -> (N, d_state) complex64"},
    {"__reduce__", vacuum_reduce, METH_NOARGS, "pickle support"},
    {NULL, NULL, 0, NULL}};

PyTypeObject AthPyHarmonicVacuum_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atheria_core._core.HarmonicVacuum",
    .tp_doc = "HarmonicVacuum(d_state, seed=0, strength=0.1): deterministic vacuum fluctuations.",
    .tp_basicsize = sizeof(AthPyVacuum),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = vacuum_new,
    .tp_repr = vacuum_repr,
    .tp_methods = vacuum_methods,
    .tp_getset = vacuum_getset,
};
