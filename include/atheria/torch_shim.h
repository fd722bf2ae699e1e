/* atheria/torch_shim.h — the extern "C" surface of the LibTorch shim
 * (atheria_core._torch_shim, src/torch/torch_shim.cpp; DESIGN §5,
 * docs/torchscript.md).
 *
 * The shim is a separate shared object built only when torch is present at
 * build time.  The extension (_core, src/python/py_torch.c) dlopen()s it by
 * path and dlsym()s the functions below, so nothing here mentions a torch or
 * Python type, and the C core never links against LibTorch.
 *
 * A loaded model is an ordinary ath_model (atheria/model.h): the caller owns
 * it and releases it with ath_model_destroy().  The shim allocates the
 * ath_model struct with malloc(), as ath_model_destroy() expects.
 * The shared object must stay loaded (no dlclose) while any of its models
 * lives: their vtables point into it.
 *
 * No function here lets a C++ exception escape; failures are reported through
 * ath_status / ath_error (and, for loads, an ath_torch_load_error kind).
 */
#ifndef ATHERIA_TORCH_SHIM_H
#define ATHERIA_TORCH_SHIM_H

#include "atheria/common.h"
#include "atheria/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ATH_TORCH_API __attribute__((visibility("default")))
#else
#define ATH_TORCH_API
#endif

/* Bumped whenever a signature below or the meaning of an argument changes.
 * A loader compiled against another value must refuse the shim. */
#define ATH_TORCH_SHIM_ABI_VERSION 1

/* Why a load failed (the message in ath_error says it in words).  The names
 * (ath_torch_load_error_name) are the `kind`s of the Python route's
 * ModelLoadError (atheria_core._model_loader.ERROR_KINDS), so both routes
 * report a bad file the same way. */
typedef enum ath_torch_load_error {
    ATH_TORCH_LOAD_OK = 0,
    ATH_TORCH_LOAD_MISSING_FILE,         /* "not_found": no such file                     -> ATH_ERR_IO      */
    ATH_TORCH_LOAD_UNREADABLE,           /* "not_a_file": a directory, no permission, ... -> ATH_ERR_IO      */
    ATH_TORCH_LOAD_NOT_ZIP,              /* "not_zip": not a zip archive (not TorchScript) -> ATH_ERR_IO     */
    ATH_TORCH_LOAD_NOT_TORCHSCRIPT,      /* "not_torchscript": a zip without TorchScript code -> ATH_ERR_IO  */
    ATH_TORCH_LOAD_CORRUPT,              /* "corrupt": truncated / damaged archive or records -> ATH_ERR_IO  */
    ATH_TORCH_LOAD_INCOMPATIBLE_VERSION, /* "incompatible": newer file format / unknown operators -> ATH_ERR_IO */
    ATH_TORCH_LOAD_CUDA_UNAVAILABLE,     /* "cuda_unavailable": device cuda without CUDA  -> ATH_ERR_MODEL   */
    ATH_TORCH_LOAD_BAD_DEVICE,           /* "bad_device": invalid or not cpu/cuda         -> ATH_ERR_INVALID */
    ATH_TORCH_LOAD_BAD_MODEL,            /* "bad_model": loaded, but not the file contract -> ATH_ERR_MODEL  */
    ATH_TORCH_LOAD_NOMEM,                /* "out_of_memory"                               -> ATH_ERR_NOMEM   */
    ATH_TORCH_LOAD_OTHER                 /* "other": anything else LibTorch reported      -> ATH_ERR_MODEL   */
} ath_torch_load_error;

/* Stable name of a load error kind ("not_found", ...). */
static inline const char *ath_torch_load_error_name(int kind) {
    switch (kind) {
    case ATH_TORCH_LOAD_OK: return "ok";
    case ATH_TORCH_LOAD_MISSING_FILE: return "not_found";
    case ATH_TORCH_LOAD_UNREADABLE: return "not_a_file";
    case ATH_TORCH_LOAD_NOT_ZIP: return "not_zip";
    case ATH_TORCH_LOAD_NOT_TORCHSCRIPT: return "not_torchscript";
    case ATH_TORCH_LOAD_CORRUPT: return "corrupt";
    case ATH_TORCH_LOAD_INCOMPATIBLE_VERSION: return "incompatible";
    case ATH_TORCH_LOAD_CUDA_UNAVAILABLE: return "cuda_unavailable";
    case ATH_TORCH_LOAD_BAD_DEVICE: return "bad_device";
    case ATH_TORCH_LOAD_BAD_MODEL: return "bad_model";
    case ATH_TORCH_LOAD_NOMEM: return "out_of_memory";
    default: return "other";
    }
}

/* ATH_TORCH_SHIM_ABI_VERSION of the shim as built. */
ATH_TORCH_API int ath_torch_shim_abi_version(void);
/* The LibTorch version the shim was compiled against, e.g. "2.13.0". */
ATH_TORCH_API const char *ath_torch_shim_torch_version(void);
/* 1 if LibTorch sees at least one CUDA device, else 0. */
ATH_TORCH_API int ath_torch_cuda_available(void);

/* Loads a TorchScript file (torch::jit::load) onto `device` ("cpu", "cuda",
 * "cuda:N"; NULL or "" = "cpu") and wraps it as an ath_model.
 *
 *   has_memory        1: forward(x, h, c) -> (delta, h', c') with an exported
 *                        init_memory(x) -> (h, c);  0: forward(x) -> delta;
 *                       -1: unknown (no metadata): decided from the file —
 *                        a memory model iff forward takes three tensors and
 *                        init_memory exists.
 *   receptive_radius  cells, or -1 if unknown          (copied to the ath_model)
 *   zero_preserving   1 / 0 / -1 unknown               (copied to the ath_model)
 *   channels          2*d_state the model expects, or -1 if unknown; when
 *                     known, forward() refuses a batch with another C.
 *
 * forward() runs the module under c10::InferenceMode without touching Python
 * (no GIL needed), on a copy of the input, and writes float32 to `out`
 * (ATH_OUT_CENTER when want_center, else ATH_OUT_FULL).  A model's methods are
 * serialised by a mutex, so one ath_model may be used from several threads.
 *
 * On success *out owns the new model.  On failure *out is untouched, err
 * holds "cannot load JIT model <path>: <cause> (<LibTorch's words>)" and *kind (if non-NULL) the
 * class of the failure. */
ATH_TORCH_API ath_status ath_torch_model_load(const char *path, const char *device, int has_memory,
                                              int64_t receptive_radius, int zero_preserving,
                                              int64_t channels, ath_model **out, int *kind,
                                              ath_error *err);

/* Function-pointer types for dlsym() users. */
typedef int (*ath_torch_shim_abi_version_fn)(void);
typedef const char *(*ath_torch_shim_torch_version_fn)(void);
typedef int (*ath_torch_cuda_available_fn)(void);
typedef ath_status (*ath_torch_model_load_fn)(const char *path, const char *device, int has_memory,
                                              int64_t receptive_radius, int zero_preserving,
                                              int64_t channels, ath_model **out, int *kind,
                                              ath_error *err);

#ifdef __cplusplus
}
#endif
#endif
