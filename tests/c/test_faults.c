/* Allocation-fault injection, as SQLite tests it: for each public entry point
 * of sparse_map, vacuum, dense_engine and model, make the N-th allocation from
 * the call on fail (ath_alloc_fail_after), for N = 1, 2, ... until the call
 * succeeds, and check that every failure returns ATH_ERR_NOMEM and leaves the
 * object exactly as it was (contents compared with a snapshot).
 *
 * The sparse Engine's entry points are swept in tests/c/test_engine_faults.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "atheria/alloc.h"
#include "atheria/dense_engine.h"
#include "atheria/model.h"
#include "atheria/sparse_map.h"
#include "atheria/vacuum.h"
#include "check.h"

/* an upper bound on the allocations one call makes here */
#define MAX_N 10000

static long g_sweeps = 0, g_faults = 0;

/* injected failures per entry point, for the coverage summary */
static struct { const char *what; long calls, faults; } g_table[64];
static int g_ntable = 0;
static void tally(const char *what, long faults) {
    int i;
    for (i = 0; i < g_ntable; i++)
        if (strcmp(g_table[i].what, what) == 0) break;
    if (i == g_ntable && g_ntable < 64) g_table[g_ntable++].what = what;
    if (i < 64) {
        g_table[i].calls++;
        g_table[i].faults += faults;
    }
}

/* ------------------------------------------------------------ snapshots */

typedef struct {
    size_t n;
    int64_t d;
    ath_coord *coords;
    ath_cf32 *states;
} cell_snap;

static cell_snap cell_take(const ath_cellmap *m) {
    cell_snap s;
    s.n = ath_cellmap_size(m);
    s.d = ath_cellmap_d_state(m);
    s.coords = (ath_coord *)malloc((s.n + 1) * sizeof *s.coords);
    s.states = (ath_cf32 *)malloc((s.n * (size_t)s.d + 1) * sizeof *s.states);
    if (s.n > 0) {
        memcpy(s.coords, ath_cellmap_coords(m), s.n * sizeof *s.coords);
        memcpy(s.states, ath_cellmap_states(m), s.n * (size_t)s.d * sizeof *s.states);
    }
    return s;
}

/* 1 if m holds exactly the snapshot (same order, same bits) and every lookup works */
static int cell_same(const ath_cellmap *m, const cell_snap *s) {
    size_t i;
    ath_error err;
    if (ath_cellmap_size(m) != s->n || ath_cellmap_d_state(m) != s->d) return 0;
    if (s->n > 0 && (memcmp(ath_cellmap_coords(m), s->coords, s->n * sizeof *s->coords) != 0 ||
                     memcmp(ath_cellmap_states(m), s->states, s->n * (size_t)s->d * sizeof *s->states) != 0))
        return 0;
    for (i = 0; i < s->n; i++)
        if (ath_cellmap_find(m, s->coords[i]) != (ptrdiff_t)i) return 0;
    return ath_cellmap_validate(m, &err) == ATH_OK;
}

static void cell_free(cell_snap *s) {
    free(s->coords);
    free(s->states);
}

typedef struct {
    size_t n;
    int64_t *keys;
    double *values;
} scalar_snap;

static scalar_snap scalar_take(const ath_scalarmap *m) {
    scalar_snap s;
    s.n = ath_scalarmap_size(m);
    s.keys = (int64_t *)malloc((s.n + 1) * sizeof *s.keys);
    s.values = (double *)malloc((s.n + 1) * sizeof *s.values);
    if (s.n > 0) {
        memcpy(s.keys, ath_scalarmap_keys(m), s.n * sizeof *s.keys);
        memcpy(s.values, ath_scalarmap_values(m), s.n * sizeof *s.values);
    }
    return s;
}

