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

/* ---- shared machinery of the engine types (py_engine_common.c) ----
 * Engine and DenseEngine start with ATHPY_ENGINE_HEAD, so both can be used
 * as an AthPyEngineBase: the model references, the device, the last error
 * and the busy flag (set while the GIL is released around the engine's own
 * work, or while it may run Python code; every other call then raises). */
#define ATHPY_ENGINE_HEAD                                                                         \
    PyObject_HEAD                                                                                 \
    PyObject *model_obj;   /* what set_model got (traversed by the GC) */                         \
    PyObject *model_owner; /* keeps the ath_model alive: model_obj or a capsule */                \
    PyObject *device;      /* str */                                                              \
    PyObject *last_error;  /* str */                                                              \
    int busy;

typedef struct AthPyEngineBase {
    ATHPY_ENGINE_HEAD
} AthPyEngineBase;

/* The configuration fields both engine types have. */
typedef struct {
    long long d_state, grid_size;
    double gamma_decay, vacuum_strength;
    int unitary;
    unsigned long long seed;
} AthPyEngineConfig;
/* Fills *out from a C engine configuration (any struct with these fields). */
#define ATHPY_ENGINE_CONFIG_FROM(out, cfg)                                                         \
    do {                                                                                           \
        (out)->d_state = (long long)(cfg)->d_state;                                                \
        (out)->grid_size = (long long)(cfg)->grid_size;                                            \
        (out)->gamma_decay = (cfg)->gamma_decay;                                                   \
        (out)->vacuum_strength = (cfg)->vacuum_strength;                                           \
        (out)->unitary = (cfg)->unitary;                                                           \
        (out)->seed = (unsigned long long)(cfg)->seed;                                             \
    } while (0)

/* What differs between the engine types. */
typedef struct {
    const char *name;      /* "Engine": "<name> is not initialised", "<name> is busy (...)" */
    const char *busy_what; /* what may run in another thread: "a step" */
    int (*initialised)(AthPyEngineBase *self);             /* has a C engine */
    int (*install)(AthPyEngineBase *self, PyObject *model); /* set_model; 0 or -1 */
    void (*unset_model)(AthPyEngineBase *self);            /* the C engine drops its model */
    void (*replace)(AthPyEngineBase *self, void *eng);     /* destroys the C engine, takes eng */
    void (*config)(AthPyEngineBase *self, AthPyEngineConfig *out); /* initialised engines only */
} AthPyEngineKind;

/* Defines, for an engine type T (ATHPY_ENGINE_HEAD, then `E *eng`) whose C
 * API is DESTROY(E *), SET_MODEL(E *, ath_model *, ath_error *) and
 * GET_CONFIG(E *): P##_kind (P##_install is the type's own), ready(T *), and
 * the shared slots and methods P##_set_model, P##_load_model, P##_clear_refs,
 * P##_dealloc. */
