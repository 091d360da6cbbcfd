// GMP's mpz_* names are C macros, which Swift does not import; these inline
// functions give the reference implementation plain names to call.
#ifndef CGMP_SHIM_H
#define CGMP_SHIM_H
#include <gmp.h>
#include <stddef.h>

typedef __mpz_struct cgmp_mpz;

static inline void cgmp_init(cgmp_mpz *x) { mpz_init(x); }
static inline void cgmp_clear(cgmp_mpz *x) { mpz_clear(x); }
static inline void cgmp_set_ui(cgmp_mpz *x, unsigned long v) { mpz_set_ui(x, v); }
static inline void cgmp_set(cgmp_mpz *x, const cgmp_mpz *v) { mpz_set(x, v); }
static inline void cgmp_add(cgmp_mpz *r, const cgmp_mpz *a, const cgmp_mpz *b) { mpz_add(r, a, b); }
static inline void cgmp_sub(cgmp_mpz *r, const cgmp_mpz *a, const cgmp_mpz *b) { mpz_sub(r, a, b); }
static inline void cgmp_mul(cgmp_mpz *r, const cgmp_mpz *a, const cgmp_mpz *b) { mpz_mul(r, a, b); }
static inline void cgmp_mod(cgmp_mpz *r, const cgmp_mpz *a, const cgmp_mpz *m) { mpz_mod(r, a, m); }
static inline int cgmp_invert(cgmp_mpz *r, const cgmp_mpz *a, const cgmp_mpz *m) { return mpz_invert(r, a, m); }
/// The least significant limb (of |a|).
static inline unsigned long cgmp_low_limb(const cgmp_mpz *a) { return mpz_getlimbn(a, 0); }
static inline int cgmp_cmp(const cgmp_mpz *a, const cgmp_mpz *b) { return mpz_cmp(a, b); }
static inline int cgmp_sgn(const cgmp_mpz *a) { return mpz_sgn(a); }
static inline size_t cgmp_sizeinbase2(const cgmp_mpz *a) { return mpz_sizeinbase(a, 2); }
/// Big-endian bytes in (most significant first).
static inline void cgmp_import_be(cgmp_mpz *r, const unsigned char *bytes, size_t count) {
    mpz_import(r, count, 1, 1, 1, 0, bytes);
}
/// Big-endian bytes out, left-padded with zeros to `width`; returns 0 if the value needs more.
static inline int cgmp_export_be(const cgmp_mpz *a, unsigned char *out, size_t width) {
    size_t needed = (mpz_sizeinbase(a, 2) + 7) / 8;
    if (mpz_sgn(a) == 0) needed = 0;
    if (mpz_sgn(a) < 0 || needed > width) return 0;
    for (size_t i = 0; i < width; i++) out[i] = 0;
    size_t written = 0;
    if (needed > 0) mpz_export(out + (width - needed), &written, 1, 1, 1, 0, a);
    return 1;
}
#endif
