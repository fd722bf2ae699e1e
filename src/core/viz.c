/* Scalar visualisation maps of a dense field (see viz.h).
 *
 * Derivatives follow numpy.gradient with unit spacing and edge_order=1:
 * (f[i+1] - f[i-1]) / 2 inside, f[1] - f[0] and f[n-1] - f[n-2] at the edges,
 * computed in float32 like NumPy does on complex64 / float32 input; a 1-wide
 * axis contributes 0.  Sums of squares are accumulated in float64. */
#include "atheria/viz.h"

#include <math.h>
#include <string.h>

static const char *const viz_names[ATH_VIZ_COUNT] = {
    "density", "phase", "energy", "real", "imag", "gradient", "holographic", "holographic_bulk"};

#define VIZ_PI 3.14159265358979323846

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
                         "real, imag, gradient, holographic or holographic_bulk)",
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

int ath_viz_shape(ath_viz_type type, int64_t h, int64_t w, int64_t dims[3]) {
    switch (type) {
    case ATH_VIZ_HOLOGRAPHIC:
        dims[0] = h;
        dims[1] = w;
        dims[2] = 3;
        return 3;
    case ATH_VIZ_HOLOGRAPHIC_BULK:
        dims[0] = ATH_VIZ_BULK_DEPTH;
        dims[1] = h;
        dims[2] = w;
        return 3;
    default:
        if ((int)type < 0 || (int)type >= ATH_VIZ_COUNT) return 0;
        dims[0] = h;
        dims[1] = w;
        return 2;
    }
}

static ath_status check_planes(int64_t planes, int64_t h, int64_t w, ath_error *err) {
    if (planes < 0 || h < 0 || w < 0 || h > ATH_MAX_GRID_SIZE * 64 || w > ATH_MAX_GRID_SIZE * 64 ||
        (h > 0 && w > 0 && planes > (int64_t)(SIZE_MAX / sizeof(float)) / h / w))
        return ath_error_set(err, ATH_ERR_RANGE, "blur: bad size %lld planes of %lld x %lld",
                             (long long)planes, (long long)h, (long long)w);
    return ATH_OK;
}

/* One blurred row: the 3x3 kernel is the outer product of [1, 2, 1] / 4 with itself;
 * the vertical pass is summed first (rows y-1, y, y+1, absent rows read 0), then the
 * horizontal one, all in float64 (the weights are powers of two, so only the final
 * rounding to float32 is inexact). */
static void blur_row(const float *plane, int64_t y, int64_t h, int64_t w, float *out) {
    const float *up = y > 0 ? plane + (y - 1) * w : NULL;
    const float *mid = plane + y * w;
    const float *dn = y < h - 1 ? plane + (y + 1) * w : NULL;
    double prev = 0.0, cur, next;
    int64_t x;
#define VCOL(i) (2.0 * (double)mid[i] + (up ? (double)up[i] : 0.0) + (dn ? (double)dn[i] : 0.0))
    cur = VCOL(0);
    for (x = 0; x < w; x++) {
        next = x + 1 < w ? VCOL(x + 1) : 0.0;
        out[x] = (float)((prev + 2.0 * cur + next) * 0.0625);
        prev = cur;
        cur = next;
    }
#undef VCOL
}

ath_status ath_blur3x3(const float *in, int64_t planes, int64_t h, int64_t w, float *out,
                       ath_error *err) {
    int64_t row, rows;
    ath_status s = check_planes(planes, h, w, err);
    if (s != ATH_OK) return s;
    if (planes == 0 || h == 0 || w == 0) return ATH_OK;
    if (in == NULL || out == NULL) return ath_error_set(err, ATH_ERR_INVALID, "blur: NULL in or out");
    rows = planes * h;
#pragma omp parallel for schedule(static) if (rows * w >= 16384)
    for (row = 0; row < rows; row++) {
        int64_t p = row / h, y = row % h;
        blur_row(in + p * h * w, y, h, w, out + p * h * w + y * w);
    }
    return ATH_OK;
}

ath_status ath_bulk_stack(const float *base, int64_t channels, int64_t h, int64_t w, int64_t depth,
                          float *out, ath_error *err) {
    int64_t l, layer;
    ath_status s;
    if (depth < 1 || depth > ATH_MAX_GRID_SIZE)
        return ath_error_set(err, ATH_ERR_INVALID, "depth: must be in [1, %lld], got %lld",
                             (long long)ATH_MAX_GRID_SIZE, (long long)depth);
    s = check_planes(channels, h, w, err);
    if (s == ATH_OK && channels > 0 && h > 0 && w > 0 &&
        depth > (int64_t)(SIZE_MAX / sizeof(float)) / channels / h / w)
        s = ath_error_set(err, ATH_ERR_RANGE, "depth: %lld layers of %lld x %lld x %lld do not fit",
                          (long long)depth, (long long)channels, (long long)h, (long long)w);
    if (s != ATH_OK) return s;
    layer = channels * h * w;
    if (layer == 0) return ATH_OK;
    if (base == NULL || out == NULL) return ath_error_set(err, ATH_ERR_INVALID, "bulk: NULL base or out");
    if (base != out) memcpy(out, base, (size_t)layer * sizeof(float));
    for (l = 1; l < depth; l++) {
        s = ath_blur3x3(out + (l - 1) * layer, channels, h, w, out + l * layer, err);
        if (s != ATH_OK) return s;
    }
    return ATH_OK;
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
            case ATH_VIZ_HOLOGRAPHIC: {
                double s2 = 0.0, re = (double)p[channel].re, im = (double)p[channel].im, b;
                for (k = 0; k < d; k++) s2 += (double)p[k].re * p[k].re + (double)p[k].im * p[k].im;
                b = (re + 1.0) * 0.5;
                out[idx * 3] = (float)(5.0 * s2 < 1.0 ? 5.0 * s2 : 1.0);
                out[idx * 3 + 1] = (float)((atan2(im, re) + VIZ_PI) / (2.0 * VIZ_PI));
                out[idx * 3 + 2] = (float)(b < 0.0 ? 0.0 : (b > 1.0 ? 1.0 : b));
                continue;
            }
            case ATH_VIZ_HOLOGRAPHIC_BULK: /* layer 0 = density; blurred below */
                v = density_at(field, idx, d);
                break;
            default: break;
            }
            out[idx] = v;
        }
    }
    if (type == ATH_VIZ_HOLOGRAPHIC_BULK)
        return ath_bulk_stack(out, 1, h, w, ATH_VIZ_BULK_DEPTH, out, err);
    return ATH_OK;
}
