/* atheria_core._core.Engine — the sparse engine (include/atheria/engine.h).
 *
 * The GIL is released around step, add_particles, get_states, to_dense and
 * the visualisation; while it is released the engine is marked busy and
 * every other call on it raises RuntimeError instead of racing.  The engine
 * keeps a reference to the Python model object (or to the capsule wrapping a
 * callable) for as long as the model is set. */
#include "ath_py.h"

#include <math.h>
#include <string.h>

#include "atheria/engine.h"
#include "atheria/viz.h"

typedef struct {
    ATHPY_ENGINE_HEAD
    ath_engine *eng;
} AthPyEngine;

#define BASE(self) ((AthPyEngineBase *)(self))

ATHPY_ENGINE_KIND(AthPyEngine, engine, ath_engine, ath_engine_destroy, ath_engine_set_model, ath_engine_get_config,
                  "Engine", "a step or bulk call")

static int parse_choice(PyObject *obj, const char *argname, const char *const *names, int n, int *out) {
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

static int engine_init(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"d_state", "device", "grid_size", "background", "extent", "threshold",
                             "gamma_decay", "unitary", "seed", "vacuum_strength", "patch", NULL};
    static const char *const backgrounds[] = {"vacuum", "zero"};
    static const char *const extents[] = {"zero", "periodic"};
    long long d_state, grid_size = 64, patch = 3;
    PyObject *odevice = NULL, *obg = NULL, *oext = Py_None, *oseed = NULL, *device;
    ath_status st;
    double threshold = 0.01, gamma = 0.0, strength = 0.1;
    int unitary = 0, choice;
    ath_engine_config cfg;
    ath_engine *eng = NULL;
    ath_error err;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "L|OL$OOddpOdL:Engine", kwlist, &d_state, &odevice,
                                     &grid_size, &obg, &oext, &threshold, &gamma, &unitary, &oseed,
                                     &strength, &patch))
        return -1;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Engine is busy");
        return -1;
    }
    ath_engine_config_default(&cfg, (int64_t)d_state);
    cfg.grid_size = (int64_t)grid_size;
    cfg.threshold = threshold;
    cfg.gamma_decay = gamma;
    cfg.unitary = unitary;
    cfg.vacuum_strength = strength;
    cfg.patch = (int64_t)patch;
    if (obg != NULL) {
        if (parse_choice(obg, "background", backgrounds, 2, &choice) < 0) return -1;
        cfg.background = choice == 0 ? ATH_BACKGROUND_VACUUM : ATH_BACKGROUND_ZERO;
    }
    if (oext != Py_None) {
        if (parse_choice(oext, "extent", extents, 2, &choice) < 0) return -1;
        cfg.extent = choice == 0 ? ATH_EXTENT_ZERO : ATH_EXTENT_PERIODIC;
    }
    if (athpy_engine_options(oseed, &cfg.seed, odevice, &device) < 0) return -1;
    st = ath_engine_create(&cfg, &eng, &err);
    return athpy_engine_adopt(BASE(self), &engine_kind, st, eng, &err, device);
}

/* Installs a model (None removes it).  Warns (RuntimeWarning) when sparse
 * evaluation cannot reproduce a dense one (DESIGN §3.4).  On failure the
 * previous model stays. */
