/* Sparse Engine: matter I/O (add, read, view, visit, activate, query). */
#include "engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------------ matter I/O */

ath_status ath_engine_add_particles(ath_engine *e, size_t n, const ath_coord *coords,
                                    const ath_cf32 *states, ath_error *err) {
    const int64_t d = e != NULL ? e->cfg.d_state : 0;
    size_t i;
    int64_t k;
    if (e == NULL) return ath_error_set(err, ATH_ERR_INVALID, "engine: NULL");
    if (n == 0) return ATH_OK;
    if (coords == NULL || states == NULL)
        return ath_error_set(err, ATH_ERR_INVALID, "add_particles: NULL array");
    for (i = 0; i < n; i++) {
        const ath_coord c = coords[i];
        if (!ath_coord_in_limits(c))
            return ath_error_set(err, ATH_ERR_RANGE,
                                 "add_particles: coordinate %zu out of range (|c| <= 2**60)", i);
        if (!ath_engine_in_window(e, c))
            return ath_error_set(err, ATH_ERR_INVALID,
                                 "add_particles: coordinate (%lld, %lld, %lld) is outside the "
                                 "window [0, %lld)^2 of the bounded extent",
                                 (long long)c.x, (long long)c.y, (long long)c.z,
                                 (long long)e->cfg.grid_size);
        for (k = 0; k < d; k++) {
            const ath_cf32 v = states[i * (size_t)d + (size_t)k];
            if (!isfinite(v.re) || !isfinite(v.im))
                return ath_error_set(err, ATH_ERR_NONFINITE,
                                     "add_particles: state %zu has a non-finite value", i);
        }
    }
    {
        const ath_status st = ath_blocks_set_many(&e->matter, n, coords, states, err);
        if (st == ATH_OK) ath_eng_matter_changed(e);
        return st;
    }
}

ath_status ath_engine_get_states(const ath_engine *e, size_t n, const ath_coord *coords,
                                 ath_cf32 *out, ath_error *err) {
    ptrdiff_t i, sn = (ptrdiff_t)n;
    if (e == NULL) return ath_error_set(err, ATH_ERR_INVALID, "engine: NULL");
    if (n == 0) return ATH_OK;
    if (coords == NULL || out == NULL) return ath_error_set(err, ATH_ERR_INVALID, "get_states: NULL array");
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (i = 0; i < sn; i++) ath_eng_field_at(e, coords[i], out + i * e->cfg.d_state);
    return ATH_OK;
}

/* Background of rows [r0, r1) of the region (out already offset to the region's origin):
 * zeros outside a bounded window, the background inside.  The vacuum goes
 * through ath_vacuum_region per in-window row run (the same pure function
 * as ath_eng_background(), so identical numbers).  out_zeroed: out is known to be
 * zero-filled already (e.g. fresh calloc'd pages), zero parts are skipped. */
static void fill_background_rows(const ath_engine *e, int64_t x0, int64_t y0, int64_t w, int64_t r0,
                                 int64_t r1, int64_t z, int out_zeroed, ath_cf32 *out) {
    const int64_t d = e->cfg.d_state;
    const size_t rowb = (size_t)w * (size_t)d * sizeof(ath_cf32);
    int64_t row, wx0 = 0, wx1 = w; /* in-window columns (region-relative) */
    if (e->cfg.extent != ATH_EXTENT_UNBOUNDED) {
        const int64_t g = e->cfg.grid_size;
        wx0 = x0 < 0 ? (-x0 < w ? -x0 : w) : 0;
        wx1 = g - x0 < w ? (g - x0 > wx0 ? g - x0 : wx0) : w;
    }
    for (row = r0; row < r1; row++) {
        ath_cf32 *dst = out + (size_t)row * (size_t)w * (size_t)d;
        const int64_t y = y0 + row;
        const int in_rows = e->cfg.extent == ATH_EXTENT_UNBOUNDED || (y >= 0 && y < e->cfg.grid_size);
        if (e->cfg.background == ATH_BACKGROUND_ZERO || !in_rows || wx1 <= wx0) {
            if (!out_zeroed) memset(dst, 0, rowb);
            continue;
        }
        if (!out_zeroed) {
            memset(dst, 0, (size_t)wx0 * (size_t)d * sizeof(ath_cf32));
            memset(dst + wx1 * d, 0, (size_t)(w - wx1) * (size_t)d * sizeof(ath_cf32));
        }
        {
            int64_t x;
            for (x = wx0; x < wx1; x++)
                ath_vacuum_cell(&e->vac, ath_coord_make(x0 + x, y, z), e->step, dst + x * d);
        }
    }
}

