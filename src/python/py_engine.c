/* atheria_core._core.Engine — the sparse engine (include/atheria/engine.h).
 *
 * The GIL is released around step, add_particles, get_states, to_dense and
 * the visualisation; while it is released the engine is marked busy and
 * every other call on it raises RuntimeError instead of racing.  The engine
 * keeps a reference to the Python model object (or to the capsule wrapping a
 * callable) for as long as the model is set. */
#include "py_engine_base.h"

#include <math.h>
#include <string.h>

#include "atheria/alloc.h"
#include "atheria/engine.h"
#include "atheria/viz.h"
#include "convert.h"

typedef struct {
    AthPyEngineBase base; /* base.eng is an ath_engine */
} AthPyEngine;

#define BASE(self) ATHPY_BASE(self)
#define ENG(self) ((ath_engine *)ATHPY_BASE(self)->eng)
#define CFG(self) ath_engine_get_config(ENG(self))

static void ops_destroy(void *eng) { ath_engine_destroy((ath_engine *)eng); }
static void ops_unset_model(void *eng) { ath_engine_set_model((ath_engine *)eng, NULL, NULL); }
static void ops_config(const void *eng, AthPyEngineConfig *out) {
    const ath_engine_config *c = ath_engine_get_config((const ath_engine *)eng);
    out->d_state = (long long)c->d_state;
    out->grid_size = (long long)c->grid_size;
    out->gamma_decay = c->gamma_decay;
    out->vacuum_strength = c->vacuum_strength;
    out->unitary = c->unitary;
    out->seed = (unsigned long long)c->seed;
}
static int ops_has_model(const void *eng) { return ath_engine_get_model((const ath_engine *)eng) != NULL; }
static int engine_install(AthPyEngineBase *base, PyObject *model);

static const AthPyEngineOps engine_ops = {.name = "Engine",
                                          .destroy = ops_destroy,
                                          .unset_model = ops_unset_model,
                                          .config = ops_config,
                                          .has_model = ops_has_model,
                                          .install = engine_install};

static PyObject *engine_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    (void)args;
    (void)kwargs;
    return athpy_engine_new(type, &engine_ops);
}

#define ENTER(self) \
    do { if (athpy_engine_enter(BASE(self)) < 0) return NULL; } while (0)
#define LEAVE_RETURN(self, r) \
    do { PyObject *r_ = (r); athpy_engine_leave(BASE(self)); return r_; } while (0)

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
    if (athpy_engine_init_enter(BASE(self)) < 0) return -1;
    ath_engine_config_default(&cfg, (int64_t)d_state);
    cfg.grid_size = (int64_t)grid_size;
    cfg.threshold = threshold;
    cfg.gamma_decay = gamma;
    cfg.unitary = unitary;
    cfg.vacuum_strength = strength;
    cfg.patch = (int64_t)patch;
    if (obg != NULL) {
        if (athpy_choice(obg, "background", backgrounds, 2, &choice) < 0) goto fail;
        cfg.background = choice == 0 ? ATH_BACKGROUND_VACUUM : ATH_BACKGROUND_ZERO;
    }
    if (oext != Py_None) {
        if (athpy_choice(oext, "extent", extents, 2, &choice) < 0) goto fail;
        cfg.extent = choice == 0 ? ATH_EXTENT_ZERO : ATH_EXTENT_PERIODIC;
    }
    if (athpy_engine_options(oseed, &cfg.seed, odevice, &device) < 0) goto fail;
    st = ath_engine_create(&cfg, &eng, &err);
    return athpy_engine_adopt(BASE(self), st, eng, &err, device);
fail:
    athpy_engine_leave(BASE(self));
    return -1;
}

/* Installs a model (None removes it).  Warns (RuntimeWarning) when sparse
 * evaluation cannot reproduce a dense one (DESIGN §3.4).  On failure the
 * previous model stays. */
static int engine_install(AthPyEngineBase *base, PyObject *model) {
    ath_engine *eng = (ath_engine *)base->eng;
    const ath_engine_config *cfg = ath_engine_get_config(eng);
    ath_model *m = NULL, *prev = ath_engine_get_model(eng);
    PyObject *owner = NULL;
    ath_error err;
    unsigned flags;
    int zp, accepts_tiles = -1;

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
    if (ath_engine_set_model_ex(eng, m, accepts_tiles, &err) != ATH_OK) {
        Py_DECREF(owner);
        athpy_raise(&err);
        return -1;
    }
    zp = m->zero_preserving;
    if (cfg->background == ATH_BACKGROUND_ZERO && zp < 0) {
        /* the probe may run Python code (the caller holds the busy guard) */
        zp = athpy_model_probe_zero(m, 2 * cfg->d_state, cfg->patch, cfg->patch);
        if (zp < 0) goto fail;
    }
    flags = ath_engine_exactness(eng, m, zp);
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
    ath_engine_set_model(eng, prev, NULL); /* was valid before: cannot fail */
    Py_DECREF(owner);
    return -1;
}

