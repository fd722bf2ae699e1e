/* The DenseEngine: a bounded H x W grid in one contiguous array, the model
 * evaluated once on the whole grid (DESIGN §3.4), double-buffered.
 *
 * extent 'zero': the model sees [1, 2d, H, W] and pads as it likes (a conv
 * stack zero-pads every layer, like the reference engine).
 * extent 'periodic': the field is padded circularly by the model's
 * receptive radius R to [1, 2d, H+2R, W+2R] and the centre H x W of the
 * output is used.  For a conv stack that is exactly circular padding at
 * every layer (the outer R ring absorbs the zero-padding artefacts), so
 * models of unknown receptive radius are refused. */
#include "atheria/alloc.h"
#include "atheria/dense_engine.h"

#include "atheria/rule.h"
#include "first_error.h"
#include "planar.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

struct ath_dense_engine {
    ath_dense_config cfg;
    ath_vacuum vac;
    ath_cf32 *field; /* [H][W][d] */
    ath_cf32 *next;
    ath_model *model;
    int64_t step;
    float *in_buf, *out_buf;
    size_t buf_floats; /* capacity of in_buf / out_buf */
    double *row_norms; /* one row of per-cell norms per thread (ath_step_rule_row) */
    size_t row_norms_n;
    float *row_out;    /* banded step: one channel-planar output row (2*d*W floats) per thread */
    size_t row_out_n;
};

/* Bound on H*W*d complex values and on the model's (padded) input size. */
#define ATH_DENSE_MAX_VALUES ((int64_t)1 << 28)
#define ATH_DENSE_MAX_INPUT_FLOATS ((int64_t)1 << 30)

void ath_dense_config_default(ath_dense_config *cfg, int64_t grid_size, int64_t d_state) {
    if (cfg == NULL) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->grid_size = grid_size;
    cfg->d_state = d_state;
    cfg->gamma_decay = 0.0;
    cfg->unitary = 0;
    cfg->seed = 0;
    cfg->vacuum_strength = 0.1;
    cfg->periodic = 0;
}

static void fill_vacuum(ath_dense_engine *e) {
    const int64_t g = e->cfg.grid_size;
    ath_error err;
    if (ath_vacuum_region(&e->vac, 0, 0, g, g, 0, 0, e->field, &err) != ATH_OK) {
        /* Cannot fail for a validated grid; fall back to per-cell evaluation. */
        int64_t y, x;
        for (y = 0; y < g; y++)
            for (x = 0; x < g; x++)
                ath_vacuum_cell(&e->vac, ath_coord_make(x, y, 0), 0,
                                e->field + (y * g + x) * e->cfg.d_state);
    }
}

ath_status ath_dense_create(const ath_dense_config *cfg, ath_dense_engine **out, ath_error *err) {
    ath_dense_engine *e;
    ath_status st;
    size_t n;
    if (cfg == NULL || out == NULL) return ath_error_set(err, ATH_ERR_INVALID, "dense engine: NULL argument");
    if (cfg->d_state < 1 || cfg->d_state > ATH_MAX_D_STATE)
        return ath_error_set(err, ATH_ERR_INVALID, "d_state must be in [1, %d], got %lld",
                             ATH_MAX_D_STATE, (long long)cfg->d_state);
    if (cfg->grid_size < 1 || cfg->grid_size > ATH_MAX_GRID_SIZE)
        return ath_error_set(err, ATH_ERR_INVALID, "grid_size must be in [1, %lld], got %lld",
                             (long long)ATH_MAX_GRID_SIZE, (long long)cfg->grid_size);
    if ((double)cfg->grid_size * (double)cfg->grid_size * (double)cfg->d_state >
        (double)ATH_DENSE_MAX_VALUES)
        return ath_error_set(err, ATH_ERR_INVALID,
                             "grid_size^2 * d_state = %lld^2 * %lld exceeds the dense limit of "
                             "2**28 complex values",
                             (long long)cfg->grid_size, (long long)cfg->d_state);
    if (!isfinite(cfg->gamma_decay) || cfg->gamma_decay < 0.0)
        return ath_error_set(err, ATH_ERR_INVALID, "gamma_decay must be finite and >= 0, got %g",
                             cfg->gamma_decay);
    if (!isfinite(cfg->vacuum_strength) || cfg->vacuum_strength < 0.0)
        return ath_error_set(err, ATH_ERR_INVALID,
                             "vacuum_strength must be finite and >= 0, got %g", cfg->vacuum_strength);
    e = (ath_dense_engine *)ath_calloc(1, sizeof *e);
    if (e == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "dense engine: out of memory");
    e->cfg = *cfg;
    e->cfg.periodic = cfg->periodic ? 1 : 0;
    e->cfg.unitary = cfg->unitary ? 1 : 0;
    st = ath_vacuum_init(&e->vac, cfg->d_state, cfg->seed, cfg->vacuum_strength, err);
    if (st != ATH_OK) {
        ath_free(e);
        return st;
    }
    n = (size_t)(cfg->grid_size * cfg->grid_size * cfg->d_state);
    e->field = (ath_cf32 *)ath_malloc(n * sizeof(ath_cf32));
    e->next = (ath_cf32 *)ath_malloc(n * sizeof(ath_cf32));
    if (e->field == NULL || e->next == NULL) {
        ath_free(e->field);
        ath_free(e->next);
        ath_free(e);
        return ath_error_set(err, ATH_ERR_NOMEM, "dense engine: out of memory for a %lld x %lld x %lld field",
                             (long long)cfg->grid_size, (long long)cfg->grid_size,
                             (long long)cfg->d_state);
    }
    fill_vacuum(e);
    *out = e;
    return ATH_OK;
}

