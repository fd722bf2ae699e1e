/* atheria/sparse_map.h — hash maps of the sparse universe.
 *
 * ath_cellmap: coordinate -> d_state complex64 cell.  Open addressing
 * (linear probing) over an index table; the cells themselves live in two
 * dense arrays (coords[i], states[i*d .. i*d+d)) so iteration is a linear
 * scan and there is no heap allocation per cell.  remove() moves the last
 * cell into the hole, so indices are not stable across removals.
 *
 * ath_scalarmap: int64 -> double, the scalar API of the original module.
 */
#ifndef ATHERIA_SPARSE_MAP_H
#define ATHERIA_SPARSE_MAP_H

#include "atheria/common.h"
#include "atheria/coord.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ath_cellmap ath_cellmap;

/* Most cells (and scalar entries) one map can hold: indices are 32-bit. */
#define ATH_CELLMAP_MAX_CELLS ((size_t)1 << 31)

ath_status ath_cellmap_create(int64_t d_state, ath_cellmap **out, ath_error *err);
void ath_cellmap_destroy(ath_cellmap *map);

int64_t ath_cellmap_d_state(const ath_cellmap *map);
size_t ath_cellmap_size(const ath_cellmap *map);
/* Bytes held by the map (tables + arrays), for memory accounting. */
size_t ath_cellmap_memory_bytes(const ath_cellmap *map);

/* Makes room for n cells in total without further allocation. */
ath_status ath_cellmap_reserve(ath_cellmap *map, size_t n, ath_error *err);

/* Index of coord in the dense arrays, or -1 if absent. */
ptrdiff_t ath_cellmap_find(const ath_cellmap *map, ath_coord coord);
/* Pointer to the d_state values of coord, or NULL if absent. */
const ath_cf32 *ath_cellmap_get(const ath_cellmap *map, ath_coord coord);
ath_cf32 *ath_cellmap_get_mut(ath_cellmap *map, ath_coord coord);

/* Inserts or overwrites one cell (copies d_state values). */
ath_status ath_cellmap_set(ath_cellmap *map, ath_coord coord, const ath_cf32 *state, ath_error *err);
/* Inserts or overwrites n cells; all-or-nothing (reserves first). */
ath_status ath_cellmap_set_many(ath_cellmap *map, size_t n, const ath_coord *coords,
                                const ath_cf32 *states, ath_error *err);
/* Looks up n cells (read-only, OpenMP-parallel for large n): out[i*d..] gets the
 * state of coords[i] or zeros; found[i] (if found != NULL) gets 1 or 0.
 * Returns the number found. */
size_t ath_cellmap_get_many(const ath_cellmap *map, size_t n, const ath_coord *coords,
                            ath_cf32 *out, uint8_t *found);
/* Returns 1 if removed, 0 if absent. */
int ath_cellmap_remove(ath_cellmap *map, ath_coord coord);
void ath_cellmap_clear(ath_cellmap *map);
/* Removes all cells and frees the storage (clear() keeps it for reuse). */
void ath_cellmap_release(ath_cellmap *map);
/* Exchanges the contents of two maps of the same d_state (O(1)). */
void ath_cellmap_swap(ath_cellmap *a, ath_cellmap *b);

/* Checks the internal invariants (every cell indexed exactly once, every
 * index entry reachable from its home slot, load factor); O(table size).
 * For tests and debugging: ATH_ERR_INVALID with a description if broken. */
ath_status ath_cellmap_validate(const ath_cellmap *map, ath_error *err);

/* Dense views: valid until the next mutation. */
const ath_coord *ath_cellmap_coords(const ath_cellmap *map);
const ath_cf32 *ath_cellmap_states(const ath_cellmap *map);
/* Writable states (the index is untouched): valid until the next mutation. */
ath_cf32 *ath_cellmap_states_mut(ath_cellmap *map);

/* ---- scalar map: int64 -> double ---- */
typedef struct ath_scalarmap ath_scalarmap;

ath_status ath_scalarmap_create(ath_scalarmap **out, ath_error *err);
void ath_scalarmap_destroy(ath_scalarmap *map);
size_t ath_scalarmap_size(const ath_scalarmap *map);
ath_status ath_scalarmap_set(ath_scalarmap *map, int64_t key, double value, ath_error *err);
/* Returns 1 and writes *value if present, else 0. */
int ath_scalarmap_get(const ath_scalarmap *map, int64_t key, double *value);
int ath_scalarmap_remove(ath_scalarmap *map, int64_t key);
void ath_scalarmap_clear(ath_scalarmap *map);
/* Dense views (insertion order, disturbed by removals): valid until the next mutation. */
const int64_t *ath_scalarmap_keys(const ath_scalarmap *map);
const double *ath_scalarmap_values(const ath_scalarmap *map);

#ifdef __cplusplus
}
#endif
#endif
