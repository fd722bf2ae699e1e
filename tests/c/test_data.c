/* Pure-C tests of the data components: coord, sparse_map, vacuum, viz.
 *
 *   gcc -std=c11 -O1 -Wall -Wextra -Werror -fopenmp -Iinclude tests/c/test_data.c
 *       src/core/[all].c -lm && ./a.out
 *
 * Prints "N passed, 0 failed" and exits non-zero on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atheria/common.h"
#include "atheria/coord.h"
#include "atheria/sparse_map.h"
#include "atheria/vacuum.h"
#include "atheria/viz.h"

#include "check.h"

/* A tiny deterministic PRNG for the tests (xorshift64*). */
static uint64_t rng_state = 0x1234567887654321ULL;
static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}
static int64_t rng_range(int64_t lo, int64_t hi) { /* [lo, hi] */
    return lo + (int64_t)(rng_next() % (uint64_t)(hi - lo + 1));
}

/* ======================================================================== */
/* coord                                                                    */
/* ======================================================================== */

static uint64_t naive_morton(ath_coord c) {
    uint64_t key = 0, v[3];
    int b, k;
    v[0] = ((uint64_t)c.x + (1u << 20)) & 0x1FFFFF;
    v[1] = ((uint64_t)c.y + (1u << 20)) & 0x1FFFFF;
    v[2] = ((uint64_t)c.z + (1u << 20)) & 0x1FFFFF;
    for (b = 0; b < 21; b++)
        for (k = 0; k < 3; k++) key |= ((v[k] >> b) & 1u) << (3 * b + k);
    return key;
}

static void test_coord(void) {
    ath_coord a = ath_coord_make(1, 2, 3), b = ath_coord_make(1, 2, 3), c = ath_coord_make(3, 2, 1);
    int i, sorted, same_mult;
    ath_coord arr[500], copy[500];
    uint64_t h0;

    CHECK(ath_coord_equal(a, b) && !ath_coord_equal(a, c), "equality");
    CHECK(ath_coord_hash(a) == ath_coord_hash(b), "equal coords hash equally");
    CHECK(ath_coord_hash(a) != ath_coord_hash(c), "permuted coords hash differently");
    h0 = ath_coord_hash(ath_coord_make(0, 0, 0));
    CHECK(h0 != ath_coord_hash(ath_coord_make(0, 0, 1)) && h0 != ath_coord_hash(ath_coord_make(1, 0, 0)),
          "neighbours hash differently");
    CHECK(ath_coord_in_limits(ath_coord_make(ATH_COORD_LIMIT, -ATH_COORD_LIMIT, 0)), "limits inclusive");
    CHECK(!ath_coord_in_limits(ath_coord_make(0, ATH_COORD_LIMIT + 1, 0)), "beyond the limit");

    for (i = 0; i < 2000; i++) {
        ath_coord r = ath_coord_make(rng_range(-(1 << 20), (1 << 20) - 1),
                                     rng_range(-(1 << 20), (1 << 20) - 1),
                                     rng_range(-(1 << 20), (1 << 20) - 1));
        if (ath_coord_morton(r) != naive_morton(r)) {
            CHECK(0, "morton mismatch at (%lld,%lld,%lld)", (long long)r.x, (long long)r.y,
                  (long long)r.z);
            break;
        }
    }
    CHECK(i == 2000, "morton agrees with a bit-by-bit interleave");
    CHECK(ath_coord_morton(ath_coord_make(-1, -1, -1)) < ath_coord_morton(ath_coord_make(0, 0, 0)),
          "negative before positive");
    CHECK(ath_coord_morton(ath_coord_make(1, 0, 0)) == ath_coord_morton(ath_coord_make(0, 0, 0)) + 1 &&
              ath_coord_morton(ath_coord_make(0, 1, 0)) == ath_coord_morton(ath_coord_make(0, 0, 0)) + 2 &&
              ath_coord_morton(ath_coord_make(0, 0, 1)) == ath_coord_morton(ath_coord_make(0, 0, 0)) + 4,
          "x, y, z are interleaved from the lowest bit");
    CHECK(ath_coord_compare_morton(&a, &a) == 0, "compare equal");
    {
        /* same Morton key (components differ only above bit 20): ties by (z, y, x) */
        ath_coord p = ath_coord_make(0, 0, 0), q = ath_coord_make(1 << 21, 0, 0);
        CHECK(ath_coord_morton(p) == ath_coord_morton(q), "low 21 bits only");
        CHECK(ath_coord_compare_morton(&p, &q) < 0 && ath_coord_compare_morton(&q, &p) > 0,
              "tie broken by x");
    }

    for (i = 0; i < 500; i++)
        arr[i] = ath_coord_make(rng_range(-40, 40), rng_range(-40, 40), rng_range(-2, 2));
    memcpy(copy, arr, sizeof arr);
    ath_coord_sort_morton(arr, 500);
    sorted = 1;
    for (i = 1; i < 500; i++)
        if (ath_coord_compare_morton(&arr[i - 1], &arr[i]) > 0) sorted = 0;
    CHECK(sorted, "sort_morton sorts");
    qsort(copy, 500, sizeof copy[0], ath_coord_compare_morton);
    same_mult = memcmp(copy, arr, sizeof arr) == 0;
    CHECK(same_mult, "sort_morton is a permutation in comparator order");
    ath_coord_sort_morton(NULL, 0); /* no-op */
}

/* ======================================================================== */
/* sparse map                                                               */
/* ======================================================================== */

static void fill_state(ath_cf32 *s, int64_t d, int64_t tag) {
    int64_t k;
    for (k = 0; k < d; k++) {
        s[k].re = (float)(tag % 100003) + 0.25f * (float)k;
        s[k].im = -(float)(tag % 7919) - 0.5f * (float)k;
    }
}

static int state_is(const ath_cf32 *s, int64_t d, int64_t tag) {
    ath_cf32 want[16];
    fill_state(want, d, tag);
    return s != NULL && memcmp(s, want, (size_t)d * sizeof *s) == 0;
}

