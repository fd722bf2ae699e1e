/* atheria/engine.h — the sparse Engine (DESIGN §3.3, §3.4).
 *
 * Matter lives in persistent 4 x 4 leaf blocks (src/core/blocks.h); absent
 * cells read as the background (HarmonicVacuum at the current step, or
 * zero).  A step evaluates the matter cells and every cell within the patch
 * radius of them, reads the old field and writes the new values to step
 * scratch (double buffering),
 * committed only when everything succeeded, so a failed step leaves the
 * universe unchanged; results do not depend on thread count.  The step's
 * parts are in src/core (engine_internal.h lists the files).
 */
#ifndef ATHERIA_ENGINE_H
#define ATHERIA_ENGINE_H

#include "atheria/common.h"
#include "atheria/coord.h"
#include "atheria/model.h"
#include "atheria/rule.h"
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

/* Largest accepted patch (odd) and the default number of cells per model call. */
#define ATH_ENGINE_MAX_PATCH 63
#define ATH_ENGINE_DEFAULT_BATCH 4096
/* At most this many floats in one model input batch (the batch shrinks for
 * wide states / big patches; it never depends on the thread count). */
#define ATH_ENGINE_MAX_BATCH_FLOATS ((int64_t)1 << 24)

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
/* As ath_engine_set_model, saying whether the model may be evaluated on tiles:
 * accepts_tiles = 1: forward() accepts any [B, C, H, W] and returns the full
 * map, and its output at a pixel depends only on the input within
 * model->receptive_radius (zero padding at the item border, as a conv stack);
 * 0: a p x p patch per cell; -1: ath_model_accepts_tiles(model) (built-in models).
 * Tiles are used only when receptive_radius is known and <= (patch - 1) / 2;
 * they give the same numbers as a patch per cell (DESIGN 3.4). */
ath_status ath_engine_set_model_ex(ath_engine *engine, ath_model *model, int accepts_tiles, ath_error *err);
/* 1 if the next step evaluates the model on ATH_ENGINE_TILE^2 tiles with halos. */
int ath_engine_uses_tiles(const ath_engine *engine);
#define ATH_ENGINE_TILE 16
/* At most this many floats in one tile batch. */
#define ATH_ENGINE_TILE_BATCH_FLOATS ((int64_t)1 << 20)

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
/* Sets the step count (the vacuum background's time); step >= 0, else ATH_ERR_INVALID. */
ath_status ath_engine_set_step_count(ath_engine *engine, int64_t step, ath_error *err);
/* Removes all matter and resets the step count to 0. */
void ath_engine_clear(ath_engine *engine);
/* The matter as a cell map (storage order): a copy the engine builds on demand
 * and keeps until the matter changes (the matter itself is leaf blocks); valid
 * until the next change of the matter; NULL if out of memory. */
const ath_cellmap *ath_engine_matter(const ath_engine *engine);
/* Copies the matter in storage order: coords[matter_count] and/or
 * states[matter_count][d_state] (either may be NULL).  Allocates nothing. */
void ath_engine_copy_matter(const ath_engine *engine, ath_coord *coords, ath_cf32 *states);

/* Inserts the current background value at every absent cell within Chebyshev
 * `radius` of coord in its plane (inside a bounded window only, within
 * +-ATH_COORD_LIMIT).  Time and memory are bounded by the cells it can touch
 * (window intersected with the square): any radius is accepted with a bounded
 * extent, at most 2**14 when unbounded (else ATH_ERR_INVALID).  All-or-nothing. */
ath_status ath_engine_activate_neighborhood(ath_engine *engine, ath_coord coord, int64_t radius,
                                            ath_error *err);
/* Calls visit(ctx, coords, states, n) on batches of matter cells (states: n*d_state
 * complex64, in the matter's storage order; the arrays are valid during the call only),
 * all matter when roi == NULL, else only matter inside roi.  Cost grows with the matter
 * (with a roi: plus a copy of the cells inside it), never with the whole universe.  A
 * non-OK return from visit stops the walk and is returned.  visit must not modify the
 * engine. */
typedef ath_status (*ath_matter_visitor)(void *ctx, const ath_coord *coords, const ath_cf32 *states,
                                         size_t n, ath_error *err);
