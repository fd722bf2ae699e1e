/* atheria/engine.h — the sparse Engine (DESIGN §3.3, §3.4).
 *
 * Matter lives in an ath_cellmap; absent cells read as the background
 * (HarmonicVacuum at the current step, or zero).  A step evaluates the
 * matter cells and every cell within the patch radius of them, reads the
 * old field and writes a new map (double buffering), so a failed step
 * leaves the universe unchanged and results do not depend on thread count.
 */
#ifndef ATHERIA_ENGINE_H
#define ATHERIA_ENGINE_H

#include "atheria/common.h"
#include "atheria/coord.h"
#include "atheria/model.h"
#include "atheria/sparse_map.h"
#include "atheria/vacuum.h"
#include "atheria/viz.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ath_background { ATH_BACKGROUND_VACUUM = 0, ATH_BACKGROUND_ZERO = 1 } ath_background;

typedef enum ath_extent {
    ATH_EXTENT_UNBOUNDED = 0,
    ATH_EXTENT_ZERO = 1,     /* window [0, grid_size)^2, outside reads 0 */
    ATH_EXTENT_PERIODIC = 2  /* window [0, grid_size)^2, wraps around */
} ath_extent;

typedef struct ath_engine_config {
    int64_t d_state;
    int64_t grid_size;
    ath_background background;
    ath_extent extent;
    double threshold;       /* keep a cell as matter if its pre-normalisation norm > threshold */
    double gamma_decay;
    int unitary;            /* delta <- delta * psi (UNetUnitary) */
    uint64_t seed;
    double vacuum_strength;
    int64_t patch;          /* odd, >= 1 */
    int64_t max_batch;      /* max cells per model call; 0 = default */
} ath_engine_config;

void ath_engine_config_default(ath_engine_config *cfg, int64_t d_state);

typedef struct ath_engine ath_engine;

ath_status ath_engine_create(const ath_engine_config *cfg, ath_engine **out, ath_error *err);
void ath_engine_destroy(ath_engine *engine);
const ath_engine_config *ath_engine_get_config(const ath_engine *engine);

/* Borrowed: the caller keeps `model` alive until replaced or the engine is destroyed.
 * NULL removes the model.  Fails for memory models (sparse evaluation cannot carry them). */
ath_status ath_engine_set_model(ath_engine *engine, ath_model *model, ath_error *err);
ath_model *ath_engine_get_model(const ath_engine *engine);

/* Validates everything (finite, inside a bounded window, |coord| in limits) before inserting. */
ath_status ath_engine_add_particles(ath_engine *engine, size_t n, const ath_coord *coords,
                                    const ath_cf32 *states, ath_error *err);
/* Field at the current step: matter, else background (0 outside a bounded window). */
ath_status ath_engine_get_states(const ath_engine *engine, size_t n, const ath_coord *coords,
                                 ath_cf32 *out, ath_error *err);
/* One step.  On success *matter_count (may be NULL) is the new matter count. */
ath_status ath_engine_step(ath_engine *engine, int64_t *matter_count, ath_error *err);

size_t ath_engine_matter_count(const ath_engine *engine);
int64_t ath_engine_step_count(const ath_engine *engine);
/* Removes all matter and resets the step count to 0. */
void ath_engine_clear(ath_engine *engine);
const ath_cellmap *ath_engine_matter(const ath_engine *engine);

/* Inserts the current background value at every absent cell within Chebyshev
 * `radius` of coord in its plane (inside a bounded window only). */
ath_status ath_engine_activate_neighborhood(ath_engine *engine, ath_coord coord, int64_t radius,
                                            ath_error *err);
/* Matter coords with Euclidean distance <= radius from center; *out is malloc'd (free()). */
ath_status ath_engine_query_radius(const ath_engine *engine, ath_coord center, double radius,
                                   ath_coord **out, size_t *n_out, ath_error *err);
/* Field over [x0,x1) x [y0,y1) in plane z as out[y-y0][x-x0][d], background filled in. */
ath_status ath_engine_to_dense(const ath_engine *engine, int64_t x0, int64_t y0, int64_t x1,
                               int64_t y1, int64_t z, ath_cf32 *out, ath_error *err);

#ifdef __cplusplus
}
#endif
#endif
