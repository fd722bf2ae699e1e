/* Allocation-fault injection on the sparse Engine's public entry points.
 *
 * For each entry point (create, add_particles, step on patches and on tiles,
 * to_dense, set_model, activate_neighborhood, visit_matter) the N-th
 * allocation from the call on is made to fail (ath_alloc_fail_after(N)),
 * N = 1, 2, ... until the call succeeds.  Every failing call must return
 * ATH_ERR_NOMEM and leave the engine exactly as it was: the same matter (coords
 * and states in storage order, byte for byte) and the same step count.
 * Prints "N passed, 0 failed" and exits non-zero on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atheria/alloc.h"
#include "atheria/engine.h"
#include "atheria/model.h"

#include "check.h"

/* No entry point needs more allocations than this. */
#define MAX_FAULTS 400

typedef struct snapshot {
    size_t n;
    int64_t step;
    ath_coord *coords;
    ath_cf32 *states;
} snapshot;

static void snap_take(const ath_engine *e, snapshot *s) {
    const ath_cellmap *m = ath_engine_matter(e);
    const size_t d = (size_t)ath_engine_get_config(e)->d_state;
    s->n = ath_cellmap_size(m);
    s->step = ath_engine_step_count(e);
    s->coords = (ath_coord *)malloc((s->n + 1) * sizeof(ath_coord));
    s->states = (ath_cf32 *)malloc((s->n + 1) * d * sizeof(ath_cf32));
    if (s->n > 0) {
        memcpy(s->coords, ath_cellmap_coords(m), s->n * sizeof(ath_coord));
        memcpy(s->states, ath_cellmap_states(m), s->n * d * sizeof(ath_cf32));
    }
}

static int snap_same(const ath_engine *e, const snapshot *s) {
    const ath_cellmap *m = ath_engine_matter(e);
    const size_t d = (size_t)ath_engine_get_config(e)->d_state;
    if (ath_cellmap_size(m) != s->n || ath_engine_step_count(e) != s->step) return 0;
    if (s->n == 0) return 1;
    return memcmp(s->coords, ath_cellmap_coords(m), s->n * sizeof(ath_coord)) == 0 &&
           memcmp(s->states, ath_cellmap_states(m), s->n * d * sizeof(ath_cf32)) == 0;
}

static void snap_free(snapshot *s) {
    free(s->coords);
    free(s->states);
}

static uint64_t g_rng = 0xFA17ULL;
static float frand(void) {
    g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((g_rng >> 40) & 0xFFFFFF) / (float)0x800000 - 1.0f;
}

/* An engine with `n` matter cells in a blob around the origin. */
static ath_engine *make_engine(ath_engine_config *cfg, size_t n) {
    ath_engine *e = NULL;
    ath_coord *cs = (ath_coord *)malloc(n * sizeof *cs);
    ath_cf32 *vs = (ath_cf32 *)malloc(n * (size_t)cfg->d_state * sizeof *vs);
    size_t i, side = 1;
    while (side * side < n) side++;
    for (i = 0; i < n; i++) cs[i] = ath_coord_make((int64_t)(i % side) + 3, (int64_t)(i / side) + 3, 0);
    for (i = 0; i < n * (size_t)cfg->d_state; i++) {
        vs[i].re = frand();
        vs[i].im = frand();
    }
    if (ath_engine_create(cfg, &e, NULL) != ATH_OK || ath_engine_add_particles(e, n, cs, vs, NULL) != ATH_OK) {
        ath_engine_destroy(e);
        e = NULL;
    }
    free(cs);
    free(vs);
    return e;
}

/* The operations under test: each returns the call's status. */
typedef enum op_kind {
    OP_ADD,
    OP_STEP,
    OP_TO_DENSE,
    OP_SET_MODEL,
    OP_ACTIVATE,
    OP_VISIT
} op_kind;

typedef struct op_args {
    ath_model *model;
    int accepts_tiles;
} op_args;

static ath_status count_cells(void *ctx, const ath_coord *c, const ath_cf32 *s, size_t n, ath_error *err) {
    (void)c;
    (void)s;
    (void)err;
    *(size_t *)ctx += n;
    return ATH_OK;
}

static ath_status run_op(ath_engine *e, op_kind op, const op_args *a, ath_error *err) {
    const int64_t d = ath_engine_get_config(e)->d_state;
    switch (op) {
    case OP_ADD: {
        /* some new cells, some overwrites */
        ath_coord cs[300];
        ath_cf32 vs[300 * 4];
        size_t i;
        for (i = 0; i < 300; i++) cs[i] = ath_coord_make((int64_t)i - 40, 5, 0);
        for (i = 0; i < 300 * (size_t)d; i++) vs[i].re = vs[i].im = 0.25f;
        return ath_engine_add_particles(e, 300, cs, vs, err);
    }
    case OP_STEP:
        return ath_engine_step(e, NULL, err);
    case OP_TO_DENSE: {
        ath_cf32 *out = (ath_cf32 *)malloc((size_t)(40 * 40 * d) * sizeof *out);
        ath_status st = ath_engine_to_dense(e, -5, -5, 35, 35, 0, out, err);
        free(out);
        return st;
    }
    case OP_SET_MODEL:
        return ath_engine_set_model_ex(e, a->model, a->accepts_tiles, err);
    case OP_ACTIVATE:
        return ath_engine_activate_neighborhood(e, ath_coord_make(10, 10, 0), 30, err);
    case OP_VISIT: {
        size_t n = 0;
        ath_roi roi = {0, 0, 20, 20, 0};
        return ath_engine_visit_matter(e, &roi, count_cells, &n, err);
    }
    }
    return ATH_ERR_INVALID;
}

