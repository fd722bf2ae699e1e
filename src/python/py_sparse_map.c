/* SparseMap: the original module's two maps in one object.
 *
 *   scalar API: int64 key -> float value          (ath_scalarmap)
 *   cell API:   coord -> complex64 state (d_state) (ath_cellmap, created when
 *               d_state becomes known: constructor or first insertion)
 *
 * Bulk calls release the GIL.  A per-object lock serialises access to the C
 * maps: every method converts its arguments first (which may run Python
 * code), then takes the lock only around pure C work: no Python object is
 * created while the lock is held (an allocation can run the garbage
 * collector, and a finaliser could re-enter the map).
 *
 * d_state and the cmap pointer change only from "unknown" to set, and only
 * while the GIL is held, so reading them with the GIL held is safe. */
#include "convert.h"

#include "atheria/sparse_map.h"

typedef struct {
    PyObject_HEAD ath_scalarmap *smap;
    ath_cellmap *cmap; /* NULL until d_state is known */
    int64_t d_state;   /* 0 until known */
    PyThread_type_lock lock;
} AthPySparseMap;

/* Bulk calls release the GIL above this many cells. */
#define SPARSE_NOGIL_MIN 2048

/* ---- helpers ---- */

static void sm_lock(AthPySparseMap *self) {
    if (!PyThread_acquire_lock(self->lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(self->lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
}

static void sm_unlock(AthPySparseMap *self) { PyThread_release_lock(self->lock); }

/* int key (anything with __index__, floats refused; True/False are 1/0 as in a dict). */
static int parse_key(PyObject *obj, int64_t *out) {
    return athpy_index(obj, "key", INT64_MIN, INT64_MAX, ATHPY_INT_ALLOW_BOOL, out);
}

static int parse_value(PyObject *obj, double *out) {
    double v;
    if (PyUnicode_Check(obj) || PyBytes_Check(obj) || PyComplex_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "value: expected a float, got %s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    v = PyFloat_AsDouble(obj);
    if (v == -1.0 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "value: expected a float, got %s",
                         Py_TYPE(obj)->tp_name);
        }
        return -1;
    }
    *out = v;
    return 0;
}

/* d_state implied by a converted array of states whose last axis is d (ndim
 * dimensions expected).  Returns d >= 1, 0 for an empty batch, -1 on error. */
static int64_t infer_d_state(PyArrayObject *arr, int ndim, const char *argname) {
    int64_t d;
    int t;
    t = PyArray_TYPE(arr);
    if (PyArray_SIZE(arr) == 0 && ndim == 2) return 0;
    if (!PyTypeNum_ISNUMBER(t) || PyTypeNum_ISBOOL(t)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a numeric (complex) array-like, got dtype %R",
                     argname, (PyObject *)PyArray_DESCR(arr));
        return -1;
    }
    if (PyArray_NDIM(arr) != ndim) {
        PyErr_Format(PyExc_ValueError, "%s: expected %d dimension(s), got %d", argname, ndim,
                     PyArray_NDIM(arr));
        return -1;
    }
    d = (int64_t)PyArray_DIM(arr, ndim - 1);
    if (d < 1 || d > ATH_MAX_D_STATE) {
        PyErr_Format(PyExc_ValueError, "%s: d_state (last axis) must be in [1, %d], got %lld",
                     argname, ATH_MAX_D_STATE, (long long)d);
        return -1;
    }
    return d;
}

/* Creates the cell map for d (not yet attached).  Returns NULL with an exception. */
static ath_cellmap *new_cellmap(int64_t d) {
    ath_cellmap *m = NULL;
    ath_error err;
    if (ath_cellmap_create(d, &m, &err) != ATH_OK) {
        athpy_raise(&err);
        return NULL;
    }
    return m;
}

/* ---- construction ---- */

static PyObject *sm_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"d_state", NULL};
    PyObject *od = Py_None;
    AthPySparseMap *self;
    int64_t d = 0;
    ath_error err;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:SparseMap", kwlist, &od)) return NULL;
    if (od != Py_None && athpy_index(od, "d_state", 1, ATH_MAX_D_STATE, ATHPY_INT_RANGE_VALUE, &d) < 0)
        return NULL;
    self = (AthPySparseMap *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    if (ath_scalarmap_create(&self->smap, &err) != ATH_OK) {
        Py_DECREF(self);
        return athpy_raise(&err);
    }
    if (d > 0) {
        self->cmap = new_cellmap(d);
        if (self->cmap == NULL) {
            Py_DECREF(self);
            return NULL;
        }
        self->d_state = d;
    }
    return (PyObject *)self;
}