void ath_dense_destroy(ath_dense_engine *e) {
    if (e == NULL) return;
    ath_free(e->field);
    ath_free(e->next);
    ath_free(e->in_buf);
    ath_free(e->out_buf);
    ath_free(e->row_norms);
    ath_free(e->row_out);
    ath_free(e);
}

const ath_dense_config *ath_dense_get_config(const ath_dense_engine *e) { return e ? &e->cfg : NULL; }

static ath_status check_model(const ath_dense_engine *e, const ath_model *m, ath_error *err) {
    if (m->ops == NULL || m->ops->forward == NULL)
        return ath_error_set(err, ATH_ERR_INVALID, "model: missing forward()");
    if (m->channels >= 0 && m->channels != 2 * e->cfg.d_state)
        return ath_error_set(err, ATH_ERR_INVALID,
                             "model expects %lld channels but the engine has 2*d_state = %lld",
                             (long long)m->channels, (long long)(2 * e->cfg.d_state));
    if (e->cfg.periodic) {
        int64_t hp;
        if (m->receptive_radius < 0)
            return ath_error_set(err, ATH_ERR_INVALID,
                                 "extent 'periodic' needs a model with a known receptive radius "
                                 "(it pads the field circularly by it); this model's is unknown");
        if (m->receptive_radius > ATH_MAX_GRID_SIZE)
            return ath_error_set(err, ATH_ERR_INVALID, "model receptive radius %lld is too large",
                                 (long long)m->receptive_radius);
        hp = e->cfg.grid_size + 2 * m->receptive_radius;
        if ((double)hp * (double)hp * 2.0 * (double)e->cfg.d_state > (double)ATH_DENSE_MAX_INPUT_FLOATS)
            return ath_error_set(err, ATH_ERR_INVALID,
                                 "periodic padding by the receptive radius %lld makes the model "
                                 "input too large",
                                 (long long)m->receptive_radius);
    }
    return ATH_OK;
}

ath_status ath_dense_set_model(ath_dense_engine *e, ath_model *model, ath_error *err) {
    ath_status st;
    if (e == NULL) return ath_error_set(err, ATH_ERR_INVALID, "dense engine: NULL");
    if (model != NULL) {
        st = check_model(e, model, err);
        if (st != ATH_OK) return st;
        if (model->ops->reset_memory != NULL) model->ops->reset_memory(model->ctx);
    }
    e->model = model;
    return ATH_OK;
}

ath_model *ath_dense_get_model(const ath_dense_engine *e) { return e ? e->model : NULL; }

/* Floats in one band's model input (and as many in its output): a band and
 * its update stay in cache between the gather and the rule. */
#define ATH_DENSE_BAND_FLOATS ((int64_t)1 << 18)

