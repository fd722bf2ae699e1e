/* blocks.h — persistent leaf-block storage of the sparse Engine's matter.
 *
 * OpenVDB-style leaves: matter cells are grouped into in-plane leaves of
 * ATH_LEAF x ATH_LEAF cells (z is part of the leaf key).  A leaf is found
 * through the core's one hash index (hash_index.h) keyed by the leaf
 * coordinate (tx, ty, z) and holds an active mask (bit ly * ATH_LEAF + lx)
 * and, per cell, the number of its value in the value pool.  The pool holds
 * the d_state complex64 values of every cell in the Engine's storage order
 * (the order matter() reports: first insertion, then the evaluated set's
 * Morton order after a step), with one back reference per value to its leaf.
 * No coordinate is stored per cell: a cell's coordinate is its leaf's key
 * and its position in the leaf.
 *
 * Leaf side 4 (ATH_LEAF_LOG 2): a leaf's mask is the 16-bit occupancy of
 * the step's 4 x 4 tile, so the step seeds its tile index from the leaves
 * (one hash insert per leaf, not per cell).  Memory at d_state 8 (64 B of
 * values per cell), measured by tests/c/test_blocks.c: 4 B back reference
 * per cell; per leaf a key (24 B), 16 value numbers (64 B), a mask (2 B) and
 * about two index slots, i.e. ~74 B per cell for compact matter and ~170 B
 * per cell for isolated cells (one leaf each, values still one per cell). */
#ifndef ATHERIA_BLOCKS_H
#define ATHERIA_BLOCKS_H

#include "atheria/common.h"
#include "atheria/coord.h"

#include <stddef.h>
#include <stdint.h>

#define ATH_LEAF_LOG 2
#define ATH_LEAF (1 << ATH_LEAF_LOG)
#define ATH_LEAF_CELLS (ATH_LEAF * ATH_LEAF)
#define ATH_LEAF_EMPTY UINT32_MAX

typedef struct ath_blocks {
    int64_t d;            /* complex64 values per cell */
    size_t ncells, cells_cap;
    ath_cf32 *states;     /* [cell][d], storage order */
    uint32_t *back;       /* [cell] its leaf */
    size_t nleaves, leaves_cap;
    ath_coord *key;       /* [leaf] (tx, ty, z) */
    uint16_t *mask;       /* [leaf] active cells, bit ly * ATH_LEAF + lx */
    uint32_t *slot;       /* [leaf][ATH_LEAF_CELLS] cell number or ATH_LEAF_EMPTY */
    uint32_t *hslots;     /* hash_index.h slots over key[] */
    size_t hsize;
} ath_blocks;

/* Read cursor caching the last leaf it found; read-only, one per thread. */
typedef struct ath_blocks_accessor {
    const ath_blocks *b;
    int64_t tx, ty, tz; /* cached leaf (tz = INT64_MIN: none) */
    int64_t leaf;       /* its number or -1 (absent) */
} ath_blocks_accessor;

static inline int64_t ath_leaf_of(int64_t v) { return (v - (v & (ATH_LEAF - 1))) / ATH_LEAF; }
static inline int ath_leaf_local(ath_coord c) {
    return (int)((c.y & (ATH_LEAF - 1)) * ATH_LEAF + (c.x & (ATH_LEAF - 1)));
}

void ath_blocks_init(ath_blocks *b, int64_t d_state);
/* Frees everything (the store stays usable, empty). */
void ath_blocks_release(ath_blocks *b);
/* Empties the store, keeping its capacity. */
void ath_blocks_clear(ath_blocks *b);
void ath_blocks_swap(ath_blocks *a, ath_blocks *b);

/* Leaf number of (tx, ty, z), or -1.  Read-only. */
int64_t ath_blocks_find_leaf(const ath_blocks *b, int64_t tx, int64_t ty, int64_t z);

static inline void ath_blocks_accessor_init(ath_blocks_accessor *a, const ath_blocks *b) {
    a->b = b;
    a->tx = a->ty = 0;
    a->tz = INT64_MIN;
    a->leaf = -1;
}

/* Cell number of c, or -1. */
static inline int64_t ath_blocks_accessor_find(ath_blocks_accessor *a, ath_coord c) {
    const int64_t tx = ath_leaf_of(c.x), ty = ath_leaf_of(c.y);
    uint32_t s;
    if (tx != a->tx || ty != a->ty || c.z != a->tz) {
        a->tx = tx;
        a->ty = ty;
        a->tz = c.z;
        a->leaf = ath_blocks_find_leaf(a->b, tx, ty, c.z);
    }
    if (a->leaf < 0) return -1;
    s = a->b->slot[(size_t)a->leaf * ATH_LEAF_CELLS + (size_t)ath_leaf_local(c)];
    return s == ATH_LEAF_EMPTY ? -1 : (int64_t)s;
}

/* Cell number of c, or -1. */
int64_t ath_blocks_find(const ath_blocks *b, ath_coord c);

/* Coordinate of cell j (< ncells). */
ath_coord ath_blocks_coord(const ath_blocks *b, size_t j);

/* Coordinate of local position l of leaf `leaf`. */
static inline ath_coord ath_blocks_leaf_cell(const ath_blocks *b, size_t leaf, int l) {
    const ath_coord k = b->key[leaf];
    return ath_coord_make(k.x * ATH_LEAF + (l & (ATH_LEAF - 1)), k.y * ATH_LEAF + (l >> ATH_LEAF_LOG), k.z);
}

/* Sets cells coords[0, n) to states[n][d]: an existing cell is overwritten in
 * place, a new one is appended (a coordinate given twice: its first position,
 * its last state) — the semantics of ath_cellmap_set_many.  All-or-nothing:
 * on failure (ATH_ERR_NOMEM, ATH_ERR_RANGE beyond ATH_CELLMAP_MAX_CELLS) the
 * store is unchanged. */
ath_status ath_blocks_set_many(ath_blocks *b, size_t n, const ath_coord *coords, const ath_cf32 *states,
                               ath_error *err);

/* Replaces the values with states (from ath_big_realloc, cells_cap * d values, in the
 * same value numbering) and returns the old values (the caller's, to ath_big_free or
 * reuse).  Cannot fail. */
ath_cf32 *ath_blocks_adopt_states(ath_blocks *b, ath_cf32 *states);

/* Undoes insertions: drops cells >= ncells0 and leaves >= nleaves0 (valid
 * only when nothing else changed since the counts were taken). */
void ath_blocks_truncate(ath_blocks *b, size_t ncells0, size_t nleaves0);

/* Heap bytes held (capacities). */
size_t ath_blocks_memory_bytes(const ath_blocks *b);

/* Checks the invariants.  ATH_OK or ATH_ERR_INVALID. */
ath_status ath_blocks_validate(const ath_blocks *b, ath_error *err);

#endif
