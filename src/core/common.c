/* Status codes, error messages and OpenMP runtime control. */
#include "atheria/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

ath_status ath_error_set(ath_error *err, ath_status code, const char *fmt, ...) {
    if (err != NULL) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

void ath_error_clear(ath_error *err) {
    if (err != NULL) {
        err->code = ATH_OK;
        err->message[0] = '\0';
    }
}

const char *ath_status_name(ath_status code) {
    switch (code) {
    case ATH_OK: return "ok";
    case ATH_ERR_NOMEM: return "out of memory";
    case ATH_ERR_INVALID: return "invalid argument";
    case ATH_ERR_RANGE: return "out of range";
    case ATH_ERR_NONFINITE: return "non-finite value";
    case ATH_ERR_NOT_FOUND: return "not found";
    case ATH_ERR_MODEL: return "model error";
    case ATH_ERR_NO_MODEL: return "no model";
    case ATH_ERR_IO: return "I/O error";
    case ATH_ERR_PYTHON: return "Python exception";
    }
    return "unknown status";
}

void ath_set_num_threads(int n) {
#ifdef _OPENMP
    if (n >= 1) omp_set_num_threads(n);
#else
    (void)n;
#endif
}

int ath_get_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int ath_has_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