/* Runs n steps (the caller holds the busy guard); returns the matter count
 * or -1 with an exception. */
static long long do_steps(AthPyEngine *self, long long n) {
    long long i;
    int64_t count = (int64_t)ath_engine_matter_count(ENG(self));
    for (i = 0; i < n; i++) {
        ath_error err;
        ath_status st;
        ath_error_clear(&err);
        Py_BEGIN_ALLOW_THREADS
        st = ath_engine_step(ENG(self), &count, &err);
        Py_END_ALLOW_THREADS
        if (st != ATH_OK) {
            athpy_engine_raise_and_record(BASE(self), &err);
            return -1;
        }
        if (n > 1 && PyErr_CheckSignals() < 0) return -1;
    }
    return (long long)count;
}

static PyObject *steps_result(AthPyEngine *self, long long n) {
    long long count = do_steps(self, n);
    return count < 0 ? NULL : PyLong_FromLongLong(count);
}

static PyObject *engine_step(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"n", NULL};
    PyObject *on = NULL;
    int64_t n = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:step", kwlist, &on)) return NULL;
    ENTER(self);
    if (on != NULL && athpy_index(on, "n", 0, INT64_MAX, ATHPY_INT_RANGE_VALUE, &n) < 0) LEAVE_RETURN(self, NULL);
    LEAVE_RETURN(self, steps_result(self, (long long)n));
}

static PyObject *engine_step_native(AthPyEngine *self, PyObject *noargs) {
    (void)noargs;
    ENTER(self);
    LEAVE_RETURN(self, steps_result(self, 1));
}

static PyObject *add_particle_impl(AthPyEngine *self, PyObject *ocoord, PyObject *ostate) {
    PyArrayObject *st;
    ath_coord c;
    ath_error err;
    ath_status s;
    if (athpy_parse_coord(ocoord, "coord", &c) < 0) return NULL;
    st = athpy_complex_array(ostate, "state");
    if (st == NULL) return NULL;
    if (athpy_check_states(&st, "state", -1, (npy_intp)CFG(self)->d_state) < 0) {
        Py_DECREF(st);
        return NULL;
    }
    s = ath_engine_add_particles(ENG(self), 1, &c, (const ath_cf32 *)PyArray_DATA(st), &err);
    Py_DECREF(st);
    if (s != ATH_OK) return athpy_raise(&err);
    Py_RETURN_NONE;
}

static PyObject *engine_add_particle(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"coord", "state", NULL};
    PyObject *ocoord, *ostate;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:add_particle", kwlist, &ocoord, &ostate)) return NULL;
    ENTER(self);
    LEAVE_RETURN(self, add_particle_impl(self, ocoord, ostate));
}

static PyObject *add_particles_impl(AthPyEngine *self, PyObject *ocoords, PyObject *ostates) {
    PyArrayObject *coords, *states;
    ath_error err;
    ath_status s;
    npy_intp n;
    coords = athpy_coords_array(ocoords, "coords");
    if (coords == NULL) return NULL;
    states = athpy_complex_array(ostates, "states");
    if (states == NULL) {
        Py_DECREF(coords);
        return NULL;
    }
    /* sizes only now: every conversion has run */
    n = PyArray_DIM(coords, 0);
    if (athpy_check_states(&states, "states", n, (npy_intp)CFG(self)->d_state) < 0) {
        Py_DECREF(coords);
        Py_DECREF(states);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    s = ath_engine_add_particles(ENG(self), (size_t)n, (const ath_coord *)PyArray_DATA(coords),
                                 (const ath_cf32 *)PyArray_DATA(states), &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(coords);
    Py_DECREF(states);
    if (s != ATH_OK) return athpy_raise(&err);
    Py_RETURN_NONE;
}

static PyObject *engine_add_particles(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"coords", "states", NULL};
    PyObject *ocoords, *ostates;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:add_particles", kwlist, &ocoords, &ostates)) return NULL;
    ENTER(self);
    LEAVE_RETURN(self, add_particles_impl(self, ocoords, ostates));
}

static PyObject *get_state_at_impl(AthPyEngine *self, PyObject *ocoord) {
    PyObject *res;
    npy_intp dims[1];
    ath_coord c;
    ath_error err;
    if (athpy_parse_coord(ocoord, "coord", &c) < 0) return NULL;
    dims[0] = (npy_intp)CFG(self)->d_state;
    res = PyArray_SimpleNew(1, dims, NPY_COMPLEX64);
    if (res == NULL) return NULL;
    if (ath_engine_get_states(ENG(self), 1, &c, (ath_cf32 *)PyArray_DATA((PyArrayObject *)res), &err) != ATH_OK) {
        Py_DECREF(res);
        return athpy_raise(&err);
    }
    return res;
}

static PyObject *engine_get_state_at(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"coord", NULL};
    PyObject *ocoord;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:get_state_at", kwlist, &ocoord)) return NULL;
    ENTER(self);
    LEAVE_RETURN(self, get_state_at_impl(self, ocoord));
}