static void sm_dealloc(PyObject *op) {
    AthPySparseMap *self = (AthPySparseMap *)op;
    ath_scalarmap_destroy(self->smap);
    ath_cellmap_destroy(self->cmap);
    if (self->lock != NULL) PyThread_free_lock(self->lock);
    Py_TYPE(op)->tp_free(op);
}

static PyObject *sm_repr(PyObject *op) {
    AthPySparseMap *self = (AthPySparseMap *)op;
    size_t ns, nc;
    int64_t d;
    sm_lock(self);
    ns = ath_scalarmap_size(self->smap);
    nc = ath_cellmap_size(self->cmap);
    d = self->d_state;
    sm_unlock(self);
    if (d > 0)
        return PyUnicode_FromFormat("SparseMap(d_state=%lld, scalars=%zu, cells=%zu)", (long long)d,
                                    ns, nc);
    return PyUnicode_FromFormat("SparseMap(d_state=None, scalars=%zu, cells=0)", ns);
}

/* ---- scalar API ---- */

static PyObject *sm_insert(PyObject *op, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"key", "value", NULL};
    AthPySparseMap *self = (AthPySparseMap *)op;
    PyObject *okey, *oval;
    int64_t key;
    double value;
    ath_error err;
    ath_status st;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:insert", kwlist, &okey, &oval)) return NULL;
    if (parse_key(okey, &key) < 0 || parse_value(oval, &value) < 0) return NULL;
    sm_lock(self);
    st = ath_scalarmap_set(self->smap, key, value, &err);
    sm_unlock(self);
    if (st != ATH_OK) return athpy_raise(&err);
    Py_RETURN_NONE;
}

/* Looks key up; returns 1 (and *value) if present, 0 if absent. */
static int scalar_lookup(AthPySparseMap *self, int64_t key, double *value) {
    int found;
    sm_lock(self);
    found = ath_scalarmap_get(self->smap, key, value);
    sm_unlock(self);
    return found;
}

static PyObject *sm_contains_key(PyObject *op, PyObject *okey) {
    int64_t key;
    if (parse_key(okey, &key) < 0) return NULL;
    return PyBool_FromLong(scalar_lookup((AthPySparseMap *)op, key, NULL));
}

static PyObject *sm_get(PyObject *op, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"key", "default_value", NULL};
    PyObject *okey, *odef = NULL;
    int64_t key;
    double value = 0.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:get", kwlist, &okey, &odef)) return NULL;
    if (parse_key(okey, &key) < 0) return NULL;
    if (odef != NULL && parse_value(odef, &value) < 0) return NULL;
    scalar_lookup((AthPySparseMap *)op, key, &value);
    return PyFloat_FromDouble(value);
}

static PyObject *sm_remove(PyObject *op, PyObject *okey) {
    AthPySparseMap *self = (AthPySparseMap *)op;
    int64_t key;
    int removed;
    if (parse_key(okey, &key) < 0) return NULL;
    sm_lock(self);
    removed = ath_scalarmap_remove(self->smap, key);
    sm_unlock(self);
    return PyBool_FromLong(removed);
}

