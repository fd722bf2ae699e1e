/* The sparse Engine (DESIGN §3.3, §3.4): lifecycle, model slot, counters.
 * The step and its parts are in the files listed in engine_internal.h. */
#include "engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* --------------------------------------------------------------- config */

void ath_engine_config_default(ath_engine_config *cfg, int64_t d_state) {
    if (cfg == NULL) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->d_state = d_state;
    cfg->grid_size = 64;
    cfg->background = ATH_BACKGROUND_VACUUM;
    cfg->extent = ATH_EXTENT_UNBOUNDED;
    cfg->threshold = 0.01;
    cfg->gamma_decay = 0.0;
    cfg->unitary = 0;
    cfg->seed = 0;
    cfg->vacuum_strength = 0.1;
    cfg->patch = 3;
    cfg->max_batch = 0;
}

ath_status ath_engine_create(const ath_engine_config *cfg, ath_engine **out, ath_error *err) {
    ath_engine *e;
    ath_status st;
    int64_t per_cell, b;

    if (cfg == NULL || out == NULL) return ath_error_set(err, ATH_ERR_INVALID, "engine: NULL argument");
    st = ath_eng_validate_config(cfg, err);
    if (st != ATH_OK) return st;
    e = (ath_engine *)ath_calloc(1, sizeof *e);
    if (e == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory");
    e->cfg = *cfg;
    st = ath_vacuum_init(&e->vac, cfg->d_state, cfg->seed, cfg->vacuum_strength, err);
    if (st != ATH_OK) {
        ath_free(e);
        return st;
    }
    ath_blocks_init(&e->matter, cfg->d_state);
    ath_blocks_init(&e->next, cfg->d_state);
    e->radius = (cfg->patch - 1) / 2;
    e->twin = (e->radius + TILE - 1) / TILE;
    e->window = (struct tile_window *)ath_malloc(sizeof(struct tile_window));
    if (e->window == NULL) {
        ath_free(e);
        return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory");
    }
    e->zeros = (ath_cf32 *)ath_calloc((size_t)cfg->d_state, sizeof(ath_cf32));
    if (e->zeros == NULL) {
        ath_free(e->window);
        ath_free(e);
        return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory");
    }
    e->channels = 2 * cfg->d_state;
    per_cell = e->channels * cfg->patch * cfg->patch;
    b = cfg->max_batch > 0 ? cfg->max_batch : ATH_ENGINE_DEFAULT_BATCH;
    if (b > ATH_ENGINE_MAX_BATCH_FLOATS / per_cell) b = ATH_ENGINE_MAX_BATCH_FLOATS / per_cell;
    if (b < 1) b = 1;
    e->batch = b;
    e->stats.batch = b;
    *out = e;
    return ATH_OK;
}

void ath_engine_destroy(ath_engine *e) {
    if (e == NULL) return;
    ath_blocks_release(&e->matter);
    ath_blocks_release(&e->next);
    ath_cellmap_destroy(e->view);
    ath_eng_step_release(e);
    ath_eng_batches_release(e, 1, 1);
    ath_big_free(e->spare_pool);
    ath_free(e->twindows);
    ath_free(e->window);
    ath_free(e->zeros);
    ath_free(e->bg_scratch);
    ath_free(e->btable);
    ath_free(e->blocks);
    ath_free(e->border);
    ath_free(e);
}

const ath_engine_config *ath_engine_get_config(const ath_engine *e) { return e ? &e->cfg : NULL; }

ath_status ath_engine_set_model(ath_engine *e, ath_model *model, ath_error *err) {
    return ath_engine_set_model_ex(e, model, -1, err);
}

ath_status ath_engine_set_model_ex(ath_engine *e, ath_model *model, int accepts_tiles, ath_error *err) {
    if (e == NULL) return ath_error_set(err, ATH_ERR_INVALID, "engine: NULL");
    if (model != NULL) {
        if (model->ops == NULL || model->ops->forward == NULL)
            return ath_error_set(err, ATH_ERR_INVALID, "model: missing forward()");
        if (model->has_memory)
            return ath_error_set(err, ATH_ERR_INVALID,
                                 "memory models (ConvLSTM) cannot run on the sparse Engine: "
                                 "their memory is a whole-grid tensor; use DenseEngine");
        if (model->channels >= 0 && model->channels != e->channels)
            return ath_error_set(err, ATH_ERR_INVALID,
                                 "model expects %lld channels but the engine has 2*d_state = %lld",
                                 (long long)model->channels, (long long)e->channels);
    }
    e->model = model;
    e->accepts_tiles = model == NULL ? 0 : (accepts_tiles < 0 ? ath_model_accepts_tiles(model) : accepts_tiles != 0);
    return ATH_OK;
}

int ath_engine_uses_tiles(const ath_engine *e) {
    return e != NULL && e->model != NULL && e->accepts_tiles && e->model->receptive_radius >= 0 &&
           e->model->receptive_radius <= e->radius;
}

ath_model *ath_engine_get_model(const ath_engine *e) { return e ? e->model : NULL; }

size_t ath_engine_matter_count(const ath_engine *e) { return e ? e->matter.ncells : 0; }
int64_t ath_engine_step_count(const ath_engine *e) { return e ? e->step : 0; }

ath_status ath_engine_set_step_count(ath_engine *e, int64_t step, ath_error *err) {
    if (e == NULL) return ath_error_set(err, ATH_ERR_INVALID, "engine: NULL");
    if (step < 0)
        return ath_error_set(err, ATH_ERR_INVALID, "set_step_count: step must be >= 0, got %lld", (long long)step);
    e->step = step;
    return ATH_OK;
}
/* The matter is leaf blocks; C callers that want a cell map get a copy, built
 * when first asked for after a change and kept (an engine-owned cache, hence
 * the cast) until the matter changes again.  NULL if it cannot be built. */
const ath_cellmap *ath_engine_matter(const ath_engine *ce) {
    ath_engine *e = (ath_engine *)ce;
    const size_t n = e != NULL ? e->matter.ncells : 0;
    ath_coord *cs;
    ath_status st;
    if (e == NULL) return NULL;
    if (e->view != NULL && e->view_valid) return e->view;
    if (e->view == NULL && ath_cellmap_create(e->cfg.d_state, &e->view, NULL) != ATH_OK) return NULL;
    ath_cellmap_clear(e->view);
    if (n == 0) {
        e->view_valid = 1;
        return e->view;
    }
    cs = (ath_coord *)ath_malloc(n * sizeof *cs);
    if (cs == NULL) return NULL;
    ath_engine_copy_matter(e, cs, NULL);
    st = ath_cellmap_set_many(e->view, n, cs, e->matter.states, NULL);
    ath_free(cs);
    if (st != ATH_OK) {
        ath_cellmap_clear(e->view);
        return NULL;
    }
    e->view_valid = 1;
    return e->view;
}

void ath_engine_copy_matter(const ath_engine *e, ath_coord *coords, ath_cf32 *states) {
    const ath_blocks *b;
    ptrdiff_t j, n;
    if (e == NULL) return;
    b = &e->matter;
    n = (ptrdiff_t)b->ncells;
    if (coords != NULL) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > 65536)
#endif
        for (j = 0; j < n; j++) coords[j] = ath_blocks_coord(b, (size_t)j);
    }
    if (states != NULL && n > 0) memcpy(states, b->states, (size_t)n * (size_t)e->cfg.d_state * sizeof(ath_cf32));
}