ath_status ath_engine_to_dense(const ath_engine *e, int64_t x0, int64_t y0, int64_t x1, int64_t y1,
                               int64_t z, ath_cf32 *out, ath_error *err) {
    return ath_engine_to_dense_ex(e, x0, y0, x1, y1, z, out, 0, err);
}

ath_status ath_engine_to_dense_ex(const ath_engine *e, int64_t x0, int64_t y0, int64_t x1, int64_t y1,
                                  int64_t z, ath_cf32 *out, int out_zeroed, ath_error *err) {
    const int64_t d = e != NULL ? e->cfg.d_state : 0;
    int64_t w, h, row;
    size_t nm;
    if (e == NULL) return ath_error_set(err, ATH_ERR_INVALID, "engine: NULL");
    if (x1 < x0 || y1 < y0)
        return ath_error_set(err, ATH_ERR_INVALID, "to_dense: need x0 <= x1 and y0 <= y1");
    /* half-open: x1 = y1 = 2**60 + 1 reaches the last addressable cell */
    if (!ath_coord_in_limits(ath_coord_make(x0, y0, z)) || x1 > ATH_COORD_LIMIT + 1 || y1 > ATH_COORD_LIMIT + 1 ||
        x1 < -ATH_COORD_LIMIT || y1 < -ATH_COORD_LIMIT)
        return ath_error_set(err, ATH_ERR_RANGE, "to_dense: region out of range (|c| <= 2**60)");
    w = x1 - x0;
    h = y1 - y0;
    if (w == 0 || h == 0) return ATH_OK;
    if (out == NULL) return ath_error_set(err, ATH_ERR_INVALID, "to_dense: NULL output");
    nm = e->matter.ncells;
    if ((double)w * (double)h <= 4.0 * (double)nm) {
        /* dense matter: one lookup per cell */
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
        for (row = 0; row < h; row++) {
            int64_t x;
            for (x = 0; x < w; x++)
                ath_eng_field_at(e, ath_coord_make(x0 + x, y0 + row, z), out + (row * w + x) * d);
        }
    } else {
        /* sparse matter: background over the region (row blocks in parallel;
         * a zero background is a memset, skipped when out is already zero),
         * then scatter the matter (no per-cell lookups) */
        const ath_blocks *mb = &e->matter;
        const int cheap = e->cfg.background == ATH_BACKGROUND_ZERO;
        size_t leaf;
        if (!(cheap && out_zeroed)) {
            const int64_t rows_per = cheap ? (h + 7) / 8 : 4;
            const int64_t nblk = (h + rows_per - 1) / rows_per;
            int64_t b;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((double)w * (double)h * (double)d >= (cheap ? 262144.0 : 2048.0))
#endif
            for (b = 0; b < nblk; b++) {
                const int64_t r0 = b * rows_per, r1 = r0 + rows_per < h ? r0 + rows_per : h;
                fill_background_rows(e, x0, y0, w, r0, r1, z, out_zeroed, out);
            }
        }
        /* leaf by leaf: a leaf outside the region is skipped whole */
        for (leaf = 0; leaf < mb->nleaves; leaf++) {
            const ath_coord k = mb->key[leaf];
            int l;
            if (k.z != z || k.x * ATH_LEAF + ATH_LEAF <= x0 || k.x * ATH_LEAF >= x1 || k.y * ATH_LEAF + ATH_LEAF <= y0 ||
                k.y * ATH_LEAF >= y1)
                continue;
            for (l = 0; l < ATH_LEAF_CELLS; l++) {
                const uint32_t j = mb->slot[leaf * ATH_LEAF_CELLS + (size_t)l];
                const ath_coord c = ath_blocks_leaf_cell(mb, leaf, l);
                if (j == ATH_LEAF_EMPTY) continue;
                if (c.x >= x0 && c.x < x1 && c.y >= y0 && c.y < y1)
                    memcpy(out + ((c.y - y0) * w + (c.x - x0)) * d, mb->states + (size_t)j * (size_t)d,
                           (size_t)d * sizeof(ath_cf32));
            }
        }
    }
    return ATH_OK;
}

