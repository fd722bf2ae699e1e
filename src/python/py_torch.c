/* py_torch.c — TorchScript models through the LibTorch shim (DESIGN §5,
 * docs/torchscript.md).
 *
 * The shim (atheria_core._torch_shim, src/torch/torch_shim.cpp) is a separate
 * shared object built only when torch is present at build time.  _core does
 * not link against it: Python finds the file (atheria_core._torch_support)
 * and passes its path here; we dlopen() it RTLD_NOW | RTLD_LOCAL and dlsym()
 * the extern "C" functions of atheria/torch_shim.h.  Handles are never
 * dlclose()d, because the models' vtables live in the shim.
 *
 * A loaded model is a PyCapsule named "atheria_core.model" that owns an
 * ath_model * (its destructor calls ath_model_destroy); the engines'
 * set_model() accepts such capsules and keeps a reference while they use it.
 *
 * Private module functions (used by _torch_support.py and the tests):
 *   _torch_load(shim_path, model_path, device="cpu", has_memory=-1,
 *               receptive_radius=-1, zero_preserving=-1, channels=-1) -> capsule
 *   _torch_cuda_available(shim_path) -> bool
 *   _torch_shim_info(shim_path) -> {"abi_version": int, "torch_version": str}
 *   _model_forward(capsule, batch, want_center=False) -> ndarray
 *   _model_memory(capsule, op) with op in "commit", "discard", "reset"
 *   _model_info(capsule) -> dict
 *   _torch_load2(..., optimize=True, probe_shape=None) -> (capsule, optimized, note)
 *   _aoti_load(shim_path, model_path, device, input_shape, memory_shape=None, ...) -> capsule
 *   _load_error_kinds() -> ((kind, exception type name), ...)   (atheria/load_error.h)
 *   _set_model_loader(loader)   (model_load.c: what Engine.load_model calls)
 */
#include "ath_py.h"

#include "atheria/load_error.h"
#include "atheria/model.h"
#include "atheria/torch_shim.h"

#include <dlfcn.h>
#include <string.h>

#define ATHPY_MODEL_CAPSULE "atheria_core.model"

typedef struct shim_api {
    char *path;
    void *handle;
    ath_torch_shim_abi_version_fn abi_version;
    ath_torch_shim_torch_version_fn torch_version;
    ath_torch_cuda_available_fn cuda_available;
    ath_torch_model_load_fn model_load;
    ath_torch_model_load2_fn model_load2;
    ath_aoti_model_load_fn aoti_load;
} shim_api;

/* The most recently opened shim (guarded by the GIL).  An older handle is
 * left open when another path is opened: models made by it stay valid. */
static shim_api g_shim;

static void *shim_sym(void *handle, const char *path, const char *name) {
    void *p;
    dlerror();
    p = dlsym(handle, name);
    if (p == NULL) {
        const char *msg = dlerror();
        PyErr_Format(PyExc_OSError, "LibTorch shim '%s' lacks the symbol %s (%s)", path, name,
                     msg != NULL ? msg : "NULL");
    }
    return p;
}

/* Opens (or returns the cached) shim at path_obj (str or os.PathLike).
 * Returns NULL with an exception set on failure.  Needs the GIL. */
