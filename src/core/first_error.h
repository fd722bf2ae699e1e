/* first_error.h — the first failure of a parallel loop.
 *
 * A loop over batches (the sparse tile step, the DenseEngine's bands) runs in one
 * parallel region; when an iteration fails, the first status and message are kept,
 * the remaining iterations are skipped, and the caller returns that status after
 * the region.  The state is shared by the team: one ath_first_error per loop. */
#ifndef ATHERIA_FIRST_ERROR_H
#define ATHERIA_FIRST_ERROR_H

#include "atheria/common.h"

typedef struct ath_first_error {
    ath_status st; /* ATH_OK until an iteration failed */
    int failed;    /* set (atomically) with it, read by every iteration */
} ath_first_error;

/* 1 once an iteration failed: the caller skips its work. */
static inline int ath_first_error_seen(ath_first_error *fe) {
    int f;
#ifdef _OPENMP
#pragma omp atomic read
#endif
    f = fe->failed;
    return f;
}

/* Records a failure (st, *lerr) unless an earlier one was recorded; err may be NULL. */
static inline void ath_first_error_set(ath_first_error *fe, ath_status st, const ath_error *lerr, ath_error *err) {
#ifdef _OPENMP
#pragma omp critical(ath_first_error)
#endif
    {
        if (fe->st == ATH_OK) {
            fe->st = st;
            if (err != NULL) *err = *lerr;
        }
    }
#ifdef _OPENMP
#pragma omp atomic write
#endif
    fe->failed = 1;
}

#endif
