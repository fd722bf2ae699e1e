/* Hash maps of the sparse universe (see sparse_map.h).
 *
 * Both maps use the same layout: the entries live in dense arrays (keys and
 * values, in storage order), and the core's one hash index (hash_index.h:
 * 32-bit slots, linear probing, power-of-two size, load factor <= 1/2) maps a
 * key's hash to its position in the dense arrays.  Removal uses backward-shift
 * deletion (no tombstones) and moves the last entry into the hole.
 *
 * Memory per cell: 24 + 8*d bytes of dense storage (capacity grows by 1.5x)
 * plus 8..16 bytes of index table, i.e. at most 1.5*(24 + 8d) + 16, which is
 * <= 2*(24 + 8d) for every d >= 1.
 *
 * Every growing operation allocates everything it needs before touching the
 * map, so a failed allocation leaves the map exactly as it was.
 */
#include "atheria/alloc.h"
#include "atheria/sparse_map.h"
#include "hash_index.h"
#include "mix.h"

#include <stdlib.h>
#include <string.h>

#define MIN_CAP ((size_t)8)



/* Dense capacity to grow to when `need` entries must fit: 1.5x geometric growth. */
static size_t grown_capacity(size_t cap, size_t need) {
    size_t c = cap + cap / 2;
    if (c < MIN_CAP) c = MIN_CAP;
    if (c < need) c = need;
    if (c > ATH_CELLMAP_MAX_CELLS) c = ATH_CELLMAP_MAX_CELLS;
    return c;
}

/* A fresh, empty slot array for ath_hindex_size_for(n) slots. */
static uint32_t *table_alloc(size_t tsize) {
    uint32_t *t = (uint32_t *)ath_malloc(tsize * sizeof *t);
    if (t != NULL) memset(t, 0xFF, tsize * sizeof *t);
    return t;
}

/* ======================================================================== */
/* cell map                                                                 */
/* ======================================================================== */

struct ath_cellmap {
    int64_t d;
    size_t size;
    size_t coords_cap; /* coords[] holds this many */
    size_t states_cap; /* states[] holds this many cells */
    ath_coord *coords;
    ath_cf32 *states;
    uint32_t *table; /* NULL until the first insertion */
    size_t tsize;    /* power of two, or 0 */
};

/* The index (hash_index.h) over coords[]. */
static inline uint64_t cell_entry_hash(const void *keys, uint32_t e) {
    return ath_coord_hash(((const ath_coord *)keys)[e]);
}
static inline int cell_entry_eq(const void *keys, uint32_t e, const void *key) {
    return ath_coord_equal(((const ath_coord *)keys)[e], *(const ath_coord *)key);
}
static inline ath_hindex cell_index(const ath_cellmap *m) {
    ath_hindex ix;
    ix.slots = m->table;
    ix.size = m->tsize;
    return ix;
}

/* Slot holding c (found = 1) or the empty slot where c would go (found = 0).
 * Requires a table. */
static inline size_t cell_probe(const ath_cellmap *m, ath_coord c, int *found) {
    const ath_hindex ix = cell_index(m);
    return ath_hindex_probe(&ix, ath_coord_hash(c), m->coords, &c, cell_entry_eq, found);
}

ath_status ath_cellmap_create(int64_t d_state, ath_cellmap **out, ath_error *err) {
    ath_cellmap *m;
    if (out == NULL) return ath_error_set(err, ATH_ERR_INVALID, "cellmap_create: out is NULL");
    if (d_state < 1 || d_state > ATH_MAX_D_STATE)
        return ath_error_set(err, ATH_ERR_INVALID, "d_state must be in [1, %d], got %lld",
                             ATH_MAX_D_STATE, (long long)d_state);
    m = (ath_cellmap *)ath_calloc(1, sizeof *m);
    if (m == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "cellmap_create: out of memory");
    m->d = d_state;
    *out = m;
    return ATH_OK;
}

void ath_cellmap_destroy(ath_cellmap *map) {
    if (map == NULL) return;
    ath_free(map->coords);
    ath_free(map->states);
    ath_free(map->table);
    ath_free(map);
}

int64_t ath_cellmap_d_state(const ath_cellmap *map) { return map != NULL ? map->d : 0; }

size_t ath_cellmap_size(const ath_cellmap *map) { return map != NULL ? map->size : 0; }