static const shim_api *get_shim(PyObject *path_obj) {
    PyObject *bytes = NULL;
    const char *path;
    shim_api api;
    size_t len;
    int abi;

    if (!PyUnicode_FSConverter(path_obj, &bytes)) return NULL;
    path = PyBytes_AS_STRING(bytes);
    if (g_shim.handle != NULL && strcmp(g_shim.path, path) == 0) {
        Py_DECREF(bytes);
        return &g_shim;
    }
    memset(&api, 0, sizeof api);
    dlerror();
    api.handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (api.handle == NULL) {
        const char *msg = dlerror();
        PyErr_Format(PyExc_OSError, "cannot load the LibTorch shim '%s': %s", path,
                     msg != NULL ? msg : "unknown dlopen error");
        Py_DECREF(bytes);
        return NULL;
    }
    /* A failed check below leaves the handle open: closing a library that
     * pulled in LibTorch is not worth the risk, and it is loaded only once. */
    api.abi_version = (ath_torch_shim_abi_version_fn)shim_sym(api.handle, path, "ath_torch_shim_abi_version");
    if (api.abi_version == NULL) goto fail;
    api.torch_version =
        (ath_torch_shim_torch_version_fn)shim_sym(api.handle, path, "ath_torch_shim_torch_version");
    if (api.torch_version == NULL) goto fail;
    api.cuda_available = (ath_torch_cuda_available_fn)shim_sym(api.handle, path, "ath_torch_cuda_available");
    if (api.cuda_available == NULL) goto fail;
    api.model_load = (ath_torch_model_load_fn)shim_sym(api.handle, path, "ath_torch_model_load");
    if (api.model_load == NULL) goto fail;
    api.model_load2 = (ath_torch_model_load2_fn)shim_sym(api.handle, path, "ath_torch_model_load2");
    if (api.model_load2 == NULL) goto fail;
    api.aoti_load = (ath_aoti_model_load_fn)shim_sym(api.handle, path, "ath_aoti_model_load");
    if (api.aoti_load == NULL) goto fail;
    abi = api.abi_version();
    if (abi != ATH_TORCH_SHIM_ABI_VERSION) {
        PyErr_Format(PyExc_OSError,
                     "LibTorch shim '%s' has ABI version %d, this extension expects %d: rebuild atheria_core",
                     path, abi, ATH_TORCH_SHIM_ABI_VERSION);
        goto fail;
    }
    len = strlen(path);
    api.path = PyMem_Malloc(len + 1);
    if (api.path == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    memcpy(api.path, path, len + 1);
    Py_DECREF(bytes);
    PyMem_Free(g_shim.path);
    g_shim = api;
    return &g_shim;
fail:
    Py_DECREF(bytes);
    return NULL;
}

/* ------------------------------------------------------------ capsules */

static void model_capsule_destructor(PyObject *capsule) {
    ath_model *model = PyCapsule_GetPointer(capsule, ATHPY_MODEL_CAPSULE);
    if (model == NULL) {
        PyErr_Clear();
        return;
    }
    ath_model_destroy(model);
}

/* The ath_model in a capsule named "atheria_core.model", or NULL + TypeError. */
static ath_model *capsule_model(PyObject *obj, const char *argname) {
    ath_model *model;
    if (!PyCapsule_IsValid(obj, ATHPY_MODEL_CAPSULE)) {
        PyErr_Format(PyExc_TypeError, "%s: expected an atheria_core.model capsule, got %s", argname,
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    model = PyCapsule_GetPointer(obj, ATHPY_MODEL_CAPSULE);
    if (model == NULL || model->ops == NULL) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "%s: empty model capsule", argname);
        return NULL;
    }
    return model;
}

/* Raises the exception for a failed load: the Python type of the kind's row
 * in atheria/load_error.h (FileNotFoundError, OSError, ValueError, ...).  The exception gets an
 * attribute `path` (the model path) and an attribute `kind` with the stable name of the failure ("not_found", "corrupt",
 * ...: the kinds of atheria_core._model_loader.ModelLoadError). */
static PyObject *raise_load_error(int kind, const ath_error *err, PyObject *model_path) {
    PyObject *type, *exc, *kind_str, *path;
    const char *msg = err->message[0] ? err->message : "cannot load the TorchScript model";

    switch (kind) {
#define ATHPY_LOAD_EXC_(id, name, status, pyexc) \
    case ATH_LOAD_##id: type = PyExc_##pyexc; break;
        ATH_LOAD_ERRORS(ATHPY_LOAD_EXC_)
#undef ATHPY_LOAD_EXC_
    default: type = PyExc_RuntimeError; break;
    }
    if (kind == ATH_LOAD_OK || kind == ATH_LOAD_OTHER) {
        type = err->code == ATH_ERR_INVALID ? PyExc_ValueError
               : err->code == ATH_ERR_IO    ? PyExc_OSError
               : err->code == ATH_ERR_NOMEM ? PyExc_MemoryError
                                            : PyExc_RuntimeError;
    }
    exc = PyObject_CallFunction(type, "s", msg);
    if (exc == NULL) return NULL;
    kind_str = PyUnicode_FromString(ath_load_error_name(kind));
    if (kind_str == NULL || PyObject_SetAttrString(exc, "kind", kind_str) < 0) {
        Py_XDECREF(kind_str);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(kind_str);
    path = PyOS_FSPath(model_path);
    if (path == NULL || PyObject_SetAttrString(exc, "path", path) < 0) {
        Py_XDECREF(path);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(path);
    PyErr_SetObject(type, exc);
    Py_DECREF(exc);
    return NULL;
}

/* ------------------------------------------------------------ functions */

static PyObject *py_torch_load(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"shim_path", "model_path", "device", "has_memory", "receptive_radius",
                             "zero_preserving", "channels", NULL};
    PyObject *shim_path, *model_path, *path_bytes = NULL, *capsule;
    const char *device = "cpu";
    int has_memory = -1, zero_preserving = -1, kind = ATH_LOAD_OTHER;
    long long receptive_radius = -1, channels = -1;
    const shim_api *shim;
    ath_torch_model_load_fn load;
    ath_model *model = NULL;
    ath_error err;
    ath_status st;
    (void)self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|siLiL:_torch_load", kwlist, &shim_path, &model_path,
                                     &device, &has_memory, &receptive_radius, &zero_preserving, &channels))
        return NULL;
    if (has_memory < -1 || has_memory > 1)
        return PyErr_Format(PyExc_ValueError, "_torch_load: has_memory must be -1, 0 or 1, got %d", has_memory);
    if (zero_preserving < -1 || zero_preserving > 1)
        return PyErr_Format(PyExc_ValueError, "_torch_load: zero_preserving must be -1, 0 or 1, got %d",
                            zero_preserving);
    if (receptive_radius < -1 || receptive_radius > ATH_MAX_GRID_SIZE)
        return PyErr_Format(PyExc_ValueError, "_torch_load: receptive_radius must be -1 or in [0, %lld], got %lld",
                            (long long)ATH_MAX_GRID_SIZE, receptive_radius);
    if (channels != -1 && (channels < 1 || channels > 2 * ATH_MAX_D_STATE))
        return PyErr_Format(PyExc_ValueError, "_torch_load: channels must be -1 or in [1, %d], got %lld",
                            2 * ATH_MAX_D_STATE, channels);
    shim = get_shim(shim_path);
    if (shim == NULL) return NULL;
    load = shim->model_load; /* copied: g_shim may change while the GIL is released */
    if (!PyUnicode_FSConverter(model_path, &path_bytes)) return NULL;
    ath_error_clear(&err);

    Py_BEGIN_ALLOW_THREADS
    st = load(PyBytes_AS_STRING(path_bytes), device, has_memory, (int64_t)receptive_radius, zero_preserving,
              (int64_t)channels, &model, &kind, &err);
    Py_END_ALLOW_THREADS

    Py_DECREF(path_bytes);
    if (st != ATH_OK || model == NULL) {
        if (err.code == ATH_OK) err.code = st != ATH_OK ? st : ATH_ERR_MODEL;
        return raise_load_error(kind, &err, model_path);
    }
    capsule = PyCapsule_New(model, ATHPY_MODEL_CAPSULE, model_capsule_destructor);
    if (capsule == NULL) ath_model_destroy(model);
    return capsule;
}

