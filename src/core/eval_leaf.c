/* Sparse Engine: the leaf step — one step straight from the matter leaves.
 *
 * For a built-in block model (ZeroModel, ConvModel) on a zero background off a
 * periodic window, with the matter stored in the order a step leaves it
 * (e->matter_ordered), the evaluated set E is never materialised: no tile
 * index, no per-cell coordinate or source arrays, no Morton sort of cells.
 *   1. The 16 x 16 blocks come from the leaves: each leaf adds the blocks its
 *      radius-r neighbourhood touches (one hash probe per leaf and block).
 *   2. Per block, the leaves of its window (the block and R4 = r rounded up to
 *      a leaf around it) are looked up once; E's cells of the block are the
 *      matter masks dilated by r, done on 64-bit rows (eval order: one word
 *      per row of the window).
 *   3. ath_eng_step_tiles runs the blocks through the model with this file's
 *      source: the gather reads the leaves' values, the update writes each
 *      matter cell's new value to its own value number in a new pool (lvals)
 *      and each other cell of E to the block's range of hvals.  A block's own
 *      cells are read and written in storage order (see morton_cell).
 *   4. Commit.  No birth and no death (the usual steady state): the new pool
 *      replaces the matter's values, the leaves stay.  Otherwise the kept
 *      cells, sorted by ath_coord_morton_sort_keys exactly as step 2 of the
 *      general path orders E, become new leaves.
 * The numbers are the general path's bit for bit: the same blocks and input
 * items (a built-in model computes every item on its own, so which blocks
 * share a batch does not matter), the same rule on the same values, the same
 * order of the kept cells.  It declines (nothing changed, the general path
 * runs) for scattered matter (ath_eng_tiles_too_sparse), radius > LEAF_R_MAX,
 * wider states than LEAF_D_MAX and coordinates near ATH_COORD_LIMIT.
 *
 * Scratch of one step: lvals (the value pool's size) and lkeep (1 B per
 * cell), the block records (~0.5 KB per 16 x 16 block), hvals / hkeep for the
 * cells of E that are not matter (65 B each at d_state 8), the tile batches;
 * after a steady step the old pool while it is <= SPARE_POOL_MAX. */
#include "coord_internal.h"
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define BT ATH_ENGINE_TILE
#define LEAF_R_MAX 12 /* widest patch radius: a window of (BT + 2 * 12) / ATH_LEAF = 10 leaves a side */
#define LEAF_D_MAX 64 /* widest state (stack chunks of the update hold >= 48 cells) */
#define LW_MAX ((BT + 2 * LEAF_R_MAX) / ATH_LEAF)
/* A steady step keeps the old value pool for the next one up to this size (bounded, like the
 * model batches): fresh pages every step cost 1e5 cells (6.4 MB) ~25 % of a step, ~40 % in
 * the benchmark next to torch (3.1 vs 5.0 ms); larger universes pay it rather than hold
 * two copies of their values. */
#define SPARE_POOL_MAX ((size_t)8 << 20)

struct ath_leaf_block {
    uint16_t emask[BT];            /* cells of E: bit x of row y */
    uint16_t mmask[BT];            /* matter cells */
    int32_t win[LW_MAX * LW_MAX];  /* leaves of the window, nl a side (-1: absent) */
    uint64_t hbase;                /* hvals number of its first cell of E that is not matter */
    uint32_t ecount, hcount;       /* its cells of E; of them, not matter */
    uint32_t kept, births;         /* after the update: matter cells kept, other cells kept */
    uint8_t home;                  /* 1 if a leaf with matter lies in it (else its own leaves are absent) */
    uint8_t quiet;                 /* 1 if no cell of E in it has matter within the receptive radius */
    int8_t ex0, ex1, ey0, ey1;     /* bounding box of its cells of E: [ex0, ex1) x [ey0, ey1) */
    tile_box box;                  /* its model input: that box grown by the receptive radius */
};

/* The window margin: r rounded up to whole leaves. */
static inline int64_t leaf_margin(const ath_engine *e) { return (e->radius + ATH_LEAF - 1) & ~(int64_t)(ATH_LEAF - 1); }
static inline int64_t leaf_window_side(const ath_engine *e) { return (BT + 2 * leaf_margin(e)) / ATH_LEAF; }

int ath_eng_leaf_step_applies(const ath_engine *e) {
    return ath_engine_uses_tiles(e) && ath_model_accepts_tiles(e->model) &&
           e->cfg.background == ATH_BACKGROUND_ZERO && e->cfg.extent != ATH_EXTENT_PERIODIC &&
           e->radius <= LEAF_R_MAX && e->cfg.d_state <= LEAF_D_MAX && e->matter_ordered && e->matter.ncells > 0;
}