static ath_coord tag_coord(int64_t t) { return ath_coord_make(t * 7 - 3, -t * 3, t % 5 - 2); }

static void test_cellmap_basic(void) {
    ath_cellmap *m = NULL;
    ath_error err;
    ath_cf32 s[4], t[4];
    ath_coord c0 = ath_coord_make(0, 0, 0), c1 = ath_coord_make(-5, 7, 1);
    int i, ok;

    CHECK(ath_cellmap_create(0, &m, &err) == ATH_ERR_INVALID && m == NULL, "d_state 0 refused");
    CHECK(ath_cellmap_create(-3, &m, &err) == ATH_ERR_INVALID, "negative d_state refused");
    CHECK(ath_cellmap_create(ATH_MAX_D_STATE + 1, &m, &err) == ATH_ERR_INVALID, "huge d_state");
    CHECK(strstr(err.message, "d_state") != NULL, "message names d_state: %s", err.message);
    CHECK(ath_cellmap_create(4, NULL, &err) == ATH_ERR_INVALID, "NULL out");
    CHECK(ath_cellmap_create(4, &m, &err) == ATH_OK && m != NULL, "create");
    CHECK(ath_cellmap_d_state(m) == 4 && ath_cellmap_size(m) == 0, "fresh map");
    CHECK(ath_cellmap_find(m, c0) == -1 && ath_cellmap_get(m, c0) == NULL, "empty lookup");
    CHECK(ath_cellmap_remove(m, c0) == 0, "remove from empty");

    fill_state(s, 4, 11);
    CHECK(ath_cellmap_set(m, c1, s, &err) == ATH_OK, "set");
    CHECK(ath_cellmap_size(m) == 1 && ath_cellmap_find(m, c1) == 0, "one cell at index 0");
    CHECK(state_is(ath_cellmap_get(m, c1), 4, 11), "value stored");
    CHECK(ath_cellmap_get(m, c0) == NULL, "other coord absent");
    fill_state(t, 4, 12);
    CHECK(ath_cellmap_set(m, c1, t, &err) == ATH_OK && ath_cellmap_size(m) == 1, "overwrite");
    CHECK(state_is(ath_cellmap_get(m, c1), 4, 12), "overwritten value");
    ath_cellmap_get_mut(m, c1)[2].re = 99.0f;
    CHECK(ath_cellmap_get(m, c1)[2].re == 99.0f, "get_mut writes through");
    CHECK(ath_cellmap_set(m, c0, NULL, &err) == ATH_ERR_INVALID && ath_cellmap_size(m) == 1,
          "NULL state refused, unchanged");
    CHECK(ath_cellmap_set(NULL, c0, s, &err) == ATH_ERR_INVALID, "NULL map refused");

    /* removal with swap: remove a middle cell, the last one moves into the hole */
    ath_cellmap_clear(m);
    CHECK(ath_cellmap_size(m) == 0 && ath_cellmap_get(m, c1) == NULL, "clear");
    for (i = 0; i < 10; i++) {
        fill_state(s, 4, i);
        ath_cellmap_set(m, tag_coord(i), s, &err);
    }
    CHECK(ath_cellmap_remove(m, tag_coord(3)) == 1, "remove middle");
    CHECK(ath_cellmap_remove(m, tag_coord(3)) == 0, "remove twice");
    CHECK(ath_cellmap_size(m) == 9, "size after remove");
    CHECK(ath_coord_equal(ath_cellmap_coords(m)[3], tag_coord(9)), "last cell swapped into the hole");
    CHECK(state_is(ath_cellmap_states(m) + 3 * 4, 4, 9), "its state moved too");
    ok = 1;
    for (i = 0; i < 10; i++) {
        const ath_cf32 *p = ath_cellmap_get(m, tag_coord(i));
        if (i == 3 ? p != NULL : !state_is(p, 4, i)) ok = 0;
    }
    CHECK(ok, "every other cell intact after swap-remove");
    CHECK(ath_cellmap_remove(m, tag_coord(9)) == 1 && ath_cellmap_find(m, tag_coord(8)) >= 0,
          "remove the moved cell");
    /* remove the last cell (no swap) */
    {
        ath_coord last = ath_cellmap_coords(m)[ath_cellmap_size(m) - 1];
        CHECK(ath_cellmap_remove(m, last) == 1 && ath_cellmap_find(m, last) == -1, "remove last");
    }
    ath_cellmap_destroy(m);
    ath_cellmap_destroy(NULL);
}

/* Random operations against a brute-force model over a key space of
 * side*side*2 coordinates: exercises probing, backward-shift deletion
 * (including clusters that wrap around the end of the table) and rehashing. */
