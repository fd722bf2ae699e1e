/* atheria/load_error.h — the one table of model-load error kinds.
 *
 * Every layer that can refuse a model file reports one of these kinds: the
 * LibTorch shim (ath_torch_model_load, ath_aoti_model_load), the extension
 * (which turns a kind into the Python exception of the table and sets the
 * exception's `kind` attribute) and the Python loader
 * (atheria_core._model_loader.ModelLoadError.kind; its ERROR_KINDS is read
 * from _core.LOAD_ERROR_KINDS, which the extension builds from this table).
 * Add a kind here and every layer knows it.
 *
 * X(ID, "name", ath_status, PythonExceptionType)
 *   ID      enumerator suffix: ATH_LOAD_<ID>
 *   name    the stable string (ModelLoadError.kind, get_last_error() text is
 *           "<file>: <cause>" and does not depend on it)
 *   status  the ath_status a C caller gets
 *   pyexc   the builtin exception type the extension raises (PyExc_<pyexc>)
 */
#ifndef ATHERIA_LOAD_ERROR_H
#define ATHERIA_LOAD_ERROR_H

#include "atheria/common.h"

#define ATH_LOAD_ERRORS(X)                                                                         \
    X(OK, "ok", ATH_OK, RuntimeError)                                                              \
    X(NOT_FOUND, "not_found", ATH_ERR_IO, FileNotFoundError)       /* no such file */             \
    X(NOT_A_FILE, "not_a_file", ATH_ERR_IO, OSError)               /* directory, no permission */ \
    X(NOT_ZIP, "not_zip", ATH_ERR_IO, OSError)                     /* not a zip archive */        \
    X(NOT_TORCHSCRIPT, "not_torchscript", ATH_ERR_IO, OSError)     /* zip without model code */   \
    X(CORRUPT, "corrupt", ATH_ERR_IO, OSError)                     /* truncated / damaged */      \
    X(BAD_METADATA, "bad_metadata", ATH_ERR_IO, OSError)           /* atheria_meta.json invalid */ \
    X(INCOMPATIBLE, "incompatible", ATH_ERR_IO, OSError)           /* newer format / other torch */ \
    X(NO_TORCH, "no_torch", ATH_ERR_MODEL, RuntimeError)           /* torch not importable */     \
    X(CUDA_UNAVAILABLE, "cuda_unavailable", ATH_ERR_MODEL, RuntimeError)                           \
    X(BAD_DEVICE, "bad_device", ATH_ERR_INVALID, ValueError)       /* not cpu / cuda[:N] */       \
    X(BAD_MODEL, "bad_model", ATH_ERR_MODEL, RuntimeError)         /* not the file contract */    \
    X(MISMATCH, "mismatch", ATH_ERR_INVALID, ValueError)           /* d_state / shape vs engine */ \
    X(OUT_OF_MEMORY, "out_of_memory", ATH_ERR_NOMEM, MemoryError)                                  \
    X(OTHER, "other", ATH_ERR_MODEL, RuntimeError)                 /* anything else */

typedef enum ath_load_error {
#define ATH_LOAD_ENUM_(id, name, status, pyexc) ATH_LOAD_##id,
    ATH_LOAD_ERRORS(ATH_LOAD_ENUM_)
#undef ATH_LOAD_ENUM_
    ATH_LOAD_N_KINDS
} ath_load_error;

/* Stable name of a kind ("not_found", ...); "other" for an unknown value. */
static inline const char *ath_load_error_name(int kind) {
    switch (kind) {
#define ATH_LOAD_NAME_(id, name, status, pyexc) \
    case ATH_LOAD_##id: return name;
        ATH_LOAD_ERRORS(ATH_LOAD_NAME_)
#undef ATH_LOAD_NAME_
    default: return "other";
    }
}

/* The ath_status of a kind (ATH_ERR_MODEL for an unknown value). */
static inline ath_status ath_load_error_status(int kind) {
    switch (kind) {
#define ATH_LOAD_STATUS_(id, name, status, pyexc) \
    case ATH_LOAD_##id: return status;
        ATH_LOAD_ERRORS(ATH_LOAD_STATUS_)
#undef ATH_LOAD_STATUS_
    default: return ATH_ERR_MODEL;
    }
}

#endif