static int engine_install(AthPyEngineBase *base, PyObject *model) {
    AthPyEngine *self = (AthPyEngine *)base;
    const ath_engine_config *cfg = ath_engine_get_config(self->eng);
    ath_model *m = NULL, *prev = ath_engine_get_model(self->eng);
    PyObject *owner = NULL;
    ath_error err;
    unsigned flags;
    int zp, accepts_tiles = -1;

    if (model == Py_None) {
        engine_unset_model(base);
        athpy_engine_drop_model(base);
        return 0;
    }
    if (athpy_model_resolve(model, &owner, &m) < 0) return -1;
    /* Tiles (DESIGN 3.4): built-in models decide themselves; LibTorch-shim
     * models accept any H x W; a Python callable only if it says so
     * (accepts_tiles = True), else it gets (B, 2d, p, p) patches. */
    if (PyCapsule_CheckExact(model)) {
        accepts_tiles = 1;
    } else if (owner != NULL && owner != model) {
        PyObject *v = PyObject_GetAttrString(model, "accepts_tiles");
        if (v == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                Py_DECREF(owner);
                return -1;
            }
            PyErr_Clear();
            accepts_tiles = 0;
        } else {
            accepts_tiles = PyObject_IsTrue(v);
            Py_DECREF(v);
            if (accepts_tiles < 0) {
                Py_DECREF(owner);
                return -1;
            }
        }
    }
    if (ath_engine_set_model_ex(self->eng, m, accepts_tiles, &err) != ATH_OK) {
        Py_DECREF(owner);
        athpy_raise(&err);
        return -1;
    }
    zp = m->zero_preserving;
    if (cfg->background == ATH_BACKGROUND_ZERO && zp < 0) {
        self->busy = 1; /* the probe may run Python code */
        zp = athpy_model_probe_zero(m, 2 * cfg->d_state, cfg->patch, cfg->patch);
        self->busy = 0;
        if (zp < 0) goto fail;
    }
    flags = ath_engine_exactness(self->eng, m, zp);
    if (flags & ATH_INEXACT_NOT_ZERO_PRESERVING) {
        if (PyErr_WarnEx(PyExc_RuntimeWarning,
                         "Engine(background='zero'): the model is not zero-preserving (it maps an "
                         "all-zero neighbourhood to a non-zero update), so the sparse result is only "
                         "an approximation of the dense one (DESIGN 3.4 (b))",
                         1) < 0)
            goto fail;
    }
    if (flags & ATH_INEXACT_RECEPTIVE_RADIUS) {
        char msg[400];
        snprintf(msg, sizeof msg,
                 "Engine(patch=%lld): the model's receptive radius %lld exceeds the patch radius %lld, "
                 "so the sparse result is only an approximation of a dense evaluation; use "
                 "patch >= %lld (DESIGN 3.4 (c))",
                 (long long)cfg->patch, (long long)m->receptive_radius, (long long)((cfg->patch - 1) / 2),
                 (long long)(2 * m->receptive_radius + 1));
        if (PyErr_WarnEx(PyExc_RuntimeWarning, msg, 1) < 0) goto fail;
    }
    if (flags & ATH_INEXACT_WINDOW_EDGE) {
        char msg[400];
        snprintf(msg, sizeof msg,
                 "Engine(extent='zero'): the model's receptive radius %lld > 1, so near the window "
                 "edge the sparse result differs from a dense evaluation (the model's intermediate "
                 "layers are not zero-padded at the window edge) (DESIGN 3.4)",
                 (long long)m->receptive_radius);
        if (PyErr_WarnEx(PyExc_RuntimeWarning, msg, 1) < 0) goto fail;
    }
    athpy_engine_keep_model(base, model, owner);
    return 0;
fail:
    ath_engine_set_model(self->eng, prev, NULL); /* was valid before: cannot fail */
    Py_DECREF(owner);
    return -1;
}

static PyObject *engine_has_model(AthPyEngine *self, PyObject *noargs) {
    (void)noargs;
    if (athpy_engine_need(BASE(self), &engine_kind) < 0) return NULL;
    return PyBool_FromLong(ath_engine_get_model(self->eng) != NULL);
}

/* Runs n steps; returns the matter count or -1 with an exception. */
static long long do_steps(AthPyEngine *self, long long n) {
    long long i;
    int64_t count = (int64_t)ath_engine_matter_count(self->eng);
    for (i = 0; i < n; i++) {
        ath_error err;
        ath_status st;
        ath_error_clear(&err);
        self->busy = 1;
        Py_BEGIN_ALLOW_THREADS
        st = ath_engine_step(self->eng, &count, &err);
        Py_END_ALLOW_THREADS
        self->busy = 0;
        if (st != ATH_OK) {
            athpy_engine_raise_and_record(BASE(self), &err);
            return -1;
        }
        if (n > 1 && PyErr_CheckSignals() < 0) return -1;
    }
    return (long long)count;
}

