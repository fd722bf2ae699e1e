/* Persistent leaf-block storage (src/core/blocks.h): every cell found with
 * its state, storage order = first insertion (ath_cellmap's), overwrite in
 * place, coordinates recovered from the leaves, memory per cell for compact
 * and for scattered matter at d_state 8, and allocation faults (a failed
 * set_many leaves the store unchanged). */
#include <stdlib.h>
#include <string.h>

#include "../../src/core/blocks.h"
#include "atheria/alloc.h"
#include "check.h"

#define D 8

static void fill(size_t n, ath_cf32 *s, float tag) {
    size_t i;
    int k;
    for (i = 0; i < n; i++)
        for (k = 0; k < D; k++) {
            s[i * D + k].re = (float)i + 0.125f * (float)k + tag;
            s[i * D + k].im = -(float)i;
        }
}

/* 1 if cell j of the store is coords[j] with states[j], for every j < n, and found back. */
static int same_cells(const ath_blocks *b, size_t n, const ath_coord *c, const ath_cf32 *s) {
    ath_blocks_accessor a;
    size_t j;
    if (b->ncells != n) return 0;
    ath_blocks_accessor_init(&a, b);
    for (j = 0; j < n; j++) {
        if (!ath_coord_equal(ath_blocks_coord(b, j), c[j])) return 0;
        if (ath_blocks_accessor_find(&a, c[j]) != (int64_t)j || ath_blocks_find(b, c[j]) != (int64_t)j) return 0;
        if (memcmp(b->states + j * D, s + j * D, D * sizeof(ath_cf32)) != 0) return 0;
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
    for (i = 0; i < n; i++) c[i] = ath_coord_make((int64_t)(i % side) - 7, (int64_t)(i / side) - 5, 3);
    fill(n, s, 0.0f);
    ath_blocks_init(&b, D);
    CHECK(ath_blocks_set_many(&b, n, c, s, &err) == ATH_OK, "set_many: %s", err.message);
    CHECK(ath_blocks_validate(&b, &err) == ATH_OK, "%s", err.message);
    CHECK(same_cells(&b, n, c, s), "cells in insertion order, each found with its state");
    CHECK(ath_blocks_find(&b, ath_coord_make(side, 0, 3)) == -1, "absent cell beside the blob");
    CHECK(ath_blocks_find(&b, ath_coord_make(0, 0, 4)) == -1, "absent plane");
    per_cell = (double)ath_blocks_memory_bytes(&b) / (double)n;
    printf("compact %zu cells: %.1f B/cell (d_state %d, leaf %d)\n", n, per_cell, D, ATH_LEAF);
    CHECK(per_cell <= 80.0, "compact matter costs <= 80 B/cell at d_state 8 (%.1f)", per_cell);
    ath_blocks_release(&b);
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
    fill(n, s, 0.0f);
    ath_blocks_init(&b, D);
    CHECK(ath_blocks_set_many(&b, n, c, s, &err) == ATH_OK, "set_many: %s", err.message);
    CHECK(b.nleaves == n, "one leaf per isolated cell");
    CHECK(same_cells(&b, n, c, s), "every cell found");
    CHECK(ath_blocks_validate(&b, &err) == ATH_OK, "%s", err.message);
    per_cell = (double)ath_blocks_memory_bytes(&b) / (double)n;
    printf("scattered %zu cells: %.1f B/cell (d_state %d, leaf %d)\n", n, per_cell, D, ATH_LEAF);
    CHECK(per_cell <= 200.0, "isolated cells cost <= 200 B/cell at d_state 8 (%.1f)", per_cell);
    ath_blocks_release(&b);
    free(c);
    free(s);
}

static void test_overwrite_duplicates_truncate(void) {
    ath_coord c[4], want_c[3];
    ath_cf32 s[4 * D], want_s[3 * D];
    ath_blocks b;
    ath_error err;
    c[0] = ath_coord_make(1, 2, 0);
    c[1] = ath_coord_make(-9, 2, 0);
    c[2] = ath_coord_make(1, 2, 0);
    c[3] = ath_coord_make(5, -3, 1);
    fill(4, s, 0.0f);
    ath_blocks_init(&b, D);
    CHECK(ath_blocks_set_many(&b, 0, NULL, NULL, &err) == ATH_OK && b.ncells == 0, "empty set");
    CHECK(ath_blocks_find(&b, c[0]) == -1, "empty store finds nothing");
    CHECK(ath_blocks_set_many(&b, 3, c, s, &err) == ATH_OK, "set with a duplicate");
    want_c[0] = c[0];
    want_c[1] = c[1];
    memcpy(want_s, s + 2 * D, D * sizeof(ath_cf32)); /* first position, last state */
    memcpy(want_s + D, s + D, D * sizeof(ath_cf32));
    CHECK(same_cells(&b, 2, want_c, want_s), "a repeated coordinate: its first position, its last state");
    CHECK(ath_blocks_set_many(&b, 2, c + 2, s, &err) == ATH_OK, "overwrite + append");
    want_c[2] = c[3];
    memcpy(want_s, s, D * sizeof(ath_cf32));
    memcpy(want_s + 2 * D, s + D, D * sizeof(ath_cf32));
    CHECK(same_cells(&b, 3, want_c, want_s), "overwritten in place, new cell appended");
    ath_blocks_truncate(&b, 2, 2);
    CHECK(same_cells(&b, 2, want_c, want_s) && ath_blocks_validate(&b, &err) == ATH_OK &&
              ath_blocks_find(&b, c[3]) == -1,
          "truncate drops the appended cell and leaf");
    ath_blocks_clear(&b);
    CHECK(b.ncells == 0 && ath_blocks_find(&b, c[0]) == -1, "clear");
    ath_blocks_release(&b);
}

static void test_faults(void) {
    const size_t n = 5000;
    ath_coord *c = (ath_coord *)malloc(n * sizeof *c), *c2 = (ath_coord *)malloc(n * sizeof *c2);
    ath_cf32 *s = (ath_cf32 *)malloc(n * D * sizeof *s), *s2 = (ath_cf32 *)malloc(n * D * sizeof *s2);
    ath_blocks b;
    ath_error err;
    size_t i;
    long f, faults = 0;
    int unchanged = 1;
    for (i = 0; i < n; i++) {
        c[i] = ath_coord_make((int64_t)(i % 70), (int64_t)(i / 70), 0);
        c2[i] = ath_coord_make((int64_t)(i % 50) * 9 - 100, (int64_t)(i / 50) * 5, i % 2 ? 2 : 3);
    }
    fill(n, s, 0.0f);
    fill(n, s2, 0.5f);
    ath_blocks_init(&b, D);
    CHECK(ath_blocks_set_many(&b, n, c, s, &err) == ATH_OK, "first set");
    for (f = 1; f < 1000; f++) {
        ath_status st;
        ath_alloc_fail_after(f);
        st = ath_blocks_set_many(&b, n, c2, s2, &err);
        ath_alloc_fail_after(0);
        if (st == ATH_OK) break;
        faults++;
        CHECK(st == ATH_ERR_NOMEM, "failure is NOMEM");
        if (!(same_cells(&b, n, c, s) && ath_blocks_validate(&b, &err) == ATH_OK)) unchanged = 0;
    }
    CHECK(unchanged, "every failed set_many leaves the store unchanged");
    CHECK(faults >= 3 && b.ncells == 2 * n && ath_blocks_validate(&b, &err) == ATH_OK,
          "set_many succeeds after %ld injected failures", faults);
    ath_blocks_release(&b);
    free(c);
    free(c2);
    free(s);
    free(s2);
}

int main(void) {
    test_compact();
    test_scattered();
    test_overwrite_duplicates_truncate();
    test_faults();
    return check_summary();
}
