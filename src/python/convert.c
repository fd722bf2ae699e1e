/* Argument conversion of the extension (convert.h). */
#include "convert.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ scalars */

static int not_an_int(PyObject *obj, const char *argname, const char *what) {
    PyErr_Format(PyExc_TypeError, "%s: %s, got %s", argname, what, Py_TYPE(obj)->tp_name);
    return -1;
}

/* obj -> long long with the overflow flag; refuses what is not an integer. */
static int index_value(PyObject *obj, const char *argname, int flags, const char *what,
                       long long *v, int *overflow) {
    PyObject *idx;
    if (PyFloat_Check(obj) || PyComplex_Check(obj) || PyUnicode_Check(obj) || PyBytes_Check(obj) ||
        (PyBool_Check(obj) && !(flags & ATHPY_INT_ALLOW_BOOL)) || !PyIndex_Check(obj))
        return not_an_int(obj, argname, what);
    idx = PyNumber_Index(obj);
    if (idx == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) return -1; /* e.g. MemoryError, KeyboardInterrupt */
        PyErr_Clear();
        return not_an_int(obj, argname, what);
    }
    *overflow = 0;
    *v = PyLong_AsLongLongAndOverflow(idx, overflow);
    Py_DECREF(idx);
    if (*v == -1 && PyErr_Occurred()) return -1;
    return 0;
}

int athpy_index(PyObject *obj, const char *argname, int64_t lo, int64_t hi, int flags, int64_t *out) {
    long long v;
    int overflow;
    if (index_value(obj, argname, flags, "expected an int", &v, &overflow) < 0) return -1;
    if (overflow || v < lo || v > hi) {
        PyObject *exc = (flags & ATHPY_INT_RANGE_VALUE) ? PyExc_ValueError : PyExc_OverflowError;
        PyErr_Format(exc, "%s: must be in [%lld, %lld], got %S", argname, (long long)lo, (long long)hi,
                     obj);
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

int athpy_uint64(PyObject *obj, const char *argname, PyObject *range_exc, uint64_t *out) {
    PyObject *idx;
    unsigned long long v;
    if (PyFloat_Check(obj) || PyBool_Check(obj) || PyUnicode_Check(obj) || !PyIndex_Check(obj))
        return not_an_int(obj, argname, "expected an int");
    idx = PyNumber_Index(obj);
    if (idx == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) return -1;
        PyErr_Clear();
        return not_an_int(obj, argname, "expected an int");
    }
    v = PyLong_AsUnsignedLongLong(idx);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(range_exc, "%s: must be in [0, 2**64), got %S", argname, idx);
        Py_DECREF(idx);
        return -1;
    }
    Py_DECREF(idx);
    *out = (uint64_t)v;
    return 0;
}

int athpy_real(PyObject *obj, const char *argname, int finite, double *out) {
    double x;
    if (PyUnicode_Check(obj) || PyBytes_Check(obj) || PyComplex_Check(obj) || PyBool_Check(obj) ||
        !(PyFloat_Check(obj) || PyLong_Check(obj) || PyNumber_Check(obj))) {
        PyErr_Format(PyExc_TypeError, "%s: expected a real number, got %s", argname, Py_TYPE(obj)->tp_name);
        return -1;
    }
    x = PyFloat_AsDouble(obj);
    if (x == -1.0 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError) && !PyErr_ExceptionMatches(PyExc_ValueError))
            return -1;
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected a real number, got %s", argname, Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (finite && !isfinite(x)) {
        PyErr_Format(PyExc_ValueError, "%s: must be finite, got %R", argname, obj);
        return -1;
    }
    *out = x;
    return 0;
}

int athpy_choice(PyObject *obj, const char *argname, const char *const *names, int n, int *out) {
    const char *s;
    int i;
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a str, got %s", argname, Py_TYPE(obj)->tp_name);
        return -1;
    }
    s = PyUnicode_AsUTF8(obj);
    if (s == NULL) return -1;
    for (i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    PyErr_Format(PyExc_ValueError, "%s: unknown value %R", argname, obj);
    return -1;
}

