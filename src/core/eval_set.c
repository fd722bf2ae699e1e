/* Sparse Engine step 1: the evaluated set E (matter dilated by the patch radius). */
#include "engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Step 1: E = matter dilated by r in-plane, through the extent, marked in
 * the tile index (tcells: -2 in E, >= 0 in E and matter cell i).  *n_out = |E|. */
ath_status ath_eng_build_eval_set(ath_engine *e, size_t *n_out, ath_error *err) {
    const ath_blocks *mb = &e->matter;
    const size_t nm = mb->ncells;
    const int64_t r = e->radius;
    size_t want = 256, n = 0, leaf;
    int l0;
    tile_window *w = e->window;
    ath_status st;

    /* ~ nm / 8 tiles for a compact blob, up to ~ 2.25 nm when scattered; the table grows */
    while (want < nm / 4) want *= 2;
    st = ath_eng_tile_table_resize(e, want, err);
    if (st != ATH_OK) return st;
    e->ntiles = 0;
    w->valid = 0;

    /* the matter leaf by leaf (any order gives the same set; E's order comes from step 2) */
    for (leaf = 0; leaf < mb->nleaves; leaf++) {
        for (l0 = 0; l0 < ATH_LEAF_CELLS; l0++) {
            const uint32_t i = mb->slot[leaf * ATH_LEAF_CELLS + (size_t)l0];
            const ath_coord m = ath_blocks_leaf_cell(mb, leaf, l0);
            int64_t dy, dx;
            if (i == ATH_LEAF_EMPTY) continue;
            ath_eng_window_center(e, w, ath_eng_tile_of(m.x), ath_eng_tile_of(m.y), m.z);
            for (dy = -r; dy <= r; dy++) {
                for (dx = -r; dx <= r; dx++) {
                    ath_coord c = m;
                    int64_t tx, ty, t, *slot;
                    int32_t *cell;
                    c.x += dx;
                    c.y += dy;
                    if (!ath_eng_map_extent(e, &c)) continue;
                    if (!ath_coord_in_limits(c)) continue; /* beyond the limit: never evaluated */
                    tx = ath_eng_tile_of(c.x);
                    ty = ath_eng_tile_of(c.y);
                    slot = ath_eng_window_entry(e, w, tx, ty);
                    if (slot != NULL && *slot >= 0) {
                        t = *slot;
                    } else {
                        t = ath_eng_tile_get(e, tx, ty, c.z, err);
                        if (t < 0) return err != NULL ? err->code : ATH_ERR_NOMEM;
                        if (slot != NULL) *slot = t;
                    }
                    cell = &e->tcells[t * TILE * TILE + ath_eng_tile_local(c)];
                    if (*cell == -1) {
                        if (n >= (size_t)INT32_MAX)
                            return ath_error_set(err, ATH_ERR_NOMEM, "engine: more than 2**31 cells to evaluate");
                        *cell = -2;
                        n++;
                    }
                    if (dx == 0 && dy == 0) *cell = (int32_t)i;
                }
            }
        }
    }
    *n_out = n;
    return ATH_OK;
}


/* Step 1 with per-tile bitmasks (unbounded or 'zero' extent, twin <= MASK_TWIN_MAX):
 * the same set and tile index as build_eval_set.  Serially: every matter cell
 * into its tile (index and occupancy bit), then the neighbour tiles that the
 * dilation reaches; in parallel over tiles: the tile's dilated mask from the
 * masks of the tiles around it (row shifts and ORs), its cells marked -2. */