static PyObject *engine_step(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"n", NULL};
    long long n = 1, count;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|L:step", kwlist, &n)) return NULL;
    if (ready(self) < 0) return NULL;
    if (n < 0) return PyErr_Format(PyExc_ValueError, "step: n must be >= 0, got %lld", n);
    count = do_steps(self, n);
    if (count < 0) return NULL;
    return PyLong_FromLongLong(count);
}

static PyObject *engine_step_native(AthPyEngine *self, PyObject *noargs) {
    long long count;
    (void)noargs;
    if (ready(self) < 0) return NULL;
    count = do_steps(self, 1);
    if (count < 0) return NULL;
    return PyLong_FromLongLong(count);
}

static PyObject *engine_add_particle(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"coord", "state", NULL};
    PyObject *ocoord, *ostate;
    PyArrayObject *st;
    ath_coord c;
    ath_error err;
    ath_status s;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:add_particle", kwlist, &ocoord, &ostate))
        return NULL;
    if (ready(self) < 0) return NULL;
    if (athpy_parse_coord(ocoord, "coord", &c) < 0) return NULL;
    st = athpy_states_array(ostate, "state", -1, (npy_intp)ath_engine_get_config(self->eng)->d_state);
    if (st == NULL) return NULL;
    s = ath_engine_add_particles(self->eng, 1, &c, (const ath_cf32 *)PyArray_DATA(st), &err);
    Py_DECREF(st);
    if (s != ATH_OK) return athpy_raise(&err);
    Py_RETURN_NONE;
}

static PyObject *engine_add_particles(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"coords", "states", NULL};
    PyObject *ocoords, *ostates;
    PyArrayObject *coords, *states;
    ath_error err;
    ath_status s;
    npy_intp n;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:add_particles", kwlist, &ocoords, &ostates))
        return NULL;
    if (ready(self) < 0) return NULL;
    coords = athpy_coords_array(ocoords, "coords");
    if (coords == NULL) return NULL;
    n = PyArray_DIM(coords, 0);
    states = athpy_states_array(ostates, "states", n, (npy_intp)ath_engine_get_config(self->eng)->d_state);
    if (states == NULL) {
        Py_DECREF(coords);
        return NULL;
    }
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    s = ath_engine_add_particles(self->eng, (size_t)n, (const ath_coord *)PyArray_DATA(coords),
                                 (const ath_cf32 *)PyArray_DATA(states), &err);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    Py_DECREF(coords);
    Py_DECREF(states);
    if (s != ATH_OK) return athpy_raise(&err);
    Py_RETURN_NONE;
}

static PyObject *engine_get_state_at(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"coord", NULL};
    PyObject *ocoord, *res;
    npy_intp dims[1];
    ath_coord c;
    ath_error err;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:get_state_at", kwlist, &ocoord)) return NULL;
    if (ready(self) < 0) return NULL;
    if (athpy_parse_coord(ocoord, "coord", &c) < 0) return NULL;
    dims[0] = (npy_intp)ath_engine_get_config(self->eng)->d_state;
    res = PyArray_SimpleNew(1, dims, NPY_COMPLEX64);
    if (res == NULL) return NULL;
    if (ath_engine_get_states(self->eng, 1, &c, (ath_cf32 *)PyArray_DATA((PyArrayObject *)res), &err) !=
        ATH_OK) {
        Py_DECREF(res);
        return athpy_raise(&err);
    }
    return res;
}

