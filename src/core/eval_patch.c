/* Sparse Engine step 4 on patches: gather p x p patches, apply the rule. */
#include "engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Step 4a: the patch of cell s0 + b of E into item b of in_buf. */
static void gather_item(const ath_engine *e, tile_window *w, ath_cf32 *scratch, size_t s0, int64_t b) {
    const int64_t d = e->cfg.d_state, p = e->cfg.patch, r = e->radius, pp = p * p;
    const ath_coord c0 = e->ecoords[s0 + (size_t)b];
    float *base = e->in_buf + b * e->channels * pp;
    int64_t dy, dx, k;
    ath_eng_window_center(e, w, ath_eng_tile_of(c0.x), ath_eng_tile_of(c0.y), c0.z);
    for (dy = -r; dy <= r; dy++) {
        for (dx = -r; dx <= r; dx++) {
            const int64_t px = (dy + r) * p + (dx + r);
            ath_coord c = c0;
            const ath_cf32 *v;
            int64_t idx;
            c.x += dx;
            c.y += dy;
            if (!ath_eng_map_extent(e, &c)) {
                for (k = 0; k < d; k++) {
                    base[k * pp + px] = 0.0f;
                    base[(d + k) * pp + px] = 0.0f;
                }
                continue;
            }
            idx = ath_eng_e_find(e, w, c);
            if (idx >= 0) {
                v = ath_eng_cur_of(e, idx);
            } else {
                ath_eng_background(e, c, scratch);
                v = scratch;
            }
            for (k = 0; k < d; k++) {
                base[k * pp + px] = v[k].re;
                base[(d + k) * pp + px] = v[k].im;
            }
        }
    }
}

/* Step 4c: the rule for cell s0 + b from item b of out_buf.  Returns 1 if the
 * model's output for it is not finite. */
static int update_item(ath_engine *e, ath_out_layout layout, size_t s0, int64_t b) {
    const int64_t d = e->cfg.d_state, p = e->cfg.patch, pp = p * p, C = e->channels;
    const size_t ei = s0 + (size_t)b;
    const float *re, *im;
    ptrdiff_t stride;
    int64_t k;
    int bad = 0;
    if (layout == ATH_OUT_CENTER) {
        re = e->out_buf + b * C;
        im = re + d;
        stride = 1;
    } else {
        re = e->out_buf + b * C * pp + e->radius * p + e->radius;
        im = re + d * pp;
        stride = (ptrdiff_t)pp;
    }
    for (k = 0; k < d; k++)
        if (!isfinite(re[k * stride]) || !isfinite(im[k * stride])) bad = 1;
    e->keep[ei] = (uint8_t)ath_rule_keep(ath_step_rule(ath_eng_cur_of(e, (int64_t)ei), re, im, stride, d,
                                                       e->cfg.gamma_decay, e->cfg.unitary,
                                                       e->newst + ei * (size_t)d),
                                         e->cfg.threshold);
    return bad;
}

/* One parallel region: the update of chunk [u0, u0+nu) (nu may be 0) and the
 * gather of chunk [g0, g0+ng) (ng may be 0); they touch disjoint buffers.
 * Returns 1 if the updated chunk had non-finite model output. */
int ath_eng_update_and_gather(ath_engine *e, ath_out_layout layout, size_t u0, int64_t nu, size_t g0,
                             int64_t ng) {
    int bad = 0;
#ifdef _OPENMP
#pragma omp parallel if (nu + ng > 256)
#endif
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num();
#else
        const int tid = 0;
#endif
        ath_cf32 *scratch = e->bg_scratch + (size_t)tid * (size_t)e->cfg.d_state;
        tile_window *w = &e->twindows[tid];
        int64_t b;
        w->valid = 0;
#ifdef _OPENMP
#pragma omp for schedule(static) reduction(| : bad) nowait
#endif
        for (b = 0; b < nu; b++) bad |= update_item(e, layout, u0, b);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (b = 0; b < ng; b++) gather_item(e, w, scratch, g0, b);
    }
    return bad;
}