size_t ath_cellmap_memory_bytes(const ath_cellmap *map) {
    if (map == NULL) return 0;
    return sizeof *map + map->coords_cap * sizeof(ath_coord) +
           map->states_cap * (size_t)map->d * sizeof(ath_cf32) + map->tsize * sizeof(uint32_t);
}

/* Makes room for `need` cells: dense capacity >= want_cap (>= need) and a
 * table with load <= 1/2.  All-or-nothing. */
static ath_status cell_grow(ath_cellmap *m, size_t need, size_t want_cap, ath_error *err) {
    size_t tsize = m->tsize;
    uint32_t *table = NULL;
    if (need > ATH_CELLMAP_MAX_CELLS)
        return ath_error_set(err, ATH_ERR_RANGE, "cell map: %zu cells exceed the limit of %zu",
                             need, (size_t)ATH_CELLMAP_MAX_CELLS);
    if (want_cap < need) want_cap = need;
    if (tsize == 0 || 2 * need > tsize) {
        tsize = ath_hindex_size_for(need);
        table = table_alloc(tsize);
        if (table == NULL)
            return ath_error_set(err, ATH_ERR_NOMEM, "cell map: out of memory (index of %zu slots)",
                                 tsize);
    }
    if (m->coords_cap < want_cap) {
        ath_coord *c = (ath_coord *)ath_realloc(m->coords, want_cap * sizeof *c);
        if (c == NULL) {
            ath_free(table);
            return ath_error_set(err, ATH_ERR_NOMEM, "cell map: out of memory (%zu cells)",
                                 want_cap);
        }
        m->coords = c;
        m->coords_cap = want_cap;
    }
    if (m->states_cap < want_cap) {
        ath_cf32 *s = (ath_cf32 *)ath_realloc(m->states, want_cap * (size_t)m->d * sizeof *s);
        if (s == NULL) {
            /* coords[] may have grown; that changes no content. */
            ath_free(table);
            return ath_error_set(err, ATH_ERR_NOMEM, "cell map: out of memory (%zu cells)",
                                 want_cap);
        }
        m->states = s;
        m->states_cap = want_cap;
    }
    if (table != NULL) {
        ath_hindex ix;
        ath_free(m->table);
        m->table = table;
        m->tsize = tsize;
        ix = cell_index(m);
        ath_hindex_insert_all(&ix, m->size, m->coords, cell_entry_hash);
    }
    return ATH_OK;
}

static inline int cell_fits(const ath_cellmap *m, size_t need) {
    return need <= m->coords_cap && need <= m->states_cap && m->tsize != 0 && 2 * need <= m->tsize;
}

ath_status ath_cellmap_reserve(ath_cellmap *map, size_t n, ath_error *err) {
    if (map == NULL) return ath_error_set(err, ATH_ERR_INVALID, "cellmap_reserve: map is NULL");
    if (n <= map->size || cell_fits(map, n)) return ATH_OK;
    return cell_grow(map, n, n, err);
}

ptrdiff_t ath_cellmap_find(const ath_cellmap *map, ath_coord coord) {
    int found;
    size_t slot;
    if (map == NULL || map->size == 0) return -1;
    slot = cell_probe(map, coord, &found);
    return found ? (ptrdiff_t)map->table[slot] : -1;
}

const ath_cf32 *ath_cellmap_get(const ath_cellmap *map, ath_coord coord) {
    ptrdiff_t i = ath_cellmap_find(map, coord);
    return i < 0 ? NULL : map->states + (size_t)i * (size_t)map->d;
}

ath_cf32 *ath_cellmap_get_mut(ath_cellmap *map, ath_coord coord) {
    ptrdiff_t i = ath_cellmap_find(map, coord);
    return i < 0 ? NULL : map->states + (size_t)i * (size_t)map->d;
}

/* Inserts or overwrites; room for one more cell must already exist. */
static void cell_put(ath_cellmap *m, ath_coord c, const ath_cf32 *state) {
    int found;
    size_t slot = cell_probe(m, c, &found);
    size_t d = (size_t)m->d, idx;
    if (found) {
        idx = m->table[slot];
    } else {
        idx = m->size++;
        m->table[slot] = (uint32_t)idx;
        m->coords[idx] = c;
    }
    memcpy(m->states + idx * d, state, d * sizeof *state);
}

