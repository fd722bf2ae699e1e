/* ath_py.h — shared helpers of the atheria_core._core extension.
 *
 * Every extension source includes this header first.  module.c defines
 * ATH_PY_MODULE_MAIN before including it so that the NumPy C-API table is
 * defined exactly once. */
#ifndef ATHERIA_ATH_PY_H
#define ATHERIA_ATH_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL atheria_core_ARRAY_API
#ifndef ATH_PY_MODULE_MAIN
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include "atheria/common.h"
#include "atheria/coord.h"

/* ---- types defined across the extension's files ---- */
extern PyTypeObject AthPyCoord3D_Type;      /* py_coord.c */
extern PyTypeObject AthPySparseMap_Type;    /* py_sparse_map.c */
extern PyTypeObject AthPyHarmonicVacuum_Type; /* py_vacuum.c */
extern PyTypeObject AthPyZeroModel_Type;    /* py_models.c */
extern PyTypeObject AthPyConvModel_Type;    /* py_models.c */
extern PyTypeObject AthPyEngine_Type;       /* py_engine.c */
extern PyTypeObject AthPyDenseEngine_Type;  /* py_dense_engine.c */
extern PyMethodDef athpy_torch_methods[];    /* py_torch.c: LibTorch shim loading */

/* Raises the Python exception matching err->code with err->message
 * (ATH_ERR_PYTHON: leaves the pending exception in place).  Returns NULL. */
PyObject *athpy_raise(const ath_error *err);

/* Parses one coordinate: a Coord3D, or a sequence/array of 2 (z = 0) or 3
 * integers.  Checks |component| <= ATH_COORD_LIMIT.  Returns 0 on success,
 * -1 with an exception set (message names `argname`). */
int athpy_parse_coord(PyObject *obj, const char *argname, ath_coord *out);

/* Converts an array-like of coordinates to a new C-contiguous (N, 3) int64
 * array (an (N, 2) input gets z = 0; a single coordinate of shape (3,) or
 * (2,) is refused: use the scalar API).  Integer dtypes only.  Checks limits.
 * Returns a new reference or NULL with an exception set. */
PyArrayObject *athpy_coords_array(PyObject *obj, const char *argname);

/* Converts an array-like to a new C-contiguous complex64 array of shape
 * (n, d) (or (d,) when n < 0), refusing non-finite values.  Real inputs are
 * accepted (imaginary part 0).  Returns a new reference or NULL. */
PyArrayObject *athpy_states_array(PyObject *obj, const char *argname, npy_intp n, npy_intp d);

/* Parses a region (x0, y0, x1, y1) with x0 <= x1, y0 <= y1 and at most
 * max_cells cells.  Returns 0 or -1 with an exception set. */
int athpy_parse_roi(PyObject *obj, int64_t max_cells, int64_t roi[4]);

/* New Coord3D object (new reference). */
PyObject *athpy_coord_new(ath_coord c);

/* Largest region / bulk size accepted in one call (cells), so that an absurd
 * request is a ValueError rather than an attempt to allocate terabytes. */
#define ATHPY_MAX_REGION_CELLS ((int64_t)1 << 28)

#endif