#define FUZZ_MAX_SIDE 24
static void cellmap_fuzz(int side, int ops, int round_len) {
    ath_cellmap *m = NULL;
    ath_error err;
    static int64_t model[FUZZ_MAX_SIDE][FUZZ_MAX_SIDE][2]; /* tag+1, 0 = absent */
    int64_t present = 0, bx = 0, by = 0;
    int i, ok = 1;
    ath_cf32 s[3];
    ath_cellmap_create(3, &m, &err);
    memset(model, 0, sizeof model);
    for (i = 0; i < ops && ok; i++) {
        int x = (int)rng_range(0, side - 1), y = (int)rng_range(0, side - 1), z = (int)rng_range(0, 1);
        ath_coord c;
        if (i % round_len == 0) { /* a new key set: new hash positions, new collisions */
            ath_cellmap_clear(m);
            memset(model, 0, sizeof model);
            present = 0;
            bx = rng_range(-1000000000, 1000000000);
            by = rng_range(-1000000000, 1000000000);
        }
        c = ath_coord_make(x + bx, y * 1000003 + by, z - 1);
        int op = (int)rng_range(0, 9);
        if (op < 5) {
            fill_state(s, 3, i);
            if (ath_cellmap_set(m, c, s, &err) != ATH_OK) ok = 0;
            if (model[x][y][z] == 0) present++;
            model[x][y][z] = i + 1;
        } else if (op < 8) {
            int r = ath_cellmap_remove(m, c);
            if (r != (model[x][y][z] != 0)) ok = 0;
            if (model[x][y][z] != 0) present--;
            model[x][y][z] = 0;
        } else {
            const ath_cf32 *p = ath_cellmap_get(m, c);
            if (model[x][y][z] == 0 ? p != NULL : !state_is(p, 3, model[x][y][z] - 1)) ok = 0;
        }
        if ((size_t)present != ath_cellmap_size(m)) ok = 0;
        if (i % 16 == 0) { /* full sweep now and then */
            int xx, yy, zz;
            if (ath_cellmap_validate(m, &err) != ATH_OK) {
                fprintf(stderr, "  %s\n", err.message);
                ok = 0;
            }
            for (xx = 0; xx < side; xx++)
                for (yy = 0; yy < side; yy++)
                    for (zz = 0; zz < 2; zz++) {
                        ath_coord cc = ath_coord_make(xx + bx, yy * 1000003 + by, zz - 1);
                        const ath_cf32 *p = ath_cellmap_get(m, cc);
                        if (model[xx][yy][zz] == 0 ? p != NULL
                                                   : !state_is(p, 3, model[xx][yy][zz] - 1))
                            ok = 0;
                    }
        }
    }
    CHECK(ok, "random insert/remove/get agree with a brute-force model (side %d, op %d)", side, i);
    /* every stored coordinate finds its own index */
    {
        size_t n = ath_cellmap_size(m), k;
        ok = 1;
        for (k = 0; k < n; k++)
            if (ath_cellmap_find(m, ath_cellmap_coords(m)[k]) != (ptrdiff_t)k) ok = 0;
        CHECK(ok, "index table consistent with the dense arrays (side %d)", side);
    }
    ath_cellmap_destroy(m);
}

static void test_cellmap_fuzz(void) {
    cellmap_fuzz(3, 100000, 500);     /* 18 keys in a 16/32-slot table: clusters wrap around */
    cellmap_fuzz(5, 100000, 2000);    /* 50 keys */
    cellmap_fuzz(24, 100000, 100000); /* 1152 keys: several rehashes */
}

static void test_cellmap_large(void) {
    const int64_t n = 1000000;
    int64_t d, i;
    ath_cellmap *m = NULL;
    ath_error err;
    ath_coord *coords = (ath_coord *)malloc((size_t)n * sizeof *coords);
    ath_cf32 s[4];
    int ok;
    size_t bytes;

    if (coords == NULL) {
        CHECK(0, "malloc");
        return;
    }
    for (i = 0; i < n; i++) coords[i] = ath_coord_make(i % 1000 - 500, i / 1000 - 500, 0);

    for (d = 1; d <= 4; d *= 2) {
        ath_cellmap_create(d, &m, &err);
        ok = 1;
        for (i = 0; i < n; i++) {
            fill_state(s, d, i);
            if (ath_cellmap_set(m, coords[i], s, &err) != ATH_OK) {
                ok = 0;
                break;
            }
        }
        CHECK(ok && ath_cellmap_size(m) == (size_t)n, "1e6 single inserts (d=%lld)", (long long)d);
        bytes = ath_cellmap_memory_bytes(m);
        CHECK(bytes <= (size_t)(2 * (8 * d + 24) * n) + 4096,
              "memory %zu bytes for 1e6 cells (d=%lld) <= 2*(8d+24) per cell", bytes, (long long)d);
        ok = 1;
        for (i = 0; i < n; i++)
            if (!state_is(ath_cellmap_get(m, coords[i]), d, i)) {
                ok = 0;
                break;
            }
        CHECK(ok, "1e6 lookups after growth (d=%lld)", (long long)d);
        CHECK(ath_cellmap_get(m, ath_coord_make(0, 0, 1)) == NULL, "absent coord after growth");
        /* remove every other cell */
        ok = 1;
        for (i = 0; i < n; i += 2)
            if (ath_cellmap_remove(m, coords[i]) != 1) ok = 0;
        CHECK(ok && ath_cellmap_size(m) == (size_t)(n / 2), "remove half (d=%lld)", (long long)d);
        ok = 1;
        for (i = 0; i < n; i++) {
            const ath_cf32 *p = ath_cellmap_get(m, coords[i]);
            if (i % 2 == 0 ? p != NULL : !state_is(p, d, i)) {
                ok = 0;
                break;
            }
        }
        CHECK(ok, "survivors intact after 5e5 swap-removals (d=%lld)", (long long)d);
        CHECK(ath_cellmap_validate(m, &err) == ATH_OK, "invariants after 5e5 removals: %s", err.message);
        ath_cellmap_destroy(m);
    }

    /* reserve: no reallocation while filling up to the reserved count */
    {
        const ath_coord *before;
        ath_cellmap_create(2, &m, &err);
        CHECK(ath_cellmap_reserve(m, (size_t)n, &err) == ATH_OK, "reserve 1e6");
        before = ath_cellmap_coords(m);
        bytes = ath_cellmap_memory_bytes(m);
        ok = 1;
        for (i = 0; i < n; i++) {
            fill_state(s, 2, i);
            if (ath_cellmap_set(m, coords[i], s, &err) != ATH_OK) ok = 0;
        }
        CHECK(ok && ath_cellmap_coords(m) == before && ath_cellmap_memory_bytes(m) == bytes,
              "no reallocation after reserve");
        CHECK(ath_cellmap_reserve(m, 10, &err) == ATH_OK && ath_cellmap_size(m) == (size_t)n,
              "reserve below size is a no-op");
        CHECK(ath_cellmap_reserve(m, ATH_CELLMAP_MAX_CELLS + 1, &err) == ATH_ERR_RANGE &&
                  ath_cellmap_memory_bytes(m) == bytes && ath_cellmap_size(m) == (size_t)n,
              "absurd reserve refused, map unchanged");
        CHECK(ath_cellmap_reserve(NULL, 1, &err) == ATH_ERR_INVALID, "reserve NULL map");
        ath_cellmap_destroy(m);
    }
    free(coords);
}

