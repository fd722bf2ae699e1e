/* The update rule (see atheria/rule.h): one kernel, specialised by strides.
 *
 * rule_kernel is static inline and every entry point calls it with constant
 * strides, so the compiler emits a unit-stride (vectorisable) loop for each
 * layout while the arithmetic per cell stays one sequence of operations. */
#include "atheria/rule.h"

#include "planar.h"

#include <math.h>

/* w cells: psi value (cell x, channel k) at pre[x*pcell + k*pchan] (pim likewise),
 * update at dre[k*dchan + x], result at ore[x*ocell + k*ochan].  nonfin (per
 * cell, may be NULL): 0 while the cell's update is finite, NaN once not; with
 * nonfin == NULL the return value says whether any update was non-finite.
 * No output may overlap an input (restrict): without that promise the compiler
 * vectorised the division loop only behind a runtime overlap test, which the
 * sparse engine's calls failed, so they ran it scalar. */
static inline int rule_kernel(const float *restrict pre, const float *restrict pim, ptrdiff_t pcell,
                              ptrdiff_t pchan, const float *restrict dre, const float *restrict dim, ptrdiff_t dchan,
                              int64_t w, int64_t d, double gamma, int unitary, float *restrict ore,
                              float *restrict oim, ptrdiff_t ocell, ptrdiff_t ochan, double *restrict norm,
                              double *restrict nonfin) {
    int64_t x, k;
    int bad = 0;
    for (x = 0; x < w; x++) norm[x] = 0.0;
    if (nonfin != NULL)
        for (x = 0; x < w; x++) nonfin[x] = 0.0;
    for (k = 0; k < d; k++) {
        const float *r = dre + k * dchan, *i = dim + k * dchan;
        for (x = 0; x < w; x++) {
            const double pr = pre[x * pcell + k * pchan], pi = pim[x * pcell + k * pchan];
            double dr = r[x], di = i[x], nr, ni;
            if (nonfin != NULL)
                nonfin[x] += (dr - dr) + (di - di); /* 0 while finite, NaN once not */
            else
                bad |= !isfinite(r[x]) | !isfinite(i[x]);
            if (unitary) {
                const double tr = dr * pr - di * pi;
                di = dr * pi + di * pr;
                dr = tr;
            }
            dr -= gamma * pr;
            di -= gamma * pi;
            nr = pr + dr;
            ni = pi + di;
            norm[x] += nr * nr + ni * ni;
        }
    }
    for (x = 0; x < w; x++) norm[x] = sqrt(norm[x]);
    for (k = 0; k < d; k++) {
        const float *r = dre + k * dchan, *i = dim + k * dchan;
        for (x = 0; x < w; x++) {
            const double pr = pre[x * pcell + k * pchan], pi = pim[x * pcell + k * pchan];
            const double denom = norm[x] + 1e-9;
            double dr = r[x], di = i[x];
            if (unitary) {
                const double tr = dr * pr - di * pi;
                di = dr * pi + di * pr;
                dr = tr;
            }
            dr -= gamma * pr;
            di -= gamma * pi;
            ore[x * ocell + k * ochan] = (float)((pr + dr) / denom);
            oim[x * ocell + k * ochan] = (float)((pi + di) / denom);
        }
    }
    return bad;
}

/* x86-64 Linux: every entry point is also compiled for AVX2 and picked at load
 * time (ifunc).  Only the vector width changes: no FMA (no contraction), the
 * same IEEE operations per value, so both clones give the same bits. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(ATH_NO_RULE_CLONES)
#define RULE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define RULE_CLONES
#endif

/* Floats in each planar chunk buffer of ath_step_rule_row (4 of them on the stack). */
#define ROW_CHUNK_FLOATS 2048
_Static_assert(2 * ATH_MAX_D_STATE <= 4 * ROW_CHUNK_FLOATS, "the widest cell must fit the row scratch");

