/* Sparse Engine step 4 on tiles (16 x 16 blocks with halos, conv models). */
#include "engine_internal.h"
#include "first_error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------- tile evaluation
 *
 * For models that accept any H x W (conv stacks) with a known receptive
 * radius R <= r: E is covered by BT x BT blocks (BT = ATH_ENGINE_TILE); each
 * block is one item [C, BT+2R, BT+2R] (the block and a halo of R cells,
 * read exactly as a patch would read them), the model runs on a batch of
 * blocks, and a cell of E takes the output at its position in its block.
 * The output at a cell depends only on the input within R of it, all of it
 * inside the item, so this is the number a p x p patch centred on the cell
 * gives (built-in conv: bit for bit, same operations in the same order). */

#define BT ATH_ENGINE_TILE


static inline ath_hindex block_index(const ath_engine *e) {
    ath_hindex ix;
    ix.slots = e->btable;
    ix.size = e->bcap;
    return ix;
}

int64_t ath_eng_block_get(ath_engine *e, size_t *nb, int64_t bx, int64_t by, int64_t z, ath_error *err) {
    const ath_coord key = ath_coord_make(bx, by, z);
    const uint64_t h = ath_eng_tslot_hash(bx, by, z);
    ath_hindex ix;
    size_t s;
    int found;
    if (2 * (*nb + 1) > e->bcap) {
        const size_t cap = e->bcap > 0 ? 2 * e->bcap : 256;
        uint32_t *nt = (uint32_t *)ath_malloc(cap * sizeof *nt);
        if (nt == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (block table)"), -1;
        ath_free(e->btable);
        e->btable = nt;
        e->bcap = cap;
        ix = block_index(e);
        ath_hindex_clear(&ix);
        ath_hindex_insert_all(&ix, *nb, e->blocks, ath_eng_tcoord_hash);
    }
    ix = block_index(e);
    s = ath_hindex_probe(&ix, h, e->blocks, &key, ath_eng_tcoord_eq, &found);
    if (found) return (int64_t)e->btable[s];
    if (*nb + 1 > e->blocks_cap &&
        ath_eng_grow((void **)&e->blocks, &e->blocks_cap, *nb + 1, sizeof(ath_coord), err) != ATH_OK)
        return -1;
    e->btable[s] = (uint32_t)*nb;
    e->blocks[*nb] = ath_coord_make(bx, by, z);
    return (int64_t)(*nb)++;
}

/* The blocks covering E (sorted), in order of first appearance. */
ath_status ath_eng_build_blocks(ath_engine *e, size_t n, size_t *nb_out, ath_error *err) {
    size_t i, nb = 0;
    int64_t px = EMPTY_X, py = 0, pz = 0;
    {
        ath_hindex ix = block_index(e);
        ath_hindex_clear(&ix);
    }
    for (i = 0; i < n; i++) {
        const ath_coord c = e->ecoords[i];
        const int64_t bx = ath_eng_block_of(c.x), by = ath_eng_block_of(c.y);
        if (bx == px && by == py && c.z == pz) continue;
        if (ath_eng_block_get(e, &nb, bx, by, c.z, err) < 0) return err != NULL ? err->code : ATH_ERR_NOMEM;
        px = bx;
        py = by;
        pz = c.z;
    }
    *nb_out = nb;
    return ATH_OK;
}

/* Position in E of c (mapped through the extent), with a one-entry cache of the 4 x 4 tile. */
static inline int64_t e_find_cached(const ath_engine *e, ath_coord c, int64_t *ctx, int64_t *cty, int64_t *ctz,
                                    int64_t *ct) {
    const int64_t tx = ath_eng_tile_of(c.x), ty = ath_eng_tile_of(c.y);
    if (tx != *ctx || ty != *cty || c.z != *ctz) {
        *ctx = tx;
        *cty = ty;
        *ctz = c.z;
        *ct = ath_eng_tile_find(e, tx, ty, c.z);
    }
    return *ct < 0 ? -1 : e->tcells[*ct * TILE * TILE + ath_eng_tile_local(c)];
}

static int block_order_cmp(const void *a, const void *b) {
    const struct block_order *p = (const struct block_order *)a, *q = (const struct block_order *)b;
    if (p->key != q->key) return p->key < q->key ? -1 : 1;
    return p->blk < q->blk ? -1 : (p->blk > q->blk ? 1 : 0);
}

/* Item base of tin_buf: the input region bx of block blk. */
/* Most 4 x 4 tiles a block's input region covers for the precomputed lookup (halo <= 14). */
#define GATHER_TILES_MAX 144

static void tile_gather(const ath_engine *e, size_t blk, float *base, tile_box bx, ath_cf32 *scratch) {
    const int64_t d = e->cfg.d_state, W = bx.w, SS = bx.w * bx.h;
    const int64_t z = e->blocks[blk].z;
    int64_t iy, ix, k, ctx = EMPTY_X, cty = 0, ctz = 0, ct = -1;
    /* Off a periodic window the region's cells keep their coordinates, so the 4 x 4 tiles
     * it covers are looked up once per block here rather than once per row they cross. */
    const int64_t tx0 = ath_eng_tile_of(bx.x0), ty0 = ath_eng_tile_of(bx.y0);
    const int64_t ntx = ath_eng_tile_of(bx.x0 + W - 1) - tx0 + 1, nty = ath_eng_tile_of(bx.y0 + bx.h - 1) - ty0 + 1;
    int64_t tl[GATHER_TILES_MAX];
    const int pre = e->cfg.extent != ATH_EXTENT_PERIODIC && ntx * nty <= GATHER_TILES_MAX;
    if (pre) {
        int64_t j, i;
        for (j = 0; j < nty; j++)
            for (i = 0; i < ntx; i++) tl[j * ntx + i] = ath_eng_tile_find(e, tx0 + i, ty0 + j, z);
    }
    if (pre) {
        /* row by row: the window test and the tile row are per row, the tile per cell a lookup in tl */
        const int zero_ext = e->cfg.extent == ATH_EXTENT_ZERO, vacuum = e->cfg.background == ATH_BACKGROUND_VACUUM;
        const int64_t g = e->cfg.grid_size;
        for (iy = 0; iy < bx.h; iy++) {
            const int64_t y = bx.y0 + iy, ly = (y & (TILE - 1)) * TILE;
            const int yin = !zero_ext || (y >= 0 && y < g);
            const int64_t *trow = tl + (ath_eng_tile_of(y) - ty0) * ntx;
            float *row = base + iy * W;
            for (ix = 0; ix < W; ix++) {
                const int64_t x = bx.x0 + ix;
                const ath_cf32 *v = e->zeros; /* outside a 'zero' window, or an absent cell on zero */
                if (yin && (!zero_ext || (x >= 0 && x < g))) {
                    const int64_t t = trow[ath_eng_tile_of(x) - tx0];
                    const int64_t idx = t < 0 ? -1 : e->tcells[t * TILE * TILE + ly + (x & (TILE - 1))];
                    if (idx >= 0) {
                        v = ath_eng_cur_of(e, idx);
                    } else if (vacuum) {
                        ath_eng_background(e, ath_coord_make(x, y, z), scratch);
                        v = scratch;
                    }
                }
                ath_eng_put_planar(row + ix, SS, v, d);
            }
        }
        return;
    }
    for (iy = 0; iy < bx.h; iy++) {
        for (ix = 0; ix < W; ix++) {
            ath_coord c = ath_coord_make(bx.x0 + ix, bx.y0 + iy, z);
            const int64_t px = iy * W + ix;
            const ath_cf32 *v;
            int64_t idx;
            if (!ath_eng_map_extent(e, &c)) {
                for (k = 0; k < d; k++) {
                    base[k * SS + px] = 0.0f;
                    base[(d + k) * SS + px] = 0.0f;
                }
                continue;
            }
            idx = e_find_cached(e, c, &ctx, &cty, &ctz, &ct);
            if (idx >= 0) {
                v = ath_eng_cur_of(e, idx);
            } else {
                ath_eng_background(e, c, scratch);
                v = scratch;
            }
            ath_eng_put_planar(base + px, SS, v, d);
        }
    }
}

/* Tile numbers of the (BT/TILE)^2 4 x 4 tiles of block bc (-1 where absent). */
static void block_tiles(const ath_engine *e, ath_coord bc, int64_t *tl) {
    const int64_t nt = BT / TILE;
    int64_t i, j;
    for (j = 0; j < nt; j++)
        for (i = 0; i < nt; i++) tl[j * nt + i] = ath_eng_tile_find(e, bc.x * nt + i, bc.y * nt + j, bc.z);
}

/* Position in E of the cell (ix, iy) of a block whose tiles are tl, or -1. */
static inline int64_t block_cell(const ath_engine *e, const int64_t *tl, int64_t ix, int64_t iy) {
    const int64_t t = tl[(iy / TILE) * (BT / TILE) + ix / TILE];
    return t < 0 ? -1 : e->tcells[t * TILE * TILE + (iy & (TILE - 1)) * TILE + (ix & (TILE - 1))];
}

/* Widest state that tile_update runs through ath_rule_planar_row (stack scratch). */
#define RULE_MAX_D 64

/* The rule for the cells of E in block blk from the input item in and the output
 * item out (region bx); 1 if non-finite output (at a cell of E).  Row by row: the
 * cells of E in a block row run through ath_rule_planar_row together; cells of
 * the row not in E are computed and dropped.  A built-in model leaves its input
 * as it was, and the input item holds exactly the current field on E (the
 * matter value, else the background, gathered as ath_eng_cur_of() reads it), so
 * psi is read from there with nothing transposed; a model from outside (which
 * might write to its input) gets psi transposed from the field itself.  Sparse
 * rows go cell by cell. */
static int tile_update(ath_engine *e, size_t blk, const float *in, const float *out, tile_box bx) {
    const int64_t d = e->cfg.d_state, W = bx.w, SS = bx.w * bx.h;
    const ath_coord bc = e->blocks[blk];
    const int64_t bx0 = bc.x * BT, by0 = bc.y * BT;
    /* block cells inside the region (all of them unless clipped to a 'zero' window) */
    const int64_t xa = bx.x0 > bx0 ? bx.x0 - bx0 : 0, xb = bx.x0 + bx.w < bx0 + BT ? bx.x0 + bx.w - bx0 : BT;
    const int64_t ya = bx.y0 > by0 ? bx.y0 - by0 : 0, yb = bx.y0 + bx.h < by0 + BT ? bx.y0 + bx.h - by0 : BT;
    int64_t tl[(BT / TILE) * (BT / TILE)], idx[BT];
    float ore[RULE_MAX_D * BT], oim[RULE_MAX_D * BT], pbuf_re[RULE_MAX_D * BT], pbuf_im[RULE_MAX_D * BT];
    const int psi_from_item = ath_model_accepts_tiles(e->model);
    double norm[BT];
    uint8_t nonfin[BT], keep[BT];
    int64_t iy, ix, k;
    int bad = 0;
    block_tiles(e, bc, tl);
    for (iy = ya; iy < yb; iy++) {
        const int64_t roff = (by0 + iy - bx.y0) * W + (bx0 - bx.x0);
        const float *rrow = out + roff, *prow = in + roff, *pre, *pim;
        ptrdiff_t ps;
        int64_t cnt = 0, x0 = -1, x1 = 0;
        for (ix = xa; ix < xb; ix++) {
            idx[ix] = block_cell(e, tl, ix, iy);
            if (idx[ix] >= 0) {
                if (x0 < 0) x0 = ix;
                x1 = ix + 1;
                cnt++;
            }
        }
        if (cnt == 0) continue;
        if (d > RULE_MAX_D || cnt * 2 < x1 - x0) {
            for (ix = x0; ix < x1; ix++) {
                const float *re = rrow + ix, *im = re + d * SS;
                if (idx[ix] < 0) continue;
                for (k = 0; k < d; k++)
                    if (!isfinite(re[k * SS]) || !isfinite(im[k * SS])) bad = 1;
                e->keep[idx[ix]] = (uint8_t)ath_rule_keep(
                    ath_step_rule(ath_eng_cur_of(e, idx[ix]), re, im, (ptrdiff_t)SS, d, e->cfg.gamma_decay,
                                  e->cfg.unitary, e->newst + idx[ix] * d),
                    e->cfg.threshold);
            }
            continue;
        }
        if (psi_from_item) {
            pre = prow + x0;
            pim = prow + x0 + d * SS;
            ps = (ptrdiff_t)SS;
        } else {
            for (ix = x0; ix < x1; ix++) {
                const int64_t j = ix - x0;
                const ath_cf32 *v = idx[ix] >= 0 ? ath_eng_cur_of(e, idx[ix]) : e->zeros;
                for (k = 0; k < d; k++) {
                    pbuf_re[k * BT + j] = v[k].re;
                    pbuf_im[k * BT + j] = v[k].im;
                }
            }
            pre = pbuf_re;
            pim = pbuf_im;
            ps = BT;
        }
        (void)ath_rule_planar_row(pre, pim, ps, rrow + x0, rrow + x0 + d * SS, (ptrdiff_t)SS, x1 - x0, d,
                                  e->cfg.gamma_decay, e->cfg.unitary, e->cfg.threshold, ore, oim, BT, norm,
                                  nonfin, keep);
        for (ix = x0; ix < x1; ix++) {
            const int64_t j = ix - x0;
            if (idx[ix] < 0) continue;
            if (nonfin[j]) bad = 1;
            ath_eng_take_planar(ore + j, oim + j, BT, d, e->newst + idx[ix] * d);
            e->keep[idx[ix]] = keep[j];
        }
    }
    return bad;
}

int ath_eng_tiles_too_sparse(const ath_engine *e, size_t n, size_t nb) {
    const double S = (double)(BT + 2 * e->model->receptive_radius), p = (double)e->cfg.patch;
    /* a 'zero' window is exact only on tiles (clipped to the window), so it stays on tiles;
     * only the built-in models are known to give the same bits both ways (a callable that
     * accepts tiles is evaluated as it asked) */
    if (e->cfg.extent == ATH_EXTENT_ZERO || !ath_model_accepts_tiles(e->model)) return 0;
    /* work per step: tiles ~ nb * S^2 input cells, patches ~ n * p^2; tiles are cheaper per
     * cell (one model call per block row), hence the factor 2 */
    return (double)n * p * p * 2.0 < (double)nb * S * S;
}

/* A built-in model's batches: each thread gathers, runs the model on and updates its own
 * batches of this many floats (per buffer), so an item is still in the thread's cache when
 * the rule reads it, and a step has one parallel region instead of two per batch. */
#define LOCAL_BATCH_FLOATS ((int64_t)1 << 16)
/* ... and at least this many batches per thread when the blocks allow (dynamic schedule). */
#define LOCAL_BATCHES_PER_THREAD 4
/* Fewest cells of E for which a built-in model's step runs on more than one thread. */
#define LOCAL_PARALLEL_MIN_CELLS 2048

/* Step 4 for a built-in model (ZeroModel, conv stack): it computes every item on its own
 * and may run on any thread (nested inside this region it runs on the calling thread), so
 * the batches are split among the threads; which blocks share a batch does not change a
 * number.  starts[0..nbat]: the batches (runs of one region shape) in e->border. */
static ath_status step_tiles_local(ath_engine *e, const ath_tile_source *src, const size_t *starts, size_t nbat,
                                   int64_t tb, int nthreads, ath_error *err) {
    const int64_t h = e->model->receptive_radius, S = BT + 2 * h, slot = tb * e->channels * S * S;
    ath_first_error fe = {ATH_OK, 0};
    int bad = 0;
    ptrdiff_t ib;
    (void)nthreads;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) reduction(| : bad) if (nbat > 1)
#endif
    {
        int tid = 0;
        float *tin, *tout;
        ath_cf32 *scratch;
        ath_error lerr;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        tin = e->tin_buf + (size_t)tid * (size_t)slot;
        tout = e->tout_buf + (size_t)tid * (size_t)slot;
        scratch = e->bg_scratch + (size_t)tid * (size_t)e->cfg.d_state;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (ib = 0; ib < (ptrdiff_t)nbat; ib++) {
            const size_t b0 = starts[ib], cnt = starts[ib + 1] - b0;
            const tile_box bx0 = src->box(e, e->border[b0].blk, h);
            const int64_t item = e->channels * bx0.w * bx0.h;
            int64_t shape[4];
            ath_out_layout layout;
            ath_status lst;
            size_t b;
            if (ath_first_error_seen(&fe)) continue;
            for (b = 0; b < cnt; b++) {
                const size_t blk = e->border[b0 + b].blk;
                src->gather(e, blk, tin + (int64_t)b * item, src->box(e, blk, h), scratch);
            }
            shape[0] = (int64_t)cnt;
            shape[1] = e->channels;
            shape[2] = bx0.h;
            shape[3] = bx0.w;
            lst = ath_model_forward(e->model, tin, shape, tout, 0, &layout, &lerr);
            if (lst != ATH_OK) {
                ath_first_error_set(&fe, lst, &lerr, err);
                continue;
            }
            for (b = 0; b < cnt; b++) {
                const size_t blk = e->border[b0 + b].blk;
                bad |= src->update(e, blk, tin + (int64_t)b * item, tout + (int64_t)b * item,
                                   src->box(e, blk, h));
            }
        }
    }
    if (fe.st != ATH_OK) return fe.st;
    if (bad)
        return ath_model_nonfinite_error(e->model, err);
    return ATH_OK;
}

