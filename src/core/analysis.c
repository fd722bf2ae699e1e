/* Per-step analysis of a field (atheria/analysis.h): two passes over the
 * analysed cells, the first for the sums and the largest cell energy (the
 * histogram's range), the second for the histogram counts. */
#include "atheria/analysis.h"

#include "atheria/alloc.h"

#include <math.h>
#include <string.h>

typedef struct acc {
    int64_t d;
    ath_analysis *a;
    double *ce;
    double sre, sim;
    int64_t nphase;
    double emax;
    int pass;
} acc;

static double cell_energy(const ath_cf32 *s, int64_t d) {
    double e = 0.0;
    int64_t k;
    for (k = 0; k < d; k++) e += (double)s[k].re * s[k].re + (double)s[k].im * s[k].im;
    return e;
}

/* numpy.histogram's bin of v for equal bins on [edges[0], edges[n]]: the
 * scaled index, then the corrections against the edges it uses. */
static int64_t bin_of(const ath_analysis *a, double v, double norm) {
    const int64_t n = ATH_ANALYSIS_BINS;
    int64_t i;
    if (v < a->hist_edges[0] || v > a->hist_edges[n]) return -1;
    i = (int64_t)((v - a->hist_edges[0]) * norm);
    if (i >= n) i = n - 1;
    if (i < 0) i = 0;
    if (v < a->hist_edges[i] && i > 0) i--;
    else if (i + 1 < n && v >= a->hist_edges[i + 1]) i++;
    return i;
}

static void add_cells(acc *c, const ath_coord *coords, const ath_cf32 *states, size_t n,
                      int64_t x0, int64_t y, int dense_row) {
    ath_analysis *a = c->a;
    const int64_t d = c->d;
    size_t i;
    if (c->pass == 2) {
        const double norm = (double)ATH_ANALYSIS_BINS / (a->hist_edges[ATH_ANALYSIS_BINS] - a->hist_edges[0]);
        for (i = 0; i < n; i++) {
            const int64_t b = bin_of(a, cell_energy(states + i * (size_t)d, d), norm);
            if (b >= 0) a->hist_counts[b]++;
        }
        return;
    }
    for (i = 0; i < n; i++) {
        const ath_cf32 *s = states + i * (size_t)d;
        const int64_t cx = dense_row ? x0 + (int64_t)i : coords[i].x;
        const int64_t cy = dense_row ? y : coords[i].y;
        double e = 0.0, m;
        int64_t k;
        for (k = 0; k < d; k++) {
            const double ek = (double)s[k].re * s[k].re + (double)s[k].im * s[k].im;
            c->ce[k] += ek;
            e += ek;
        }
        a->energy += e;
        if (e > c->emax) c->emax = e;
        m = hypot((double)s[0].re, (double)s[0].im);
        if (m > 0.0) {
            c->sre += (double)s[0].re / m;
            c->sim += (double)s[0].im / m;
            c->nphase++;
        }
        if (a->matter_count == 0) {
            a->bbox[0] = cx;
            a->bbox[1] = cy;
            a->bbox[2] = cx + 1;
            a->bbox[3] = cy + 1;
        } else {
            if (cx < a->bbox[0]) a->bbox[0] = cx;
            if (cy < a->bbox[1]) a->bbox[1] = cy;
            if (cx + 1 > a->bbox[2]) a->bbox[2] = cx + 1;
            if (cy + 1 > a->bbox[3]) a->bbox[3] = cy + 1;
        }
        a->matter_count++;
    }
}

static ath_status visit(void *ctx, const ath_coord *coords, const ath_cf32 *states, size_t n, ath_error *err) {
    (void)err;
    add_cells((acc *)ctx, coords, states, n, 0, 0, 0);
    return ATH_OK;
}

static void start(acc *c, ath_analysis *out, double *ce, int64_t d) {
    memset(out, 0, sizeof *out);
    memset(ce, 0, (size_t)d * sizeof *ce);
    memset(c, 0, sizeof *c);
    c->d = d;
    c->a = out;
    c->ce = ce;
    c->pass = 1;
}

