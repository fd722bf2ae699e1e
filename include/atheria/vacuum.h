/* atheria/vacuum.h — HarmonicVacuum: the procedural, deterministic vacuum.
 *
 * vacuum(seed, x, y, z, step, channel) is defined in DESIGN.md §3.2; it is a
 * pure function, so the same cell at the same step reads the same value in
 * any order, on any thread, in C or in the Python fallback. */
#ifndef ATHERIA_VACUUM_H
#define ATHERIA_VACUUM_H

#include "atheria/common.h"
#include "atheria/coord.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ath_vacuum {
    int64_t d_state;
    uint64_t seed;
    double strength;
} ath_vacuum;

/* splitmix64 finaliser: the mixing function of DESIGN §3.2. */
uint64_t ath_mix64(uint64_t z);

ath_status ath_vacuum_init(ath_vacuum *vac, int64_t d_state, uint64_t seed, double strength,
                           ath_error *err);
/* Writes d_state values of cell c at `step` into out. */
void ath_vacuum_cell(const ath_vacuum *vac, ath_coord c, int64_t step, ath_cf32 *out);
/* Writes the half-open region [x0,x1) x [y0,y1) in plane z as out[(y-y0)][(x-x0)][channel].
 * Parallel over rows; identical results for any thread count. */
ath_status ath_vacuum_region(const ath_vacuum *vac, int64_t x0, int64_t y0, int64_t x1, int64_t y1,
                             int64_t z, int64_t step, ath_cf32 *out, ath_error *err);

/* Writes the d_state values of n cells coords[i] at `step` into out[i*d ..].
 * Parallel over cells; identical results for any thread count. */
ath_status ath_vacuum_cells(const ath_vacuum *vac, size_t n, const ath_coord *coords, int64_t step,
                            ath_cf32 *out, ath_error *err);

#ifdef __cplusplus
}
#endif
#endif