static PyObject *engine_get_states(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"coords", NULL};
    PyObject *ocoords, *res;
    PyArrayObject *coords;
    npy_intp dims[2];
    ath_error err;
    ath_status s;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:get_states", kwlist, &ocoords)) return NULL;
    if (ready(self) < 0) return NULL;
    coords = athpy_coords_array(ocoords, "coords");
    if (coords == NULL) return NULL;
    dims[0] = PyArray_DIM(coords, 0);
    dims[1] = (npy_intp)ath_engine_get_config(self->eng)->d_state;
    if ((double)dims[0] * (double)dims[1] > (double)ATHPY_MAX_REGION_CELLS) {
        Py_DECREF(coords);
        return PyErr_Format(PyExc_ValueError, "coords: too many cells for one call");
    }
    res = PyArray_SimpleNew(2, dims, NPY_COMPLEX64);
    if (res == NULL) {
        Py_DECREF(coords);
        return NULL;
    }
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    s = ath_engine_get_states(self->eng, (size_t)dims[0], (const ath_coord *)PyArray_DATA(coords),
                              (ath_cf32 *)PyArray_DATA((PyArrayObject *)res), &err);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    Py_DECREF(coords);
    if (s != ATH_OK) {
        Py_DECREF(res);
        return athpy_raise(&err);
    }
    return res;
}

static PyObject *coords_copy(const ath_cellmap *m) {
    npy_intp dims[2];
    PyObject *arr;
    dims[0] = (npy_intp)ath_cellmap_size(m);
    dims[1] = 3;
    arr = PyArray_SimpleNew(2, dims, NPY_INT64);
    if (arr == NULL) return NULL;
    if (dims[0] > 0)
        memcpy(PyArray_DATA((PyArrayObject *)arr), ath_cellmap_coords(m), (size_t)dims[0] * sizeof(ath_coord));
    return arr;
}

static PyObject *engine_matter(AthPyEngine *self, PyObject *noargs) {
    const ath_cellmap *m;
    PyObject *coords, *states;
    npy_intp dims[2];
    (void)noargs;
    if (ready(self) < 0) return NULL;
    m = ath_engine_matter(self->eng);
    coords = coords_copy(m);
    if (coords == NULL) return NULL;
    dims[0] = (npy_intp)ath_cellmap_size(m);
    dims[1] = (npy_intp)ath_cellmap_d_state(m);
    states = PyArray_SimpleNew(2, dims, NPY_COMPLEX64);
    if (states == NULL) {
        Py_DECREF(coords);
        return NULL;
    }
    if (dims[0] > 0)
        memcpy(PyArray_DATA((PyArrayObject *)states), ath_cellmap_states(m),
               (size_t)(dims[0] * dims[1]) * sizeof(ath_cf32));
    return Py_BuildValue("(NN)", coords, states);
}

static PyObject *engine_get_active_coords(AthPyEngine *self, PyObject *noargs) {
    (void)noargs;
    if (ready(self) < 0) return NULL;
    return coords_copy(ath_engine_matter(self->eng));
}

static PyObject *engine_get_matter_count(AthPyEngine *self, PyObject *noargs) {
    (void)noargs;
    if (ready(self) < 0) return NULL;
    return PyLong_FromSize_t(ath_engine_matter_count(self->eng));
}

static PyObject *engine_get_step_count(AthPyEngine *self, PyObject *noargs) {
    (void)noargs;
    if (ready(self) < 0) return NULL;
    return PyLong_FromLongLong((long long)ath_engine_step_count(self->eng));
}

static PyObject *engine_clear(AthPyEngine *self, PyObject *noargs) {
    (void)noargs;
    if (ready(self) < 0) return NULL;
    ath_engine_clear(self->eng);
    Py_RETURN_NONE;
}

static PyObject *engine_activate_neighborhood(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"coord", "radius", NULL};
    PyObject *ocoord;
    long long radius = 1;
    ath_coord c;
    ath_error err;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|L:activate_neighborhood", kwlist, &ocoord, &radius))
        return NULL;
    if (ready(self) < 0) return NULL;
    if (athpy_parse_coord(ocoord, "coord", &c) < 0) return NULL;
    if (radius < 0) return PyErr_Format(PyExc_ValueError, "radius: must be >= 0, got %lld", radius);
    if (ath_engine_activate_neighborhood(self->eng, c, (int64_t)radius, &err) != ATH_OK)
        return athpy_raise(&err);
    Py_RETURN_NONE;
}