static int scalar_same(const ath_scalarmap *m, const scalar_snap *s) {
    size_t i;
    if (ath_scalarmap_size(m) != s->n) return 0;
    if (s->n > 0 && (memcmp(ath_scalarmap_keys(m), s->keys, s->n * sizeof *s->keys) != 0 ||
                     memcmp(ath_scalarmap_values(m), s->values, s->n * sizeof *s->values) != 0))
        return 0;
    for (i = 0; i < s->n; i++) {
        double v;
        if (!ath_scalarmap_get(m, s->keys[i], &v) || memcmp(&v, &s->values[i], sizeof v) != 0) return 0;
    }
    return 1;
}

static void scalar_free(scalar_snap *s) {
    free(s->keys);
    free(s->values);
}

/* ------------------------------------------------------------ the sweep */

/* Runs `call` with the N-th allocation failing, N = 1, 2, ... until it
 * succeeds; after each failure checks the status and `same` (the object is as
 * before).  Returns the status of the final (fault-free) call. */
#define SWEEP(what, call, same)                                                                    \
    do {                                                                                           \
        long n_, inj_, before_ = g_faults;                                                         \
        ath_status st_ = ATH_OK;                                                                   \
        g_sweeps++;                                                                                \
        for (n_ = 1; n_ <= MAX_N; n_++) {                                                          \
            ath_error err_;                                                                        \
            ath_error *err = &err_;                                                                \
            ath_error_clear(err);                                                                  \
            ath_alloc_fail_after(n_);                                                              \
            st_ = (call);                                                                          \
            inj_ = ath_alloc_injected_failures(); /* before disarming, which resets it */          \
            ath_alloc_fail_after(0);                                                               \
            /* done when the call needed fewer than N allocations (or absorbed a failure,  */     \
            /* e.g. of an optional cache, and still succeeded) */                                  \
            if (st_ == ATH_OK) break;                                                              \
            CHECK(inj_ > 0, "%s: N=%ld failed without an injected fault: %s", what, n_, err_.message); \
            g_faults++;                                                                            \
            CHECK(st_ == ATH_ERR_NOMEM, "%s: N=%ld returned %s (%s)", what, n_, ath_status_name(st_), \
                  err_.message);                                                                   \
            CHECK(same, "%s: N=%ld changed the object", what, n_);                                 \
        }                                                                                          \
        tally(what, g_faults - before_);                                                           \
        CHECK(n_ <= MAX_N, "%s: never succeeded", what);                                           \
        CHECK(st_ == ATH_OK, "%s: final call failed: %s", what, ath_status_name(st_));             \
    } while (0)

static ath_coord C(int64_t x, int64_t y, int64_t z) {
    ath_coord c = {x, y, z};
    return c;
}

static void fill_state(ath_cf32 *s, int64_t d, int64_t k) {
    int64_t j;
    for (j = 0; j < d; j++) {
        s[j].re = (float)(k * 10 + j) + 0.25f;
        s[j].im = -(float)k - 0.5f * (float)j;
    }
}

/* -------------------------------------------------------------- cell map */

