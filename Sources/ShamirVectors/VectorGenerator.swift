import SecureMemory
import ShamirCore
import ShamirReference

/// Builds the project's own vector files (Vectors/reference/) from the GMP
/// reference. Deterministic: root keys and subsets come from SHA-256 of
/// fixed labels, so `vectors generate` reproduces the committed files byte
/// for byte.
public struct VectorGenerator {
    let reference = ReferenceShamir()

    public init() {}

    /// Root keys whose coefficient chain hits a block >= n, found once by
    /// tools/rejection-search.c (label and step recorded in
    /// Vectors/reference/README.md). `firstDraw`: H(rk) >= n, so coeff[1]
    /// is the second block. `secondDraw`: H(rk) < n but H(H(rk)) >= n, so
    /// coeff[2] is the fourth block... see Spec/shamir.md.
    public static let rejectionKeys: [(name: String, hex: String)] = RejectionSearchResults.keys

    /// File name → contents, in a fixed order.
    public func files() throws(ShamirError) -> [(name: String, file: VectorFile)] {
        [
            ("thresholds.json", try thresholds()),
            ("large.json", try large()),
            ("share-ids.json", try shareIDs()),
            ("edge-keys.json", try edgeKeys()),
            ("rejection-sampling.json", try rejectionSampling()),
            ("reject.json", rejects()),
        ]
    }

    // MARK: files

    func thresholds() throws(ShamirError) -> VectorFile {
        var file = VectorFile(note: note("every threshold 1...16 with shares t, t+1, 2t and 3t"))
        for t in 1...16 {
            for n in Set([t, t + 1, 2 * t, 3 * t]).sorted() {
                try add(into: &file, name: "ref-t\(t)-n\(n)", key: derivedKey("t\(t)-n\(n)"), threshold: t, shares: n,
                        subsets: ["first", "last", "reversed", "random"])
            }
        }
        return file
    }

    func large() throws(ShamirError) -> VectorFile {
        var file = VectorFile(note: note("large thresholds: 100 and 1000"))
        for (t, n) in [(100, 100), (100, 200), (100, 300), (1000, 2000)] {
            try add(into: &file, name: "ref-large-t\(t)-n\(n)", key: derivedKey("large-t\(t)-n\(n)"), threshold: t, shares: n,
                    subsets: ["first", "random"])
        }
        return file
    }

    func shareIDs() throws(ShamirError) -> VectorFile {
        var file = VectorFile(note: note("recovery from non-contiguous and huge (up to 2^64-1) share ids"))
        let fixed: [(String, [UInt64])] = [
            ("max-ids", [UInt64.max, UInt64.max - 1]),
            ("max-and-one", [UInt64.max, 1]),
            ("powers-of-two", [1 << 63, 1 << 32, 1 << 16, 1]),
            ("odd-ids", [1, 3, 5]),
            ("spread", [2, 1_000, 1_000_000, 1_000_000_000_000]),
            ("top-five", (0..<5).map { UInt64.max - $0 }),
            ("single-huge", [UInt64.max - 12345]),
        ]
        for (label, ids) in fixed {
            try addPoints(into: &file, name: "ref-ids-\(label)", key: derivedKey("ids-\(label)"), ids: ids)
        }
        var rng = SplitMix64(label: "ids-random")
        for (i, t) in [2, 3, 5, 8, 13, 21].enumerated() {
            var ids = Set<UInt64>()
            while ids.count < t { ids.insert(rng.next() | 1) }
            try addPoints(into: &file, name: "ref-ids-random-\(i)-t\(t)", key: derivedKey("ids-random-\(i)"), ids: ids.sorted())
        }
        return file
    }

    func edgeKeys() throws(ShamirError) -> VectorFile {
        var file = VectorFile(note: note("edge root keys: 1, 2, n-1, n-2, 2^255, 2^224, leading zero bytes"))
        let n = ShamirConstants.groupOrderBigEndian
        var one = [UInt8](repeating: 0, count: 32); one[31] = 1
        var two = one; two[31] = 2
        var nMinus1 = n; nMinus1[31] -= 1
        var nMinus2 = n; nMinus2[31] -= 2
        var p255 = [UInt8](repeating: 0, count: 32); p255[0] = 0x80
        var p224 = [UInt8](repeating: 0, count: 32); p224[3] = 0x01
        var lowByte = [UInt8](repeating: 0, count: 32); lowByte[31] = 0xff
        var leadingZeros = derivedKey("leading-zeros").withUnsafeBytes { [UInt8]($0) }
        for i in 0..<5 { leadingZeros[i] = 0 }
        let keys: [(String, [UInt8])] = [
            ("one", one), ("two", two), ("order-minus-one", nMinus1), ("order-minus-two", nMinus2),
            ("two-pow-255", p255), ("two-pow-224", p224), ("low-byte-only", lowByte), ("five-leading-zero-bytes", leadingZeros),
        ]
        for (label, bytes) in keys {
            for (t, s) in [(1, 1), (2, 3), (3, 5)] {
                var copy = bytes
                try add(into: &file, name: "ref-edge-\(label)-t\(t)-n\(s)", key: SecretBytes(consuming: &copy),
                        threshold: t, shares: s, subsets: ["first", "random"])
            }
        }
        return file
    }