/* -------------------------------------------------------- coordinates */

static int component(PyObject *item, const char *argname, int64_t limit_hi, int64_t *out) {
    long long v;
    int overflow;
    if (PyBool_Check(item) || PyFloat_Check(item))
        return not_an_int(item, argname, "coordinates must be integers");
    if (index_value(item, argname, 0, "coordinates must be integers", &v, &overflow) < 0) return -1;
    if (overflow || v > limit_hi || v < -ATH_COORD_LIMIT) {
        PyErr_Format(PyExc_OverflowError, "%s: coordinate component out of range (|c| <= 2**60)", argname);
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

/* A new tuple of obj's items if it is a sized iterable of min..max items (the
 * tuple owns them, so Python code run while converting one item cannot free
 * another).  NULL with an exception. */
static PyObject *small_tuple(PyObject *obj, const char *argname, Py_ssize_t min, Py_ssize_t max,
                             const char *what) {
    PyObject *t;
    Py_ssize_t n;
    if (obj == NULL || obj == Py_None || PyLong_Check(obj) || PyFloat_Check(obj) || PyUnicode_Check(obj) ||
        PyBytes_Check(obj) || PyByteArray_Check(obj) || PyDict_Check(obj) || PyAnySet_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: expected %s, got %s", argname, what,
                     obj == NULL ? "nothing" : Py_TYPE(obj)->tp_name);
        return NULL;
    }
    /* the length first (torch tensors have one but no sequence slot), so that
     * a huge or endless iterable is not copied */
    n = PyObject_Size(obj);
    if (n < 0) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) return NULL;
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected %s, got %s", argname, what, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    if (n < min || n > max) goto bad_len;
    t = PySequence_Tuple(obj);
    if (t == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) return NULL;
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected %s, got %s", argname, what, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    n = PyTuple_GET_SIZE(t);
    if (n >= min && n <= max) return t;
    Py_DECREF(t);
bad_len:
    if (min == max)
        PyErr_Format(PyExc_ValueError, "%s: expected %zd values, got %zd", argname, min, n);
    else
        PyErr_Format(PyExc_ValueError, "%s: expected %zd or %zd coordinates, got %zd", argname, min, max, n);
    return NULL;
}

int athpy_parse_coord(PyObject *obj, const char *argname, ath_coord *out) {
    PyObject *t;
    Py_ssize_t n, i;
    int64_t v[3] = {0, 0, 0};

    if (PyObject_TypeCheck(obj, &AthPyCoord3D_Type)) {
        ath_coord c = athpy_coord_value(obj);
        if (!ath_coord_in_limits(c)) {
            PyErr_Format(PyExc_OverflowError, "%s: coordinate component out of range (|c| <= 2**60)", argname);
            return -1;
        }
        *out = c;
        return 0;
    }
    if (PyArray_Check(obj) && !PyTypeNum_ISINTEGER(PyArray_TYPE((PyArrayObject *)obj))) {
        PyErr_Format(PyExc_TypeError, "%s: coordinates must be integers, got dtype %R", argname,
                     (PyObject *)PyArray_DESCR((PyArrayObject *)obj));
        return -1;
    }
    t = small_tuple(obj, argname, 2, 3, "a Coord3D or a sequence of 2 or 3 ints");
    if (t == NULL) return -1;
    n = PyTuple_GET_SIZE(t);
    for (i = 0; i < n; i++) {
        if (component(PyTuple_GET_ITEM(t, i), argname, ATH_COORD_LIMIT, &v[i]) < 0) {
            Py_DECREF(t);
            return -1;
        }
    }
    Py_DECREF(t);
    out->x = v[0];
    out->y = v[1];
    out->z = v[2];
    return 0;
}