/* A shape argument: None (-> *present = 0) or a sequence of four ints in [1, 2**20]. */
static int parse_shape4(PyObject *obj, const char *argname, int64_t out[4], int *present) {
    PyObject *seq;
    Py_ssize_t i;
    *present = 0;
    if (obj == NULL || obj == Py_None) return 0;
    seq = PySequence_Fast(obj, "shape must be a sequence");
    if (seq == NULL) {
        PyErr_Format(PyExc_TypeError, "%s: expected a sequence of 4 ints", argname);
        return -1;
    }
    if (PySequence_Fast_GET_SIZE(seq) != 4) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s: expected 4 ints (B, C, H, W)", argname);
        return -1;
    }
    for (i = 0; i < 4; i++) {
        long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: expected 4 ints (B, C, H, W)", argname);
            return -1;
        }
        if (v < 1 || v > (1LL << 20)) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_ValueError, "%s: entries must be in [1, 2**20], got %lld", argname, v);
            return -1;
        }
        out[i] = (int64_t)v;
    }
    Py_DECREF(seq);
    *present = 1;
    return 0;
}

static PyObject *py_torch_load2(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"shim_path", "model_path", "device", "has_memory", "receptive_radius",
                             "zero_preserving", "channels", "optimize", "probe_shape", NULL};
    PyObject *shim_path, *model_path, *path_bytes = NULL, *capsule, *probe_obj = Py_None;
    const char *device = "cpu";
    int has_memory = -1, zero_preserving = -1, kind = ATH_LOAD_OTHER, optimize = 1, optimized = 0, have_probe;
    long long receptive_radius = -1, channels = -1;
    int64_t probe[4] = {0, 0, 0, 0};
    char note[256];
    const shim_api *shim;
    ath_torch_model_load2_fn load;
    ath_model *model = NULL;
    ath_error err;
    ath_status st;
    (void)self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|siLiLpO:_torch_load2", kwlist, &shim_path, &model_path,
                                     &device, &has_memory, &receptive_radius, &zero_preserving, &channels,
                                     &optimize, &probe_obj))
        return NULL;
    if (has_memory < -1 || has_memory > 1 || zero_preserving < -1 || zero_preserving > 1)
        return PyErr_Format(PyExc_ValueError, "_torch_load2: has_memory and zero_preserving must be -1, 0 or 1");
    if (receptive_radius < -1 || receptive_radius > ATH_MAX_GRID_SIZE)
        return PyErr_Format(PyExc_ValueError, "_torch_load2: receptive_radius must be -1 or in [0, %lld]",
                            (long long)ATH_MAX_GRID_SIZE);
    if (channels != -1 && (channels < 1 || channels > 2 * ATH_MAX_D_STATE))
        return PyErr_Format(PyExc_ValueError, "_torch_load2: channels must be -1 or in [1, %d]",
                            2 * ATH_MAX_D_STATE);
    if (parse_shape4(probe_obj, "probe_shape", probe, &have_probe) < 0) return NULL;
    shim = get_shim(shim_path);
    if (shim == NULL) return NULL;
    load = shim->model_load2;
    if (!PyUnicode_FSConverter(model_path, &path_bytes)) return NULL;
    ath_error_clear(&err);
    note[0] = '\0';

    Py_BEGIN_ALLOW_THREADS
    st = load(PyBytes_AS_STRING(path_bytes), device, has_memory, (int64_t)receptive_radius, zero_preserving,
              (int64_t)channels, optimize, have_probe ? probe : NULL, &model, &optimized, note, sizeof note, &kind,
              &err);
    Py_END_ALLOW_THREADS

    Py_DECREF(path_bytes);
    if (st != ATH_OK || model == NULL) {
        if (err.code == ATH_OK) err.code = st != ATH_OK ? st : ATH_ERR_MODEL;
        return raise_load_error(kind, &err, model_path);
    }
    capsule = PyCapsule_New(model, ATHPY_MODEL_CAPSULE, model_capsule_destructor);
    if (capsule == NULL) {
        ath_model_destroy(model);
        return NULL;
    }
    return Py_BuildValue("(NOs)", capsule, optimized ? Py_True : Py_False, note);
}