void ath_engine_clear(ath_engine *e) {
    if (e == NULL) return;
    ath_blocks_clear(&e->matter);
    ath_blocks_release(&e->next);
    ath_eng_matter_changed(e);
    e->step = 0;
}

void ath_engine_get_stats(const ath_engine *e, ath_engine_stats *out) {
    if (e == NULL || out == NULL) return;
    *out = e->stats;
}

void ath_engine_get_memory(const ath_engine *e, ath_engine_memory *out) {
    size_t d, s = 0;
    if (e == NULL || out == NULL) return;
    d = (size_t)e->cfg.d_state;
    out->matter_bytes = ath_blocks_memory_bytes(&e->matter);
    s += ath_blocks_memory_bytes(&e->next) + (e->view != NULL ? ath_cellmap_memory_bytes(e->view) : 0);
    s += e->tcap * sizeof(uint32_t) + e->tcells_cap * TILE * TILE * sizeof(int32_t) +
         e->tcoord_cap * sizeof(ath_coord) + e->tmask_cap * sizeof(uint16_t);
    s += e->ecap * (sizeof(ath_coord) + sizeof(int64_t) + sizeof(uint8_t) +
                    d * sizeof(ath_cf32) * (e->cur != NULL ? 2 : 1));
    s += 2 * e->in_floats * sizeof(float);
    s += e->nscratch * (d * sizeof(ath_cf32) + sizeof(tile_window)) + sizeof(tile_window) + d * sizeof(ath_cf32);
    s += e->bcap * sizeof(uint32_t) + e->blocks_cap * sizeof(ath_coord) + 2 * e->tbuf_floats * sizeof(float) +
         e->border_cap * sizeof(struct block_order) + e->spare_bytes;
    out->scratch_bytes = s + sizeof *e;
}

unsigned ath_engine_exactness(const ath_engine *e, const ath_model *model, int zero_preserving) {
    unsigned flags = 0;
    if (e == NULL || model == NULL) return 0;
    if (e->cfg.background == ATH_BACKGROUND_ZERO && zero_preserving == 0)
        flags |= ATH_INEXACT_NOT_ZERO_PRESERVING;
    if (model->receptive_radius >= 0 && model->receptive_radius > e->radius)
        flags |= ATH_INEXACT_RECEPTIVE_RADIUS;
    /* on tiles, each tile's input is clipped to the window, so the model's own
     * per-layer zero padding falls on the window edge (exact); patches are not */
    if (e->cfg.extent == ATH_EXTENT_ZERO && model->receptive_radius > 1 &&
        !(e->model == model && ath_engine_uses_tiles(e)))
        flags |= ATH_INEXACT_WINDOW_EDGE;
    return flags;
}

