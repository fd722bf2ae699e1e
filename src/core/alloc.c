/* The C core's allocator: malloc/calloc/realloc/free behind one fault-injection
 * countdown (see atheria/alloc.h). */
#include "atheria/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>

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
