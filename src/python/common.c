/* Argument conversion and error mapping shared by the extension's types. */
#include "ath_py.h"

#include <math.h>

PyObject *athpy_raise(const ath_error *err) {
    PyObject *exc;
    if (err->code == ATH_ERR_PYTHON) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, err->message[0] ? err->message : "unknown error");
        return NULL;
    }
    switch (err->code) {
    case ATH_ERR_NOMEM: exc = PyExc_MemoryError; break;
    case ATH_ERR_INVALID: exc = PyExc_ValueError; break;
    case ATH_ERR_NONFINITE: exc = PyExc_ValueError; break;
    case ATH_ERR_RANGE: exc = PyExc_OverflowError; break;
    case ATH_ERR_NOT_FOUND: exc = PyExc_KeyError; break;
    case ATH_ERR_IO: exc = PyExc_OSError; break;
    default: exc = PyExc_RuntimeError; break;
    }
    PyErr_SetString(exc, err->message[0] ? err->message : ath_status_name(err->code));
    return NULL;
}

static int check_component(long long v, int overflow, const char *argname) {
    if (overflow || v > ATH_COORD_LIMIT || v < -ATH_COORD_LIMIT) {
        PyErr_Format(PyExc_OverflowError, "%s: coordinate component out of range (|c| <= 2**60)",
                     argname);
        return -1;
    }
    return 0;
}

int athpy_parse_coord(PyObject *obj, const char *argname, ath_coord *out) {
    PyObject *seq;
    Py_ssize_t n, i;
    int64_t v[3] = {0, 0, 0};

    if (PyObject_TypeCheck(obj, &AthPyCoord3D_Type)) {
        /* Coord3D's layout: PyObject_HEAD then ath_coord (py_coord.c). */
        struct { PyObject_HEAD ath_coord c; } *co = (void *)obj;
        *out = co->c;
        return 0;
    }
    if (PyLong_Check(obj) || PyFloat_Check(obj) || PyUnicode_Check(obj) || PyBytes_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a Coord3D or a sequence of 2 or 3 ints, got %s",
                     argname, Py_TYPE(obj)->tp_name);
        return -1;
    }
    seq = PySequence_Fast(obj, "");
    if (seq == NULL) {
        PyErr_Clear();
        /* NumPy arrays and torch tensors are sequences; anything else is refused. */
        PyErr_Format(PyExc_TypeError, "%s: expected a Coord3D or a sequence of 2 or 3 ints, got %s",
                     argname, Py_TYPE(obj)->tp_name);
        return -1;
    }
    n = PySequence_Fast_GET_SIZE(seq);
    if (n != 2 && n != 3) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s: expected 2 or 3 coordinates, got %zd", argname, n);
        return -1;
    }
    for (i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *idx;
        int overflow = 0;
        long long val;
        if (PyFloat_Check(item) || PyBool_Check(item)) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_TypeError, "%s: coordinates must be integers, got %s", argname,
                         Py_TYPE(item)->tp_name);
            return -1;
        }
        idx = PyNumber_Index(item); /* accepts numpy / torch integer scalars */
        if (idx == NULL) {
            Py_DECREF(seq);
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: coordinates must be integers, got %s", argname,
                         Py_TYPE(item)->tp_name);
            return -1;
        }
        val = PyLong_AsLongLongAndOverflow(idx, &overflow);
        Py_DECREF(idx);
        if (val == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        if (check_component(val, overflow, argname) < 0) {
            Py_DECREF(seq);
            return -1;
        }
        v[i] = (int64_t)val;
    }
    Py_DECREF(seq);
    out->x = v[0];
    out->y = v[1];
    out->z = v[2];
    return 0;
}

/* Raises the error of a bad element of a coordinate list (called when NumPy
 * could not make an integer array of it): OverflowError for an int out of
 * range, TypeError for anything that is not an int.  Returns -1 if it raised,
 * 0 if every element is a valid component. */