/* Grows in_buf / out_buf to `need` floats each (kept across steps). */
static ath_status dense_buffers(ath_dense_engine *e, size_t need, ath_error *err) {
    if (need > e->buf_floats) {
        float *a = (float *)ath_malloc(need * sizeof(float));
        float *b = (float *)ath_malloc(need * sizeof(float));
        if (a == NULL || b == NULL) {
            ath_free(a);
            ath_free(b);
            return ath_error_set(err, ATH_ERR_NOMEM, "dense engine: out of memory for the model input");
        }
        ath_free(e->in_buf);
        ath_free(e->out_buf);
        e->in_buf = a;
        e->out_buf = b;
        e->buf_floats = need;
    }
    return ATH_OK;
}

/* Floats between the channel planes of a thread's output row: the row plus one cache line, so
 * that the 2 d planes of a power-of-two grid do not all fall into the same L1 sets. */
static size_t row_out_stride(const ath_dense_engine *e) { return (size_t)e->cfg.grid_size + 16; }

static ath_status dense_row_out(ath_dense_engine *e, int nthreads, ath_error *err) {
    const size_t need = (size_t)nthreads * 2 * (size_t)e->cfg.d_state * row_out_stride(e);
    if (need > e->row_out_n) {
        float *rows = (float *)ath_malloc(need * sizeof(float));
        if (rows == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "dense engine: out of memory for the update");
        ath_free(e->row_out);
        e->row_out = rows;
        e->row_out_n = need;
    }
    return ATH_OK;
}

static ath_status dense_row_norms(ath_dense_engine *e, int nthreads, ath_error *err) {
    const size_t need = (size_t)nthreads * (size_t)e->cfg.grid_size;
    if (need > e->row_norms_n) {
        double *rows = (double *)ath_malloc(need * sizeof(double));
        if (rows == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "dense engine: out of memory for the update");
        ath_free(e->row_norms);
        e->row_norms = rows;
        e->row_norms_n = need;
    }
    return ATH_OK;
}

/* Fewest grid cells for which the band loop runs on more than one thread (below it, waking a
 * sleeping worker costs more than it saves). */
#define DENSE_PARALLEL_MIN_CELLS 4096
/* A field larger than this is written with non-temporal stores (it does not stay cached). */
#define DENSE_STREAM_MIN_BYTES ((size_t)8 << 20)

/* One band [y0, y1): its rows gathered (channel-planar) into in, the model, the rule into
 * e->next.  Returns 1 on a non-finite update, -1 when the model failed (*st, *err set). */
