/* engine_internal.h — the sparse Engine's private state, shared by its files.
 *
 * The Engine is split by concept (docs/architecture.md):
 *   engine.c      lifecycle, model slot, counters, exactness
 *   extent.c      config validation and window geometry, field_at
 *   scratch.c     per-step scratch (big-array allocator), its release
 *   tile_index.c  the 4 x 4 tile index of the evaluated set and its window cache
 *   eval_set.c    the two builders of the evaluated set E
 *   eval_order.c  E in Morton order (tile order, radix sort when needed)
 *   eval_patch.c  per-cell patch evaluation (gather, model, rule)
 *   eval_tile.c   16 x 16 block evaluation for block models (tiles with halos), through a tile source
 *   eval_leaf.c   the leaf step: a whole step from the matter leaves (built-in block
 *                 models, zero background, off a periodic window), tried first
 *   step.c        the step driver and the commit of the kept cells
 *   matter_io.c   add / read / view / visit / activate / query matter
 *   blocks.c      the matter itself: persistent 4 x 4 leaf blocks (blocks.h)
 * One step (step.c):
 *   1. E = matter cells + every cell within Chebyshev radius r = (patch-1)/2
 *      in-plane (clipped to / wrapped into a bounded window, never beyond
 *      ATH_COORD_LIMIT), deduplicated in the tile index (eval_set.c), whose
 *      matter tiles are the matter's leaves (TILE == ATH_LEAF).
 *   2. E in Morton order (eval_order.c), so everything after is deterministic.
 *   3. cur[e] = the field at the current step on E (vacuum background only).
 *   4. The model in fixed chunks (patches, eval_patch.c, or blocks,
 *      eval_tile.c) and the rule (rule.c) into new[e], keep[e].
 *   5. Kept cells, in Morton order, replace the matter (values overwritten
 *      in place, leaves untouched, when the kept set is the matter set in
 *      storage order; else new leaf blocks).
 * Every parallel loop writes disjoint slots and every value is computed by a
 * fixed sequence of operations: results are bit-identical for any thread
 * count.  The O(cells) scratch lives for one step (freed at its end), so a
 * universe holds only its leaf blocks (blocks.h) and model batches of at most
 * 1 MiB each between steps. */
#ifndef ATHERIA_ENGINE_INTERNAL_H
#define ATHERIA_ENGINE_INTERNAL_H

#include "atheria/alloc.h"
#include "atheria/engine.h"
#include "atheria/rule.h"
#include "blocks.h"
#include "coord_internal.h"
#include "hash_index.h"
#include "mix.h"
#include "planar.h"

#include <string.h>


#define EMPTY_X INT64_MIN
#define TILE ATH_LEAF /* in-plane tile side (cells) = the matter leaf side; 16 int32 entries are one cache line */
/* Half-width (tiles) of the neighbour window: ceil(max radius / TILE). */
#define TILE_WINDOW_MAX ((ATH_ENGINE_MAX_PATCH / 2 + TILE - 1) / TILE)
#define TILE_UNKNOWN (-2)
/* Widest tile window the bitmask build handles (rows of 4 * (2 * twin + 1) bits). */
#define MASK_TWIN_MAX 2

/* Window of tiles around a centre tile (half-width e->twin), resolved lazily. */
typedef struct tile_window {
    int64_t cx, cy, cz; /* centre tile */
    int valid;
    int64_t t[(2 * TILE_WINDOW_MAX + 1) * (2 * TILE_WINDOW_MAX + 1)]; /* TILE_UNKNOWN, -1 absent, or tile */
} tile_window;

/* A tile block in evaluation order (step_tiles). */
struct block_order {
    int64_t key; /* -1: a whole S x S region; else h * (S + 1) + w of a smaller one */
    size_t blk;
};

struct ath_engine {
    ath_engine_config cfg;
    ath_vacuum vac;
    ath_blocks matter; /* persistent leaf blocks (blocks.h), storage order = matter() order */
    ath_blocks next;   /* only during a non-steady commit */
    ath_cellmap *view; /* ath_engine_matter()'s cell-map copy, built on demand (C callers) */
    int view_valid;
    ath_model *model;
    int64_t step;
    int64_t radius;   /* (patch - 1) / 2 */
    int64_t twin;     /* tile window half-width: ceil(radius / TILE) */
    int64_t batch;    /* cells per model call */
    int64_t channels; /* 2 * d_state */
    ath_engine_stats stats;

