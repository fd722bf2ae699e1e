/* DenseEngine.generate_bulk_state: the original module's "holographic" bulk of a
 * real field (ath_bulk_stack in viz.c; the same blur as the holographic_bulk
 * visualisation).  It reads only its argument, not the engine's field. */
#include "ath_py.h"
#include "convert.h"

PyObject *athpy_dense_generate_bulk_state(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"base_field", "depth", NULL};
    PyObject *obase, *odepth, *res = NULL;
    PyArrayObject *base = NULL;
    int64_t depth, c, h, w;
    npy_intp dims[4];
    char shape[64];
    ath_error err;
    ath_status s;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:generate_bulk_state", kwlist, &obase, &odepth))
        return NULL;
    if (athpy_index(odepth, "depth", 1, ATHPY_MAX_REGION_CELLS, ATHPY_INT_RANGE_VALUE, &depth) < 0) return NULL;
    base = athpy_float32_array(obase, "base_field");
    if (base == NULL) return NULL;
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
        athpy_format_shape(shape, sizeof shape, PyArray_NDIM(base), PyArray_DIMS(base));
        PyErr_Format(PyExc_ValueError, "base_field: expected shape (H, W), (C, H, W) or (1, C, H, W), got %s", shape);
        goto done;
    }
    if ((double)depth * (double)c * (double)h * (double)w > (double)ATHPY_MAX_REGION_CELLS) {
        PyErr_Format(PyExc_ValueError, "depth: %lld layers of %lldx%lldx%lld exceed %lld values", (long long)depth,
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
    s = ath_bulk_stack((const float *)PyArray_DATA(base), c, h, w, depth,
                       (float *)PyArray_DATA((PyArrayObject *)res), &err);
    Py_END_ALLOW_THREADS
    if (s != ATH_OK) {
        Py_CLEAR(res);
        athpy_raise(&err);
    }
done:
    Py_DECREF(base);
    return res;
}