static int dense_band(ath_dense_engine *e, ath_model *m, int64_t y0, int64_t y1, float *in, float *out, float *o,
                      double *norms, ath_status *st, ath_error *err) {
    const int64_t g = e->cfg.grid_size, d = e->cfg.d_state, H = m->receptive_radius;
    const int periodic = e->cfg.periodic;
    const int64_t W = periodic ? g + 2 * H : g, col0 = periodic ? H : 0;
    /* item rows [ylo, yhi) in grid coordinates (periodic: unclipped, wrapped on read) */
    const int64_t ylo = periodic ? y0 - H : (y0 - H > 0 ? y0 - H : 0);
    const int64_t yhi = periodic ? y1 + H : (y1 + H < g ? y1 + H : g);
    const int64_t ih = yhi - ylo, plane = ih * W;
    const ptrdiff_t os = (ptrdiff_t)row_out_stride(e);
    const int stream = (size_t)(g * g * d) * sizeof(ath_cf32) > DENSE_STREAM_MIN_BYTES && (d & 1) == 0;
    int64_t shape[4], iy, y, x;
    ath_out_layout layout;
    int bad = 0;
    for (iy = 0; iy < ih; iy++) {
        int64_t sy = ylo + iy;
        const ath_cf32 *row;
        float *dst = in + iy * W;
        if (periodic) sy = ((sy % g) + g) % g;
        row = e->field + sy * g * d;
        /* the grid's row in item columns [col0, col0 + g), four cells at a time; periodic:
         * the wrapped columns either side */
        for (x = 0; x + 4 <= g; x += 4) {
            const ath_cf32 *const v[4] = {row + x * d, row + (x + 1) * d, row + (x + 2) * d, row + (x + 3) * d};
            ath_eng_put_planar4(dst + col0 + x, plane, v, d);
        }
        for (; x < g; x++) ath_eng_put_planar(dst + col0 + x, plane, row + x * d, d);
        for (x = 0; x < col0; x++) {
            ath_eng_put_planar(dst + x, plane, row + (((x - col0) % g) + g) % g * d, d);
            ath_eng_put_planar(dst + col0 + g + x, plane, row + (x % g) * d, d);
        }
    }
    shape[0] = 1;
    shape[1] = 2 * d;
    shape[2] = ih;
    shape[3] = W;
    *st = ath_model_forward(m, in, shape, out, 0, &layout, err);
    if (*st != ATH_OK) return -1;
    for (y = y0; y < y1; y++) {
        /* psi: the band's input holds the row channel-planar already (exact copies) */
        const float *re = out + (y - ylo) * W + col0, *psi = in + (y - ylo) * W + col0;
        ath_cf32 *dst = e->next + y * g * d;
        bad |= ath_rule_planar_row(psi, psi + d * plane, (ptrdiff_t)plane, re, re + d * plane, (ptrdiff_t)plane, g, d,
                                   e->cfg.gamma_decay, e->cfg.unitary, 0.0, o, o + d * os, os, norms, NULL, NULL);
        if (stream && ((uintptr_t)dst & 15u) == 0) {
            /* a field larger than the cache: the next step reads it from memory anyway, so the
             * row is written with non-temporal stores (no read of each line before its store) */
            for (x = 0; x + 4 <= g; x += 4) {
                ath_cf32 *const c4[4] = {dst + x * d, dst + (x + 1) * d, dst + (x + 2) * d, dst + (x + 3) * d};
                ath_eng_take_planar4_stream(o + x, o + d * os + x, os, d, c4);
            }
            for (; x < g; x++) ath_eng_take_planar(o + x, o + d * os + x, os, d, dst + x * d);
        } else {
            ath_rule_planar_to_cells(o, o + d * os, os, g, d, dst);
        }
    }
    if (stream) ath_planar_stream_fence();
    return bad;
}

/* The step in bands of rows, for models that accept any [B, C, H, W] and whose
 * output at a pixel depends only on the input within their receptive radius H
 * (ath_model_accepts_tiles: ZeroModel, the conv stack).  Band [y0, y1) runs as
 * one item: rows y0 - H .. y1 + H - 1 (periodic: wrapped, and every row padded
 * circularly by H as the whole-grid path pads; zero: clipped to the grid, so
 * the model's own zero padding falls on the grid edge as before) and the rule
 * is applied to the band's rows.  Every output pixel is computed from the same
 * inputs by the same operations as on the whole grid, so the numbers are the
 * same, bit for bit, whatever the bands; only the buffers are a band instead of
 * the grid (they stay in cache: one pass over the field instead of four).
 * The bands run in one parallel region, each thread gathering, running the
 * model on (a built-in model nested in the region runs on the calling thread)
 * and updating its own bands, so a step wakes the workers once, not twice per
 * band.  New values go to e->next, swapped in only when every band succeeded. */
static ath_status dense_step_bands(ath_dense_engine *e, ath_model *m, ath_error *err) {
    const int64_t g = e->cfg.grid_size, d = e->cfg.d_state, H = m->receptive_radius;
    const int64_t W = e->cfg.periodic ? g + 2 * H : g;
    int64_t bh = ATH_DENSE_BAND_FLOATS / (2 * d * W) - 2 * H, nbands;
    int nthreads = 1, bad = 0;
    ath_first_error fe = {ATH_OK, 0};
    size_t slot;
    ptrdiff_t ib;
    ath_status st = ATH_OK;
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
    if (nthreads < 1) nthreads = 1;
#endif
    if (g * g < DENSE_PARALLEL_MIN_CELLS) nthreads = 1;
    /* at least two bands per thread, so that the threads share the grid */
    if (nthreads > 1 && bh > (g + 2 * nthreads - 1) / (2 * nthreads)) bh = (g + 2 * nthreads - 1) / (2 * nthreads);
    if (bh < 4 * H) bh = 4 * H;
    if (bh < 8) bh = 8;
    if (bh > g) bh = g;
    nbands = (g + bh - 1) / bh;
    if (nthreads > nbands) nthreads = (int)nbands;
    slot = (size_t)(2 * d * (bh + 2 * H) * W);
    st = dense_buffers(e, slot * (size_t)nthreads, err);
    if (st == ATH_OK) st = dense_row_norms(e, nthreads, err);
    if (st == ATH_OK) st = dense_row_out(e, nthreads, err);
    if (st != ATH_OK) return st;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) reduction(| : bad) if (nthreads > 1)