/* Cells [lo, hi] of an axis that E may hold (clipped to a 'zero' window); 0 if none. */
static int axis_range(const ath_engine *e, int64_t lo, int64_t hi, int64_t *a, int64_t *b) {
    if (e->cfg.extent == ATH_EXTENT_ZERO) {
        if (lo < 0) lo = 0;
        if (hi > e->cfg.grid_size - 1) hi = e->cfg.grid_size - 1;
    }
    *a = lo;
    *b = hi;
    return lo <= hi;
}

/* Step 1: the blocks every leaf's neighbourhood touches, in leaf order, and each leaf's own
 * block in home[leaf] (UINT32_MAX for an empty leaf).  *declined when a neighbourhood
 * reaches past ATH_COORD_LIMIT (the general path clips it). */
static ath_status leaf_blocks(ath_engine *e, size_t *nb_out, uint32_t *home, int *declined, ath_error *err) {
    const ath_blocks *m = &e->matter;
    const int64_t r = e->radius, lim = ATH_COORD_LIMIT - BT - 2 * LEAF_R_MAX;
    int64_t px = INT64_MIN, py = 0, pz = 0, pblk = -1;
    size_t l, nb = 0;
    for (l = 0; l < m->nleaves; l++) {
        const ath_coord k = m->key[l];
        const int64_t hx = ath_eng_block_of(k.x * ATH_LEAF), hy = ath_eng_block_of(k.y * ATH_LEAF);
        int64_t x0, x1, y0, y1, bx, by;
        home[l] = UINT32_MAX;
        if (m->mask[l] == 0) continue;
        if (k.x < -lim / ATH_LEAF || k.x > lim / ATH_LEAF || k.y < -lim / ATH_LEAF || k.y > lim / ATH_LEAF) {
            *declined = 1;
            return ATH_OK;
        }
        if (!axis_range(e, k.x * ATH_LEAF - r, k.x * ATH_LEAF + ATH_LEAF - 1 + r, &x0, &x1) ||
            !axis_range(e, k.y * ATH_LEAF - r, k.y * ATH_LEAF + ATH_LEAF - 1 + r, &y0, &y1))
            continue;
        for (by = ath_eng_block_of(y0); by <= ath_eng_block_of(y1); by++)
            for (bx = ath_eng_block_of(x0); bx <= ath_eng_block_of(x1); bx++) {
                if (!(bx == px && by == py && k.z == pz)) { /* consecutive leaves share blocks */
                    pblk = ath_eng_block_get(e, &nb, bx, by, k.z, err);
                    if (pblk < 0) return err != NULL ? err->code : ATH_ERR_NOMEM;
                    px = bx;
                    py = by;
                    pz = k.z;
                }
                if (bx == hx && by == hy) home[l] = (uint32_t)pblk;
            }
    }
    *nb_out = nb;
    return ATH_OK;
}

/* Set bits of a row mask, inline: without -mpopcnt __builtin_popcount is a libgcc call
 * (__popcountdi2, ~2 % of a 1e3-cell step in perf). */
static inline uint32_t popcount16(uint32_t v) {
    v = v - ((v >> 1) & 0x5555u);
    v = (v & 0x3333u) + ((v >> 2) & 0x3333u);
    v = (v + (v >> 4)) & 0x0F0Fu;
    return (v + (v >> 8)) & 0x1Fu;
}