/* After pass 1: the phase numbers and the histogram edges (numpy.linspace). */
static void middle(acc *c) {
    ath_analysis *a = c->a;
    const double hi = c->emax > 0.0 ? c->emax : 1.0;
    const double step = hi / ATH_ANALYSIS_BINS;
    int i;
    if (c->nphase > 0) {
        const double mr = c->sre / (double)c->nphase, mi = c->sim / (double)c->nphase;
        a->mean_phase = atan2(mi, mr);
        a->phase_coherence = hypot(mr, mi);
    }
    for (i = 0; i < ATH_ANALYSIS_BINS; i++) a->hist_edges[i] = (double)i * step;
    a->hist_edges[ATH_ANALYSIS_BINS] = hi;
    c->pass = 2;
}

/* The matter of a region, gathered once (the region's lookups are the cost;
 * the two passes then run over contiguous copies). */
typedef struct gather {
    size_t n, cap, d;
    ath_coord *c;
    ath_cf32 *s;
} gather;

static ath_status gather_visit(void *ctx, const ath_coord *coords, const ath_cf32 *states, size_t n,
                               ath_error *err) {
    gather *g = (gather *)ctx;
    if (g->n + n > g->cap) {
        size_t cap = g->cap ? g->cap : 1024;
        ath_coord *c;
        ath_cf32 *s;
        while (cap < g->n + n) cap *= 2;
        c = (ath_coord *)ath_realloc(g->c, cap * sizeof *c);
        if (c == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "analyze: out of memory");
        g->c = c;
        s = (ath_cf32 *)ath_realloc(g->s, cap * g->d * sizeof *s);
        if (s == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "analyze: out of memory");
        g->s = s;
        g->cap = cap;
    }
    memcpy(g->c + g->n, coords, n * sizeof *coords);
    memcpy(g->s + g->n * g->d, states, n * g->d * sizeof *states);
    g->n += n;
    return ATH_OK;
}

ath_status ath_analyze_engine(const ath_engine *engine, const ath_roi *roi, ath_analysis *out,
                              double *channel_energy, ath_error *err) {
    acc c;
    ath_status st;
    gather g;
    if (engine == NULL || out == NULL || channel_energy == NULL)
        return ath_error_set(err, ATH_ERR_INVALID, "analyze: NULL argument");
    start(&c, out, channel_energy, ath_engine_get_config(engine)->d_state);
    if (roi == NULL) {   /* all matter: the walk hands out the map's own arrays, no copy */
        st = ath_engine_visit_matter(engine, NULL, visit, &c, err);
        if (st != ATH_OK) return st;
        middle(&c);
        return ath_engine_visit_matter(engine, NULL, visit, &c, err);
    }
    memset(&g, 0, sizeof g);
    g.d = (size_t)c.d;
    st = ath_engine_visit_matter(engine, roi, gather_visit, &g, err);
    if (st == ATH_OK) {
        add_cells(&c, g.c, g.s, g.n, 0, 0, 0);
        middle(&c);
        add_cells(&c, g.c, g.s, g.n, 0, 0, 0);
    }
    ath_free(g.c);
    ath_free(g.s);
    return st;
}

ath_status ath_analyze_dense(const ath_cf32 *field, int64_t h, int64_t w, int64_t d, const ath_roi *roi,
                             ath_analysis *out, double *channel_energy, ath_error *err) {
    acc c;
    int64_t y;
    if (field == NULL || roi == NULL || out == NULL || channel_energy == NULL)
        return ath_error_set(err, ATH_ERR_INVALID, "analyze: NULL argument");
    if (roi->x0 < 0 || roi->y0 < 0 || roi->x1 > w || roi->y1 > h || roi->x1 < roi->x0 || roi->y1 < roi->y0)
        return ath_error_set(err, ATH_ERR_INVALID,
                             "analyze: roi (%lld, %lld, %lld, %lld) must lie within the %lldx%lld grid",
                             (long long)roi->x0, (long long)roi->y0, (long long)roi->x1, (long long)roi->y1,
                             (long long)w, (long long)h);
    start(&c, out, channel_energy, d);
    for (c.pass = 1; c.pass <= 2; c.pass++) {
        if (c.pass == 2) middle(&c);
        for (y = roi->y0; y < roi->y1; y++)
            add_cells(&c, NULL, field + ((size_t)y * (size_t)w + (size_t)roi->x0) * (size_t)d,
                      (size_t)(roi->x1 - roi->x0), roi->x0, y, 1);
    }
    return ATH_OK;
}
