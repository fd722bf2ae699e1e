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
#include "atheria/model.h"
#include "atheria/viz.h"

/* ---- types defined across the extension's files ---- */
extern PyTypeObject AthPyCoord3D_Type;      /* py_coord.c */
extern PyTypeObject AthPySparseMap_Type;    /* py_sparse_map.c */
extern PyTypeObject AthPyHarmonicVacuum_Type; /* py_vacuum.c */
extern PyTypeObject AthPyZeroModel_Type;    /* model_zero.c */
extern PyTypeObject AthPyConvModel_Type;    /* model_conv.c */
extern PyTypeObject AthPyEngineBase_Type;   /* py_engine_base.c */
extern PyTypeObject AthPyEngine_Type;       /* py_engine.c */
extern PyTypeObject AthPyDenseEngine_Type;  /* py_dense_engine.c */
extern PyMethodDef athpy_torch_methods[];    /* py_torch.c: LibTorch shim loading */
extern PyMethodDef athpy_snapshot_methods[]; /* py_snapshot.c: snapshots, ROI matter, analysis */

/* errors.c: raises the Python exception matching err->code with
 * err->message (ATH_ERR_PYTHON: leaves the pending exception in place).
 * Returns NULL. */
PyObject *athpy_raise(const ath_error *err);
/* The pending exception's text (it stays pending); new reference. */
PyObject *athpy_exception_text(void);

/* py_coord.c: a new Coord3D, and the value of one (obj must be a Coord3D). */
PyObject *athpy_coord_new(ath_coord c);
ath_coord athpy_coord_value(PyObject *obj);

/* model_resolve.c: what set_model accepts, as an ath_model plus the object
 * that keeps it alive (*owner: new reference).  0 or -1. */
int athpy_model_resolve(PyObject *obj, PyObject **owner, ath_model **model);
/* 1 if the model maps an all-zero (channels, h, w) input to zero, 0 if not, -1 error. */
int athpy_model_probe_zero(ath_model *model, int64_t channels, int64_t h, int64_t w);
/* model_load.c: the loader registered by atheria_core._model_loader
 * (_core._set_model_loader), called as loader(engine, path) -> model;
 * RuntimeError when none is registered. */
PyObject *athpy_model_load(PyObject *engine, PyObject *path);
/* model_load.c: _core._set_model_loader(loader or None) (in py_torch.c's method table). */
PyObject *athpy_set_model_loader(PyObject *self, PyObject *loader);
/* 'cpu', 'cuda' or 'cuda:N' (new reference) or NULL. */
PyObject *athpy_parse_device(PyObject *obj);

/* py_bulk.c: DenseEngine.generate_bulk_state(base_field, depth). */
PyObject *athpy_dense_generate_bulk_state(PyObject *self, PyObject *args, PyObject *kwargs);

#endif
