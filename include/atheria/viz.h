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
 *
 * Multi-valued maps of the original module (its "holographic" views):
 *   HOLOGRAPHIC       out[h][w][3]: R = min(1, 5 * sum_k |psi_k|^2),
 *                     G = (arg psi_channel + pi) / 2pi, B = clamp((Re psi_channel + 1) / 2, 0, 1)
 *   HOLOGRAPHIC_BULK  out[5][h][w]: the DENSITY map, then ATH_VIZ_BULK_DEPTH - 1 repeated
 *                     ath_blur3x3 of it (ath_bulk_stack with depth ATH_VIZ_BULK_DEPTH)
 * ath_viz_shape says how many values a map has and how they are laid out.
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
    ATH_VIZ_HOLOGRAPHIC,
    ATH_VIZ_HOLOGRAPHIC_BULK,
    ATH_VIZ_COUNT
} ath_viz_type;

/* Parses "density", "phase", ... ; returns ATH_ERR_INVALID for anything else. */
ath_status ath_viz_parse(const char *name, ath_viz_type *out, ath_error *err);
const char *ath_viz_name(ath_viz_type type);

/* Layers of the HOLOGRAPHIC_BULK map (the original module's fixed bulk depth). */
#define ATH_VIZ_BULK_DEPTH 5

/* Output shape of ath_viz_compute for an h x w field: fills dims[0..ndim) and returns
 * ndim: 2 -> (h, w); 3 -> (h, w, 3) for HOLOGRAPHIC, (5, h, w) for HOLOGRAPHIC_BULK.
 * The output holds dims[0] * dims[1] * dims[2 if ndim == 3] float32 values, C order.
 * Returns 0 for an unknown type. */
int ath_viz_shape(ath_viz_type type, int64_t h, int64_t w, int64_t dims[3]);

/* out = conv2d(in, K, padding=1) for each of `planes` (h, w) float32 planes, with
 * K = [[1,2,1],[2,4,2],[1,2,1]] / 16 (cells outside the plane read 0): the original's
 * renormalisation blur.  Sums in float64, one rounding to float32.  in and out must not
 * overlap. */
ath_status ath_blur3x3(const float *in, int64_t planes, int64_t h, int64_t w, float *out,
                       ath_error *err);

/* The bulk stack of DenseEngine.generate_bulk_state: base (channels, h, w) float32 ->
 * out (depth, channels, h, w), layer 0 = base, layer l = ath_blur3x3(layer l - 1)
 * (= torch grouped conv, one group per channel, layers concatenated on the channel
 * axis).  base may equal out (layer 0 is then left in place); otherwise they must not
 * overlap.  depth >= 1. */
ath_status ath_bulk_stack(const float *base, int64_t channels, int64_t h, int64_t w, int64_t depth,
                          float *out, ath_error *err);

/* out must hold the values ath_viz_shape gives (channel is used by PHASE, REAL, IMAG and
 * HOLOGRAPHIC). */
ath_status ath_viz_compute(ath_viz_type type, const ath_cf32 *field, int64_t h, int64_t w,
                           int64_t d_state, int64_t channel, float *out, ath_error *err);

#ifdef __cplusplus
}
#endif
#endif
