import Foundation
import SecureMemory

/// The one shard a Keeper holds.
///
/// Invariant: the shard lives only in `buffer` (32 bytes, behind `lock`);
/// `held` says whether it holds one. Storing copies into the buffer (the
/// caller's copy is the caller's to drop); replacing overwrites in place;
/// `wipe` zeroes it. It is never written to disk and never logged.
public final class ShardSlot: @unchecked Sendable {
    private let lock = NSLock()
    private let buffer = SecretBytes(zeroedCount: 32)
    private var held = false

    public init() {}

    public func store(_ shard: SecretBytes) {
        precondition(shard.count == buffer.count, "ShardSlot stores 32-byte shards only")
        lock.lock()
        defer { lock.unlock() }
        buffer.withUnsafeMutableBytes { dst in shard.withUnsafeBytes { dst.copyMemory(from: $0) } }
        held = true
    }

    /// Runs `body` with the held shard (or nil) while the lock is held, so a
    /// concurrent store can never produce a mix of two shards.
    public func withShard<R>(_ body: (SecretBytes?) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(held ? buffer : nil)
    }

    public var isHeld: Bool {
        lock.lock()
        defer { lock.unlock() }
        return held
    }

    public func wipe() {
        lock.lock()
        defer { lock.unlock() }
        buffer.wipe()
        held = false
    }

    /// Test hook: whether the buffer reads back as zeros.
    public var bufferIsZero: Bool {
        lock.lock()
        defer { lock.unlock() }
        return buffer.isAllZero
    }
}