static PyObject *engine_query_radius(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"center", "radius", NULL};
    PyObject *ocenter, *res;
    double radius;
    ath_coord c, *out = NULL;
    size_t n = 0;
    npy_intp dims[2];
    ath_error err;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Od:query_radius", kwlist, &ocenter, &radius))
        return NULL;
    if (ready(self) < 0) return NULL;
    if (athpy_parse_coord(ocenter, "center", &c) < 0) return NULL;
    if (!isfinite(radius) || radius < 0.0)
        return PyErr_Format(PyExc_ValueError, "radius: must be finite and >= 0, got %g", radius);
    if (ath_engine_query_radius(self->eng, c, radius, &out, &n, &err) != ATH_OK) return athpy_raise(&err);
    dims[0] = (npy_intp)n;
    dims[1] = 3;
    res = PyArray_SimpleNew(2, dims, NPY_INT64);
    if (res != NULL && n > 0) memcpy(PyArray_DATA((PyArrayObject *)res), out, n * sizeof(ath_coord));
    free(out);
    return res;
}

static int parse_z(PyObject *oz, int64_t *z) {
    ath_coord c = {0, 0, 0};
    PyObject *t;
    int r;
    if (oz == NULL) {
        *z = 0;
        return 0;
    }
    if (PyFloat_Check(oz) || PyBool_Check(oz)) {
        PyErr_Format(PyExc_TypeError, "z: expected an int, got %s", Py_TYPE(oz)->tp_name);
        return -1;
    }
    t = Py_BuildValue("(iiO)", 0, 0, oz);
    if (t == NULL) return -1;
    r = athpy_parse_coord(t, "z", &c);
    Py_DECREF(t);
    *z = c.z;
    return r;
}

/* Dense field over roi in plane z as a new (h, w, d) complex64 array (GIL released). */
static PyObject *dense_region(AthPyEngine *self, const int64_t roi[4], int64_t z) {
    npy_intp dims[3];
    PyObject *res;
    ath_error err;
    ath_status s;
    int zeroed;
    dims[0] = (npy_intp)(roi[3] - roi[1]);
    dims[1] = (npy_intp)(roi[2] - roi[0]);
    dims[2] = (npy_intp)ath_engine_get_config(self->eng)->d_state;
    /* A zero background starts from calloc'd (lazily zeroed) memory: the
     * engine then only scatters the matter. */
    zeroed = ath_engine_get_config(self->eng)->background == ATH_BACKGROUND_ZERO;
    res = zeroed ? PyArray_ZEROS(3, dims, NPY_COMPLEX64, 0) : PyArray_SimpleNew(3, dims, NPY_COMPLEX64);
    if (res == NULL) return NULL;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    s = ath_engine_to_dense_ex(self->eng, roi[0], roi[1], roi[2], roi[3], z,
                               (ath_cf32 *)PyArray_DATA((PyArrayObject *)res), zeroed, &err);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (s != ATH_OK) {
        Py_DECREF(res);
        return athpy_raise(&err);
    }
    return res;
}

static PyObject *engine_to_dense(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"roi", "z", NULL};
    PyObject *oroi, *oz = NULL;
    int64_t roi[4], z;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:to_dense", kwlist, &oroi, &oz)) return NULL;
    if (ready(self) < 0) return NULL;
    if (athpy_parse_roi(oroi, ATHPY_MAX_REGION_CELLS / ath_engine_get_config(self->eng)->d_state, roi) < 0)
        return NULL;
    if (parse_z(oz, &z) < 0) return NULL;
    return dense_region(self, roi, z);
}

