import ScalarField
import Synchronization

/// Lagrange weights at 0 by share-id set. Ids are public, and a Nexus
/// rebuilds from the same few sets again and again (every recovery, every
/// split's self-check, every distribution round), so the O(k²) weights and
/// their inversion are computed once per set.
///
/// Invariant: an entry's weights are `lagrangeWeightsAtZero(ids:)` of its
/// key; at most `capacity` sets, of at most `largestCachedSet` ids each, are
/// kept (a full cache starts over), so memory stays bounded whatever ids come.
final class LagrangeCache: Sendable {
    static let shared = LagrangeCache()
    init() {}
    static let capacity = 32
    /// Larger sets cost O(k²) to weigh anyway; caching them would only hold memory.
    static let largestCachedSet = 64

    private let entries = Mutex<[[UInt64]: [P256Scalar]]>([:])

    /// Sets held now (tests).
    var count: Int { entries.withLock { $0.count } }

    func weights(ids: [UInt64]) -> [P256Scalar] {
        guard ids.count <= Self.largestCachedSet else { return P256Scalar.lagrangeWeightsAtZero(ids: ids) }
        if let hit = entries.withLock({ $0[ids] }) { return hit }
        let computed = P256Scalar.lagrangeWeightsAtZero(ids: ids)
        entries.withLock { table in
            if table.count >= Self.capacity { table.removeAll(keepingCapacity: true) }
            table[ids] = computed
        }
        return computed
    }
}