#define ATHPY_ENGINE_KIND(T, P, E, DESTROY, SET_MODEL, GET_CONFIG, NAME, BUSY_WHAT)                \
    static int P##_initialised(AthPyEngineBase *self) { return ((T *)self)->eng != NULL; }       \
    static void P##_unset_model(AthPyEngineBase *self) { SET_MODEL(((T *)self)->eng, NULL, NULL); } \
    static void P##_replace(AthPyEngineBase *self, void *eng) {                                    \
        DESTROY(((T *)self)->eng);                                                                 \
        ((T *)self)->eng = (E *)eng;                                                               \
    }                                                                                              \
    static void P##_config(AthPyEngineBase *self, AthPyEngineConfig *out) {                        \
        ATHPY_ENGINE_CONFIG_FROM(out, GET_CONFIG(((T *)self)->eng));                               \
    }                                                                                              \
    static int P##_install(AthPyEngineBase *self, PyObject *model);                               \
    static const AthPyEngineKind P##_kind = {.name = NAME, .busy_what = BUSY_WHAT,                 \
                                             .initialised = P##_initialised, .install = P##_install, \
                                             .unset_model = P##_unset_model, .replace = P##_replace, \
                                             .config = P##_config};                                \
    static int ready(T *self) { return athpy_engine_ready((AthPyEngineBase *)self, &P##_kind); }  \
    static PyObject *P##_set_model(T *self, PyObject *args, PyObject *kwargs) {                    \
        return athpy_engine_set_model((AthPyEngineBase *)self, args, kwargs, &P##_kind);           \
    }                                                                                              \
    static PyObject *P##_load_model(T *self, PyObject *args, PyObject *kwargs) {                   \
        return athpy_engine_load_model((AthPyEngineBase *)self, args, kwargs, &P##_kind);          \
    }                                                                                              \
    static int P##_clear_refs(T *self) { return athpy_engine_clear_refs((AthPyEngineBase *)self, &P##_kind); } \
    static void P##_dealloc(T *self) { athpy_engine_dealloc((AthPyEngineBase *)self, &P##_kind); }

/* The PyMethodDef entries and the PyTypeObject slots an ATHPY_ENGINE_KIND type shares. */
#define ATHPY_ENGINE_METHODS(P)                                                                    \
    {"load_model", (PyCFunction)(void (*)(void))P##_load_model, METH_VARARGS | METH_KEYWORDS,      \
     "load_model(path) -> bool: TorchScript via atheria_core._model_loader; False + get_last_error() on failure."}, \
    {"get_last_error", (PyCFunction)athpy_engine_get_last_error, METH_NOARGS, NULL}
#define ATHPY_ENGINE_SLOTS(P)                                                                      \
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,                     \
    .tp_new = PyType_GenericNew, .tp_init = (initproc)P##_init, .tp_dealloc = (destructor)P##_dealloc, \
    .tp_traverse = (traverseproc)athpy_engine_traverse, .tp_clear = (inquiry)P##_clear_refs,      \
    .tp_repr = (reprfunc)P##_repr, .tp_methods = P##_methods, .tp_getset = P##_getset

/* RuntimeError unless initialised (athpy_engine_need), and not busy (ready).  0 or -1. */
int athpy_engine_need(AthPyEngineBase *self, const AthPyEngineKind *kind);
int athpy_engine_ready(AthPyEngineBase *self, const AthPyEngineKind *kind);
/* Stores the pending exception's text as the last error (it stays pending). */
void athpy_engine_record_exception(AthPyEngineBase *self);
/* athpy_raise(err), then records it as the last error.  Returns NULL. */
PyObject *athpy_engine_raise_and_record(AthPyEngineBase *self, const ath_error *err);
/* seed=: an int in [0, 2**64).  0 or -1. */
int athpy_parse_seed(PyObject *obj, uint64_t *out);
/* The options of both constructors: seed= (NULL: keep *seed) and device= (NULL:
 * "cpu"; *device gets a new reference).  0 or -1. */
int athpy_engine_options(PyObject *oseed, uint64_t *seed, PyObject *odevice, PyObject **device);
/* End of tp_init: st/err are the C engine's creation result.  On success the
 * engine replaces the previous one, the model references are dropped, device
 * (stolen) is kept and the last error emptied.  0 or -1 (device released). */
int athpy_engine_adopt(AthPyEngineBase *self, const AthPyEngineKind *kind, ath_status st, void *eng,
                       const ath_error *err, PyObject *device);
/* Drops / keeps (model: borrowed, owner: stolen) the model references. */
void athpy_engine_drop_model(AthPyEngineBase *self);
void athpy_engine_keep_model(AthPyEngineBase *self, PyObject *model, PyObject *owner);
/* tp_traverse, tp_clear and tp_dealloc. */
int athpy_engine_traverse(AthPyEngineBase *self, visitproc visit, void *arg);
int athpy_engine_clear_refs(AthPyEngineBase *self, const AthPyEngineKind *kind);
void athpy_engine_dealloc(AthPyEngineBase *self, const AthPyEngineKind *kind);
/* The attributes both engine types have (getters whose closure is the
 * AthPyEngineKind), as PyGetSetDef entries. */
PyObject *athpy_engine_get_device(AthPyEngineBase *self, void *kind);
PyObject *athpy_engine_get_d_state(AthPyEngineBase *self, void *kind);
PyObject *athpy_engine_get_grid_size(AthPyEngineBase *self, void *kind);
PyObject *athpy_engine_get_gamma_decay(AthPyEngineBase *self, void *kind);
PyObject *athpy_engine_get_unitary(AthPyEngineBase *self, void *kind);
PyObject *athpy_engine_get_seed(AthPyEngineBase *self, void *kind);
PyObject *athpy_engine_get_vacuum_strength(AthPyEngineBase *self, void *kind);
#define ATHPY_ENGINE_ATTR(name, kind) {#name, (getter)athpy_engine_get_##name, NULL, NULL, (void *)&(kind)}
#define ATHPY_ENGINE_GETSET(kind)                                                                  \
    ATHPY_ENGINE_ATTR(d_state, kind), ATHPY_ENGINE_ATTR(grid_size, kind), ATHPY_ENGINE_ATTR(device, kind), \
        ATHPY_ENGINE_ATTR(gamma_decay, kind), ATHPY_ENGINE_ATTR(unitary, kind),                    \
        ATHPY_ENGINE_ATTR(seed, kind), ATHPY_ENGINE_ATTR(vacuum_strength, kind)
/* The set_model(model), load_model(path) and get_last_error() methods. */
PyObject *athpy_engine_set_model(AthPyEngineBase *self, PyObject *args, PyObject *kwargs,
                                 const AthPyEngineKind *kind);
PyObject *athpy_engine_load_model(AthPyEngineBase *self, PyObject *args, PyObject *kwargs,
                                  const AthPyEngineKind *kind);
PyObject *athpy_engine_get_last_error(AthPyEngineBase *self, PyObject *noargs);
/* compute_visualization's viz_type and channel (in [0, d)).  0 or -1. */
int athpy_viz_args(const char *name, long long channel, int64_t d, ath_viz_type *type);
/* The (h, w) float32 image of the (h, w, d) field (read only when h, w > 0),
 * computed with the GIL released and the engine busy.  New ref or NULL. */
PyObject *athpy_viz_image(AthPyEngineBase *self, ath_viz_type type, const ath_cf32 *field, int64_t h,
                          int64_t w, int64_t d, long long channel);

/* py_models.c */
int athpy_model_resolve(PyObject *obj, PyObject **owner, ath_model **model);
int athpy_model_probe_zero(ath_model *model, int64_t channels, int64_t h, int64_t w);
/* py_torch.c: the model loader registered by atheria_core._model_loader
 * (_core._set_model_loader); called as loader(engine, path) -> model.
 * RuntimeError when none is registered. */
PyObject *athpy_model_load(PyObject *engine, PyObject *path);
PyObject *athpy_parse_device(PyObject *obj);
PyObject *athpy_exception_text(void);

#endif
