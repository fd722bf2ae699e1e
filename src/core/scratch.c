/* Sparse Engine: per-step scratch.
 *
 * Step scratch of O(cells) size lives only for the duration of one step (it
 * is freed at the end, so a universe holds only its leaf blocks between
 * steps).  It comes from the big-array allocator (atheria/alloc.h): big
 * blocks are their own mappings, returned to the system on free. */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>

/* Model batches up to this size (each) are kept between steps. */
#define BATCH_KEEP_BYTES ((size_t)1 << 20)

void *ath_eng_salloc(size_t bytes) { return ath_big_realloc(NULL, bytes); }

void ath_eng_sfree(void *p) { ath_big_free(p); }

/* Grows a step-scratch array (salloc'd, cap entries of elem bytes) to hold need entries. */
ath_status ath_eng_sgrow(void **p, size_t *cap, size_t need, size_t elem, ath_error *err) {
    void *q;
    size_t n;
    if (need <= *cap) return ATH_OK;
    n = *cap > 0 ? *cap : 1024;
    while (n < need) n *= 2;
    q = ath_big_realloc(*p, n * elem);
    if (q == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory");
    *p = q;
    *cap = n;
    return ATH_OK;
}

ath_status ath_eng_grow(void **p, size_t *cap, size_t need, size_t elem, ath_error *err) {
    void *q;
    size_t n;
    if (need <= *cap) return ATH_OK;
    n = *cap > 0 ? *cap : 1024;
    while (n < need) n *= 2;
    q = ath_realloc(*p, n * elem);
    if (q == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory");
    *p = q;
    *cap = n;
    return ATH_OK;
}

/* Frees this step's O(cells) scratch (called at the end of every step). */
void ath_eng_step_release(ath_engine *e) {
    ath_eng_sfree(e->ttable);
    e->ttable = NULL;
    e->tcap = 0;
    ath_eng_sfree(e->tcells);
    e->tcells = NULL;
    e->tcells_cap = 0;
    ath_eng_sfree(e->tcoord);
    e->tcoord = NULL;
    e->tcoord_cap = 0;
    ath_eng_sfree(e->tmask);
    e->tmask = NULL;
    e->tmask_cap = 0;
    ath_eng_sfree(e->ecoords);
    ath_eng_sfree(e->esrc);
    ath_eng_sfree(e->keep);
    ath_eng_sfree(e->newst);
    ath_eng_sfree(e->cur);
    e->ecoords = NULL;
    e->esrc = NULL;
    e->keep = NULL;
    e->newst = NULL;
    e->cur = NULL;
    e->ecap = 0;
    /* model batches up to BATCH_KEEP_BYTES each stay for the next step (a bounded 2 MiB:
     * small universes would otherwise page them in afresh every step); bigger ones go */
    if (e->in_floats * sizeof(float) > BATCH_KEEP_BYTES) ath_eng_batches_release(e, 1, 0);
    if (e->tbuf_floats * sizeof(float) > BATCH_KEEP_BYTES) ath_eng_batches_release(e, 0, 1);
    /* block evaluation's tables (ath_malloc'd) */
    ath_free(e->btable);
    ath_free(e->blocks);
    ath_free(e->border);
    e->btable = NULL;
    e->blocks = NULL;
    e->border = NULL;
    e->bcap = e->blocks_cap = e->border_cap = 0;
    ath_eng_sfree(e->lblocks);
    ath_eng_sfree(e->lvals);
    ath_eng_sfree(e->lkeep);
    ath_eng_sfree(e->hvals);
    ath_eng_sfree(e->hkeep);
    e->lblocks = NULL;
    e->lblocks_cap = 0;
    e->lvals = e->hvals = NULL;
    e->lkeep = e->hkeep = NULL;
}

void ath_eng_batches_release(ath_engine *e, int patches, int tiles) {
    if (patches) {
        ath_eng_sfree(e->in_buf);
        ath_eng_sfree(e->out_buf);
        e->in_buf = e->out_buf = NULL;
        e->in_floats = 0;
    }
    if (tiles) {
        ath_eng_sfree(e->tin_buf);
        ath_eng_sfree(e->tout_buf);
        e->tin_buf = e->tout_buf = NULL;
        e->tbuf_floats = 0;
    }
}

/* The per-E arrays for exactly n cells. */
ath_status ath_eng_e_alloc(ath_engine *e, size_t n, ath_error *err) {
    const size_t d = (size_t)e->cfg.d_state, cap = n > 0 ? n : 1;
    e->ecap = cap;
    e->ecoords = (ath_coord *)ath_eng_salloc(cap * sizeof(ath_coord));
    e->esrc = (int64_t *)ath_eng_salloc(cap * sizeof(int64_t));
    e->keep = (uint8_t *)ath_eng_salloc(cap * sizeof(uint8_t));
    e->newst = (ath_cf32 *)ath_eng_salloc(cap * d * sizeof(ath_cf32));
    if (e->cfg.background == ATH_BACKGROUND_VACUUM) e->cur = (ath_cf32 *)ath_eng_salloc(cap * d * sizeof(ath_cf32));
    if (e->ecoords == NULL || e->esrc == NULL || e->keep == NULL || e->newst == NULL ||
        (e->cfg.background == ATH_BACKGROUND_VACUUM && e->cur == NULL))
        return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (%zu cells)", cap);
    return ATH_OK;
}

ath_status ath_eng_scratch_reserve(ath_engine *e, int nthreads, int patches, size_t n, ath_error *err) {
    const size_t d = (size_t)e->cfg.d_state;
    const size_t items = n < (size_t)e->batch ? (n > 0 ? n : 1) : (size_t)e->batch;
    const size_t per = items * (size_t)(e->channels * e->cfg.patch * e->cfg.patch);
    if (patches && e->in_floats < per) {
        ath_eng_batches_release(e, 1, 0);
        e->in_buf = (float *)ath_eng_salloc(per * sizeof(float));
        e->out_buf = (float *)ath_eng_salloc(per * sizeof(float));
        if (e->in_buf == NULL || e->out_buf == NULL) {
            ath_eng_sfree(e->in_buf);
            ath_eng_sfree(e->out_buf);
            e->in_buf = e->out_buf = NULL;
            return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory");
        }
        e->in_floats = per;
    }
    if ((size_t)nthreads > e->nscratch) {
        ath_cf32 *s = (ath_cf32 *)ath_realloc(e->bg_scratch, (size_t)nthreads * d * sizeof(ath_cf32));
        tile_window *w;
        if (s == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory");
        e->bg_scratch = s;
        w = (tile_window *)ath_realloc(e->twindows, (size_t)nthreads * sizeof(tile_window));
        if (w == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory");
        e->twindows = w;
        e->nscratch = (size_t)nthreads;
    }
    return ATH_OK;
}