RULE_CLONES
int ath_step_rule_row(const ath_cf32 *psi, const float *delta_re, const float *delta_im,
                      ptrdiff_t stride, int64_t w, int64_t d_state, double gamma, int unitary,
                      ath_cf32 *out, double *norm) {
    /* The states are interleaved (cell x, channel k at psi[x*d + k]); the kernel runs on
     * channel-planar copies of a chunk of cells so that every loop has unit stride.
     * A chunk is read completely before any of it is written, so out may alias psi. */
    float buf[4 * ROW_CHUNK_FLOATS];
    float *pre = buf, *pim = buf + ROW_CHUNK_FLOATS, *ore = buf + 2 * ROW_CHUNK_FLOATS,
          *oim = buf + 3 * ROW_CHUNK_FLOATS;
    const int64_t cw = ROW_CHUNK_FLOATS / d_state > 0 ? ROW_CHUNK_FLOATS / d_state : 1;
    int64_t x0, j, k;
    int bad = 0;
    if (d_state > ROW_CHUNK_FLOATS) {
        /* wider than a chunk: one cell at a time, its psi copied first (out may alias psi) */
        float *cre = buf, *cim = buf + d_state; /* 2 * ATH_MAX_D_STATE <= 4 chunks */
        for (j = 0; j < w; j++) {
            for (k = 0; k < d_state; k++) {
                cre[k] = psi[j * d_state + k].re;
                cim[k] = psi[j * d_state + k].im;
            }
            bad |= rule_kernel(cre, cim, 1, 1, delta_re + j, delta_im + j, stride, 1, d_state, gamma, unitary,
                               &out[j * d_state].re, &out[j * d_state].im, 2 * d_state, 2, norm + j, NULL);
        }
        return bad;
    }
    for (x0 = 0; x0 < w; x0 += cw) {
        const int64_t n = w - x0 < cw ? w - x0 : cw;
        const ath_cf32 *p = psi + x0 * d_state;
        ath_cf32 *o = out + x0 * d_state;
        for (j = 0; j < n; j++)
            for (k = 0; k < d_state; k++) {
                pre[k * n + j] = p[j * d_state + k].re;
                pim[k * n + j] = p[j * d_state + k].im;
            }
        bad |= rule_kernel(pre, pim, 1, n, delta_re + x0, delta_im + x0, stride, n, d_state, gamma, unitary, ore,
                           oim, 1, n, norm + x0, NULL);
        for (j = 0; j < n; j++)
            for (k = 0; k < d_state; k++) {
                o[j * d_state + k].re = ore[k * n + j];
                o[j * d_state + k].im = oim[k * n + j];
            }
    }
    return bad;
}

double ath_step_rule(const ath_cf32 *psi, const float *delta_re, const float *delta_im,
                     ptrdiff_t stride, int64_t d_state, double gamma, int unitary, ath_cf32 *out) {
    double n;
    (void)ath_step_rule_row(psi, delta_re, delta_im, stride, 1, d_state, gamma, unitary, out, &n);
    return n;
}

/* Widest row the planar entry point handles per kernel call (stack scratch). */
#define PLANAR_CHUNK 64

RULE_CLONES
int ath_rule_planar_row(const float *psi_re, const float *psi_im, ptrdiff_t pstride,
                        const float *delta_re, const float *delta_im, ptrdiff_t stride, int64_t w,
                        int64_t d_state, double gamma, int unitary, double threshold, float *out_re,
                        float *out_im, ptrdiff_t ostride, double *norm, uint8_t *nonfinite, uint8_t *keep) {
    double nf[PLANAR_CHUNK];
    int64_t x0, x;
    int bad = 0;
    for (x0 = 0; x0 < w; x0 += PLANAR_CHUNK) {
        const int64_t n = w - x0 < PLANAR_CHUNK ? w - x0 : PLANAR_CHUNK;
        (void)rule_kernel(psi_re + x0, psi_im + x0, 1, pstride, delta_re + x0, delta_im + x0, stride, n,
                          d_state, gamma, unitary, out_re + x0, out_im + x0, 1, ostride, norm + x0, nf);
        for (x = 0; x < n; x++) {
            bad |= nf[x] != 0.0;
            if (nonfinite != NULL) nonfinite[x0 + x] = nf[x] != 0.0;
            if (keep != NULL) keep[x0 + x] = (uint8_t)ath_rule_keep(norm[x0 + x], threshold);
        }
    }
    return bad;
}

/* Planar rows -> interleaved cells for a compile-time d: four cells at a time (planar.h),
 * then the rest one by one. */
static inline void planar_to_cells_d(const float *re, const float *im, ptrdiff_t stride, int64_t w, int64_t d,
                                     ath_cf32 *out) {
    int64_t x = 0;
    for (; x + 4 <= w; x += 4) {
        ath_cf32 *const o[4] = {out + x * d, out + (x + 1) * d, out + (x + 2) * d, out + (x + 3) * d};
        ath_eng_take_planar4(re + x, im + x, stride, d, o);
    }
    for (; x < w; x++) ath_eng_take_planar_d(re + x, im + x, stride, d, out + x * d);
}

RULE_CLONES
void ath_rule_planar_to_cells(const float *re, const float *im, ptrdiff_t stride, int64_t w, int64_t d_state,
                              ath_cf32 *out) {
    switch (d_state) {
    case 1: planar_to_cells_d(re, im, stride, w, 1, out); break;
    case 2: planar_to_cells_d(re, im, stride, w, 2, out); break;
    case 4: planar_to_cells_d(re, im, stride, w, 4, out); break;
    case 8: planar_to_cells_d(re, im, stride, w, 8, out); break;
    case 16: planar_to_cells_d(re, im, stride, w, 16, out); break;
    default: planar_to_cells_d(re, im, stride, w, d_state, out); break;
    }
}