ath_status ath_cellmap_set(ath_cellmap *map, ath_coord coord, const ath_cf32 *state,
                           ath_error *err) {
    if (map == NULL || state == NULL)
        return ath_error_set(err, ATH_ERR_INVALID, "cellmap_set: NULL argument");
    if (!cell_fits(map, map->size + 1) && ath_cellmap_find(map, coord) < 0) {
        size_t need = map->size + 1;
        size_t cap = map->coords_cap < map->states_cap ? map->coords_cap : map->states_cap;
        ath_status st = cell_grow(map, need, need > cap ? grown_capacity(cap, need) : cap, err);
        if (st != ATH_OK) return st;
    }
    cell_put(map, coord, state);
    return ATH_OK;
}

ath_status ath_cellmap_set_many(ath_cellmap *map, size_t n, const ath_coord *coords,
                                const ath_cf32 *states, ath_error *err) {
    size_t i, fresh = 0, need, d;
    if (map == NULL) return ath_error_set(err, ATH_ERR_INVALID, "cellmap_set_many: map is NULL");
    if (n == 0) return ATH_OK;
    if (coords == NULL || states == NULL)
        return ath_error_set(err, ATH_ERR_INVALID, "cellmap_set_many: NULL coords or states");
    if (n > ATH_CELLMAP_MAX_CELLS)
        return ath_error_set(err, ATH_ERR_RANGE, "cell map: %zu cells exceed the limit of %zu", n,
                             (size_t)ATH_CELLMAP_MAX_CELLS);
    /* Upper bound of the new cells (duplicates inside the batch count twice). */
    for (i = 0; i < n; i++)
        if (ath_cellmap_find(map, coords[i]) < 0) fresh++;
    need = map->size + fresh;
    if (!cell_fits(map, need)) {
        size_t cap = map->coords_cap < map->states_cap ? map->coords_cap : map->states_cap;
        ath_status st = cell_grow(map, need, need > cap ? grown_capacity(cap, need) : cap, err);
        if (st != ATH_OK) return st;
    }
    d = (size_t)map->d;
    for (i = 0; i < n; i++) cell_put(map, coords[i], states + i * d);
    return ATH_OK;
}

size_t ath_cellmap_get_many(const ath_cellmap *map, size_t n, const ath_coord *coords,
                            ath_cf32 *out, uint8_t *found) {
    size_t count = 0, d;
    int64_t i, nn = (int64_t)n;
    if (map == NULL || n == 0 || coords == NULL || out == NULL) return 0;
    d = (size_t)map->d;
#pragma omp parallel for schedule(static) reduction(+ : count) if (n >= 8192)
    for (i = 0; i < nn; i++) {
        const ath_cf32 *s = ath_cellmap_get(map, coords[i]);
        ath_cf32 *o = out + (size_t)i * d;
        if (s != NULL) {
            memcpy(o, s, d * sizeof *o);
            count++;
        } else {
            memset(o, 0, d * sizeof *o);
        }
        if (found != NULL) found[i] = s != NULL;
    }
    return count;
}

int ath_cellmap_remove(ath_cellmap *map, ath_coord coord) {
    int found;
    size_t slot, idx, last, d;
    ath_hindex ix;
    if (map == NULL || map->size == 0) return 0;
    slot = cell_probe(map, coord, &found);
    if (!found) return 0;
    idx = map->table[slot];
    ix = cell_index(map);
    ath_hindex_erase(&ix, slot, map->coords, cell_entry_hash);
    /* move the last cell into the dense hole */
    last = map->size - 1;
    d = (size_t)map->d;
    if (idx != last) {
        size_t s2 = cell_probe(map, map->coords[last], &found); /* always found */
        map->table[s2] = (uint32_t)idx;
        map->coords[idx] = map->coords[last];
        memcpy(map->states + idx * d, map->states + last * d, d * sizeof(ath_cf32));
    }
    map->size--;
    return 1;
}

