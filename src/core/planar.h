/* planar.h — moving cells between the engines' two layouts.
 *
 * The state is stored interleaved (cell x, channel k at v[x * d + k], each a
 * complex64 (re, im)); models and the rule read and write channel-planar
 * arrays (channel k's real parts in one plane, its imaginary parts in plane
 * d + k).  These are the moves between the two, for one cell and for four
 * cells consecutive along x.  Pure copies: the layout never changes a bit. */
#ifndef ATHERIA_PLANAR_H
#define ATHERIA_PLANAR_H

#include "atheria/common.h"

#include <stdint.h>

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

/* One cell's d values into a channel-planar item at p (channel k: re at
 * p[k*SS], im at p[(d+k)*SS]), and one cell back from planar rows (re[k*stride]);
 * the usual widths unrolled. */
static inline void ath_eng_put_planar_d(float *p, int64_t SS, const ath_cf32 *v, int64_t d) {
    int64_t k;
    for (k = 0; k < d; k++) {
        p[k * SS] = v[k].re;
        p[(d + k) * SS] = v[k].im;
    }
}
static inline void ath_eng_put_planar(float *p, int64_t SS, const ath_cf32 *v, int64_t d) {
    switch (d) {
    case 4: ath_eng_put_planar_d(p, SS, v, 4); break;
    case 8: ath_eng_put_planar_d(p, SS, v, 8); break;
    default: ath_eng_put_planar_d(p, SS, v, d); break;
    }
}
static inline void ath_eng_take_planar_d(const float *re, const float *im, int64_t stride, int64_t d, ath_cf32 *o) {
    int64_t k;
    for (k = 0; k < d; k++) {
        o[k].re = re[k * stride];
        o[k].im = im[k * stride];
    }
}
static inline void ath_eng_take_planar(const float *re, const float *im, int64_t stride, int64_t d, ath_cf32 *o) {
    switch (d) {
    case 4: ath_eng_take_planar_d(re, im, stride, 4, o); break;
    case 8: ath_eng_take_planar_d(re, im, stride, 8, o); break;
    default: ath_eng_take_planar_d(re, im, stride, d, o); break;
    }
}

/* Four cells consecutive along x (v[0..3], d values each) into a channel-planar item at p,
 * and four back from planar rows: the same moves as four put/take calls, as 4 x 4
 * transposes of (re, im) pairs of two channels (d even) where SSE exists. */
static inline void ath_eng_put_planar4(float *p, int64_t SS, const ath_cf32 *const v[4], int64_t d) {
    int64_t k, c;
#if defined(__SSE2__)
    if ((d & 1) == 0) {
        for (k = 0; k < d; k += 2) {
            __m128 a = _mm_loadu_ps(&v[0][k].re), b = _mm_loadu_ps(&v[1][k].re), cc = _mm_loadu_ps(&v[2][k].re),
                   e = _mm_loadu_ps(&v[3][k].re);
            _MM_TRANSPOSE4_PS(a, b, cc, e); /* re k, im k, re k+1, im k+1 of the four cells */
            _mm_storeu_ps(p + k * SS, a);
            _mm_storeu_ps(p + (d + k) * SS, b);
            _mm_storeu_ps(p + (k + 1) * SS, cc);
            _mm_storeu_ps(p + (d + k + 1) * SS, e);
        }
        return;
    }
#endif
    for (c = 0; c < 4; c++) ath_eng_put_planar(p + c, SS, v[c], d);
    (void)k;
}
/* take_planar4, with non-temporal stores when stream is set (a constant at each call): for a
 * destination that will not be read again before it leaves the cache (a value pool larger
 * than the cache), the stores skip the read of each line that an ordinary store makes
 * first.  Streamed: every o[c] 16-byte aligned, and ath_planar_stream_fence() before
 * another thread reads what they wrote. */
static inline void ath_planar_take4(const float *re, const float *im, int64_t stride, int64_t d,
                                    ath_cf32 *const o[4], const int stream) {
    int64_t k, c;
#if defined(__SSE2__)
    if ((d & 1) == 0) {
        for (k = 0; k < d; k += 2) {
            __m128 r[4];
            r[0] = _mm_loadu_ps(re + k * stride);
            r[1] = _mm_loadu_ps(im + k * stride);
            r[2] = _mm_loadu_ps(re + (k + 1) * stride);
            r[3] = _mm_loadu_ps(im + (k + 1) * stride);
            _MM_TRANSPOSE4_PS(r[0], r[1], r[2], r[3]); /* (re k, im k, re k+1, im k+1) of cell 0, 1, 2, 3 */
            for (c = 0; c < 4; c++) {
                if (stream)
                    _mm_stream_ps(&o[c][k].re, r[c]);
                else
                    _mm_storeu_ps(&o[c][k].re, r[c]);
            }
        }
        return;
    }
#endif
    (void)stream;
    for (c = 0; c < 4; c++) ath_eng_take_planar(re + c, im + c, stride, d, o[c]);
    (void)k;
}
static inline void ath_eng_take_planar4(const float *re, const float *im, int64_t stride, int64_t d,
                                        ath_cf32 *const o[4]) {
    ath_planar_take4(re, im, stride, d, o, 0);
}
static inline void ath_eng_take_planar4_stream(const float *re, const float *im, int64_t stride, int64_t d,
                                               ath_cf32 *const o[4]) {
    ath_planar_take4(re, im, stride, d, o, 1);
}
static inline void ath_planar_stream_fence(void) {
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

#endif
