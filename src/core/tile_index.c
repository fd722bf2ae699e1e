/* Sparse Engine: the tile index of the evaluated set.
 *
 * E is indexed by 4 x 4 in-plane tiles: the core's hash index (hash_index.h)
 * over the tile coordinates tcoord[] maps a tile (tx, ty, z) to a tile number, and each tile
 * holds 16 int32 positions in E (-1: not in E).  A tile is one cache line,
 * cells of one tile are consecutive in Morton order, and each pass keeps a
 * window of the tiles around the current one, so a neighbour read is an
 * array access, not a hash lookup. */
#include "engine_internal.h"

#include <string.h>

ath_status ath_eng_tile_table_resize(ath_engine *e, size_t cap, ath_error *err) {
    uint32_t *t = (uint32_t *)ath_eng_salloc(cap * sizeof *t);
    const int had = e->ttable != NULL; /* NULL at the start of a step: no tiles yet */
    ath_hindex ix;
    if (t == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (tile table)");
    ath_eng_sfree(e->ttable);
    e->ttable = t;
    e->tcap = cap;
    ix = ath_eng_tile_index(e);
    ath_hindex_clear(&ix);
    if (had) ath_hindex_insert_all(&ix, e->ntiles, e->tcoord, ath_eng_tcoord_hash);
    return ATH_OK;
}

/* Tile number of (tx, ty, z), created (all cells -1) if absent; -1 on allocation failure. */
int64_t ath_eng_tile_get(ath_engine *e, int64_t tx, int64_t ty, int64_t z, ath_error *err) {
    const ath_coord key = ath_coord_make(tx, ty, z);
    const uint64_t h = ath_eng_tslot_hash(tx, ty, z);
    ath_hindex ix = ath_eng_tile_index(e);
    int64_t t;
    int k, found;
    size_t s = ath_hindex_probe(&ix, h, e->tcoord, &key, ath_eng_tcoord_eq, &found);
    if (found) return (int64_t)e->ttable[s];
    if (2 * (e->ntiles + 1) > e->tcap) {
        if (ath_eng_tile_table_resize(e, 2 * e->tcap, err) != ATH_OK) return -1;
        ix = ath_eng_tile_index(e);
        s = ath_hindex_probe(&ix, h, e->tcoord, &key, ath_eng_tcoord_eq, &found);
    }
    if (e->ntiles + 1 > e->tcells_cap &&
        ath_eng_sgrow((void **)&e->tcells, &e->tcells_cap, e->ntiles + 1, TILE * TILE * sizeof(int32_t), err) != ATH_OK)
        return -1;
    if (e->ntiles + 1 > e->tcoord_cap &&
        ath_eng_sgrow((void **)&e->tcoord, &e->tcoord_cap, e->ntiles + 1, sizeof(ath_coord), err) != ATH_OK)
        return -1;
    if (e->ntiles + 1 > e->tmask_cap &&
        ath_eng_sgrow((void **)&e->tmask, &e->tmask_cap, e->ntiles + 1, sizeof(uint16_t), err) != ATH_OK)
        return -1;
    t = (int64_t)e->ntiles++;
    e->tmask[t] = 0;
    for (k = 0; k < TILE * TILE; k++) e->tcells[t * TILE * TILE + k] = -1;
    e->tcoord[t] = ath_coord_make(tx, ty, z);
    e->ttable[s] = (uint32_t)t;
    return t;
}


void ath_eng_window_center(const ath_engine *e, tile_window *w, int64_t tx, int64_t ty, int64_t z) {
    if (w->valid && w->cx == tx && w->cy == ty && w->cz == z) return;
    {
        const int64_t side = 2 * e->twin + 1;
        int64_t i;
        for (i = 0; i < side * side; i++) w->t[i] = TILE_UNKNOWN;
    }
    w->cx = tx;
    w->cy = ty;
    w->cz = z;
    w->valid = 1;
}

/* Pointer to the window entry of tile (tx, ty) (same z as the centre), or NULL outside the window. */
