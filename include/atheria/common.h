/* atheria/common.h — status codes, error reports and the complex cell type.
 *
 * Every fallible function returns an ath_status and, when given a non-NULL
 * ath_error, writes a human-readable message into it.  A function that fails
 * leaves its object exactly as it was (no half-applied changes). */
#ifndef ATHERIA_COMMON_H
#define ATHERIA_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ath_status {
    ATH_OK = 0,
    ATH_ERR_NOMEM,      /* allocation failed                         -> MemoryError   */
    ATH_ERR_INVALID,    /* bad argument (shape, size, option)        -> ValueError    */
    ATH_ERR_RANGE,      /* coordinate / size out of range            -> OverflowError */
    ATH_ERR_NONFINITE,  /* NaN or Inf where a finite value is needed -> ValueError    */
    ATH_ERR_NOT_FOUND,  /* key absent                                -> KeyError      */
    ATH_ERR_MODEL,      /* the model failed or returned garbage      -> RuntimeError  */
    ATH_ERR_NO_MODEL,   /* step without a model                      -> RuntimeError  */
    ATH_ERR_IO,         /* file missing / unreadable / corrupt       -> OSError       */
    ATH_ERR_PYTHON      /* a Python exception is pending (set by the extension's adapters) */
} ath_status;

#define ATH_ERROR_MESSAGE_MAX 512

typedef struct ath_error {
    ath_status code;
    char message[ATH_ERROR_MESSAGE_MAX];
} ath_error;

/* Writes code and a printf-style message into err (if non-NULL); returns code. */
ath_status ath_error_set(ath_error *err, ath_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void ath_error_clear(ath_error *err);
const char *ath_status_name(ath_status code);

/* One complex64 channel, laid out exactly like NumPy's complex64 (re, im). */
typedef struct ath_cf32 {
    float re;
    float im;
} ath_cf32;

/* Limits that keep size arithmetic far from overflow. */
#define ATH_MAX_D_STATE 4096
#define ATH_MAX_GRID_SIZE ((int64_t)1 << 20)
/* Coordinates must satisfy |c| <= ATH_COORD_LIMIT so that c +- radius never overflows. */
#define ATH_COORD_LIMIT ((int64_t)1 << 60)

/* A region of one plane: [x0, x1) x [y0, y1) at plane z (half-open in x and y).
 * Defined once here; a second definition at a merge is a compile error on purpose. */
#ifndef ATHERIA_ROI_DEFINED
#define ATHERIA_ROI_DEFINED
typedef struct ath_roi {
    int64_t x0, y0, x1, y1, z;
} ath_roi;
#else
#error "ath_roi defined twice (keep the one in atheria/common.h)"
#endif

/* OpenMP runtime control (no-ops when built without OpenMP). */
void ath_set_num_threads(int n);
int ath_get_max_threads(void);
int ath_has_openmp(void);

#ifdef __cplusplus
}
#endif
#endif
