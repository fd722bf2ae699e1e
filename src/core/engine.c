/* The sparse Engine (DESIGN §3.3, §3.4).
 *
 * One step:
 *   1. The evaluated set E = matter cells + every cell within Chebyshev
 *      radius r = (patch-1)/2 in-plane (clipped to / wrapped into a bounded
 *      window), deduplicated in a tile index cached in the engine (4 x 4
 *      tiles found through a small hash table; see "tile index" below).
 *   2. E is sorted in Morton order (radix sort on ath_coord_morton, ties in
 *      ath_coord_compare_morton order), so everything after is deterministic;
 *      the tile index then maps a coordinate to its position in E.
 *   3. cur[e] = the field at the current step for every e in E (matter, else
 *      background), computed once.
 *   4. In fixed chunks of `batch` cells: gather the p x p patches (a
 *      neighbour inside E reads cur[], one outside E is never matter and
 *      reads the background), call the model once (stepping thread, outside
 *      any parallel region), apply the rule into new[e].
 *   5. Cells with norm > threshold go, in Morton order, into the second map,
 *      which is swapped in only when everything succeeded.
 * Every parallel loop writes disjoint slots and every value is computed by
 * a fixed sequence of operations, so results are bit-identical for any
 * thread count.  No allocation happens per cell: the scratch buffers are
 * cached in the engine and only grow. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* mmap / madvise */
#endif
#include "atheria/alloc.h"
#include "atheria/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#define ATH_ENGINE_MMAP 1
#endif

/* Step scratch of O(cells) size lives only for the duration of one step (it
 * is freed at the end, so a universe holds only its cell map between
 * steps).  Big blocks come straight from mmap (returned to the system on
 * free, transparent huge pages where available), small ones from malloc. */
#define BIG_SCRATCH ((size_t)1 << 20)

