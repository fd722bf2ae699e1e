/* DenseEngine.generate_bulk_state: the original module's "holographic" bulk of a
 * real field (ath_bulk_stack in viz.c; the same blur as the holographic_bulk
 * visualisation).  It reads only its argument, not the engine's field. */
#include "ath_py.h"

PyObject *athpy_dense_generate_bulk_state(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"base_field", "depth", NULL};
    PyObject *obase, *odepth, *raw = NULL, *res = NULL;
    PyArrayObject *base = NULL;
    long long depth;
    npy_intp dims[4];
    int64_t c, h, w;
    ath_error err;
    ath_status s;
    char kind;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:generate_bulk_state", kwlist, &obase, &odepth))
        return NULL;
    if (PyBool_Check(odepth) || PyFloat_Check(odepth) || !PyIndex_Check(odepth))
        return PyErr_Format(PyExc_TypeError, "depth: expected an int >= 1, got %s", Py_TYPE(odepth)->tp_name);
    depth = PyLong_AsLongLong(odepth);
    if (depth == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return PyErr_Format(PyExc_ValueError, "depth: out of range");
    }
    if (depth < 1) return PyErr_Format(PyExc_ValueError, "depth: must be >= 1, got %lld", depth);
    if (obase == Py_None || PyUnicode_Check(obase) || PyBytes_Check(obase))
        return PyErr_Format(PyExc_TypeError, "base_field: expected a real array-like, got %s",
                            Py_TYPE(obase)->tp_name);
    raw = PyArray_FROM_O(obase);
    if (raw == NULL) {
        PyErr_Clear();
        return PyErr_Format(PyExc_TypeError, "base_field: expected a real array-like");
    }
    kind = PyArray_DESCR((PyArrayObject *)raw)->kind;
    if (kind != 'i' && kind != 'u' && kind != 'f') {
        PyErr_Format(PyExc_TypeError, "base_field: expected a real (float) array, got dtype kind '%c'", kind);
        goto done;
    }
    base = (PyArrayObject *)PyArray_FROM_OTF(raw, NPY_FLOAT32, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    if (base == NULL) goto done;
    switch (PyArray_NDIM(base)) {
    case 2: c = 1; h = PyArray_DIM(base, 0); w = PyArray_DIM(base, 1); break;
    case 3: c = PyArray_DIM(base, 0); h = PyArray_DIM(base, 1); w = PyArray_DIM(base, 2); break;
    case 4:
        if (PyArray_DIM(base, 0) == 1) {
            c = PyArray_DIM(base, 1); h = PyArray_DIM(base, 2); w = PyArray_DIM(base, 3);
            break;
        }
        /* fall through */
    default:
        PyErr_Format(PyExc_ValueError, "base_field: expected shape (H, W), (C, H, W) or (1, C, H, W), got %d dims",
                     PyArray_NDIM(base));
        goto done;
    }
    if ((double)depth * (double)c * (double)h * (double)w > (double)ATHPY_MAX_REGION_CELLS) {
        PyErr_Format(PyExc_ValueError, "depth: %lld layers of %lldx%lldx%lld exceed %lld values", depth,
                     (long long)c, (long long)h, (long long)w, (long long)ATHPY_MAX_REGION_CELLS);
        goto done;
    }
    dims[0] = 1;
    dims[1] = (npy_intp)(depth * c);
    dims[2] = (npy_intp)h;
    dims[3] = (npy_intp)w;
    res = PyArray_SimpleNew(4, dims, NPY_FLOAT32);
    if (res == NULL) goto done;
    Py_BEGIN_ALLOW_THREADS
    s = ath_bulk_stack((const float *)PyArray_DATA(base), c, h, w, (int64_t)depth,
                       (float *)PyArray_DATA((PyArrayObject *)res), &err);
    Py_END_ALLOW_THREADS
    if (s != ATH_OK) {
        Py_CLEAR(res);
        athpy_raise(&err);
    }
done:
    Py_XDECREF(raw);
    Py_XDECREF(base);
    return res;
}
