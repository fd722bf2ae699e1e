/* The C core's allocator: malloc/calloc/realloc/free behind one fault-injection
 * countdown, and the big-array allocator on top of it (see atheria/alloc.h). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* mremap */
#endif
#include "atheria/alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <sys/mman.h>
#define ATH_BIG_MMAP 1
#endif

/* Remaining successful allocations before injected failures start; 0 = off. */
static atomic_long fail_countdown = 0;
static atomic_long injected = 0;

void ath_alloc_fail_after(long n) {
    atomic_store(&injected, 0);
    atomic_store(&fail_countdown, n > 0 ? n : 0);
}

long ath_alloc_injected_failures(void) { return atomic_load(&injected); }

int ath_alloc_should_fail(void) {
    long left = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (left == 0) return 0;
    if (left > 1) {
        atomic_fetch_sub(&fail_countdown, 1);
        return 0;
    }
    /* left == 1: this and every later allocation fail until disarmed. */
    atomic_fetch_add(&injected, 1);
    return 1;
}

void *ath_malloc(size_t bytes) { return ath_alloc_should_fail() ? NULL : malloc(bytes ? bytes : 1); }

void *ath_calloc(size_t count, size_t size) {
    return ath_alloc_should_fail() ? NULL : calloc(count ? count : 1, size ? size : 1);
}

void *ath_realloc(void *p, size_t bytes) { return ath_alloc_should_fail() ? NULL : realloc(p, bytes ? bytes : 1); }

void ath_free(void *p) { free(p); }

/* ------------------------------------------------------------ big arrays */

/* Precedes every big-array block; its size keeps the payload 64-byte aligned. */
typedef union big_header {
    struct {
        size_t bytes;  /* payload bytes */
        size_t mapped; /* bytes of the mapping (header included), 0: from malloc */
    } h;
    unsigned char pad[64];
} big_header;

#define BIG_HDR sizeof(big_header)

static big_header *big_header_of(void *p) { return (big_header *)((unsigned char *)p - BIG_HDR); }

#ifdef ATH_BIG_MMAP
static size_t big_page_round(size_t bytes) {
    const size_t page = 4096;
    return (bytes + page - 1) / page * page;
}

static void big_advise(void *base, size_t mapped) {
#ifdef MADV_HUGEPAGE
    (void)madvise(base, mapped, MADV_HUGEPAGE);
#else
    (void)base;
    (void)mapped;
#endif
}
#endif

/* A new block of `bytes` (no fault check: the callers did it). */
static void *big_new(size_t bytes) {
    big_header *hd;
#ifdef ATH_BIG_MMAP
    if (bytes >= ATH_BIG_ARRAY_BYTES) {
        const size_t mapped = big_page_round(bytes + BIG_HDR);
        void *base = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED) return NULL;
        big_advise(base, mapped);
        hd = (big_header *)base;
        hd->h.bytes = bytes;
        hd->h.mapped = mapped;
        return (unsigned char *)base + BIG_HDR;
    }
#endif
    if (bytes > SIZE_MAX - BIG_HDR) return NULL;
    hd = (big_header *)malloc(bytes + BIG_HDR);
    if (hd == NULL) return NULL;
    hd->h.bytes = bytes;
    hd->h.mapped = 0;
    return (unsigned char *)hd + BIG_HDR;
}

static void big_release(big_header *hd) {
#ifdef ATH_BIG_MMAP
    if (hd->h.mapped != 0) {
        munmap(hd, hd->h.mapped);
        return;
    }
#endif
    free(hd);
}

void *ath_big_realloc(void *p, size_t bytes) {
    big_header *hd;
    void *q;
    if (bytes == 0) bytes = 1;
    if (p == NULL) return ath_alloc_should_fail() ? NULL : big_new(bytes);
    hd = big_header_of(p);
    if (bytes <= hd->h.bytes && hd->h.mapped == 0) return p; /* a heap block shrinks in place: nothing to gain */
    if (ath_alloc_should_fail()) return NULL;
#ifdef ATH_BIG_MMAP
    if (hd->h.mapped != 0 && bytes >= ATH_BIG_ARRAY_BYTES) {
        /* mapping to mapping: the kernel moves the pages, nothing is copied */
        const size_t mapped = big_page_round(bytes + BIG_HDR), old = hd->h.mapped;
        void *base = mremap(hd, old, mapped, MREMAP_MAYMOVE);
        if (base == MAP_FAILED) return NULL;
        if (mapped > old) big_advise(base, mapped);
        hd = (big_header *)base;
        hd->h.bytes = bytes;
        hd->h.mapped = mapped;
        return (unsigned char *)base + BIG_HDR;
    }
#endif
    if (hd->h.mapped == 0 && bytes < ATH_BIG_ARRAY_BYTES) {
        big_header *h2 = (big_header *)realloc(hd, bytes + BIG_HDR);
        if (h2 == NULL) return NULL;
        h2->h.bytes = bytes;
        return (unsigned char *)h2 + BIG_HDR;
    }
    /* heap <-> mapping */
    q = big_new(bytes);
    if (q == NULL) return NULL;
    memcpy(q, p, bytes < hd->h.bytes ? bytes : hd->h.bytes);
    big_release(hd);
    return q;
}

void ath_big_free(void *p) {
    if (p != NULL) big_release(big_header_of(p));
}
