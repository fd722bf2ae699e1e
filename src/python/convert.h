/* convert.h — the one place where Python arguments become C values.
 *
 * Every method of the extension parses its arguments as plain objects
 * (PyArg "O") and converts them here, so that the rules and the error
 * messages are the same everywhere:
 *
 *   - integers: anything with __index__ (ints, NumPy / torch integer
 *     scalars); float, bool (unless allowed), str are TypeError; a value out
 *     of range is OverflowError (coordinates, int64) or ValueError (ranges);
 *   - coordinates: a Coord3D or a sequence of 2 (z = 0) or 3 integers with
 *     |c| <= ATH_COORD_LIMIT;
 *   - regions (roi): (x0, y0, x1, y1), half-open; because the coordinate
 *     range is closed, the ends may reach ATH_COORD_LIMIT + 1;
 *   - arrays: NumPy arrays, nested lists and torch tensors (also ones that
 *     require grad, are non-contiguous, live on a GPU, or have a dtype NumPy
 *     lacks such as bfloat16) are copied to the host first.
 *
 * Conversions may run Python code (__index__, __array__, iterators).  The
 * converters therefore never keep a borrowed reference across such code:
 * sequences are first copied into a tuple this code owns.  Callers convert
 * every argument before reading any size from the object they work on. */
#ifndef ATHERIA_PY_CONVERT_H
#define ATHERIA_PY_CONVERT_H

#include "ath_py.h"

/* Largest region / bulk size accepted in one call (cells), so that an absurd
 * request is a ValueError rather than an attempt to allocate terabytes. */
#define ATHPY_MAX_REGION_CELLS ((int64_t)1 << 28)
/* Largest array converted in one call (complex values): a DenseEngine state
 * of the largest grid the C library accepts fits below it. */
#define ATHPY_MAX_ARRAY_VALUES ((int64_t)1 << 32)

/* athpy_index flags */
#define ATHPY_INT_ALLOW_BOOL 1   /* True/False are 1/0 (else TypeError) */
#define ATHPY_INT_RANGE_VALUE 2  /* out of [lo, hi]: ValueError (else OverflowError) */

/* One integer in [lo, hi].  0, or -1 with an exception naming argname. */
int athpy_index(PyObject *obj, const char *argname, int64_t lo, int64_t hi, int flags, int64_t *out);
/* An unsigned 64-bit integer (seeds).  Out of [0, 2**64): `range_exc`. */
int athpy_uint64(PyObject *obj, const char *argname, PyObject *range_exc, uint64_t *out);
/* A real number (anything with __float__ or __index__; str, bytes, complex
 * and bool refused).  finite: refuse NaN/Inf (ValueError).  0 or -1. */
int athpy_real(PyObject *obj, const char *argname, int finite, double *out);
/* One of `names` (a str); *out gets its index.  0 or -1. */
int athpy_choice(PyObject *obj, const char *argname, const char *const *names, int n, int *out);

/* One coordinate.  0, or -1 with an exception (message names argname). */
int athpy_parse_coord(PyObject *obj, const char *argname, ath_coord *out);
/* A z plane (NULL: 0). */
int athpy_parse_z(PyObject *obj, const char *argname, int64_t *out);
/* A region (x0, y0, x1, y1) with x0 <= x1, y0 <= y1, each start within the
 * coordinate limit, each end within limit + 1, at most max_cells cells. */
int athpy_parse_roi(PyObject *obj, int64_t max_cells, int64_t roi[4]);
/* ValueError unless a parsed roi has at most max_cells cells.  0 or -1. */
int athpy_roi_fits(const int64_t roi[4], int64_t max_cells);
/* An array-like of coordinates as a new C-contiguous (N, 3) int64 array (an
 * (N, 2) input gets z = 0).  Integer dtypes only; N <= ATHPY_MAX_REGION_CELLS. */
PyArrayObject *athpy_coords_array(PyObject *obj, const char *argname);

/* obj as a host NumPy array (new reference), without a copy where NumPy
 * allows it: torch tensors go through detach().cpu() (and resolve_conj(),
 * and a float32 / complex64 cast for dtypes NumPy lacks).  NULL with an
 * exception naming argname. */
PyArrayObject *athpy_host_array(PyObject *obj, const char *argname);
/* A new C-contiguous complex64 copy of a numeric array-like (any shape;
 * real inputs get imaginary part 0), refusing non-finite values and more
 * than ATHPY_MAX_ARRAY_VALUES values.  NULL with an exception. */
PyArrayObject *athpy_complex_array(PyObject *obj, const char *argname);
/* Checks that arr (from athpy_complex_array) has shape (d,) when n < 0, or
 * (n, d); an empty input is an empty (0, d) batch when n == 0 (*arr is then
 * replaced).  0 or -1 (ValueError naming argname). */
int athpy_check_states(PyArrayObject **arr, const char *argname, npy_intp n, npy_intp d);
/* A new C-contiguous float32 copy of a real array-like (complex, bool and
 * object refused).  NULL with an exception. */
PyArrayObject *athpy_float32_array(PyObject *obj, const char *argname);

/* "(2, 3)"-style text of a shape. */
void athpy_format_shape(char *buf, size_t size, int ndim, const npy_intp *dims);

#endif
