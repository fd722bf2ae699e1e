/* Persistent leaf-block storage of sparse matter (blocks.h): build, lookup, accounting. */
#include "blocks.h"

#include "atheria/alloc.h"
#include "coord_internal.h"
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

void ath_blocks_init(ath_blocks *b, int64_t d_state) {
    memset(b, 0, sizeof *b);
    b->d = d_state;
}

void ath_blocks_free(ath_blocks *b) {
    ath_free(b->key);
    ath_free(b->mask);
    ath_free(b->first);
    ath_free(b->states);
    ath_free(b->slots);
    ath_blocks_init(b, b->d);
}

int64_t ath_blocks_find_leaf(const ath_blocks *b, int64_t tx, int64_t ty, int64_t z) {
    ath_hindex ix;
    const ath_coord key = ath_coord_make(tx, ty, z);
    ix.slots = b->slots;
    ix.size = b->nslots;
    return ath_hindex_find(&ix, leaf_hash(tx, ty, z), b->key, &key, key_eq);
}

void ath_blocks_accessor_init(ath_blocks_accessor *a, const ath_blocks *b) {
    a->b = b;
    a->tx = a->ty = 0;
    a->tz = INT64_MIN;
    a->leaf = -1;
}

int64_t ath_blocks_find(const ath_blocks *b, ath_coord c) {
    ath_blocks_accessor a;
    ath_blocks_accessor_init(&a, b);
    return ath_blocks_accessor_find(&a, c);
}

ath_coord ath_blocks_cell_coord(const ath_blocks *b, size_t l, int m) {
    const ath_coord k = b->key[l];
    int64_t lx, ly;
    ath_leaf_local(m, &lx, &ly);
    return ath_coord_make(k.x * ATH_LEAF + lx, k.y * ATH_LEAF + ly, k.z);
}

size_t ath_blocks_memory_bytes(const ath_blocks *b) {
    return b->nleaves * (sizeof(ath_coord) + sizeof(ath_leaf_mask) + sizeof(uint32_t)) +
           b->ncells * (size_t)b->d * sizeof(ath_cf32) + b->nslots * sizeof(uint32_t);
}

/* Leaf number of (tx, ty, z) in the build's growing table, created if absent; -1: no memory. */
static int64_t build_leaf(ath_coord **lk, ath_leaf_mask **lm, size_t *nl, size_t *lcap, uint32_t **slots,
                          size_t *nslots, ath_coord key) {
    const uint64_t h = leaf_hash(key.x, key.y, key.z);
    ath_hindex ix;
    size_t s;
    int found;
    ix.slots = *slots;
    ix.size = *nslots;
    s = ath_hindex_probe(&ix, h, *lk, &key, key_eq, &found);
    if (found) return (int64_t)(*slots)[s];
    if (2 * (*nl + 1) > *nslots) {
        const size_t ns = 2 * *nslots;
        uint32_t *t = (uint32_t *)ath_malloc(ns * sizeof *t);
        if (t == NULL) return -1;
        ath_free(*slots);
        *slots = t;
        *nslots = ns;
        ix.slots = t;
        ix.size = ns;
        ath_hindex_clear(&ix);
        ath_hindex_insert_all(&ix, *nl, *lk, key_hash);
        s = ath_hindex_probe(&ix, h, *lk, &key, key_eq, &found);
    }
    if (*nl + 1 > *lcap) {
        const size_t nc = *lcap > 0 ? 2 * *lcap : 64;
        ath_coord *k2 = (ath_coord *)ath_realloc(*lk, nc * sizeof **lk);
        ath_leaf_mask *m2;
        if (k2 == NULL) return -1;
        *lk = k2;
        m2 = (ath_leaf_mask *)ath_realloc(*lm, nc * sizeof **lm);
        if (m2 == NULL) return -1;
        *lm = m2;
        *lcap = nc;
    }
    (*lk)[*nl] = key;
    (*lm)[*nl] = 0;
    (*slots)[s] = (uint32_t)*nl;
    return (int64_t)(*nl)++;
}

