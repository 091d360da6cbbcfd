import NIOConcurrencyHelpers
import SecureMemory
import Shamir
import ShamirCore

/// The root key in Nexus's memory (step 8, `SetRootKey`).
///
/// Invariant: the key lives only in `buffer` (32 bytes) behind the lock;
/// all zero means "no key". It is set once, by compare-and-set, either by the
/// recovery or by an operator restore — whichever comes first — and is wiped
/// when the holder goes away. Readers get a copy in a wiping buffer.
public final class RootKeyHolder: Sendable {
    private struct Held: Sendable {
        let buffer = SecretBytes(zeroedCount: ShamirConstants.scalarByteCount)
        var installedBy: String?
    }

    private let held = NIOLockedValueBox(Held())

    public init() {}

    /// Installs `key` if no key is held; returns false (and changes nothing) otherwise.
    public func setIfEmpty(_ key: SecretBytes, by who: String) -> Bool {
        precondition(key.count == ShamirConstants.scalarByteCount, "root key must be 32 bytes")
        return held.withLockedValue { state in
            guard state.buffer.isAllZero else { return false }
            state.buffer.withUnsafeMutableBytes { dst in key.withUnsafeBytes { dst.copyMemory(from: $0) } }
            state.installedBy = who
            return true
        }
    }

    public var isSet: Bool { held.withLockedValue { !$0.buffer.isAllZero } }

    /// Who installed the key ("recovery", "operator restore", …), or nil.
    public var installer: String? { held.withLockedValue { $0.installedBy } }

    /// A copy of the key (wiping buffer), or nil when none is held.
    public func copy() -> SecretBytes? {
        held.withLockedValue { $0.buffer.isAllZero ? nil : $0.buffer.copy() }
    }

    /// The deterministic shards of the held key (share i for keeper i), or nil
    /// when no key is held. The one place the installed key is split: step 11's
    /// distribution and Pilot's recover route both take their shards here.
    /// The caller wipes every returned shard.
    public func shards(threshold: Int, shares: Int) throws -> [Shard]? {
        guard let key = copy() else { return nil }
        defer { key.wipe() }
        return try NativeShamir().split(rootKey: key, threshold: threshold, shares: shares).shards
    }

    public func wipe() {
        held.withLockedValue { state in
            state.buffer.wipe()
            state.installedBy = nil
        }
    }
}
