// The reference implementation hashes with OpenSSL's libcrypto so that it
// shares no code with the native side (swift-crypto's BoringSSL).
#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <stddef.h>

/// SHA-256 of `count` bytes into `out` (32 bytes); returns 1 on success.
static inline int copenssl_sha256(const unsigned char *in, size_t count, unsigned char *out) {
    unsigned int len = 0;
    return EVP_Digest(in, count, out, &len, EVP_sha256(), NULL) == 1 && len == 32;
}
#endif
