#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ScalarField
import ShamirCore

/// Lagrange weights at 0 by share-id set. Ids are public, and a Nexus
/// rebuilds from the same few sets again and again (every recovery, every
/// split's self-check, every distribution round), so the O(k²) weights and
/// their inversion are computed once per set.
///
/// Invariant: an entry's weights are `lagrangeWeightsAtZero(ids:)` of its
/// key; at most `capacity` sets, of at most `largestCachedSet` ids each, are
/// kept (a full cache starts over), so memory stays bounded whatever ids come.
final class LagrangeCache: @unchecked Sendable {
    static let shared = LagrangeCache()
    init() {}
    static let capacity = 32
    /// Larger sets cost O(k²) to weigh anyway; caching them would only hold memory.
    static let largestCachedSet = 64

    /// Guarded by `lock`. A pthread mutex rather than Synchronization.Mutex:
    /// ThreadSanitizer sees its hand-offs, while a contended Mutex is passed on
    /// inside uninstrumented futex calls and reported as a race
    /// (tools/tsan-suppressions.txt says more).
    /// Weights by id set; `NativeShamir.warmUp` sets this type up ahead.
    typealias Table = [[UInt64]: [P256Scalar]]
    private var table: Table = [:]
    /// Guarded by `lock`: the set weighed last, which a Nexus asks for again
    /// and again; matched against the caller's ids without building a key.
    private var last: (ids: [UInt64], weights: [P256Scalar])?
    private let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        precondition(pthread_mutex_init(lock, nil) == 0, "pthread_mutex_init failed")
        return lock
    }()

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    private func withLock<R>(_ body: (inout [[UInt64]: [P256Scalar]]) -> R) -> R {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return body(&table)
    }

    /// Sets held now (tests).
    var count: Int { withLock { $0.count } }

    /// The weights of the first `count` shards' ids: the set weighed last is
    /// recognised without an array or a hash (recover and split's self-check
    /// ask for the same set each time).
    func weights(ofFirst count: Int, of shards: [Shard]) -> [P256Scalar] {
        if let hit = lastWeights(count: count, id: { shards[$0].id }) { return hit }
        return weights(ids: shards.prefix(count).map { $0.id })
    }

    private func lastWeights(count: Int, id: (Int) -> UInt64) -> [P256Scalar]? {
        withLock { _ in
            guard let last, last.ids.count == count else { return nil }
            for i in 0..<count where last.ids[i] != id(i) { return nil }
            return last.weights
        }
    }

    func weights(ids: [UInt64]) -> [P256Scalar] {
        guard ids.count <= Self.largestCachedSet else { return P256Scalar.lagrangeWeightsAtZero(ids: ids) }
        let hit: [P256Scalar]? = withLock { table in
            guard let hit = table[ids] else { return nil }
            last = (ids, hit)
            return hit
        }
        if let hit { return hit }
        let computed = P256Scalar.lagrangeWeightsAtZero(ids: ids)
        withLock { table in
            if table.count >= Self.capacity { table.removeAll(keepingCapacity: true) }
            table[ids] = computed
            last = (ids, computed)
        }
        return computed
    }
}

extension NativeShamir {
    /// Sets up the weights table's dictionary type, which the Swift runtime
    /// does on first use by scanning the binary's conformance records, so that
    /// a recovery's first rebuild does not pay for it. A local table with no
    /// weights: no field arithmetic, nothing cached, nothing secret.
    public static func warmUp() {
        var table: LagrangeCache.Table = [:]
        table[[1, 2]] = []
        withExtendedLifetime(table) {}
    }
}
