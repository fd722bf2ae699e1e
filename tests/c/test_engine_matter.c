/* Pure-C tests of the sparse Engine's matter primitives: visit_matter (all
 * matter, and a roi), set_step_count, activate_neighborhood bounded by the
 * cells it can touch, and the closed coordinate limit (no step creates a cell
 * beyond ATH_COORD_LIMIT; the cell at the limit can be read and viewed).
 * Prints "N passed, 0 failed" and exits non-zero on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atheria/engine.h"
#include "atheria/model.h"

#include "check.h"

typedef struct collect {
    size_t n, calls;
    ath_coord c[4096];
    ath_cf32 s[4096 * 2];
    int stop_after; /* > 0: return ATH_ERR_INVALID at that call */
} collect;

static ath_status collect_cells(void *ctx, const ath_coord *coords, const ath_cf32 *states, size_t n,
                                ath_error *err) {
    collect *k = (collect *)ctx;
    size_t i;
    k->calls++;
    if (k->stop_after > 0 && (int)k->calls == k->stop_after)
        return ath_error_set(err, ATH_ERR_INVALID, "stop");
    for (i = 0; i < n && k->n < 4096; i++, k->n++) {
        k->c[k->n] = coords[i];
        k->s[2 * k->n] = states[2 * i];
        k->s[2 * k->n + 1] = states[2 * i + 1];
    }
    return ATH_OK;
}

static void test_visit_matter(void) {
    ath_engine_config cfg;
    ath_engine *e = NULL;
    ath_coord cs[100];
    ath_cf32 vs[200];
    collect *k = (collect *)calloc(1, sizeof *k);
    ath_roi roi = {2, 3, 5, 7, 0};
    size_t i, inside = 0, seen_ok = 1;
    ath_error err;
    ath_engine_config_default(&cfg, 2);
    CHECK(ath_engine_create(&cfg, &e, NULL) == ATH_OK, "create");
    for (i = 0; i < 100; i++) {
        cs[i] = ath_coord_make((int64_t)(i % 10), (int64_t)(i / 10), (int64_t)(i % 3 == 0));
        vs[2 * i].re = (float)i;
        vs[2 * i].im = 0.5f;
        vs[2 * i + 1].re = -(float)i;
        vs[2 * i + 1].im = 0.25f;
        if (cs[i].z == 0 && cs[i].x >= 2 && cs[i].x < 5 && cs[i].y >= 3 && cs[i].y < 7) inside++;
    }
    CHECK(ath_engine_add_particles(e, 100, cs, vs, NULL) == ATH_OK, "add");
    CHECK(ath_engine_visit_matter(e, NULL, collect_cells, k, NULL) == ATH_OK, "visit all");
    CHECK(k->n == 100, "visit all: %zu cells", k->n);
    for (i = 0; i < k->n; i++) {
        const size_t j = (size_t)k->s[2 * i].re;
        if (j >= 100 || !ath_coord_equal(cs[j], k->c[i]) || k->s[2 * i + 1].re != -(float)j) seen_ok = 0;
    }
    CHECK(seen_ok, "visit all: each coordinate comes with its own state");
    memset(k, 0, sizeof *k);
    CHECK(ath_engine_visit_matter(e, &roi, collect_cells, k, NULL) == ATH_OK, "visit roi");
    CHECK(k->n == inside, "visit roi: %zu cells, expected %zu", k->n, inside);
    for (i = 0; i < k->n; i++)
        if (k->c[i].z != 0 || k->c[i].x < 2 || k->c[i].x >= 5 || k->c[i].y < 3 || k->c[i].y >= 7) seen_ok = 0;
    CHECK(seen_ok, "visit roi: only cells inside the roi");
    memset(k, 0, sizeof *k);
    k->stop_after = 1;
    ath_error_clear(&err);
    CHECK(ath_engine_visit_matter(e, NULL, collect_cells, k, &err) == ATH_ERR_INVALID, "a visitor's error stops the walk");
    CHECK(k->calls == 1 && strcmp(err.message, "stop") == 0, "stopped after the first call");
    roi.x1 = 1;
    CHECK(ath_engine_visit_matter(e, &roi, collect_cells, k, NULL) == ATH_ERR_INVALID, "inverted roi is invalid");

    CHECK(ath_engine_set_step_count(e, -1, NULL) == ATH_ERR_INVALID, "negative step count");
    CHECK(ath_engine_set_step_count(e, 42, NULL) == ATH_OK && ath_engine_step_count(e) == 42, "set step count");
    {
        /* the vacuum background follows the step count */
        ath_engine *f = NULL;
        ath_cf32 a[2], b[2];
        ath_coord far = ath_coord_make(1000, 1000, 0);
        CHECK(ath_engine_create(&cfg, &f, NULL) == ATH_OK, "create");
        CHECK(ath_engine_set_step_count(f, 42, NULL) == ATH_OK, "set");
        ath_engine_get_states(e, 1, &far, a, NULL);
        ath_engine_get_states(f, 1, &far, b, NULL);
        CHECK(memcmp(a, b, sizeof a) == 0, "same step count, same vacuum");
        ath_engine_set_step_count(f, 41, NULL);
        ath_engine_get_states(f, 1, &far, b, NULL);
        CHECK(memcmp(a, b, sizeof a) != 0, "other step count, other vacuum");
        ath_engine_destroy(f);
    }
    ath_engine_destroy(e);
    free(k);
}