static PyObject *sm_clear(PyObject *op, PyObject *noargs) {
    AthPySparseMap *self = (AthPySparseMap *)op;
    (void)noargs;
    sm_lock(self);
    ath_scalarmap_clear(self->smap);
    ath_cellmap_clear(self->cmap);
    sm_unlock(self);
    Py_RETURN_NONE;
}

static Py_ssize_t sm_length(PyObject *op) {
    AthPySparseMap *self = (AthPySparseMap *)op;
    size_t n;
    sm_lock(self);
    n = ath_scalarmap_size(self->smap) + ath_cellmap_size(self->cmap);
    sm_unlock(self);
    return (Py_ssize_t)n;
}

static PyObject *sm_size(PyObject *op, PyObject *noargs) {
    (void)noargs;
    return PyLong_FromSsize_t(sm_length(op));
}

static PyObject *sm_empty(PyObject *op, PyObject *noargs) {
    (void)noargs;
    return PyBool_FromLong(sm_length(op) == 0);
}

/* keys() (which = 0) or values() (which = 1) as a new list. */
static PyObject *scalar_list(AthPySparseMap *self, int which) {
    size_t n, i, cap = 0;
    void *buf = NULL;
    PyObject *list;
    for (;;) { /* snapshot under the lock, build the list outside it */
        sm_lock(self);
        n = ath_scalarmap_size(self->smap);
        if (n <= cap) {
            if (n > 0) {
                if (which == 0)
                    memcpy(buf, ath_scalarmap_keys(self->smap), n * sizeof(int64_t));
                else
                    memcpy(buf, ath_scalarmap_values(self->smap), n * sizeof(double));
            }
            sm_unlock(self);
            break;
        }
        sm_unlock(self);
        PyMem_Free(buf);
        cap = n;
        buf = PyMem_Malloc(cap * 8);
        if (buf == NULL) return PyErr_NoMemory();
    }
    list = PyList_New((Py_ssize_t)n);
    for (i = 0; list != NULL && i < n; i++) {
        PyObject *o = which == 0 ? PyLong_FromLongLong(((const int64_t *)buf)[i])
                                 : PyFloat_FromDouble(((const double *)buf)[i]);
        if (o == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, o);
    }
    PyMem_Free(buf);
    return list;
}

static PyObject *sm_keys(PyObject *op, PyObject *noargs) {
    (void)noargs;
    return scalar_list((AthPySparseMap *)op, 0);
}

static PyObject *sm_values(PyObject *op, PyObject *noargs) {
    (void)noargs;
    return scalar_list((AthPySparseMap *)op, 1);
}

static PyObject *sm_subscript(PyObject *op, PyObject *okey) {
    int64_t key;
    double value;
    if (parse_key(okey, &key) < 0) return NULL;
    if (!scalar_lookup((AthPySparseMap *)op, key, &value)) {
        PyErr_SetObject(PyExc_KeyError, okey);
        return NULL;
    }
    return PyFloat_FromDouble(value);
}

static int sm_ass_subscript(PyObject *op, PyObject *okey, PyObject *oval) {
    AthPySparseMap *self = (AthPySparseMap *)op;
    int64_t key;
    double value;
    ath_error err;
    ath_status st;
    if (parse_key(okey, &key) < 0) return -1;
    if (oval == NULL) {
        int removed;
        sm_lock(self);
        removed = ath_scalarmap_remove(self->smap, key);
        sm_unlock(self);
        if (!removed) {
            PyErr_SetObject(PyExc_KeyError, okey);
            return -1;
        }
        return 0;
    }
    if (parse_value(oval, &value) < 0) return -1;
    sm_lock(self);
    st = ath_scalarmap_set(self->smap, key, value, &err);
    sm_unlock(self);
    if (st != ATH_OK) {
        athpy_raise(&err);
        return -1;
    }
    return 0;
}

static int cell_lookup(AthPySparseMap *self, ath_coord c) {
    int found;
    sm_lock(self);
    found = ath_cellmap_find(self->cmap, c) >= 0;
    sm_unlock(self);
    return found;
}