static PyObject *py_aoti_load(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"shim_path", "model_path", "device", "input_shape", "memory_shape",
                             "receptive_radius", "zero_preserving", NULL};
    PyObject *shim_path, *model_path, *path_bytes = NULL, *capsule, *in_obj, *mem_obj = Py_None;
    const char *device = "cpu";
    int zero_preserving = -1, kind = ATH_LOAD_OTHER, have_in, have_mem;
    long long receptive_radius = -1;
    int64_t in_shape[4], mem_shape[4];
    const shim_api *shim;
    ath_aoti_model_load_fn load;
    ath_model *model = NULL;
    ath_error err;
    ath_status st;
    (void)self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOsO|OLi:_aoti_load", kwlist, &shim_path, &model_path, &device,
                                     &in_obj, &mem_obj, &receptive_radius, &zero_preserving))
        return NULL;
    if (parse_shape4(in_obj, "input_shape", in_shape, &have_in) < 0) return NULL;
    if (!have_in) return PyErr_Format(PyExc_ValueError, "_aoti_load: input_shape is required");
    if (in_shape[0] != 1 || in_shape[1] > 2 * ATH_MAX_D_STATE)
        return PyErr_Format(PyExc_ValueError, "_aoti_load: input_shape must be (1, C <= %d, H, W)",
                            2 * ATH_MAX_D_STATE);
    if (parse_shape4(mem_obj, "memory_shape", mem_shape, &have_mem) < 0) return NULL;
    if (zero_preserving < -1 || zero_preserving > 1 || receptive_radius < -1 || receptive_radius > ATH_MAX_GRID_SIZE)
        return PyErr_Format(PyExc_ValueError, "_aoti_load: bad receptive_radius or zero_preserving");
    shim = get_shim(shim_path);
    if (shim == NULL) return NULL;
    load = shim->aoti_load;
    if (!PyUnicode_FSConverter(model_path, &path_bytes)) return NULL;
    ath_error_clear(&err);

    Py_BEGIN_ALLOW_THREADS
    st = load(PyBytes_AS_STRING(path_bytes), device, in_shape, have_mem ? mem_shape : NULL,
              (int64_t)receptive_radius, zero_preserving, &model, &kind, &err);
    Py_END_ALLOW_THREADS

    Py_DECREF(path_bytes);
    if (st != ATH_OK || model == NULL) {
        if (err.code == ATH_OK) err.code = st != ATH_OK ? st : ATH_ERR_MODEL;
        return raise_load_error(kind, &err, model_path);
    }
    capsule = PyCapsule_New(model, ATHPY_MODEL_CAPSULE, model_capsule_destructor);
    if (capsule == NULL) ath_model_destroy(model);
    return capsule;
}

