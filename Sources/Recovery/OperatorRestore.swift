import BackingStore
import Foundation
import Logging
import SecureMemory
import Shamir
import ShamirCore

/// The emergency path (Pilot's restore): shards arrive one by one from an
/// operator; at `threshold` the key is rebuilt, verified against the store,
/// installed (compare-and-set, so a running recovery stands down), the state
/// is loaded and the shards are pushed to the keepers at once.
///
/// Invariant: collected shards live in wiping buffers keyed by id; after a
/// successful restore they are wiped and every later call answers `restored`.
public final class OperatorRestore: @unchecked Sendable {
    public struct Status: Sendable, Equatable {
        public let collected: Int
        public let remaining: Int
        public let restored: Bool
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case badShard(String)
        case doesNotOpenStore(String)
        case stateFailed(String)
        public var description: String {
            switch self {
            case .badShard(let why): "bad shard: \(why)"
            case .doesNotOpenStore(let why): "the restored key does not open the store (\(why)); collected shards discarded"
            case .stateFailed(let why): "state initialization failed: \(why)"
            }
        }
    }

    let threshold: Int
    let shares: Int
    let store: any StoreAccess
    let holder: RootKeyHolder
    let distributor: ShardDistributor?
    let logger: Logger
    private let lock = NSLock()
    private var shards: [Int: SecretBytes] = [:]
    public private(set) var state: NexusState?

    public init(threshold: Int, shares: Int, store: any StoreAccess, holder: RootKeyHolder, distributor: ShardDistributor?, logger: Logger) {
        self.threshold = threshold
        self.shares = shares
        self.store = store
        self.holder = holder
        self.distributor = distributor
        self.logger = logger
    }

    /// Adds one shard (a repeated id is ignored: the first value wins).
    public func add(id: Int, shard: SecretBytes) async throws(Failure) -> Status {
        guard !holder.isSet else { return Status(collected: threshold, remaining: 0, restored: true) }
        guard NativeShamir.isCanonicalNonZero(shard) else { throw .badShard("value is not a non-zero scalar below n") }
        let ready: [Shard]? = lock.withLock {
            if shards[id] == nil { shards[id] = shard.copy() }
            return shards.count >= threshold ? shards.sorted { $0.key < $1.key }.map { Shard(id: UInt64($0.key), value: $0.value) } : nil
        }
        guard let ready else {
            let count = lock.withLock { shards.count }
            return Status(collected: count, remaining: threshold - count, restored: false)
        }
        try install(from: ready, by: "operator restore")
        await distributor?.distributeOnce()
        distributor?.start()
        return Status(collected: threshold, remaining: 0, restored: true)
    }

    /// Rebuild, verify, install, load; wipes the shards whatever happens.
    public func install(from shards: [Shard], by who: String) throws(Failure) {
        defer {
            lock.withLock {
                for s in self.shards.values { s.wipe() }
                self.shards.removeAll()
            }
        }
        let key: SecretBytes
        do {
            key = try NativeShamir().recover(threshold: threshold, shards: shards)
        } catch {
            throw .badShard("\(error)")
        }
        defer { key.wipe() }
        do {
            if case .doesNotOpen(let row) = try store.check(candidate: key) { throw Failure.doesNotOpenStore("tag does not verify on \(row)") }
        } catch let f as Failure {
            throw f
        } catch {
            throw .doesNotOpenStore("\(error)")
        }
        guard holder.setIfEmpty(key, by: who) else { return }  // someone else installed it: nothing to do
        logger.notice("root key installed by \(who)")
        do {
            state = try store.load(rootKey: key)
        } catch {
            throw .stateFailed("\(error)")
        }
    }

    /// All shards of the installed key (for `/v1/operator/recover`), or nil.
    public func currentShards() -> [Shard]? {
        guard let key = holder.copy() else { return nil }
        defer { key.wipe() }
        return try? NativeShamir().split(rootKey: key, threshold: threshold, shares: shares).shards
    }
}