/* `key in map`: ints look in the scalar map, coordinates (Coord3D, tuples,
 * lists, arrays) in the cell map.  Keys that cannot be stored (out of range)
 * are simply absent. */
static int sm_sq_contains(PyObject *op, PyObject *key) {
    AthPySparseMap *self = (AthPySparseMap *)op;
    if (PyObject_TypeCheck(key, &AthPyCoord3D_Type) ||
        (PySequence_Check(key) && !PyUnicode_Check(key) && !PyBytes_Check(key) &&
         !PyByteArray_Check(key))) {
        ath_coord c;
        if (athpy_parse_coord(key, "key", &c) < 0) {
            if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Clear();
                return 0;
            }
            return -1;
        }
        return cell_lookup(self, c);
    }
    if (PyIndex_Check(key) && !PyFloat_Check(key)) {
        int64_t k;
        if (parse_key(key, &k) < 0) {
            if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Clear();
                return 0;
            }
            return -1;
        }
        return scalar_lookup(self, k, NULL);
    }
    PyErr_Format(PyExc_TypeError, "SparseMap keys are ints or coordinates, got %s",
                 Py_TYPE(key)->tp_name);
    return -1;
}

/* ---- cell API ---- */

static PyObject *sm_get_d_state(PyObject *op, void *closure) {
    AthPySparseMap *self = (AthPySparseMap *)op;
    int64_t d;
    (void)closure;
    sm_lock(self);
    d = self->d_state;
    sm_unlock(self);
    if (d <= 0) Py_RETURN_NONE;
    return PyLong_FromLongLong(d);
}

/* Under the lock: the map to insert d-wide states into, creating it (into
 * *fresh, not yet attached) if d_state is still unknown.  Returns NULL and
 * sets *st (ATH_ERR_INVALID: d mismatch, else the creation error). */
static ath_cellmap *target_map(AthPySparseMap *self, int64_t d, ath_cellmap **fresh,
                               ath_status *st, ath_error *err) {
    *fresh = NULL;
    if (self->cmap != NULL) {
        if (self->d_state != d) {
            *st = ath_error_set(err, ATH_ERR_INVALID,
                                "states: d_state is %lld, got %lld values per cell",
                                (long long)self->d_state, (long long)d);
            return NULL;
        }
        return self->cmap;
    }
    *st = ath_cellmap_create(d, fresh, err);
    return *st == ATH_OK ? *fresh : NULL;
}

static PyObject *sm_insert_tensor(PyObject *op, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"coord", "tensor", "state", NULL};
    AthPySparseMap *self = (AthPySparseMap *)op;
    PyObject *ocoord, *otensor = NULL, *ostate = NULL;
    PyArrayObject *arr;
    ath_cellmap *fresh = NULL, *target;
    ath_coord c;
    int64_t d;
    ath_error err;
    ath_status st = ATH_OK;

    /* insert_tensor(coord, tensor) as in the original module; state= is the older name */
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O$O:insert_tensor", kwlist, &ocoord, &otensor, &ostate))
        return NULL;
    if ((otensor == NULL) == (ostate == NULL))
        return PyErr_Format(PyExc_TypeError, "insert_tensor: expected the state as tensor= (or state=), once");
    if (otensor == NULL) otensor = ostate;
    if (athpy_parse_coord(ocoord, "coord", &c) < 0) return NULL;
    arr = athpy_complex_array(otensor, "state");
    if (arr == NULL) return NULL;
    /* d_state only after the conversions (they may run Python code) */
    sm_lock(self);
    d = self->d_state;
    sm_unlock(self);
    if (d <= 0) {
        d = infer_d_state(arr, 1, "state");
        if (d < 0) {
            Py_DECREF(arr);
            return NULL;
        }
    }
    if (athpy_check_states(&arr, "state", -1, (npy_intp)d) < 0) {
        Py_DECREF(arr);
        return NULL;
    }
    sm_lock(self);
    target = target_map(self, d, &fresh, &st, &err);
    if (target != NULL) {
        st = ath_cellmap_set(target, c, (const ath_cf32 *)PyArray_DATA(arr), &err);
        if (st == ATH_OK && fresh != NULL) {
            self->cmap = fresh;
            self->d_state = d;
        } else if (st != ATH_OK) {
            ath_cellmap_destroy(fresh);
        }
    }
    sm_unlock(self);
    Py_DECREF(arr);
    if (st != ATH_OK) return athpy_raise(&err);
    Py_RETURN_NONE;
}