static PyObject *py_load_error_kinds(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    return Py_BuildValue("("
#define ATHPY_KIND_FMT_(id, name, status, pyexc) "(ss)"
                         ATH_LOAD_ERRORS(ATHPY_KIND_FMT_)
#undef ATHPY_KIND_FMT_
                         ")"
#define ATHPY_KIND_ARGS_(id, name, status, pyexc) , name, #pyexc
                         ATH_LOAD_ERRORS(ATHPY_KIND_ARGS_)
#undef ATHPY_KIND_ARGS_
    );
}

static PyObject *py_torch_cuda_available(PyObject *self, PyObject *shim_path) {
    const shim_api *shim;
    int ok;
    (void)self;
    shim = get_shim(shim_path);
    if (shim == NULL) return NULL;
    ok = shim->cuda_available();
    return PyBool_FromLong(ok);
}

static PyObject *py_torch_shim_info(PyObject *self, PyObject *shim_path) {
    const shim_api *shim;
    const char *tv;
    (void)self;
    shim = get_shim(shim_path);
    if (shim == NULL) return NULL;
    tv = shim->torch_version();
    return Py_BuildValue("{s:i,s:s,s:s}", "abi_version", shim->abi_version(), "torch_version",
                         tv != NULL ? tv : "", "path", shim->path);
}