#endif
    {
        int tid = 0;
        float *in, *out, *o;
        double *norms;
        ath_error lerr;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        in = e->in_buf + (size_t)tid * slot;
        out = e->out_buf + (size_t)tid * slot;
        o = e->row_out + (size_t)tid * 2 * (size_t)d * row_out_stride(e);
        norms = e->row_norms + (size_t)tid * (size_t)g;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (ib = 0; ib < (ptrdiff_t)nbands; ib++) {
            const int64_t y0 = (int64_t)ib * bh, y1 = y0 + bh < g ? y0 + bh : g;
            ath_status lst = ATH_OK;
            int r;
            if (ath_first_error_seen(&fe)) continue;
            r = dense_band(e, m, y0, y1, in, out, o, norms, &lst, &lerr);
            if (r < 0) {
                ath_first_error_set(&fe, lst, &lerr, err);
                continue;
            }
            bad |= r;
        }
    }
    if (fe.st != ATH_OK) return fe.st;
    if (bad)
        return ath_model_nonfinite_error(m, err);
    {
        ath_cf32 *t = e->field;
        e->field = e->next;
        e->next = t;
    }
    e->step++;
    return ATH_OK;
}

ath_status ath_dense_step(ath_dense_engine *e, ath_error *err) {
    const int64_t g = e != NULL ? e->cfg.grid_size : 0, d = e != NULL ? e->cfg.d_state : 0;
    int64_t R, hp, plane, shape[4], y;
    size_t need;
    ath_out_layout layout;
    ath_status st;
    ath_model *m;
    int bad = 0;

    if (e == NULL) return ath_error_set(err, ATH_ERR_INVALID, "dense engine: NULL");
    m = e->model;
    if (m == NULL) return ath_error_set(err, ATH_ERR_NO_MODEL, "no model set (set_model / load_model)");
    st = check_model(e, m, err);
    if (st != ATH_OK) return st;
    if (ath_model_accepts_tiles(m) && m->receptive_radius >= 0 && !m->has_memory)
        return dense_step_bands(e, m, err);
    R = e->cfg.periodic ? m->receptive_radius : 0;
    hp = g + 2 * R;
    plane = hp * hp;
    need = (size_t)(2 * d * plane);
    if (need > e->buf_floats) {
        float *a = (float *)ath_malloc(need * sizeof(float));
        float *b = (float *)ath_malloc(need * sizeof(float));
        if (a == NULL || b == NULL) {
            ath_free(a);
            ath_free(b);
            return ath_error_set(err, ATH_ERR_NOMEM, "dense engine: out of memory for the model input");
        }
        ath_free(e->in_buf);
        ath_free(e->out_buf);
        e->in_buf = a;
        e->out_buf = b;
        e->buf_floats = need;
    }

    /* field [y][x][k] -> input [1][2d][hp][hp] (circular padding by R), channel by
     * channel along each row so that writes stream through one plane at a time */
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (y = 0; y < hp; y++) {
        int64_t sy = y - R, x, k;
        if (R > 0) {
            sy %= g;
            if (sy < 0) sy += g;
        }
        for (k = 0; k < d; k++) {
            float *dst_re = e->in_buf + k * plane + y * hp, *dst_im = dst_re + d * plane;
            for (x = 0; x < hp; x++) {
                int64_t sx = x - R;
                if (R > 0) {
                    sx %= g;
                    if (sx < 0) sx += g;
                }
                dst_re[x] = e->field[(sy * g + sx) * d + k].re;
                dst_im[x] = e->field[(sy * g + sx) * d + k].im;
            }
        }
    }
    shape[0] = 1;
    shape[1] = 2 * d;
    shape[2] = hp;
    shape[3] = hp;
    st = ath_model_forward(m, e->in_buf, shape, e->out_buf, 0, &layout, err);
    if (st != ATH_OK) {
        if (m->ops->discard_memory != NULL) m->ops->discard_memory(m->ctx);
        return st;
    }

    {
        int nthreads = 1;
#ifdef _OPENMP
        nthreads = omp_get_max_threads();
#endif
        if ((size_t)(nthreads * g) > e->row_norms_n) {
            double *rows = (double *)ath_malloc((size_t)(nthreads * g) * sizeof(double));
            if (rows == NULL) {
                if (m->ops->discard_memory != NULL) m->ops->discard_memory(m->ctx);
                return ath_error_set(err, ATH_ERR_NOMEM, "dense engine: out of memory for the update");
            }
            ath_free(e->row_norms);
            e->row_norms = rows;
            e->row_norms_n = (size_t)(nthreads * g);
        }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(| : bad) num_threads(nthreads)
#endif
        for (y = 0; y < g; y++) {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            bad |= ath_step_rule_row(e->field + y * g * d, e->out_buf + (y + R) * hp + R,
                                  e->out_buf + d * plane + (y + R) * hp + R, (ptrdiff_t)plane, g, d,
                                  e->cfg.gamma_decay, e->cfg.unitary, e->next + y * g * d,
                                  e->row_norms + (size_t)tid * (size_t)g);
        }
    }
    if (bad) {
        if (m->ops->discard_memory != NULL) m->ops->discard_memory(m->ctx);
        return ath_model_nonfinite_error(m, err);
    }
    {
        ath_cf32 *t = e->field;
        e->field = e->next;
        e->next = t;
    }
    e->step++;
    if (m->ops->commit_memory != NULL) m->ops->commit_memory(m->ctx);
    return ATH_OK;
}