int athpy_parse_z(PyObject *obj, const char *argname, int64_t *out) {
    if (obj == NULL || obj == Py_None) {
        *out = 0;
        return 0;
    }
    if (PyBool_Check(obj) || PyFloat_Check(obj))
        return not_an_int(obj, argname, "expected an int");
    {
        long long v;
        int overflow;
        if (index_value(obj, argname, 0, "expected an int", &v, &overflow) < 0) return -1;
        if (overflow || v > ATH_COORD_LIMIT || v < -ATH_COORD_LIMIT) {
            PyErr_Format(PyExc_OverflowError, "%s: out of range (|%s| <= 2**60)", argname, argname);
            return -1;
        }
        *out = (int64_t)v;
    }
    return 0;
}

int athpy_parse_roi(PyObject *obj, int64_t max_cells, int64_t roi[4]) {
    PyObject *t;
    Py_ssize_t i;
    if (PyArray_Check(obj) && !PyTypeNum_ISINTEGER(PyArray_TYPE((PyArrayObject *)obj))) {
        PyErr_SetString(PyExc_TypeError, "roi: values must be integers");
        return -1;
    }
    t = small_tuple(obj, "roi", 4, 4, "a sequence (x0, y0, x1, y1)");
    if (t == NULL) return -1;
    for (i = 0; i < 4; i++) {
        /* half-open: an end may be one past the last addressable cell */
        if (component(PyTuple_GET_ITEM(t, i), "roi", i < 2 ? ATH_COORD_LIMIT : ATH_COORD_LIMIT + 1,
                      &roi[i]) < 0) {
            Py_DECREF(t);
            if (PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                PyErr_SetString(PyExc_TypeError, "roi: values must be integers");
            }
            return -1;
        }
    }
    Py_DECREF(t);
    if (roi[2] < roi[0] || roi[3] < roi[1]) {
        PyErr_Format(PyExc_ValueError, "roi: need x0 <= x1 and y0 <= y1, got (%lld, %lld, %lld, %lld)",
                     (long long)roi[0], (long long)roi[1], (long long)roi[2], (long long)roi[3]);
        return -1;
    }
    return athpy_roi_fits(roi, max_cells);
}

int athpy_roi_fits(const int64_t roi[4], int64_t max_cells) {
    if ((double)(roi[2] - roi[0]) * (double)(roi[3] - roi[1]) > (double)max_cells) {
        PyErr_Format(PyExc_ValueError, "roi: region of %lld x %lld cells is too large (max %lld cells)",
                     (long long)(roi[2] - roi[0]), (long long)(roi[3] - roi[1]), (long long)max_cells);
        return -1;
    }
    return 0;
}

/* Raises the error of a bad element of a coordinate list (called when NumPy
 * could not make an integer array of it): OverflowError for an int out of
 * range, TypeError for anything that is not an int.  Returns -1 if it raised,
 * 0 if every element is a valid component. */