static void test_cellmap_bulk(void) {
    ath_cellmap *m = NULL, *m2 = NULL;
    ath_error err;
    enum { N = 50000, D = 3 };
    ath_coord *coords = (ath_coord *)malloc(N * sizeof *coords);
    ath_cf32 *states = (ath_cf32 *)malloc(N * D * sizeof *states);
    ath_cf32 *out = (ath_cf32 *)malloc(N * D * sizeof *out);
    uint8_t *found = (uint8_t *)malloc(N);
    int64_t i;
    int ok;
    size_t nfound;
    ath_cf32 s[D];

    if (!coords || !states || !out || !found) {
        CHECK(0, "malloc");
        goto done;
    }
    for (i = 0; i < N; i++) {
        coords[i] = ath_coord_make(rng_range(-1000000, 1000000), rng_range(-1000000, 1000000), i);
        fill_state(states + i * D, D, i);
    }
    ath_cellmap_create(D, &m, &err);
    fill_state(s, D, 777);
    ath_cellmap_set(m, coords[5], s, &err); /* pre-existing: overwritten by the batch */
    ath_cellmap_set(m, ath_coord_make(1, 1, -1), s, &err);
    CHECK(ath_cellmap_set_many(m, N, coords, states, &err) == ATH_OK, "set_many");
    CHECK(ath_cellmap_size(m) == N + 1, "set_many size (one overwrite, one extra)");
    ok = 1;
    for (i = 0; i < N; i++)
        if (!state_is(ath_cellmap_get(m, coords[i]), D, i)) ok = 0;
    CHECK(ok, "set_many contents");
    CHECK(ath_cellmap_validate(m, &err) == ATH_OK, "invariants after set_many: %s", err.message);

    /* bulk failures leave the map unchanged */
    {
        size_t before = ath_cellmap_size(m), bytes = ath_cellmap_memory_bytes(m);
        CHECK(ath_cellmap_set_many(m, 10, NULL, states, &err) == ATH_ERR_INVALID, "NULL coords");
        CHECK(ath_cellmap_set_many(m, 10, coords, NULL, &err) == ATH_ERR_INVALID, "NULL states");
        CHECK(ath_cellmap_set_many(m, ATH_CELLMAP_MAX_CELLS + 1, coords, states, &err) ==
                  ATH_ERR_RANGE,
              "too many cells refused");
        CHECK(ath_cellmap_size(m) == before && ath_cellmap_memory_bytes(m) == bytes,
              "failed set_many changed nothing");
        CHECK(ath_cellmap_set_many(m, 0, NULL, NULL, &err) == ATH_OK, "empty batch");
    }

    /* duplicates inside a batch: the last one wins */
    {
        ath_coord dup[3] = {{9, 9, 9}, {8, 8, 8}, {9, 9, 9}};
        ath_cf32 ds[3 * D];
        fill_state(ds, D, 1);
        fill_state(ds + D, D, 2);
        fill_state(ds + 2 * D, D, 3);
        ath_cellmap_create(D, &m2, &err);
        CHECK(ath_cellmap_set_many(m2, 3, dup, ds, &err) == ATH_OK && ath_cellmap_size(m2) == 2,
              "duplicates collapse");
        CHECK(state_is(ath_cellmap_get(m2, dup[0]), D, 3), "last duplicate wins");
    }

    /* get_many */
    memset(found, 7, N);
    coords[N - 1] = ath_coord_make(5, 5, -12345); /* absent */
    nfound = ath_cellmap_get_many(m, N, coords, out, found);
    CHECK(nfound == N - 1, "get_many count %zu", nfound);
    ok = 1;
    for (i = 0; i < N - 1; i++)
        if (found[i] != 1 || !state_is(out + i * D, D, i)) ok = 0;
    CHECK(ok, "get_many values");
    CHECK(found[N - 1] == 0 && out[(N - 1) * D].re == 0.0f && out[(N - 1) * D + 2].im == 0.0f,
          "get_many zero-fills absent cells");

    /* swap */
    {
        size_t a = ath_cellmap_size(m), b = ath_cellmap_size(m2);
        ath_cellmap_swap(m, m2);
        CHECK(ath_cellmap_size(m) == b && ath_cellmap_size(m2) == a, "swap sizes");
        CHECK(ath_cellmap_get(m, ath_coord_make(8, 8, 8)) != NULL &&
                  ath_cellmap_get(m2, coords[0]) != NULL && ath_cellmap_get(m, coords[0]) == NULL,
              "swap contents");
    }
    ath_cellmap_clear(m2);
    CHECK(ath_cellmap_size(m2) == 0 && ath_cellmap_get(m2, coords[0]) == NULL, "clear large map");
    fill_state(s, D, 5);
    CHECK(ath_cellmap_set(m2, coords[0], s, &err) == ATH_OK && ath_cellmap_size(m2) == 1,
          "reuse after clear");
done:
    ath_cellmap_destroy(m);
    ath_cellmap_destroy(m2);
    free(coords);
    free(states);
    free(out);
    free(found);
}

/* Small key sets at random offsets against a brute-force model: clusters
 * that wrap around the end of the table, backward-shift deletion. */