static PyObject *engine_compute_visualization(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"viz_type", "roi", "z", "channel", NULL};
    const char *name;
    PyObject *oroi = Py_None, *oz = NULL, *field, *res;
    long long channel = 0;
    int64_t roi[4], z, d;
    ath_viz_type type;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|O$OL:compute_visualization", kwlist, &name, &oroi,
                                     &oz, &channel))
        return NULL;
    if (ready(self) < 0) return NULL;
    d = ath_engine_get_config(self->eng)->d_state;
    if (athpy_viz_args(name, channel, d, &type) < 0) return NULL;
    if (oroi == Py_None) {
        roi[0] = roi[1] = 0;
        roi[2] = roi[3] = ath_engine_get_config(self->eng)->grid_size;
        if ((double)roi[2] * (double)roi[3] > (double)(ATHPY_MAX_REGION_CELLS / d))
            return PyErr_Format(PyExc_ValueError, "roi: the default window [0, grid_size)^2 is too large; pass a roi");
    } else if (athpy_parse_roi(oroi, ATHPY_MAX_REGION_CELLS / d, roi) < 0) {
        return NULL;
    }
    if (parse_z(oz, &z) < 0) return NULL;
    field = dense_region(self, roi, z);
    if (field == NULL) return NULL;
    res = athpy_viz_image(BASE(self), type, (const ath_cf32 *)PyArray_DATA((PyArrayObject *)field),
                          roi[3] - roi[1], roi[2] - roi[0], d, channel);
    Py_DECREF(field);
    return res;
}

static PyObject *engine_stats(AthPyEngine *self, PyObject *noargs) {
    ath_engine_stats st;
    ath_engine_memory mem;
    (void)noargs;
    if (ready(self) < 0) return NULL;
    ath_engine_get_stats(self->eng, &st);
    ath_engine_get_memory(self->eng, &mem);
    return Py_BuildValue("{s:L,s:L,s:L,s:n,s:n,s:n,s:n}", "evaluated", (long long)st.evaluated, "model_calls",
                         (long long)st.model_calls, "batch", (long long)st.batch, "matter_bytes",
                         (Py_ssize_t)mem.matter_bytes, "scratch_bytes", (Py_ssize_t)mem.scratch_bytes,
                         "memory_bytes", (Py_ssize_t)(mem.matter_bytes + mem.scratch_bytes), "stored_cells",
                         (Py_ssize_t)ath_engine_matter_count(self->eng));
}

static PyObject *engine_repr(AthPyEngine *self) {
    const ath_engine_config *c;
    if (self->eng == NULL) return PyUnicode_FromString("Engine(<uninitialised>)");
    c = ath_engine_get_config(self->eng);
    return PyUnicode_FromFormat("Engine(d_state=%lld, grid_size=%lld, matter=%zu, step=%lld)",
                                (long long)c->d_state, (long long)c->grid_size,
                                ath_engine_matter_count(self->eng), (long long)ath_engine_step_count(self->eng));
}

/* ---- read-only attributes ---- */

#define CFG(self) ath_engine_get_config((self)->eng)
#define NEED_ENG(self) \
    do { if (athpy_engine_need(BASE(self), &engine_kind) < 0) return NULL; } while (0)

static PyObject *get_background(AthPyEngine *s, void *c) {
    (void)c;
    NEED_ENG(s);
    return PyUnicode_FromString(CFG(s)->background == ATH_BACKGROUND_ZERO ? "zero" : "vacuum");
}
static PyObject *get_extent(AthPyEngine *s, void *c) {
    (void)c;
    NEED_ENG(s);
    if (CFG(s)->extent == ATH_EXTENT_UNBOUNDED) Py_RETURN_NONE;
    return PyUnicode_FromString(CFG(s)->extent == ATH_EXTENT_ZERO ? "zero" : "periodic");
}
static PyObject *get_threshold(AthPyEngine *s, void *c) {
    (void)c;
    NEED_ENG(s);
    return PyFloat_FromDouble(CFG(s)->threshold);
}
static PyObject *get_patch(AthPyEngine *s, void *c) {
    (void)c;
    NEED_ENG(s);
    return PyLong_FromLongLong((long long)CFG(s)->patch);
}