/* The cells of one axis that activate_neighborhood touches: n values, the
 * t-th being first + t (wrapped into [0, g) when periodic). */
typedef struct axis_span {
    int64_t first, n, g; /* g > 0: periodic wrap */
} axis_span;

static inline int64_t span_at(axis_span s, int64_t t) {
    const int64_t v = s.first + t;
    return s.g > 0 ? ath_eng_wrap(v, s.g) : v;
}

/* The part of [c - r, c + r] that the extent and the coordinate limit leave:
 * clipped to the window ('zero'), at most g distinct values ('periodic', in
 * the order the unclipped loop would first meet them), clipped to
 * +-ATH_COORD_LIMIT (unbounded).  r <= 2**61 and |c| <= 2**60, so no overflow. */
static axis_span neighbourhood_span(const ath_engine *e, int64_t c, int64_t r) {
    const int64_t g = e->cfg.grid_size;
    int64_t lo = c - r, hi = c + r;
    axis_span s = {0, 0, 0};
    switch (e->cfg.extent) {
    case ATH_EXTENT_ZERO:
        if (lo < 0) lo = 0;
        if (hi > g - 1) hi = g - 1;
        break;
    case ATH_EXTENT_PERIODIC:
        s.first = lo;
        s.n = 2 * r + 1 < g ? 2 * r + 1 : g;
        s.g = g;
        return s;
    case ATH_EXTENT_UNBOUNDED:
        if (lo < -ATH_COORD_LIMIT) lo = -ATH_COORD_LIMIT;
        if (hi > ATH_COORD_LIMIT) hi = ATH_COORD_LIMIT;
        break;
    }
    s.first = lo;
    s.n = hi >= lo ? hi - lo + 1 : 0;
    return s;
}

/* Cells handed to the map per insertion (a fixed buffer, whatever the radius). */
#define ACTIVATE_CHUNK 4096

ath_status ath_engine_activate_neighborhood(ath_engine *e, ath_coord coord, int64_t radius,
                                            ath_error *err) {
    const int64_t d = e != NULL ? e->cfg.d_state : 0;
    axis_span sx, sy;
    int64_t ty, tx;
    size_t absent = 0, n = 0;
    ath_coord *cs;
    ath_cf32 *vs;
    ath_status st = ATH_OK;

    if (e == NULL) return ath_error_set(err, ATH_ERR_INVALID, "engine: NULL");
    if (radius < 0)
        return ath_error_set(err, ATH_ERR_INVALID, "activate_neighborhood: radius must be >= 0, got %lld",
                             (long long)radius);
    if (!ath_coord_in_limits(coord))
        return ath_error_set(err, ATH_ERR_RANGE, "activate_neighborhood: coordinate out of range");
    if (e->cfg.extent == ATH_EXTENT_UNBOUNDED && radius > ((int64_t)1 << 14))
        return ath_error_set(err, ATH_ERR_INVALID,
                             "activate_neighborhood: radius %lld is too large for an unbounded universe "
                             "(at most 2**14)",
                             (long long)radius);
    if (radius > ((int64_t)1 << 61)) radius = (int64_t)1 << 61; /* covers any window */
    sx = neighbourhood_span(e, coord.x, radius);
    sy = neighbourhood_span(e, coord.y, radius);
    if (sx.n == 0 || sy.n == 0) return ATH_OK;
    if ((double)sx.n * (double)sy.n > (double)ATH_CELLMAP_MAX_CELLS + (double)e->matter.ncells)
        return ath_error_set(err, ATH_ERR_INVALID,
                             "activate_neighborhood: the %lld x %lld cells around the coordinate exceed the "
                             "map's limit of %zu cells",
                             (long long)sx.n, (long long)sy.n, (size_t)ATH_CELLMAP_MAX_CELLS);
    /* time and memory bounded by the cells touched: count the absent ones first */
    {
        ath_blocks_accessor a;
        ath_blocks_accessor_init(&a, &e->matter);
        for (ty = 0; ty < sy.n; ty++)
            for (tx = 0; tx < sx.n; tx++)
                absent +=
                    ath_blocks_accessor_find(&a, ath_coord_make(span_at(sx, tx), span_at(sy, ty), coord.z)) < 0;
    }
    if (absent == 0) return ATH_OK;
    if (absent > ATH_CELLMAP_MAX_CELLS - e->matter.ncells)
        return ath_error_set(err, ATH_ERR_INVALID,
                             "activate_neighborhood: %zu new cells exceed the map's limit of %zu cells", absent,
                             (size_t)ATH_CELLMAP_MAX_CELLS);
    cs = (ath_coord *)ath_malloc(ACTIVATE_CHUNK * sizeof *cs);
    vs = (ath_cf32 *)ath_malloc(ACTIVATE_CHUNK * (size_t)d * sizeof *vs);
    if (cs == NULL || vs == NULL) {
        ath_free(cs);
        ath_free(vs);
        return ath_error_set(err, ATH_ERR_NOMEM, "activate_neighborhood: out of memory");
    }
    /* all-or-nothing: only new cells are inserted, so a failure undoes them by truncation */
    {
        const size_t nc0 = e->matter.ncells, nl0 = e->matter.nleaves;
        for (ty = 0; st == ATH_OK && ty < sy.n; ty++) {
            for (tx = 0; tx < sx.n; tx++) {
                const ath_coord c = ath_coord_make(span_at(sx, tx), span_at(sy, ty), coord.z);
                if (ath_blocks_find(&e->matter, c) >= 0) continue;
                cs[n] = c;
                ath_eng_background(e, c, vs + n * (size_t)d);
                if (++n == ACTIVATE_CHUNK) {
                    st = ath_blocks_set_many(&e->matter, n, cs, vs, err);
                    n = 0;
                    if (st != ATH_OK) break;
                }
            }
        }
        if (st == ATH_OK && n > 0) st = ath_blocks_set_many(&e->matter, n, cs, vs, err);
        if (st != ATH_OK) ath_blocks_truncate(&e->matter, nc0, nl0);
        ath_eng_matter_changed(e);
    }
    ath_free(cs);
    ath_free(vs);
    return st;
}

