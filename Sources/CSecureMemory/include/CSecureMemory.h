#ifndef CSECUREMEMORY_H
#define CSECUREMEMORY_H
#include <stddef.h>

/// Zeroes `count` bytes in a way the optimizer may not remove.
void csm_wipe(void * _Nullable p, size_t count);
/// Constant-time analysis hooks (tools/ct-check). Outside valgrind both are a
/// few no-op instructions. `csm_declassify` marks bytes derived from secrets
/// as public at a point where the result is revealed anyway (an error is
/// returned, a rejection-sampling draw is skipped); `csm_classify` marks a
/// secret input as undefined so memcheck reports any branch or index on it.
void csm_declassify(const void * _Nullable p, size_t count);
void csm_classify(const void * _Nullable p, size_t count);
/// 1 when running under valgrind.
int csm_running_on_valgrind(void);

/// malloc/realloc/free for SwiftNIO's ByteBufferAllocator that zero every
/// block they give back (a moved block when it grows, a freed one when it
/// goes), so network buffers that carried plaintext leave no copy behind.
void * _Nullable csm_buffer_allocate(size_t size);
void * _Nullable csm_buffer_reallocate(void * _Nullable p, size_t old_size, size_t new_size);
void csm_buffer_deallocate(void * _Nonnull p);
void csm_buffer_copy(void * _Nonnull dst, const void * _Nonnull src, size_t count);
/// glibc's M_PERTURB: every block freed later is overwritten (0xff). Returns 0
/// on success. Blocks glibc keeps in its per-thread cache (up to 1 KiB, a few
/// per size) are not overwritten until reused.
int csm_wipe_freed_heap(void);
#endif

#ifndef CSECUREMEMORY_HARDEN_H
#define CSECUREMEMORY_HARDEN_H
/// No core dumps: RLIMIT_CORE 0 and PR_SET_DUMPABLE 0. Returns 0 on success,
/// else a bit mask: 1 = rlimit failed, 2 = prctl failed.
int csm_disable_core_dumps(void);
/// mlockall(MCL_CURRENT | MCL_FUTURE); returns 0 or errno.
int csm_lock_all_memory(void);
/// Replaces the handlers of the fatal signals (the Swift runtime's backtracer
/// among them, which prints registers and memory bytes) with one that writes a
/// fixed line and dies by the same signal. Returns 0 or errno.
int csm_quiet_crash_handlers(void);
#endif