const ath_cf32 *ath_dense_state(const ath_dense_engine *e) { return e ? e->field : NULL; }

ath_status ath_dense_set_state(ath_dense_engine *e, const ath_cf32 *field, ath_error *err) {
    size_t n, i;
    if (e == NULL || field == NULL) return ath_error_set(err, ATH_ERR_INVALID, "set_state: NULL argument");
    n = (size_t)(e->cfg.grid_size * e->cfg.grid_size * e->cfg.d_state);
    for (i = 0; i < n; i++)
        if (!isfinite(field[i].re) || !isfinite(field[i].im))
            return ath_error_set(err, ATH_ERR_NONFINITE,
                                 "set_state: non-finite value (NaN or Inf) at element %zu", i);
    memcpy(e->field, field, n * sizeof(ath_cf32));
    return ATH_OK;
}

int64_t ath_dense_step_count(const ath_dense_engine *e) { return e ? e->step : 0; }

ath_status ath_dense_set_step_count(ath_dense_engine *e, int64_t step, ath_error *err) {
    if (e == NULL) return ath_error_set(err, ATH_ERR_INVALID, "dense engine: NULL");
    if (step < 0) return ath_error_set(err, ATH_ERR_INVALID, "step count must be >= 0, got %lld", (long long)step);
    e->step = step;
    return ATH_OK;
}

void ath_dense_reset(ath_dense_engine *e) {
    if (e == NULL) return;
    fill_vacuum(e);
    e->step = 0;
    if (e->model != NULL && e->model->ops->reset_memory != NULL)
        e->model->ops->reset_memory(e->model->ctx);
}

/* ---------------------------------------------------------------- tools */

