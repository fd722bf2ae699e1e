/* atheria/analysis.h — per-step summary numbers of a field (docs/snapshots.md#analysis).
 *
 * The analysed cells are the sparse Engine's matter (inside roi when given) or
 * every cell of a dense grid (inside roi).  For cells c with states psi_c:
 *   energy           sum_c sum_k |psi_ck|^2
 *   matter_count     number of cells
 *   bbox             [x0, y0, x1, y1) of the cells (valid when matter_count > 0)
 *   channel_energy   per channel k: sum_c |psi_ck|^2
 *   mean_phase       arg(m), phase_coherence |m|, with m the mean of psi_c0 / |psi_c0| over the
 *                    cells with psi_c0 != 0 (both 0 when there is none)
 *   histogram        of the per-cell energy e_c = sum_k |psi_ck|^2 over ATH_ANALYSIS_BINS equal bins
 *                    on [0, max e_c] ([0, 1] when every e_c is 0), binned exactly as numpy.histogram
 * Sums are accumulated in float64 in the cells' storage order.  Cost: linear
 * in the analysed cells (the matter, not the window, for the sparse Engine). */
#ifndef ATHERIA_ANALYSIS_H
#define ATHERIA_ANALYSIS_H

#include "atheria/common.h"
#include "atheria/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATH_ANALYSIS_BINS 32

typedef struct ath_analysis {
    double energy;
    int64_t matter_count;
    int64_t bbox[4];
    double mean_phase, phase_coherence;
    double hist_edges[ATH_ANALYSIS_BINS + 1];
    int64_t hist_counts[ATH_ANALYSIS_BINS];
} ath_analysis;

/* channel_energy: room for d_state doubles. */
ath_status ath_analyze_engine(const ath_engine *engine, const ath_roi *roi, ath_analysis *out,
                              double *channel_energy, ath_error *err);
/* field[h][w][d] (a dense grid whose cell (0, 0) is at x = y = 0); roi within [0, w) x [0, h). */
ath_status ath_analyze_dense(const ath_cf32 *field, int64_t h, int64_t w, int64_t d_state, const ath_roi *roi,
                             ath_analysis *out, double *channel_energy, ath_error *err);

#ifdef __cplusplus
}
#endif
#endif
