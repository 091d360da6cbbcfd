#define _DEFAULT_SOURCE
#include "CSecureMemory.h"
#include <string.h>

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define CSM_HAVE_VALGRIND 1
#endif
#endif

void csm_wipe(void *p, size_t count) {
    if (p == NULL || count == 0) return;
    explicit_bzero(p, count);
}

void csm_declassify(const void *p, size_t count) {
#ifdef CSM_HAVE_VALGRIND
    (void)VALGRIND_MAKE_MEM_DEFINED(p, count);
#else
    (void)p; (void)count;
#endif
}

void csm_classify(const void *p, size_t count) {
#ifdef CSM_HAVE_VALGRIND
    (void)VALGRIND_MAKE_MEM_UNDEFINED(p, count);
#else
    (void)p; (void)count;
#endif
}

int csm_running_on_valgrind(void) {
#ifdef CSM_HAVE_VALGRIND
    return RUNNING_ON_VALGRIND ? 1 : 0;
#else
    return 0;
#endif
}

#include <errno.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <signal.h>

int csm_disable_core_dumps(void) {
    int failed = 0;
    struct rlimit none = {0, 0};
    if (setrlimit(RLIMIT_CORE, &none) != 0) failed |= 1;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) failed |= 2;
    return failed;
}

#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4 /* Linux 4.4 */
#endif

int csm_lock_all_memory(void) {
    /* MCL_FUTURE under a small RLIMIT_MEMLOCK would make later allocations
     * fail; lock only when the limit leaves room to grow (or as root, which
     * holds CAP_IPC_LOCK). */
    struct rlimit limit;
    if (geteuid() != 0) {
        if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0) return errno;
        if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < (rlim_t)1 << 30) return ENOMEM;
    }
    /* MCL_ONFAULT: a page is locked when it is first touched, not faulted in
     * up front. Only touched pages can hold a secret, so the guarantee is the
     * same, without populating every mapping at start-up (hundreds of MB of
     * reserved arenas and stacks, the slowest call of start-up). Kernels
     * before 4.4 refuse the flag: lock the old way there. */
    if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0) return 0;
    if (errno != EINVAL) return errno;
    return mlockall(MCL_CURRENT | MCL_FUTURE) == 0 ? 0 : errno;
}

/* Async-signal-safe: a fixed message, the signal number, then the default action. */
static void csm_fatal_signal(int sig) {
    static const char head[] = "spike-recovery: fatal signal ";
    static const char tail[] = " (no backtrace and no core dump: this process holds secrets)\n";
    /* One write(2) of the whole line: other threads may be writing log lines to
     * the same pipe, and a write of under PIPE_BUF bytes is not interleaved. */
    char line[sizeof head - 1 + 4 + sizeof tail - 1];
    char digits[4];
    int n = 0, v = sig;
    do { digits[3 - n++] = (char)('0' + v % 10); v /= 10; } while (v > 0 && n < 4);
    size_t length = 0;
    for (size_t i = 0; i < sizeof head - 1; i++) line[length++] = head[i];
    for (int i = 4 - n; i < 4; i++) line[length++] = digits[i];
    for (size_t i = 0; i < sizeof tail - 1; i++) line[length++] = tail[i];
    ssize_t ignored = write(2, line, length);
    (void)ignored;
    signal(sig, SIG_DFL);
    raise(sig);
}

int csm_quiet_crash_handlers(void) {
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS, SIGQUIT};
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = csm_fatal_signal;
    /* On the alternate stack the runtime set up, so a stack overflow still gets the line. */
    action.sa_flags = SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) {
        if (sigaction(fatal[i], &action, NULL) != 0) return errno;
    }
    return 0;
}