ath_status ath_eng_build_eval_set_mask(ath_engine *e, size_t *n_out, ath_error *err) {
    const ath_blocks *mb = &e->matter;
    const size_t nm = mb->ncells;
    const int64_t r = e->radius, tw = e->twin, g = e->cfg.grid_size;
    const int zero_ext = e->cfg.extent == ATH_EXTENT_ZERO;
    size_t want = 256, i, nmt;
    int64_t n = 0, sj, snt;
    tile_window *w = e->window;
    ath_status st;

    while (want < nm / 4) want *= 2;
    st = ath_eng_tile_table_resize(e, want, err);
    if (st != ATH_OK) return st;
    e->ntiles = 0;
    w->valid = 0;
    /* the matter tiles are the matter leaves (same side): one tile per leaf, its
     * occupancy the leaf's mask, its cells the leaf's value numbers */
    for (i = 0; i < mb->nleaves; i++) {
        const ath_coord k = mb->key[i];
        const int64_t t = ath_eng_tile_get(e, k.x, k.y, k.z, err);
        int l;
        if (t < 0) return err != NULL ? err->code : ATH_ERR_NOMEM;
        e->tmask[t] = mb->mask[i];
        for (l = 0; l < TILE * TILE; l++) {
            const uint32_t j = mb->slot[i * ATH_LEAF_CELLS + (size_t)l];
            if (j != ATH_LEAF_EMPTY) e->tcells[t * TILE * TILE + l] = (int32_t)j;
        }
    }
    /* neighbour tiles reached by the dilation of each matter tile */
    nmt = e->ntiles;
    for (i = 0; i < nmt; i++) {
        const unsigned mk = e->tmask[i];
        const ath_coord tc = e->tcoord[i];
        int64_t minx = TILE, maxx = -1, miny = TILE, maxy = -1, ox, oy;
        int l;
        for (l = 0; l < TILE * TILE; l++)
            if (mk >> l & 1u) {
                const int64_t lx = l % TILE, ly = l / TILE;
                if (lx < minx) minx = lx;
                if (lx > maxx) maxx = lx;
                if (ly < miny) miny = ly;
                if (ly > maxy) maxy = ly;
            }
        for (oy = -tw; oy <= tw; oy++) {
            if ((oy < 0 && miny - r > TILE * oy + TILE - 1) || (oy > 0 && maxy + r < TILE * oy)) continue;
            for (ox = -tw; ox <= tw; ox++) {
                const int64_t nx = tc.x + ox, ny = tc.y + oy;
                if (ox == 0 && oy == 0) continue;
                if ((ox < 0 && minx - r > TILE * ox + TILE - 1) || (ox > 0 && maxx + r < TILE * ox)) continue;
                if (zero_ext && (TILE * nx + TILE - 1 < 0 || TILE * nx >= g || TILE * ny + TILE - 1 < 0 ||
                                 TILE * ny >= g))
                    continue;
                if (ath_eng_tile_get(e, nx, ny, tc.z, err) < 0) return err != NULL ? err->code : ATH_ERR_NOMEM;
            }
        }
    }
    snt = (int64_t)e->ntiles;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(+ : n) if (snt > 256)
#endif
    for (sj = 0; sj < snt; sj++) {
        const ath_coord tc = e->tcoord[sj];
        uint32_t rows[TILE * (2 * MASK_TWIN_MAX + 1)], h[TILE * (2 * MASK_TWIN_MAX + 1)];
        const int64_t side = 2 * tw + 1, nrows = TILE * side;
        int32_t *cells = e->tcells + sj * TILE * TILE;
        int64_t ox, oy, y, dd;
        unsigned dil = 0;
        int l;
        for (y = 0; y < nrows; y++) rows[y] = 0;
        for (oy = -tw; oy <= tw; oy++)
            for (ox = -tw; ox <= tw; ox++) {
                const int64_t t = (ox == 0 && oy == 0) ? sj : ath_eng_tile_find(e, tc.x + ox, tc.y + oy, tc.z);
                unsigned mk;
                int ly;
                if (t < 0 || (mk = e->tmask[t]) == 0) continue;
                for (ly = 0; ly < TILE; ly++)
                    rows[TILE * (oy + tw) + ly] |= ((uint32_t)(mk >> (ly * TILE)) & 0xFu)
                                                   << (TILE * (ox + tw));
            }
        for (y = 0; y < nrows; y++) {
            uint32_t v = rows[y];
            for (dd = 1; dd <= r; dd++) v |= (rows[y] << dd) | (rows[y] >> dd);
            h[y] = v;
        }
        for (y = 0; y < TILE; y++) {
            const int64_t cy = TILE * tw + y;
            uint32_t v = h[cy];
            for (dd = 1; dd <= r; dd++) v |= h[cy - dd] | h[cy + dd];
            dil |= ((v >> (TILE * tw)) & 0xFu) << (y * TILE);
        }
        if (!zero_ext && (TILE * tc.x < -ATH_COORD_LIMIT || TILE * tc.x + TILE - 1 > ATH_COORD_LIMIT ||
                          TILE * tc.y < -ATH_COORD_LIMIT || TILE * tc.y + TILE - 1 > ATH_COORD_LIMIT))
            for (l = 0; l < TILE * TILE; l++) {
                /* cells beyond the coordinate limit are never evaluated (nor kept) */
                const ath_coord c = ath_coord_make(TILE * tc.x + l % TILE, TILE * tc.y + l / TILE, tc.z);
                if (!ath_coord_in_limits(c)) dil &= ~(1u << l);
            }
        if (zero_ext)
            for (l = 0; l < TILE * TILE; l++) {
                const int64_t x = TILE * tc.x + l % TILE, yy = TILE * tc.y + l / TILE;
                if (x < 0 || x >= g || yy < 0 || yy >= g) dil &= ~(1u << l);
            }
        for (l = 0; l < TILE * TILE; l++)
            if (dil >> l & 1u) {
                if (cells[l] == -1) cells[l] = -2;
                n++;
            }
    }
    if (n > (int64_t)INT32_MAX)
        return ath_error_set(err, ATH_ERR_NOMEM, "engine: more than 2**31 cells to evaluate");
    *n_out = (size_t)n;
    return ATH_OK;
}

