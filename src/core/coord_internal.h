/* coord_internal.h — the one Morton sort, shared by coord.c and the sparse step. */
#ifndef ATHERIA_COORD_INTERNAL_H
#define ATHERIA_COORD_INTERNAL_H

#include "atheria/coord.h"

/* A sort key: the Morton key of an item and the item's index. */
typedef struct skey {
    uint64_t key;
    uint64_t idx;
} skey;

/* Sorts a[0, n) by key (LSD radix sort, stable) and, when coords != NULL, runs of
 * equal keys by ath_coord_compare_morton(coords[idx]) (the order of
 * ath_coord_sort_morton).  tmp holds n keys.  Returns the array holding the
 * result (a or tmp). */
skey *ath_coord_morton_sort_keys(skey *a, skey *tmp, size_t n, const ath_coord *coords);

#endif