ath_status ath_cellmap_validate(const ath_cellmap *map, ath_error *err) {
    size_t i, used = 0;
    ath_hindex ix;
    if (map == NULL) return ath_error_set(err, ATH_ERR_INVALID, "validate: NULL map");
    if (map->size > map->coords_cap || map->size > map->states_cap)
        return ath_error_set(err, ATH_ERR_INVALID, "validate: size %zu exceeds capacity", map->size);
    if (map->tsize == 0)
        return map->size == 0 ? ATH_OK
                              : ath_error_set(err, ATH_ERR_INVALID, "validate: cells without index");
    if ((map->tsize & (map->tsize - 1)) != 0 || 2 * map->size > map->tsize)
        return ath_error_set(err, ATH_ERR_INVALID, "validate: bad table size %zu for %zu cells",
                             map->tsize, map->size);
    ix = cell_index(map);
    for (i = 0; i < map->tsize; i++) {
        uint32_t e = map->table[i];
        if (e == ATH_HINDEX_EMPTY) continue;
        used++;
        if (e >= map->size)
            return ath_error_set(err, ATH_ERR_INVALID, "validate: slot %zu holds stale index %u",
                                 i, (unsigned)e);
        /* no empty slot between the home and the slot (linear-probing invariant) */
        if (!ath_hindex_reachable(&ix, i, map->coords, cell_entry_hash))
            return ath_error_set(err, ATH_ERR_INVALID,
                                 "validate: cell %u unreachable (an empty slot before slot %zu)", (unsigned)e, i);
    }
    if (used != map->size)
        return ath_error_set(err, ATH_ERR_INVALID, "validate: %zu index entries for %zu cells", used,
                             map->size);
    for (i = 0; i < map->size; i++)
        if (ath_cellmap_find(map, map->coords[i]) != (ptrdiff_t)i)
            return ath_error_set(err, ATH_ERR_INVALID, "validate: cell %zu not found at its index", i);
    return ATH_OK;
}

void ath_cellmap_clear(ath_cellmap *map) {
    if (map == NULL) return;
    map->size = 0;
    if (map->table != NULL) memset(map->table, 0xFF, map->tsize * sizeof *map->table);
}

void ath_cellmap_release(ath_cellmap *map) {
    if (map == NULL) return;
    ath_free(map->coords);
    ath_free(map->states);
    ath_free(map->table);
    map->coords = NULL;
    map->states = NULL;
    map->table = NULL;
    map->size = 0;
    map->coords_cap = 0;
    map->states_cap = 0;
    map->tsize = 0;
}

void ath_cellmap_swap(ath_cellmap *a, ath_cellmap *b) {
    ath_cellmap t;
    if (a == NULL || b == NULL || a == b) return;
    t = *a;
    *a = *b;
    *b = t;
}

const ath_coord *ath_cellmap_coords(const ath_cellmap *map) {
    return map != NULL ? map->coords : NULL;
}

ath_cf32 *ath_cellmap_states_mut(ath_cellmap *map) { return map->states; }

const ath_cf32 *ath_cellmap_states(const ath_cellmap *map) {
    return map != NULL ? map->states : NULL;
}

/* ======================================================================== */
/* scalar map: int64 -> double                                              */
/* ======================================================================== */

struct ath_scalarmap {
    size_t size;
    size_t keys_cap;
    size_t values_cap;
    int64_t *keys;
    double *values;
    uint32_t *table;
    size_t tsize;
};

/* The index (hash_index.h) over keys[]. */
static inline uint64_t scalar_entry_hash(const void *keys, uint32_t e) {
    return ath_mix64_inline((uint64_t)((const int64_t *)keys)[e]);
}
static inline int scalar_entry_eq(const void *keys, uint32_t e, const void *key) {
    return ((const int64_t *)keys)[e] == *(const int64_t *)key;
}
static inline ath_hindex scalar_index(const ath_scalarmap *m) {
    ath_hindex ix;
    ix.slots = m->table;
    ix.size = m->tsize;
    return ix;
}

static inline size_t scalar_probe(const ath_scalarmap *m, int64_t key, int *found) {
    const ath_hindex ix = scalar_index(m);
    return ath_hindex_probe(&ix, ath_mix64_inline((uint64_t)key), m->keys, &key, scalar_entry_eq, found);
}

ath_status ath_scalarmap_create(ath_scalarmap **out, ath_error *err) {
    ath_scalarmap *m;
    if (out == NULL) return ath_error_set(err, ATH_ERR_INVALID, "scalarmap_create: out is NULL");
    m = (ath_scalarmap *)ath_calloc(1, sizeof *m);
    if (m == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "scalarmap_create: out of memory");
    *out = m;
    return ATH_OK;
}

void ath_scalarmap_destroy(ath_scalarmap *map) {
    if (map == NULL) return;
    ath_free(map->keys);
    ath_free(map->values);
    ath_free(map->table);
    ath_free(map);
}