static void test_cellmap(void) {
    const int64_t d = 3;
    ath_cellmap *m = NULL;
    ath_error e0;
    int64_t k;
    ath_cf32 st[3];

    /* create: a failure leaves *out NULL */
    SWEEP("cellmap_create", ath_cellmap_create(d, &m, err), m == NULL);
    CHECK(m != NULL && ath_cellmap_size(m) == 0, "create");

    /* insert one cell at a time: crosses every growth of the table and arrays */
    for (k = 0; k < 300; k++) {
        cell_snap s = cell_take(m);
        fill_state(st, d, k);
        SWEEP("cellmap_set(new)", ath_cellmap_set(m, C(k * 7 - 900, k % 13, k % 3), st, err), cell_same(m, &s));
        cell_free(&s);
    }
    CHECK(ath_cellmap_size(m) == 300, "size %zu", ath_cellmap_size(m));

    /* overwrite: no allocation expected, still all-or-nothing */
    {
        cell_snap s = cell_take(m);
        fill_state(st, d, 999);
        SWEEP("cellmap_set(overwrite)", ath_cellmap_set(m, C(-900, 0, 0), st, err), cell_same(m, &s));
        cell_free(&s);
    }

    /* set_many: new cells, existing cells and duplicates in one batch */
    {
        enum { N = 700 };
        ath_coord *cs = (ath_coord *)malloc(N * sizeof *cs);
        ath_cf32 *vs = (ath_cf32 *)malloc(N * (size_t)d * sizeof *vs);
        int i;
        cell_snap s = cell_take(m);
        for (i = 0; i < N; i++) {
            cs[i] = i % 5 == 0 ? C((i % 300) * 7 - 900, (i % 300) % 13, (i % 300) % 3) : C(5000 + i / 2, -i, 1);
            fill_state(vs + (size_t)i * d, d, 2000 + i);
        }
        SWEEP("cellmap_set_many", ath_cellmap_set_many(m, N, cs, vs, err), cell_same(m, &s));
        cell_free(&s);
        free(cs);
        free(vs);
    }

    /* reserve: capacity only, contents unchanged either way */
    {
        cell_snap s = cell_take(m);
        SWEEP("cellmap_reserve", ath_cellmap_reserve(m, 100000, err), cell_same(m, &s));
        CHECK(cell_same(m, &s), "reserve changed the contents");
        cell_free(&s);
    }

    /* remove (no allocation) and re-insert after removals */
    for (k = 0; k < 50; k++) {
        cell_snap s;
        CHECK(ath_cellmap_remove(m, C(k * 7 - 900, k % 13, k % 3)) == 1, "remove %lld", (long long)k);
        s = cell_take(m);
        fill_state(st, d, 3000 + k);
        SWEEP("cellmap_set(after remove)", ath_cellmap_set(m, C(-k, -k, -k), st, err), cell_same(m, &s));
        cell_free(&s);
    }
    CHECK(ath_cellmap_validate(m, &e0) == ATH_OK, "validate: %s", e0.message);

    /* clear keeps the map usable; inserts after it sweep again */
    ath_cellmap_clear(m);
    for (k = 0; k < 40; k++) {
        cell_snap s = cell_take(m);
        fill_state(st, d, k);
        SWEEP("cellmap_set(after clear)", ath_cellmap_set(m, C(k, k, 0), st, err), cell_same(m, &s));
        cell_free(&s);
    }
    ath_cellmap_destroy(m);
}

/* ------------------------------------------------------------ scalar map */

static void test_scalarmap(void) {
    ath_scalarmap *m = NULL;
    int64_t k;
    SWEEP("scalarmap_create", ath_scalarmap_create(&m, err), m == NULL);
    CHECK(m != NULL, "create");
    for (k = 0; k < 300; k++) {
        scalar_snap s = scalar_take(m);
        SWEEP("scalarmap_set(new)", ath_scalarmap_set(m, k * 1000003 - 77, (double)k / 3.0, err), scalar_same(m, &s));
        scalar_free(&s);
    }
    for (k = 0; k < 60; k++) {
        scalar_snap s;
        CHECK(ath_scalarmap_remove(m, k * 1000003 - 77) == 1, "remove");
        s = scalar_take(m);
        SWEEP("scalarmap_set(after remove)", ath_scalarmap_set(m, -k - 1, -1.5, err), scalar_same(m, &s));
        scalar_free(&s);
    }
    {
        scalar_snap s = scalar_take(m);
        SWEEP("scalarmap_set(overwrite)", ath_scalarmap_set(m, -1, 2.5, err), scalar_same(m, &s));
        scalar_free(&s);
    }
    CHECK(ath_scalarmap_size(m) == 300, "size %zu", ath_scalarmap_size(m));
    ath_scalarmap_destroy(m);
}

/* ---------------------------------------------------------------- vacuum */