/* Step 2 for one block: its window's leaves, its matter and E masks and their counts. */
static void leaf_block_scan(const ath_engine *e, size_t blk, struct ath_leaf_block *lb) {
    const ath_blocks *m = &e->matter;
    const ath_coord bc = e->blocks[blk];
    const int64_t r = e->radius, R4 = leaf_margin(e), nl = leaf_window_side(e);
    const int64_t lx0 = bc.x * (BT / ATH_LEAF) - R4 / ATH_LEAF, ly0 = bc.y * (BT / ATH_LEAF) - R4 / ATH_LEAF;
    uint64_t dil[BT + 2 * LEAF_R_MAX]; /* row Y - (-r) of the window: matter dilated by r along x */
    uint64_t dilh[BT + 2 * LEAF_R_MAX]; /* ... by the receptive radius h (when h < r) */
    const int64_t h = e->model->receptive_radius;
    const int narrow = e->model->zero_preserving == 1 && h < r; /* E reaches past the model's input */
    uint16_t live = 0;                                           /* cells of E within h of matter */
    uint32_t ec = 0, hc = 0;
    uint16_t xclip = 0xFFFF;
    int64_t i, j, Y, y, dx;
    const int64_t q0 = R4 / ATH_LEAF;
    for (j = 0; j < nl; j++)
        for (i = 0; i < nl; i++)
            lb->win[j * nl + i] = !lb->home && j >= q0 && j < q0 + ATH_LEAF && i >= q0 && i < q0 + ATH_LEAF
                                      ? -1 /* a block no leaf with matter lies in: no probe */
                                      : (int32_t)ath_blocks_find_leaf(m, lx0 + i, ly0 + j, bc.z);
    for (Y = -r; Y < BT + r; Y++) {
        const int64_t q = Y + R4, ly = q & (ATH_LEAF - 1);
        const int32_t *wrow = lb->win + (q / ATH_LEAF) * nl;
        uint64_t row = 0, d;
        for (i = 0; i < nl; i++)
            if (wrow[i] >= 0)
                row |= (uint64_t)((m->mask[wrow[i]] >> (ly * ATH_LEAF)) & ((1u << ATH_LEAF) - 1)) << (ATH_LEAF * i);
        if (Y >= 0 && Y < BT) lb->mmask[Y] = (uint16_t)(row >> R4);
        d = row;
        for (dx = 1; dx <= r; dx++) {
            if (narrow && dx == h + 1) dilh[Y + r] = d; /* dilated by h (h < r: reached) */
            d |= (row << dx) | (row >> dx);
        }
        dil[Y + r] = d;
    }
    if (e->cfg.extent == ATH_EXTENT_ZERO) {
        const int64_t g = e->cfg.grid_size, x0 = bc.x * BT;
        for (i = 0; i < BT; i++)
            if (x0 + i < 0 || x0 + i >= g) xclip = (uint16_t)(xclip & ~(1u << i));
    }
    lb->ex0 = lb->ey0 = BT;
    lb->ex1 = lb->ey1 = 0;
    for (y = 0; y < BT; y++) {
        uint64_t acc = 0;
        uint16_t em;
        int64_t dy;
        for (dy = -r; dy <= r; dy++) acc |= dil[y + dy + r];
        em = (uint16_t)((acc >> R4) & xclip);
        if (e->cfg.extent == ATH_EXTENT_ZERO && (bc.y * BT + y < 0 || bc.y * BT + y >= e->cfg.grid_size)) em = 0;
        lb->emask[y] = em;
        if (em != 0) {
            if (lb->ey0 == BT) lb->ey0 = (int8_t)y;
            lb->ey1 = (int8_t)(y + 1);
            if (__builtin_ctz(em) < lb->ex0) lb->ex0 = (int8_t)__builtin_ctz(em);
            if (32 - __builtin_clz(em) > lb->ex1) lb->ex1 = (int8_t)(32 - __builtin_clz(em));
        }
        ec += popcount16(em);
        hc += popcount16(em & (uint16_t)~lb->mmask[y]);
        if (narrow && em != 0) {
            uint64_t acch = 0;
            for (dy = -h; dy <= h; dy++) acch |= dilh[y + dy + r];
            live |= (uint16_t)(em & (acch >> R4));
        }
    }
    lb->ecount = ec;
    lb->hcount = hc;
    /* A zero-preserving model (built-in: finite weights) sees only zeros at a cell farther than
     * its receptive radius h from matter: its update is exactly 0, its new value 0 and its norm 0,
     * which no threshold (>= 0) keeps.  A block of such cells only is not run at all. */
    lb->quiet = (uint8_t)(narrow ? live == 0 : ec == 0);
    lb->box = ath_eng_block_box(e, blk, h);
    if (ec > 0) {
        tile_box *b = &lb->box;
        int64_t x0 = bc.x * BT + lb->ex0 - h, x1 = bc.x * BT + lb->ex1 + h;
        int64_t y0 = bc.y * BT + lb->ey0 - h, y1 = bc.y * BT + lb->ey1 + h;
        if (x0 < b->x0) x0 = b->x0;
        if (y0 < b->y0) y0 = b->y0;
        if (x1 > b->x0 + b->w) x1 = b->x0 + b->w;
        if (y1 > b->y0 + b->h) y1 = b->y0 + b->h;
        b->x0 = x0;
        b->y0 = y0;
        b->w = x1 - x0;
        b->h = y1 - y0;
    }
}

/* Value number of matter cell (x, y) of a block (its bit set in mmask). */
static inline size_t leaf_cell_slot(const ath_engine *e, const struct ath_leaf_block *lb, int64_t x, int64_t y) {
    const int64_t q = leaf_margin(e) / ATH_LEAF, nl = leaf_window_side(e);
    const int32_t leaf = lb->win[(q + y / ATH_LEAF) * nl + q + x / ATH_LEAF];
    return e->matter.slot[(size_t)leaf * ATH_LEAF_CELLS + (size_t)((y % ATH_LEAF) * ATH_LEAF + x % ATH_LEAF)];
}

/* Row-major position (y * ATH_LEAF + x) of the m-th cell of a leaf in Morton order (x the low
 * bit), which is the storage order of a leaf's cells and of a block's leaves (ath_coord_morton)
 * once a step has committed the matter. */