static int coords_scan_objects(PyObject *obj, const char *argname) {
    /* a private copy: __index__ of one item cannot free another */
    PyArrayObject *objs = (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_OBJECT,
                                                           NPY_ARRAY_IN_ARRAY | NPY_ARRAY_ENSURECOPY);
    npy_intp i, n;
    if (objs == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError) && !PyErr_ExceptionMatches(PyExc_ValueError))
            return -1;
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected an integer array-like of shape (N, 3) or (N, 2)", argname);
        return -1;
    }
    n = PyArray_SIZE(objs);
    for (i = 0; i < n; i++) {
        PyObject *item = ((PyObject **)PyArray_DATA(objs))[i];
        int64_t v;
        if (item == NULL) {
            Py_DECREF(objs);
            PyErr_Format(PyExc_TypeError, "%s: coordinates must be integers", argname);
            return -1;
        }
        Py_INCREF(item);
        if (component(item, argname, ATH_COORD_LIMIT, &v) < 0) {
            Py_DECREF(item);
            Py_DECREF(objs);
            return -1;
        }
        Py_DECREF(item);
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
    arr0 = athpy_host_array(obj, argname);
    if (arr0 == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) return NULL;
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected an integer array-like of shape (N, 3) or (N, 2)", argname);
        return NULL;
    }
    t = PyArray_TYPE(arr0);
    if (PyArray_NDIM(arr0) == 0 || (t != NPY_OBJECT && !PyTypeNum_ISNUMBER(t))) {
        PyErr_Format(PyExc_TypeError, "%s: expected an integer array-like of shape (N, 3) or (N, 2), got %s",
                     argname, Py_TYPE(obj)->tp_name);
        Py_DECREF(arr0);
        return NULL;
    }
    if (PyArray_SIZE(arr0) == 0 &&
        (PyArray_NDIM(arr0) == 1 ||
         (PyArray_NDIM(arr0) == 2 && (PyArray_DIM(arr0, 1) == 3 || PyArray_DIM(arr0, 1) == 2)))) {
        Py_DECREF(arr0); /* an empty list is an empty batch */
        dims[0] = 0;
        dims[1] = 3;
        return (PyArrayObject *)PyArray_ZEROS(2, dims, NPY_INT64, 0);
    }
    if (PyArray_NDIM(arr0) != 2 || (PyArray_DIM(arr0, 1) != 3 && PyArray_DIM(arr0, 1) != 2)) {
        char shape[160];
        athpy_format_shape(shape, sizeof shape, PyArray_NDIM(arr0), PyArray_DIMS(arr0));
        PyErr_Format(PyExc_ValueError, "%s: expected shape (N, 3) or (N, 2), got %s", argname, shape);
        Py_DECREF(arr0);
        return NULL;
    }
    n = PyArray_DIM(arr0, 0);
    ncol = (int)PyArray_DIM(arr0, 1);
    if (n > ATHPY_MAX_REGION_CELLS) {
        Py_DECREF(arr0);
        PyErr_Format(PyExc_ValueError, "%s: too many coordinates (%lld > %lld)", argname, (long long)n,
                     (long long)ATHPY_MAX_REGION_CELLS);
        return NULL;
    }
    if (PyTypeNum_ISUNSIGNED(t)) {
        /* check in uint64 before the cast to int64 can wrap */
        PyArrayObject *u = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)arr0, NPY_UINT64, NPY_ARRAY_IN_ARRAY);
        const uint64_t *up;
        Py_DECREF(arr0);
        if (u == NULL) return NULL;
        up = (const uint64_t *)PyArray_DATA(u);
        for (i = 0; i < n * ncol; i++) {
            if (up[i] > (uint64_t)ATH_COORD_LIMIT) {
                Py_DECREF(u);
                PyErr_Format(PyExc_OverflowError, "%s: coordinate component out of range at row %lld (|c| <= 2**60)",
                             argname, (long long)(i / ncol));
                return NULL;
            }
        }
        arr = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)u, NPY_INT64, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
        Py_DECREF(u);
    } else if (PyTypeNum_ISINTEGER(t)) {
        arr = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)arr0, NPY_INT64, NPY_ARRAY_IN_ARRAY);
        Py_DECREF(arr0);
    } else if (!PyArray_Check(obj) && t == NPY_OBJECT) {
        /* a list with ints beyond int64 or non-ints: report which */
        Py_DECREF(arr0);
        if (coords_scan_objects(obj, argname) < 0) return NULL;
        arr = (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_INT64, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    } else {
        PyErr_Format(PyExc_TypeError, "%s: coordinates must be integers, got dtype %R", argname,
                     (PyObject *)PyArray_DESCR(arr0));
        Py_DECREF(arr0);
        return NULL;
    }
    if (arr == NULL) return NULL;
    if (PyArray_NDIM(arr) != 2 || PyArray_DIM(arr, 0) != n || PyArray_DIM(arr, 1) != ncol) {
        Py_DECREF(arr); /* a list that changed while it was converted */
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
                PyErr_Format(PyExc_OverflowError, "%s: coordinate component out of range at row %lld (|c| <= 2**60)",
                             argname, (long long)i);
                return NULL;
            }
            dst[i * 3 + k] = v;
        }
    }
    Py_DECREF(arr);
    return res;
}