static void test_vacuum(void) {
    ath_vacuum v;
    enum { H = 5, W = 7, D = 4 };
    ath_cf32 out[H * W * D], ref[H * W * D];
    ath_coord cs[3] = {{1, 2, 3}, {-5, 0, 1}, {ATH_COORD_LIMIT, -ATH_COORD_LIMIT, 0}};
    ath_cf32 co[3 * D], cref[3 * D];
    ath_error err0;
    CHECK(ath_vacuum_init(&v, D, 42, 0.1, &err0) == ATH_OK, "init");
    CHECK(ath_vacuum_region(&v, -3, -2, W - 3, H - 2, 1, 5, ref, &err0) == ATH_OK, "region");
    SWEEP("vacuum_region", ath_vacuum_region(&v, -3, -2, W - 3, H - 2, 1, 5, out, err), 1);
    CHECK(memcmp(out, ref, sizeof out) == 0, "region differs after the sweep");
    CHECK(ath_vacuum_cells(&v, 3, cs, 5, cref, &err0) == ATH_OK, "cells");
    SWEEP("vacuum_cells", ath_vacuum_cells(&v, 3, cs, 5, co, err), 1);
    CHECK(memcmp(co, cref, sizeof co) == 0, "cells differ after the sweep");
}

/* ---------------------------------------------------------------- models */

static ath_model *make_conv(int64_t ch, ath_error *err, ath_status *st) {
    static float w1[6 * 4 * 3 * 3], b1[6], w2[4 * 6 * 1 * 1];
    ath_conv_layer_spec layers[2];
    ath_model *m = NULL;
    size_t i;
    for (i = 0; i < sizeof w1 / sizeof *w1; i++) w1[i] = (float)((int)(i % 7) - 3) * 0.05f;
    for (i = 0; i < sizeof b1 / sizeof *b1; i++) b1[i] = 0.01f * (float)i;
    for (i = 0; i < sizeof w2 / sizeof *w2; i++) w2[i] = (float)((int)(i % 5) - 2) * 0.1f;
    layers[0].out_channels = 6;
    layers[0].in_channels = ch;
    layers[0].kernel = 3;
    layers[0].weight = w1;
    layers[0].bias = b1;
    layers[1].out_channels = ch;
    layers[1].in_channels = 6;
    layers[1].kernel = 1;
    layers[1].weight = w2;
    layers[1].bias = NULL;
    *st = ath_model_conv_create(2, layers, ATH_ACT_TANH, &m, err);
    return m;
}

static ath_status conv_create_call(ath_model **out, ath_error *err) {
    ath_status st;
    *out = make_conv(4, err, &st);
    return st;
}

static void test_models(void) {
    ath_model *z = NULL, *c = NULL;
    enum { B = 2, CH = 4, H = 5, W = 6 };
    static float in[B * CH * H * W], out[B * CH * H * W], ref[B * CH * H * W];
    int64_t shape[4] = {B, CH, H, W};
    ath_out_layout lay;
    ath_error err0;
    size_t i;
    SWEEP("model_zero_create", ath_model_zero_create(CH, &z, err), z == NULL);
    SWEEP("model_conv_create", conv_create_call(&c, err), c == NULL);
    CHECK(z != NULL && c != NULL, "models");
    for (i = 0; i < sizeof in / sizeof *in; i++) in[i] = sinf((float)i * 0.37f);
    CHECK(ath_model_forward(c, in, shape, ref, 0, &lay, &err0) == ATH_OK, "forward: %s", err0.message);
    SWEEP("model_forward(conv)", ath_model_forward(c, in, shape, out, 0, &lay, err), 1);
    CHECK(memcmp(out, ref, sizeof out) == 0, "forward differs after the sweep");
    SWEEP("model_forward(conv, centre)", ath_model_forward(c, in, shape, out, 1, &lay, err), 1);
    SWEEP("model_forward(zero)", ath_model_forward(z, in, shape, out, 0, &lay, err), 1);
    ath_model_destroy(z);
    ath_model_destroy(c);
}

/* ---------------------------------------------------------- dense engine */

typedef struct {
    int64_t step;
    size_t n;
    ath_cf32 *psi;
    ath_model *model;
} dense_snap;