static PyObject *get_states_impl(AthPyEngine *self, PyObject *ocoords) {
    PyObject *res;
    PyArrayObject *coords;
    npy_intp dims[2];
    ath_error err;
    ath_status s;
    coords = athpy_coords_array(ocoords, "coords");
    if (coords == NULL) return NULL;
    dims[0] = PyArray_DIM(coords, 0);
    dims[1] = (npy_intp)CFG(self)->d_state;
    if ((double)dims[0] * (double)dims[1] > (double)ATHPY_MAX_REGION_CELLS) {
        Py_DECREF(coords);
        return PyErr_Format(PyExc_ValueError, "coords: too many cells for one call");
    }
    res = PyArray_SimpleNew(2, dims, NPY_COMPLEX64);
    if (res == NULL) {
        Py_DECREF(coords);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    s = ath_engine_get_states(ENG(self), (size_t)dims[0], (const ath_coord *)PyArray_DATA(coords),
                              (ath_cf32 *)PyArray_DATA((PyArrayObject *)res), &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(coords);
    if (s != ATH_OK) {
        Py_DECREF(res);
        return athpy_raise(&err);
    }
    return res;
}

static PyObject *engine_get_states(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"coords", NULL};
    PyObject *ocoords;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:get_states", kwlist, &ocoords)) return NULL;
    ENTER(self);
    LEAVE_RETURN(self, get_states_impl(self, ocoords));
}

/* The matter's coordinates (and states) copied into arrays allocated before
 * the copy, so that nothing of the map is read across an allocation. */
static PyObject *matter_impl(AthPyEngine *self, int with_states) {
    const ath_engine *e = ENG(self);
    PyObject *coords, *states = NULL;
    npy_intp dims[2];
    dims[0] = (npy_intp)ath_engine_matter_count(e);
    dims[1] = 3;
    coords = PyArray_SimpleNew(2, dims, NPY_INT64);
    if (coords == NULL) return NULL;
    if (with_states) {
        dims[1] = (npy_intp)ath_engine_get_config(e)->d_state;
        states = PyArray_SimpleNew(2, dims, NPY_COMPLEX64);
        if (states == NULL) {
            Py_DECREF(coords);
            return NULL;
        }
    }
    if (dims[0] > 0)
        ath_engine_copy_matter(e, (ath_coord *)PyArray_DATA((PyArrayObject *)coords),
                               states != NULL ? (ath_cf32 *)PyArray_DATA((PyArrayObject *)states) : NULL);
    if (!with_states) return coords;
    return Py_BuildValue("(NN)", coords, states);
}

static PyObject *engine_matter(AthPyEngine *self, PyObject *noargs) {
    (void)noargs;
    ENTER(self);
    LEAVE_RETURN(self, matter_impl(self, 1));
}

static PyObject *engine_get_active_coords(AthPyEngine *self, PyObject *noargs) {
    (void)noargs;
    ENTER(self);
    LEAVE_RETURN(self, matter_impl(self, 0));
}

static PyObject *engine_get_matter_count(AthPyEngine *self, PyObject *noargs) {
    (void)noargs;
    ENTER(self);
    LEAVE_RETURN(self, PyLong_FromSize_t(ath_engine_matter_count(ENG(self))));
}

static PyObject *engine_get_step_count(AthPyEngine *self, PyObject *noargs) {
    (void)noargs;
    ENTER(self);
    LEAVE_RETURN(self, PyLong_FromLongLong((long long)ath_engine_step_count(ENG(self))));
}

static PyObject *engine_clear(AthPyEngine *self, PyObject *noargs) {
    (void)noargs;
    ENTER(self);
    ath_engine_clear(ENG(self));
    athpy_engine_leave(BASE(self));
    Py_RETURN_NONE;
}

static PyObject *activate_impl(AthPyEngine *self, PyObject *ocoord, PyObject *oradius) {
    int64_t radius = 1;
    ath_coord c;
    ath_error err;
    if (athpy_parse_coord(ocoord, "coord", &c) < 0) return NULL;
    if (oradius != NULL && athpy_index(oradius, "radius", 0, INT64_MAX, ATHPY_INT_RANGE_VALUE, &radius) < 0)
        return NULL;
    if (ath_engine_activate_neighborhood(ENG(self), c, radius, &err) != ATH_OK) return athpy_raise(&err);
    Py_RETURN_NONE;
}

static PyObject *engine_activate_neighborhood(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"coord", "radius", NULL};
    PyObject *ocoord, *oradius = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:activate_neighborhood", kwlist, &ocoord, &oradius))
        return NULL;
    ENTER(self);
    LEAVE_RETURN(self, activate_impl(self, ocoord, oradius));
}

