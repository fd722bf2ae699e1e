/* py_engine_base.h — atheria_core._core._EngineBase, the base type (tp_base)
 * of Engine (py_engine.c) and DenseEngine (py_dense_engine.c).
 *
 * The base owns what both engines have: the C engine pointer and the
 * operations on it (set by the subtype's tp_new), the model references, the
 * device, the last error and the busy guard.  It implements the shared slots
 * (dealloc, GC), the shared attributes (d_state, grid_size, device, ...) and
 * the shared methods (set_model, load_model, has_model, get_last_error).
 *
 * The busy guard.  Every method that reads or changes the C engine brackets
 * its whole body, argument conversion included, with athpy_engine_enter()
 * and athpy_engine_leave().  Conversion can run Python code (__index__,
 * __array__, a model's forward), so while a call is in flight any other call
 * on the same engine, from that code or from another thread, and also
 * __init__, raises RuntimeError and changes nothing.  Sizes are read from the
 * C engine only after enter, so they cannot change under the call. */
#ifndef ATHERIA_PY_ENGINE_BASE_H
#define ATHERIA_PY_ENGINE_BASE_H

#include "ath_py.h"

/* The configuration fields both engine types have. */
typedef struct {
    long long d_state, grid_size;
    double gamma_decay, vacuum_strength;
    int unitary;
    unsigned long long seed;
} AthPyEngineConfig;

struct AthPyEngineBase;

/* What differs between the engine types (one static instance per subtype). */
typedef struct {
    const char *name; /* "Engine": "<name> is not initialised", "<name> is busy" */
    void (*destroy)(void *eng);
    /* the C engine drops its model (cannot fail) */
    void (*unset_model)(void *eng);
    void (*config)(const void *eng, AthPyEngineConfig *out);
    int (*has_model)(const void *eng);
    /* set_model(model) for a non-None model: 0, or -1 with the previous model kept */
    int (*install)(struct AthPyEngineBase *self, PyObject *model);
} AthPyEngineOps;

typedef struct AthPyEngineBase {
    PyObject_HEAD
    void *eng;                 /* the C engine, NULL until __init__ succeeds */
    const AthPyEngineOps *ops; /* set by the subtype's tp_new */
    PyObject *model_obj;       /* what set_model got (traversed by the GC) */
    PyObject *model_owner;     /* keeps the ath_model alive: model_obj or a capsule */
    PyObject *device;          /* str */
    PyObject *last_error;      /* str */
    int busy;                  /* a call is in flight (see above) */
} AthPyEngineBase;

#define ATHPY_BASE(self) ((AthPyEngineBase *)(self))

/* The GC slots (a subtype with Py_TPFLAGS_HAVE_GC names them itself). */
int athpy_engine_traverse(PyObject *op, visitproc visit, void *arg);
int athpy_engine_clear(PyObject *op);
/* tp_new of a subtype: allocates and sets ops. */
PyObject *athpy_engine_new(PyTypeObject *type, const AthPyEngineOps *ops);
/* RuntimeError unless initialised.  0 or -1. */
int athpy_engine_need(AthPyEngineBase *self);
/* The busy guard: RuntimeError if uninitialised or busy, else marks busy.  0 or -1. */
int athpy_engine_enter(AthPyEngineBase *self);
void athpy_engine_leave(AthPyEngineBase *self);
/* The start of tp_init: RuntimeError while a call is in flight; else marks
 * busy (the constructor's own conversions may run Python code).  0 or -1. */
int athpy_engine_init_enter(AthPyEngineBase *self);
/* The end of tp_init (leaves the guard): st/err are the C engine's creation
 * result.  On success the engine replaces the previous one, the model
 * references are dropped, device (stolen) is kept and the last error
 * emptied.  0 or -1 (device released). */
int athpy_engine_adopt(AthPyEngineBase *self, ath_status st, void *eng, const ath_error *err, PyObject *device);

/* Stores the pending exception's text as the last error (it stays pending). */
void athpy_engine_record_exception(AthPyEngineBase *self);
/* athpy_raise(err), then records it as the last error.  Returns NULL. */
PyObject *athpy_engine_raise_and_record(AthPyEngineBase *self, const ath_error *err);
/* The options of both constructors: seed= (NULL: keep *seed) and device= (NULL:
 * "cpu"; *device gets a new reference).  0 or -1. */
int athpy_engine_options(PyObject *oseed, uint64_t *seed, PyObject *odevice, PyObject **device);
/* Keeps (model: borrowed, owner: stolen) / drops the model references. */
void athpy_engine_keep_model(AthPyEngineBase *self, PyObject *model, PyObject *owner);
void athpy_engine_drop_model(AthPyEngineBase *self);

/* compute_visualization's viz_type and channel (in [0, d)).  0 or -1. */
int athpy_viz_args(const char *name, long long channel, int64_t d, ath_viz_type *type);
/* The (h, w) float32 image of the (h, w, d) field (read only when h, w > 0),
 * computed with the GIL released (the caller holds the busy guard).  New ref or NULL. */
PyObject *athpy_viz_image(ath_viz_type type, const ath_cf32 *field, int64_t h, int64_t w, int64_t d,
                          long long channel);

#endif