ath_status ath_dense_apply_tool(ath_dense_engine *e, ath_tool tool, const ath_tool_params *p,
                                ath_error *err) {
    const int64_t g = e != NULL ? e->cfg.grid_size : 0, d = e != NULL ? e->cfg.d_state : 0;
    int64_t y0, y1, x0, x1, y;
    double r2;
    int bad = 0;

    if (e == NULL || p == NULL) return ath_error_set(err, ATH_ERR_INVALID, "apply_tool: NULL argument");
    if (tool != ATH_TOOL_COLLAPSE && tool != ATH_TOOL_VORTEX && tool != ATH_TOOL_WAVE)
        return ath_error_set(err, ATH_ERR_INVALID, "apply_tool: unknown tool %d", (int)tool);
    if (!isfinite(p->x) || !isfinite(p->y) || !isfinite(p->radius) || !isfinite(p->strength) ||
        !isfinite(p->angle))
        return ath_error_set(err, ATH_ERR_INVALID, "apply_tool: parameters must be finite");
    if (p->radius <= 0.0)
        return ath_error_set(err, ATH_ERR_INVALID, "apply_tool: radius must be > 0, got %g", p->radius);
    if (tool == ATH_TOOL_COLLAPSE && (p->strength < 0.0 || p->strength > 1.0))
        return ath_error_set(err, ATH_ERR_INVALID,
                             "apply_tool: collapse strength must be in [0, 1], got %g", p->strength);
    r2 = p->radius * p->radius;
    /* bounding box of the disc, clipped to the grid (in double: x, radius may be huge) */
    {
        const double gm = (double)(g - 1);
        const double fy0 = fmax(0.0, ceil(p->y - p->radius)), fy1 = fmin(gm, floor(p->y + p->radius));
        const double fx0 = fmax(0.0, ceil(p->x - p->radius)), fx1 = fmin(gm, floor(p->x + p->radius));
        if (fy0 > fy1 || fx0 > fx1) return ATH_OK;
        y0 = (int64_t)fy0;
        y1 = (int64_t)fy1 + 1;
        x0 = (int64_t)fx0;
        x1 = (int64_t)fx1 + 1;
    }
    if (y0 >= y1 || x0 >= x1) return ATH_OK;
    /* work on a copy (next), commit only if every new value is finite */
    memcpy(e->next, e->field, (size_t)(g * g * d) * sizeof(ath_cf32));
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(| : bad)
#endif
    for (y = y0; y < y1; y++) {
        int64_t x, k;
        const double dy = (double)y - p->y;
        for (x = x0; x < x1; x++) {
            const double dx = (double)x - p->x;
            ath_cf32 *psi = e->next + (y * g + x) * d;
            if (dx * dx + dy * dy > r2) continue;
            if (tool == ATH_TOOL_COLLAPSE) {
                const double s = p->strength;
                double best = -1.0, n0 = 0.0, n1 = 0.0, scale;
                int64_t kb = 0;
                for (k = 0; k < d; k++) {
                    const double a2 = (double)psi[k].re * psi[k].re + (double)psi[k].im * psi[k].im;
                    const double a = sqrt(a2);
                    n0 += a2;
                    if (a > best) {
                        best = a;
                        kb = k;
                    }
                }
                for (k = 0; k < d; k++) {
                    const double f = k == kb ? 1.0 : 1.0 - s;
                    const double re = f * psi[k].re, im = f * psi[k].im;
                    n1 += re * re + im * im;
                }
                n0 = sqrt(n0);
                n1 = sqrt(n1);
                scale = n1 > 0.0 ? n0 / n1 : 1.0;
                for (k = 0; k < d; k++) {
                    const double f = k == kb ? 1.0 : 1.0 - s;
                    psi[k].re = (float)(f * psi[k].re * scale);
                    psi[k].im = (float)(f * psi[k].im * scale);
                }
            } else {
                const double phase = tool == ATH_TOOL_VORTEX
                                         ? p->strength * atan2(dy, dx)
                                         : p->strength * (dx * cos(p->angle) + dy * sin(p->angle));
                const double c = cos(phase), s = sin(phase);
                if (!isfinite(c) || !isfinite(s)) {
                    bad = 1;
                    continue;
                }
                for (k = 0; k < d; k++) {
                    const double re = psi[k].re, im = psi[k].im;
                    psi[k].re = (float)(re * c - im * s);
                    psi[k].im = (float)(re * s + im * c);
                }
            }
            for (k = 0; k < d; k++)
                if (!isfinite(psi[k].re) || !isfinite(psi[k].im)) bad = 1;
        }
    }
    if (bad)
        return ath_error_set(err, ATH_ERR_NONFINITE,
                             "apply_tool: the parameters produce non-finite values; nothing changed");
    {
        ath_cf32 *t = e->field;
        e->field = e->next;
        e->next = t;
    }
    return ATH_OK;
}
