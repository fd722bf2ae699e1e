/* mix.h — the one 64-bit mixer of the C core: the splitmix64 finaliser
 * (DESIGN §3.2).  The vacuum, the coordinate hash and the scalar map all
 * use it; ath_mix64() (vacuum.h) is the same function, exported. */
#ifndef ATHERIA_MIX_H
#define ATHERIA_MIX_H

#include <stdint.h>

static inline uint64_t ath_mix64_inline(uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

#endif
