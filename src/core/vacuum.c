/* HarmonicVacuum: the procedural vacuum of DESIGN §3.2.
 *
 *   h  = mix(seed); h = mix(h ^ x); h = mix(h ^ y); h = mix(h ^ z);
 *   h  = mix(h ^ step); h = mix(h ^ channel)
 *   u1 = ((h >> 11) + 1) * 2^-53,  u2 = (mix(h) >> 11) * 2^-53
 *   g  = sqrt(-2 ln u1) * cos(2 pi u2),  n = strength * g
 *   psi = complex64(cos n, sin n)
 *
 * Everything is computed in float64 and rounded to float32 only at the end;
 * each value is a pure function of its inputs, so the parallel loops give
 * the same numbers for any thread count. */
#include "atheria/vacuum.h"

#include <math.h>

#define TWO_POW_M53 (1.0 / 9007199254740992.0) /* 2^-53 */
#define TWO_PI 6.283185307179586               /* 2 * math.pi */

uint64_t ath_mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static ath_status check_vacuum(const ath_vacuum *vac, ath_error *err) {
    if (vac == NULL) return ath_error_set(err, ATH_ERR_INVALID, "vacuum: NULL vacuum");
    if (vac->d_state < 1 || vac->d_state > ATH_MAX_D_STATE)
        return ath_error_set(err, ATH_ERR_INVALID, "vacuum: d_state must be in [1, %d], got %lld",
                             ATH_MAX_D_STATE, (long long)vac->d_state);
    if (!isfinite(vac->strength) || vac->strength < 0.0)
        return ath_error_set(err, ATH_ERR_INVALID,
                             "vacuum: strength must be finite and >= 0, got %g", vac->strength);
    return ATH_OK;
}

ath_status ath_vacuum_init(ath_vacuum *vac, int64_t d_state, uint64_t seed, double strength,
                           ath_error *err) {
    ath_vacuum v;
    ath_status st;
    if (vac == NULL) return ath_error_set(err, ATH_ERR_INVALID, "vacuum_init: vac is NULL");
    v.d_state = d_state;
    v.seed = seed;
    v.strength = strength;
    st = check_vacuum(&v, err);
    if (st != ATH_OK) return st;
    *vac = v;
    return ATH_OK;
}

/* Hash of (seed, x, y, z, step), before the channel. */
static inline uint64_t cell_hash(uint64_t seed, ath_coord c, int64_t step) {
    uint64_t h = mix(seed);
    h = mix(h ^ (uint64_t)c.x);
    h = mix(h ^ (uint64_t)c.y);
    h = mix(h ^ (uint64_t)c.z);
    return mix(h ^ (uint64_t)step);
}

static inline void cell_values(uint64_t hc, int64_t d, double strength, ath_cf32 *out) {
    int64_t k;
    for (k = 0; k < d; k++) {
        uint64_t h = mix(hc ^ (uint64_t)k);
        double u1 = (double)((h >> 11) + 1) * TWO_POW_M53;
        double u2 = (double)(mix(h) >> 11) * TWO_POW_M53;
        double g = sqrt(-2.0 * log(u1)) * cos(TWO_PI * u2);
        double n = strength * g;
        out[k].re = (float)cos(n);
        out[k].im = (float)sin(n);
    }
}

void ath_vacuum_cell(const ath_vacuum *vac, ath_coord c, int64_t step, ath_cf32 *out) {
    if (vac == NULL || out == NULL || vac->d_state < 1) return;
    cell_values(cell_hash(vac->seed, c, step), vac->d_state, vac->strength, out);
}

ath_status ath_vacuum_region(const ath_vacuum *vac, int64_t x0, int64_t y0, int64_t x1, int64_t y1,
                             int64_t z, int64_t step, ath_cf32 *out, ath_error *err) {
    int64_t h, w, d, r, col;
    uint64_t seed;
    double strength;
    ath_status st = check_vacuum(vac, err);
    if (st != ATH_OK) return st;
    /* half-open: an end may be one past the last addressable cell (the range is closed) */
    if (x0 < -ATH_COORD_LIMIT || x1 > ATH_COORD_LIMIT + 1 || y0 < -ATH_COORD_LIMIT ||
        y1 > ATH_COORD_LIMIT + 1 || z < -ATH_COORD_LIMIT || z > ATH_COORD_LIMIT)
        return ath_error_set(err, ATH_ERR_RANGE,
                             "vacuum_region: coordinates out of range (|c| <= 2**60)");
    if (x1 < x0 || y1 < y0)
        return ath_error_set(err, ATH_ERR_INVALID,
                             "vacuum_region: need x0 <= x1 and y0 <= y1, got (%lld, %lld, %lld, %lld)",
                             (long long)x0, (long long)y0, (long long)x1, (long long)y1);
    h = y1 - y0;
    w = x1 - x0;
    d = vac->d_state;
    if (h == 0 || w == 0) return ATH_OK;
    if ((uint64_t)w > (uint64_t)(SIZE_MAX / sizeof(ath_cf32)) / (uint64_t)d / (uint64_t)h)
        return ath_error_set(err, ATH_ERR_RANGE, "vacuum_region: region of %lld x %lld is too large",
                             (long long)w, (long long)h);
    if (out == NULL) return ath_error_set(err, ATH_ERR_INVALID, "vacuum_region: out is NULL");
    seed = vac->seed;
    strength = vac->strength;
#pragma omp parallel for collapse(2) schedule(static) if (h * w * d >= 4096)
    for (r = 0; r < h; r++) {
        for (col = 0; col < w; col++) {
            ath_coord c = ath_coord_make(x0 + col, y0 + r, z);
            cell_values(cell_hash(seed, c, step), d, strength, out + ((size_t)r * (size_t)w + (size_t)col) * (size_t)d);
        }
    }
    return ATH_OK;
}

ath_status ath_vacuum_cells(const ath_vacuum *vac, size_t n, const ath_coord *coords, int64_t step,
                            ath_cf32 *out, ath_error *err) {
    int64_t i, nn, d;
    uint64_t seed;
    double strength;
    ath_status st = check_vacuum(vac, err);
    if (st != ATH_OK) return st;
    if (n == 0) return ATH_OK;
    if (coords == NULL || out == NULL)
        return ath_error_set(err, ATH_ERR_INVALID, "vacuum_cells: NULL coords or out");
    d = vac->d_state;
    if (n > (size_t)INT64_MAX || n > SIZE_MAX / sizeof(ath_cf32) / (size_t)d)
        return ath_error_set(err, ATH_ERR_RANGE, "vacuum_cells: too many cells (%zu)", n);
    nn = (int64_t)n;
    seed = vac->seed;
    strength = vac->strength;
#pragma omp parallel for schedule(static) if (nn * d >= 4096)
    for (i = 0; i < nn; i++)
        cell_values(cell_hash(seed, coords[i], step), d, strength, out + (size_t)i * (size_t)d);
    return ATH_OK;
}