size_t ath_scalarmap_size(const ath_scalarmap *map) { return map != NULL ? map->size : 0; }

static ath_status scalar_grow(ath_scalarmap *m, size_t need, ath_error *err) {
    size_t cap = m->keys_cap < m->values_cap ? m->keys_cap : m->values_cap;
    size_t want = need > cap ? grown_capacity(cap, need) : cap, tsize = m->tsize;
    uint32_t *table = NULL;
    if (need > ATH_CELLMAP_MAX_CELLS)
        return ath_error_set(err, ATH_ERR_RANGE, "scalar map: %zu entries exceed the limit", need);
    if (tsize == 0 || 2 * need > tsize) {
        tsize = ath_hindex_size_for(need);
        table = table_alloc(tsize);
        if (table == NULL) return ath_error_set(err, ATH_ERR_NOMEM, "scalar map: out of memory");
    }
    if (m->keys_cap < want) {
        int64_t *k = (int64_t *)ath_realloc(m->keys, want * sizeof *k);
        if (k == NULL) {
            ath_free(table);
            return ath_error_set(err, ATH_ERR_NOMEM, "scalar map: out of memory");
        }
        m->keys = k;
        m->keys_cap = want;
    }
    if (m->values_cap < want) {
        double *v = (double *)ath_realloc(m->values, want * sizeof *v);
        if (v == NULL) {
            ath_free(table);
            return ath_error_set(err, ATH_ERR_NOMEM, "scalar map: out of memory");
        }
        m->values = v;
        m->values_cap = want;
    }
    if (table != NULL) {
        ath_hindex ix;
        ath_free(m->table);
        m->table = table;
        m->tsize = tsize;
        ix = scalar_index(m);
        ath_hindex_insert_all(&ix, m->size, m->keys, scalar_entry_hash);
    }
    return ATH_OK;
}

ath_status ath_scalarmap_set(ath_scalarmap *map, int64_t key, double value, ath_error *err) {
    int found = 0;
    size_t slot = 0, need;
    if (map == NULL) return ath_error_set(err, ATH_ERR_INVALID, "scalarmap_set: map is NULL");
    if (map->tsize != 0) {
        slot = scalar_probe(map, key, &found);
        if (found) {
            map->values[map->table[slot]] = value;
            return ATH_OK;
        }
    }
    need = map->size + 1;
    if (need > map->keys_cap || need > map->values_cap || map->tsize == 0 ||
        2 * need > map->tsize) {
        ath_status st = scalar_grow(map, need, err);
        if (st != ATH_OK) return st;
        slot = scalar_probe(map, key, &found);
    }
    map->table[slot] = (uint32_t)map->size;
    map->keys[map->size] = key;
    map->values[map->size] = value;
    map->size++;
    return ATH_OK;
}

int ath_scalarmap_get(const ath_scalarmap *map, int64_t key, double *value) {
    int found;
    size_t slot;
    if (map == NULL || map->size == 0) return 0;
    slot = scalar_probe(map, key, &found);
    if (found && value != NULL) *value = map->values[map->table[slot]];
    return found;
}

int ath_scalarmap_remove(ath_scalarmap *map, int64_t key) {
    int found;
    size_t slot, idx, last;
    ath_hindex ix;
    if (map == NULL || map->size == 0) return 0;
    slot = scalar_probe(map, key, &found);
    if (!found) return 0;
    idx = map->table[slot];
    ix = scalar_index(map);
    ath_hindex_erase(&ix, slot, map->keys, scalar_entry_hash);
    last = map->size - 1;
    if (idx != last) {
        size_t s2 = scalar_probe(map, map->keys[last], &found);
        map->table[s2] = (uint32_t)idx;
        map->keys[idx] = map->keys[last];
        map->values[idx] = map->values[last];
    }
    map->size--;
    return 1;
}

void ath_scalarmap_clear(ath_scalarmap *map) {
    if (map == NULL) return;
    map->size = 0;
    if (map->table != NULL) memset(map->table, 0xFF, map->tsize * sizeof *map->table);
}

const int64_t *ath_scalarmap_keys(const ath_scalarmap *map) {
    return map != NULL ? map->keys : NULL;
}

const double *ath_scalarmap_values(const ath_scalarmap *map) {
    return map != NULL ? map->values : NULL;
}
