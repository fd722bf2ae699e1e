/* Sparse Engine: the tile index of the evaluated set.
 *
 * E is indexed by 4 x 4 in-plane tiles: a hash table (tslot, linear probing,
 * ath_coord_hash) maps a tile (tx, ty, z) to a tile number, and each tile
 * holds 16 int32 positions in E (-1: not in E).  A tile is one cache line,
 * cells of one tile are consecutive in Morton order, and each pass keeps a
 * window of the tiles around the current one, so a neighbour read is an
 * array access, not a hash lookup. */
#include "engine_internal.h"

#include <string.h>

ath_status ath_eng_tile_table_resize(ath_engine *e, size_t cap, ath_error *err) {
    tslot *t = (tslot *)ath_eng_salloc(cap * sizeof *t);
    size_t i;
    if (t == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (tile table)");
    for (i = 0; i < cap; i++) t[i].x = EMPTY_X;
    if (e->ttable != NULL)
        for (i = 0; i < e->tcap; i++) {
            const tslot *s = &e->ttable[i];
            if (s->x != EMPTY_X) t[ath_eng_tslot_probe(t, cap - 1, s->x, s->y, s->z)] = *s;
        }
    ath_eng_sfree(e->ttable, e->tcap * sizeof(tslot));
    e->ttable = t;
    e->tcap = cap;
    return ATH_OK;
}

/* Tile number of (tx, ty, z), created (all cells -1) if absent; -1 on allocation failure. */
int64_t ath_eng_tile_get(ath_engine *e, int64_t tx, int64_t ty, int64_t z, ath_error *err) {
    size_t s = ath_eng_tslot_probe(e->ttable, e->tcap - 1, tx, ty, z);
    int64_t t;
    int k;
    if (e->ttable[s].x != EMPTY_X) return e->ttable[s].tile;
    if (2 * (e->ntiles + 1) > e->tcap) {
        if (ath_eng_tile_table_resize(e, 2 * e->tcap, err) != ATH_OK) return -1;
        s = ath_eng_tslot_probe(e->ttable, e->tcap - 1, tx, ty, z);
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
    e->ttable[s].x = tx;
    e->ttable[s].y = ty;
    e->ttable[s].z = z;
    e->ttable[s].tile = t;
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