static PyObject *sm_contains_coord(PyObject *op, PyObject *ocoord) {
    ath_coord c;
    if (athpy_parse_coord(ocoord, "coord", &c) < 0) return NULL;
    return PyBool_FromLong(cell_lookup((AthPySparseMap *)op, c));
}

static PyObject *sm_get_tensor(PyObject *op, PyObject *ocoord) {
    AthPySparseMap *self = (AthPySparseMap *)op;
    ath_coord c;
    const ath_cf32 *s = NULL;
    npy_intp dims[1];
    PyArrayObject *out = NULL;
    if (athpy_parse_coord(ocoord, "coord", &c) < 0) return NULL;
    if (self->d_state > 0) {
        dims[0] = (npy_intp)self->d_state;
        out = (PyArrayObject *)PyArray_EMPTY(1, dims, NPY_COMPLEX64, 0);
        if (out == NULL) return NULL;
        sm_lock(self);
        s = ath_cellmap_get(self->cmap, c);
        if (s != NULL) memcpy(PyArray_DATA(out), s, (size_t)self->d_state * sizeof(ath_cf32));
        sm_unlock(self);
    }
    if (s == NULL) {
        PyObject *t = Py_BuildValue("(LLL)", (long long)c.x, (long long)c.y, (long long)c.z);
        Py_XDECREF(out);
        if (t != NULL) {
            PyErr_SetObject(PyExc_KeyError, t);
            Py_DECREF(t);
        }
        return NULL;
    }
    return (PyObject *)out;
}

static PyObject *sm_remove_coord(PyObject *op, PyObject *ocoord) {
    AthPySparseMap *self = (AthPySparseMap *)op;
    ath_coord c;
    int removed;
    if (athpy_parse_coord(ocoord, "coord", &c) < 0) return NULL;
    sm_lock(self);
    removed = ath_cellmap_remove(self->cmap, c);
    sm_unlock(self);
    return PyBool_FromLong(removed);
}

static PyObject *sm_coord_keys(PyObject *op, PyObject *noargs) {
    AthPySparseMap *self = (AthPySparseMap *)op;
    size_t n, i, cap = 0;
    ath_coord *buf = NULL;
    PyObject *list;
    (void)noargs;
    for (;;) { /* snapshot under the lock, build the list outside it */
        sm_lock(self);
        n = ath_cellmap_size(self->cmap);
        if (n <= cap) {
            if (n > 0) memcpy(buf, ath_cellmap_coords(self->cmap), n * sizeof *buf);
            sm_unlock(self);
            break;
        }
        sm_unlock(self);
        PyMem_Free(buf);
        cap = n;
        buf = (ath_coord *)PyMem_Malloc(cap * sizeof *buf);
        if (buf == NULL) return PyErr_NoMemory();
    }
    list = PyList_New((Py_ssize_t)n);
    for (i = 0; list != NULL && i < n; i++) {
        PyObject *c = athpy_coord_new(buf[i]);
        if (c == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, c);
    }
    PyMem_Free(buf);
    return list;
}

static PyObject *sm_cell_count(PyObject *op, PyObject *noargs) {
    AthPySparseMap *self = (AthPySparseMap *)op;
    size_t n;
    (void)noargs;
    sm_lock(self);
    n = ath_cellmap_size(self->cmap);
    sm_unlock(self);
    return PyLong_FromSize_t(n);
}

