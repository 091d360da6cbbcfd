#define _GNU_SOURCE
#include "CSecureMemory.h"
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

// malloc_usable_size covers the whole block, slack included: bytes a buffer
// held past its last use are zeroed too.

void *csm_buffer_allocate(size_t size) { return malloc(size); }

void *csm_buffer_reallocate(void *p, size_t old_size, size_t new_size) {
    void *q = malloc(new_size);
    if (q == NULL) return NULL;
    if (p != NULL) {
        memcpy(q, p, old_size < new_size ? old_size : new_size);
        csm_wipe(p, malloc_usable_size(p));
        free(p);
    }
    return q;
}

void csm_buffer_deallocate(void *p) {
    csm_wipe(p, malloc_usable_size(p));
    free(p);
}

void csm_buffer_copy(void *dst, const void *src, size_t count) { memcpy(dst, src, count); }

int csm_wipe_freed_heap(void) {
    // glibc overwrites a block with this byte when it is freed (and fills a new
    // one with its complement, 0x00): BoringSSL decrypts TLS records in place in
    // plain malloc'd buffers that it frees without zeroing.
    return mallopt(M_PERTURB, 0xff) == 1 ? 0 : 1;
}