/* ------------------------------------------------------------- arrays */

/* 1 if obj looks like a torch tensor (checked by attributes so that torch
 * need not be imported). */
static int is_tensor_like(PyObject *obj) {
    return !PyArray_Check(obj) && PyObject_HasAttrString(obj, "detach") && PyObject_HasAttrString(obj, "cpu") &&
           PyObject_HasAttrString(obj, "dtype");
}

/* Calls obj.name() and replaces *obj with the result (steals the old one). */
static int call_replace(PyObject **obj, const char *name) {
    PyObject *r = PyObject_CallMethod(*obj, name, NULL);
    Py_DECREF(*obj);
    *obj = r;
    return r == NULL ? -1 : 0;
}

/* A tensor on the host with a dtype NumPy has (new reference in *obj). */
static int tensor_to_host(PyObject **obj) {
    PyObject *dt;
    const char *name;
    if (call_replace(obj, "detach") < 0 || call_replace(obj, "cpu") < 0) return -1;
    if (PyObject_HasAttrString(*obj, "resolve_conj") && call_replace(obj, "resolve_conj") < 0) return -1;
    if (PyObject_HasAttrString(*obj, "resolve_neg") && call_replace(obj, "resolve_neg") < 0) return -1;
    dt = PyObject_GetAttrString(*obj, "dtype");
    if (dt == NULL) return -1;
    {
        PyObject *s = PyObject_Str(dt);
        Py_DECREF(dt);
        if (s == NULL) return -1;
        name = PyUnicode_AsUTF8(s);
        if (name == NULL) {
            Py_DECREF(s);
            return -1;
        }
        /* bfloat16 and complex32 widen exactly to float32 / complex64 */
        if (strcmp(name, "torch.bfloat16") == 0) {
            Py_DECREF(s);
            return call_replace(obj, "float");
        }
        if (strcmp(name, "torch.complex32") == 0 || strcmp(name, "torch.chalf") == 0) {
            Py_DECREF(s);
            return call_replace(obj, "cfloat");
        }
        Py_DECREF(s);
    }
    return 0;
}

PyArrayObject *athpy_host_array(PyObject *obj, const char *argname) {
    PyObject *src = obj;
    PyArrayObject *raw;
    Py_INCREF(src);
    if (is_tensor_like(src) && tensor_to_host(&src) < 0) {
        if (PyErr_ExceptionMatches(PyExc_MemoryError) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
            return NULL;
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: cannot copy the %s to the host", argname, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    raw = (PyArrayObject *)PyArray_FROM_O(src);
    Py_DECREF(src);
    if (raw == NULL) {
        if (PyErr_ExceptionMatches(PyExc_MemoryError) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
            return NULL;
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected an array-like, got %s", argname, Py_TYPE(obj)->tp_name);
    }
    return raw;
}

PyArrayObject *athpy_complex_array(PyObject *obj, const char *argname) {
    PyArrayObject *raw, *arr;
    npy_intp i, total;
    const float *p;
    int t;
    if (obj == Py_None || PyUnicode_Check(obj) || PyBytes_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a numeric (complex) array-like, got %s", argname,
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    raw = athpy_host_array(obj, argname);
    if (raw == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: expected a complex array-like, got %s", argname,
                         Py_TYPE(obj)->tp_name);
        }
        return NULL;
    }
    t = PyArray_TYPE(raw);
    if ((!PyTypeNum_ISNUMBER(t) || PyTypeNum_ISBOOL(t)) && PyArray_SIZE(raw) > 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a numeric (complex) array, got dtype %R", argname,
                     (PyObject *)PyArray_DESCR(raw));
        Py_DECREF(raw);
        return NULL;
    }
    if ((double)PyArray_SIZE(raw) > (double)ATHPY_MAX_ARRAY_VALUES) {
        PyErr_Format(PyExc_ValueError, "%s: too many values (%lld > %lld)", argname, (long long)PyArray_SIZE(raw),
                     (long long)ATHPY_MAX_ARRAY_VALUES);
        Py_DECREF(raw);
        return NULL;
    }
    arr = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)raw, NPY_COMPLEX64,
                                           NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST | NPY_ARRAY_ENSURECOPY);
    Py_DECREF(raw);
    if (arr == NULL) return NULL;
    total = PyArray_SIZE(arr) * 2;
    p = (const float *)PyArray_DATA(arr);
    for (i = 0; i < total; i++) {
        if (!isfinite(p[i])) {
            PyErr_Format(PyExc_ValueError, "%s: non-finite value (NaN or Inf) at element %lld", argname,
                         (long long)(i / 2));
            Py_DECREF(arr);
            return NULL;
        }
    }
    return arr;
}

