/* atheria/rule.h — the update rule (DESIGN §3.3 steps 2-5), the one copy in C.
 *
 * Every engine applies the model's update through these functions: the
 * DenseEngine on grid rows (interleaved states, planar update), the sparse
 * Engine per cell (patches) and on block rows (planar states).  All of them
 * are one kernel in rule.c, specialised by its strides, so the arithmetic and
 * its order per cell are the same everywhere (bit-identical results):
 *   delta_k = complex(delta_re[k*stride], delta_im[k*stride])
 *   unitary: delta_k *= psi_k;  delta_k -= gamma * psi_k;  psi'_k = psi_k + delta_k
 *   n = sqrt(sum_k |psi'_k|^2);  out_k = psi'_k / (n + 1e-9)
 * computed in float64 from the float32 inputs, rounded to complex64 at the end.
 * A cell is kept as matter when n > threshold (ath_rule_keep). */
#ifndef ATHERIA_RULE_H
#define ATHERIA_RULE_H

#include "atheria/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One cell.  Returns n (the pre-normalisation norm).  out may alias psi. */
double ath_step_rule(const ath_cf32 *psi, const float *delta_re, const float *delta_im,
                     ptrdiff_t stride, int64_t d_state, double gamma, int unitary, ath_cf32 *out);
/* A row of w cells whose updates are channel-planar (delta_re[k*stride + x]);
 * psi/out hold the w cells' states one after the other (out may alias psi).
 * norm[x] receives each cell's n.  Returns 1 if an update value is not
 * finite (out is then still written). */
int ath_step_rule_row(const ath_cf32 *psi, const float *delta_re, const float *delta_im,
                      ptrdiff_t stride, int64_t w, int64_t d_state, double gamma, int unitary,
                      ath_cf32 *out, double *norm);
/* A row of w cells with channel-planar states too: psi_re[k*pstride + x],
 * results into out_re/out_im[k*ostride + x].  Per cell: norm[x] = n and, where
 * the arrays are given (else NULL), nonfinite[x] = 1 if that cell's update is
 * not finite, keep[x] = ath_rule_keep(n, threshold).  Returns 1 if any cell's
 * update is not finite.  The outputs must not overlap the inputs. */
int ath_rule_planar_row(const float *psi_re, const float *psi_im, ptrdiff_t pstride,
                        const float *delta_re, const float *delta_im, ptrdiff_t stride, int64_t w,
                        int64_t d_state, double gamma, int unitary, double threshold, float *out_re,
                        float *out_im, ptrdiff_t ostride, double *norm, uint8_t *nonfinite, uint8_t *keep);
/* Channel-planar rows (re[k*stride + x]) to w interleaved cells out[x*d + k] (a copy). */
void ath_rule_planar_to_cells(const float *re, const float *im, ptrdiff_t stride, int64_t w, int64_t d_state,
                              ath_cf32 *out);

/* The keep decision: a cell stays matter if its pre-normalisation norm exceeds the threshold. */
static inline int ath_rule_keep(double norm, double threshold) { return norm > threshold; }

#ifdef __cplusplus
}
#endif
#endif
