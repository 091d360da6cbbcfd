import Foundation
import Crypto
import ScalarField
import SecureMemory
import ShamirCore
import ShamirReference
import Testing
import TestSupport
@testable import Shamir

func secret(_ bytes: [UInt8]) -> SecretBytes { SecretBytes(copying: bytes) }
func raw(_ s: SecretBytes) -> [UInt8] { s.withUnsafeBytes { Array($0) } }
func hex(_ s: SecretBytes) -> String { raw(s).map { String(format: "%02x", $0) }.joined() }

typealias TestRNG = SplitMix64

extension SplitMix64 {
    mutating func key() -> [UInt8] { scalarBytes() }
}

@Suite struct NativeShamirTests {
    let native = NativeShamir()
    let reference = ReferenceShamir()

    @Test func goKnownAnswers() throws {
        let a = try native.split(rootKey: secret(Array(1...32)), threshold: 2, shares: 3)
        #expect(a.shards.map { hex($0.value) } == [
            "af236f32fa2a813f8bcb40fbaf87b2f4ded823a83c257443fea67d20d4c431e9",
            "5d44db62ef4efb760e8c76eb520156d9efb7398ebc1d32eaf079146290071f61",
            "0b664792e47375ac914dacdaf47afabf00964f753c14f191e24baba44b4a0cd9",
        ])
        let spike = Array(SHA256.hash(data: Array("spike".utf8)))
        let b = try native.split(rootKey: secret(spike), threshold: 2, shares: 3)
        #expect(b.shards.map { hex($0.value) } == [
            "952f7165986231d2f878f55181b191558930c198f4a966851c5f0def1b935b14",
            "b0d98ff79e7a32ebd3021cc9420183e817b6c4f6ab1e75036e29c3dafbd35aad",
            "cc83ae89a4923404ad8b44410251767aa63cc85461938381bff479c6dc135a46",
        ])
    }

    /// Random keys and parameters: the native split equals the reference byte for byte.
    @Test func splitMatchesTheReference() throws {
        var rng = TestRNG(seed: 0xa11ce)
        for _ in 0..<150 {
            let t = 1 + rng.below(12)
            let n = t + rng.below(12)
            let key = rng.key()
            let a = try native.split(rootKey: secret(key), threshold: t, shares: n)
            let b = try reference.split(rootKey: secret(key), threshold: t, shares: n)
            #expect(a.shards.map { hex($0.value) } == b.shards.map { hex($0.value) })
            #expect(a.shards.map(\.id) == b.shards.map(\.id))
            #expect(a.coefficients.map(hex) == b.coefficients.map(hex))
        }
    }

    /// Every subset size from t to n, in random order, recovers the key; the
    /// answer does not depend on which shards or their order.
    @Test func recoverFromRandomSubsetsOfEverySize() throws {
        var rng = TestRNG(seed: 0xb0b)
        for _ in 0..<60 {
            let t = 1 + rng.below(8)
            let n = t + rng.below(8)
            let key = rng.key()
            let shards = try native.split(rootKey: secret(key), threshold: t, shares: n).shards
            for size in t...n {
                let subset = Array(rng.shuffled(shards).prefix(size))
                #expect(raw(try native.recover(threshold: t, shards: subset)) == key)
                #expect(raw(try reference.recover(threshold: t, shards: subset)) == key)
            }
        }
    }

    @Test func arbitraryIDsMatchTheReference() throws {
        var rng = TestRNG(seed: 0xc0ffee)
        for _ in 0..<40 {
            let t = 1 + rng.below(10)
            var ids = Set<UInt64>()
            while ids.count < t { ids.insert(rng.next() | (rng.next() & 1)) }
            ids.remove(0)
            if ids.isEmpty { continue }
            let key = rng.key()
            let idList = Array(ids)
            let a = try native.shards(rootKey: secret(key), threshold: idList.count, ids: idList)
            let b = try reference.shards(rootKey: secret(key), threshold: idList.count, ids: idList)
            #expect(a.map { hex($0.value) } == b.map { hex($0.value) })
            #expect(raw(try native.recover(threshold: idList.count, shards: rng.shuffled(a))) == key)
        }
    }

    /// Fewer than threshold shards do not determine the key (t−1 shards and a
    /// wrong extra point give another key), and too few is refused.
    @Test func thresholdMatters() throws {
        let key = Array(1...32).map(UInt8.init)
        let shards = try native.split(rootKey: secret(key), threshold: 3, shares: 5).shards
        #expect(throws: ShamirError.tooFewShards(needed: 3, got: 2)) { try native.recover(threshold: 3, shards: Array(shards.prefix(2))) }
        // Using threshold 2 on a degree-2 polynomial gives a wrong key, not an error.
        #expect(raw(try native.recover(threshold: 2, shards: Array(shards.prefix(2)))) != key)
    }

    /// The same input gives the same failure class from both implementations.
    @Test func errorsMatchTheReference() throws {
        let good = try native.split(rootKey: secret(Array(1...32)), threshold: 2, shares: 3).shards
        let zero = secret([UInt8](repeating: 0, count: 32))
        let order = secret(ShamirConstants.groupOrderBigEndian)
        let splitInputs: [(SecretBytes, Int, Int)] = [
            (secret(Array(1...32)), 0, 3), (secret(Array(1...32)), 3, 2), (secret(Array(1...32)), 2, 70_000),
            (secret(Array(1...31)), 2, 3), (secret([]), 2, 3), (zero, 2, 3), (order, 2, 3),
            (secret([UInt8](repeating: 0xff, count: 32)), 2, 3),
        ]
        for (key, t, n) in splitInputs {
            let a = Result { () throws(ShamirError) in try native.split(rootKey: key, threshold: t, shares: n) }
            let b = Result { () throws(ShamirError) in try reference.split(rootKey: key, threshold: t, shares: n) }
            guard case .failure(let ea) = a, case .failure(let eb) = b else {
                Issue.record("split(\(t), \(n)) should fail in both")
                continue
            }
            #expect(ea == eb)
        }
        let recoverInputs: [(Int, [Shard])] = [
            (0, good), (4, good), (2, [good[0], Shard(id: 0, value: good[1].value)]), (2, [good[0], good[0]]),
            (2, [good[0], Shard(id: 7, value: secret([1, 2]))]), (2, [good[0], Shard(id: 7, value: order)]),
            (2, [good[0], Shard(id: 7, value: zero)]), (2, good + [Shard(id: 9, value: zero)]),
        ]
        for (t, shards) in recoverInputs {
            let a = Result { () throws(ShamirError) in try native.recover(threshold: t, shards: shards) }
            let b = Result { () throws(ShamirError) in try reference.recover(threshold: t, shards: shards) }
            guard case .failure(let ea) = a, case .failure(let eb) = b else {
                Issue.record("recover(\(t)) should fail in both")
                continue
            }
            #expect(ea == eb)
        }
    }

    @Test func largeThresholds() throws {
        var rng = TestRNG(seed: 0xdead)
        let key = rng.key()
        let shards = try native.split(rootKey: secret(key), threshold: 100, shares: 200).shards
        #expect(raw(try native.recover(threshold: 100, shards: Array(rng.shuffled(shards).prefix(100)))) == key)
        let ref = try reference.split(rootKey: secret(key), threshold: 100, shares: 200).shards
        #expect(shards.map { hex($0.value) } == ref.map { hex($0.value) })
    }
}

/// The cached weights are the computed ones, for every set, past the cache's capacity.
@Suite struct LagrangeCacheTests {
    @Test func cachedWeightsEqualComputedOnesAndTheCacheStaysBounded() {
        let cache = LagrangeCache()
        for round in 0..<2 {
            for start in 1...UInt64(LagrangeCache.capacity + 5) {
                let ids = [start, start + 1, start + 7]
                let expected = P256Scalar.lagrangeWeightsAtZero(ids: ids)
                let got = cache.weights(ids: ids)
                #expect(got.count == 3 && zip(got, expected).allSatisfy { P256Scalar.equalMask($0, $1) == ~0 }, "round \(round), ids \(ids)")
            }
        }
        #expect(cache.count <= LagrangeCache.capacity)
        let big = Array(1...UInt64(LagrangeCache.largestCachedSet + 1))
        #expect(cache.weights(ids: big).count == big.count)
    }
}
