/* atheria/dense_engine.h — the DenseEngine: a bounded grid in one contiguous
 * array, the model evaluated once on the whole grid (U-Nets, memory models),
 * exactly like the reference AetheriaMotor.  Double-buffered. */
#ifndef ATHERIA_DENSE_ENGINE_H
#define ATHERIA_DENSE_ENGINE_H

#include "atheria/common.h"
#include "atheria/model.h"
#include "atheria/vacuum.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ath_dense_config {
    int64_t grid_size;      /* H = W = grid_size */
    int64_t d_state;
    double gamma_decay;
    int unitary;
    uint64_t seed;
    double vacuum_strength;
    int periodic;           /* 0: zero padding (the model's own); 1: periodic (the field is padded
                               circularly by the model's receptive radius, which must be known) */
} ath_dense_config;

void ath_dense_config_default(ath_dense_config *cfg, int64_t grid_size, int64_t d_state);

typedef struct ath_dense_engine ath_dense_engine;

/* Starts as the vacuum at step 0 over the grid (the complex_noise initial state). */
ath_status ath_dense_create(const ath_dense_config *cfg, ath_dense_engine **out, ath_error *err);
void ath_dense_destroy(ath_dense_engine *engine);
const ath_dense_config *ath_dense_get_config(const ath_dense_engine *engine);

/* Borrowed model pointer (see model.h).  Resets model memory. */
ath_status ath_dense_set_model(ath_dense_engine *engine, ath_model *model, ath_error *err);
ath_model *ath_dense_get_model(const ath_dense_engine *engine);

ath_status ath_dense_step(ath_dense_engine *engine, ath_error *err);
/* field[y][x][d], H*W*d values. */
const ath_cf32 *ath_dense_state(const ath_dense_engine *engine);
/* Copies H*W*d values in; refuses non-finite values (changes nothing then). */
ath_status ath_dense_set_state(ath_dense_engine *engine, const ath_cf32 *field, ath_error *err);
int64_t ath_dense_step_count(const ath_dense_engine *engine);
/* Sets the step count (restoring a snapshot); step >= 0.  The field is untouched. */
ath_status ath_dense_set_step_count(ath_dense_engine *engine, int64_t step, ath_error *err);
/* Back to the vacuum at step 0, step count 0, model memory reset. */
void ath_dense_reset(ath_dense_engine *engine);

/* Tools (docs/tools.md): all-or-nothing edits of the field. */
typedef enum ath_tool { ATH_TOOL_COLLAPSE = 0, ATH_TOOL_VORTEX, ATH_TOOL_WAVE } ath_tool;
typedef struct ath_tool_params {
    double x, y;        /* centre (cells) */
    double radius;      /* cells; > 0 */
    double strength;    /* collapse: 0..1; vortex: charge (winding); wave: amplitude k (rad/cell) */
    double angle;       /* wave: direction of k (radians) */
} ath_tool_params;
ath_status ath_dense_apply_tool(ath_dense_engine *engine, ath_tool tool, const ath_tool_params *p,
                                ath_error *err);

#ifdef __cplusplus
}
#endif
#endif
