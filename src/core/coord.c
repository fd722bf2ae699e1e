/* Integer lattice coordinates: hashing and Morton (Z-order) sorting. */
#include "atheria/alloc.h"
#include "atheria/coord.h"
#include "coord_internal.h"
#include "mix.h"

#include <stdlib.h>
#include <string.h>


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

static int key_less(const ath_coord *coords, const skey *a, const skey *b) {
    if (a->key != b->key) return a->key < b->key;
    return ath_coord_compare_morton(&coords[a->idx], &coords[b->idx]) < 0;
}

/* Stable merge sort of a[0, n) by (key, coordinate) using tmp. */
static void merge_sort_keys(const ath_coord *coords, skey *a, skey *tmp, size_t n) {
    size_t width, i;
    skey *src = a, *dst = tmp;
    for (width = 1; width < n; width *= 2) {
        for (i = 0; i < n; i += 2 * width) {
            size_t l = i, m = i + width < n ? i + width : n, h = i + 2 * width < n ? i + 2 * width : n;
            size_t p = l, q = m, k = l;
            while (p < m && q < h) dst[k++] = key_less(coords, &src[q], &src[p]) ? src[q++] : src[p++];
            while (p < m) dst[k++] = src[p++];
            while (q < h) dst[k++] = src[q++];
        }
        {
            skey *t = src;
            src = dst;
            dst = t;
        }
    }
    if (src != a) memcpy(a, src, n * sizeof *a);
}

skey *ath_coord_morton_sort_keys(skey *a, skey *tmp, size_t n, const ath_coord *coords) {
    int pass;
    size_t i;
    if (n == 0) return a;
    for (pass = 0; pass < 8; pass++) {
        const int shift = pass * 8;
        size_t count[256], pos = 0;
        skey *t;
        memset(count, 0, sizeof count);
        for (i = 0; i < n; i++) count[(a[i].key >> shift) & 0xFF]++;
        if (count[(a[0].key >> shift) & 0xFF] == n) continue; /* byte constant */
        for (i = 0; i < 256; i++) {
            const size_t c = count[i];
            count[i] = pos;
            pos += c;
        }
        for (i = 0; i < n; i++) tmp[count[(a[i].key >> shift) & 0xFF]++] = a[i];
        t = a;
        a = tmp;
        tmp = t;
    }
    if (coords != NULL) {
        /* runs of equal keys (coordinates that tie beyond the key's 21 bits) by the
         * comparator; the passes swapped a and tmp, so tmp is the other buffer */
        skey *scratch = tmp;
        for (i = 0; i + 1 < n;) {
            size_t j = i + 1;
            while (j < n && a[j].key == a[i].key) j++;
            if (j - i > 1) merge_sort_keys(coords, a + i, scratch + i, j - i);
            i = j;
        }
    }
    return a;
}

void ath_coord_sort_morton(ath_coord *coords, size_t n) {
    skey *keys, *tmp, *k;
    ath_coord *out;
    size_t i;
    if (coords == NULL || n < 2) return;
    keys = n <= SIZE_MAX / (2 * sizeof *keys) ? (skey *)ath_malloc(2 * n * sizeof *keys) : NULL;
    out = keys != NULL ? (ath_coord *)ath_malloc(n * sizeof *out) : NULL;
    if (out == NULL) {
        /* without scratch memory: the comparator in place (the same order) */
        ath_free(keys);
        qsort(coords, n, sizeof *coords, ath_coord_compare_morton);
        return;
    }
    tmp = keys + n;
    for (i = 0; i < n; i++) {
        keys[i].key = ath_coord_morton(coords[i]);
        keys[i].idx = (uint64_t)i;
    }
    k = ath_coord_morton_sort_keys(keys, tmp, n, coords);
    for (i = 0; i < n; i++) out[i] = coords[k[i].idx];
    memcpy(coords, out, n * sizeof *out);
    ath_free(out);
    ath_free(keys);
}
