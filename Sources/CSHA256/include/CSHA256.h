#ifndef CSHA256_H
#define CSHA256_H
#include <stddef.h>
#include <stdint.h>

/// 1 when this CPU has the x86 SHA extensions (and the SSSE3 and SSE4.1 the
/// compression below also uses), 0 otherwise and on other architectures.
/// valgrind hides the extensions, so under it this is 0.
int csha256_hardware_available(void);

/// Applies the SHA-256 compression function to `blockCount` 64-byte blocks
/// with the SHA extensions. `state` is the eight working words, A first, in
/// host order; `roundConstants` is FIPS 180-4's 64 words K. Only call when
/// `csha256_hardware_available()` returned 1.
void csha256_compress_blocks(uint32_t * _Nonnull state, const uint8_t * _Nonnull blocks, size_t blockCount,
                             const uint32_t * _Nonnull roundConstants);
#endif