ath_status ath_engine_visit_matter(const ath_engine *engine, const ath_roi *roi,
                                   ath_matter_visitor visit, void *ctx, ath_error *err);
/* Matter coords with Euclidean distance <= radius from center; *out is malloc'd (free()). */
ath_status ath_engine_query_radius(const ath_engine *engine, ath_coord center, double radius,
                                   ath_coord **out, size_t *n_out, ath_error *err);
/* Field over [x0,x1) x [y0,y1) in plane z as out[y-y0][x-x0][d], background filled in. */
ath_status ath_engine_to_dense(const ath_engine *engine, int64_t x0, int64_t y0, int64_t x1,
                               int64_t y1, int64_t z, ath_cf32 *out, ath_error *err);

/* As ath_engine_to_dense; out_zeroed = 1 promises that out is already all
 * zeros (e.g. fresh calloc'd memory), so zero parts are not written again
 * (a zero background then costs only the scatter of the matter). */
ath_status ath_engine_to_dense_ex(const ath_engine *engine, int64_t x0, int64_t y0, int64_t x1,
                                  int64_t y1, int64_t z, ath_cf32 *out, int out_zeroed, ath_error *err);

/* 1 if c is inside the bounded window [0, grid_size)^2 (any z); always 1 when unbounded. */
int ath_engine_in_window(const ath_engine *engine, ath_coord c);

/* Exactness versus a dense evaluation (DESIGN §3.4).  Returns a bit set of the
 * checkable conditions that fail for `model` on this engine:
 *   ATH_INEXACT_NOT_ZERO_PRESERVING  background is 'zero' and zero_preserving == 0
 *                                    (pass the model's flag, or the probe's result)
 *   ATH_INEXACT_RECEPTIVE_RADIUS     model->receptive_radius > (patch - 1) / 2
 * Unknown properties (-1) are not reported. */
#define ATH_INEXACT_NOT_ZERO_PRESERVING 1u
#define ATH_INEXACT_RECEPTIVE_RADIUS 2u
/*   ATH_INEXACT_WINDOW_EDGE          extent is 'zero', model->receptive_radius > 1 and the engine
 *                                    evaluates per-cell patches (not tiles): near the window edge
 *                                    the model's intermediate layers see the field outside the
 *                                    window (computed from in-window cells), where a dense
 *                                    evaluation zero-pads every layer at the edge.  Tiles are
 *                                    clipped to the window (exact); pass the engine's own model
 *                                    (after set_model) for that to be taken into account. */
#define ATH_INEXACT_WINDOW_EDGE 4u
unsigned ath_engine_exactness(const ath_engine *engine, const ath_model *model, int zero_preserving);

/* Counters of the last successful step. */
/* How the last step evaluated E (the numbers are the same on every path). */
typedef enum ath_step_path {
    ATH_STEP_PATCHES = 0, /* a p x p patch per cell */
    ATH_STEP_BLOCKS = 1,  /* 16 x 16 blocks with halos over the evaluated set */
    ATH_STEP_LEAVES = 2   /* blocks straight from the matter leaves (no evaluated-set arrays) */
} ath_step_path;

typedef struct ath_engine_stats {
    int64_t evaluated;    /* cells evaluated (matter + patch neighbourhood) */
    int64_t model_calls;  /* forward() calls */
    int64_t batch;        /* cells per model call (the fixed chunk size) */
    ath_step_path path;
} ath_engine_stats;
void ath_engine_get_stats(const ath_engine *engine, ath_engine_stats *out);

/* Bytes the engine holds: the matter map (storage of the cells) and its
 * scratch.  The per-step scratch (evaluated-set arrays, tile index, block
 * tables, model batches, the spare map) is freed at the end of every step, so
 * between steps scratch_bytes is the engine struct and a few per-thread values.
 * Heap capacities, not RSS: untouched capacity is counted. */
typedef struct ath_engine_memory {
    size_t matter_bytes;
    size_t scratch_bytes;
} ath_engine_memory;
void ath_engine_get_memory(const ath_engine *engine, ath_engine_memory *out);

/* The update rule (ath_step_rule, ath_step_rule_row) lives in atheria/rule.h. */


#ifdef __cplusplus
}
#endif
#endif