    /* step scratch (freed by ath_eng_step_release at the end of each step) */
    uint32_t *ttable; /* tile index: hash_index.h slots over tcoord[] (tile numbers) */
    size_t tcap;      /* slots, a power of two */
    size_t ntiles;
    int32_t *tcells; /* [tile][TILE*TILE] position in E or -1 (while building: -1 absent,
                        -2 in E without matter, >= 0 matter index) */
    size_t tcells_cap;
    ath_coord *tcoord; /* [tile] tile coordinates (tx, ty, z) */
    size_t tcoord_cap;
    uint16_t *tmask;   /* [tile] matter cells of the tile (bit ly * TILE + lx), bitmask build */
    size_t tmask_cap;
    size_t ecap; /* cells in every per-E array below (this step's E) */
    ath_coord *ecoords;
    int64_t *esrc;           /* matter index of the cell or -1 */
    ath_cf32 *cur, *newst;   /* cur: only with the vacuum background (zero: read the matter) */
    ath_cf32 *zeros;         /* d zeros: the current field of an absent cell, zero background */
    uint8_t *keep;           /* 1 if the cell's norm > threshold */
    float *in_buf, *out_buf;
    size_t in_floats;        /* floats in each of in_buf / out_buf */
    ath_cf32 *bg_scratch;            /* per thread: d values (kept across steps) */
    struct tile_window *twindows;    /* per thread (kept across steps) */
    struct tile_window *window;      /* for the sequential build */
    size_t nscratch;                 /* threads of room in bg_scratch / twindows */

    /* tile evaluation (models that accept any H x W, known radius <= patch radius) */
    int accepts_tiles;               /* set with the model */
    uint32_t *btable;                /* block index: hash_index.h slots over blocks[] (this step) */
    size_t bcap;
    ath_coord *blocks;               /* block coordinates (TX, TY, z), in first-seen Morton order */
    size_t blocks_cap;
    float *tin_buf, *tout_buf;       /* tile batches */
    size_t tbuf_floats;
    struct block_order *border;      /* blocks in evaluation order (clipped ones grouped by shape) */
    size_t border_cap;

    /* the leaf step (eval_leaf.c): 1 while the matter is stored in the order a step's
     * commit leaves it (Morton order of the cells); every other change clears it */
    int matter_ordered;
    struct ath_leaf_block *lblocks;  /* per block of e->blocks (this step) */
    size_t lblocks_cap;
    ath_cf32 *lvals;                 /* new values by value number (the matter's capacity) */
    ath_cf32 *spare_pool;            /* the last steady step's old value pool, kept while <= SPARE_POOL_MAX */
    size_t spare_bytes;
    uint8_t *lkeep;                  /* keep decision by value number */
    ath_cf32 *hvals;                 /* new values of the cells of E that are not matter */
    uint8_t *hkeep;
};

/* Every change of the matter (add, activate, commit, clear) drops the cell-map view and
 * the storage-order guarantee (a commit sets it again). */
static inline void ath_eng_matter_changed(ath_engine *e) {
    e->view_valid = 0;
    e->matter_ordered = 0;
}

/* ---- extent.c */
ath_status ath_eng_validate_config(const ath_engine_config *c, ath_error *err);
/* Field at the current step at an arbitrary coordinate (0 outside a bounded window). */
void ath_eng_field_at(const ath_engine *e, ath_coord c, ath_cf32 *out);

static inline int64_t ath_eng_wrap(int64_t v, int64_t g) {
    int64_t m = v % g;
    return m < 0 ? m + g : m;
}

/* Maps a neighbour coordinate through the extent: 1 and *c updated when it
 * reads the field, 0 when it is outside a zero window (reads 0). */
static inline int ath_eng_map_extent(const ath_engine *e, ath_coord *c) {
    const int64_t g = e->cfg.grid_size;
    switch (e->cfg.extent) {
    case ATH_EXTENT_UNBOUNDED: return 1;
    case ATH_EXTENT_ZERO: return c->x >= 0 && c->x < g && c->y >= 0 && c->y < g;
    case ATH_EXTENT_PERIODIC:
        if (c->x < 0 || c->x >= g) c->x = ath_eng_wrap(c->x, g);
        if (c->y < 0 || c->y >= g) c->y = ath_eng_wrap(c->y, g);
        return 1;
    }
    return 1;
}

/* Background value of an absent in-window cell at the current step. */
static inline void ath_eng_background(const ath_engine *e, ath_coord c, ath_cf32 *out) {
    if (e->cfg.background == ATH_BACKGROUND_VACUUM)
        ath_vacuum_cell(&e->vac, c, e->step, out);
    else
        memset(out, 0, (size_t)e->cfg.d_state * sizeof(ath_cf32));
}

