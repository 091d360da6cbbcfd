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

    /// The same for raw bytes (harness only: part of a text marked secret).
    public static func classify(_ raw: UnsafeRawBufferPointer) { csm_classify(raw.baseAddress, raw.count) }
    public static func declassify(_ raw: UnsafeRawBufferPointer) { csm_declassify(raw.baseAddress, raw.count) }

    /// Whether `a == b`, computed by mask and then made public: for a byte of
    /// a secret text whose only public fact is whether it is that separator.
    @inline(__always)
    public static func declassifiedEqual(_ a: UInt8, _ b: UInt8) -> Bool {
        let d = Int(a ^ b)
        return declassified(UInt64(truncatingIfNeeded: ((d &- 1) >> (Int.bitWidth - 1)) & 1)) == 1
    }

    public static var runningOnValgrind: Bool { csm_running_on_valgrind() != 0 }
}