static void *salloc(size_t bytes) {
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
static void sfree(void *p, size_t bytes) {
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

typedef struct tslot {
    int64_t x, y, z; /* tile coordinates; x == EMPTY_X: free slot */
    int64_t tile;    /* tile number */
} tslot;

typedef struct skey {
    uint64_t key;
    uint64_t idx;
} skey;

#define EMPTY_X INT64_MIN
#define TILE 4 /* in-plane tile side (cells); a tile's 16 int32 entries are one cache line */
/* Half-width (tiles) of the neighbour window: ceil(max radius / TILE). */
#define TILE_WINDOW_MAX ((ATH_ENGINE_MAX_PATCH / 2 + TILE - 1) / TILE)

/* Window of tiles around a centre tile (half-width e->twin), resolved lazily. */
typedef struct tile_window {
    int64_t cx, cy, cz; /* centre tile */
    int valid;
    int64_t t[(2 * TILE_WINDOW_MAX + 1) * (2 * TILE_WINDOW_MAX + 1)]; /* TILE_UNKNOWN, -1 absent, or tile */
} tile_window;

/* A tile block in evaluation order (step_tiles). */
struct block_order {
    int64_t key; /* -1: unclipped (S x S); else h * (S + 1) + w of the clipped region */
    size_t blk;
};

struct ath_engine {
    ath_engine_config cfg;
    ath_vacuum vac;
    ath_cellmap *matter;
    ath_cellmap *next;
    ath_model *model;
    int64_t step;
    int64_t radius;   /* (patch - 1) / 2 */
    int64_t twin;     /* tile window half-width: ceil(radius / TILE) */
    int64_t batch;    /* cells per model call */
    int64_t channels; /* 2 * d_state */
    ath_engine_stats stats;

    /* step scratch (cached, grows only) */
    tslot *ttable; /* tile hash table */
    size_t tcap;   /* power of two */
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
    ath_cf32 *bg_scratch;            /* per thread: d values */
    struct tile_window *twindows;    /* per thread */
    struct tile_window *window;      /* for the sequential build */
    size_t nscratch;                 /* threads of room in bg_scratch / twindows */

    /* tile evaluation (models that accept any H x W, known radius <= patch radius) */
    int accepts_tiles;               /* set with the model */
    tslot *btable;                   /* (TX, TY, z) -> block number, this step */
    size_t bcap;
    ath_coord *blocks;               /* block coordinates (TX, TY, z), in first-seen Morton order */
    size_t blocks_cap;
    float *tin_buf, *tout_buf;       /* tile batches */
    size_t tbuf_floats;
    struct block_order *border;      /* blocks in evaluation order (clipped ones grouped by shape) */
    size_t border_cap;
};

static void step_release(ath_engine *e);

/* ------------------------------------------------------------ step rule */

int ath_step_rule_row(const ath_cf32 *psi, const float *delta_re, const float *delta_im,
                      ptrdiff_t stride, int64_t w, int64_t d_state, double gamma, int unitary,
                      ath_cf32 *out, double *norm) {
    int64_t x, k;
    int bad = 0;
    for (x = 0; x < w; x++) norm[x] = 0.0;
    for (k = 0; k < d_state; k++) {
        const float *r = delta_re + k * stride, *i = delta_im + k * stride;
        for (x = 0; x < w; x++) {
            const double pr = psi[x * d_state + k].re, pi = psi[x * d_state + k].im;
            double dr = r[x], di = i[x], nr, ni;
            bad |= !isfinite(r[x]) | !isfinite(i[x]);
            if (unitary) {
                const double tr = dr * pr - di * pi;
                di = dr * pi + di * pr;
                dr = tr;
            }
            dr -= gamma * pr;
            di -= gamma * pi;
            nr = pr + dr;
            ni = pi + di;
            norm[x] += nr * nr + ni * ni;
        }
    }
    for (x = 0; x < w; x++) norm[x] = sqrt(norm[x]);
    for (k = 0; k < d_state; k++) {
        const float *r = delta_re + k * stride, *i = delta_im + k * stride;
        for (x = 0; x < w; x++) {
            const double pr = psi[x * d_state + k].re, pi = psi[x * d_state + k].im;
            const double denom = norm[x] + 1e-9;
            double dr = r[x], di = i[x];
            if (unitary) {
                const double tr = dr * pr - di * pi;
                di = dr * pi + di * pr;
                dr = tr;
            }
            dr -= gamma * pr;
            di -= gamma * pi;
            out[x * d_state + k].re = (float)((pr + dr) / denom);
            out[x * d_state + k].im = (float)((pi + di) / denom);
        }
    }
    return bad;
}

double ath_step_rule(const ath_cf32 *psi, const float *delta_re, const float *delta_im,
                     ptrdiff_t stride, int64_t d_state, double gamma, int unitary, ath_cf32 *out) {
    double n;
    (void)ath_step_rule_row(psi, delta_re, delta_im, stride, 1, d_state, gamma, unitary, out, &n);
    return n;
}

/* --------------------------------------------------------------- config */

void ath_engine_config_default(ath_engine_config *cfg, int64_t d_state) {
    if (cfg == NULL) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->d_state = d_state;
    cfg->grid_size = 64;
    cfg->background = ATH_BACKGROUND_VACUUM;
    cfg->extent = ATH_EXTENT_UNBOUNDED;
    cfg->threshold = 0.01;
    cfg->gamma_decay = 0.0;
    cfg->unitary = 0;
    cfg->seed = 0;
    cfg->vacuum_strength = 0.1;
    cfg->patch = 3;
    cfg->max_batch = 0;
}

static ath_status validate_config(const ath_engine_config *c, ath_error *err) {
    if (c->d_state < 1 || c->d_state > ATH_MAX_D_STATE)
        return ath_error_set(err, ATH_ERR_INVALID, "d_state must be in [1, %d], got %lld",
                             ATH_MAX_D_STATE, (long long)c->d_state);
    if (c->grid_size < 1 || c->grid_size > ATH_MAX_GRID_SIZE)
        return ath_error_set(err, ATH_ERR_INVALID, "grid_size must be in [1, %lld], got %lld",
                             (long long)ATH_MAX_GRID_SIZE, (long long)c->grid_size);
    if (c->background != ATH_BACKGROUND_VACUUM && c->background != ATH_BACKGROUND_ZERO)
        return ath_error_set(err, ATH_ERR_INVALID, "background: unknown value %d", (int)c->background);
    if (c->extent != ATH_EXTENT_UNBOUNDED && c->extent != ATH_EXTENT_ZERO &&
        c->extent != ATH_EXTENT_PERIODIC)
        return ath_error_set(err, ATH_ERR_INVALID, "extent: unknown value %d", (int)c->extent);
    if (!isfinite(c->threshold) || c->threshold < 0.0)
        return ath_error_set(err, ATH_ERR_INVALID, "threshold must be finite and >= 0, got %g",
                             c->threshold);
    if (!isfinite(c->gamma_decay) || c->gamma_decay < 0.0)
        return ath_error_set(err, ATH_ERR_INVALID, "gamma_decay must be finite and >= 0, got %g",
                             c->gamma_decay);
    if (!isfinite(c->vacuum_strength) || c->vacuum_strength < 0.0)
        return ath_error_set(err, ATH_ERR_INVALID,
                             "vacuum_strength must be finite and >= 0, got %g", c->vacuum_strength);
    if (c->patch < 1 || c->patch % 2 == 0 || c->patch > ATH_ENGINE_MAX_PATCH)
        return ath_error_set(err, ATH_ERR_INVALID, "patch must be odd and in [1, %d], got %lld",
                             ATH_ENGINE_MAX_PATCH, (long long)c->patch);
    if (c->max_batch < 0 || c->max_batch > ((int64_t)1 << 24))
        return ath_error_set(err, ATH_ERR_INVALID, "max_batch must be in [0, 2**24], got %lld",
                             (long long)c->max_batch);
    return ATH_OK;
}

ath_status ath_engine_create(const ath_engine_config *cfg, ath_engine **out, ath_error *err) {
    ath_engine *e;
    ath_status st;
    int64_t per_cell, b;

    if (cfg == NULL || out == NULL) return ath_error_set(err, ATH_ERR_INVALID, "engine: NULL argument");
    st = validate_config(cfg, err);
    if (st != ATH_OK) return st;
    e = (ath_engine *)ath_calloc(1, sizeof *e);
    if (e == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory");
    e->cfg = *cfg;
    st = ath_vacuum_init(&e->vac, cfg->d_state, cfg->seed, cfg->vacuum_strength, err);
    if (st != ATH_OK) {
        ath_free(e);
        return st;
    }
    st = ath_cellmap_create(cfg->d_state, &e->matter, err);
    if (st == ATH_OK) st = ath_cellmap_create(cfg->d_state, &e->next, err);
    if (st != ATH_OK) {
        ath_cellmap_destroy(e->matter);
        ath_free(e);
        return st;
    }
    e->radius = (cfg->patch - 1) / 2;
    e->twin = (e->radius + TILE - 1) / TILE;
    e->window = (struct tile_window *)ath_malloc(sizeof(struct tile_window));
    if (e->window == NULL) {
        ath_cellmap_destroy(e->matter);
        ath_cellmap_destroy(e->next);
        ath_free(e);
        return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory");
    }
    e->zeros = (ath_cf32 *)ath_calloc((size_t)cfg->d_state, sizeof(ath_cf32));
    if (e->zeros == NULL) {
        ath_cellmap_destroy(e->matter);
        ath_cellmap_destroy(e->next);
        ath_free(e->window);
        ath_free(e);
        return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory");
    }
    e->channels = 2 * cfg->d_state;
    per_cell = e->channels * cfg->patch * cfg->patch;
    b = cfg->max_batch > 0 ? cfg->max_batch : ATH_ENGINE_DEFAULT_BATCH;
    if (b > ATH_ENGINE_MAX_BATCH_FLOATS / per_cell) b = ATH_ENGINE_MAX_BATCH_FLOATS / per_cell;
    if (b < 1) b = 1;
    e->batch = b;
    e->stats.batch = b;
    *out = e;
    return ATH_OK;
}

void ath_engine_destroy(ath_engine *e) {
    if (e == NULL) return;
    ath_cellmap_destroy(e->matter);
    ath_cellmap_destroy(e->next);
    step_release(e);
    ath_free(e->twindows);
    ath_free(e->window);
    ath_free(e->zeros);
    ath_free(e->bg_scratch);
    ath_free(e->btable);
    ath_free(e->blocks);
    ath_free(e->border);
    ath_free(e);
}

const ath_engine_config *ath_engine_get_config(const ath_engine *e) { return e ? &e->cfg : NULL; }

ath_status ath_engine_set_model(ath_engine *e, ath_model *model, ath_error *err) {
    return ath_engine_set_model_ex(e, model, -1, err);
}

ath_status ath_engine_set_model_ex(ath_engine *e, ath_model *model, int accepts_tiles, ath_error *err) {
    if (e == NULL) return ath_error_set(err, ATH_ERR_INVALID, "engine: NULL");
    if (model != NULL) {
        if (model->ops == NULL || model->ops->forward == NULL)
            return ath_error_set(err, ATH_ERR_INVALID, "model: missing forward()");
        if (model->has_memory)
            return ath_error_set(err, ATH_ERR_INVALID,
                                 "memory models (ConvLSTM) cannot run on the sparse Engine: "
                                 "their memory is a whole-grid tensor; use DenseEngine");
        if (model->channels >= 0 && model->channels != e->channels)
            return ath_error_set(err, ATH_ERR_INVALID,
                                 "model expects %lld channels but the engine has 2*d_state = %lld",
                                 (long long)model->channels, (long long)e->channels);
    }
    e->model = model;
    e->accepts_tiles = model == NULL ? 0 : (accepts_tiles < 0 ? ath_model_accepts_tiles(model) : accepts_tiles != 0);
    return ATH_OK;
}

int ath_engine_uses_tiles(const ath_engine *e) {
    return e != NULL && e->model != NULL && e->accepts_tiles && e->model->receptive_radius >= 0 &&
           e->model->receptive_radius <= e->radius;
}

ath_model *ath_engine_get_model(const ath_engine *e) { return e ? e->model : NULL; }

size_t ath_engine_matter_count(const ath_engine *e) { return e ? ath_cellmap_size(e->matter) : 0; }
int64_t ath_engine_step_count(const ath_engine *e) { return e ? e->step : 0; }
const ath_cellmap *ath_engine_matter(const ath_engine *e) { return e ? e->matter : NULL; }

void ath_engine_clear(ath_engine *e) {
    if (e == NULL) return;
    ath_cellmap_clear(e->matter);
    ath_cellmap_clear(e->next);
    e->step = 0;
}

void ath_engine_get_stats(const ath_engine *e, ath_engine_stats *out) {
    if (e == NULL || out == NULL) return;
    *out = e->stats;
}

void ath_engine_get_memory(const ath_engine *e, ath_engine_memory *out) {
    size_t d, s = 0;
    if (e == NULL || out == NULL) return;
    d = (size_t)e->cfg.d_state;
    out->matter_bytes = ath_cellmap_memory_bytes(e->matter);
    s += ath_cellmap_memory_bytes(e->next);
    s += e->tcap * sizeof(tslot) + e->tcells_cap * TILE * TILE * sizeof(int32_t) +
         e->tcoord_cap * sizeof(ath_coord) + e->tmask_cap * sizeof(uint16_t);
    s += e->ecap * (sizeof(ath_coord) + sizeof(int64_t) + sizeof(uint8_t) +
                    d * sizeof(ath_cf32) * (e->cur != NULL ? 2 : 1));
    s += 2 * e->in_floats * sizeof(float);
    s += e->nscratch * (d * sizeof(ath_cf32) + sizeof(tile_window)) + sizeof(tile_window) + d * sizeof(ath_cf32);
    s += e->bcap * sizeof(tslot) + e->blocks_cap * sizeof(ath_coord) + 2 * e->tbuf_floats * sizeof(float) +
         e->border_cap * sizeof(struct block_order);
    out->scratch_bytes = s + sizeof *e;
}

unsigned ath_engine_exactness(const ath_engine *e, const ath_model *model, int zero_preserving) {
    unsigned flags = 0;
    if (e == NULL || model == NULL) return 0;
    if (e->cfg.background == ATH_BACKGROUND_ZERO && zero_preserving == 0)
        flags |= ATH_INEXACT_NOT_ZERO_PRESERVING;
    if (model->receptive_radius >= 0 && model->receptive_radius > e->radius)
        flags |= ATH_INEXACT_RECEPTIVE_RADIUS;
    /* on tiles, each tile's input is clipped to the window, so the model's own
     * per-layer zero padding falls on the window edge (exact); patches are not */
    if (e->cfg.extent == ATH_EXTENT_ZERO && model->receptive_radius > 1 &&
        !(e->model == model && ath_engine_uses_tiles(e)))
        flags |= ATH_INEXACT_WINDOW_EDGE;
    return flags;
}

/* ------------------------------------------------------------- geometry */

int ath_engine_in_window(const ath_engine *e, ath_coord c) {
    if (e->cfg.extent == ATH_EXTENT_UNBOUNDED) return 1;
    return c.x >= 0 && c.x < e->cfg.grid_size && c.y >= 0 && c.y < e->cfg.grid_size;
}

static int64_t wrap(int64_t v, int64_t g) {
    int64_t m = v % g;
    return m < 0 ? m + g : m;
}

/* Maps a neighbour coordinate through the extent: 1 and *c updated when it
 * reads the field, 0 when it is outside a zero window (reads 0). */
static int map_extent(const ath_engine *e, ath_coord *c) {
    const int64_t g = e->cfg.grid_size;
    switch (e->cfg.extent) {
    case ATH_EXTENT_UNBOUNDED: return 1;
    case ATH_EXTENT_ZERO: return c->x >= 0 && c->x < g && c->y >= 0 && c->y < g;
    case ATH_EXTENT_PERIODIC:
        if (c->x < 0 || c->x >= g) c->x = wrap(c->x, g);
        if (c->y < 0 || c->y >= g) c->y = wrap(c->y, g);
        return 1;
    }
    return 1;
}

/* Background value of an absent in-window cell at the current step. */
static void background(const ath_engine *e, ath_coord c, ath_cf32 *out) {
    if (e->cfg.background == ATH_BACKGROUND_VACUUM)
        ath_vacuum_cell(&e->vac, c, e->step, out);
    else
        memset(out, 0, (size_t)e->cfg.d_state * sizeof(ath_cf32));
}

/* Field at the current step at an arbitrary coordinate (0 outside a bounded window). */
static void field_at(const ath_engine *e, ath_coord c, ath_cf32 *out) {
    const int64_t d = e->cfg.d_state;
    ptrdiff_t j;
    if (!ath_engine_in_window(e, c)) {
        memset(out, 0, (size_t)d * sizeof(ath_cf32));
        return;
    }
    j = ath_cellmap_find(e->matter, c);
    if (j >= 0)
        memcpy(out, ath_cellmap_states(e->matter) + (size_t)j * (size_t)d, (size_t)d * sizeof(ath_cf32));
    else
        background(e, c, out);
}

/* ------------------------------------------------------------ tile index
 *
 * E is indexed by 4 x 4 in-plane tiles: a small hash table maps a tile
 * (tx, ty, z) to a tile number, and each tile holds 16 int32 positions in E
 * (-1: not in E).  A tile is one cache line, cells of one tile are
 * consecutive in Morton order, and each pass keeps a window of the tiles
 * around the current one, so a neighbour read is an array access, not a
 * hash lookup. */

static ath_status grow(void **p, size_t *cap, size_t need, size_t elem, ath_error *err);

static inline int64_t tile_of(int64_t v) { return (v - (v & (TILE - 1))) / TILE; }
static inline int tile_local(ath_coord c) { return (int)((c.y & (TILE - 1)) * TILE + (c.x & (TILE - 1))); }

static inline uint64_t tile_hash(int64_t x, int64_t y, int64_t z) {
    uint64_t h = (uint64_t)x * 0x9E3779B97F4A7C15ull;
    h ^= (uint64_t)y * 0xC2B2AE3D27D4EB4Full;
    h ^= (uint64_t)z * 0x165667B19E3779F9ull;
    h ^= h >> 32;
    h *= 0xD6E8FEB86659FD93ull;
    h ^= h >> 29;
    return h;
}

/* Slot holding tile (x, y, z), or the free slot where it would go. */
static inline size_t tile_probe(const tslot *t, size_t mask, int64_t x, int64_t y, int64_t z) {
    size_t i = (size_t)tile_hash(x, y, z) & mask;
    for (;;) {
        const tslot *s = &t[i];
        if (s->x == EMPTY_X || (s->x == x && s->y == y && s->z == z)) return i;
        i = (i + 1) & mask;
    }
}

/* Tile number of (tx, ty, z), or -1 if absent.  Read-only (parallel-safe). */
static inline int64_t tile_find(const ath_engine *e, int64_t tx, int64_t ty, int64_t z) {
    const size_t i = tile_probe(e->ttable, e->tcap - 1, tx, ty, z);
    return e->ttable[i].x == EMPTY_X ? -1 : e->ttable[i].tile;
}

static ath_status tile_table_resize(ath_engine *e, size_t cap, ath_error *err) {
    tslot *t = (tslot *)salloc(cap * sizeof *t);
    size_t i;
    if (t == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (tile table)");
    for (i = 0; i < cap; i++) t[i].x = EMPTY_X;
    if (e->ttable != NULL)
        for (i = 0; i < e->tcap; i++) {
            const tslot *s = &e->ttable[i];
            if (s->x != EMPTY_X) t[tile_probe(t, cap - 1, s->x, s->y, s->z)] = *s;
        }
    sfree(e->ttable, e->tcap * sizeof(tslot));
    e->ttable = t;
    e->tcap = cap;
    return ATH_OK;
}

/* Grows a step-scratch array (salloc'd, cap entries of elem bytes) to hold need entries. */
static ath_status sgrow(void **p, size_t *cap, size_t need, size_t elem, ath_error *err) {
    void *q;
    size_t n;
    if (need <= *cap) return ATH_OK;
    n = *cap > 0 ? *cap : 1024;
    while (n < need) n *= 2;
    q = salloc(n * elem);
    if (q == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory");
    if (*p != NULL) memcpy(q, *p, *cap * elem);
    sfree(*p, *cap * elem);
    *p = q;
    *cap = n;
    return ATH_OK;
}

/* Tile number of (tx, ty, z), created (all cells -1) if absent; -1 on allocation failure. */
static int64_t tile_get(ath_engine *e, int64_t tx, int64_t ty, int64_t z, ath_error *err) {
    size_t s = tile_probe(e->ttable, e->tcap - 1, tx, ty, z);
    int64_t t;
    int k;
    if (e->ttable[s].x != EMPTY_X) return e->ttable[s].tile;
    if (2 * (e->ntiles + 1) > e->tcap) {
        if (tile_table_resize(e, 2 * e->tcap, err) != ATH_OK) return -1;
        s = tile_probe(e->ttable, e->tcap - 1, tx, ty, z);
    }
    if (e->ntiles + 1 > e->tcells_cap &&
        sgrow((void **)&e->tcells, &e->tcells_cap, e->ntiles + 1, TILE * TILE * sizeof(int32_t), err) != ATH_OK)
        return -1;
    if (e->ntiles + 1 > e->tcoord_cap &&
        sgrow((void **)&e->tcoord, &e->tcoord_cap, e->ntiles + 1, sizeof(ath_coord), err) != ATH_OK)
        return -1;
    if (e->ntiles + 1 > e->tmask_cap &&
        sgrow((void **)&e->tmask, &e->tmask_cap, e->ntiles + 1, sizeof(uint16_t), err) != ATH_OK)
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

#define TILE_UNKNOWN (-2)

static void window_center(const ath_engine *e, tile_window *w, int64_t tx, int64_t ty, int64_t z) {
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
static inline int64_t *window_entry(const ath_engine *e, tile_window *w, int64_t tx, int64_t ty) {
    const int64_t ox = tx - w->cx + e->twin, oy = ty - w->cy + e->twin, side = 2 * e->twin + 1;
    if (ox < 0 || ox >= side || oy < 0 || oy >= side) return NULL;
    return &w->t[oy * side + ox];
}

/* Position in E of c (already mapped through the extent), or -1.  Read-only. */
static inline int64_t e_find(const ath_engine *e, tile_window *w, ath_coord c) {
    const int64_t tx = tile_of(c.x), ty = tile_of(c.y);
    int64_t *slot = c.z == w->cz ? window_entry(e, w, tx, ty) : NULL;
    int64_t t;
    if (slot != NULL) {
        if (*slot == TILE_UNKNOWN) *slot = tile_find(e, tx, ty, c.z);
        t = *slot;
    } else {
        t = tile_find(e, tx, ty, c.z);
    }
    return t < 0 ? -1 : e->tcells[t * TILE * TILE + tile_local(c)];
}

static ath_status grow(void **p, size_t *cap, size_t need, size_t elem, ath_error *err) {
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
static void step_release(ath_engine *e) {
    const size_t d = (size_t)e->cfg.d_state;
    sfree(e->ttable, e->tcap * sizeof(tslot));
    e->ttable = NULL;
    e->tcap = 0;
    sfree(e->tcells, e->tcells_cap * TILE * TILE * sizeof(int32_t));
    e->tcells = NULL;
    e->tcells_cap = 0;
    sfree(e->tcoord, e->tcoord_cap * sizeof(ath_coord));
    e->tcoord = NULL;
    e->tcoord_cap = 0;
    sfree(e->tmask, e->tmask_cap * sizeof(uint16_t));
    e->tmask = NULL;
    e->tmask_cap = 0;
    sfree(e->ecoords, e->ecap * sizeof(ath_coord));
    sfree(e->esrc, e->ecap * sizeof(int64_t));
    sfree(e->keep, e->ecap * sizeof(uint8_t));
    sfree(e->newst, e->ecap * d * sizeof(ath_cf32));
    sfree(e->cur, e->ecap * d * sizeof(ath_cf32));
    e->ecoords = NULL;
    e->esrc = NULL;
    e->keep = NULL;
    e->newst = NULL;
    e->cur = NULL;
    e->ecap = 0;
    sfree(e->in_buf, e->in_floats * sizeof(float));
    sfree(e->out_buf, e->in_floats * sizeof(float));
    e->in_buf = NULL;
    e->out_buf = NULL;
    e->in_floats = 0;
    sfree(e->tin_buf, e->tbuf_floats * sizeof(float));
    sfree(e->tout_buf, e->tbuf_floats * sizeof(float));
    e->tin_buf = NULL;
    e->tout_buf = NULL;
    e->tbuf_floats = 0;
}

/* The per-E arrays for exactly n cells. */
static ath_status e_alloc(ath_engine *e, size_t n, ath_error *err) {
    const size_t d = (size_t)e->cfg.d_state, cap = n > 0 ? n : 1;
    e->ecap = cap;
    e->ecoords = (ath_coord *)salloc(cap * sizeof(ath_coord));
    e->esrc = (int64_t *)salloc(cap * sizeof(int64_t));
    e->keep = (uint8_t *)salloc(cap * sizeof(uint8_t));
    e->newst = (ath_cf32 *)salloc(cap * d * sizeof(ath_cf32));
    if (e->cfg.background == ATH_BACKGROUND_VACUUM) e->cur = (ath_cf32 *)salloc(cap * d * sizeof(ath_cf32));
    if (e->ecoords == NULL || e->esrc == NULL || e->keep == NULL || e->newst == NULL ||
        (e->cfg.background == ATH_BACKGROUND_VACUUM && e->cur == NULL))
        return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (%zu cells)", cap);
    return ATH_OK;
}

/* Step 1: E = matter dilated by r in-plane, through the extent, marked in
 * the tile index (tcells: -2 in E, >= 0 in E and matter cell i).  *n_out = |E|. */
static ath_status build_eval_set(ath_engine *e, size_t *n_out, ath_error *err) {
    const size_t nm = ath_cellmap_size(e->matter);
    const ath_coord *mc = ath_cellmap_coords(e->matter);
    const int64_t r = e->radius;
    size_t want = 256, n = 0, i;
    tile_window *w = e->window;
    ath_status st;

    /* ~ nm / 8 tiles for a compact blob, up to ~ 2.25 nm when scattered; the table grows */
    while (want < nm / 4) want *= 2;
    st = tile_table_resize(e, want, err);
    if (st != ATH_OK) return st;
    e->ntiles = 0;
    w->valid = 0;

    for (i = 0; i < nm; i++) {
        const ath_coord m = mc[i];
        int64_t dy, dx;
        window_center(e, w, tile_of(m.x), tile_of(m.y), m.z);
        for (dy = -r; dy <= r; dy++) {
            for (dx = -r; dx <= r; dx++) {
                ath_coord c = m;
                int64_t tx, ty, t, *slot;
                int32_t *cell;
                c.x += dx;
                c.y += dy;
                if (!map_extent(e, &c)) continue;
                tx = tile_of(c.x);
                ty = tile_of(c.y);
                slot = window_entry(e, w, tx, ty);
                if (slot != NULL && *slot >= 0) {
                    t = *slot;
                } else {
                    t = tile_get(e, tx, ty, c.z, err);
                    if (t < 0) return err != NULL ? err->code : ATH_ERR_NOMEM;
                    if (slot != NULL) *slot = t;
                }
                cell = &e->tcells[t * TILE * TILE + tile_local(c)];
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
    *n_out = n;
    return ATH_OK;
}

/* Widest tile window the bitmask build handles (rows of 4 * (2 * twin + 1) bits). */
#define MASK_TWIN_MAX 2

/* Step 1 with per-tile bitmasks (unbounded or 'zero' extent, twin <= MASK_TWIN_MAX):
 * the same set and tile index as build_eval_set.  Serially: every matter cell
 * into its tile (index and occupancy bit), then the neighbour tiles that the
 * dilation reaches; in parallel over tiles: the tile's dilated mask from the
 * masks of the tiles around it (row shifts and ORs), its cells marked -2. */
static ath_status build_eval_set_mask(ath_engine *e, size_t *n_out, ath_error *err) {
    const size_t nm = ath_cellmap_size(e->matter);
    const ath_coord *mc = ath_cellmap_coords(e->matter);
    const int64_t r = e->radius, tw = e->twin, g = e->cfg.grid_size;
    const int zero_ext = e->cfg.extent == ATH_EXTENT_ZERO;
    size_t want = 256, i, nmt;
    int64_t n = 0, sj, snt;
    tile_window *w = e->window;
    ath_status st;

    while (want < nm / 4) want *= 2;
    st = tile_table_resize(e, want, err);
    if (st != ATH_OK) return st;
    e->ntiles = 0;
    w->valid = 0;
    for (i = 0; i < nm; i++) {
        const ath_coord m = mc[i];
        const int64_t tx = tile_of(m.x), ty = tile_of(m.y);
        int64_t t, *slot;
        window_center(e, w, tx, ty, m.z);
        slot = window_entry(e, w, tx, ty);
        if (*slot >= 0) {
            t = *slot;
        } else {
            t = tile_get(e, tx, ty, m.z, err);
            if (t < 0) return err != NULL ? err->code : ATH_ERR_NOMEM;
            *slot = t;
        }
        e->tcells[t * TILE * TILE + tile_local(m)] = (int32_t)i;
        e->tmask[t] = (uint16_t)(e->tmask[t] | (1u << tile_local(m)));
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
                if (tile_get(e, nx, ny, tc.z, err) < 0) return err != NULL ? err->code : ATH_ERR_NOMEM;
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
                const int64_t t = (ox == 0 && oy == 0) ? sj : tile_find(e, tc.x + ox, tc.y + oy, tc.z);
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

static int key_less(const ath_engine *e, const skey *a, const skey *b) {
    if (a->key != b->key) return a->key < b->key;
    return ath_coord_compare_morton(&e->ecoords[a->idx], &e->ecoords[b->idx]) < 0;
}

/* Stable merge sort of keys[lo, hi) by (key, coordinate) using tmp. */
static void merge_sort_keys(const ath_engine *e, skey *a, skey *tmp, size_t n) {
    size_t width, i;
    skey *src = a, *dst = tmp;
    for (width = 1; width < n; width *= 2) {
        for (i = 0; i < n; i += 2 * width) {
            size_t l = i, m = i + width < n ? i + width : n, h = i + 2 * width < n ? i + 2 * width : n;
            size_t p = l, q = m, k = l;
            while (p < m && q < h) dst[k++] = key_less(e, &src[q], &src[p]) ? src[q++] : src[p++];
            while (p < m) dst[k++] = src[p++];
            while (q < h) dst[k++] = src[q++];
        }
        {
            skey *t = src;
            src = dst;
            dst = t;
        }
    }
    if (src != a) memcpy(a, src, n * sizeof *a);
}

/* LSD radix sort of a[0, n) by key (stable); returns the array holding the result (a or tmp). */
static skey *radix_sort_keys(skey *a, skey *tmp, size_t n) {
    int pass;
    size_t i;
    if (n == 0) return a;
    for (pass = 0; pass < 8; pass++) {
        const int shift = pass * 8;
        size_t count[256], pos = 0;
        skey *t;
        memset(count, 0, sizeof count);
        for (i = 0; i < n; i++) count[(a[i].key >> shift) & 0xFF]++;
        if (count[(a[0].key >> shift) & 0xFF] == n) continue; /* byte constant */
        for (i = 0; i < 256; i++) {
            const size_t c = count[i];
            count[i] = pos;
            pos += c;
        }
        for (i = 0; i < n; i++) tmp[count[(a[i].key >> shift) & 0xFF]++] = a[i];
        t = a;
        a = tmp;
        tmp = t;
    }
    return a;
}

/* Full Morton sort of E (used when the tile order does not give it: tiles
 * sharing a 4x4x4 Morton cube, i.e. several planes, or keys that tie beyond
 * their 21 bits).  eloc[i]: tcells entry of cell i. */
static ath_status sort_cells(ath_engine *e, size_t n, const int64_t *eloc, ath_error *err) {
    skey *keys = (skey *)salloc(n * sizeof(skey)), *tmp = (skey *)salloc(n * sizeof(skey)), *k;
    ath_coord *ct = (ath_coord *)salloc(n * sizeof(ath_coord));
    int64_t *st = (int64_t *)salloc(n * sizeof(int64_t));
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
    k = radix_sort_keys(keys, tmp, n);
    {
        skey *other = k == keys ? tmp : keys;
        for (i = 0; i + 1 < n;) {
            size_t j = i + 1;
            while (j < n && k[j].key == k[i].key) j++;
            if (j - i > 1) merge_sort_keys(e, k + i, other, j - i);
            i = j;
        }
    }
    for (i = 0; i < n; i++) {
        const size_t from = (size_t)k[i].idx;
        ct[i] = e->ecoords[from];
        st[i] = e->esrc[from];
        e->tcells[eloc[from]] = (int32_t)i;
    }
    memcpy(e->ecoords, ct, n * sizeof(ath_coord));
    memcpy(e->esrc, st, n * sizeof(int64_t));
out:
    sfree(keys, n * sizeof(skey));
    sfree(tmp, n * sizeof(skey));
    sfree(ct, n * sizeof(ath_coord));
    sfree(st, n * sizeof(int64_t));
    return rc;
}

/* Step 2: E in Morton order (ties in ath_coord_compare_morton order); the
 * tiles then map a coordinate to its position in E.  The 4 x 4 tiles are
 * sorted by the Morton key of their origin; when no two tiles share a
 * 4x4x4 Morton cube (always so in one plane) that is the cells' order, each
 * tile's cells in 2-D Morton order inside it, so no per-cell sort is needed. */
static ath_status order_eval_set(ath_engine *e, size_t n, ath_error *err) {
    const size_t nt = e->ntiles;
    skey *keys, *tmp, *k;
    int64_t *eloc = NULL;
    size_t j, *start = NULL;
    ptrdiff_t sj, snt = (ptrdiff_t)nt;
    int full = 0;
    ath_status rc = ATH_OK;
    if (nt == 0) return ATH_OK;
    keys = (skey *)salloc(nt * sizeof(skey));
    tmp = (skey *)salloc(nt * sizeof(skey));
    if (keys == NULL || tmp == NULL) {
        rc = ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (tile sort)");
        goto out;
    }
    for (j = 0; j < nt; j++) {
        const ath_coord tc = e->tcoord[j];
        keys[j].key = ath_coord_morton(ath_coord_make(tc.x * TILE, tc.y * TILE, tc.z));
        keys[j].idx = (uint64_t)j;
    }
    k = radix_sort_keys(keys, tmp, nt);
    for (j = 1; j < nt; j++)
        if ((k[j].key >> 6) == (k[j - 1].key >> 6)) full = 1;
    if (full) {
        eloc = (int64_t *)salloc(n * sizeof(int64_t));
        if (eloc == NULL) {
            rc = ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (sort of %zu cells)", n);
            goto out;
        }
    }
    start = (size_t *)salloc((nt + 1) * sizeof(size_t));
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
    sfree(keys, nt * sizeof(skey));
    sfree(tmp, nt * sizeof(skey));
    sfree(eloc, n * sizeof(int64_t));
    sfree(start, (nt + 1) * sizeof(size_t));
    return rc;
}

static ath_status scratch_reserve(ath_engine *e, int nthreads, int patches, size_t n, ath_error *err) {
    const size_t d = (size_t)e->cfg.d_state;
    const size_t items = n < (size_t)e->batch ? (n > 0 ? n : 1) : (size_t)e->batch;
    const size_t per = items * (size_t)(e->channels * e->cfg.patch * e->cfg.patch);
    if (patches && e->in_buf == NULL) {
        e->in_buf = (float *)salloc(per * sizeof(float));
        e->out_buf = (float *)salloc(per * sizeof(float));
        if (e->in_buf == NULL || e->out_buf == NULL) {
            sfree(e->in_buf, per * sizeof(float));
            sfree(e->out_buf, per * sizeof(float));
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

/* Current field of cell idx of E: cur[] (vacuum background: computed once
 * per step), else the matter state or zero, read in place. */
static inline const ath_cf32 *cur_of(const ath_engine *e, int64_t idx) {
    const int64_t j = e->esrc[idx];
    if (e->cur != NULL) return e->cur + idx * e->cfg.d_state;
    return j >= 0 ? ath_cellmap_states(e->matter) + j * e->cfg.d_state : e->zeros;
}

/* Step 4a: the patch of cell s0 + b of E into item b of in_buf. */
static void gather_item(const ath_engine *e, tile_window *w, ath_cf32 *scratch, size_t s0, int64_t b) {
    const int64_t d = e->cfg.d_state, p = e->cfg.patch, r = e->radius, pp = p * p;
    const ath_coord c0 = e->ecoords[s0 + (size_t)b];
    float *base = e->in_buf + b * e->channels * pp;
    int64_t dy, dx, k;
    window_center(e, w, tile_of(c0.x), tile_of(c0.y), c0.z);
    for (dy = -r; dy <= r; dy++) {
        for (dx = -r; dx <= r; dx++) {
            const int64_t px = (dy + r) * p + (dx + r);
            ath_coord c = c0;
            const ath_cf32 *v;
            int64_t idx;
            c.x += dx;
            c.y += dy;
            if (!map_extent(e, &c)) {
                for (k = 0; k < d; k++) {
                    base[k * pp + px] = 0.0f;
                    base[(d + k) * pp + px] = 0.0f;
                }
                continue;
            }
            idx = e_find(e, w, c);
            if (idx >= 0) {
                v = cur_of(e, idx);
            } else {
                background(e, c, scratch);
                v = scratch;
            }
            for (k = 0; k < d; k++) {
                base[k * pp + px] = v[k].re;
                base[(d + k) * pp + px] = v[k].im;
            }
        }
    }
}

/* Step 4c: the rule for cell s0 + b from item b of out_buf.  Returns 1 if the
 * model's output for it is not finite. */
static int update_item(ath_engine *e, ath_out_layout layout, size_t s0, int64_t b) {
    const int64_t d = e->cfg.d_state, p = e->cfg.patch, pp = p * p, C = e->channels;
    const size_t ei = s0 + (size_t)b;
    const float *re, *im;
    ptrdiff_t stride;
    int64_t k;
    int bad = 0;
    if (layout == ATH_OUT_CENTER) {
        re = e->out_buf + b * C;
        im = re + d;
        stride = 1;
    } else {
        re = e->out_buf + b * C * pp + e->radius * p + e->radius;
        im = re + d * pp;
        stride = (ptrdiff_t)pp;
    }
    for (k = 0; k < d; k++)
        if (!isfinite(re[k * stride]) || !isfinite(im[k * stride])) bad = 1;
    e->keep[ei] = ath_step_rule(cur_of(e, (int64_t)ei), re, im, stride, d, e->cfg.gamma_decay,
                                e->cfg.unitary, e->newst + ei * (size_t)d) > e->cfg.threshold;
    return bad;
}

/* One parallel region: the update of chunk [u0, u0+nu) (nu may be 0) and the
 * gather of chunk [g0, g0+ng) (ng may be 0); they touch disjoint buffers.
 * Returns 1 if the updated chunk had non-finite model output. */
static int update_and_gather(ath_engine *e, ath_out_layout layout, size_t u0, int64_t nu, size_t g0,
                             int64_t ng) {
    int bad = 0;
#ifdef _OPENMP
#pragma omp parallel if (nu + ng > 256)
#endif
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num();
#else
        const int tid = 0;
#endif
        ath_cf32 *scratch = e->bg_scratch + (size_t)tid * (size_t)e->cfg.d_state;
        tile_window *w = &e->twindows[tid];
        int64_t b;
        w->valid = 0;
#ifdef _OPENMP
#pragma omp for schedule(static) reduction(| : bad) nowait
#endif
        for (b = 0; b < nu; b++) bad |= update_item(e, layout, u0, b);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (b = 0; b < ng; b++) gather_item(e, w, scratch, g0, b);
    }
    return bad;
}


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

static inline int64_t block_of(int64_t v) { return (v - (v & (BT - 1))) / BT; }

/* Block number of (bx, by, z), adding it if absent; -1 on allocation failure. */
static int64_t block_get(ath_engine *e, size_t *nb, int64_t bx, int64_t by, int64_t z, ath_error *err) {
    size_t s;
    if (2 * (*nb + 1) > e->bcap) {
        const size_t cap = e->bcap > 0 ? 2 * e->bcap : 256;
        tslot *nt = (tslot *)ath_malloc(cap * sizeof *nt);
        size_t i;
        if (nt == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (block table)"), -1;
        for (i = 0; i < cap; i++) nt[i].x = EMPTY_X;
        for (i = 0; i < e->bcap; i++)
            if (e->btable[i].x != EMPTY_X)
                nt[tile_probe(nt, cap - 1, e->btable[i].x, e->btable[i].y, e->btable[i].z)] = e->btable[i];
        ath_free(e->btable);
        e->btable = nt;
        e->bcap = cap;
    }
    s = tile_probe(e->btable, e->bcap - 1, bx, by, z);
    if (e->btable[s].x != EMPTY_X) return e->btable[s].tile;
    if (*nb + 1 > e->blocks_cap &&
        grow((void **)&e->blocks, &e->blocks_cap, *nb + 1, sizeof(ath_coord), err) != ATH_OK)
        return -1;
    e->btable[s].x = bx;
    e->btable[s].y = by;
    e->btable[s].z = z;
    e->btable[s].tile = (int64_t)*nb;
    e->blocks[*nb] = ath_coord_make(bx, by, z);
    return (int64_t)(*nb)++;
}

/* The blocks covering E (sorted), in order of first appearance. */
static ath_status build_blocks(ath_engine *e, size_t n, size_t *nb_out, ath_error *err) {
    size_t i, nb = 0;
    int64_t px = EMPTY_X, py = 0, pz = 0;
    for (i = 0; i < e->bcap; i++) e->btable[i].x = EMPTY_X;
    for (i = 0; i < n; i++) {
        const ath_coord c = e->ecoords[i];
        const int64_t bx = block_of(c.x), by = block_of(c.y);
        if (bx == px && by == py && c.z == pz) continue;
        if (block_get(e, &nb, bx, by, c.z, err) < 0) return err != NULL ? err->code : ATH_ERR_NOMEM;
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
    const int64_t tx = tile_of(c.x), ty = tile_of(c.y);
    if (tx != *ctx || ty != *cty || c.z != *ctz) {
        *ctx = tx;
        *cty = ty;
        *ctz = c.z;
        *ct = tile_find(e, tx, ty, c.z);
    }
    return *ct < 0 ? -1 : e->tcells[*ct * TILE * TILE + tile_local(c)];
}

/* A block's model input region: [x0, x0 + w) x [y0, y0 + h) in plane z.  With a
 * 'zero' extent it is clipped to the window, so the model's own zero padding at
 * every layer falls on the window edge, as in a dense evaluation (DESIGN 3.4). */
typedef struct tile_box {
    int64_t x0, y0, w, h;
} tile_box;

static tile_box block_box(const ath_engine *e, size_t blk, int64_t h) {
    const ath_coord bc = e->blocks[blk];
    tile_box b;
    b.x0 = bc.x * BT - h;
    b.y0 = bc.y * BT - h;
    b.w = BT + 2 * h;
    b.h = BT + 2 * h;
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

static int block_order_cmp(const void *a, const void *b) {
    const struct block_order *p = (const struct block_order *)a, *q = (const struct block_order *)b;
    if (p->key != q->key) return p->key < q->key ? -1 : 1;
    return p->blk < q->blk ? -1 : (p->blk > q->blk ? 1 : 0);
}

/* Item base of tin_buf: the input region bx of block blk. */
static void tile_gather(const ath_engine *e, size_t blk, float *base, tile_box bx, ath_cf32 *scratch) {
    const int64_t d = e->cfg.d_state, W = bx.w, SS = bx.w * bx.h;
    const int64_t z = e->blocks[blk].z;
    int64_t iy, ix, k, ctx = EMPTY_X, cty = 0, ctz = 0, ct = -1;
    for (iy = 0; iy < bx.h; iy++) {
        for (ix = 0; ix < W; ix++) {
            ath_coord c = ath_coord_make(bx.x0 + ix, bx.y0 + iy, z);
            const int64_t px = iy * W + ix;
            const ath_cf32 *v;
            int64_t idx;
            if (!map_extent(e, &c)) {
                for (k = 0; k < d; k++) {
                    base[k * SS + px] = 0.0f;
                    base[(d + k) * SS + px] = 0.0f;
                }
                continue;
            }
            idx = e_find_cached(e, c, &ctx, &cty, &ctz, &ct);
            if (idx >= 0) {
                v = cur_of(e, idx);
            } else {
                background(e, c, scratch);
                v = scratch;
            }
            for (k = 0; k < d; k++) {
                base[k * SS + px] = v[k].re;
                base[(d + k) * SS + px] = v[k].im;
            }
        }
    }
}

/* Tile numbers of the (BT/TILE)^2 4 x 4 tiles of block bc (-1 where absent). */
static void block_tiles(const ath_engine *e, ath_coord bc, int64_t *tl) {
    const int64_t nt = BT / TILE;
    int64_t i, j;
    for (j = 0; j < nt; j++)
        for (i = 0; i < nt; i++) tl[j * nt + i] = tile_find(e, bc.x * nt + i, bc.y * nt + j, bc.z);
}

/* Position in E of the cell (ix, iy) of a block whose tiles are tl, or -1. */
static inline int64_t block_cell(const ath_engine *e, const int64_t *tl, int64_t ix, int64_t iy) {
    const int64_t t = tl[(iy / TILE) * (BT / TILE) + ix / TILE];
    return t < 0 ? -1 : e->tcells[t * TILE * TILE + (iy & (TILE - 1)) * TILE + (ix & (TILE - 1))];
}

/* Widest state that tile_update runs through rule_planar (stack scratch). */
#define RULE_MAX_D 64

/* ath_step_rule_row for w <= BT cells with the states channel-planar
 * (pre[k * BT + x], pim[k * BT + x]) and the results written planar too:
 * the same operations in the same order per cell (bit-identical), with
 * unit-stride loops that vectorise. */
static void rule_planar(const double *pre, const double *pim, const float *delta_re, const float *delta_im,
                        ptrdiff_t stride, int64_t w, int64_t d, double gamma, int unitary, float *ore,
                        float *oim, double *norm, double *nonfin) {
    int64_t x, k;
    for (x = 0; x < w; x++) norm[x] = nonfin[x] = 0.0;
    for (k = 0; k < d; k++) {
        const float *r = delta_re + k * stride, *i = delta_im + k * stride;
        const double *ppr = pre + k * BT, *ppi = pim + k * BT;
        for (x = 0; x < w; x++) {
            const double pr = ppr[x], pi = ppi[x];
            double dr = r[x], di = i[x], nr, ni;
            nonfin[x] += (dr - dr) + (di - di); /* 0 while finite, NaN once not */
            if (unitary) {
                const double tr = dr * pr - di * pi;
                di = dr * pi + di * pr;
                dr = tr;
            }
            dr -= gamma * pr;
            di -= gamma * pi;
            nr = pr + dr;
            ni = pi + di;
            norm[x] += nr * nr + ni * ni;
        }
    }
    for (x = 0; x < w; x++) norm[x] = sqrt(norm[x]);
    for (k = 0; k < d; k++) {
        const float *r = delta_re + k * stride, *i = delta_im + k * stride;
        const double *ppr = pre + k * BT, *ppi = pim + k * BT;
        for (x = 0; x < w; x++) {
            const double pr = ppr[x], pi = ppi[x];
            const double denom = norm[x] + 1e-9;
            double dr = r[x], di = i[x];
            if (unitary) {
                const double tr = dr * pr - di * pi;
                di = dr * pi + di * pr;
                dr = tr;
            }
            dr -= gamma * pr;
            di -= gamma * pi;
            ore[k * BT + x] = (float)((pr + dr) / denom);
            oim[k * BT + x] = (float)((pi + di) / denom);
        }
    }
}

/* The rule for the cells of E in block blk from the output item base (region bx);
 * 1 if non-finite output (at a cell of E).  Row by row: the cells of E in a
 * block row run through rule_planar together (cells of the row not in E are
 * computed on zeros and dropped); sparse rows go cell by cell. */
static int tile_update(ath_engine *e, size_t blk, const float *base, tile_box bx) {
    const int64_t d = e->cfg.d_state, W = bx.w, SS = bx.w * bx.h;
    const ath_coord bc = e->blocks[blk];
    const int64_t bx0 = bc.x * BT, by0 = bc.y * BT;
    /* block cells inside the region (all of them unless clipped to a 'zero' window) */
    const int64_t xa = bx.x0 > bx0 ? bx.x0 - bx0 : 0, xb = bx.x0 + bx.w < bx0 + BT ? bx.x0 + bx.w - bx0 : BT;
    const int64_t ya = bx.y0 > by0 ? bx.y0 - by0 : 0, yb = bx.y0 + bx.h < by0 + BT ? bx.y0 + bx.h - by0 : BT;
    int64_t tl[(BT / TILE) * (BT / TILE)], idx[BT];
    double pre[RULE_MAX_D * BT], pim[RULE_MAX_D * BT], norm[BT], nonfin[BT];
    float ore[RULE_MAX_D * BT], oim[RULE_MAX_D * BT];
    int64_t iy, ix, k;
    int bad = 0;
    block_tiles(e, bc, tl);
    for (iy = ya; iy < yb; iy++) {
        const float *rrow = base + (by0 + iy - bx.y0) * W + (bx0 - bx.x0);
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
                e->keep[idx[ix]] = ath_step_rule(cur_of(e, idx[ix]), re, im, (ptrdiff_t)SS, d, e->cfg.gamma_decay,
                                                 e->cfg.unitary, e->newst + idx[ix] * d) > e->cfg.threshold;
            }
            continue;
        }
        for (ix = x0; ix < x1; ix++) {
            const int64_t j = ix - x0;
            if (idx[ix] >= 0) {
                const ath_cf32 *v = cur_of(e, idx[ix]);
                for (k = 0; k < d; k++) {
                    pre[k * BT + j] = v[k].re;
                    pim[k * BT + j] = v[k].im;
                }
            } else {
                for (k = 0; k < d; k++) pre[k * BT + j] = pim[k * BT + j] = 0.0;
            }
        }
        rule_planar(pre, pim, rrow + x0, rrow + x0 + d * SS, (ptrdiff_t)SS, x1 - x0, d, e->cfg.gamma_decay,
                    e->cfg.unitary, ore, oim, norm, nonfin);
        for (ix = x0; ix < x1; ix++) {
            const int64_t j = ix - x0;
            ath_cf32 *o;
            if (idx[ix] < 0) continue;
            o = e->newst + idx[ix] * d;
            if (nonfin[j] != 0.0) bad = 1;
            for (k = 0; k < d; k++) {
                o[k].re = ore[k * BT + j];
                o[k].im = oim[k * BT + j];
            }
            e->keep[idx[ix]] = norm[j] > e->cfg.threshold;
        }
    }
    return bad;
}

/* Step 4 on tiles.  *calls gets the number of forward() calls, *per_call the blocks per call.
 * Unclipped blocks run first, in batches of up to tb (S x S items); blocks clipped
 * to a 'zero' window then run grouped by their region's shape. */
static ath_status step_tiles(ath_engine *e, size_t n, int64_t *calls, int64_t *per_call, ath_error *err) {
    const int64_t h = e->model->receptive_radius, S = BT + 2 * h;
    const int64_t per_item = e->channels * S * S;
    int64_t tb = ATH_ENGINE_TILE_BATCH_FLOATS / per_item;
    size_t nb = 0, b0, i;
    ath_status st;
    if (tb < 1) tb = 1;
    st = build_blocks(e, n, &nb, err);
    if (st != ATH_OK) return st;
    if ((size_t)tb > nb) tb = (int64_t)(nb > 0 ? nb : 1);
    if ((size_t)(tb * per_item) > e->tbuf_floats) {
        const size_t need = (size_t)(tb * per_item);
        sfree(e->tin_buf, e->tbuf_floats * sizeof(float));
        sfree(e->tout_buf, e->tbuf_floats * sizeof(float));
        e->tin_buf = (float *)salloc(need * sizeof(float));
        e->tout_buf = (float *)salloc(need * sizeof(float));
        e->tbuf_floats = need;
        if (e->tin_buf == NULL || e->tout_buf == NULL) {
            sfree(e->tin_buf, need * sizeof(float));
            sfree(e->tout_buf, need * sizeof(float));
            e->tin_buf = e->tout_buf = NULL;
            e->tbuf_floats = 0;
            return ath_error_set(err, ATH_ERR_NOMEM, "engine: out of memory (tile batch)");
        }
    }
    if (nb > 0) {
        int sorted = 1;
        st = grow((void **)&e->border, &e->border_cap, nb, sizeof(struct block_order), err);
        if (st != ATH_OK) return st;
        for (i = 0; i < nb; i++) {
            const tile_box bx = block_box(e, i, h);
            e->border[i].blk = i;
            e->border[i].key = (bx.w == S && bx.h == S) ? -1 : bx.h * (S + 1) + bx.w;
            if (i > 0 && e->border[i].key < e->border[i - 1].key) sorted = 0;
        }
        if (!sorted) qsort(e->border, nb, sizeof(struct block_order), block_order_cmp);
    }
    *per_call = tb;
    for (b0 = 0; b0 < nb;) {
        const int64_t key = e->border[b0].key;
        const tile_box bx0 = block_box(e, e->border[b0].blk, h);
        const int64_t item = e->channels * bx0.w * bx0.h;
        int64_t cnt = 1, shape[4], b;
        ath_out_layout layout;
        int bad = 0;
        while (cnt < tb && b0 + (size_t)cnt < nb && e->border[b0 + (size_t)cnt].key == key) cnt++;
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
                tile_gather(e, blk, e->tin_buf + bi * item, block_box(e, blk, h), scratch);
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
            bad |= tile_update(e, blk, e->tout_buf + b * item, block_box(e, blk, h));
        }
        if (bad)
            return ath_error_set(err, ATH_ERR_NONFINITE,
                                 "model '%s' returned non-finite values (NaN or Inf); step not applied",
                                 e->model->ops->name ? e->model->ops->name : "?");
        b0 += (size_t)cnt;
    }
    return ATH_OK;
}

static ath_status step_inner(ath_engine *e, int64_t *matter_count, ath_error *err) {
    const int64_t d = e->cfg.d_state;
    size_t n = 0, s0, kept, i;
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
        st = build_eval_set_mask(e, &n, err);
    else
        st = build_eval_set(e, &n, err);
    if (st == ATH_OK) st = scratch_reserve(e, nthreads, !use_tiles, n, err);
    if (st == ATH_OK) st = e_alloc(e, n, err);
    if (st == ATH_OK) st = order_eval_set(e, n, err);
    if (st != ATH_OK) return st;
    sn = (ptrdiff_t)n;

    /* 3: the current field on E (matter, else background), once per cell;
     * only for the vacuum background (zero: cur_of() reads the matter) */
    if (e->cur != NULL) {
        const ath_cf32 *ms = ath_cellmap_states(e->matter);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > 1024)
#endif
        for (si = 0; si < sn; si++) {
            const int64_t j = e->esrc[si];
            ath_cf32 *dst = e->cur + si * d;
            if (j >= 0)
                memcpy(dst, ms + j * d, (size_t)d * sizeof(ath_cf32));
            else
                background(e, e->ecoords[si], dst);
        }
    }

    if (use_tiles) {
        st = step_tiles(e, n, &calls, &per_call, err);
        if (st != ATH_OK) return st;
    } else {
        /* 4: model in fixed chunks; the update of one chunk runs in the same
         * parallel region as the gather of the next */
        if (n > 0) update_and_gather(e, ATH_OUT_FULL, 0, 0, 0, (int64_t)(n < (size_t)e->batch ? n : (size_t)e->batch));
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
            if (update_and_gather(e, layout, s0, nb, g0, ng))
                return ath_error_set(err, ATH_ERR_NONFINITE,
                                     "model '%s' returned non-finite values (NaN or Inf); step not applied",
                                     e->model->ops->name ? e->model->ops->name : "?");
        }
    }

    /* 5: keep.  If the kept cells are exactly the matter cells, in the map's
     * own storage order (the usual steady state: the map was built in Morton
     * order by the previous step), the map keeps its index and only the
     * states are overwritten; otherwise compact (in Morton order), build the
     * new map and swap. */
    kept = 0;
    {
        const size_t nm = ath_cellmap_size(e->matter);
        int same = 1;
        for (i = 0; i < n; i++) {
            if (e->keep[i]) {
                if (e->esrc[i] != (int64_t)kept) same = 0;
                kept++;
            }
        }
        if (same && kept == nm) {
            ath_cf32 *ms = ath_cellmap_states_mut(e->matter);
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
    ath_cellmap_clear(e->next);
    st = ath_cellmap_set_many(e->next, kept, e->ecoords, e->newst, err);
    if (st != ATH_OK) {
        ath_cellmap_clear(e->next);
        return st;
    }
    ath_cellmap_swap(e->matter, e->next);
    /* the old map is not needed until the next non-steady step: give its
     * storage back rather than hold two maps */
    ath_cellmap_release(e->next);
done:
    e->step++;
    e->stats.evaluated = (int64_t)n;
    e->stats.model_calls = calls;
    e->stats.batch = per_call;
    if (matter_count != NULL) *matter_count = (int64_t)kept;
    return ATH_OK;
}

ath_status ath_engine_step(ath_engine *e, int64_t *matter_count, ath_error *err) {
    ath_status st;
    if (e == NULL) return ath_error_set(err, ATH_ERR_INVALID, "engine: NULL");
    if (e->model == NULL) return ath_error_set(err, ATH_ERR_NO_MODEL, "no model set (set_model / load_model)");
    st = step_inner(e, matter_count, err);
    step_release(e);
    return st;
}

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
    return ath_cellmap_set_many(e->matter, n, coords, states, err);
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
    for (i = 0; i < sn; i++) field_at(e, coords[i], out + i * e->cfg.d_state);
    return ATH_OK;
}

/* Background of rows [r0, r1) of the region (out already offset to the region's origin):
 * zeros outside a bounded window, the background inside.  The vacuum goes
 * through ath_vacuum_region per in-window row run (the same pure function
 * as background(), so identical numbers).  out_zeroed: out is known to be
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
    if (!ath_coord_in_limits(ath_coord_make(x0, y0, z)) || !ath_coord_in_limits(ath_coord_make(x1, y1, z)))
        return ath_error_set(err, ATH_ERR_RANGE, "to_dense: region out of range (|c| <= 2**60)");
    w = x1 - x0;
    h = y1 - y0;
    if (w == 0 || h == 0) return ATH_OK;
    if (out == NULL) return ath_error_set(err, ATH_ERR_INVALID, "to_dense: NULL output");
    nm = ath_cellmap_size(e->matter);
    if ((double)w * (double)h <= 4.0 * (double)nm) {
        /* dense matter: one lookup per cell */
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
        for (row = 0; row < h; row++) {
            int64_t x;
            for (x = 0; x < w; x++)
                field_at(e, ath_coord_make(x0 + x, y0 + row, z), out + (row * w + x) * d);
        }
    } else {
        /* sparse matter: background over the region (row blocks in parallel;
         * a zero background is a memset, skipped when out is already zero),
         * then scatter the matter (no per-cell lookups) */
        const ath_coord *mc = ath_cellmap_coords(e->matter);
        const ath_cf32 *ms = ath_cellmap_states(e->matter);
        const int cheap = e->cfg.background == ATH_BACKGROUND_ZERO;
        size_t i;
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
        for (i = 0; i < nm; i++) {
            const ath_coord c = mc[i];
            if (c.z == z && c.x >= x0 && c.x < x1 && c.y >= y0 && c.y < y1)
                memcpy(out + ((c.y - y0) * w + (c.x - x0)) * d, ms + i * (size_t)d,
                       (size_t)d * sizeof(ath_cf32));
        }
    }
    return ATH_OK;
}

ath_status ath_engine_activate_neighborhood(ath_engine *e, ath_coord coord, int64_t radius,
                                            ath_error *err) {
    const int64_t d = e != NULL ? e->cfg.d_state : 0;
    int64_t side, dy, dx;
    size_t n = 0, cap;
    ath_coord *cs;
    ath_cf32 *vs;
    ath_status st;

    if (e == NULL) return ath_error_set(err, ATH_ERR_INVALID, "engine: NULL");
    if (radius < 0)
        return ath_error_set(err, ATH_ERR_INVALID, "activate_neighborhood: radius must be >= 0, got %lld",
                             (long long)radius);
    if (!ath_coord_in_limits(coord))
        return ath_error_set(err, ATH_ERR_RANGE, "activate_neighborhood: coordinate out of range");
    if (radius > ((int64_t)1 << 14))
        return ath_error_set(err, ATH_ERR_INVALID, "activate_neighborhood: radius %lld is too large",
                             (long long)radius);
    side = 2 * radius + 1;
    cap = (size_t)(side * side);
    cs = (ath_coord *)ath_malloc(cap * sizeof *cs);
    vs = (ath_cf32 *)ath_malloc(cap * (size_t)d * sizeof *vs);
    if (cs == NULL || vs == NULL) {
        ath_free(cs);
        ath_free(vs);
        return ath_error_set(err, ATH_ERR_NOMEM, "activate_neighborhood: out of memory");
    }
    for (dy = -radius; dy <= radius; dy++) {
        for (dx = -radius; dx <= radius; dx++) {
            ath_coord c = coord;
            c.x += dx;
            c.y += dy;
            if (e->cfg.extent == ATH_EXTENT_ZERO && !ath_engine_in_window(e, c)) continue;
            if (!map_extent(e, &c)) continue;
            if (!ath_coord_in_limits(c)) continue;
            if (ath_cellmap_find(e->matter, c) >= 0) continue;
            cs[n] = c;
            background(e, c, vs + n * (size_t)d);
            n++;
        }
    }
    st = ath_cellmap_set_many(e->matter, n, cs, vs, err);
    ath_free(cs);
    ath_free(vs);
    return st;
}

ath_status ath_engine_query_radius(const ath_engine *e, ath_coord center, double radius,
                                   ath_coord **out, size_t *n_out, ath_error *err) {
    const size_t nm = e != NULL ? ath_cellmap_size(e->matter) : 0;
    const ath_coord *mc;
    ath_coord *res;
    size_t i, n = 0;
    double r2;
    if (e == NULL || out == NULL || n_out == NULL)
        return ath_error_set(err, ATH_ERR_INVALID, "query_radius: NULL argument");
    if (!isfinite(radius) || radius < 0.0)
        return ath_error_set(err, ATH_ERR_INVALID, "query_radius: radius must be finite and >= 0, got %g",
                             radius);
    mc = ath_cellmap_coords(e->matter);
    res = (ath_coord *)ath_malloc((nm > 0 ? nm : 1) * sizeof *res);
    if (res == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "query_radius: out of memory");
    r2 = radius * radius;
    for (i = 0; i < nm; i++) {
        const double dx = (double)(mc[i].x - center.x), dy = (double)(mc[i].y - center.y);
        const double dz = (double)(mc[i].z - center.z);
        if (dx * dx + dy * dy + dz * dz <= r2) res[n++] = mc[i];
    }
    ath_coord_sort_morton(res, n);
    *out = res;
    *n_out = n;
    return ATH_OK;
}

/* ------------------------------------------- matter walk, step count (h11)
 * One block on purpose: the persistent-block engine provides the same two
 * functions; this version walks today's cell map. */

#define ATH_VISIT_BATCH 4096

ath_status ath_engine_visit_matter(const ath_engine *e, const ath_roi *roi, ath_matter_visitor visit,
                                   void *ctx, ath_error *err) {
    const size_t nm = e != NULL ? ath_cellmap_size(e->matter) : 0;
    const ath_coord *mc;
    const ath_cf32 *ms;
    size_t d, i;
    ath_coord *bc;
    ath_cf32 *bs;
    size_t nb = 0;
    ath_status st = ATH_OK;
    if (e == NULL || visit == NULL) return ath_error_set(err, ATH_ERR_INVALID, "visit_matter: NULL argument");
    mc = ath_cellmap_coords(e->matter);
    ms = ath_cellmap_states(e->matter);
    d = (size_t)e->cfg.d_state;
    if (roi == NULL) {
        /* the map's arrays are contiguous: hand them out in slices */
        for (i = 0; i < nm && st == ATH_OK; i += ATH_VISIT_BATCH) {
            const size_t n = nm - i < ATH_VISIT_BATCH ? nm - i : ATH_VISIT_BATCH;
            st = visit(ctx, mc + i, ms + i * d, n, err);
        }
        return st;
    }
    if (roi->x1 < roi->x0 || roi->y1 < roi->y0)
        return ath_error_set(err, ATH_ERR_INVALID, "visit_matter: need x0 <= x1 and y0 <= y1");
    if (!ath_coord_in_limits(ath_coord_make(roi->x0, roi->y0, roi->z)) ||
        !ath_coord_in_limits(ath_coord_make(roi->x1, roi->y1, roi->z)))
        return ath_error_set(err, ATH_ERR_RANGE, "visit_matter: region out of range (|c| <= 2**60)");
    if (roi->x1 == roi->x0 || roi->y1 == roi->y0 || nm == 0) return ATH_OK;
    bc = (ath_coord *)ath_malloc(ATH_VISIT_BATCH * sizeof *bc);
    bs = (ath_cf32 *)ath_malloc(ATH_VISIT_BATCH * d * sizeof *bs);
    if (bc == NULL || bs == NULL) {
        ath_free(bc);
        ath_free(bs);
        return ath_error_set(err, ATH_ERR_NOMEM, "visit_matter: out of memory");
    }
    if ((double)(roi->x1 - roi->x0) * (double)(roi->y1 - roi->y0) <= (double)nm) {
        /* a region smaller than the matter: one lookup per cell of the region */
        int64_t x, y;
        for (y = roi->y0; y < roi->y1 && st == ATH_OK; y++) {
            for (x = roi->x0; x < roi->x1 && st == ATH_OK; x++) {
                const ath_coord c = ath_coord_make(x, y, roi->z);
                const ptrdiff_t k = ath_cellmap_find(e->matter, c);
                if (k < 0) continue;
                bc[nb] = c;
                memcpy(bs + nb * d, ms + (size_t)k * d, d * sizeof *bs);
                if (++nb == ATH_VISIT_BATCH) {
                    st = visit(ctx, bc, bs, nb, err);
                    nb = 0;
                }
            }
        }
    } else {
        /* less matter than region cells: filter the matter */
        for (i = 0; i < nm && st == ATH_OK; i++) {
            const ath_coord c = mc[i];
            if (c.z != roi->z || c.x < roi->x0 || c.x >= roi->x1 || c.y < roi->y0 || c.y >= roi->y1) continue;
            bc[nb] = c;
            memcpy(bs + nb * d, ms + i * d, d * sizeof *bs);
            if (++nb == ATH_VISIT_BATCH) {
                st = visit(ctx, bc, bs, nb, err);
                nb = 0;
            }
        }
    }
    if (st == ATH_OK && nb > 0) st = visit(ctx, bc, bs, nb, err);
    ath_free(bc);
    ath_free(bs);
    return st;
}

ath_status ath_engine_set_step_count(ath_engine *e, int64_t step, ath_error *err) {
    if (e == NULL) return ath_error_set(err, ATH_ERR_INVALID, "engine: NULL");
    if (step < 0) return ath_error_set(err, ATH_ERR_INVALID, "step count must be >= 0, got %lld", (long long)step);
    e->step = step;
    return ATH_OK;
}