static void scalarmap_fuzz(void) {
    ath_scalarmap *m = NULL;
    ath_error err;
    double model[16];
    int has[16];
    int64_t base = 0, stride = 1;
    int i, k, ok = 1;
    size_t present = 0;
    ath_scalarmap_create(&m, &err);
    for (i = 0; i < 200000 && ok; i++) {
        if (i % 500 == 0) {
            ath_scalarmap_clear(m);
            memset(has, 0, sizeof has);
            present = 0;
            base = (int64_t)rng_next();
            stride = rng_range(1, 1000);
        }
        k = (int)rng_range(0, 15);
        if (rng_range(0, 1)) {
            if (ath_scalarmap_set(m, base + k * stride, (double)i, &err) != ATH_OK) ok = 0;
            if (!has[k]) present++;
            has[k] = 1;
            model[k] = (double)i;
        } else {
            if (ath_scalarmap_remove(m, base + k * stride) != has[k]) ok = 0;
            if (has[k]) present--;
            has[k] = 0;
        }
        if (ath_scalarmap_size(m) != present) ok = 0;
        for (k = 0; k < 16; k++) {
            double v;
            int f = ath_scalarmap_get(m, base + k * stride, &v);
            if (f != has[k] || (f && v != model[k])) ok = 0;
        }
    }
    CHECK(ok, "scalar map agrees with a brute-force model (op %d)", i);
    ath_scalarmap_destroy(m);
}

static void test_scalarmap(void) {
    ath_scalarmap *m = NULL;
    ath_error err;
    double v = -1.0;
    int64_t i;
    int ok;
    CHECK(ath_scalarmap_create(NULL, &err) == ATH_ERR_INVALID, "NULL out");
    CHECK(ath_scalarmap_create(&m, &err) == ATH_OK, "create");
    CHECK(ath_scalarmap_size(m) == 0 && !ath_scalarmap_get(m, 1, &v) && v == -1.0, "empty");
    CHECK(ath_scalarmap_remove(m, 1) == 0, "remove from empty");
    CHECK(ath_scalarmap_set(m, INT64_MIN, 1.5, &err) == ATH_OK, "INT64_MIN key");
    CHECK(ath_scalarmap_set(m, INT64_MAX, 2.5, &err) == ATH_OK, "INT64_MAX key");
    CHECK(ath_scalarmap_set(m, 0, 3.5, &err) == ATH_OK, "zero key");
    CHECK(ath_scalarmap_get(m, INT64_MIN, &v) && v == 1.5, "get INT64_MIN");
    CHECK(ath_scalarmap_get(m, INT64_MAX, &v) && v == 2.5, "get INT64_MAX");
    CHECK(ath_scalarmap_set(m, 0, -7.0, &err) == ATH_OK && ath_scalarmap_size(m) == 3, "overwrite");
    CHECK(ath_scalarmap_get(m, 0, &v) && v == -7.0, "overwritten");
    CHECK(ath_scalarmap_remove(m, INT64_MIN) == 1 && ath_scalarmap_size(m) == 2, "remove");
    CHECK(!ath_scalarmap_get(m, INT64_MIN, NULL) && ath_scalarmap_get(m, INT64_MAX, NULL), "after remove");
    ath_scalarmap_clear(m);
    CHECK(ath_scalarmap_size(m) == 0 && !ath_scalarmap_get(m, 0, NULL), "clear");
    for (i = -100000; i < 100000; i++) ath_scalarmap_set(m, i * 3, (double)i / 4.0, &err);
    for (i = -100000; i < 100000; i += 3) ath_scalarmap_remove(m, i * 3);
    ok = ath_scalarmap_size(m) == 200000 - 66667;
    for (i = -100000; i < 100000 && ok; i++) {
        int present = ath_scalarmap_get(m, i * 3, &v);
        if ((i + 100000) % 3 == 0 ? present : (!present || v != (double)i / 4.0)) ok = 0;
        if (ath_scalarmap_get(m, i * 3 + 1, NULL)) ok = 0;
    }
    CHECK(ok, "2e5 inserts, removals and lookups");
    ok = 1;
    for (i = 0; i < (int64_t)ath_scalarmap_size(m); i++) {
        double w;
        if (!ath_scalarmap_get(m, ath_scalarmap_keys(m)[i], &w) || w != ath_scalarmap_values(m)[i])
            ok = 0;
    }
    CHECK(ok, "keys()/values() views agree with lookups");
    ath_scalarmap_destroy(m);
    ath_scalarmap_destroy(NULL);
}

/* ======================================================================== */
/* vacuum: checked against an independent transcription of DESIGN §3.2     */
/* ======================================================================== */