/* ---- bulk ---- */

static PyObject *sm_insert_many(PyObject *op, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"coords", "states", NULL};
    AthPySparseMap *self = (AthPySparseMap *)op;
    PyObject *ocoords, *ostates;
    PyArrayObject *coords, *states;
    ath_cellmap *fresh = NULL, *target;
    npy_intp n;
    int64_t d;
    ath_error err;
    ath_status st = ATH_OK;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:insert_many", kwlist, &ocoords, &ostates))
        return NULL;
    coords = athpy_coords_array(ocoords, "coords");
    if (coords == NULL) return NULL;
    states = athpy_complex_array(ostates, "states");
    if (states == NULL) {
        Py_DECREF(coords);
        return NULL;
    }
    n = PyArray_DIM(coords, 0);
    sm_lock(self);
    d = self->d_state;
    sm_unlock(self);
    if (d <= 0) {
        d = infer_d_state(states, 2, "states");
        if (d < 0) {
            Py_DECREF(coords);
            Py_DECREF(states);
            return NULL;
        }
        if (d == 0) { /* empty batch, d_state still unknown */
            Py_DECREF(coords);
            Py_DECREF(states);
            if (n != 0) {
                PyErr_Format(PyExc_ValueError,
                             "states: expected shape (%lld, d_state), got an empty array",
                             (long long)n);
                return NULL;
            }
            Py_RETURN_NONE;
        }
    }
    if (athpy_check_states(&states, "states", n, (npy_intp)d) < 0) {
        Py_DECREF(coords);
        Py_DECREF(states);
        return NULL;
    }
    if (n == 0) {
        Py_DECREF(coords);
        Py_DECREF(states);
        Py_RETURN_NONE;
    }
    sm_lock(self);
    target = target_map(self, d, &fresh, &st, &err);
    if (target != NULL) {
        const ath_coord *cp = (const ath_coord *)PyArray_DATA(coords);
        const ath_cf32 *sp = (const ath_cf32 *)PyArray_DATA(states);
        if (n >= SPARSE_NOGIL_MIN) {
            Py_BEGIN_ALLOW_THREADS
            st = ath_cellmap_set_many(target, (size_t)n, cp, sp, &err);
            Py_END_ALLOW_THREADS
        } else {
            st = ath_cellmap_set_many(target, (size_t)n, cp, sp, &err);
        }
        if (st == ATH_OK && fresh != NULL) {
            self->cmap = fresh;
            self->d_state = d;
        } else if (st != ATH_OK) {
            ath_cellmap_destroy(fresh);
        }
    }
    sm_unlock(self);
    Py_DECREF(coords);
    Py_DECREF(states);
    if (st != ATH_OK) return athpy_raise(&err);
    Py_RETURN_NONE;
}