static tile_box tile_block_box(const ath_engine *e, size_t blk, int64_t h) { return ath_eng_block_box(e, blk, h); }

const ath_tile_source ath_eng_eset_source = {tile_block_box, tile_gather, tile_update};

/* Blocks in the batch starting at e->border[b0]: a run of one region shape, at most tb. */
static size_t batch_length(const ath_engine *e, size_t b0, size_t nb, int64_t tb) {
    size_t cnt = 1;
    while (cnt < (size_t)tb && b0 + cnt < nb && e->border[b0 + cnt].key == e->border[b0].key) cnt++;
    return cnt;
}

/* Step 4 on tiles.  *calls gets the number of forward() calls, *per_call the blocks per call.
 * Blocks with a whole S x S region run first, in batches of up to tb; blocks whose region
 * is smaller (clipped to a 'zero' window, or cropped by the leaf source to its cells of E)
 * then run grouped by their region's shape, each group in block order. */
ath_status ath_eng_step_tiles(ath_engine *e, size_t nb, size_t n, const ath_tile_source *src, int64_t *calls,
                              int64_t *per_call, ath_error *err) {
    const int64_t h = e->model->receptive_radius, S = BT + 2 * h;
    const int64_t per_item = e->channels * S * S;
    const int local = ath_model_accepts_tiles(e->model);
    int nthreads = 1;
    int64_t tb;
    size_t b0, i, slots;
    ath_status st;
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
    if (nthreads < 1) nthreads = 1;
    if ((size_t)nthreads > e->nscratch) nthreads = (int)e->nscratch; /* bg_scratch rows */
    /* A small step runs on the calling thread: waking a sleeping worker (the package's
     * passive wait policy) costs ~40 us on an idle virtual machine, more than it saves
     * below this many cells of E (ZeroModel, 2 threads: 1e3 cells 52 us serial, 63 us
     * parallel; even at ~4e3). */
#endif
    if (local && n < LOCAL_PARALLEL_MIN_CELLS) nthreads = 1;
    tb = (local ? LOCAL_BATCH_FLOATS : ATH_ENGINE_TILE_BATCH_FLOATS) / per_item;
    if (tb < 1) tb = 1;
    if ((size_t)tb > nb) tb = (int64_t)(nb > 0 ? nb : 1);
    if (local && nthreads > 1) {
        /* a small universe fits one batch, which one thread would run alone: cut it so that
         * every thread gets a few (a built-in model's numbers do not depend on the batches) */
        const int64_t fair = ((int64_t)nb + LOCAL_BATCHES_PER_THREAD * nthreads - 1) /
                             (LOCAL_BATCHES_PER_THREAD * nthreads);
        if (fair < tb) tb = fair > 0 ? fair : 1;
    }
    slots = local ? (size_t)nthreads : 1;
    if (slots * (size_t)(tb * per_item) > e->tbuf_floats) {
        const size_t need = slots * (size_t)(tb * per_item);
        ath_eng_batches_release(e, 0, 1);
        e->tin_buf = (float *)ath_eng_salloc(need * sizeof(float));
        e->tout_buf = (float *)ath_eng_salloc(need * sizeof(float));
        e->tbuf_floats = need;
        if (e->tin_buf == NULL || e->tout_buf == NULL) {
            ath_eng_batches_release(e, 0, 1);
            return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (tile batch)");
        }
    }
    if (nb > 0) {
        int sorted = 1;
        st = ath_eng_grow((void **)&e->border, &e->border_cap, nb, sizeof(struct block_order), err);
        if (st != ATH_OK) return st;
        for (i = 0; i < nb; i++) {
            const tile_box bx = src->box(e, i, h);
            e->border[i].blk = i;
            e->border[i].key = (bx.w == S && bx.h == S) ? -1 : bx.h * (S + 1) + bx.w;
            if (i > 0 && e->border[i].key < e->border[i - 1].key) sorted = 0;
        }
        if (!sorted) qsort(e->border, nb, sizeof(struct block_order), block_order_cmp);
    }
    *per_call = tb;
    if (local) {
        /* the batches (at most one per block) */
        size_t nbat = 0, *starts = (size_t *)ath_eng_salloc((nb + 1) * sizeof *starts);
        if (starts == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (tile batches)");
        for (b0 = 0; b0 < nb; b0 += batch_length(e, b0, nb, tb)) starts[nbat++] = b0;
        starts[nbat] = nb;
        st = step_tiles_local(e, src, starts, nbat, tb, nthreads, err);
        ath_eng_sfree(starts);
        if (st == ATH_OK) *calls += (int64_t)nbat;
        return st;
    }
    for (b0 = 0; b0 < nb;) {
        const tile_box bx0 = src->box(e, e->border[b0].blk, h);
        const int64_t item = e->channels * bx0.w * bx0.h;
        int64_t cnt = 1, shape[4], b;
        ath_out_layout layout;
        int bad = 0;
        cnt = (int64_t)batch_length(e, b0, nb, tb);
#ifdef _OPENMP
#pragma omp parallel if (cnt >= 32)
#endif
        {
#ifdef _OPENMP
            ath_cf32 *scratch = e->bg_scratch + (size_t)omp_get_thread_num() * (size_t)e->cfg.d_state;
#else
            ath_cf32 *scratch = e->bg_scratch;
#endif
            int64_t bi;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (bi = 0; bi < cnt; bi++) {
                const size_t blk = e->border[b0 + (size_t)bi].blk;
                src->gather(e, blk, e->tin_buf + bi * item, src->box(e, blk, h), scratch);
            }
        }
        shape[0] = cnt;
        shape[1] = e->channels;
        shape[2] = bx0.h;
        shape[3] = bx0.w;
        st = ath_model_forward(e->model, e->tin_buf, shape, e->tout_buf, 0, &layout, err);
        if (st != ATH_OK) return st;
        (*calls)++;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) reduction(| : bad) if (cnt >= 32)
#endif
        for (b = 0; b < cnt; b++) {
            const size_t blk = e->border[b0 + (size_t)b].blk;
            bad |= src->update(e, blk, e->tin_buf + b * item, e->tout_buf + b * item, src->box(e, blk, h));
        }
        if (bad)
            return ath_model_nonfinite_error(e->model, err);
        b0 += (size_t)cnt;
    }
    return ATH_OK;
}