static PyObject *query_radius_impl(AthPyEngine *self, PyObject *ocenter, PyObject *oradius) {
    PyObject *res;
    double radius;
    ath_coord c, *out = NULL;
    size_t n = 0;
    npy_intp dims[2];
    ath_error err;
    if (athpy_parse_coord(ocenter, "center", &c) < 0) return NULL;
    if (athpy_real(oradius, "radius", 1, &radius) < 0) return NULL;
    if (radius < 0.0) return PyErr_Format(PyExc_ValueError, "radius: must be finite and >= 0, got %R", oradius);
    if (ath_engine_query_radius(ENG(self), c, radius, &out, &n, &err) != ATH_OK) return athpy_raise(&err);
    dims[0] = (npy_intp)n;
    dims[1] = 3;
    res = PyArray_SimpleNew(2, dims, NPY_INT64);
    if (res != NULL && n > 0) memcpy(PyArray_DATA((PyArrayObject *)res), out, n * sizeof(ath_coord));
    ath_free(out); /* allocated by the engine through ath_malloc */
    return res;
}

static PyObject *engine_query_radius(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"center", "radius", NULL};
    PyObject *ocenter, *oradius;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:query_radius", kwlist, &ocenter, &oradius)) return NULL;
    ENTER(self);
    LEAVE_RETURN(self, query_radius_impl(self, ocenter, oradius));
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
    dims[2] = (npy_intp)CFG(self)->d_state;
    /* A zero background starts from calloc'd (lazily zeroed) memory: the
     * engine then only scatters the matter. */
    zeroed = CFG(self)->background == ATH_BACKGROUND_ZERO;
    res = zeroed ? PyArray_ZEROS(3, dims, NPY_COMPLEX64, 0) : PyArray_SimpleNew(3, dims, NPY_COMPLEX64);
    if (res == NULL) return NULL;
    Py_BEGIN_ALLOW_THREADS
    s = ath_engine_to_dense_ex(ENG(self), roi[0], roi[1], roi[2], roi[3], z,
                               (ath_cf32 *)PyArray_DATA((PyArrayObject *)res), zeroed, &err);
    Py_END_ALLOW_THREADS
    if (s != ATH_OK) {
        Py_DECREF(res);
        return athpy_raise(&err);
    }
    return res;
}

static PyObject *to_dense_impl(AthPyEngine *self, PyObject *oroi, PyObject *oz) {
    int64_t roi[4], z;
    if (athpy_parse_roi(oroi, ATHPY_MAX_REGION_CELLS, roi) < 0 || athpy_parse_z(oz, "z", &z) < 0) return NULL;
    /* the size limit counts values: d_state only now */
    if (athpy_roi_fits(roi, ATHPY_MAX_REGION_CELLS / CFG(self)->d_state) < 0) return NULL;
    return dense_region(self, roi, z);
}

static PyObject *engine_to_dense(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"roi", "z", NULL};
    PyObject *oroi, *oz = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:to_dense", kwlist, &oroi, &oz)) return NULL;
    ENTER(self);
    LEAVE_RETURN(self, to_dense_impl(self, oroi, oz));
}