ath_status ath_engine_query_radius(const ath_engine *e, ath_coord center, double radius,
                                   ath_coord **out, size_t *n_out, ath_error *err) {
    const size_t nm = e != NULL ? e->matter.ncells : 0;
    const ath_blocks *mb;
    ath_coord *res;
    size_t leaf, n = 0;
    double r2;
    if (e == NULL || out == NULL || n_out == NULL)
        return ath_error_set(err, ATH_ERR_INVALID, "query_radius: NULL argument");
    if (!isfinite(radius) || radius < 0.0)
        return ath_error_set(err, ATH_ERR_INVALID, "query_radius: radius must be finite and >= 0, got %g",
                             radius);
    mb = &e->matter;
    res = (ath_coord *)ath_malloc((nm > 0 ? nm : 1) * sizeof *res);
    if (res == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "query_radius: out of memory");
    r2 = radius * radius;
    /* any cell order: the result is sorted */
    for (leaf = 0; leaf < mb->nleaves; leaf++) {
        int l;
        for (l = 0; l < ATH_LEAF_CELLS; l++) {
            ath_coord c;
            double dx, dy, dz;
            if (!((mb->mask[leaf] >> l) & 1u)) continue;
            c = ath_blocks_leaf_cell(mb, leaf, l);
            dx = (double)(c.x - center.x);
            dy = (double)(c.y - center.y);
            dz = (double)(c.z - center.z);
            if (dx * dx + dy * dy + dz * dz <= r2) res[n++] = c;
        }
    }
    ath_coord_sort_morton(res, n);
    *out = res;
    *n_out = n;
    return ATH_OK;
}

/* Cells handed to the visitor per call. */
#define VISIT_BATCH 4096

