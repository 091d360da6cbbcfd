import SecureMemory
import ShamirCore

/// The shards of one source (the keepers, or an operator's restore shards)
/// collected during recovery (the diagram's "Shard Collection").
///
/// Invariant: at most one shard per share id (1...shares), each 32 bytes,
/// non-zero, below n. Every buffer held and not yet dropped is in `everHeld`
/// so step 10 can check that all were wiped; a dropped buffer is wiped and
/// checked at the drop. `tried` holds the T-subsets (sorted id lists,
/// public) already checked.
struct ShardCollection {
    /// Step 6: how many T-subsets are examined, in canonical order, when
    /// looking for an untried one.
    static let detectionLimit = 65_536
    /// Step 7.3: how many T-subsets one spare-shard search reconstructs and
    /// checks (Spec/recovery.md 7.3); the rest come back through step 6.
    static let spareSearchLimit = 1024

    private(set) var shards: [Int: SecretBytes] = [:]
    private(set) var everHeld: [SecretBytes] = []
    private(set) var tried: Set<[Int]> = []
    let threshold: Int

    init(threshold: Int) { self.threshold = threshold }

    var count: Int { shards.count }
    var ids: [Int] { shards.keys.sorted() }
    func holds(_ id: Int) -> Bool { shards[id] != nil }

    mutating func append(id: Int, value: SecretBytes) {
        shards[id] = value
        everHeld.append(value)
    }

    /// The first untried T-subset in canonical (colexicographic) order, or nil.
    func firstUntriedSubset(limit: Int = detectionLimit) -> [Int]? {
        var found: [Int]?
        forEachSubset(limit: limit) { subset in
            if !tried.contains(subset) {
                found = subset
                return false
            }
            return true
        }
        return found
    }

    /// Untried T-subsets in canonical order, at most `limit` of them.
    func untriedSubsets(limit: Int = spareSearchLimit) -> [[Int]] {
        var out: [[Int]] = []
        forEachSubset(limit: ShardCollection.detectionLimit) { subset in
            if !tried.contains(subset) { out.append(subset) }
            return out.count < limit
        }
        return out
    }

    mutating func markTried(_ subset: [Int]) { tried.insert(subset) }
    mutating func unmarkTried(_ subset: [Int]) { tried.remove(subset) }

    func shards(for subset: [Int]) -> [Shard] { subset.map { Shard(id: UInt64($0), value: shards[$0]!) } }

    /// Wipes and drops the shards of `ids` (found bad at 7.3).
    mutating func exclude(_ ids: [Int]) {
        for id in ids {
            shards[id]?.wipe()
            shards[id] = nil
        }
    }

    /// Step 5: wipes and drops every shard that was part of a tried subset
    /// (all of them failed, or recovery would have ended), forgets those
    /// subsets, and returns the dropped ids and whether each read back zero.
    mutating func dropTried() -> (ids: [Int], allZero: Bool) {
        let dropped = Set(tried.flatMap { $0 }).filter { shards[$0] != nil }.sorted()
        for id in dropped { shards[id]?.wipe() }
        let allZero = dropped.allSatisfy { shards[$0]?.isAllZero ?? true }
        for id in dropped { shards[id] = nil }
        tried.removeAll()
        // Forget wiped buffers so that a recovery looping for hours does not grow.
        let live = shards.values.map(ObjectIdentifier.init)
        everHeld.removeAll { buffer in buffer.isAllZero && !live.contains(ObjectIdentifier(buffer)) }
        return (dropped, allZero)
    }

    /// Drops everything (a restore whose key failed): wipes, forgets subsets.
    mutating func discardAll() -> Bool {
        let zero = wipeAll()
        tried.removeAll()
        everHeld.removeAll()
        return zero
    }

    /// Step 10: wipes every buffer ever held; returns whether all read back as zero.
    mutating func wipeAll() -> Bool {
        for s in everHeld { s.wipe() }
        for s in shards.values { s.wipe() }
        let zero = everHeld.allSatisfy(\.isAllZero) && shards.values.allSatisfy(\.isAllZero)
        shards.removeAll()
        return zero
    }

    /// Colex order over the held ids: index combinations c0 < c1 < … advanced
    /// at the lowest position that can move, lower positions reset.
    private func forEachSubset(limit: Int, _ body: ([Int]) -> Bool) {
        let held = ids
        let k = held.count, t = threshold
        guard t >= 1, k >= t else { return }
        var c = Array(0..<t)
        var examined = 0
        while examined < limit {
            examined += 1
            guard body(c.map { held[$0] }) else { return }
            var j = 0
            while j < t {
                let bound = j + 1 < t ? c[j + 1] : k
                if c[j] + 1 < bound { break }
                j += 1
            }
            guard j < t else { return }
            c[j] += 1
            for i in 0..<j { c[i] = i }
        }
    }
}