static int coords_scan_objects(PyObject *obj, const char *argname) {
    PyArrayObject *objs = (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_OBJECT, NPY_ARRAY_IN_ARRAY);
    npy_intp i, n;
    PyObject **items;
    if (objs == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected an integer array-like of shape (N, 3) or (N, 2)",
                     argname);
        return -1;
    }
    n = PyArray_SIZE(objs);
    items = (PyObject **)PyArray_DATA(objs);
    for (i = 0; i < n; i++) {
        PyObject *item = items[i], *idx;
        long long v;
        int overflow = 0;
        if (item == NULL || PyFloat_Check(item) || PyBool_Check(item) || !PyIndex_Check(item)) {
            PyErr_Format(PyExc_TypeError, "%s: coordinates must be integers, got %s", argname,
                         item == NULL ? "NULL" : Py_TYPE(item)->tp_name);
            Py_DECREF(objs);
            return -1;
        }
        idx = PyNumber_Index(item);
        if (idx == NULL) {
            Py_DECREF(objs);
            return -1;
        }
        v = PyLong_AsLongLongAndOverflow(idx, &overflow);
        Py_DECREF(idx);
        if ((v == -1 && PyErr_Occurred()) || check_component(v, overflow, argname) < 0) {
            Py_DECREF(objs);
            return -1;
        }
    }
    Py_DECREF(objs);
    return 0;
}

