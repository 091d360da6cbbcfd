import SecureMemory
import ShamirCore

/// The shards collected during recovery (the diagram's "Shard Collection").
///
/// Invariant: at most one shard per share id (= the keeper's 1-based
/// position), each 32 bytes, non-zero, below n. Every buffer ever held is
/// remembered in `everHeld` so step 10 can check that all were wiped.
/// `tried` holds the T-subsets (sorted id lists, public) already checked.
struct ShardCollection {
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
    func firstUntriedSubset(limit: Int = 4096) -> [Int]? {
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

    /// Untried T-subsets in canonical order (at most `limit` examined).
    func untriedSubsets(limit: Int = 4096) -> [[Int]] {
        var out: [[Int]] = []
        forEachSubset(limit: limit) { subset in
            if !tried.contains(subset) { out.append(subset) }
            return true
        }
        return out
    }

    mutating func markTried(_ subset: [Int]) { tried.insert(subset) }

    func shards(for subset: [Int]) -> [Shard] { subset.map { Shard(id: UInt64($0), value: shards[$0]!) } }

    /// Wipes and drops the shards of `ids` (found bad at 7.3).
    mutating func exclude(_ ids: [Int]) {
        for id in ids {
            shards[id]?.wipe()
            shards[id] = nil
        }
    }

    /// Step 10: wipes every buffer ever held; returns whether all read back as zero.
    mutating func wipeAll() -> Bool {
        for s in everHeld { s.wipe() }
        shards.removeAll()
        return everHeld.allSatisfy(\.isAllZero)
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
