/* Persistent leaf-block storage (src/core/blocks.h): every cell found at its
 * state, the packed Morton layout, the accessor, memory per cell for compact
 * and for scattered matter at d_state 8, and allocation faults (a failed
 * build leaves the store unchanged). */
#include <stdlib.h>
#include <string.h>

#include "../../src/core/blocks.h"
#include "atheria/alloc.h"
#include "check.h"

#define D 8

static ath_cf32 val(size_t i, int k) {
    ath_cf32 v;
    v.re = (float)i + 0.125f * (float)k;
    v.im = -(float)i;
    return v;
}

static void fill(size_t n, ath_cf32 *s) {
    size_t i;
    int k;
    for (i = 0; i < n; i++)
        for (k = 0; k < D; k++) s[i * D + k] = val(i, k);
}

/* 1 if every cell i of coords is found with states[i] (distinct coords). */
static int all_found(const ath_blocks *b, size_t n, const ath_coord *c, const ath_cf32 *s) {
    ath_blocks_accessor a;
    size_t i;
    ath_blocks_accessor_init(&a, b);
    for (i = 0; i < n; i++) {
        const int64_t j = ath_blocks_accessor_find(&a, c[i]);
        if (j < 0 || j != ath_blocks_find(b, c[i])) return 0;
        if (memcmp(b->states + (size_t)j * D, s + i * D, D * sizeof(ath_cf32)) != 0) return 0;
    }
    return 1;
}

static void test_compact(void) {
    const int64_t side = 300; /* 9e4 cells, offset so leaves straddle the origin */
    const size_t n = (size_t)(side * side);
    ath_coord *c = (ath_coord *)malloc(n * sizeof *c);
    ath_cf32 *s = (ath_cf32 *)malloc(n * D * sizeof *s);
    ath_blocks b;
    ath_error err;
    size_t i;
    double per_cell;
    for (i = 0; i < n; i++) c[n - 1 - i] = ath_coord_make((int64_t)(i % side) - 7, (int64_t)(i / side) - 5, 3);
    fill(n, s);
    ath_blocks_init(&b, D);
    CHECK(ath_blocks_build(&b, n, c, s, &err) == ATH_OK, "build: %s", err.message);
    CHECK(b.ncells == n, "%zu cells", b.ncells);
    CHECK(ath_blocks_validate(&b, &err) == ATH_OK, "%s", err.message);
    CHECK(all_found(&b, n, c, s), "every cell found with its state");
    CHECK(ath_blocks_find(&b, ath_coord_make(side, 0, 3)) == -1, "absent cell beside the blob");
    CHECK(ath_blocks_find(&b, ath_coord_make(0, 0, 4)) == -1, "absent plane");
    /* packed order: storage position j holds the cells in Morton order (what the step's E order gives) */
    {
        int ok = 1;
        size_t l, j = 0;
        ath_coord prev = ath_coord_make(0, 0, 0);
        for (l = 0; l < b.nleaves; l++) {
            int m;
            for (m = 0; m < ATH_LEAF_CELLS; m++) {
                if (!(b.mask[l] >> m & 1)) continue;
                {
                    const ath_coord cc = ath_blocks_cell_coord(&b, l, m);
                    if (j > 0 && ath_coord_compare_morton(&prev, &cc) >= 0) ok = 0;
                    if (ath_blocks_find(&b, cc) != (int64_t)j) ok = 0;
                    prev = cc;
                    j++;
                }
            }
        }
        CHECK(ok && j == n, "cells stored in Morton order");
    }
    per_cell = (double)ath_blocks_memory_bytes(&b) / (double)n;
    printf("leaf %d: compact %zu cells: %.1f B/cell (d_state %d)\n", ATH_LEAF, n, per_cell, D);
    CHECK(per_cell <= 80.0, "compact matter costs <= 80 B/cell at d_state 8 (%.1f)", per_cell);
    ath_blocks_free(&b);
    free(c);
    free(s);
}