PyArrayObject *athpy_coords_array(PyObject *obj, const char *argname) {
    PyArrayObject *arr0, *arr, *res;
    npy_intp n, i, dims[2];
    const int64_t *src;
    int64_t *dst;
    int ncol, t;

    /* Look at the shape and dtype before any copy, so that an absurd input
     * (e.g. a broadcast view of 10**9 rows) is refused without allocating. */
    arr0 = (PyArrayObject *)PyArray_FROM_O(obj);
    if (arr0 == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected an integer array-like of shape (N, 3) or (N, 2)",
                     argname);
        return NULL;
    }
    t = PyArray_TYPE(arr0);
    if (PyArray_NDIM(arr0) == 0 || (t != NPY_OBJECT && !PyTypeNum_ISNUMBER(t))) {
        PyErr_Format(PyExc_TypeError,
                     "%s: expected an integer array-like of shape (N, 3) or (N, 2), got %s", argname,
                     Py_TYPE(obj)->tp_name);
        Py_DECREF(arr0);
        return NULL;
    }
    if (PyArray_SIZE(arr0) == 0 &&
        (PyArray_NDIM(arr0) == 1 ||
         (PyArray_NDIM(arr0) == 2 && (PyArray_DIM(arr0, 1) == 3 || PyArray_DIM(arr0, 1) == 2)))) {
        /* an empty list is an empty batch */
        Py_DECREF(arr0);
        dims[0] = 0;
        dims[1] = 3;
        return (PyArrayObject *)PyArray_ZEROS(2, dims, NPY_INT64, 0);
    }
    if (PyArray_NDIM(arr0) != 2 || (PyArray_DIM(arr0, 1) != 3 && PyArray_DIM(arr0, 1) != 2)) {
        PyObject *shape = PyObject_GetAttrString((PyObject *)arr0, "shape");
        PyErr_Format(PyExc_ValueError, "%s: expected shape (N, 3) or (N, 2), got %S", argname,
                     shape != NULL ? shape : Py_None);
        Py_XDECREF(shape);
        Py_DECREF(arr0);
        return NULL;
    }
    n = PyArray_DIM(arr0, 0);
    ncol = (int)PyArray_DIM(arr0, 1);
    if (n > ATHPY_MAX_REGION_CELLS) {
        Py_DECREF(arr0);
        PyErr_Format(PyExc_ValueError, "%s: too many coordinates (%lld > %lld)", argname,
                     (long long)n, (long long)ATHPY_MAX_REGION_CELLS);
        return NULL;
    }
    if (PyTypeNum_ISUNSIGNED(t)) {
        /* check in uint64 before the cast to int64 can wrap */
        PyArrayObject *u = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)arr0, NPY_UINT64,
                                                             NPY_ARRAY_IN_ARRAY);
        const uint64_t *up;
        Py_DECREF(arr0);
        if (u == NULL) return NULL;
        up = (const uint64_t *)PyArray_DATA(u);
        for (i = 0; i < n * ncol; i++) {
            if (up[i] > (uint64_t)ATH_COORD_LIMIT) {
                Py_DECREF(u);
                PyErr_Format(PyExc_OverflowError,
                             "%s: coordinate component out of range at row %lld (|c| <= 2**60)",
                             argname, (long long)(i / ncol));
                return NULL;
            }
        }
        arr = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)u, NPY_INT64,
                                               NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
        Py_DECREF(u);
    } else if (PyTypeNum_ISINTEGER(t)) {
        arr = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)arr0, NPY_INT64, NPY_ARRAY_IN_ARRAY);
        Py_DECREF(arr0);
    } else if (!PyArray_Check(obj) && (t == NPY_OBJECT || PyTypeNum_ISFLOAT(t))) {
        /* a list with floats or ints beyond int64: report which */
        Py_DECREF(arr0);
        if (coords_scan_objects(obj, argname) < 0) return NULL;
        arr = (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_INT64,
                                               NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    } else {
        PyErr_Format(PyExc_TypeError, "%s: expected integer coordinates, got dtype %R", argname,
                     (PyObject *)PyArray_DESCR(arr0));
        Py_DECREF(arr0);
        return NULL;
    }
    if (arr == NULL) return NULL;
    if (PyArray_NDIM(arr) != 2 || PyArray_DIM(arr, 0) != n || PyArray_DIM(arr, 1) != ncol) {
        Py_DECREF(arr);
        PyErr_Format(PyExc_ValueError, "%s: inconsistent shape", argname);
        return NULL;
    }
    dims[0] = n;
    dims[1] = 3;
    res = (PyArrayObject *)PyArray_EMPTY(2, dims, NPY_INT64, 0);
    if (res == NULL) {
        Py_DECREF(arr);
        return NULL;
    }
    src = (const int64_t *)PyArray_DATA(arr);
    dst = (int64_t *)PyArray_DATA(res);
    for (i = 0; i < n; i++) {
        int k;
        for (k = 0; k < 3; k++) {
            int64_t v = k < ncol ? src[i * ncol + k] : 0;
            if (v > ATH_COORD_LIMIT || v < -ATH_COORD_LIMIT) {
                Py_DECREF(arr);
                Py_DECREF(res);
                PyErr_Format(PyExc_OverflowError,
                             "%s: coordinate component out of range at row %lld (|c| <= 2**60)",
                             argname, (long long)i);
                return NULL;
            }
            dst[i * 3 + k] = v;
        }
    }
    Py_DECREF(arr);
    return res;
}

