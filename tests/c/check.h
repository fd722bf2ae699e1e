/* Minimal assertion harness shared by the pure-C test programs: CHECK counts
 * passes and failures (printing each failure with its location), and
 * check_summary() prints the closing "N passed, M failed" line and returns the
 * process exit status. */
#ifndef ATHERIA_TESTS_CHECK_H
#define ATHERIA_TESTS_CHECK_H

#include <stdio.h>

static int g_passed = 0, g_failed = 0;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (cond) {                                                         \
            g_passed++;                                                     \
        } else {                                                            \
            g_failed++;                                                     \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);          \
            printf(__VA_ARGS__);                                            \
            printf("\n");                                                   \
        }                                                                   \
    } while (0)

static int check_summary(void) {
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}

#endif