static PyObject *py_model_forward(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"model", "batch", "want_center", NULL};
    PyObject *cap, *batch_obj, *result = NULL;
    PyArrayObject *batch = NULL, *out = NULL;
    int want_center = 0, i;
    ath_model *model;
    int64_t shape[4];
    npy_intp dims[4];
    ath_out_layout layout = ATH_OUT_FULL;
    ath_error err;
    ath_status st;
    (void)self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|p:_model_forward", kwlist, &cap, &batch_obj, &want_center))
        return NULL;
    model = capsule_model(cap, "_model_forward: model");
    if (model == NULL) return NULL;
    batch = (PyArrayObject *)PyArray_FROMANY(batch_obj, NPY_FLOAT32, 0, 0,
                                             NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | NPY_ARRAY_FORCECAST);
    if (batch == NULL) return NULL;
    if (PyArray_NDIM(batch) != 4) {
        PyErr_Format(PyExc_ValueError, "_model_forward: batch must have shape (B, C, H, W), got %d dimensions",
                     PyArray_NDIM(batch));
        goto done;
    }
    for (i = 0; i < 4; i++) {
        dims[i] = PyArray_DIM(batch, i);
        shape[i] = (int64_t)dims[i];
        if (dims[i] < 1) {
            PyErr_SetString(PyExc_ValueError, "_model_forward: batch has an empty dimension");
            goto done;
        }
    }
    out = (PyArrayObject *)PyArray_SimpleNew(4, dims, NPY_FLOAT32);
    if (out == NULL) goto done;
    ath_error_clear(&err);

    Py_BEGIN_ALLOW_THREADS
    st = ath_model_forward(model, (const float *)PyArray_DATA(batch), shape, (float *)PyArray_DATA(out),
                           want_center, &layout, &err);
    Py_END_ALLOW_THREADS

    if (st != ATH_OK) {
        if (err.code == ATH_OK) err.code = st;
        athpy_raise(&err);
        goto done;
    }
    if (layout == ATH_OUT_CENTER) {
        npy_intp d2[2] = {dims[0], dims[1]};
        PyArrayObject *ctr = (PyArrayObject *)PyArray_SimpleNew(2, d2, NPY_FLOAT32);
        if (ctr == NULL) goto done;
        memcpy(PyArray_DATA(ctr), PyArray_DATA(out), sizeof(float) * (size_t)(dims[0] * dims[1]));
        result = (PyObject *)ctr;
    } else {
        result = (PyObject *)out;
        Py_INCREF(out);
    }
done:
    Py_XDECREF(batch);
    Py_XDECREF(out);
    return result;
}

static PyObject *py_model_memory(PyObject *self, PyObject *args) {
    PyObject *cap;
    const char *op;
    ath_model *model;
    void (*fn)(void *) = NULL;
    (void)self;

    if (!PyArg_ParseTuple(args, "Os:_model_memory", &cap, &op)) return NULL;
    model = capsule_model(cap, "_model_memory: model");
    if (model == NULL) return NULL;
    if (strcmp(op, "commit") == 0) {
        fn = model->ops->commit_memory;
    } else if (strcmp(op, "discard") == 0) {
        fn = model->ops->discard_memory;
    } else if (strcmp(op, "reset") == 0) {
        fn = model->ops->reset_memory;
    } else {
        return PyErr_Format(PyExc_ValueError,
                            "_model_memory: op must be 'commit', 'discard' or 'reset', got '%s'", op);
    }
    if (fn != NULL) { /* stateless models have no memory: a no-op */
        Py_BEGIN_ALLOW_THREADS
        fn(model->ctx);
        Py_END_ALLOW_THREADS
    }
    return PyBool_FromLong(fn != NULL);
}

