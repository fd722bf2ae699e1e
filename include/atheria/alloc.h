/* atheria/alloc.h — the one allocator of the C core, with fault injection.
 *
 * Every heap allocation in src/core goes through these four functions so that
 * tests can make the N-th allocation fail (SQLite-style fault injection) and
 * check that each public entry point then returns ATH_ERR_NOMEM and leaves its
 * object exactly as it was.  With no fault armed they are plain malloc/free
 * plus one relaxed atomic load. */
#ifndef ATHERIA_ALLOC_H
#define ATHERIA_ALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

void *ath_malloc(size_t bytes);
void *ath_calloc(size_t count, size_t size);
void *ath_realloc(void *p, size_t bytes);
void ath_free(void *p);

/* Test hook: the n-th allocation from now on (n >= 1) fails, and so does every
 * one after it while the fault stays armed; n = 0 disarms.  Process-wide (a
 * test hook, not engine state): use it from one thread. */
void ath_alloc_fail_after(long n);
/* Number of allocations that failed by injection since the last arm. */
long ath_alloc_injected_failures(void);

/* Big arrays (the matter's value pool and leaf arrays, step scratch): realloc /
 * free semantics, but a block of at least ATH_BIG_ARRAY_BYTES is its own
 * anonymous mapping (Linux: mmap, grown with mremap, transparent huge pages
 * advised), so freeing it returns the memory to the system at once.  Through
 * the heap, a freed 10 MB array stays resident as a hole that later blocks
 * only partly reuse (glibc raises its mmap threshold after the first such
 * free), which is most of the RSS a step's rebuild would otherwise leave
 * behind.  Smaller blocks come from malloc.  A block records its own size
 * (a 64-byte header keeps cache-line alignment), so callers pass only the
 * pointer.  Both honour the fault hook; a shrink that fails keeps the block
 * as it was. */
#define ATH_BIG_ARRAY_BYTES ((size_t)256 << 10)
void *ath_big_realloc(void *p, size_t bytes);
void ath_big_free(void *p);

/* Allocation through the hook for scratch that may come from mmap: identical
 * failure behaviour, so fault injection covers the big step buffers too. */
int ath_alloc_should_fail(void);

#ifdef __cplusplus
}
#endif
#endif