static const uint8_t morton_cell[ATH_LEAF_CELLS] = {0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15};
_Static_assert(BT == ATH_LEAF * ATH_LEAF, "a block is ATH_LEAF x ATH_LEAF leaves");
_Static_assert(ATH_LEAF == 4, "a leaf row is the four cells of ath_eng_put_planar4 / take_planar4");

/* Item cells [ix0, ix1) of item row iy, read from the window's leaves (zeros where empty). */
static void gather_row(const ath_engine *e, size_t blk, float *base, tile_box bx, int64_t iy, int64_t ix0,
                       int64_t ix1) {
    const ath_blocks *m = &e->matter;
    const struct ath_leaf_block *lb = &e->lblocks[blk];
    const ath_coord bc = e->blocks[blk];
    const int64_t d = e->cfg.d_state, W = bx.w, SS = bx.w * bx.h, R4 = leaf_margin(e), nl = leaf_window_side(e);
    const int64_t ox = bc.x * BT - R4, q = bx.y0 + iy - (bc.y * BT - R4);
    const int32_t *wrow = lb->win + (q / ATH_LEAF) * nl;
    const size_t lrow = (size_t)(q % ATH_LEAF) * ATH_LEAF;
    float *row = base + iy * W;
    int64_t ix;
    for (ix = ix0; ix < ix1; ix++) {
        const int64_t p = bx.x0 + ix - ox;
        const int32_t leaf = wrow[p / ATH_LEAF];
        const ath_cf32 *v = e->zeros;
        if (leaf >= 0) {
            const uint32_t s = m->slot[(size_t)leaf * ATH_LEAF_CELLS + lrow + (size_t)(p % ATH_LEAF)];
            if (s != ATH_LEAF_EMPTY) v = m->states + (size_t)s * (size_t)d;
        }
        ath_eng_put_planar(row + ix, SS, v, d);
    }
}

static void leaf_gather(const ath_engine *e, size_t blk, float *base, tile_box bx, ath_cf32 *scratch) {
    const ath_blocks *m = &e->matter;
    const struct ath_leaf_block *lb = &e->lblocks[blk];
    const ath_coord bc = e->blocks[blk];
    const int64_t d = e->cfg.d_state, W = bx.w, SS = bx.w * bx.h, nl = leaf_window_side(e);
    const int64_t q0 = leaf_margin(e) / ATH_LEAF;
    const int64_t bx0 = bc.x * BT - bx.x0, by0 = bc.y * BT - bx.y0; /* item position of the block's cell (0, 0) */
    /* the item is the block's cells of E grown by the receptive radius (leaf_box): all of it is read */
    const int64_t ix0 = 0, ix1 = W, iy0 = 0, iy1 = bx.h;
    int64_t iy;
    int li;
    (void)scratch;
    /* The block's own cells in storage order (leaves, then cells, in Morton order): the reads
     * stream through the block's values, which the hardware prefetcher follows; in row order
     * they jumped between leaves and waited on memory. */
    for (li = 0; li < ATH_LEAF_CELLS; li++) {
        const int lx = morton_cell[li] % ATH_LEAF, ly = morton_cell[li] / ATH_LEAF;
        const int32_t leaf = lb->win[(q0 + ly) * nl + q0 + lx];
        const uint32_t *sl = leaf >= 0 ? m->slot + (size_t)leaf * ATH_LEAF_CELLS : NULL;
        const int64_t cx0 = bx0 + lx * ATH_LEAF, cy0 = by0 + ly * ATH_LEAF;
        if (cx0 + ATH_LEAF <= ix0 || cx0 >= ix1 || cy0 + ATH_LEAF <= iy0 || cy0 >= iy1) continue;
        if (cx0 >= ix0 && cx0 + ATH_LEAF <= ix1 && cy0 >= iy0 && cy0 + ATH_LEAF <= iy1) {
            /* the whole leaf is in the item: a row of four cells at a time */
            int ly2, c;
            for (ly2 = 0; ly2 < ATH_LEAF; ly2++) {
                const ath_cf32 *v[ATH_LEAF];
                for (c = 0; c < ATH_LEAF; c++) {
                    const uint32_t s = sl != NULL ? sl[ly2 * ATH_LEAF + c] : ATH_LEAF_EMPTY;
                    v[c] = s != ATH_LEAF_EMPTY ? m->states + (size_t)s * (size_t)d : e->zeros;
                }
                ath_eng_put_planar4(base + (cy0 + ly2) * W + cx0, SS, v, d);
            }
            continue;
        }
        {
            /* a leaf cut by the item's edge (a halo block's strip): only its cells in the item */
            const int64_t xa = cx0 > ix0 ? cx0 : ix0, xb = cx0 + ATH_LEAF < ix1 ? cx0 + ATH_LEAF : ix1;
            const int64_t ya = cy0 > iy0 ? cy0 : iy0, yb = cy0 + ATH_LEAF < iy1 ? cy0 + ATH_LEAF : iy1;
            int64_t ix, iy2;
            for (iy2 = ya; iy2 < yb; iy2++)
                for (ix = xa; ix < xb; ix++) {
                    const int cl = (int)((iy2 - cy0) * ATH_LEAF + (ix - cx0));
                    const ath_cf32 *v = e->zeros;
                    if (sl != NULL && sl[cl] != ATH_LEAF_EMPTY) v = m->states + (size_t)sl[cl] * (size_t)d;
                    ath_eng_put_planar(base + iy2 * W + ix, SS, v, d);
                }
        }
    }
    /* the ring of the receptive radius around the block, row by row */
    for (iy = iy0; iy < iy1; iy++) {
        if (iy >= by0 && iy < by0 + BT) {
            gather_row(e, blk, base, bx, iy, ix0, ix1 < bx0 ? ix1 : bx0);
            gather_row(e, blk, base, bx, iy, ix0 > bx0 + BT ? ix0 : bx0 + BT, ix1);
        } else {
            gather_row(e, blk, base, bx, iy, ix0, ix1);
        }
    }
}