static PyObject *sm_get_many(PyObject *op, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"coords", NULL};
    AthPySparseMap *self = (AthPySparseMap *)op;
    PyObject *ocoords, *res = NULL;
    PyArrayObject *coords, *states = NULL, *found = NULL;
    npy_intp n, dims[2];
    int64_t d;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:get_many", kwlist, &ocoords)) return NULL;
    coords = athpy_coords_array(ocoords, "coords");
    if (coords == NULL) return NULL;
    /* d_state only after the conversion (it may run Python code that inserts
     * the first cell); it cannot change once known */
    d = self->d_state > 0 ? self->d_state : 0;
    n = PyArray_DIM(coords, 0);
    if (d > 0 && (int64_t)n > ATHPY_MAX_REGION_CELLS / d) {
        PyErr_Format(PyExc_ValueError, "coords: too many cells (%lld) for d_state %lld",
                     (long long)n, (long long)d);
        goto done;
    }
    dims[0] = n;
    dims[1] = (npy_intp)d;
    states = (PyArrayObject *)PyArray_ZEROS(2, dims, NPY_COMPLEX64, 0);
    found = (PyArrayObject *)PyArray_ZEROS(1, dims, NPY_BOOL, 0);
    if (states == NULL || found == NULL) goto done;
    if (d > 0 && n > 0) {
        const ath_coord *cp = (const ath_coord *)PyArray_DATA(coords);
        ath_cf32 *sp = (ath_cf32 *)PyArray_DATA(states);
        uint8_t *fp = (uint8_t *)PyArray_DATA(found);
        sm_lock(self);
        if (n >= SPARSE_NOGIL_MIN) {
            Py_BEGIN_ALLOW_THREADS
            ath_cellmap_get_many(self->cmap, (size_t)n, cp, sp, fp);
            Py_END_ALLOW_THREADS
        } else {
            ath_cellmap_get_many(self->cmap, (size_t)n, cp, sp, fp);
        }
        sm_unlock(self);
    }
    res = PyTuple_Pack(2, (PyObject *)states, (PyObject *)found);
done:
    Py_DECREF(coords);
    Py_XDECREF(states);
    Py_XDECREF(found);
    return res;
}

static PyObject *sm_cells(PyObject *op, PyObject *noargs) {
    AthPySparseMap *self = (AthPySparseMap *)op;
    size_t n;
    npy_intp cdims[2], sdims[2];
    PyArrayObject *coords = NULL, *states = NULL;
    PyObject *res;
    int64_t d = 0;
    (void)noargs;
    for (;;) { /* allocate outside the lock, copy under it if the sizes still match */
        sm_lock(self);
        n = ath_cellmap_size(self->cmap);
        if (coords != NULL && (size_t)PyArray_DIM(coords, 0) == n && self->d_state == d) {
            if (n > 0) {
                memcpy(PyArray_DATA(coords), ath_cellmap_coords(self->cmap), n * sizeof(ath_coord));
                memcpy(PyArray_DATA(states), ath_cellmap_states(self->cmap),
                       n * (size_t)d * sizeof(ath_cf32));
            }
            sm_unlock(self);
            break;
        }
        d = self->d_state > 0 ? self->d_state : 0; /* an allocation below may run a finaliser */
        sm_unlock(self);
        Py_XDECREF(coords);
        Py_XDECREF(states);
        cdims[0] = sdims[0] = (npy_intp)n;
        cdims[1] = 3;
        sdims[1] = (npy_intp)d;
        coords = (PyArrayObject *)PyArray_EMPTY(2, cdims, NPY_INT64, 0);
        states = (PyArrayObject *)PyArray_EMPTY(2, sdims, NPY_COMPLEX64, 0);
        if (coords == NULL || states == NULL) {
            Py_XDECREF(coords);
            Py_XDECREF(states);
            return NULL;
        }
    }
    res = PyTuple_Pack(2, (PyObject *)coords, (PyObject *)states);
    Py_DECREF(coords);
    Py_DECREF(states);
    return res;
}

/* ---- keyword forms of the one-argument methods (the fallback's signatures) ---- */

