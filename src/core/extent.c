/* Sparse Engine: config validation and window geometry (extent), field reads. */
#include "engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------------- geometry */

int ath_engine_in_window(const ath_engine *e, ath_coord c) {
    if (e->cfg.extent == ATH_EXTENT_UNBOUNDED) return 1;
    return c.x >= 0 && c.x < e->cfg.grid_size && c.y >= 0 && c.y < e->cfg.grid_size;
}

/* Field at the current step at an arbitrary coordinate (0 outside a bounded window). */
void ath_eng_field_at(const ath_engine *e, ath_coord c, ath_cf32 *out) {
    const int64_t d = e->cfg.d_state;
    ptrdiff_t j;
    if (!ath_engine_in_window(e, c)) {
        memset(out, 0, (size_t)d * sizeof(ath_cf32));
        return;
    }
    j = ath_blocks_find(&e->matter, c);
    if (j >= 0)
        memcpy(out, e->matter.states + (size_t)j * (size_t)d, (size_t)d * sizeof(ath_cf32));
    else
        ath_eng_background(e, c, out);
}

ath_status ath_eng_validate_config(const ath_engine_config *c, ath_error *err) {
    if (c->d_state < 1 || c->d_state > ATH_MAX_D_STATE)
        return ath_error_set(err, ATH_ERR_INVALID, "d_state must be in [1, %d], got %lld",
                             ATH_MAX_D_STATE, (long long)c->d_state);
    if (c->grid_size < 1 || c->grid_size > ATH_MAX_GRID_SIZE)
        return ath_error_set(err, ATH_ERR_INVALID, "grid_size must be in [1, %lld], got %lld",
                             (long long)ATH_MAX_GRID_SIZE, (long long)c->grid_size);
    if (c->background != ATH_BACKGROUND_VACUUM && c->background != ATH_BACKGROUND_ZERO)
        return ath_error_set(err, ATH_ERR_INVALID, "background: unknown value %d", (int)c->background);
    if (c->extent != ATH_EXTENT_UNBOUNDED && c->extent != ATH_EXTENT_ZERO &&
        c->extent != ATH_EXTENT_PERIODIC)
        return ath_error_set(err, ATH_ERR_INVALID, "extent: unknown value %d", (int)c->extent);
    if (!isfinite(c->threshold) || c->threshold < 0.0)
        return ath_error_set(err, ATH_ERR_INVALID, "threshold must be finite and >= 0, got %g",
                             c->threshold);
    if (!isfinite(c->gamma_decay) || c->gamma_decay < 0.0)
        return ath_error_set(err, ATH_ERR_INVALID, "gamma_decay must be finite and >= 0, got %g",
                             c->gamma_decay);
    if (!isfinite(c->vacuum_strength) || c->vacuum_strength < 0.0)
        return ath_error_set(err, ATH_ERR_INVALID,
                             "vacuum_strength must be finite and >= 0, got %g", c->vacuum_strength);
    if (c->patch < 1 || c->patch % 2 == 0 || c->patch > ATH_ENGINE_MAX_PATCH)
        return ath_error_set(err, ATH_ERR_INVALID, "patch must be odd and in [1, %d], got %lld",
                             ATH_ENGINE_MAX_PATCH, (long long)c->patch);
    if (c->max_batch < 0 || c->max_batch > ((int64_t)1 << 24))
        return ath_error_set(err, ATH_ERR_INVALID, "max_batch must be in [0, 2**24], got %lld",
                             (long long)c->max_batch);
    return ATH_OK;
}