/* ---- scratch.c */
void *ath_eng_salloc(size_t bytes);
void ath_eng_sfree(void *p);
/* Grows an ath_eng_salloc'd array (cap entries of elem bytes) to hold need entries. */
ath_status ath_eng_sgrow(void **p, size_t *cap, size_t need, size_t elem, ath_error *err);
/* Grows an ath_malloc'd array (realloc) to hold need entries. */
ath_status ath_eng_grow(void **p, size_t *cap, size_t need, size_t elem, ath_error *err);
/* Frees the step's O(cells) scratch; model batches of up to ATH_BIG_ARRAY_BYTES stay. */
void ath_eng_step_release(ath_engine *e);
/* Frees the patch batches (in_buf/out_buf) and/or the tile batches (tin_buf/tout_buf). */
void ath_eng_batches_release(ath_engine *e, int patches, int tiles);
ath_status ath_eng_e_alloc(ath_engine *e, size_t n, ath_error *err);
ath_status ath_eng_scratch_reserve(ath_engine *e, int nthreads, int patches, size_t n, ath_error *err);

/* ---- tile_index.c */
static inline int64_t ath_eng_tile_of(int64_t v) { return (v - (v & (TILE - 1))) / TILE; }
static inline int ath_eng_tile_local(ath_coord c) {
    return (int)((c.y & (TILE - 1)) * TILE + (c.x & (TILE - 1)));
}

/* Hash of a tile / block key: the components folded by odd multipliers, then
 * one round of the core's mixer (cheaper than ath_coord_hash's three rounds,
 * which this probe runs once per neighbour tile; the tables only need spread). */
static inline uint64_t ath_eng_tslot_hash(int64_t x, int64_t y, int64_t z) {
    return ath_mix64_inline((uint64_t)x * 0x9E3779B97F4A7C15ull ^ (uint64_t)y * 0xC2B2AE3D27D4EB4Full ^
                            (uint64_t)z * 0x165667B19E3779F9ull);
}

/* hash_index.h over an array of tile / block coordinates. */
static inline uint64_t ath_eng_tcoord_hash(const void *keys, uint32_t e) {
    const ath_coord c = ((const ath_coord *)keys)[e];
    return ath_eng_tslot_hash(c.x, c.y, c.z);
}
static inline int ath_eng_tcoord_eq(const void *keys, uint32_t e, const void *key) {
    return ath_coord_equal(((const ath_coord *)keys)[e], *(const ath_coord *)key);
}
static inline ath_hindex ath_eng_tile_index(const ath_engine *e) {
    ath_hindex ix;
    ix.slots = e->ttable;
    ix.size = e->tcap;
    return ix;
}

/* Tile number of (tx, ty, z), or -1 if absent.  Read-only (parallel-safe). */
static inline int64_t ath_eng_tile_find(const ath_engine *e, int64_t tx, int64_t ty, int64_t z) {
    const ath_hindex ix = ath_eng_tile_index(e);
    const ath_coord key = ath_coord_make(tx, ty, z);
    return ath_hindex_find(&ix, ath_eng_tslot_hash(tx, ty, z), e->tcoord, &key, ath_eng_tcoord_eq);
}

ath_status ath_eng_tile_table_resize(ath_engine *e, size_t cap, ath_error *err);
/* Tile number of (tx, ty, z), created (all cells -1) if absent; -1 on allocation failure. */
int64_t ath_eng_tile_get(ath_engine *e, int64_t tx, int64_t ty, int64_t z, ath_error *err);
void ath_eng_window_center(const ath_engine *e, tile_window *w, int64_t tx, int64_t ty, int64_t z);

/* Pointer to the window entry of tile (tx, ty) (same z as the centre), or NULL outside the window. */
static inline int64_t *ath_eng_window_entry(const ath_engine *e, tile_window *w, int64_t tx, int64_t ty) {
    const int64_t ox = tx - w->cx + e->twin, oy = ty - w->cy + e->twin, side = 2 * e->twin + 1;
    if (ox < 0 || ox >= side || oy < 0 || oy >= side) return NULL;
    return &w->t[oy * side + ox];
}

/* Position in E of c (already mapped through the extent), or -1.  Read-only. */
static inline int64_t ath_eng_e_find(const ath_engine *e, tile_window *w, ath_coord c) {
    const int64_t tx = ath_eng_tile_of(c.x), ty = ath_eng_tile_of(c.y);
    int64_t *slot = c.z == w->cz ? ath_eng_window_entry(e, w, tx, ty) : NULL;
    int64_t t;
    if (slot != NULL) {
        if (*slot == TILE_UNKNOWN) *slot = ath_eng_tile_find(e, tx, ty, c.z);
        t = *slot;
    } else {
        t = ath_eng_tile_find(e, tx, ty, c.z);
    }
    return t < 0 ? -1 : e->tcells[t * TILE * TILE + ath_eng_tile_local(c)];
}

/* Current field of cell idx of E: cur[] (vacuum background: computed once
 * per step), else the matter state or zero, read in place. */
static inline const ath_cf32 *ath_eng_cur_of(const ath_engine *e, int64_t idx) {
    const int64_t j = e->esrc[idx];
    if (e->cur != NULL) return e->cur + idx * e->cfg.d_state;
    return j >= 0 ? e->matter.states + j * e->cfg.d_state : e->zeros;
}

