/* Integer lattice coordinates: hashing and Morton (Z-order) sorting. */
#include "atheria/alloc.h"
#include "atheria/coord.h"
#include "mix.h"

#include <stdlib.h>


uint64_t ath_coord_hash(ath_coord c) {
    uint64_t h = ath_mix64_inline((uint64_t)c.x);
    h = ath_mix64_inline(h ^ (uint64_t)c.y);
    return ath_mix64_inline(h ^ (uint64_t)c.z);
}

/* Spreads the low 21 bits of v so that bit i lands at bit 3i. */
static inline uint64_t spread3(uint64_t v) {
    v &= 0x1FFFFFULL;
    v = (v | (v << 32)) & 0x001F00000000FFFFULL;
    v = (v | (v << 16)) & 0x001F0000FF0000FFULL;
    v = (v | (v << 8)) & 0x100F00F00F00F00FULL;
    v = (v | (v << 4)) & 0x10C30C30C30C30C3ULL;
    v = (v | (v << 2)) & 0x1249249249249249ULL;
    return v;
}

/* Offset by 2^20 so that -2^20 .. 2^20-1 map monotonically onto 0 .. 2^21-1. */
static inline uint64_t morton_component(int64_t c) {
    return ((uint64_t)c + ((uint64_t)1 << 20)) & 0x1FFFFFULL;
}

uint64_t ath_coord_morton(ath_coord c) {
    return spread3(morton_component(c.x)) | (spread3(morton_component(c.y)) << 1) |
           (spread3(morton_component(c.z)) << 2);
}

static int compare_ties(const ath_coord *a, const ath_coord *b) {
    if (a->z != b->z) return a->z < b->z ? -1 : 1;
    if (a->y != b->y) return a->y < b->y ? -1 : 1;
    if (a->x != b->x) return a->x < b->x ? -1 : 1;
    return 0;
}

int ath_coord_compare_morton(const void *pa, const void *pb) {
    const ath_coord *a = (const ath_coord *)pa;
    const ath_coord *b = (const ath_coord *)pb;
    uint64_t ka = ath_coord_morton(*a), kb = ath_coord_morton(*b);
    if (ka != kb) return ka < kb ? -1 : 1;
    return compare_ties(a, b);
}

typedef struct keyed_coord {
    uint64_t key;
    ath_coord c;
} keyed_coord;

static int compare_keyed(const void *pa, const void *pb) {
    const keyed_coord *a = (const keyed_coord *)pa;
    const keyed_coord *b = (const keyed_coord *)pb;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return compare_ties(&a->c, &b->c);
}

void ath_coord_sort_morton(ath_coord *coords, size_t n) {
    keyed_coord *tmp;
    size_t i;
    if (coords == NULL || n < 2) return;
    /* Precomputing the keys makes the sort several times faster; without the
     * scratch memory, fall back to the in-place comparator (same order). */
    tmp = n <= SIZE_MAX / sizeof *tmp ? (keyed_coord *)ath_malloc(n * sizeof *tmp) : NULL;
    if (tmp == NULL) {
        qsort(coords, n, sizeof *coords, ath_coord_compare_morton);
        return;
    }
    for (i = 0; i < n; i++) {
        tmp[i].key = ath_coord_morton(coords[i]);
        tmp[i].c = coords[i];
    }
    qsort(tmp, n, sizeof *tmp, compare_keyed);
    for (i = 0; i < n; i++) coords[i] = tmp[i].c;
    ath_free(tmp);
}