static uint64_t ref_mix(uint64_t z) {
    z = z + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static ath_cf32 ref_vacuum(uint64_t seed, int64_t x, int64_t y, int64_t z, int64_t step,
                           int64_t channel, double strength) {
    uint64_t h = ref_mix(seed);
    double u1, u2, g, n;
    ath_cf32 r;
    h = ref_mix(h ^ (uint64_t)x);
    h = ref_mix(h ^ (uint64_t)y);
    h = ref_mix(h ^ (uint64_t)z);
    h = ref_mix(h ^ (uint64_t)step);
    h = ref_mix(h ^ (uint64_t)channel);
    u1 = ldexp((double)((h >> 11) + 1), -53);
    u2 = ldexp((double)(ref_mix(h) >> 11), -53);
    g = sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
    n = strength * g;
    r.re = (float)cos(n);
    r.im = (float)sin(n);
    return r;
}

static int cf_equal(ath_cf32 a, ath_cf32 b) { return a.re == b.re && a.im == b.im; }

static void test_vacuum(void) {
    ath_vacuum vac;
    ath_error err;
    ath_cf32 cell[8];
    static const uint64_t seeds[] = {0, 1, 42, 0xFFFFFFFFFFFFFFFFULL, 0x8000000000000000ULL};
    static const int64_t coords[][3] = {
        {0, 0, 0}, {1, 2, 3}, {-1, -1, -1}, {-5, 17, 0}, {1000000007, -999999937, 4},
        {ATH_COORD_LIMIT, -ATH_COORD_LIMIT, 0}, {123456789012LL, 0, -3}};
    static const int64_t steps[] = {0, 1, 7, 1000000};
    size_t si, ci, ti;
    int64_t k;
    int ok = 1;

    CHECK(ath_mix64(0) == 0xE220A8397B1DCDAFULL, "mix(0) = first splitmix64 output of seed 0");
    CHECK(ath_mix64(12345) == ref_mix(12345), "mix matches the reference");

    /* validation */
    vac.d_state = 77;
    CHECK(ath_vacuum_init(&vac, 0, 0, 0.1, &err) == ATH_ERR_INVALID && vac.d_state == 77,
          "d_state 0 refused, vac unchanged");
    CHECK(ath_vacuum_init(&vac, ATH_MAX_D_STATE + 1, 0, 0.1, &err) == ATH_ERR_INVALID, "d too big");
    CHECK(ath_vacuum_init(&vac, 4, 0, -0.5, &err) == ATH_ERR_INVALID, "negative strength");
    CHECK(ath_vacuum_init(&vac, 4, 0, NAN, &err) == ATH_ERR_INVALID, "NaN strength");
    CHECK(ath_vacuum_init(&vac, 4, 0, INFINITY, &err) == ATH_ERR_INVALID, "inf strength");
    CHECK(strstr(err.message, "strength") != NULL, "message names strength: %s", err.message);
    CHECK(ath_vacuum_init(NULL, 4, 0, 0.1, &err) == ATH_ERR_INVALID, "NULL vac");
    CHECK(vac.d_state == 77, "failed inits left vac unchanged");

    for (si = 0; si < sizeof seeds / sizeof seeds[0]; si++) {
        CHECK(ath_vacuum_init(&vac, 5, seeds[si], si == 2 ? 1.7 : 0.1, &err) == ATH_OK, "init");
        for (ci = 0; ci < sizeof coords / sizeof coords[0]; ci++)
            for (ti = 0; ti < sizeof steps / sizeof steps[0]; ti++) {
                ath_vacuum_cell(&vac, ath_coord_make(coords[ci][0], coords[ci][1], coords[ci][2]),
                                steps[ti], cell);
                for (k = 0; k < 5; k++)
                    if (!cf_equal(cell[k], ref_vacuum(seeds[si], coords[ci][0], coords[ci][1],
                                                      coords[ci][2], steps[ti], k, vac.strength)))
                        ok = 0;
            }
    }
    CHECK(ok, "ath_vacuum_cell equals the DESIGN formula bit for bit");

    /* distinct inputs give distinct values; strength 0 gives exactly 1 */
    ath_vacuum_init(&vac, 2, 9, 0.1, &err);
    {
        ath_cf32 a[2], b[2];
        ath_vacuum_cell(&vac, ath_coord_make(1, 2, 0), 0, a);
        ath_vacuum_cell(&vac, ath_coord_make(2, 1, 0), 0, b);
        CHECK(!cf_equal(a[0], b[0]), "swapped x/y differ");
        ath_vacuum_cell(&vac, ath_coord_make(1, 2, 0), 1, b);
        CHECK(!cf_equal(a[0], b[0]), "steps differ");
        CHECK(!cf_equal(a[0], a[1]), "channels differ");
        ath_vacuum_init(&vac, 2, 9, 0.0, &err);
        ath_vacuum_cell(&vac, ath_coord_make(1, 2, 0), 0, a);
        CHECK(a[0].re == 1.0f && a[0].im == 0.0f && a[1].re == 1.0f, "strength 0 -> psi = 1");
    }

    /* distribution: im = sin(strength*g) ~ strength*N(0,1); |psi| = 1 */
    {
        const int64_t side = 300;
        ath_cf32 *reg = (ath_cf32 *)malloc((size_t)(side * side) * sizeof *reg);
        double sum = 0, sum2 = 0, maxdev = 0;
        int64_t i;
        ath_vacuum_init(&vac, 1, 3, 0.1, &err);
        CHECK(ath_vacuum_region(&vac, -150, -150, 150, 150, 0, 0, reg, &err) == ATH_OK, "region");
        for (i = 0; i < side * side; i++) {
            double g = asin((double)reg[i].im) / 0.1;
            double m = hypot(reg[i].re, reg[i].im);
            sum += g;
            sum2 += g * g;
            if (fabs(m - 1.0) > maxdev) maxdev = fabs(m - 1.0);
        }
        sum /= (double)(side * side);
        sum2 = sum2 / (double)(side * side) - sum * sum;
        CHECK(fabs(sum) < 0.02 && fabs(sum2 - 1.0) < 0.03, "N(0,1): mean %g var %g", sum, sum2);
        CHECK(maxdev < 1e-6, "|psi| = 1 (max deviation %g)", maxdev);
        free(reg);
    }

    /* region == cells, any thread count */
    {
        const int64_t x0 = -37, y0 = 11, x1 = 45, y1 = 70, z = -2, step = 13, d = 3;
        const int64_t w = x1 - x0, h = y1 - y0;
        ath_cf32 *r1 = (ath_cf32 *)malloc((size_t)(w * h * d) * sizeof *r1);
        ath_cf32 *r2 = (ath_cf32 *)malloc((size_t)(w * h * d) * sizeof *r2);
        ath_cf32 *r3 = (ath_cf32 *)malloc((size_t)(w * h * d) * sizeof *r3);
        ath_coord *cs = (ath_coord *)malloc((size_t)(w * h) * sizeof *cs);
        int64_t x, y;
        int saved = ath_get_max_threads();
        ath_vacuum_init(&vac, d, 0xDEADBEEFULL, 0.3, &err);
        ath_set_num_threads(1);
        CHECK(ath_vacuum_region(&vac, x0, y0, x1, y1, z, step, r1, &err) == ATH_OK, "region 1 thread");
        ath_set_num_threads(4);
        CHECK(ath_vacuum_region(&vac, x0, y0, x1, y1, z, step, r2, &err) == ATH_OK, "region 4 threads");
        ath_set_num_threads(saved);
        CHECK(memcmp(r1, r2, (size_t)(w * h * d) * sizeof *r1) == 0, "thread count does not matter");
        ok = 1;
        for (y = y0; y < y1; y++)
            for (x = x0; x < x1; x++) {
                cs[(y - y0) * w + (x - x0)] = ath_coord_make(x, y, z);
                for (k = 0; k < d; k++)
                    if (!cf_equal(r1[((y - y0) * w + (x - x0)) * d + k],
                                  ref_vacuum(vac.seed, x, y, z, step, k, 0.3)))
                        ok = 0;
            }
        CHECK(ok, "region[y-y0][x-x0][k] equals the formula");
        CHECK(ath_vacuum_cells(&vac, (size_t)(w * h), cs, step, r3, &err) == ATH_OK, "cells");
        CHECK(memcmp(r1, r3, (size_t)(w * h * d) * sizeof *r1) == 0, "cells equals region");

        /* bad regions */
        CHECK(ath_vacuum_region(&vac, 5, 0, 4, 1, 0, 0, r1, &err) == ATH_ERR_INVALID, "x1 < x0");
        CHECK(ath_vacuum_region(&vac, 0, 5, 1, 4, 0, 0, r1, &err) == ATH_ERR_INVALID, "y1 < y0");
        CHECK(ath_vacuum_region(&vac, INT64_MIN, 0, INT64_MAX, 1, 0, 0, r1, &err) == ATH_ERR_RANGE,
              "coords beyond the limit");
        CHECK(ath_vacuum_region(&vac, 0, 0, 1, 1, ATH_COORD_LIMIT + 1, 0, r1, &err) == ATH_ERR_RANGE,
              "z beyond the limit");
        CHECK(ath_vacuum_region(&vac, -ATH_COORD_LIMIT, -ATH_COORD_LIMIT, ATH_COORD_LIMIT,
                                ATH_COORD_LIMIT, 0, 0, r1, &err) == ATH_ERR_RANGE,
              "absurd region refused");
        CHECK(ath_vacuum_region(&vac, 0, 0, 0, 10, 0, 0, NULL, &err) == ATH_OK, "empty region");
        CHECK(ath_vacuum_region(&vac, 0, 0, 2, 2, 0, 0, NULL, &err) == ATH_ERR_INVALID, "NULL out");
        CHECK(ath_vacuum_cells(&vac, 4, NULL, 0, r1, &err) == ATH_ERR_INVALID, "cells NULL coords");
        CHECK(ath_vacuum_region(NULL, 0, 0, 1, 1, 0, 0, r1, &err) == ATH_ERR_INVALID, "NULL vac");
        free(r1);
        free(r2);
        free(r3);
        free(cs);
    }
}

/* ======================================================================== */
/* viz                                                                      */
/* ======================================================================== */

/* numpy.gradient (edge_order=1, unit spacing) of f[0..n) with stride s, at i. */
static double ref_grad(const double *f, int64_t n, int64_t s, int64_t i) {
    if (n < 2) return 0.0;
    if (i == 0) return f[s] - f[0];
    if (i == n - 1) return f[(n - 1) * s] - f[(n - 2) * s];
    return (f[(i + 1) * s] - f[(i - 1) * s]) / 2.0;
}

static void check_viz_shape(int64_t h, int64_t w, int64_t d) {
    ath_error err;
    int64_t n = h * w, i, k, x, y;
    ath_cf32 *f = (ath_cf32 *)malloc((size_t)(n * d) * sizeof *f);
    float *out = (float *)malloc((size_t)n * sizeof *out);
    double *comp = (double *)malloc((size_t)n * sizeof *comp);
    double *dens = (double *)malloc((size_t)n * sizeof *dens);
    double *energy = (double *)calloc((size_t)n, sizeof *energy);
    double maxerr;
    int c;

    for (i = 0; i < n * d; i++) {
        f[i].re = (float)((double)rng_range(-1000, 1000) / 700.0);
        f[i].im = (float)((double)rng_range(-1000, 1000) / 900.0);
    }
    for (i = 0; i < n; i++) {
        dens[i] = 0;
        for (k = 0; k < d; k++)
            dens[i] += (double)f[i * d + k].re * f[i * d + k].re + (double)f[i * d + k].im * f[i * d + k].im;
    }
    /* energy: per channel and part, gradients along x (axis 1) and y (axis 0) */
    for (k = 0; k < d; k++)
        for (c = 0; c < 2; c++) {
            for (i = 0; i < n; i++) comp[i] = c == 0 ? f[i * d + k].re : f[i * d + k].im;
            for (y = 0; y < h; y++)
                for (x = 0; x < w; x++) {
                    double gx = ref_grad(comp + y * w, w, 1, x), gy = ref_grad(comp + x, h, w, y);
                    energy[y * w + x] += gx * gx + gy * gy;
                }
        }

    CHECK(ath_viz_compute(ATH_VIZ_DENSITY, f, h, w, d, 0, out, &err) == ATH_OK, "density");
    maxerr = 0;
    for (i = 0; i < n; i++) maxerr = fmax(maxerr, fabs(out[i] - dens[i]) / (1 + dens[i]));
    CHECK(maxerr < 1e-6, "density values (%lldx%lld, err %g)", (long long)h, (long long)w, maxerr);

    CHECK(ath_viz_compute(ATH_VIZ_ENERGY, f, h, w, d, 0, out, &err) == ATH_OK, "energy");
    maxerr = 0;
    for (i = 0; i < n; i++) maxerr = fmax(maxerr, fabs(out[i] - energy[i]) / (1 + energy[i]));
    CHECK(maxerr < 1e-5, "energy = numpy.gradient sums (%lldx%lld, err %g)", (long long)h,
          (long long)w, maxerr);

    CHECK(ath_viz_compute(ATH_VIZ_GRADIENT, f, h, w, d, 0, out, &err) == ATH_OK, "gradient");
    maxerr = 0;
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++) {
            double gx = ref_grad(dens + y * w, w, 1, x), gy = ref_grad(dens + x, h, w, y);
            double g = sqrt(gx * gx + gy * gy);
            maxerr = fmax(maxerr, fabs(out[y * w + x] - g) / (1 + g));
        }
    CHECK(maxerr < 1e-5, "gradient = |numpy.gradient(density)| (%lldx%lld, err %g)", (long long)h,
          (long long)w, maxerr);

    k = d - 1;
    CHECK(ath_viz_compute(ATH_VIZ_PHASE, f, h, w, d, k, out, &err) == ATH_OK, "phase");
    maxerr = 0;
    for (i = 0; i < n; i++) maxerr = fmax(maxerr, fabs(out[i] - atan2(f[i * d + k].im, f[i * d + k].re)));
    CHECK(maxerr < 1e-6, "phase of the last channel (err %g)", maxerr);
    CHECK(ath_viz_compute(ATH_VIZ_REAL, f, h, w, d, k, out, &err) == ATH_OK, "real");
    maxerr = 0;
    for (i = 0; i < n; i++) maxerr = fmax(maxerr, fabs(out[i] - f[i * d + k].re));
    CHECK(maxerr == 0, "real part");
    CHECK(ath_viz_compute(ATH_VIZ_IMAG, f, h, w, d, 0, out, &err) == ATH_OK, "imag");
    maxerr = 0;
    for (i = 0; i < n; i++) maxerr = fmax(maxerr, fabs(out[i] - f[i * d].im));
    CHECK(maxerr == 0, "imag part");

    free(f);
    free(out);
    free(comp);
    free(dens);
    free(energy);
}