/* Floats per planar channel row of leaf_update's stack scratch (its chunk is this / d cells). */
#define LEAF_CHUNK_FLOATS 4096

/* The rule for the block's cells of E, psi read from the input item (a built-in model
 * leaves it as it was; it holds each cell's current value or zero).  The block's rows
 * are contiguous in every channel plane of the items, so the rule runs over the span
 * from its first to its last cell of E in long chunks (the cells between, halo
 * columns included, are computed and dropped): each chunk streams through every
 * plane once, where a call per 16-cell row made 2 d short strided reads wait on
 * memory. */
static int leaf_update(ath_engine *e, size_t blk, const float *in, const float *out, tile_box bx) {
    struct ath_leaf_block *lb = &e->lblocks[blk];
    const ath_coord bc = e->blocks[blk];
    /* a chunk's output planes a cache line short of a power of two apart: at a power-of-two
     * stride the 2 d planes fell into the same few L1 sets */
    const int64_t d = e->cfg.d_state, W = bx.w, SS = bx.w * bx.h, ostride = LEAF_CHUNK_FLOATS / d - 16,
                  cw = ostride;
    /* item offset of block cell (x, y): rowoff(y) + x */
    const int64_t off0 = (bc.y * BT - bx.y0) * W + (bc.x * BT - bx.x0);
    float ore[LEAF_CHUNK_FLOATS], oim[LEAF_CHUNK_FLOATS];
    double norm[LEAF_CHUNK_FLOATS];
    uint8_t nonfin[LEAF_CHUNK_FLOATS], keep[LEAF_CHUNK_FLOATS];
    uint64_t h = lb->hbase;
    uint32_t kept = 0, births = 0;
    int64_t y0 = -1, y1 = 0, xmin = BT, xmax = -1, y, p0, p1, c0, seg;
    unsigned bits = 0;
    int rows;
    int bad = 0;
    for (y = 0; y < BT; y++) {
        const unsigned em = lb->emask[y];
        if (em == 0) continue;
        if (y0 < 0) y0 = y;
        y1 = y + 1;
        if (__builtin_ctz(em) < xmin) xmin = __builtin_ctz(em);
        if (31 - __builtin_clz(em) > xmax) xmax = 31 - __builtin_clz(em);
    }
    lb->kept = lb->births = 0;
    if (y0 < 0) return 0;
    p0 = off0 + y0 * W + xmin;
    p1 = off0 + (y1 - 1) * W + xmax + 1;
    /* a block with few cells of E in its span (a halo block: a column or two) runs row by row */
    rows = 2 * (int64_t)lb->ecount < p1 - p0;
    y = y0;
    bits = lb->emask[y0];
    if (!rows && p1 - p0 <= cw) {
        /* the block's span is one chunk: its matter cells' results go to their values in
         * storage order (leaves, then cells, in Morton order), a stream through the block's
         * range of the new pool instead of stores scattered over it in row order */
        const int64_t q0 = leaf_margin(e) / ATH_LEAF, nl = leaf_window_side(e);
        /* a pool too large to stay cached until the next step (it is not kept, SPARE_POOL_MAX)
         * is written with non-temporal stores */
        const int stream = e->matter.cells_cap * (size_t)d * sizeof(ath_cf32) > SPARE_POOL_MAX &&
                           ((uintptr_t)e->lvals & 15u) == 0;
        int li, ci;
        (void)ath_rule_planar_row(in + p0, in + p0 + d * SS, (ptrdiff_t)SS, out + p0, out + p0 + d * SS,
                                  (ptrdiff_t)SS, p1 - p0, d, e->cfg.gamma_decay, e->cfg.unitary, e->cfg.threshold,
                                  ore, oim, ostride, norm, nonfin, keep);
        /* (a halo block has no matter cell of E: straight to the others) */
        for (li = lb->ecount > lb->hcount ? 0 : ATH_LEAF_CELLS; li < ATH_LEAF_CELLS; li++) {
            const int lx = morton_cell[li] % ATH_LEAF, ly = morton_cell[li] / ATH_LEAF;
            const int32_t leaf = lb->win[(q0 + ly) * nl + q0 + lx];
            const uint32_t *sl;
            if (leaf < 0) continue;
            sl = e->matter.slot + (size_t)leaf * ATH_LEAF_CELLS;
            if (((lb->mmask[ly * ATH_LEAF] & lb->emask[ly * ATH_LEAF]) >> (lx * ATH_LEAF) & 0xFu) == 0xFu &&
                ((lb->mmask[ly * ATH_LEAF + 1] & lb->emask[ly * ATH_LEAF + 1]) >> (lx * ATH_LEAF) & 0xFu) == 0xFu &&
                ((lb->mmask[ly * ATH_LEAF + 2] & lb->emask[ly * ATH_LEAF + 2]) >> (lx * ATH_LEAF) & 0xFu) == 0xFu &&
                ((lb->mmask[ly * ATH_LEAF + 3] & lb->emask[ly * ATH_LEAF + 3]) >> (lx * ATH_LEAF) & 0xFu) == 0xFu) {
                /* a full leaf: a row of four cells at a time */
                int r, c;
                for (r = 0; r < ATH_LEAF; r++) {
                    const int64_t j = off0 + (ly * ATH_LEAF + r) * W + lx * ATH_LEAF - p0;
                    ath_cf32 *o[ATH_LEAF];
                    for (c = 0; c < ATH_LEAF; c++) {
                        const size_t sv = sl[r * ATH_LEAF + c];
                        o[c] = e->lvals + sv * (size_t)d;
                        bad |= nonfin[j + c];
                        e->lkeep[sv] = keep[j + c];
                        kept += keep[j + c];
                    }
                    if (stream)
                        ath_eng_take_planar4_stream(ore + j, oim + j, ostride, d, o);
                    else
                        ath_eng_take_planar4(ore + j, oim + j, ostride, d, o);
                }
                continue;
            }
            for (ci = 0; ci < ATH_LEAF_CELLS; ci++) {
                const int cl = morton_cell[ci];
                const int64_t x = lx * ATH_LEAF + cl % ATH_LEAF, yy = ly * ATH_LEAF + cl / ATH_LEAF;
                const int64_t j = off0 + yy * W + x - p0;
                size_t sv;
                if (!((lb->mmask[yy] & lb->emask[yy]) >> x & 1u)) continue;
                sv = sl[cl];
                bad |= nonfin[j];
                ath_eng_take_planar(ore + j, oim + j, ostride, d, e->lvals + sv * (size_t)d);
                e->lkeep[sv] = keep[j];
                kept += keep[j];
            }
        }
        if (stream) ath_planar_stream_fence();
        /* the other cells of E in row-major order (the hvals order) */
        for (y = y0; y < y1; y++) {
            unsigned hb = lb->emask[y] & (unsigned)~lb->mmask[y];
            while (hb != 0) {
                const int64_t x = __builtin_ctz(hb), j = off0 + y * W + x - p0;
                hb &= hb - 1;
                bad |= nonfin[j];
                ath_eng_take_planar(ore + j, oim + j, ostride, d, e->hvals + h * (uint64_t)d);
                e->hkeep[h] = keep[j];
                births += keep[j];
                h++;
            }
        }
        lb->kept = kept;
        lb->births = births;
        return bad;
    }
    for (c0 = p0, seg = y0; c0 < p1;) {
        int64_t n;
        if (rows) { /* the next row with cells of E: its first to its last */
            unsigned em = 0;
            while (seg < y1 && (em = lb->emask[seg]) == 0) seg++;
            if (seg >= y1) break;
            c0 = off0 + seg * W + __builtin_ctz(em);
            n = 32 - __builtin_clz(em) - __builtin_ctz(em);
            seg++;
        } else {
            n = p1 - c0 < cw ? p1 - c0 : cw;
        }
        (void)ath_rule_planar_row(in + c0, in + c0 + d * SS, (ptrdiff_t)SS, out + c0, out + c0 + d * SS,
                                  (ptrdiff_t)SS, n, d, e->cfg.gamma_decay, e->cfg.unitary, e->cfg.threshold, ore,
                                  oim, ostride, norm, nonfin, keep);
        /* the block's cells of E in row-major order (the hvals order) that fall in this chunk */
        while (y < y1) {
            int64_t x, j;
            if (bits == 0) {
                if (++y < y1) bits = lb->emask[y];
                continue;
            }
            x = __builtin_ctz(bits);
            j = off0 + y * W + x - c0;
            if (j >= n) break;
            bits &= bits - 1;
            if (nonfin[j]) bad = 1;
            if ((lb->mmask[y] >> x) & 1u) {
                const size_t s = leaf_cell_slot(e, lb, x, y);
                ath_eng_take_planar(ore + j, oim + j, ostride, d, e->lvals + s * (size_t)d);
                e->lkeep[s] = keep[j];
                kept += keep[j];
            } else {
                ath_eng_take_planar(ore + j, oim + j, ostride, d, e->hvals + h * (uint64_t)d);
                e->hkeep[h] = keep[j];
                births += keep[j];
                h++;
            }
        }
        if (!rows) c0 += n;
    }
    lb->kept = kept;
    lb->births = births;
    return bad;
}