PyArrayObject *athpy_states_array(PyObject *obj, const char *argname, npy_intp n, npy_intp d) {
    PyArrayObject *arr0, *arr;
    npy_intp i, total;
    const float *p;
    int t;

    /* shape and dtype first (no copy yet), then the conversion */
    arr0 = (PyArrayObject *)PyArray_FROM_O(obj);
    if (arr0 == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected a complex array-like", argname);
        return NULL;
    }
    t = PyArray_TYPE(arr0);
    if (!PyTypeNum_ISNUMBER(t) || PyTypeNum_ISBOOL(t)) {
        if (!(PyArray_SIZE(arr0) == 0 && n == 0)) {
            PyErr_Format(PyExc_TypeError, "%s: expected a numeric (complex) array, got dtype %R",
                         argname, (PyObject *)PyArray_DESCR(arr0));
            Py_DECREF(arr0);
            return NULL;
        }
    }
    if (n < 0) {
        if (PyArray_NDIM(arr0) != 1 || PyArray_DIM(arr0, 0) != d) {
            PyObject *shape = PyObject_GetAttrString((PyObject *)arr0, "shape");
            PyErr_Format(PyExc_ValueError, "%s: expected shape (%lld,) (d_state), got %S", argname,
                         (long long)d, shape != NULL ? shape : Py_None);
            Py_XDECREF(shape);
            Py_DECREF(arr0);
            return NULL;
        }
    } else if (PyArray_NDIM(arr0) != 2 || PyArray_DIM(arr0, 0) != n || PyArray_DIM(arr0, 1) != d) {
        if (n == 0 && PyArray_SIZE(arr0) == 0) {
            npy_intp dims[2] = {0, d};
            Py_DECREF(arr0);
            return (PyArrayObject *)PyArray_ZEROS(2, dims, NPY_COMPLEX64, 0);
        } else {
            PyObject *shape = PyObject_GetAttrString((PyObject *)arr0, "shape");
            PyErr_Format(PyExc_ValueError, "%s: expected shape (%lld, %lld), got %S", argname,
                         (long long)n, (long long)d, shape != NULL ? shape : Py_None);
            Py_XDECREF(shape);
            Py_DECREF(arr0);
            return NULL;
        }
    }
    arr = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)arr0, NPY_COMPLEX64,
                                           NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    Py_DECREF(arr0);
    if (arr == NULL) return NULL;
    total = PyArray_SIZE(arr) * 2;
    p = (const float *)PyArray_DATA(arr);
    for (i = 0; i < total; i++) {
        if (!isfinite(p[i])) {
            PyErr_Format(PyExc_ValueError, "%s: non-finite value (NaN or Inf) at element %lld",
                         argname, (long long)(i / 2));
            Py_DECREF(arr);
            return NULL;
        }
    }
    return arr;
}

int athpy_parse_roi(PyObject *obj, int64_t max_cells, int64_t roi[4]) {
    PyObject *seq;
    Py_ssize_t i;
    if (obj == NULL || obj == Py_None) {
        PyErr_SetString(PyExc_TypeError, "roi: expected (x0, y0, x1, y1)");
        return -1;
    }
    seq = PySequence_Fast(obj, "roi: expected a sequence (x0, y0, x1, y1)");
    if (seq == NULL) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "roi: expected a sequence (x0, y0, x1, y1)");
        return -1;
    }
    if (PySequence_Fast_GET_SIZE(seq) != 4) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "roi: expected 4 values (x0, y0, x1, y1)");
        return -1;
    }
    for (i = 0; i < 4; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *idx;
        int overflow = 0;
        long long v;
        if (PyFloat_Check(item)) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_TypeError, "roi: values must be integers");
            return -1;
        }
        idx = PyNumber_Index(item);
        if (idx == NULL) {
            Py_DECREF(seq);
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "roi: values must be integers");
            return -1;
        }
        v = PyLong_AsLongLongAndOverflow(idx, &overflow);
        Py_DECREF(idx);
        if (check_component(v, overflow, "roi") < 0) {
            Py_DECREF(seq);
            return -1;
        }
        roi[i] = (int64_t)v;
    }
    Py_DECREF(seq);
    if (roi[2] < roi[0] || roi[3] < roi[1]) {
        PyErr_Format(PyExc_ValueError, "roi: need x0 <= x1 and y0 <= y1, got (%lld, %lld, %lld, %lld)",
                     (long long)roi[0], (long long)roi[1], (long long)roi[2], (long long)roi[3]);
        return -1;
    }
    if ((double)(roi[2] - roi[0]) * (double)(roi[3] - roi[1]) > (double)max_cells) {
        PyErr_Format(PyExc_ValueError, "roi: region of %lld x %lld cells is too large (max %lld cells)",
                     (long long)(roi[2] - roi[0]), (long long)(roi[3] - roi[1]),
                     (long long)max_cells);
        return -1;
    }
    return 0;
}