    func rejectionSampling() throws(ShamirError) -> VectorFile {
        var file = VectorFile(note: note("root keys whose coefficient chain draws a block >= n (found by tools/rejection-search.c)"))
        for (label, hex) in Self.rejectionKeys {
            for (t, s) in [(2, 3), (3, 5), (5, 9)] {
                guard var bytes = Hex.decode(hex) else { preconditionFailure("bad recorded rejection key") }
                try add(into: &file, name: "ref-rejection-\(label)-t\(t)-n\(s)", key: SecretBytes(consuming: &bytes),
                        threshold: t, shares: s, subsets: ["first", "last", "random"])
            }
        }
        return file
    }

    func rejects() -> VectorFile {
        var file = VectorFile(note: note("every failure class a vector can reach (self-check-failed needs a broken implementation)"))
        let key = Hex.encode(derivedKey("reject").withUnsafeBytes { [UInt8]($0) })
        let n = ShamirConstants.groupOrderHex
        var nPlus1 = ShamirConstants.groupOrderBigEndian; nPlus1[31] += 1
        let ff = String(repeating: "ff", count: 32)
        let zero = String(repeating: "00", count: 32)
        func split(_ name: String, _ rk: String, _ t: Int, _ s: Int, _ error: String, _ why: String) {
            file.reject.append(RejectCase(name: "ref-reject-\(name)", op: .split, rootKey: rk, threshold: t, shares: s,
                                          shards: nil, why: why, error: error))
        }
        split("threshold-zero", key, 0, 3, "threshold-below-one", "threshold must be at least 1")
        split("threshold-negative", key, -1, 3, "threshold-below-one", "threshold must be at least 1")
        split("shares-below-threshold", key, 4, 3, "shares-below-threshold", "shares must be at least threshold")
        split("shares-zero", key, 1, 0, "shares-below-threshold", "shares must be at least threshold")
        split("too-many-shares", key, 2, ShamirConstants.maximumShares + 1, "too-many-shares", "more shares than the limit")
        split("root-key-31-bytes", String(key.dropFirst(2)), 2, 3, "root-key-wrong-length", "a root key is 32 bytes")
        split("root-key-33-bytes", key + "00", 2, 3, "root-key-wrong-length", "a root key is 32 bytes")
        split("root-key-empty", "", 2, 3, "root-key-wrong-length", "a root key is 32 bytes")
        split("root-key-zero", zero, 2, 3, "root-key-zero", "SPIKE refuses an all-zero root key")
        split("root-key-order", n, 2, 3, "root-key-not-canonical", "root key must be below n")
        split("root-key-order-plus-one", Hex.encode(nPlus1), 2, 3, "root-key-not-canonical", "root key must be below n")
        split("root-key-all-ff", ff, 2, 3, "root-key-not-canonical", "root key must be below n")

        // Recovery inputs around real shards of `key`.
        var good: [ShardVector] = []
        if let bytes = Hex.decode(key), let shards = try? reference.split(rootKey: SecretBytes(copying: bytes), threshold: 3, shares: 5).shards {
            good = shards.map { s in ShardVector(id: s.id, value: Hex.encode(s.value.withUnsafeBytes { [UInt8]($0) })) }
        }
        func recover(_ name: String, _ t: Int, _ shards: [ShardVector], _ error: String, _ why: String) {
            file.reject.append(RejectCase(name: "ref-reject-\(name)", op: .recover, rootKey: nil, threshold: t, shares: nil,
                                          shards: shards, why: why, error: error))
        }
        func replacing(_ index: Int, id: UInt64? = nil, value: String? = nil) -> [ShardVector] {
            var s = Array(good.prefix(3))
            s[index] = ShardVector(id: id ?? s[index].id, value: value ?? s[index].value)
            return s
        }
        recover("recover-threshold-zero", 0, Array(good.prefix(3)), "threshold-below-one", "threshold must be at least 1")
        recover("too-few", 3, Array(good.prefix(2)), "too-few-shards", "fewer shards than threshold")
        recover("none", 1, [], "too-few-shards", "fewer shards than threshold")
        recover("zero-id", 3, replacing(0, id: 0), "zero-share-id", "share id 0 is the secret's own point")
        recover("zero-id-last", 3, replacing(2, id: 0), "zero-share-id", "share id 0 is the secret's own point")
        recover("duplicate-id", 3, replacing(2, id: good[0].id), "duplicate-share-id", "two shards with one id")
        recover("duplicate-id-same-value", 3, [good[0], good[1], good[0]], "duplicate-share-id", "two shards with one id")
        recover("duplicate-id-past-threshold", 3, Array(good.prefix(4)) + [good[1]], "duplicate-share-id",
                "every shard given is checked, not only the first threshold")
        recover("value-31-bytes", 3, replacing(1, value: String(good[1].value.dropFirst(2))), "shard-value-wrong-length",
                "a shard value is 32 bytes")
        recover("value-33-bytes", 3, replacing(1, value: good[1].value + "00"), "shard-value-wrong-length", "a shard value is 32 bytes")
        recover("value-empty", 3, replacing(1, value: ""), "shard-value-wrong-length", "a shard value is 32 bytes")
        recover("value-order", 3, replacing(2, value: n), "shard-value-not-canonical", "shard value must be below n")
        recover("value-all-ff", 3, replacing(2, value: ff), "shard-value-not-canonical", "shard value must be below n")
        recover("value-zero", 3, replacing(0, value: zero), "shard-value-zero", "SPIKE treats an all-zero shard as missing")
        recover("value-zero-past-threshold", 3, Array(good.prefix(3)) + [ShardVector(id: 4, value: zero)], "shard-value-zero",
                "every shard given is checked, not only the first threshold")
        return file
    }