static dense_snap dense_take(const ath_dense_engine *e) {
    dense_snap s;
    const ath_dense_config *c = ath_dense_get_config(e);
    s.n = (size_t)(c->grid_size * c->grid_size * c->d_state);
    s.psi = (ath_cf32 *)malloc(s.n * sizeof *s.psi);
    memcpy(s.psi, ath_dense_state(e), s.n * sizeof *s.psi);
    s.step = ath_dense_step_count(e);
    s.model = ath_dense_get_model(e);
    return s;
}

static int dense_same(const ath_dense_engine *e, const dense_snap *s) {
    return ath_dense_step_count(e) == s->step && ath_dense_get_model(e) == s->model &&
           memcmp(ath_dense_state(e), s->psi, s->n * sizeof *s->psi) == 0;
}

static void test_dense(int periodic) {
    ath_dense_config cfg;
    ath_dense_engine *e = NULL;
    ath_model *conv, *zero = NULL;
    ath_status st;
    ath_error err0;
    ath_tool_params p = {6.0, 5.0, 3.0, 0.5, 0.3};
    int t;
    ath_dense_config_default(&cfg, 12, 2);
    cfg.periodic = periodic;
    cfg.gamma_decay = 0.01;
    SWEEP("dense_create", ath_dense_create(&cfg, &e, err), e == NULL);
    CHECK(e != NULL, "dense_create");
    conv = make_conv(4, &err0, &st);
    CHECK(st == ATH_OK, "conv: %s", err0.message);
    CHECK(ath_model_zero_create(4, &zero, &err0) == ATH_OK, "zero");
    {
        dense_snap s = dense_take(e);
        SWEEP("dense_set_model", ath_dense_set_model(e, conv, err), dense_same(e, &s));
        free(s.psi);
    }
    for (t = 0; t < 3; t++) {
        dense_snap s = dense_take(e);
        SWEEP("dense_step", ath_dense_step(e, err), dense_same(e, &s));
        free(s.psi);
    }
    CHECK(ath_dense_step_count(e) == 3, "steps %lld", (long long)ath_dense_step_count(e));
    {
        dense_snap s = dense_take(e);
        ath_cf32 *field = (ath_cf32 *)malloc(s.n * sizeof *field);
        size_t i;
        for (i = 0; i < s.n; i++) {
            field[i].re = (float)i * 0.01f;
            field[i].im = -(float)i * 0.02f;
        }
        SWEEP("dense_set_state", ath_dense_set_state(e, field, err), dense_same(e, &s));
        CHECK(memcmp(ath_dense_state(e), field, s.n * sizeof *field) == 0, "set_state");
        free(field);
        free(s.psi);
    }
    for (t = 0; t < 3; t++) {
        dense_snap s = dense_take(e);
        SWEEP("dense_apply_tool", ath_dense_apply_tool(e, (ath_tool)t, &p, err), dense_same(e, &s));
        free(s.psi);
    }
    {
        dense_snap s = dense_take(e);
        SWEEP("dense_set_model(replace)", ath_dense_set_model(e, zero, err), dense_same(e, &s));
        free(s.psi);
        s = dense_take(e);
        SWEEP("dense_step(zero model)", ath_dense_step(e, err), dense_same(e, &s));
        free(s.psi);
    }
    ath_dense_destroy(e);
    ath_model_destroy(conv);
    ath_model_destroy(zero);
}

int main(void) {
    test_cellmap();
    test_scalarmap();
    test_vacuum();
    test_models();
    test_dense(0);
    test_dense(1);
    {
        int i;
        for (i = 0; i < g_ntable; i++)
            printf("  %-28s %4ld calls swept, %4ld failing allocations checked\n", g_table[i].what,
                   g_table[i].calls, g_table[i].faults);
    }
    printf("fault sweeps: %ld entry-point calls, %ld injected failures checked\n", g_sweeps, g_faults);
    return check_summary();
}