static void test_activate_bounded(void) {
    ath_engine_config cfg;
    ath_engine *e = NULL;
    ath_engine_config_default(&cfg, 2);
    cfg.grid_size = 4;
    cfg.extent = ATH_EXTENT_ZERO;
    CHECK(ath_engine_create(&cfg, &e, NULL) == ATH_OK, "create");
    /* a huge radius touches only the 16 window cells */
    CHECK(ath_engine_activate_neighborhood(e, ath_coord_make(1, 1, 0), 16384, NULL) == ATH_OK, "huge radius, zero window");
    CHECK(ath_engine_matter_count(e) == 16, "16 cells, got %zu", ath_engine_matter_count(e));
    CHECK(ath_engine_activate_neighborhood(e, ath_coord_make(1, 1, 0), (int64_t)1 << 62, NULL) == ATH_OK,
          "radius 2**62, zero window");
    ath_engine_destroy(e);
    cfg.extent = ATH_EXTENT_PERIODIC;
    cfg.grid_size = 5;
    CHECK(ath_engine_create(&cfg, &e, NULL) == ATH_OK, "create");
    CHECK(ath_engine_activate_neighborhood(e, ath_coord_make(0, 0, 0), 12000, NULL) == ATH_OK, "periodic radius 12000");
    CHECK(ath_engine_matter_count(e) == 25, "25 cells, got %zu", ath_engine_matter_count(e));
    ath_engine_destroy(e);
    cfg.extent = ATH_EXTENT_UNBOUNDED;
    CHECK(ath_engine_create(&cfg, &e, NULL) == ATH_OK, "create");
    CHECK(ath_engine_activate_neighborhood(e, ath_coord_make(0, 0, 0), 20000, NULL) == ATH_ERR_INVALID,
          "unbounded: a too-large radius is refused");
    CHECK(ath_engine_matter_count(e) == 0, "and nothing is added");
    /* at the coordinate limit only addressable cells are added */
    CHECK(ath_engine_activate_neighborhood(e, ath_coord_make(ATH_COORD_LIMIT, 0, 0), 2, NULL) == ATH_OK, "at the limit");
    CHECK(ath_engine_matter_count(e) == 15, "3 x 5 addressable cells, got %zu", ath_engine_matter_count(e));
    ath_engine_destroy(e);
}

static void test_coordinate_limit(int64_t patch) {
    ath_engine_config cfg;
    ath_engine *e = NULL;
    ath_model *zero = NULL;
    const int64_t L = ATH_COORD_LIMIT;
    ath_coord cs[2] = {{L, 7, 0}, {-L, -L, 3}};
    ath_cf32 vs[4] = {{1, 0}, {0, 1}, {0.5f, 0.5f}, {1, 1}};
    ath_cf32 out[3 * 2];
    int s, ok = 1;
    ath_engine_config_default(&cfg, 2);
    cfg.patch = patch; /* 3: bitmask build of E; 21: the per-cell build */
    CHECK(ath_engine_create(&cfg, &e, NULL) == ATH_OK, "create");
    CHECK(ath_model_zero_create(4, &zero, NULL) == ATH_OK, "zero model");
    CHECK(ath_engine_set_model(e, zero, NULL) == ATH_OK, "set model");
    CHECK(ath_engine_add_particles(e, 2, cs, vs, NULL) == ATH_OK, "matter at the limit");
    for (s = 0; s < 3; s++) CHECK(ath_engine_step(e, NULL, NULL) == ATH_OK, "step %d", s);
    {
        const ath_cellmap *m = ath_engine_matter(e);
        const ath_coord *mc = ath_cellmap_coords(m);
        size_t i, n = ath_cellmap_size(m);
        for (i = 0; i < n; i++)
            if (!ath_coord_in_limits(mc[i])) ok = 0;
        CHECK(n > 2, "the vacuum grew matter (%zu cells)", n);
        CHECK(ok, "no step creates a cell beyond the limit");
        CHECK(ath_engine_add_particles(e, n, mc, ath_cellmap_states(m), NULL) == ATH_OK, "all matter can be re-added");
        ath_cf32 *got = (ath_cf32 *)malloc(n * 2 * sizeof(ath_cf32));
        CHECK(ath_engine_get_states(e, n, mc, got, NULL) == ATH_OK, "all matter can be read");
        free(got);
    }
    /* the cell at the limit can be viewed through a half-open region */
    CHECK(ath_engine_to_dense(e, L - 2, 7, L + 1, 8, 0, out, NULL) == ATH_OK, "to_dense reaching x = 2**60");
    CHECK(ath_engine_to_dense(e, L - 2, 7, L + 2, 8, 0, out, NULL) == ATH_ERR_RANGE, "beyond the limit is a range error");
    ath_engine_destroy(e);
    ath_model_destroy(zero);
}

int main(void) {
    test_visit_matter();
    test_activate_bounded();
    test_coordinate_limit(3);
    test_coordinate_limit(21);
    return check_summary();
}