static void test_scattered(void) {
    const size_t n = 100000;
    ath_coord *c = (ath_coord *)malloc(n * sizeof *c);
    ath_cf32 *s = (ath_cf32 *)malloc(n * D * sizeof *s);
    ath_blocks b;
    ath_error err;
    size_t i;
    double per_cell;
    for (i = 0; i < n; i++) c[i] = ath_coord_make((int64_t)(i % 317) * 37, (int64_t)(i / 317) * 41 - 1000, 0);
    fill(n, s);
    ath_blocks_init(&b, D);
    CHECK(ath_blocks_build(&b, n, c, s, &err) == ATH_OK, "build: %s", err.message);
    CHECK(b.nleaves == n && b.ncells == n, "one leaf per isolated cell");
    CHECK(all_found(&b, n, c, s), "every cell found");
    CHECK(ath_blocks_validate(&b, &err) == ATH_OK, "%s", err.message);
    per_cell = (double)ath_blocks_memory_bytes(&b) / (double)n;
    printf("leaf %d: scattered %zu cells: %.1f B/cell (d_state %d)\n", ATH_LEAF, n, per_cell, D);
    CHECK(per_cell <= 200.0, "isolated cells cost <= 200 B/cell at d_state 8 (%.1f)", per_cell);
    ath_blocks_free(&b);
    free(c);
    free(s);
}

static void test_duplicates_and_empty(void) {
    ath_coord c[3];
    ath_cf32 s[3 * D];
    ath_blocks b;
    ath_error err;
    c[0] = ath_coord_make(1, 2, 0);
    c[1] = ath_coord_make(-9, 2, 0);
    c[2] = ath_coord_make(1, 2, 0);
    fill(3, s);
    ath_blocks_init(&b, D);
    CHECK(ath_blocks_build(&b, 0, NULL, NULL, &err) == ATH_OK && b.ncells == 0, "empty build");
    CHECK(ath_blocks_find(&b, c[0]) == -1, "empty store finds nothing");
    CHECK(ath_blocks_build(&b, 3, c, s, &err) == ATH_OK && b.ncells == 2, "a repeated coordinate is one cell");
    CHECK(ath_blocks_find(&b, c[0]) >= 0 &&
              memcmp(b.states + ath_blocks_find(&b, c[0]) * D, s + 2 * D, D * sizeof(ath_cf32)) == 0,
          "the later state wins");
    ath_blocks_free(&b);
}

static void test_faults(void) {
    const size_t n = 5000;
    ath_coord *c = (ath_coord *)malloc(n * sizeof *c), *c2 = (ath_coord *)malloc(n * sizeof *c2);
    ath_cf32 *s = (ath_cf32 *)malloc(n * D * sizeof *s);
    ath_blocks b;
    ath_error err;
    size_t i;
    long f, faults = 0;
    for (i = 0; i < n; i++) {
        c[i] = ath_coord_make((int64_t)(i % 70), (int64_t)(i / 70), 0);
        c2[i] = ath_coord_make((int64_t)(i % 50) * 9, (int64_t)(i / 50) * 5, 1);
    }
    fill(n, s);
    ath_blocks_init(&b, D);
    CHECK(ath_blocks_build(&b, n, c, s, &err) == ATH_OK, "first build");
    for (f = 1; f < 1000; f++) {
        ath_status st;
        ath_alloc_fail_after(f);
        st = ath_blocks_build(&b, n, c2, s, &err);
        ath_alloc_fail_after(0);
        if (st == ATH_OK) break;
        faults++;
        CHECK(st == ATH_ERR_NOMEM, "failure is NOMEM");
        CHECK(b.ncells == n && all_found(&b, n, c, s) && ath_blocks_validate(&b, &err) == ATH_OK,
              "failed build %ld leaves the store unchanged", f);
    }
    CHECK(faults > 3 && all_found(&b, n, c2, s), "the build succeeds after %ld injected failures", faults);
    ath_blocks_free(&b);
    free(c);
    free(c2);
    free(s);
}

int main(void) {
    test_compact();
    test_scattered();
    test_duplicates_and_empty();
    test_faults();
    return check_summary();
}
