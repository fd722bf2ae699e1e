/* Sparse Engine: per-step scratch.
 *
 * Step scratch of O(cells) size lives only for the duration of one step (it
 * is freed at the end, so a universe holds only its cell map between
 * steps).  Big blocks come straight from mmap (returned to the system on
 * free, transparent huge pages where available), small ones from ath_malloc;
 * both paths honour the allocation fault hook. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* mmap / madvise */
#endif
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <sys/mman.h>
#define ATH_ENGINE_MMAP 1
#endif


void *ath_eng_salloc(size_t bytes) {
    if (bytes == 0) bytes = 1;
#ifdef ATH_ENGINE_MMAP
    if (bytes >= BIG_SCRATCH) {
        if (ath_alloc_should_fail()) return NULL;
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
        (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
        return p;
    }
#endif
    return ath_malloc(bytes);
}

/* bytes: exactly what was passed to salloc (0 for NULL). */
void ath_eng_sfree(void *p, size_t bytes) {
    if (p == NULL) return;
    if (bytes == 0) bytes = 1;
#ifdef ATH_ENGINE_MMAP
    if (bytes >= BIG_SCRATCH) {
        munmap(p, bytes);
        return;
    }
#endif
    ath_free(p);
}

/* Grows a step-scratch array (salloc'd, cap entries of elem bytes) to hold need entries. */
ath_status ath_eng_sgrow(void **p, size_t *cap, size_t need, size_t elem, ath_error *err) {
    void *q;
    size_t n;
    if (need <= *cap) return ATH_OK;
    n = *cap > 0 ? *cap : 1024;
    while (n < need) n *= 2;
    q = ath_eng_salloc(n * elem);
    if (q == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory");
    if (*p != NULL) memcpy(q, *p, *cap * elem);
    ath_eng_sfree(*p, *cap * elem);
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
    const size_t d = (size_t)e->cfg.d_state;
    ath_eng_sfree(e->ttable, e->tcap * sizeof(uint32_t));
    e->ttable = NULL;
    e->tcap = 0;
    ath_eng_sfree(e->tcells, e->tcells_cap * TILE * TILE * sizeof(int32_t));
    e->tcells = NULL;
    e->tcells_cap = 0;
    ath_eng_sfree(e->tcoord, e->tcoord_cap * sizeof(ath_coord));
    e->tcoord = NULL;
    e->tcoord_cap = 0;
    ath_eng_sfree(e->tmask, e->tmask_cap * sizeof(uint16_t));
    e->tmask = NULL;
    e->tmask_cap = 0;
    ath_eng_sfree(e->ecoords, e->ecap * sizeof(ath_coord));
    ath_eng_sfree(e->esrc, e->ecap * sizeof(int64_t));
    ath_eng_sfree(e->keep, e->ecap * sizeof(uint8_t));
    ath_eng_sfree(e->newst, e->ecap * d * sizeof(ath_cf32));
    ath_eng_sfree(e->cur, e->ecap * d * sizeof(ath_cf32));
    e->ecoords = NULL;
    e->esrc = NULL;
    e->keep = NULL;
    e->newst = NULL;
    e->cur = NULL;
    e->ecap = 0;
    ath_eng_sfree(e->in_buf, e->in_floats * sizeof(float));
    ath_eng_sfree(e->out_buf, e->in_floats * sizeof(float));
    e->in_buf = NULL;
    e->out_buf = NULL;
    e->in_floats = 0;
    /* block evaluation's tables (ath_malloc'd) */
    ath_free(e->btable);
    ath_free(e->blocks);
    ath_free(e->border);
    e->btable = NULL;
    e->blocks = NULL;
    e->border = NULL;
    e->bcap = e->blocks_cap = e->border_cap = 0;
    ath_eng_sfree(e->tin_buf, e->tbuf_floats * sizeof(float));
    ath_eng_sfree(e->tout_buf, e->tbuf_floats * sizeof(float));
    e->tin_buf = NULL;
    e->tout_buf = NULL;
    e->tbuf_floats = 0;
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
    if (patches && e->in_buf == NULL) {
        e->in_buf = (float *)ath_eng_salloc(per * sizeof(float));
        e->out_buf = (float *)ath_eng_salloc(per * sizeof(float));
        if (e->in_buf == NULL || e->out_buf == NULL) {
            ath_eng_sfree(e->in_buf, per * sizeof(float));
            ath_eng_sfree(e->out_buf, per * sizeof(float));
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