static void test_viz(void) {
    ath_viz_type t;
    ath_error err;
    ath_cf32 f[4] = {{1, 0}, {0, 1}, {-1, 0}, {0, -1}};
    float out[4] = {7, 7, 7, 7};
    int i;
    static const char *names[ATH_VIZ_COUNT] = {"density", "phase", "energy", "real",
                                               "imag",    "gradient", "holographic", "holographic_bulk"};

    for (i = 0; i < ATH_VIZ_COUNT; i++) {
        CHECK(ath_viz_parse(names[i], &t, &err) == ATH_OK && (int)t == i, "parse %s", names[i]);
        CHECK(strcmp(ath_viz_name((ath_viz_type)i), names[i]) == 0, "name %d", i);
    }
    CHECK(ath_viz_parse("Density", &t, &err) == ATH_OK && t == ATH_VIZ_DENSITY, "case-insensitive");
    CHECK(ath_viz_parse("spin", &t, &err) == ATH_ERR_INVALID, "unknown name");
    CHECK(strstr(err.message, "spin") != NULL, "message names the input: %s", err.message);
    CHECK(ath_viz_parse(NULL, &t, &err) == ATH_ERR_INVALID, "NULL name");
    CHECK(strcmp(ath_viz_name(ATH_VIZ_COUNT), "unknown") == 0, "name out of range");

    /* hand-computed 2x2, d=1: psi = 1, i / -1, -i */
    CHECK(ath_viz_compute(ATH_VIZ_PHASE, f, 2, 2, 1, 0, out, &err) == ATH_OK, "phase 2x2");
    CHECK(out[0] == 0.0f && fabsf(out[1] - 1.5707964f) < 1e-7f && fabsf(out[2] - 3.1415927f) < 1e-7f &&
              fabsf(out[3] + 1.5707964f) < 1e-7f,
          "phase values %g %g %g %g", out[0], out[1], out[2], out[3]);
    /* d/dx: row0 (i-1), row1 (-i+1); d/dy: col0 (-2), col1 (-2i): |.|^2 sums = 2+4 = 6 */
    CHECK(ath_viz_compute(ATH_VIZ_ENERGY, f, 2, 2, 1, 0, out, &err) == ATH_OK && out[0] == 6.0f &&
              out[3] == 6.0f,
          "energy 2x2 by hand: %g", out[0]);
    CHECK(ath_viz_compute(ATH_VIZ_GRADIENT, f, 2, 2, 1, 0, out, &err) == ATH_OK && out[0] == 0.0f,
          "uniform density has zero gradient");

    /* validation, out untouched */
    out[0] = 42.0f;
    CHECK(ath_viz_compute(ATH_VIZ_REAL, f, 2, 2, 1, 1, out, &err) == ATH_ERR_INVALID, "channel >= d");
    CHECK(strstr(err.message, "channel") != NULL, "message names channel: %s", err.message);
    CHECK(ath_viz_compute(ATH_VIZ_REAL, f, 2, 2, 1, -1, out, &err) == ATH_ERR_INVALID, "channel < 0");
    CHECK(ath_viz_compute(ATH_VIZ_COUNT, f, 2, 2, 1, 0, out, &err) == ATH_ERR_INVALID, "bad type");
    CHECK(ath_viz_compute((ath_viz_type)-1, f, 2, 2, 1, 0, out, &err) == ATH_ERR_INVALID, "negative type");
    CHECK(ath_viz_compute(ATH_VIZ_DENSITY, f, 2, 2, 0, 0, out, &err) == ATH_ERR_INVALID, "d 0");
    CHECK(ath_viz_compute(ATH_VIZ_DENSITY, f, -1, 2, 1, 0, out, &err) == ATH_ERR_RANGE, "h < 0");
    CHECK(ath_viz_compute(ATH_VIZ_DENSITY, NULL, 2, 2, 1, 0, out, &err) == ATH_ERR_INVALID, "NULL field");
    CHECK(out[0] == 42.0f, "failed calls leave out untouched");
    CHECK(ath_viz_compute(ATH_VIZ_DENSITY, NULL, 0, 5, 1, 0, NULL, &err) == ATH_OK, "empty field");

    check_viz_shape(7, 9, 3);
    check_viz_shape(1, 6, 2); /* 1-high: y contributes 0 */
    check_viz_shape(5, 1, 1); /* 1-wide */
    check_viz_shape(1, 1, 2);
    check_viz_shape(2, 3, 1);
    check_viz_shape(130, 140, 2); /* big enough for the parallel path */
}

int main(void) {
    test_coord();
    test_cellmap_basic();
    test_cellmap_fuzz();
    test_cellmap_large();
    test_cellmap_bulk();
    test_scalarmap();
    scalarmap_fuzz();
    test_vacuum();
    test_viz();
    return check_summary();
}
