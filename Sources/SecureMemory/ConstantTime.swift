import CSecureMemory

/// Hooks for the constant-time check (tools/ct-check, valgrind memcheck).
///
/// Code on secrets is written without branches or indexes on secret data. The
/// few places where a secret-derived bit becomes public on purpose (an error
/// is reported, a rejection-sampling draw is skipped) call `declassified`,
/// which tells memcheck that value is now public; everywhere else a branch on
/// a secret is reported as a finding.
public enum ConstantTime {
    /// Returns `value`, marked public for memcheck. No effect outside valgrind.
    @inline(never)
    public static func declassified(_ value: UInt64) -> UInt64 {
        var v = value
        withUnsafeBytes(of: &v) { csm_declassify($0.baseAddress, $0.count) }
        return v
    }

    /// Marks a secret buffer's bytes as undefined for memcheck (harness only).
    public static func classify(_ secret: SecretBytes) {
        secret.withUnsafeBytes { csm_classify($0.baseAddress, $0.count) }
    }

    /// Marks a secret buffer's bytes as defined again (harness only).
    public static func declassify(_ secret: SecretBytes) {
        secret.withUnsafeBytes { csm_declassify($0.baseAddress, $0.count) }
    }

    public static var runningOnValgrind: Bool { csm_running_on_valgrind() != 0 }
}