static PyObject *viz_impl(AthPyEngine *self, const char *name, PyObject *oroi, PyObject *oz, long long channel) {
    PyObject *field, *res;
    int64_t roi[4], z, d;
    ath_viz_type type;
    if (oroi != Py_None && athpy_parse_roi(oroi, ATHPY_MAX_REGION_CELLS, roi) < 0) return NULL;
    if (athpy_parse_z(oz, "z", &z) < 0) return NULL;
    /* every conversion has run: the sizes cannot change any more */
    d = CFG(self)->d_state;
    if (athpy_viz_args(name, channel, d, &type) < 0) return NULL;
    if (oroi == Py_None) {
        roi[0] = roi[1] = 0;
        roi[2] = roi[3] = CFG(self)->grid_size;
        if ((double)roi[2] * (double)roi[3] > (double)(ATHPY_MAX_REGION_CELLS / d))
            return PyErr_Format(PyExc_ValueError, "roi: the default window [0, grid_size)^2 is too large; pass a roi");
    } else if (athpy_roi_fits(roi, ATHPY_MAX_REGION_CELLS / d) < 0) {
        return NULL;
    }
    field = dense_region(self, roi, z);
    if (field == NULL) return NULL;
    res = athpy_viz_image(type, (const ath_cf32 *)PyArray_DATA((PyArrayObject *)field), roi[3] - roi[1],
                          roi[2] - roi[0], d, channel);
    Py_DECREF(field);
    return res;
}

static PyObject *engine_compute_visualization(AthPyEngine *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"viz_type", "roi", "z", "channel", NULL};
    const char *name;
    PyObject *oroi = Py_None, *oz = NULL;
    long long channel = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|O$OL:compute_visualization", kwlist, &name, &oroi, &oz,
                                     &channel))
        return NULL;
    ENTER(self);
    LEAVE_RETURN(self, viz_impl(self, name, oroi, oz, channel));
}

static PyObject *stats_impl(AthPyEngine *self) {
    ath_engine_stats st;
    ath_engine_memory mem;
    ath_engine_get_stats(ENG(self), &st);
    ath_engine_get_memory(ENG(self), &mem);
    static const char *const paths[] = {"patches", "blocks", "leaves"};
    return Py_BuildValue("{s:L,s:L,s:L,s:s,s:n,s:n,s:n,s:n}", "evaluated", (long long)st.evaluated, "model_calls",
                         (long long)st.model_calls, "batch", (long long)st.batch, "path",
                         paths[st.path >= ATH_STEP_PATCHES && st.path <= ATH_STEP_LEAVES ? st.path : 0], "matter_bytes",
                         (Py_ssize_t)mem.matter_bytes, "scratch_bytes", (Py_ssize_t)mem.scratch_bytes,
                         "memory_bytes", (Py_ssize_t)(mem.matter_bytes + mem.scratch_bytes), "stored_cells",
                         (Py_ssize_t)ath_engine_matter_count(ENG(self)));
}

static PyObject *engine_stats(AthPyEngine *self, PyObject *noargs) {
    (void)noargs;
    ENTER(self);
    LEAVE_RETURN(self, stats_impl(self));
}

static PyObject *engine_repr(AthPyEngine *self) {
    const ath_engine_config *c;
    if (ENG(self) == NULL) return PyUnicode_FromString("Engine(<uninitialised>)");
    c = CFG(self);
    return PyUnicode_FromFormat("Engine(d_state=%lld, grid_size=%lld, matter=%zu, step=%lld)", (long long)c->d_state,
                                (long long)c->grid_size, ath_engine_matter_count(ENG(self)),
                                (long long)ath_engine_step_count(ENG(self)));
}

/* ---- read-only attributes (the shared ones are the base type's) ---- */

#define NEED_ENG(self) \
    do { if (athpy_engine_need(BASE(self)) < 0) return NULL; } while (0)

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
    {"background", (getter)get_background, NULL, NULL, NULL},
    {"extent", (getter)get_extent, NULL, NULL, NULL},
    {"threshold", (getter)get_threshold, NULL, NULL, NULL},
    {"patch", (getter)get_patch, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL}};

#define KW (PyCFunction)(void (*)(void))
static PyMethodDef engine_methods[] = {
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
     "compute_visualization(viz_type, roi=None, *, z=0, channel=0) -> (h, w) float32; (h, w, 3) holographic, (5, h, w) holographic_bulk"},
    {"stats", (PyCFunction)engine_stats, METH_NOARGS,
     "stats() -> dict: the last step's counters (evaluated, model_calls, batch), its path ('leaves', "
     "'blocks' or 'patches': how E was evaluated, same numbers on each) and the engine's memory "
     "(matter_bytes, scratch_bytes, memory_bytes, stored_cells)."},
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
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_base = &AthPyEngineBase_Type,
    .tp_traverse = athpy_engine_traverse,
    .tp_clear = athpy_engine_clear,
    .tp_new = engine_new,
    .tp_init = (initproc)engine_init,
    .tp_repr = (reprfunc)engine_repr,
    .tp_methods = engine_methods,
    .tp_getset = engine_getset,
};
