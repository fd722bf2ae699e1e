/* Persistent leaf-block storage of matter (blocks.h): lookup, insertion, accounting. */
#include "blocks.h"

#include "atheria/alloc.h"
#include "atheria/sparse_map.h"
#include "hash_index.h"
#include "mix.h"

#include <string.h>

static inline uint64_t leaf_hash(int64_t x, int64_t y, int64_t z) {
    return ath_mix64_inline((uint64_t)x * 0x9E3779B97F4A7C15ull ^ (uint64_t)y * 0xC2B2AE3D27D4EB4Full ^
                            (uint64_t)z * 0x165667B19E3779F9ull);
}
static uint64_t key_hash(const void *keys, uint32_t e) {
    const ath_coord c = ((const ath_coord *)keys)[e];
    return leaf_hash(c.x, c.y, c.z);
}
static int key_eq(const void *keys, uint32_t e, const void *key) {
    return ath_coord_equal(((const ath_coord *)keys)[e], *(const ath_coord *)key);
}
static inline ath_hindex index_of(const ath_blocks *b) {
    ath_hindex ix;
    ix.slots = b->hslots;
    ix.size = b->hsize;
    return ix;
}

void ath_blocks_init(ath_blocks *b, int64_t d_state) {
    memset(b, 0, sizeof *b);
    b->d = d_state;
}

void ath_blocks_release(ath_blocks *b) {
    ath_big_free(b->states);
    ath_big_free(b->back);
    ath_big_free(b->key);
    ath_big_free(b->mask);
    ath_big_free(b->slot);
    ath_big_free(b->hslots);
    ath_blocks_init(b, b->d);
}

ath_cf32 *ath_blocks_adopt_states(ath_blocks *b, ath_cf32 *states) {
    ath_cf32 *old = b->states;
    b->states = states;
    return old;
}

void ath_blocks_clear(ath_blocks *b) {
    ath_hindex ix = index_of(b);
    ath_hindex_clear(&ix);
    b->ncells = 0;
    b->nleaves = 0;
}

void ath_blocks_swap(ath_blocks *a, ath_blocks *b) {
    ath_blocks t = *a;
    *a = *b;
    *b = t;
}

int64_t ath_blocks_find_leaf(const ath_blocks *b, int64_t tx, int64_t ty, int64_t z) {
    const ath_hindex ix = index_of(b);
    const ath_coord key = ath_coord_make(tx, ty, z);
    return ath_hindex_find(&ix, leaf_hash(tx, ty, z), b->key, &key, key_eq);
}

int64_t ath_blocks_find(const ath_blocks *b, ath_coord c) {
    ath_blocks_accessor a;
    ath_blocks_accessor_init(&a, b);
    return ath_blocks_accessor_find(&a, c);
}

ath_coord ath_blocks_coord(const ath_blocks *b, size_t j) {
    const size_t leaf = b->back[j];
    const uint32_t *s = b->slot + leaf * ATH_LEAF_CELLS;
    int l = 0;
    while (l < ATH_LEAF_CELLS - 1 && s[l] != (uint32_t)j) l++;
    return ath_blocks_leaf_cell(b, leaf, l);
}

size_t ath_blocks_memory_bytes(const ath_blocks *b) {
    return b->cells_cap * ((size_t)b->d * sizeof(ath_cf32) + sizeof(uint32_t)) +
           b->leaves_cap * (sizeof(ath_coord) + sizeof(uint16_t) + ATH_LEAF_CELLS * sizeof(uint32_t)) +
           b->hsize * sizeof(uint32_t);
}

void ath_blocks_truncate(ath_blocks *b, size_t ncells0, size_t nleaves0) {
    size_t j;
    ath_hindex ix = index_of(b);
    for (j = b->ncells; j-- > ncells0;) {
        const size_t leaf = b->back[j];
        uint32_t *s = b->slot + leaf * ATH_LEAF_CELLS;
        int l;
        for (l = 0; l < ATH_LEAF_CELLS; l++)
            if (s[l] == (uint32_t)j) {
                s[l] = ATH_LEAF_EMPTY;
                b->mask[leaf] = (uint16_t)(b->mask[leaf] & ~(1u << l));
            }
    }
    b->ncells = ncells0;
    for (j = b->nleaves; j-- > nleaves0;) {
        const ath_coord k = b->key[j];
        int found;
        const size_t s = ath_hindex_probe(&ix, leaf_hash(k.x, k.y, k.z), b->key, &k, key_eq, &found);
        if (found) ath_hindex_erase(&ix, s, b->key, key_hash);
    }
    b->nleaves = nleaves0;
}

