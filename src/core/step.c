/* Sparse Engine: the step driver (steps 1-5) and the commit of the kept cells. */
#include "engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

ath_status ath_eng_commit_cells(ath_engine *e, size_t n, const ath_coord *coords, const ath_cf32 *states,
                                ath_error *err) {
    ath_status st;
    ath_blocks_clear(&e->next);
    st = ath_blocks_set_many(&e->next, n, coords, states, err);
    if (st != ATH_OK) {
        ath_blocks_release(&e->next);
        return st;
    }
    ath_blocks_swap(&e->matter, &e->next);
    /* the old blocks are not needed until the next non-steady step: give their
     * storage back rather than hold two copies */
    ath_blocks_release(&e->next);
    return ATH_OK;
}

static ath_status step_inner(ath_engine *e, int64_t *matter_count, ath_error *err) {
    const int64_t d = e->cfg.d_state;
    size_t n = 0, s0, kept, i, nblocks = 0;
    ptrdiff_t si, sn;
    int nthreads = 1, use_tiles;
    int64_t calls = 0, per_call = 0;
    ath_status st;

    use_tiles = ath_engine_uses_tiles(e);
    per_call = e->batch;
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
    if (nthreads < 1) nthreads = 1;
#endif
    if (e->cfg.extent != ATH_EXTENT_PERIODIC && e->twin <= MASK_TWIN_MAX)
        st = ath_eng_build_eval_set_mask(e, &n, err);
    else
        st = ath_eng_build_eval_set(e, &n, err);
    if (st == ATH_OK) st = ath_eng_e_alloc(e, n, err);
    if (st == ATH_OK) st = ath_eng_order_eval_set(e, n, err);
    if (st == ATH_OK && use_tiles) {
        /* tiles and patches give the same numbers: scattered matter runs on patches */
        st = ath_eng_build_blocks(e, n, &nblocks, err);
        if (st == ATH_OK && ath_eng_tiles_too_sparse(e, n, nblocks)) use_tiles = 0;
    }
    if (st == ATH_OK) st = ath_eng_scratch_reserve(e, nthreads, !use_tiles, n, err);
    if (st != ATH_OK) return st;
    sn = (ptrdiff_t)n;

    /* 3: the current field on E (matter, else background), once per cell;
     * only for the vacuum background (zero: ath_eng_cur_of() reads the matter) */
    if (e->cur != NULL) {
        const ath_cf32 *ms = e->matter.states;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > 1024)
#endif
        for (si = 0; si < sn; si++) {
            const int64_t j = e->esrc[si];
            ath_cf32 *dst = e->cur + si * d;
            if (j >= 0)
                memcpy(dst, ms + j * d, (size_t)d * sizeof(ath_cf32));
            else
                ath_eng_background(e, e->ecoords[si], dst);
        }
    }

    if (use_tiles) {
        st = ath_eng_step_tiles(e, nblocks, n, &ath_eng_eset_source, &calls, &per_call, err);
        if (st != ATH_OK) return st;
    } else {
        /* 4: model in fixed chunks; the update of one chunk runs in the same
         * parallel region as the gather of the next */
        if (n > 0) ath_eng_update_and_gather(e, ATH_OUT_FULL, 0, 0, 0, (int64_t)(n < (size_t)e->batch ? n : (size_t)e->batch));
        for (s0 = 0; s0 < n; s0 += (size_t)e->batch) {
            const int64_t nb = (int64_t)(n - s0 < (size_t)e->batch ? n - s0 : (size_t)e->batch);
            const size_t g0 = s0 + (size_t)nb;
            const int64_t ng = (int64_t)(g0 >= n ? 0 : (n - g0 < (size_t)e->batch ? n - g0 : (size_t)e->batch));
            int64_t shape[4];
            ath_out_layout layout;

            shape[0] = nb;
            shape[1] = e->channels;
            shape[2] = e->cfg.patch;
            shape[3] = e->cfg.patch;
            st = ath_model_forward(e->model, e->in_buf, shape, e->out_buf, 1, &layout, err);
            if (st != ATH_OK) return st;
            calls++;
            if (ath_eng_update_and_gather(e, layout, s0, nb, g0, ng))
                return ath_model_nonfinite_error(e->model, err);
        }
    }

    /* 5: keep.  If the kept cells are exactly the matter cells, in the map's
     * own storage order (the usual steady state: the blocks were built in
     * Morton order by the previous step), the leaves stay and only the values
     * are overwritten; otherwise compact (in Morton order), build new leaf
     * blocks and swap. */
    kept = 0;
    {
        const size_t nm = e->matter.ncells;
        int same = 1;
        for (i = 0; i < n; i++) {
            if (e->keep[i]) {
                if (e->esrc[i] != (int64_t)kept) same = 0;
                kept++;
            }
        }
        if (same && kept == nm) {
            ath_cf32 *ms = e->matter.states;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > 4096)
#endif
            for (si = 0; si < (ptrdiff_t)n; si++)
                if (e->keep[si])
                    memcpy(ms + e->esrc[si] * d, e->newst + si * d, (size_t)d * sizeof(ath_cf32));
            goto done;
        }
    }
    kept = 0;
    for (i = 0; i < n; i++) {
        if (e->keep[i]) {
            if (kept != i) {
                e->ecoords[kept] = e->ecoords[i];
                memcpy(e->newst + kept * (size_t)d, e->newst + i * (size_t)d,
                       (size_t)d * sizeof(ath_cf32));
            }
            kept++;
        }
    }
    st = ath_eng_commit_cells(e, kept, e->ecoords, e->newst, err);
    if (st != ATH_OK) return st;
done:
    ath_eng_matter_changed(e);
    e->matter_ordered = 1; /* the kept cells in E's (Morton) order */
    e->step++;
    e->stats.evaluated = (int64_t)n;
    e->stats.model_calls = calls;
    e->stats.batch = per_call;
    e->stats.path = use_tiles ? ATH_STEP_BLOCKS : ATH_STEP_PATCHES;
    if (matter_count != NULL) *matter_count = (int64_t)kept;
    return ATH_OK;
}

ath_status ath_engine_step(ath_engine *e, int64_t *matter_count, ath_error *err) {
    ath_status st;
    if (e == NULL) return ath_error_set(err, ATH_ERR_INVALID, "engine: NULL");
    if (e->model == NULL) return ath_error_set(err, ATH_ERR_NO_MODEL, "no model set (set_model / load_model)");
    if (ath_eng_leaf_step_applies(e)) {
        int declined = 0;
        st = ath_eng_leaf_step(e, &declined, matter_count, err);
        ath_eng_step_release(e);
        if (!declined) return st;
    }
    st = step_inner(e, matter_count, err);
    ath_eng_step_release(e);
    return st;
}

