/* Sparse Engine step 2: E in Morton order. */
#include "coord_internal.h"
#include "engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Full Morton sort of E (used when the tile order does not give it: tiles
 * sharing a 4x4x4 Morton cube, i.e. several planes, or keys that tie beyond
 * their 21 bits).  eloc[i]: tcells entry of cell i. */
static ath_status sort_cells(ath_engine *e, size_t n, const int64_t *eloc, ath_error *err) {
    skey *keys = (skey *)ath_eng_salloc(n * sizeof(skey)), *tmp = (skey *)ath_eng_salloc(n * sizeof(skey)), *k;
    ath_coord *ct = (ath_coord *)ath_eng_salloc(n * sizeof(ath_coord));
    int64_t *st = (int64_t *)ath_eng_salloc(n * sizeof(int64_t));
    ath_status rc = ATH_OK;
    size_t i;
    if (keys == NULL || tmp == NULL || ct == NULL || st == NULL) {
        rc = ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (sort of %zu cells)", n);
        goto out;
    }
    for (i = 0; i < n; i++) {
        keys[i].key = ath_coord_morton(e->ecoords[i]);
        keys[i].idx = (uint64_t)i;
    }
    k = ath_coord_morton_sort_keys(keys, tmp, n, e->ecoords);
    for (i = 0; i < n; i++) {
        const size_t from = (size_t)k[i].idx;
        ct[i] = e->ecoords[from];
        st[i] = e->esrc[from];
        e->tcells[eloc[from]] = (int32_t)i;
    }
    memcpy(e->ecoords, ct, n * sizeof(ath_coord));
    memcpy(e->esrc, st, n * sizeof(int64_t));
out:
    ath_eng_sfree(keys);
    ath_eng_sfree(tmp);
    ath_eng_sfree(ct);
    ath_eng_sfree(st);
    return rc;
}

/* Step 2: E in Morton order (ties in ath_coord_compare_morton order); the
 * tiles then map a coordinate to its position in E.  The 4 x 4 tiles are
 * sorted by the Morton key of their origin; when no two tiles share a
 * 4x4x4 Morton cube (always so in one plane) that is the cells' order, each
 * tile's cells in 2-D Morton order inside it, so no per-cell sort is needed. */
ath_status ath_eng_order_eval_set(ath_engine *e, size_t n, ath_error *err) {
    const size_t nt = e->ntiles;
    skey *keys, *tmp, *k;
    int64_t *eloc = NULL;
    size_t j, *start = NULL;
    ptrdiff_t sj, snt = (ptrdiff_t)nt;
    int full = 0;
    ath_status rc = ATH_OK;
    if (nt == 0) return ATH_OK;
    keys = (skey *)ath_eng_salloc(nt * sizeof(skey));
    tmp = (skey *)ath_eng_salloc(nt * sizeof(skey));
    if (keys == NULL || tmp == NULL) {
        rc = ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (tile sort)");
        goto out;
    }
    for (j = 0; j < nt; j++) {
        const ath_coord tc = e->tcoord[j];
        keys[j].key = ath_coord_morton(ath_coord_make(tc.x * TILE, tc.y * TILE, tc.z));
        keys[j].idx = (uint64_t)j;
    }
    k = ath_coord_morton_sort_keys(keys, tmp, nt, NULL); /* tile origins: distinct keys per plane */
    for (j = 1; j < nt; j++)
        if ((k[j].key >> 6) == (k[j - 1].key >> 6)) full = 1;
    if (full) {
        eloc = (int64_t *)ath_eng_salloc(n * sizeof(int64_t));
        if (eloc == NULL) {
            rc = ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (sort of %zu cells)", n);
            goto out;
        }
    }
    start = (size_t *)ath_eng_salloc((nt + 1) * sizeof(size_t));
    if (start == NULL) {
        rc = ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (tile sort)");
        goto out;
    }
    /* cells per tile, their first position in E, then each tile fills its own range */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nt > 1024)
#endif
    for (sj = 0; sj < snt; sj++) {
        const int32_t *cells = e->tcells + (size_t)k[sj].idx * TILE * TILE;
        size_t c = 0;
        int l;
        for (l = 0; l < TILE * TILE; l++) c += cells[l] != -1;
        start[sj + 1] = c;
    }
    start[0] = 0;
    for (j = 0; j < nt; j++) start[j + 1] += start[j];
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nt > 1024)
#endif
    for (sj = 0; sj < snt; sj++) {
        const size_t t = (size_t)k[sj].idx;
        const ath_coord tc = e->tcoord[t];
        int32_t *cells = e->tcells + t * TILE * TILE;
        size_t pos = start[sj];
        int m;
        for (m = 0; m < TILE * TILE; m++) {
            /* 2-D Morton order inside the tile: m = x0 | y0 << 1 | x1 << 2 | y1 << 3 */
            const int lx = (m & 1) | ((m >> 1) & 2), ly = ((m >> 1) & 1) | ((m >> 2) & 2);
            const int l = ly * TILE + lx;
            const int32_t v = cells[l];
            if (v == -1) continue;
            e->ecoords[pos] = ath_coord_make(tc.x * TILE + lx, tc.y * TILE + ly, tc.z);
            e->esrc[pos] = v >= 0 ? (int64_t)v : -1;
            if (eloc != NULL) eloc[pos] = (int64_t)(t * TILE * TILE + (size_t)l);
            cells[l] = (int32_t)pos;
            pos++;
        }
    }
    if (full) rc = sort_cells(e, n, eloc, err);
out:
    ath_eng_sfree(keys);
    ath_eng_sfree(tmp);
    ath_eng_sfree(eloc);
    ath_eng_sfree(start);
    return rc;
}