#define ONE_ARG_KW(fn, impl, name, arg)                                                            \
    static PyObject *fn(PyObject *op, PyObject *args, PyObject *kwargs) {                          \
        static char *kwlist[] = {arg, NULL};                                                       \
        PyObject *o;                                                                               \
        if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:" name, kwlist, &o)) return NULL;        \
        return impl(op, o);                                                                        \
    }
ONE_ARG_KW(sm_contains_kw, sm_contains_key, "contains", "key")
ONE_ARG_KW(sm_remove_kw, sm_remove, "remove", "key")
ONE_ARG_KW(sm_contains_coord_kw, sm_contains_coord, "contains_coord", "coord")
ONE_ARG_KW(sm_get_tensor_kw, sm_get_tensor, "get_tensor", "coord")
ONE_ARG_KW(sm_remove_coord_kw, sm_remove_coord, "remove_coord", "coord")

/* ---- type ---- */

static PyMethodDef sm_methods[] = {
    {"insert", (PyCFunction)(void (*)(void))sm_insert, METH_VARARGS | METH_KEYWORDS,
     "insert(key, value): scalar map key (int) -> value (float)"},
    {"contains", (PyCFunction)(void (*)(void))sm_contains_kw, METH_VARARGS | METH_KEYWORDS, "contains(key) -> bool (scalar map)"},
    {"get", (PyCFunction)(void (*)(void))sm_get, METH_VARARGS | METH_KEYWORDS,
     "get(key, default_value=0.0) -> float (scalar map)"},
    {"remove", (PyCFunction)(void (*)(void))sm_remove_kw, METH_VARARGS | METH_KEYWORDS, "remove(key) -> bool: True if the key was present"},
    {"clear", sm_clear, METH_NOARGS, "clear(): clears both the scalar and the cell maps"},
    {"size", sm_size, METH_NOARGS, "size() -> scalar entries + cells"},
    {"empty", sm_empty, METH_NOARGS, "empty() -> bool"},
    {"keys", sm_keys, METH_NOARGS, "keys() -> list of scalar keys"},
    {"values", sm_values, METH_NOARGS, "values() -> list of scalar values"},
    {"insert_tensor", (PyCFunction)(void (*)(void))sm_insert_tensor, METH_VARARGS | METH_KEYWORDS,
     "insert_tensor(coord, tensor): stores a (d_state,) complex64 state (state= is accepted too)"},
    {"contains_coord", (PyCFunction)(void (*)(void))sm_contains_coord_kw, METH_VARARGS | METH_KEYWORDS, "contains_coord(coord) -> bool"},
    {"get_tensor", (PyCFunction)(void (*)(void))sm_get_tensor_kw, METH_VARARGS | METH_KEYWORDS, "get_tensor(coord) -> (d_state,) complex64; KeyError if absent"},
    {"remove_coord", (PyCFunction)(void (*)(void))sm_remove_coord_kw, METH_VARARGS | METH_KEYWORDS, "remove_coord(coord) -> bool"},
    {"coord_keys", sm_coord_keys, METH_NOARGS, "coord_keys() -> list of Coord3D"},
    {"cell_count", sm_cell_count, METH_NOARGS, "cell_count() -> int"},
    {"insert_many", (PyCFunction)(void (*)(void))sm_insert_many, METH_VARARGS | METH_KEYWORDS,
     "insert_many(coords (N,3), states (N,d)): all-or-nothing"},
    {"get_many", (PyCFunction)(void (*)(void))sm_get_many, METH_VARARGS | METH_KEYWORDS,
     "get_many(coords) -> (states (N,d) complex64, found (N,) bool)"},
    {"cells", sm_cells, METH_NOARGS, "cells() -> (coords (N,3) int64, states (N,d) complex64)"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef sm_getset[] = {
    {"d_state", sm_get_d_state, NULL, "cell state length, or None until known", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyMappingMethods sm_as_mapping = {
    .mp_length = sm_length,
    .mp_subscript = sm_subscript,
    .mp_ass_subscript = sm_ass_subscript,
};

static PySequenceMethods sm_as_sequence = {
    .sq_contains = sm_sq_contains,
};

PyTypeObject AthPySparseMap_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atheria_core._core.SparseMap",
    .tp_doc = "SparseMap(d_state=None): scalar map (int -> float) and cell map (coord -> state).",
    .tp_basicsize = sizeof(AthPySparseMap),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = sm_new,
    .tp_dealloc = sm_dealloc,
    .tp_repr = sm_repr,
    .tp_as_mapping = &sm_as_mapping,
    .tp_as_sequence = &sm_as_sequence,
    .tp_methods = sm_methods,
    .tp_getset = sm_getset,
};