    // MARK: building blocks

    func note(_ what: String) -> String {
        "spike-recovery reference vectors (GMP + OpenSSL SHA-256), regenerate with `spike-recovery vectors generate --out Vectors/reference`: \(what)"
    }

    /// A root key from a label: SHA-256 of the label, re-hashed in the unlikely case it is >= n.
    func derivedKey(_ label: String) -> SecretBytes {
        var block = ReferenceShamir.sha256(Array("spike-recovery/vectors/\(label)".utf8))
        while !block.lexicographicallyPrecedes(ShamirConstants.groupOrderBigEndian) || block.allSatisfy({ $0 == 0 }) {
            block = ReferenceShamir.sha256(block)
        }
        return SecretBytes(consuming: &block)
    }

    func vector(_ shard: Shard) -> ShardVector {
        ShardVector(id: shard.id, value: Hex.encode(shard.value.withUnsafeBytes { [UInt8]($0) }))
    }

    func add(into file: inout VectorFile, name: String, key: SecretBytes, threshold t: Int, shares n: Int, subsets: [String]) throws(ShamirError) {
        let result = try reference.split(rootKey: key, threshold: t, shares: n)
        let keyHex = Hex.encode(key.withUnsafeBytes { [UInt8]($0) })
        let all = result.shards.map(vector)
        file.split.append(SplitCase(name: name, rootKey: keyHex, threshold: t, shares: n,
                                    coefficients: result.coefficients.map { Hex.encode($0.withUnsafeBytes { [UInt8]($0) }) },
                                    shards: all))
        var rng = SplitMix64(label: name)
        for subset in subsets {
            let chosen: [ShardVector]
            switch subset {
            case "first": chosen = Array(all.prefix(t))
            case "last": chosen = Array(all.suffix(t))
            case "reversed": chosen = Array(all.prefix(t).reversed())
            default: chosen = Array(rng.shuffled(all).prefix(t))
            }
            file.recover.append(RecoverCase(name: "\(name)/\(subset)", threshold: t, shards: chosen, rootKey: keyHex))
        }
    }

    /// A recovery case from shards at arbitrary ids (threshold = ids.count).
    func addPoints(into file: inout VectorFile, name: String, key: SecretBytes, ids: [UInt64]) throws(ShamirError) {
        let shards = try reference.shards(rootKey: key, threshold: ids.count, ids: ids)
        var rng = SplitMix64(label: name)
        file.recover.append(RecoverCase(name: name, threshold: ids.count, shards: rng.shuffled(shards.map(vector)),
                                        rootKey: Hex.encode(key.withUnsafeBytes { [UInt8]($0) })))
    }
}