static size_t grown(size_t cap, size_t need) {
    size_t c = cap + cap / 2;
    return c > need ? c : need;
}

/* Leaf of key, created (empty) if absent; -1 on allocation failure (nothing created). */
static int64_t leaf_get(ath_blocks *b, ath_coord key) {
    const uint64_t h = leaf_hash(key.x, key.y, key.z);
    ath_hindex ix = index_of(b);
    size_t s = 0;
    int found = 0, l;
    if (ix.size > 0) {
        s = ath_hindex_probe(&ix, h, b->key, &key, key_eq, &found);
        if (found) return (int64_t)b->hslots[s];
    }
    if (b->nleaves + 1 > b->leaves_cap) {
        const size_t nc = grown(b->leaves_cap, 64);
        ath_coord *k2;
        uint16_t *m2;
        uint32_t *s2;
        if (nc > ((size_t)1 << 31)) return -1;
        k2 = (ath_coord *)ath_big_realloc(b->key, nc * sizeof *k2);
        if (k2 == NULL) return -1;
        b->key = k2;
        m2 = (uint16_t *)ath_big_realloc(b->mask, nc * sizeof *m2);
        if (m2 == NULL) return -1;
        b->mask = m2;
        s2 = (uint32_t *)ath_big_realloc(b->slot, nc * ATH_LEAF_CELLS * sizeof *s2);
        if (s2 == NULL) return -1;
        b->slot = s2;
        b->leaves_cap = nc;
    }
    if (2 * (b->nleaves + 1) > b->hsize) {
        const size_t ns = ath_hindex_size_for(b->nleaves + 1);
        uint32_t *t = (uint32_t *)ath_big_realloc(NULL, ns * sizeof *t);
        if (t == NULL) return -1;
        ath_big_free(b->hslots);
        b->hslots = t;
        b->hsize = ns;
        ix = index_of(b);
        ath_hindex_clear(&ix);
        ath_hindex_insert_all(&ix, b->nleaves, b->key, key_hash);
        s = ath_hindex_probe(&ix, h, b->key, &key, key_eq, &found);
    }
    b->key[b->nleaves] = key;
    b->mask[b->nleaves] = 0;
    for (l = 0; l < ATH_LEAF_CELLS; l++) b->slot[b->nleaves * ATH_LEAF_CELLS + (size_t)l] = ATH_LEAF_EMPTY;
    b->hslots[s] = (uint32_t)b->nleaves;
    return (int64_t)b->nleaves++;
}

/* Gives back spare capacity (a failed shrink keeps the larger block: nothing is lost). */
static void shrink_leaves(ath_blocks *b) {
    const size_t nc = b->nleaves > 0 ? b->nleaves : 1;
    ath_coord *k2;
    uint16_t *m2;
    uint32_t *s2;
    if (nc >= b->leaves_cap) return;
    k2 = (ath_coord *)ath_big_realloc(b->key, nc * sizeof *k2);
    if (k2 == NULL) return;
    b->key = k2;
    b->leaves_cap = nc; /* from here every array holds >= nc leaves: the common bound */
    m2 = (uint16_t *)ath_big_realloc(b->mask, nc * sizeof *m2);
    if (m2 == NULL) return;
    b->mask = m2;
    s2 = (uint32_t *)ath_big_realloc(b->slot, nc * ATH_LEAF_CELLS * sizeof *s2);
    if (s2 != NULL) b->slot = s2;
}

/* An index sized for an upper bound of the leaves, rebuilt at the size the leaves need. */
static void shrink_index(ath_blocks *b) {
    const size_t ns = ath_hindex_size_for(b->nleaves);
    uint32_t *t;
    ath_hindex ix;
    if (ns >= b->hsize) return;
    t = (uint32_t *)ath_big_realloc(NULL, ns * sizeof *t);
    if (t == NULL) return;
    ath_big_free(b->hslots);
    b->hslots = t;
    b->hsize = ns;
    ix = index_of(b);
    ath_hindex_clear(&ix);
    ath_hindex_insert_all(&ix, b->nleaves, b->key, key_hash);
}