/* A block's input region cropped to its cells of E grown by the receptive radius h: only
 * that input reaches a kept result, so a halo block (a row, a column or a corner of E) runs
 * the model on a strip instead of a whole (16 + 2h)^2 item.  A built-in model computes each
 * output from its own neighbourhood in the same order whatever the item's size (tiles and
 * patches give the same numbers), so the results are the same bits. */
static tile_box leaf_box(const ath_engine *e, size_t blk, int64_t h) {
    (void)h; /* the model's receptive radius, which the scan used */
    return e->lblocks[blk].box;
}

static const ath_tile_source leaf_source = {leaf_box, leaf_gather, leaf_update};

/* Step 4, not steady: the kept cells in Morton order (the general path's E order) become new leaves. */
static ath_status leaf_commit_rebuild(ath_engine *e, size_t nb, size_t nk, ath_error *err) {
    const size_t d = (size_t)e->cfg.d_state;
    ath_coord *cs = (ath_coord *)ath_eng_salloc(nk * sizeof *cs), *oc = (ath_coord *)ath_eng_salloc(nk * sizeof *oc);
    ath_cf32 *vs = (ath_cf32 *)ath_eng_salloc(nk * d * sizeof *vs), *ov = (ath_cf32 *)ath_eng_salloc(nk * d * sizeof *ov);
    skey *keys = (skey *)ath_eng_salloc(nk * sizeof *keys), *tmp = (skey *)ath_eng_salloc(nk * sizeof *tmp), *k;
    ath_status st = ATH_OK;
    size_t blk, i = 0;
    if (cs == NULL || oc == NULL || vs == NULL || ov == NULL || keys == NULL || tmp == NULL) {
        st = ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (commit of %zu cells)", nk);
        goto out;
    }
    for (blk = 0; blk < nb; blk++) {
        const struct ath_leaf_block *lb = &e->lblocks[blk];
        const ath_coord bc = e->blocks[blk];
        uint64_t h = lb->hbase;
        int64_t y, x;
        for (y = 0; y < BT; y++) {
            const unsigned em = lb->emask[y], mm = lb->mmask[y] & em;
            for (x = 0; x < BT; x++) {
                const ath_cf32 *v = NULL;
                if (!((em >> x) & 1u)) continue;
                if ((mm >> x) & 1u) {
                    const size_t s = leaf_cell_slot(e, lb, x, y);
                    if (e->lkeep[s]) v = e->lvals + s * d;
                } else {
                    if (e->hkeep[h]) v = e->hvals + h * d;
                    h++;
                }
                if (v == NULL) continue;
                cs[i] = ath_coord_make(bc.x * BT + x, bc.y * BT + y, bc.z);
                memcpy(vs + i * d, v, d * sizeof *vs);
                keys[i].key = ath_coord_morton(cs[i]);
                keys[i].idx = (uint64_t)i;
                i++;
            }
        }
    }
    k = ath_coord_morton_sort_keys(keys, tmp, nk, cs);
    for (i = 0; i < nk; i++) {
        oc[i] = cs[k[i].idx];
        memcpy(ov + i * d, vs + (size_t)k[i].idx * d, d * sizeof *ov);
    }
    st = ath_eng_commit_cells(e, nk, oc, ov, err);
out:
    ath_eng_sfree(cs);
    ath_eng_sfree(oc);
    ath_eng_sfree(vs);
    ath_eng_sfree(ov);
    ath_eng_sfree(keys);
    ath_eng_sfree(tmp);
    return st;
}

