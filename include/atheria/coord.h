/* atheria/coord.h — integer lattice coordinates, hashing and Morton order. */
#ifndef ATHERIA_COORD_H
#define ATHERIA_COORD_H

#include "atheria/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ath_coord {
    int64_t x;
    int64_t y;
    int64_t z;
} ath_coord;

static inline ath_coord ath_coord_make(int64_t x, int64_t y, int64_t z) {
    ath_coord c = {x, y, z};
    return c;
}
static inline int ath_coord_equal(ath_coord a, ath_coord b) {
    return a.x == b.x && a.y == b.y && a.z == b.z;
}
/* 1 if every component is within +-ATH_COORD_LIMIT. */
static inline int ath_coord_in_limits(ath_coord c) {
    return c.x >= -ATH_COORD_LIMIT && c.x <= ATH_COORD_LIMIT && c.y >= -ATH_COORD_LIMIT &&
           c.y <= ATH_COORD_LIMIT && c.z >= -ATH_COORD_LIMIT && c.z <= ATH_COORD_LIMIT;
}

/* Well-mixed 64-bit hash (splitmix64 finaliser over the three components). */
uint64_t ath_coord_hash(ath_coord c);

/* Morton (Z-order) key of the low 21 bits of each component, offset so that
 * negative coordinates order before positive ones.  Used to sort cells for
 * cache locality and deterministic iteration. */
uint64_t ath_coord_morton(ath_coord c);

/* qsort comparator: Morton order, ties broken by (z, y, x). */
int ath_coord_compare_morton(const void *a, const void *b);

/* Sorts n coordinates in place in Morton order. */
void ath_coord_sort_morton(ath_coord *coords, size_t n);

#ifdef __cplusplus
}
#endif
#endif
