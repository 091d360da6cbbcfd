// SHA-256 block compression with the x86 SHA extensions (SHA-NI). Everything
// here is straight-line vector code: no branch and no memory index depends on
// the data, so it is constant time like the portable Swift compression it
// stands in for (Sources/Shamir/SHA256.swift), which is what tools/ct-check
// sees (valgrind hides the extensions). The working values live in vector
// registers; nothing is copied to memory this code owns.
#include "CSHA256.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

int csha256_hardware_available(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    const int sha = (b >> 29) & 1;
    return ssse3 && sse41 && sha;
}

// Four rounds: the message words of `w` plus their constants (FIPS 180-4's K,
// four per group), two rounds per instruction. `abef` and `cdgh` are the
// state as the instructions hold it.
#define FOUR_ROUNDS(w, group)                                                                  \
    do {                                                                                       \
        __m128i wk = _mm_add_epi32((w), _mm_loadu_si128((const __m128i *)&roundConstants[4 * (group)])); \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);                                          \
        wk = _mm_shuffle_epi32(wk, 0x0e);                                                      \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, wk);                                          \
    } while (0)

// The next four schedule words from the previous sixteen (w0 oldest):
// W[t] = σ1(W[t−2]) + W[t−7] + σ0(W[t−15]) + W[t−16].
#define NEXT_WORDS(w0, w1, w2, w3) \
    _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32((w0), (w1)), _mm_alignr_epi8((w3), (w2), 4)), (w3))

__attribute__((target("sha,ssse3,sse4.1")))
void csha256_compress_blocks(uint32_t *state, const uint8_t *blocks, size_t blockCount, const uint32_t *roundConstants) {
    // Big-endian message words: reverse the bytes of each 32-bit lane.
    const __m128i byteSwap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    // The instructions take the state as (A, B, E, F) and (C, D, G, H), A in the top lane.
    __m128i abcd = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i efgh = _mm_loadu_si128((const __m128i *)&state[4]);
    __m128i badc = _mm_shuffle_epi32(abcd, 0xb1);  // lanes (B, A, D, C)
    __m128i hgfe = _mm_shuffle_epi32(efgh, 0x1b);  // lanes (H, G, F, E)
    __m128i abef = _mm_alignr_epi8(badc, hgfe, 8);
    __m128i cdgh = _mm_blend_epi16(hgfe, badc, 0xf0);

    for (size_t block = 0; block < blockCount; block++) {
        const uint8_t *p = blocks + 64 * block;
        const __m128i abefBefore = abef, cdghBefore = cdgh;
        __m128i w0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 0)), byteSwap);
        __m128i w1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), byteSwap);
        __m128i w2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), byteSwap);
        __m128i w3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), byteSwap);
        FOUR_ROUNDS(w0, 0);
        FOUR_ROUNDS(w1, 1);
        FOUR_ROUNDS(w2, 2);
        FOUR_ROUNDS(w3, 3);
        // Groups 4…15: each new group of words replaces the oldest.
        for (int group = 4; group < 16; group += 4) {
            w0 = NEXT_WORDS(w0, w1, w2, w3);
            FOUR_ROUNDS(w0, group);
            w1 = NEXT_WORDS(w1, w2, w3, w0);
            FOUR_ROUNDS(w1, group + 1);
            w2 = NEXT_WORDS(w2, w3, w0, w1);
            FOUR_ROUNDS(w2, group + 2);
            w3 = NEXT_WORDS(w3, w0, w1, w2);
            FOUR_ROUNDS(w3, group + 3);
        }
        abef = _mm_add_epi32(abef, abefBefore);
        cdgh = _mm_add_epi32(cdgh, cdghBefore);
    }

    // Back to (A, B, C, D) and (E, F, G, H); lane 0 is named first below.
    __m128i abefLanes = _mm_shuffle_epi32(abef, 0x1b);
    __m128i ghcdLanes = _mm_shuffle_epi32(cdgh, 0xb1);
    _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(abefLanes, ghcdLanes, 0xf0));
    _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(ghcdLanes, abefLanes, 8));
}

#else
int csha256_hardware_available(void) { return 0; }
void csha256_compress_blocks(uint32_t *state, const uint8_t *blocks, size_t blockCount, const uint32_t *roundConstants) {
    (void)state; (void)blocks; (void)blockCount; (void)roundConstants;
}
#endif
