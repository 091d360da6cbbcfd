import Foundation
import SecureMemory

/// The root key in Nexus's memory (step 8, `SetRootKey`).
///
/// Invariant: the key lives only in `buffer` (32 bytes) behind `lock`;
/// all zero means "no key". It is set once, by compare-and-set, either by the
/// recovery or by an operator restore — whichever comes first — and is wiped
/// when the holder goes away. Readers get a copy in a wiping buffer.
public final class RootKeyHolder: @unchecked Sendable {
    private let lock = NSLock()
    private let buffer = SecretBytes(zeroedCount: 32)
    private var installedBy: String?

    public init() {}

    /// Installs `key` if no key is held; returns false (and changes nothing) otherwise.
    public func setIfEmpty(_ key: SecretBytes, by who: String) -> Bool {
        precondition(key.count == 32, "root key must be 32 bytes")
        lock.lock()
        defer { lock.unlock() }
        guard buffer.isAllZero else { return false }
        buffer.withUnsafeMutableBytes { dst in key.withUnsafeBytes { dst.copyMemory(from: $0) } }
        installedBy = who
        return true
    }

    public var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !buffer.isAllZero
    }

    /// Who installed the key ("recovery", "operator restore", …), or nil.
    public var installer: String? {
        lock.lock()
        defer { lock.unlock() }
        return installedBy
    }

    /// A copy of the key (wiping buffer), or nil when none is held.
    public func copy() -> SecretBytes? {
        lock.lock()
        defer { lock.unlock() }
        return buffer.isAllZero ? nil : buffer.copy()
    }

    public func wipe() {
        lock.lock()
        defer { lock.unlock() }
        buffer.wipe()
        installedBy = nil
    }
}