ath_status ath_eng_leaf_step(ath_engine *e, int *declined, int64_t *matter_count, ath_error *err) {
    const size_t d = (size_t)e->cfg.d_state, nc = e->matter.ncells;
    size_t nb = 0, n = 0, nh = 0, kept = 0, births = 0, blk, nrun = 0, nrun_cells = 0;
    uint32_t *home;
    ptrdiff_t sb;
    int64_t calls = 0, per_call = e->batch;
    int nthreads = 1;
    ath_status st;
    *declined = 0;
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
    if (nthreads < 1) nthreads = 1;
#endif
    home = (uint32_t *)ath_eng_salloc((e->matter.nleaves > 0 ? e->matter.nleaves : 1) * sizeof *home);
    if (home == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (%zu leaves)", e->matter.nleaves);
    st = leaf_blocks(e, &nb, home, declined, err);
    if (st == ATH_OK && !*declined) {
        e->lblocks = (struct ath_leaf_block *)ath_eng_salloc((nb > 0 ? nb : 1) * sizeof(struct ath_leaf_block));
        if (e->lblocks == NULL) st = ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (%zu blocks)", nb);
    }
    if (st != ATH_OK || *declined) {
        ath_eng_sfree(home);
        return st;
    }
    e->lblocks_cap = nb;
    for (blk = 0; blk < nb; blk++) e->lblocks[blk].home = 0;
    for (blk = 0; blk < e->matter.nleaves; blk++)
        if (e->matter.mask[blk] != 0) {
            if (home[blk] >= nb) { /* cannot happen (a leaf's block is one its cells touch): probe all */
                size_t b2;
                for (b2 = 0; b2 < nb; b2++) e->lblocks[b2].home = 1;
                break;
            }
            e->lblocks[home[blk]].home = 1;
        }
    ath_eng_sfree(home);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 16) if (nb > 1024)
#endif
    for (sb = 0; sb < (ptrdiff_t)nb; sb++) leaf_block_scan(e, (size_t)sb, &e->lblocks[sb]);
    for (blk = 0; blk < nb; blk++) n += e->lblocks[blk].ecount;
    if (ath_eng_tiles_too_sparse(e, n, nb)) {
        *declined = 1;
        return ATH_OK;
    }
    /* Quiet blocks (leaf_block_scan) leave the step: their cells of E are not matter and stay
     * empty, so only the other blocks are run and committed (e->blocks is compacted with them;
     * the block table is not used again this step). */
    for (blk = 0; blk < nb; blk++) {
        struct ath_leaf_block *lb = &e->lblocks[blk];
        if (lb->quiet && lb->ecount == lb->hcount) continue;
        if (nrun != blk) {
            e->lblocks[nrun] = *lb;
            e->blocks[nrun] = e->blocks[blk];
        }
        e->lblocks[nrun].hbase = nh;
        nh += e->lblocks[nrun].hcount;
        nrun_cells += e->lblocks[nrun].ecount;
        nrun++;
    }
    {
        /* a small universe's pool is recycled: the last steady step's old values (kept, <= SPARE_POOL_MAX)
         * become this step's new ones instead of fresh pages */
        const size_t pool = e->matter.cells_cap * d * sizeof(ath_cf32);
        if (e->spare_pool != NULL && e->spare_bytes == pool) {
            e->lvals = e->spare_pool;
        } else {
            ath_big_free(e->spare_pool);
            e->lvals = (ath_cf32 *)ath_eng_salloc(pool);
        }
        e->spare_pool = NULL;
        e->spare_bytes = 0;
    }
    e->lkeep = (uint8_t *)ath_eng_salloc(nc);
    e->hvals = (ath_cf32 *)ath_eng_salloc((nh > 0 ? nh : 1) * d * sizeof(ath_cf32));
    e->hkeep = (uint8_t *)ath_eng_salloc(nh > 0 ? nh : 1);
    if (e->lvals == NULL || e->lkeep == NULL || e->hvals == NULL || e->hkeep == NULL)
        return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (%zu cells)", nc + nh);
    st = ath_eng_scratch_reserve(e, nthreads, 0, nrun_cells, err);
    if (st == ATH_OK) st = ath_eng_step_tiles(e, nrun, nrun_cells, &leaf_source, &calls, &per_call, err);
    if (st != ATH_OK) return st;
    for (blk = 0; blk < nrun; blk++) {
        kept += e->lblocks[blk].kept;
        births += e->lblocks[blk].births;
    }
    if (births == 0 && kept == nc) {
        /* every matter cell stays and none is born: the leaves stay, the values are the new pool */
        const size_t pool = e->matter.cells_cap * d * sizeof(ath_cf32);
        ath_cf32 *old = ath_blocks_adopt_states(&e->matter, e->lvals);
        e->lvals = NULL;
        if (pool <= SPARE_POOL_MAX) {
            e->spare_pool = old;
            e->spare_bytes = pool;
        } else {
            ath_big_free(old);
        }
    } else {
        st = leaf_commit_rebuild(e, nrun, kept + births, err);
        if (st != ATH_OK) return st;
    }
    ath_eng_matter_changed(e);
    e->matter_ordered = 1;
    e->step++;
    e->stats.evaluated = (int64_t)n;
    e->stats.model_calls = calls;
    e->stats.batch = per_call;
    e->stats.path = ATH_STEP_LEAVES;
    if (matter_count != NULL) *matter_count = (int64_t)(kept + births);
    return ATH_OK;
}