static PyGetSetDef engine_getset[] = {
    ATHPY_ENGINE_GETSET(engine_kind),
    {"background", (getter)get_background, NULL, NULL, NULL},
    {"extent", (getter)get_extent, NULL, NULL, NULL},
    {"threshold", (getter)get_threshold, NULL, NULL, NULL},
    {"patch", (getter)get_patch, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL}};

#define KW (PyCFunction)(void (*)(void))
static PyMethodDef engine_methods[] = {
    ATHPY_ENGINE_METHODS(engine),
    {"set_model", KW engine_set_model, METH_VARARGS | METH_KEYWORDS,
     "set_model(model): ZeroModel, ConvModel, a callable (float32 (B, 2d, p, p) -> (B, 2d, p, p) or (B, 2d)), "
     "an 'atheria_core.model' capsule, or None."},
    {"has_model", (PyCFunction)engine_has_model, METH_NOARGS, "has_model() -> bool"},
    {"add_particle", KW engine_add_particle, METH_VARARGS | METH_KEYWORDS, "add_particle(coord, state)"},
    {"add_particles", KW engine_add_particles, METH_VARARGS | METH_KEYWORDS,
     "add_particles(coords (N,3), states (N,d)): all-or-nothing."},
    {"get_state_at", KW engine_get_state_at, METH_VARARGS | METH_KEYWORDS,
     "get_state_at(coord) -> (d,) complex64: matter, else background; zeros outside a bounded window."},
    {"get_states", KW engine_get_states, METH_VARARGS | METH_KEYWORDS, "get_states(coords) -> (N, d) complex64"},
    {"matter", (PyCFunction)engine_matter, METH_NOARGS, "matter() -> (coords (N,3) int64, states (N,d) complex64)"},
    {"get_active_coords", (PyCFunction)engine_get_active_coords, METH_NOARGS, "(N, 3) int64 matter coordinates"},
    {"step_native", (PyCFunction)engine_step_native, METH_NOARGS, "step_native() -> matter count (one step)"},
    {"step", KW engine_step, METH_VARARGS | METH_KEYWORDS, "step(n=1) -> matter count"},
    {"get_matter_count", (PyCFunction)engine_get_matter_count, METH_NOARGS, NULL},
    {"get_step_count", (PyCFunction)engine_get_step_count, METH_NOARGS, NULL},
    {"clear", (PyCFunction)engine_clear, METH_NOARGS, "Removes all matter and resets the step count."},
    {"activate_neighborhood", KW engine_activate_neighborhood, METH_VARARGS | METH_KEYWORDS,
     "activate_neighborhood(coord, radius=1): inserts the background at absent cells within radius."},
    {"query_radius", KW engine_query_radius, METH_VARARGS | METH_KEYWORDS,
     "query_radius(center, radius) -> (N,3) int64 matter coords with Euclidean distance <= radius."},
    {"to_dense", KW engine_to_dense, METH_VARARGS | METH_KEYWORDS, "to_dense(roi, z=0) -> (h, w, d) complex64"},
    {"compute_visualization", KW engine_compute_visualization, METH_VARARGS | METH_KEYWORDS,
     "compute_visualization(viz_type, roi=None, *, z=0, channel=0) -> (h, w) float32"},
    {"_stats", (PyCFunction)engine_stats, METH_NOARGS,
     "_stats() -> dict: evaluated cells, model calls and batch size of the last step; the engine's "
     "own memory: matter_bytes (the cell map), scratch_bytes (cached step scratch), memory_bytes (sum), "
     "stored_cells (C backend only)."},
    {NULL, NULL, 0, NULL}};

PyTypeObject AthPyEngine_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "atheria_core._core.Engine",
    .tp_doc = "Engine(d_state, device='cpu', grid_size=64, *, background='vacuum', extent=None, "
              "threshold=0.01, gamma_decay=0.0, unitary=False, seed=0, vacuum_strength=0.1, patch=3): "
              "the sparse universe.",
    .tp_basicsize = sizeof(AthPyEngine),
    ATHPY_ENGINE_SLOTS(engine),
};
