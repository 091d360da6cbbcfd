import CSecureMemory
#if canImport(Glibc)
import Glibc
#endif

/// Keeps secrets out of core dumps, crash output and swap for processes
/// that hold them: no dumps (RLIMIT_CORE 0, PR_SET_DUMPABLE 0), a fatal
/// signal prints one fixed line instead of the runtime's backtrace (which
/// dumps registers and memory bytes), all memory locked where permitted, and
/// freed heap blocks overwritten (plaintext that libraries leave in buffers
/// they free, BoringSSL's decrypted TLS records among them).
public enum ProcessHardening {
    /// Applies all of it (memory locking only when `lockMemory`); returns a
    /// sentence naming what could not be done, or nil.
    public static func apply(lockMemory: Bool = true) -> String? {
        var missing: [String] = []
        let dumps = csm_disable_core_dumps()
        if dumps & 1 != 0 { missing.append("core-dump limit") }
        if dumps & 2 != 0 { missing.append("PR_SET_DUMPABLE") }
        if csm_quiet_crash_handlers() != 0 { missing.append("quiet crash handlers") }
        if csm_wipe_freed_heap() != 0 { missing.append("overwriting freed heap blocks (mallopt M_PERTURB)") }
        let lockError = lockMemory ? csm_lock_all_memory() : 0
        if lockError == ENOMEM {
            missing.append("mlockall (RLIMIT_MEMLOCK below 1 GiB; raise it or run with CAP_IPC_LOCK; secrets may reach swap)")
        } else if lockError != 0 {
            missing.append("mlockall (\(String(cString: strerror(lockError))); secrets may reach swap)")
        }
        return missing.isEmpty ? nil : "memory hardening incomplete: " + missing.joined(separator: ", ")
    }
}