int athpy_check_states(PyArrayObject **arr, const char *argname, npy_intp n, npy_intp d) {
    PyArrayObject *a = *arr;
    char shape[160];
    if (n < 0) {
        if (PyArray_NDIM(a) == 1 && PyArray_DIM(a, 0) == d) return 0;
        athpy_format_shape(shape, sizeof shape, PyArray_NDIM(a), PyArray_DIMS(a));
        PyErr_Format(PyExc_ValueError, "%s: expected shape (%lld,) (d_state), got %s", argname, (long long)d, shape);
        return -1;
    }
    if (PyArray_NDIM(a) == 2 && PyArray_DIM(a, 0) == n && PyArray_DIM(a, 1) == d) return 0;
    if (n == 0 && PyArray_SIZE(a) == 0) {
        npy_intp dims[2] = {0, d};
        PyArrayObject *z = (PyArrayObject *)PyArray_ZEROS(2, dims, NPY_COMPLEX64, 0);
        if (z == NULL) return -1;
        Py_SETREF(*arr, z);
        return 0;
    }
    athpy_format_shape(shape, sizeof shape, PyArray_NDIM(a), PyArray_DIMS(a));
    PyErr_Format(PyExc_ValueError, "%s: expected shape (%lld, %lld), got %s", argname, (long long)n, (long long)d,
                 shape);
    return -1;
}

PyArrayObject *athpy_float32_array(PyObject *obj, const char *argname) {
    PyArrayObject *raw, *arr;
    int t;
    raw = athpy_host_array(obj, argname);
    if (raw == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: expected a float array-like, got %s", argname, Py_TYPE(obj)->tp_name);
        }
        return NULL;
    }
    t = PyArray_TYPE(raw);
    if (!(PyTypeNum_ISFLOAT(t) || PyTypeNum_ISINTEGER(t)) || PyTypeNum_ISBOOL(t)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a real (float) array, got dtype %R", argname,
                     (PyObject *)PyArray_DESCR(raw));
        Py_DECREF(raw);
        return NULL;
    }
    if ((double)PyArray_SIZE(raw) > (double)ATHPY_MAX_ARRAY_VALUES) {
        PyErr_Format(PyExc_ValueError, "%s: too many values (%lld > %lld)", argname, (long long)PyArray_SIZE(raw),
                     (long long)ATHPY_MAX_ARRAY_VALUES);
        Py_DECREF(raw);
        return NULL;
    }
    arr = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)raw, NPY_FLOAT32, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    Py_DECREF(raw);
    return arr;
}

void athpy_format_shape(char *buf, size_t size, int ndim, const npy_intp *dims) {
    size_t used = 0;
    int i;
    used += (size_t)snprintf(buf + used, size - used, "(");
    for (i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i + 1 < ndim || ndim == 1 ? "%lld, " : "%lld",
                                 (long long)dims[i]);
    if (ndim == 1 && used >= 2 && used < size) used -= 1; /* "(n,)" */
    if (used < size) snprintf(buf + used, size - used, ")");
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