static PyObject *py_model_info(PyObject *self, PyObject *cap) {
    ath_model *model;
    (void)self;
    model = capsule_model(cap, "_model_info: model");
    if (model == NULL) return NULL;
    return Py_BuildValue("{s:s,s:L,s:L,s:i,s:i}", "name", model->ops->name ? model->ops->name : "?",
                         "channels", (long long)model->channels, "receptive_radius",
                         (long long)model->receptive_radius, "zero_preserving", model->zero_preserving,
                         "has_memory", model->has_memory);
}

PyMethodDef athpy_torch_methods[] = {
    {"_torch_load", (PyCFunction)(void (*)(void))py_torch_load, METH_VARARGS | METH_KEYWORDS,
     "_torch_load(shim_path, model_path, device='cpu', has_memory=-1, receptive_radius=-1, "
     "zero_preserving=-1, channels=-1) -> capsule\n\n"
     "Loads a TorchScript file through the LibTorch shim at shim_path (private; use\n"
     "atheria_core._torch_support.load_via_shim).  has_memory=-1 decides from the file.\n"
     "Raises FileNotFoundError / OSError / RuntimeError / ValueError with .kind set."},
    {"_torch_load2", (PyCFunction)(void (*)(void))py_torch_load2, METH_VARARGS | METH_KEYWORDS,
     "_torch_load2(shim_path, model_path, device='cpu', has_memory=-1, receptive_radius=-1,\n"
     "zero_preserving=-1, channels=-1, optimize=True, probe_shape=None) -> (capsule, optimized, note)\n\n"
     "As _torch_load; optimize freezes + optimize_for_inference's the module and keeps that only\n"
     "when it matches the plain forward within 1e-5 on a probe of probe_shape (note says why)."},
    {"_aoti_load", (PyCFunction)(void (*)(void))py_aoti_load, METH_VARARGS | METH_KEYWORDS,
     "_aoti_load(shim_path, model_path, device, input_shape, memory_shape=None, receptive_radius=-1,\n"
     "zero_preserving=-1) -> capsule\n\n"
     "Loads an AOTInductor .pt2 package compiled for input_shape (1, C, H, W) through the shim\n"
     "(AOTIModelPackageLoader); memory_shape (B, Cm, Hm, Wm) for memory models (zero initial h, c)."},
    {"_set_model_loader", athpy_set_model_loader, METH_O,
     "_set_model_loader(loader) -> None: the callable loader(engine, path) -> model that\n"
     "Engine.load_model / DenseEngine.load_model use (registered by atheria_core._model_loader)."},
    {"_load_error_kinds", py_load_error_kinds, METH_NOARGS,
     "_load_error_kinds() -> tuple of (kind, exception type name): atheria/load_error.h."},
    {"_torch_cuda_available", py_torch_cuda_available, METH_O,
     "_torch_cuda_available(shim_path) -> bool: LibTorch sees a CUDA device."},
    {"_torch_shim_info", py_torch_shim_info, METH_O,
     "_torch_shim_info(shim_path) -> dict: opens the shim and reports its ABI and torch versions."},
    {"_model_forward", (PyCFunction)(void (*)(void))py_model_forward, METH_VARARGS | METH_KEYWORDS,
     "_model_forward(model, batch, want_center=False) -> ndarray\n\n"
     "Runs a model capsule on a float32 (B, C, H, W) batch; returns (B, C, H, W), or (B, C)\n"
     "when want_center and the model returned only centre values.  Memory models keep the\n"
     "new memory pending until _model_memory(model, 'commit')."},
    {"_model_memory", py_model_memory, METH_VARARGS,
     "_model_memory(model, op) -> bool: op 'commit', 'discard' or 'reset' of a memory model's\n"
     "(h, c); False (and nothing done) for a stateless model."},
    {"_model_info", py_model_info, METH_O,
     "_model_info(model) -> dict(name, channels, receptive_radius, zero_preserving, has_memory)."},
    {NULL, NULL, 0, NULL}};
