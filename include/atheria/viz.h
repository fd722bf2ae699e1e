/* atheria/viz.h — scalar visualisation maps of a dense field, computed in C.
 *
 * Input: field[h][w][d] complex64.  Output: out[h][w] float32.
 *   DENSITY  sum_k |psi_k|^2
 *   PHASE    arg(psi_channel)                  (atan2(im, re), in (-pi, pi])
 *   ENERGY   sum_k |d/dx psi_k|^2 + |d/dy psi_k|^2, derivatives as numpy.gradient
 *            (central differences inside, one-sided at the region's edges,
 *            unit spacing; a 1-wide axis contributes 0)
 *   REAL     Re psi_channel
 *   IMAG     Im psi_channel
 *   GRADIENT |grad density| with the same differences as ENERGY
 */
#ifndef ATHERIA_VIZ_H
#define ATHERIA_VIZ_H

#include "atheria/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ath_viz_type {
    ATH_VIZ_DENSITY = 0,
    ATH_VIZ_PHASE,
    ATH_VIZ_ENERGY,
    ATH_VIZ_REAL,
    ATH_VIZ_IMAG,
    ATH_VIZ_GRADIENT,
    ATH_VIZ_COUNT
} ath_viz_type;

/* Parses "density", "phase", ... ; returns ATH_ERR_INVALID for anything else. */
ath_status ath_viz_parse(const char *name, ath_viz_type *out, ath_error *err);
const char *ath_viz_name(ath_viz_type type);

ath_status ath_viz_compute(ath_viz_type type, const ath_cf32 *field, int64_t h, int64_t w,
                           int64_t d_state, int64_t channel, float *out, ath_error *err);

#ifdef __cplusplus
}
#endif
#endif