static void shrink_cells(ath_blocks *b) {
    const size_t nc = b->ncells > 0 ? b->ncells : 1;
    ath_cf32 *s2;
    uint32_t *b2;
    if (nc >= b->cells_cap) return;
    s2 = (ath_cf32 *)ath_big_realloc(b->states, nc * (size_t)b->d * sizeof *s2);
    if (s2 == NULL) return;
    b->states = s2;
    b->cells_cap = nc; /* both arrays hold >= nc cells */
    b2 = (uint32_t *)ath_big_realloc(b->back, nc * sizeof *b2);
    if (b2 != NULL) b->back = b2;
}

ath_status ath_blocks_set_many(ath_blocks *b, size_t n, const ath_coord *coords, const ath_cf32 *states,
                               ath_error *err) {
    const size_t d = (size_t)b->d, nc0 = b->ncells, nl0 = b->nleaves;
    size_t i, fresh = 0, need;
    ath_coord last_key = ath_coord_make(0, 0, 0);
    int64_t last_leaf = -1;
    if (n == 0) return ATH_OK;
    if (n > ATH_CELLMAP_MAX_CELLS)
        return ath_error_set(err, ATH_ERR_RANGE, "cell map: %zu cells exceed the limit of %zu", n,
                             (size_t)ATH_CELLMAP_MAX_CELLS);
    /* an empty store (a bulk load, a step's commit) is sized once: the leaves are at most the runs
     * of equal leaf keys in the input (exact for the step's Morton order), the cells at most n;
     * growing by reallocation instead would leave freed holes of every intermediate size */
    if (b->nleaves == 0 && b->ncells == 0) {
        size_t runs = 1, ns;
        for (i = 1; i < n; i++)
            runs += !(ath_leaf_of(coords[i].x) == ath_leaf_of(coords[i - 1].x) &&
                      ath_leaf_of(coords[i].y) == ath_leaf_of(coords[i - 1].y) && coords[i].z == coords[i - 1].z);
        if (runs > b->leaves_cap) {
            ath_coord *k2 = (ath_coord *)ath_big_realloc(b->key, runs * sizeof *k2);
            uint16_t *m2;
            uint32_t *s2;
            if (k2 == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "cell map: out of memory (leaves)");
            b->key = k2;
            m2 = (uint16_t *)ath_big_realloc(b->mask, runs * sizeof *m2);
            if (m2 == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "cell map: out of memory (leaves)");
            b->mask = m2;
            s2 = (uint32_t *)ath_big_realloc(b->slot, runs * ATH_LEAF_CELLS * sizeof *s2);
            if (s2 == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "cell map: out of memory (leaves)");
            b->slot = s2;
            b->leaves_cap = runs;
        }
        ns = ath_hindex_size_for(runs);
        if (ns > b->hsize) {
            uint32_t *t = (uint32_t *)ath_big_realloc(NULL, ns * sizeof *t);
            if (t == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "cell map: out of memory (leaf index)");
            ath_big_free(b->hslots);
            b->hslots = t;
            b->hsize = ns;
            memset(t, 0xFF, ns * sizeof *t);
        }
    }
    /* 1: every leaf (new leaves are empty, dropped again on failure); an upper bound of the new cells */
    for (i = 0; i < n; i++) {
        const ath_coord c = coords[i];
        const ath_coord key = ath_coord_make(ath_leaf_of(c.x), ath_leaf_of(c.y), c.z);
        int64_t leaf;
        /* consecutive cells usually share a leaf (Morton order): one lookup per leaf run */
        if (i > 0 && ath_coord_equal(key, last_key)) {
            leaf = last_leaf;
        } else {
            leaf = leaf_get(b, key);
            last_key = key;
            last_leaf = leaf;
        }
        if (leaf < 0) {
            ath_blocks_truncate(b, nc0, nl0);
            return ath_error_set(err, ATH_ERR_NOMEM, "cell map: out of memory (leaves)");
        }
        fresh += b->slot[(size_t)leaf * ATH_LEAF_CELLS + (size_t)ath_leaf_local(c)] == ATH_LEAF_EMPTY;
    }
    need = nc0 + fresh;
    if (need > ATH_CELLMAP_MAX_CELLS) {
        ath_blocks_truncate(b, nc0, nl0);
        return ath_error_set(err, ATH_ERR_RANGE, "cell map: %zu cells exceed the limit of %zu", need,
                             (size_t)ATH_CELLMAP_MAX_CELLS);
    }
    /* 2: room for the values */
    if (need > b->cells_cap) {
        const size_t cap = b->cells_cap == 0 ? need : grown(b->cells_cap, need);
        ath_cf32 *s2 = (ath_cf32 *)ath_big_realloc(b->states, cap * d * sizeof *s2);
        uint32_t *b2;
        if (s2 == NULL) {
            ath_blocks_truncate(b, nc0, nl0);
            return ath_error_set(err, ATH_ERR_NOMEM, "cell map: out of memory (%zu cells)", need);
        }
        b->states = s2;
        b2 = (uint32_t *)ath_big_realloc(b->back, cap * sizeof *b2);
        if (b2 == NULL) {
            ath_blocks_truncate(b, nc0, nl0);
            return ath_error_set(err, ATH_ERR_NOMEM, "cell map: out of memory (%zu cells)", need);
        }
        b->back = b2;
        b->cells_cap = cap;
    }
    /* 3: insert / overwrite (cannot fail) */
    {
        ath_blocks_accessor a;
        ath_blocks_accessor_init(&a, b);
        for (i = 0; i < n; i++) {
            const ath_coord c = coords[i];
            const int l = ath_leaf_local(c);
            uint32_t *s;
            size_t leaf;
            (void)ath_blocks_accessor_find(&a, c);
            leaf = (size_t)a.leaf;
            s = b->slot + leaf * ATH_LEAF_CELLS + l;
            if (*s == ATH_LEAF_EMPTY) {
                *s = (uint32_t)b->ncells;
                b->back[b->ncells++] = (uint32_t)leaf;
                b->mask[leaf] = (uint16_t)(b->mask[leaf] | (1u << l));
            }
            memcpy(b->states + (size_t)*s * d, states + i * d, d * sizeof(ath_cf32));
        }
    }
    /* a call that made at least half of the store (a bulk load, a step's commit) gives back
     * the growth slack; small calls keep it, so repeated insertions stay amortised O(1) */
    if (2 * (b->nleaves - nl0) >= b->nleaves) {
        shrink_leaves(b);
        shrink_index(b);
    }
    if (2 * (b->ncells - nc0) >= b->ncells) shrink_cells(b);
    return ATH_OK;
}

