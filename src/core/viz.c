/* Scalar visualisation maps of a dense field (see viz.h).
 *
 * Derivatives follow numpy.gradient with unit spacing and edge_order=1:
 * (f[i+1] - f[i-1]) / 2 inside, f[1] - f[0] and f[n-1] - f[n-2] at the edges,
 * computed in float32 like NumPy does on complex64 / float32 input; a 1-wide
 * axis contributes 0.  Sums of squares are accumulated in float64. */
#include "atheria/viz.h"

#include <math.h>

static const char *const viz_names[ATH_VIZ_COUNT] = {"density", "phase", "energy",
                                                     "real",    "imag",  "gradient"};

/* ASCII case-insensitive equality (strcasecmp is not C11). */
static int name_equal(const char *a, const char *b) {
    for (;; a++, b++) {
        char ca = *a, cb = *b;
        if (ca >= 'A' && ca <= 'Z') ca = (char)(ca - 'A' + 'a');
        if (ca != cb) return 0;
        if (ca == '\0') return 1;
    }
}

ath_status ath_viz_parse(const char *name, ath_viz_type *out, ath_error *err) {
    int i;
    if (name == NULL || out == NULL)
        return ath_error_set(err, ATH_ERR_INVALID, "viz: NULL argument");
    for (i = 0; i < ATH_VIZ_COUNT; i++) {
        if (name_equal(name, viz_names[i])) {
            *out = (ath_viz_type)i;
            return ATH_OK;
        }
    }
    return ath_error_set(err, ATH_ERR_INVALID,
                         "viz_type: unknown visualisation '%.64s' (expected density, phase, energy, "
                         "real, imag or gradient)",
                         name);
}

const char *ath_viz_name(ath_viz_type type) {
    if ((int)type < 0 || (int)type >= ATH_VIZ_COUNT) return "unknown";
    return viz_names[type];
}

/* Neighbour indices of numpy.gradient along an axis of length n, and the
 * difference of the values a = f[lo_index(i)], b = f[hi_index(i, n)]. */
static inline int64_t lo_index(int64_t i) { return i > 0 ? i - 1 : 0; }
static inline int64_t hi_index(int64_t i, int64_t n) { return i < n - 1 ? i + 1 : n - 1; }
static inline float grad1(float a, float b, int64_t i, int64_t n) {
    if (n < 2) return 0.0f;
    if (i > 0 && i < n - 1) return (b - a) / 2.0f;
    return b - a;
}

static float density_at(const ath_cf32 *field, int64_t idx, int64_t d) {
    const ath_cf32 *p = field + (size_t)idx * (size_t)d;
    double s = 0.0;
    int64_t k;
    for (k = 0; k < d; k++) s += (double)p[k].re * p[k].re + (double)p[k].im * p[k].im;
    return (float)s;
}

ath_status ath_viz_compute(ath_viz_type type, const ath_cf32 *field, int64_t h, int64_t w,
                           int64_t d_state, int64_t channel, float *out, ath_error *err) {
    int64_t y, d = d_state;
    if ((int)type < 0 || (int)type >= ATH_VIZ_COUNT)
        return ath_error_set(err, ATH_ERR_INVALID, "viz: unknown visualisation type %d", (int)type);
    if (d < 1 || d > ATH_MAX_D_STATE)
        return ath_error_set(err, ATH_ERR_INVALID, "viz: d_state must be in [1, %d], got %lld",
                             ATH_MAX_D_STATE, (long long)d);
    if (channel < 0 || channel >= d)
        return ath_error_set(err, ATH_ERR_INVALID, "viz: channel must be in [0, %lld), got %lld",
                             (long long)d, (long long)channel);
    if (h < 0 || w < 0 || h > ATH_MAX_GRID_SIZE * 64 || w > ATH_MAX_GRID_SIZE * 64 ||
        (h > 0 && w > (int64_t)(SIZE_MAX / sizeof(ath_cf32) / (size_t)d) / h))
        return ath_error_set(err, ATH_ERR_RANGE, "viz: bad field size %lld x %lld", (long long)h,
                             (long long)w);
    if (h == 0 || w == 0) return ATH_OK;
    if (field == NULL || out == NULL)
        return ath_error_set(err, ATH_ERR_INVALID, "viz: NULL field or out");

#pragma omp parallel for schedule(static) if (h * w * d >= 16384)
    for (y = 0; y < h; y++) {
        int64_t x, k;
        int64_t y0 = lo_index(y), y1 = hi_index(y, h);
        for (x = 0; x < w; x++) {
            int64_t idx = y * w + x;
            const ath_cf32 *p = field + (size_t)idx * (size_t)d;
            float v = 0.0f;
            switch (type) {
            case ATH_VIZ_DENSITY: {
                double s = 0.0;
                for (k = 0; k < d; k++) s += (double)p[k].re * p[k].re + (double)p[k].im * p[k].im;
                v = (float)s;
                break;
            }
            case ATH_VIZ_PHASE:
                v = (float)atan2((double)p[channel].im, (double)p[channel].re);
                break;
            case ATH_VIZ_REAL: v = p[channel].re; break;
            case ATH_VIZ_IMAG: v = p[channel].im; break;
            case ATH_VIZ_ENERGY: {
                int64_t x0 = lo_index(x), x1 = hi_index(x, w);
                const ath_cf32 *xa = field + (size_t)(y * w + x0) * (size_t)d;
                const ath_cf32 *xb = field + (size_t)(y * w + x1) * (size_t)d;
                const ath_cf32 *ya = field + (size_t)(y0 * w + x) * (size_t)d;
                const ath_cf32 *yb = field + (size_t)(y1 * w + x) * (size_t)d;
                double s = 0.0;
                for (k = 0; k < d; k++) {
                    float dxr = grad1(xa[k].re, xb[k].re, x, w), dxi = grad1(xa[k].im, xb[k].im, x, w);
                    float dyr = grad1(ya[k].re, yb[k].re, y, h), dyi = grad1(ya[k].im, yb[k].im, y, h);
                    s += (double)dxr * dxr + (double)dxi * dxi + (double)dyr * dyr +
                         (double)dyi * dyi;
                }
                v = (float)s;
                break;
            }
            case ATH_VIZ_GRADIENT: {
                int64_t x0 = lo_index(x), x1 = hi_index(x, w);
                float gx = grad1(density_at(field, y * w + x0, d), density_at(field, y * w + x1, d), x, w);
                float gy = grad1(density_at(field, y0 * w + x, d), density_at(field, y1 * w + x, d), y, h);
                v = (float)sqrt((double)gx * gx + (double)gy * gy);
                break;
            }
            default: break;
            }
            out[idx] = v;
        }
    }
    return ATH_OK;
}
