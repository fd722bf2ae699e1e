/* hash_index.h — the one hash-table implementation of the C core.
 *
 * An open-addressing index (linear probing, power-of-two size, load <= 1/2,
 * backward-shift deletion, no tombstones) of 32-bit entry numbers into the
 * caller's dense arrays: the keys live in the caller's storage (coords[],
 * keys[], tile coordinates), the index maps a key's hash to its entry.  The
 * cell map and the scalar map (sparse_map.c) and the sparse Engine's tile and
 * block tables (tile_index.c, eval_tile.c) are all this index.
 *
 * Everything is static inline and takes the key's hash and equality as
 * functions; callers pass their own static inline functions, which the
 * compiler inlines (no indirect calls in the probe loops).  The index does not
 * allocate: callers own the slot array (ath_malloc'd or step scratch) and
 * size it with ath_hindex_size_for(). */
#ifndef ATHERIA_HASH_INDEX_H
#define ATHERIA_HASH_INDEX_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ATH_HINDEX_EMPTY UINT32_MAX
#define ATH_HINDEX_MIN ((size_t)16)

/* slots[size]: entry numbers or ATH_HINDEX_EMPTY; size is a power of two (or 0: no index). */
typedef struct ath_hindex {
    uint32_t *slots;
    size_t size;
} ath_hindex;

/* Hash of entry e of the caller's keys. */
typedef uint64_t (*ath_hindex_entry_hash)(const void *keys, uint32_t e);
/* 1 if entry e of the caller's keys equals *key. */
typedef int (*ath_hindex_entry_eq)(const void *keys, uint32_t e, const void *key);

/* Smallest power of two >= 2 n (and >= ATH_HINDEX_MIN): load <= 1/2. */
static inline size_t ath_hindex_size_for(size_t n) {
    size_t t = ATH_HINDEX_MIN;
    while (t < 2 * n) t <<= 1;
    return t;
}

static inline void ath_hindex_clear(ath_hindex *ix) {
    if (ix->slots != NULL) memset(ix->slots, 0xFF, ix->size * sizeof *ix->slots);
}

/* Slot holding the key (*found = 1) or the empty slot where it would go (*found = 0).
 * Requires ix->size > 0. */
static inline size_t ath_hindex_probe(const ath_hindex *ix, uint64_t hash, const void *keys, const void *key,
                                      ath_hindex_entry_eq eq, int *found) {
    const size_t mask = ix->size - 1;
    size_t i = (size_t)hash & mask;
    for (;;) {
        const uint32_t e = ix->slots[i];
        if (e == ATH_HINDEX_EMPTY) {
            *found = 0;
            return i;
        }
        if (eq(keys, e, key)) {
            *found = 1;
            return i;
        }
        i = (i + 1) & mask;
    }
}

/* Entry of the key, or -1.  Read-only (parallel-safe). */
static inline int64_t ath_hindex_find(const ath_hindex *ix, uint64_t hash, const void *keys, const void *key,
                                      ath_hindex_entry_eq eq) {
    int found;
    size_t s;
    if (ix->size == 0) return -1;
    s = ath_hindex_probe(ix, hash, keys, key, eq, &found);
    return found ? (int64_t)ix->slots[s] : -1;
}

/* Fills an empty index (fresh slots, all ATH_HINDEX_EMPTY) with entries 0..n-1 (distinct keys). */
static inline void ath_hindex_insert_all(ath_hindex *ix, size_t n, const void *keys, ath_hindex_entry_hash hash) {
    const size_t mask = ix->size - 1;
    size_t i;
    for (i = 0; i < n; i++) {
        size_t j = (size_t)hash(keys, (uint32_t)i) & mask;
        while (ix->slots[j] != ATH_HINDEX_EMPTY) j = (j + 1) & mask;
        ix->slots[j] = (uint32_t)i;
    }
}

/* Empties slot `slot` by backward-shift deletion (the entries after it in its
 * probe run move back where their home allows). */
static inline void ath_hindex_erase(ath_hindex *ix, size_t slot, const void *keys, ath_hindex_entry_hash hash) {
    const size_t mask = ix->size - 1;
    size_t hole = slot, j = slot;
    for (;;) {
        size_t k;
        j = (j + 1) & mask;
        if (ix->slots[j] == ATH_HINDEX_EMPTY) break;
        k = (size_t)hash(keys, ix->slots[j]) & mask;
        /* the entry at j may move to the hole unless its home lies cyclically in (hole, j] */
        if ((j > hole && (k <= hole || k > j)) || (j < hole && k <= hole && k > j)) {
            ix->slots[hole] = ix->slots[j];
            hole = j;
        }
    }
    ix->slots[hole] = ATH_HINDEX_EMPTY;
}

/* 1 if the linear-probing invariant holds for slot i (no empty slot between its home and i). */
static inline int ath_hindex_reachable(const ath_hindex *ix, size_t i, const void *keys, ath_hindex_entry_hash hash) {
    const size_t mask = ix->size - 1;
    size_t k;
    for (k = (size_t)hash(keys, ix->slots[i]) & mask; k != i; k = (k + 1) & mask)
        if (ix->slots[k] == ATH_HINDEX_EMPTY) return 0;
    return 1;
}

#endif
