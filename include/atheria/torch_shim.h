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
#include "atheria/load_error.h"
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
#define ATH_TORCH_SHIM_ABI_VERSION 2

/* Why a load failed: the kinds of atheria/load_error.h (ATH_LOAD_*), the one
 * table shared with the extension and the Python loader.  `*kind` below is
 * an ath_load_error. */
typedef ath_load_error ath_torch_load_error;

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

/* Same as ath_torch_model_load, plus `optimize`: 1 freezes the module
 * (torch::jit::freeze, preserving init_memory) and runs
 * torch::jit::optimize_for_inference, then keeps the optimised module only if
 * its forward equals the unoptimised one within 1e-5 (max |diff|, relative to
 * max(1, max |y|)) on a random input of `probe_shape` ([B, C, H, W]; NULL or a
 * zero entry: [1, channels, 16, 16]); else the plain module is used.
 * *optimized (if non-NULL) says which: 1 optimised, 0 plain, and
 * `note` (if non-NULL, `note_size` bytes) why. */
ATH_TORCH_API ath_status ath_torch_model_load2(const char *path, const char *device, int has_memory,
                                               int64_t receptive_radius, int zero_preserving,
                                               int64_t channels, int optimize, const int64_t probe_shape[4],
                                               ath_model **out, int *optimized, char *note,
                                               size_t note_size, int *kind, ath_error *err);

/* Loads an AOTInductor package (.pt2, torch._inductor.aoti_compile_and_package;
 * docs/torchscript.md) with torch::inductor::AOTIModelPackageLoader and wraps it
 * as an ath_model.  The package was compiled for one input shape
 * `input_shape` [1, channels, H, W]; forward() refuses any other shape.
 *   memory_shape  NULL for a stateless model (forward(x) -> delta); else the
 *                 shape [B, Cm, Hm, Wm] of h and c: the package is
 *                 forward(x, h, c) -> (delta, h', c') and the initial memory
 *                 is zeros (init_memory of the file contract), with the
 *                 commit / discard / reset protocol of model.h.
 * forward() runs without Python (no GIL needed).  Same ownership, error and
 * kind rules as ath_torch_model_load. */
ATH_TORCH_API ath_status ath_aoti_model_load(const char *path, const char *device, const int64_t input_shape[4],
                                             const int64_t memory_shape[4], int64_t receptive_radius,
                                             int zero_preserving, ath_model **out, int *kind, ath_error *err);

/* Function-pointer types for dlsym() users. */
typedef int (*ath_torch_shim_abi_version_fn)(void);
typedef const char *(*ath_torch_shim_torch_version_fn)(void);
typedef int (*ath_torch_cuda_available_fn)(void);
typedef ath_status (*ath_torch_model_load_fn)(const char *path, const char *device, int has_memory,
                                              int64_t receptive_radius, int zero_preserving,
                                              int64_t channels, ath_model **out, int *kind,
                                              ath_error *err);

typedef ath_status (*ath_torch_model_load2_fn)(const char *path, const char *device, int has_memory,
                                               int64_t receptive_radius, int zero_preserving,
                                               int64_t channels, int optimize, const int64_t probe_shape[4],
                                               ath_model **out, int *optimized, char *note,
                                               size_t note_size, int *kind, ath_error *err);
typedef ath_status (*ath_aoti_model_load_fn)(const char *path, const char *device, const int64_t input_shape[4],
                                             const int64_t memory_shape[4], int64_t receptive_radius,
                                             int zero_preserving, ath_model **out, int *kind, ath_error *err);

#ifdef __cplusplus
}
#endif
#endif