/* ---- eval_set.c: step 1; *n_out = |E| */
ath_status ath_eng_build_eval_set(ath_engine *e, size_t *n_out, ath_error *err);
ath_status ath_eng_build_eval_set_mask(ath_engine *e, size_t *n_out, ath_error *err);

/* ---- eval_order.c: step 2 */
ath_status ath_eng_order_eval_set(ath_engine *e, size_t n, ath_error *err);

/* ---- eval_patch.c: step 4 on patches */
int ath_eng_update_and_gather(ath_engine *e, ath_out_layout layout, size_t u0, int64_t nu, size_t g0,
                              int64_t ng);

/* ---- eval_tile.c: step 4 on tiles (16 x 16 blocks with halos) */
static inline int64_t ath_eng_block_of(int64_t v) {
    return (v - (v & (ATH_ENGINE_TILE - 1))) / ATH_ENGINE_TILE;
}

/* A block's model input region: [x0, x0 + w) x [y0, y0 + h) in plane z.  With a
 * 'zero' extent it is clipped to the window, so the model's own zero padding at
 * every layer falls on the window edge, as in a dense evaluation (DESIGN 3.4). */
typedef struct tile_box {
    int64_t x0, y0, w, h;
} tile_box;

static inline tile_box ath_eng_block_box(const ath_engine *e, size_t blk, int64_t h) {
    const ath_coord bc = e->blocks[blk];
    tile_box b;
    b.x0 = bc.x * ATH_ENGINE_TILE - h;
    b.y0 = bc.y * ATH_ENGINE_TILE - h;
    b.w = ATH_ENGINE_TILE + 2 * h;
    b.h = ATH_ENGINE_TILE + 2 * h;
    if (e->cfg.extent == ATH_EXTENT_ZERO) {
        const int64_t g = e->cfg.grid_size;
        int64_t x1 = b.x0 + b.w, y1 = b.y0 + b.h;
        if (b.x0 < 0) b.x0 = 0;
        if (b.y0 < 0) b.y0 = 0;
        if (x1 > g) x1 = g;
        if (y1 > g) y1 = g;
        b.w = x1 - b.x0;
        b.h = y1 - b.y0;
    }
    return b;
}

/* Where a block's cells come from and where its results go: the evaluated set
 * (eval_tile.c) or the matter leaves (eval_leaf.c).  gather fills one input
 * item (region bx, channel-planar); update applies the rule to the block's
 * cells of E from the input and output items and returns 1 on a non-finite
 * update.  Both run in parallel over blocks (disjoint writes). */
typedef struct ath_tile_source {
    /* the block's model input region (receptive radius h) */
    tile_box (*box)(const ath_engine *e, size_t blk, int64_t h);
    void (*gather)(const ath_engine *e, size_t blk, float *item, tile_box bx, ath_cf32 *scratch);
    int (*update)(ath_engine *e, size_t blk, const float *in, const float *out, tile_box bx);
} ath_tile_source;

/* The evaluated set's source (step 1-2 built E and its tile index). */
extern const ath_tile_source ath_eng_eset_source;

/* Block number of (bx, by, z) in e->blocks, added if absent (*nb: blocks so far); -1 on
 * allocation failure. */
int64_t ath_eng_block_get(ath_engine *e, size_t *nb, int64_t bx, int64_t by, int64_t z, ath_error *err);
/* The BT x BT blocks covering E (sorted), in order of first appearance: *nb_out blocks. */
ath_status ath_eng_build_blocks(ath_engine *e, size_t n, size_t *nb_out, ath_error *err);
/* 1 if E is so sparse in its blocks that per-cell patches cost less than tiles
 * (isolated cells: a block each); only for built-in models off a 'zero' window,
 * where both give the same numbers. */
int ath_eng_tiles_too_sparse(const ath_engine *e, size_t n, size_t nb);
/* Step 4 on the nb blocks of e->blocks (holding n cells of E), cells and results through src. */
ath_status ath_eng_step_tiles(ath_engine *e, size_t nb, size_t n, const ath_tile_source *src, int64_t *calls,
                              int64_t *per_call, ath_error *err);

/* ---- step.c: the kept cells (n, in Morton order) become the matter (new leaves, swapped
 * in); on failure the matter is unchanged. */
ath_status ath_eng_commit_cells(ath_engine *e, size_t n, const ath_coord *coords, const ath_cf32 *states,
                                ath_error *err);

/* ---- eval_leaf.c: a whole step from the matter leaves (built-in block models, zero background) */
int ath_eng_leaf_step_applies(const ath_engine *e);
/* *declined: nothing was changed and the general path must run; else the step is done
 * (or failed with the engine unchanged). */
ath_status ath_eng_leaf_step(ath_engine *e, int *declined, int64_t *matter_count, ath_error *err);

#endif