ath_status ath_blocks_build(ath_blocks *b, size_t n, const ath_coord *coords, const ath_cf32 *states,
                            ath_error *err) {
    const size_t d = (size_t)b->d;
    ath_coord *lk = NULL, *origin = NULL, *nkey = NULL;
    ath_leaf_mask *lm = NULL, *nmask = NULL;
    uint32_t *tslots = NULL, *nfirst = NULL, *perm = NULL, *nslots_p = NULL;
    ath_cf32 *nstates = NULL;
    skey *keys = NULL, *tmp = NULL, *k;
    size_t nl = 0, lcap = 0, tns = ATH_HINDEX_MIN, i, fs = 0, nns = 0;
    ath_status st = ATH_OK;
    if (n >= ((size_t)1 << 31)) return ath_error_set(err, ATH_ERR_INVALID, "blocks: more than 2**31 cells");
    tslots = (uint32_t *)ath_malloc(tns * sizeof *tslots);
    if (tslots == NULL) goto nomem;
    memset(tslots, 0xFF, tns * sizeof *tslots);
    /* 1: the leaves and their masks */
    for (i = 0; i < n; i++) {
        const ath_coord c = coords[i];
        const int64_t l =
            build_leaf(&lk, &lm, &nl, &lcap, &tslots, &tns, ath_coord_make(ath_leaf_of(c.x), ath_leaf_of(c.y), c.z));
        if (l < 0) goto nomem;
        lm[l] = (ath_leaf_mask)(lm[l] | (ath_leaf_mask)((ath_leaf_mask)1 << ath_leaf_morton(c.x & (ATH_LEAF - 1),
                                                                                             c.y & (ATH_LEAF - 1))));
    }
    /* 2: leaves in Morton order of their origins (ties: ath_coord_compare_morton) */
    if (nl > 0) {
        keys = (skey *)ath_malloc(nl * sizeof *keys);
        tmp = (skey *)ath_malloc(nl * sizeof *tmp);
        origin = (ath_coord *)ath_malloc(nl * sizeof *origin);
        perm = (uint32_t *)ath_malloc(nl * sizeof *perm);
        nkey = (ath_coord *)ath_malloc(nl * sizeof *nkey);
        nmask = (ath_leaf_mask *)ath_malloc(nl * sizeof *nmask);
        nfirst = (uint32_t *)ath_malloc(nl * sizeof *nfirst);
        if (keys == NULL || tmp == NULL || origin == NULL || perm == NULL || nkey == NULL || nmask == NULL ||
            nfirst == NULL)
            goto nomem;
        for (i = 0; i < nl; i++) {
            origin[i] = ath_coord_make(lk[i].x * ATH_LEAF, lk[i].y * ATH_LEAF, lk[i].z);
            keys[i].key = ath_coord_morton(origin[i]);
            keys[i].idx = (uint64_t)i;
        }
        k = ath_coord_morton_sort_keys(keys, tmp, nl, origin);
        for (i = 0; i < nl; i++) {
            const size_t from = (size_t)k[i].idx;
            nkey[i] = lk[from];
            nmask[i] = lm[from];
            nfirst[i] = (uint32_t)fs;
            perm[from] = (uint32_t)i;
            fs += (size_t)__builtin_popcountll((unsigned long long)nmask[i]);
        }
        nns = ath_hindex_size_for(nl);
        nslots_p = (uint32_t *)ath_malloc(nns * sizeof *nslots_p);
        nstates = (ath_cf32 *)ath_malloc((fs > 0 ? fs : 1) * d * sizeof *nstates);
        if (nslots_p == NULL || nstates == NULL) goto nomem;
    }
    /* 3: each value at its leaf's first plus its rank in the mask (a later duplicate overwrites) */
    for (i = 0; i < n; i++) {
        const ath_coord c = coords[i];
        const ath_coord key = ath_coord_make(ath_leaf_of(c.x), ath_leaf_of(c.y), c.z);
        ath_hindex ix;
        int64_t l;
        int m;
        ath_leaf_mask bit;
        ix.slots = tslots;
        ix.size = tns;
        l = perm[ath_hindex_find(&ix, leaf_hash(key.x, key.y, key.z), lk, &key, key_eq)];
        m = ath_leaf_morton(c.x & (ATH_LEAF - 1), c.y & (ATH_LEAF - 1));
        bit = (ath_leaf_mask)((ath_leaf_mask)1 << m);
        memcpy(nstates + ((size_t)nfirst[l] + (size_t)__builtin_popcountll(
                                                  (unsigned long long)(nmask[l] & (ath_leaf_mask)(bit - 1)))) * d,
               states + i * d, d * sizeof *nstates);
    }
    if (nl > 0) {
        ath_hindex ix;
        ix.slots = nslots_p;
        ix.size = nns;
        ath_hindex_clear(&ix);
        ath_hindex_insert_all(&ix, nl, nkey, key_hash);
    }
    ath_free(b->key);
    ath_free(b->mask);
    ath_free(b->first);
    ath_free(b->states);
    ath_free(b->slots);
    b->key = nkey;
    b->mask = nmask;
    b->first = nfirst;
    b->states = nstates;
    b->slots = nslots_p;
    b->nslots = nns;
    b->nleaves = nl;
    b->ncells = fs;
    nkey = NULL;
    nmask = NULL;
    nfirst = NULL;
    nstates = NULL;
    nslots_p = NULL;
    goto out;
nomem:
    st = ath_error_set(err, ATH_ERR_NOMEM, "blocks: out of memory (%zu cells)", n);
out:
    ath_free(lk);
    ath_free(lm);
    ath_free(tslots);
    ath_free(keys);
    ath_free(tmp);
    ath_free(origin);
    ath_free(perm);
    ath_free(nkey);
    ath_free(nmask);
    ath_free(nfirst);
    ath_free(nstates);
    ath_free(nslots_p);
    return st;
}

ath_status ath_blocks_validate(const ath_blocks *b, ath_error *err) {
    size_t l, fs = 0;
    for (l = 0; l < b->nleaves; l++) {
        const ath_coord k = b->key[l];
        if (b->mask[l] == 0) return ath_error_set(err, ATH_ERR_INVALID, "blocks: leaf %zu has no active cell", l);
        if (b->first[l] != fs) return ath_error_set(err, ATH_ERR_INVALID, "blocks: leaf %zu first is wrong", l);
        if (ath_blocks_find_leaf(b, k.x, k.y, k.z) != (int64_t)l)
            return ath_error_set(err, ATH_ERR_INVALID, "blocks: leaf %zu not reached by the index", l);
        if (l > 0) {
            const ath_coord a = ath_coord_make(b->key[l - 1].x * ATH_LEAF, b->key[l - 1].y * ATH_LEAF, b->key[l - 1].z);
            const ath_coord c = ath_coord_make(k.x * ATH_LEAF, k.y * ATH_LEAF, k.z);
            if (ath_coord_compare_morton(&a, &c) >= 0)
                return ath_error_set(err, ATH_ERR_INVALID, "blocks: leaves %zu, %zu out of Morton order", l - 1, l);
        }
        fs += (size_t)__builtin_popcountll((unsigned long long)b->mask[l]);
    }
    if (fs != b->ncells) return ath_error_set(err, ATH_ERR_INVALID, "blocks: cell count is wrong");
    return ATH_OK;
}