ath_status ath_engine_visit_matter(const ath_engine *e, const ath_roi *roi, ath_matter_visitor visit, void *ctx,
                                   ath_error *err) {
    const size_t nm = e != NULL ? e->matter.ncells : 0;
    const size_t d = e != NULL ? (size_t)e->cfg.d_state : 0;
    const ath_cf32 *ms;
    ath_coord *bc;
    ath_cf32 *bs;
    size_t i, n = 0;
    ath_status st = ATH_OK;
    if (e == NULL || visit == NULL) return ath_error_set(err, ATH_ERR_INVALID, "visit_matter: NULL argument");
    ms = e->matter.states;
    if (roi == NULL) {
        /* the values are one dense array in storage order: handed over in place; the
         * coordinates are recovered from the leaves into one batch buffer */
        if (nm == 0) return ATH_OK;
        bc = (ath_coord *)ath_malloc(VISIT_BATCH * sizeof *bc);
        if (bc == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "visit_matter: out of memory");
        for (i = 0; i < nm && st == ATH_OK; i += VISIT_BATCH) {
            const size_t k = nm - i < VISIT_BATCH ? nm - i : VISIT_BATCH;
            size_t j;
            for (j = 0; j < k; j++) bc[j] = ath_blocks_coord(&e->matter, i + j);
            st = visit(ctx, bc, ms + i * d, k, err);
        }
        ath_free(bc);
        return st;
    }
    if (roi->x1 < roi->x0 || roi->y1 < roi->y0)
        return ath_error_set(err, ATH_ERR_INVALID, "visit_matter: roi needs x0 <= x1 and y0 <= y1");
    /* half-open: an end may lie one past the coordinate limit */
    if (!ath_coord_in_limits(ath_coord_make(roi->x0, roi->y0, roi->z)) || roi->x1 > ATH_COORD_LIMIT + 1 ||
        roi->y1 > ATH_COORD_LIMIT + 1)
        return ath_error_set(err, ATH_ERR_RANGE, "visit_matter: region out of range (|c| <= 2**60)");
    if (roi->x0 == roi->x1 || roi->y0 == roi->y1 || nm == 0) return ATH_OK;
    bc = (ath_coord *)ath_malloc(VISIT_BATCH * sizeof *bc);
    bs = (ath_cf32 *)ath_malloc(VISIT_BATCH * d * sizeof *bs);
    if (bc == NULL || bs == NULL) {
        ath_free(bc);
        ath_free(bs);
        return ath_error_set(err, ATH_ERR_NOMEM, "visit_matter: out of memory");
    }
    if ((double)(roi->x1 - roi->x0) * (double)(roi->y1 - roi->y0) <= (double)nm) {
        /* A region smaller than the matter: one lookup per region cell, so the
         * cost grows with the region, not with the universe. */
        int64_t x, y;
        ath_blocks_accessor a;
        ath_blocks_accessor_init(&a, &e->matter);
        for (y = roi->y0; y < roi->y1 && st == ATH_OK; y++) {
            for (x = roi->x0; x < roi->x1 && st == ATH_OK; x++) {
                const ath_coord c = ath_coord_make(x, y, roi->z);
                const int64_t k = ath_blocks_accessor_find(&a, c);
                if (k < 0) continue;
                bc[n] = c;
                memcpy(bs + n * d, ms + (size_t)k * d, d * sizeof(ath_cf32));
                if (++n == VISIT_BATCH) {
                    st = visit(ctx, bc, bs, n, err);
                    n = 0;
                }
            }
        }
    } else {
        /* less matter than region cells: filter the matter */
        for (i = 0; i < nm && st == ATH_OK; i++) {
            const ath_coord k = e->matter.key[e->matter.back[i]];
            ath_coord c;
            if (k.z != roi->z || k.x * ATH_LEAF + ATH_LEAF <= roi->x0 || k.x * ATH_LEAF >= roi->x1 ||
                k.y * ATH_LEAF + ATH_LEAF <= roi->y0 || k.y * ATH_LEAF >= roi->y1)
                continue;
            c = ath_blocks_coord(&e->matter, i);
            if (c.z != roi->z || c.x < roi->x0 || c.x >= roi->x1 || c.y < roi->y0 || c.y >= roi->y1) continue;
            bc[n] = c;
            memcpy(bs + n * d, ms + i * d, d * sizeof(ath_cf32));
            if (++n == VISIT_BATCH) {
                st = visit(ctx, bc, bs, n, err);
                n = 0;
            }
        }
    }
    if (st == ATH_OK && n > 0) st = visit(ctx, bc, bs, n, err);
    ath_free(bc);
    ath_free(bs);
    return st;
}