/* N = 1, 2, ... until op succeeds; each failure must be NOMEM and change nothing. */
static void fault_sweep(const char *name, ath_engine_config *cfg, size_t n0, op_kind op, const op_args *a) {
    ath_engine *e = make_engine(cfg, n0);
    snapshot before;
    long n;
    int succeeded = 0, failures = 0, all_nomem = 1, all_same = 1;
    CHECK(e != NULL, "%s: engine", name);
    if (e == NULL) return;
    if (a->model != NULL) CHECK(ath_engine_set_model_ex(e, a->model, a->accepts_tiles, NULL) == ATH_OK, "%s", name);
    snap_take(e, &before);
    for (n = 1; n <= MAX_FAULTS && !succeeded; n++) {
        ath_error err;
        ath_status st;
        ath_error_clear(&err);
        ath_alloc_fail_after(n);
        st = run_op(e, op, a, &err);
        ath_alloc_fail_after(0);
        if (st == ATH_OK) {
            succeeded = 1;
            break;
        }
        failures++;
        if (st != ATH_ERR_NOMEM) {
            all_nomem = 0;
            printf("  %s: fault at allocation %ld returned %s: %s\n", name, n, ath_status_name(st), err.message);
        }
        if (!snap_same(e, &before)) {
            all_same = 0;
            printf("  %s: fault at allocation %ld changed the engine\n", name, n);
        }
    }
    printf("%-28s %d injected failures before success\n", name, failures);
    CHECK(succeeded, "%s: succeeds within %d allocations", name, MAX_FAULTS);
    CHECK(failures > 0 || op == OP_TO_DENSE || op == OP_SET_MODEL, "%s: the call allocates, so faults were injected",
          name);
    CHECK(all_nomem, "%s: every injected failure returns ATH_ERR_NOMEM (%d failures)", name, failures);
    CHECK(all_same, "%s: every injected failure leaves the engine unchanged", name);
    snap_free(&before);
    ath_engine_destroy(e);
}

static void test_create_faults(void) {
    ath_engine_config cfg;
    long n;
    int ok = 0, all_nomem = 1, out_null = 1;
    ath_engine_config_default(&cfg, 4);
    for (n = 1; n <= MAX_FAULTS; n++) {
        ath_engine *e = NULL;
        ath_status st;
        ath_alloc_fail_after(n);
        st = ath_engine_create(&cfg, &e, NULL);
        ath_alloc_fail_after(0);
        if (st == ATH_OK) {
            ok = 1;
            ath_engine_destroy(e);
            break;
        }
        if (st != ATH_ERR_NOMEM) all_nomem = 0;
        if (e != NULL) out_null = 0;
    }
    CHECK(ok, "create succeeds eventually");
    CHECK(all_nomem, "create: every injected failure is NOMEM");
    CHECK(out_null, "create: a failed create writes no engine");
}

int main(void) {
    ath_engine_config cfg;
    ath_model *zero = NULL, *conv = NULL;
    op_args none = {NULL, -1}, zpatch, ztile, cpatch;
    test_create_faults();
    CHECK(ath_model_zero_create(8, &zero, NULL) == ATH_OK, "zero model");
    {
        /* a 3x3 conv 8 -> 8 with small weights: receptive radius 1 */
        static float w[8 * 8 * 9], b[8];
        size_t i;
        ath_conv_layer_spec spec;
        for (i = 0; i < sizeof w / sizeof *w; i++) w[i] = 0.05f * frand();
        for (i = 0; i < 8; i++) b[i] = 0.0f;
        memset(&spec, 0, sizeof spec);
        spec.in_channels = 8;
        spec.out_channels = 8;
        spec.kernel = 3;
        spec.weight = w;
        spec.bias = b;
        CHECK(ath_model_conv_create(1, &spec, ATH_ACT_IDENTITY, &conv, NULL) == ATH_OK, "conv model");
    }
    zpatch.model = zero;
    zpatch.accepts_tiles = 0;
    ztile.model = zero;
    ztile.accepts_tiles = 1;
    cpatch.model = conv;
    cpatch.accepts_tiles = 0;

    ath_engine_config_default(&cfg, 4);
    cfg.patch = 3;
    fault_sweep("add_particles", &cfg, 200, OP_ADD, &none);
    fault_sweep("to_dense", &cfg, 200, OP_TO_DENSE, &none);
    fault_sweep("set_model", &cfg, 200, OP_SET_MODEL, &zpatch);
    fault_sweep("activate_neighborhood", &cfg, 200, OP_ACTIVATE, &none);
    fault_sweep("visit_matter", &cfg, 200, OP_VISIT, &none);
    /* vacuum background: every evaluated cell is kept, the matter grows (full commit) */
    fault_sweep("step (patches, vacuum)", &cfg, 5000, OP_STEP, &zpatch);
    fault_sweep("step (tiles, vacuum)", &cfg, 5000, OP_STEP, &ztile);
    fault_sweep("step (conv patches, vacuum)", &cfg, 500, OP_STEP, &cpatch);
    cfg.background = ATH_BACKGROUND_ZERO;
    fault_sweep("step (tiles, zero)", &cfg, 5000, OP_STEP, &ztile);
    cfg.extent = ATH_EXTENT_PERIODIC;
    cfg.grid_size = 128;
    cfg.patch = 5;
    fault_sweep("step (patches, periodic)", &cfg, 3000, OP_STEP, &zpatch);
    ath_model_destroy(zero);
    ath_model_destroy(conv);
    return check_summary();
}