ath_status ath_blocks_validate(const ath_blocks *b, ath_error *err) {
    size_t leaf, cells = 0, j;
    for (leaf = 0; leaf < b->nleaves; leaf++) {
        const ath_coord k = b->key[leaf];
        int l;
        if (b->mask[leaf] == 0) return ath_error_set(err, ATH_ERR_INVALID, "blocks: leaf %zu is empty", leaf);
        if (ath_blocks_find_leaf(b, k.x, k.y, k.z) != (int64_t)leaf)
            return ath_error_set(err, ATH_ERR_INVALID, "blocks: leaf %zu not reached by the index", leaf);
        for (l = 0; l < ATH_LEAF_CELLS; l++) {
            const uint32_t s = b->slot[leaf * ATH_LEAF_CELLS + (size_t)l];
            if ((s != ATH_LEAF_EMPTY) != ((b->mask[leaf] >> l) & 1u))
                return ath_error_set(err, ATH_ERR_INVALID, "blocks: leaf %zu mask disagrees", leaf);
            if (s == ATH_LEAF_EMPTY) continue;
            if (s >= b->ncells || b->back[s] != (uint32_t)leaf)
                return ath_error_set(err, ATH_ERR_INVALID, "blocks: leaf %zu cell %d bad back reference", leaf, l);
            cells++;
        }
    }
    for (j = 0; j < b->ncells; j++)
        if (b->back[j] >= b->nleaves) return ath_error_set(err, ATH_ERR_INVALID, "blocks: cell %zu leaf", j);
    if (cells != b->ncells) return ath_error_set(err, ATH_ERR_INVALID, "blocks: cell count is wrong");
    return ATH_OK;
}
