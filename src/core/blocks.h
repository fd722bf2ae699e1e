/* blocks.h — persistent leaf-block storage of sparse matter (OpenVDB-style leaves).
 *
 * Matter cells are grouped into in-plane leaves of ATH_LEAF x ATH_LEAF cells
 * (z is part of the leaf key).  A leaf is found through the core's one hash
 * index (hash_index.h) keyed by the leaf coordinate (tx, ty, z) and holds an
 * active mask (bit m = the cell with in-leaf Morton index m) and the position
 * of its first value.  Values are packed: the active cells of a leaf are
 * consecutive in `states`, in in-leaf Morton order, and the leaves follow
 * each other in Morton order of their origins — the order of the sparse
 * step's evaluated set restricted to matter.  A full leaf is therefore a
 * dense value array; a leaf with one active cell costs one value, not a whole
 * block (scattered matter stays cheap).
 *
 * Memory at d_state 8 (64 B of values per cell), measured by
 * tests/c/test_blocks.c: leaf bookkeeping is one key (24 B), one mask, one
 * first-index (4 B) and about two hash slots (8 B) per leaf, i.e. with
 * ATH_LEAF 4 about 67 B per cell for compact matter and about 104 B per cell
 * for isolated cells (ATH_LEAF 8: ~65 / ~112).
 *
 * Not yet wired into the sparse Engine (its matter is still an ath_cellmap);
 * see docs/architecture.md. */
#ifndef ATHERIA_BLOCKS_H
#define ATHERIA_BLOCKS_H

#include "atheria/common.h"
#include "atheria/coord.h"

#include <stddef.h>
#include <stdint.h>

#ifndef ATH_LEAF_LOG
#define ATH_LEAF_LOG 2 /* leaf side 4: measured in tests/c/test_blocks.c against 8 */
#endif
#define ATH_LEAF (1 << ATH_LEAF_LOG)
#define ATH_LEAF_CELLS (ATH_LEAF * ATH_LEAF)

#if ATH_LEAF_LOG == 2
typedef uint16_t ath_leaf_mask;
#elif ATH_LEAF_LOG == 3
typedef uint64_t ath_leaf_mask;
#else
#error "ATH_LEAF_LOG must be 2 or 3"
#endif

typedef struct ath_blocks {
    int64_t d;            /* complex64 values per cell */
    size_t nleaves, ncells;
    ath_coord *key;       /* [leaf] (tx, ty, z) */
    ath_leaf_mask *mask;  /* [leaf] active cells (bit = in-leaf Morton index) */
    uint32_t *first;      /* [leaf] position in states of its first active cell */
    ath_cf32 *states;     /* [cell][d], packed */
    uint32_t *slots;      /* hash_index.h slots over key[] */
    size_t nslots;
} ath_blocks;

/* Accessor: a read cursor that caches the last leaf it found (neighbour reads
 * of one leaf cost one hash lookup).  Read-only, one per thread. */
typedef struct ath_blocks_accessor {
    const ath_blocks *b;
    int64_t tx, ty, tz; /* cached leaf coordinate (tz = INT64_MIN: none) */
    int64_t leaf;       /* its leaf number or -1 (absent) */
} ath_blocks_accessor;

static inline int64_t ath_leaf_of(int64_t v) { return (v - (v & (ATH_LEAF - 1))) / ATH_LEAF; }

/* In-leaf Morton index of local (lx, ly): bits interleaved x0 y0 x1 y1 ... */
static inline int ath_leaf_morton(int64_t lx, int64_t ly) {
    int m = 0, k;
    for (k = 0; k < ATH_LEAF_LOG; k++) m |= (int)(((lx >> k) & 1) << (2 * k)) | (int)(((ly >> k) & 1) << (2 * k + 1));
    return m;
}

static inline void ath_leaf_local(int m, int64_t *lx, int64_t *ly) {
    int k;
    *lx = *ly = 0;
    for (k = 0; k < ATH_LEAF_LOG; k++) {
        *lx |= (int64_t)((m >> (2 * k)) & 1) << k;
        *ly |= (int64_t)((m >> (2 * k + 1)) & 1) << k;
    }
}

void ath_blocks_init(ath_blocks *b, int64_t d_state);
void ath_blocks_free(ath_blocks *b);

/* Replaces the contents with cells coords[0, n) / states[n][d] (any order; a
 * coordinate given twice keeps its last state).  On failure (ATH_ERR_NOMEM,
 * ATH_ERR_INVALID for more than 2**31 cells) the store is unchanged. */
ath_status ath_blocks_build(ath_blocks *b, size_t n, const ath_coord *coords, const ath_cf32 *states,
                            ath_error *err);

/* Leaf number of (tx, ty, z), or -1. */
int64_t ath_blocks_find_leaf(const ath_blocks *b, int64_t tx, int64_t ty, int64_t z);

/* Position in states of cell c, or -1. */
int64_t ath_blocks_find(const ath_blocks *b, ath_coord c);

void ath_blocks_accessor_init(ath_blocks_accessor *a, const ath_blocks *b);
static inline int64_t ath_blocks_accessor_find(ath_blocks_accessor *a, ath_coord c) {
    const int64_t tx = ath_leaf_of(c.x), ty = ath_leaf_of(c.y);
    int m;
    ath_leaf_mask mk, bit;
    if (tx != a->tx || ty != a->ty || c.z != a->tz) {
        a->tx = tx;
        a->ty = ty;
        a->tz = c.z;
        a->leaf = ath_blocks_find_leaf(a->b, tx, ty, c.z);
    }
    if (a->leaf < 0) return -1;
    m = ath_leaf_morton(c.x & (ATH_LEAF - 1), c.y & (ATH_LEAF - 1));
    mk = a->b->mask[a->leaf];
    bit = (ath_leaf_mask)((ath_leaf_mask)1 << m);
    if (!(mk & bit)) return -1;
    return (int64_t)a->b->first[a->leaf] + __builtin_popcountll((unsigned long long)(mk & (ath_leaf_mask)(bit - 1)));
}

/* Coordinate of the cell with in-leaf Morton index m of leaf l. */
ath_coord ath_blocks_cell_coord(const ath_blocks *b, size_t l, int m);

/* Heap bytes held (capacities). */
size_t ath_blocks_memory_bytes(const ath_blocks *b);

/* Checks the invariants (index reaches every leaf, firsts are the prefix sums
 * of the mask counts, leaves in Morton order).  ATH_OK or ATH_ERR_INVALID. */
ath_status ath_blocks_validate(const ath_blocks *b, ath_error *err);

#endif
