import NIOConcurrencyHelpers
import SecureMemory

/// The one shard a Keeper holds.
///
/// Invariant: the shard lives only in `buffer` (32 bytes, in `slot`, behind
/// its lock); `held` says whether it holds one. Storing copies into the buffer
/// (the caller's copy is the caller's to drop); replacing overwrites in place;
/// `wipe` zeroes it. It is never written to disk and never logged.
public final class ShardSlot: Sendable {
    private static let shardSize = 32
    private struct Slot: Sendable {
        let buffer = SecretBytes(zeroedCount: ShardSlot.shardSize)
        var held = false
    }
    private let slot = NIOLockedValueBox(Slot())

    public init() {}

    public func store(_ shard: SecretBytes) {
        precondition(shard.count == Self.shardSize, "ShardSlot stores 32-byte shards only")
        slot.withLockedValue { slot in
            slot.buffer.withUnsafeMutableBytes { dst in shard.withUnsafeBytes { dst.copyMemory(from: $0) } }
            slot.held = true
        }
    }

    /// Runs `body` with the held shard (or nil) while the lock is held, so a
    /// concurrent store can never produce a mix of two shards.
    public func withShard<R>(_ body: (SecretBytes?) throws -> R) rethrows -> R {
        try slot.withLockedValue { try body($0.held ? $0.buffer : nil) }
    }

    public var isHeld: Bool { slot.withLockedValue { $0.held } }

    public func wipe() {
        slot.withLockedValue { slot in
            slot.buffer.wipe()
            slot.held = false
        }
    }

    /// Test hook: whether the buffer reads back as zeros.
    public var bufferIsZero: Bool { slot.withLockedValue { $0.buffer.isAllZero } }
}
