import Foundation
import SecureMemory
import ShamirCore
import Testing

/// Lowercase hex of public bytes (constants, ids); never used on a secret.
private func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0x0f)]] })
}

/// Big-endian a − b over equal-length byte arrays (a ≥ b), for deriving n independently.
private func subtract(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
    var out = a
    var borrow = 0
    for i in stride(from: a.count - 1, through: 0, by: -1) {
        var d = Int(a[i]) - Int(b[i]) - borrow
        borrow = d < 0 ? 1 : 0
        if d < 0 { d += 256 }
        out[i] = UInt8(d)
    }
    return out
}

/// A public 32-byte value with one byte set (ids and test values only).
private func value(_ byte: UInt8, count: Int = 32) -> SecretBytes {
    var bytes = [UInt8](repeating: 0, count: count)
    if count > 0 { bytes[count - 1] = byte }
    return SecretBytes(copying: bytes)
}

// MARK: - Constants

@Suite struct ShamirConstantsTests {
    /// The spec's n, typed from ../shared/spec/shamir.md ("The field").
    static let specOrderHex = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"

    @Test func scalarIs32Bytes() {
        #expect(ShamirConstants.scalarByteCount == 32)
        #expect(ShamirConstants.groupOrderBigEndian.count == ShamirConstants.scalarByteCount)
    }

    @Test func groupOrderMatchesTheSpec() {
        #expect(ShamirConstants.groupOrderHex == Self.specOrderHex)
        #expect(hex(ShamirConstants.groupOrderBigEndian) == Self.specOrderHex)
        // The two spellings of n must agree with each other, character for character.
        #expect(hex(ShamirConstants.groupOrderBigEndian) == ShamirConstants.groupOrderHex)
        #expect(ShamirConstants.groupOrderHex == ShamirConstants.groupOrderHex.lowercased())
    }

    /// n is the P-256 *scalar* order, not the coordinate prime p: derive it from
    /// its published form n = 2^256 − 2^224 + 2^192 − c (c from SEC 2) so a typo
    /// in either constant, or swapping in p, fails here.
    @Test func groupOrderIsTheP256ScalarOrder() {
        // 2^256 − 2^224 + 2^192 as a 256-bit value: ffffffff 00000001 0…0
        var top = [UInt8](repeating: 0, count: 32)
        for i in 0..<4 { top[i] = 0xff }
        top[7] = 0x01
        let c: [UInt8] = [UInt8](repeating: 0, count: 16) + [
            0x43, 0x19, 0x05, 0x52, 0x58, 0xe8, 0x61, 0x7b, 0x0c, 0x46, 0x35, 0x3d, 0x03, 0x9c, 0xda, 0xaf,
        ]
        #expect(subtract(top, c) == ShamirConstants.groupOrderBigEndian)
        // The coordinate prime p = ffffffff00000001 0…0 00000000ffffffffffffffffffffffff must differ.
        let pHigh: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1]
        let p = hex(pHigh + [UInt8](repeating: 0, count: 12) + [UInt8](repeating: 0xff, count: 12))
        #expect(ShamirConstants.groupOrderHex != p)
        // Odd and with the top bit set: a full 256-bit prime.
        #expect(ShamirConstants.groupOrderBigEndian[31] & 1 == 1)
        #expect(ShamirConstants.groupOrderBigEndian[0] & 0x80 == 0x80)
    }

    @Test func spikeDefaultsAndShareLimit() {
        // SPIKE_NEXUS_SHAMIR_THRESHOLD / _SHARES defaults (shamir.md, "Threshold words").
        #expect(ShamirConstants.defaultThreshold == 2)
        #expect(ShamirConstants.defaultShares == 3)
        #expect(ShamirConstants.defaultThreshold <= ShamirConstants.defaultShares)
        // Our bound (Spec/shamir.md: "shares > 65 536"), and it must admit SPIKE's operator limit of 1000.
        #expect(ShamirConstants.maximumShares == 65_536)
        #expect(ShamirConstants.maximumShares >= 1000)
        // The defaults themselves pass the split checks.
        #expect(throws: Never.self) {
            try ShamirValidation.checkSplit(threshold: ShamirConstants.defaultThreshold, shares: ShamirConstants.defaultShares)
        }
    }
}

// MARK: - Errors

@Suite struct ShamirErrorTests {
    /// One instance of every case, in declaration order.
    static let everyCase: [ShamirError] = [
        .thresholdBelowOne(0), .sharesBelowThreshold(threshold: 3, shares: 2), .tooManyShares(70_000),
        .rootKeyWrongLength(31), .rootKeyZero, .rootKeyNotCanonical, .tooFewShards(needed: 2, got: 1),
        .zeroShareID(position: 4), .duplicateShareID(9), .shardValueWrongLength(id: 5, count: 33),
        .shardValueNotCanonical(id: 6), .shardValueZero(id: 7), .selfCheckFailed,
    ]

    @Test func failureClassNamesAreTheVectorNames() {
        let names = Self.everyCase.map(\.failureClass)
        #expect(names == [
            "threshold-below-one", "shares-below-threshold", "too-many-shares", "root-key-wrong-length",
            "root-key-zero", "root-key-not-canonical", "too-few-shards", "zero-share-id",
            "duplicate-share-id", "shard-value-wrong-length", "shard-value-not-canonical",
            "shard-value-zero", "self-check-failed",
        ])
        // One class per case, and the published list holds exactly these.
        #expect(Set(names).count == names.count)
        #expect(Set(ShamirError.allFailureClasses) == Set(names))
        #expect(ShamirError.allFailureClasses.count == names.count)
    }

    /// The classes in Spec/shamir.md §5, read from the table itself.
    static func specTableClasses() throws -> [String] {
        let spec = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Spec/shamir.md")
        let text = try String(contentsOf: spec, encoding: .utf8)
        let section = try #require(text.range(of: "## 5. Failure classes"))
        var classes: [String] = []
        for line in text[section.upperBound...].split(separator: "\n") {
            if line.hasPrefix("## ") { break }
            // Rows look like: | `class-name` | when |
            guard line.hasPrefix("| `") else { continue }
            let name = line.dropFirst(3).prefix { $0 != "`" }
            classes.append(String(name))
        }
        return classes
    }

    @Test func classesAreThoseOfTheSpecTable() throws {
        let table = try Self.specTableClasses()
        #expect(table.count == 13)
        #expect(Set(table) == Set(ShamirError.allFailureClasses))
    }

    /// `allFailureClasses` is in the order Spec/shamir.md lists the classes
    /// (root-key-not-canonical before root-key-zero: the order the checks run).
    @Test func classesAreInTheSpecTableOrder() throws {
        let table = try Self.specTableClasses()
        #expect(ShamirError.allFailureClasses == table)
    }

    @Test func descriptionsNameOnlyPublicNumbers() {
        #expect(ShamirError.thresholdBelowOne(-1).description == "threshold must be at least 1 (got -1)")
        #expect(ShamirError.sharesBelowThreshold(threshold: 3, shares: 2).description == "shares (2) must be at least the threshold (3)")
        #expect(ShamirError.tooManyShares(70_000).description == "shares (70000) exceeds the limit of 65536")
        #expect(ShamirError.rootKeyWrongLength(31).description == "root key must be 32 bytes (got 31)")
        #expect(ShamirError.tooFewShards(needed: 2, got: 1).description == "need 2 shards, got 1")
        #expect(ShamirError.zeroShareID(position: 4).description == "shard at position 4 has share id 0")
        #expect(ShamirError.duplicateShareID(9).description == "two shards have share id 9")
        #expect(ShamirError.shardValueWrongLength(id: 5, count: 33).description == "shard 5: value must be 32 bytes (got 33)")
        #expect(ShamirError.shardValueNotCanonical(id: 6).description.hasPrefix("shard 6: "))
        #expect(ShamirError.shardValueZero(id: 7).description.hasPrefix("shard 7: "))
        // Every case has its own, non-empty message.
        let messages = Self.everyCase.map(\.description)
        #expect(messages.allSatisfy { !$0.isEmpty })
        #expect(Set(messages).count == messages.count)
    }

    /// A refusal raised over shards with a recognisable value must not carry
    /// that value in any rendering of the error.
    @Test func errorsFromShardsNeverShowTheirValues() {
        let marker: [UInt8] = [UInt8](repeating: 0xa7, count: 32)  // "a7a7…", decimal 167
        let shards = [Shard(id: 11, value: SecretBytes(copying: marker)), Shard(id: 11, value: SecretBytes(copying: marker))]
        #expect(throws: ShamirError.duplicateShareID(11)) { try ShamirValidation.checkRecover(threshold: 2, shards: shards) }
        do throws(ShamirError) {
            try ShamirValidation.checkRecover(threshold: 2, shards: shards)
            Issue.record("duplicate ids were accepted")
        } catch {
            for rendering in ["\(error)", String(reflecting: error), error.description, error.failureClass] {
                #expect(!rendering.contains("a7"))
                #expect(!rendering.contains("167"))
            }
        }
    }
}

// MARK: - Shard and ShamirSplit

@Suite struct ShardTests {
    @Test func holdsTheSameBufferNotACopy() {
        let v = value(42)
        let shard = Shard(id: 3, value: v)
        #expect(shard.id == 3)
        // SecretBytes is a reference: the shard must hold the caller's buffer, not a duplicate of the secret.
        #expect(shard.value === v)
        v.withUnsafeMutableBytes { $0[0] = 0x55 }
        #expect(shard.value.withUnsafeBytes { $0[0] } == 0x55)
    }

    @Test func creationDoesNotValidate() {
        // Invalid shards are constructible; `recover` reports them by name later.
        let zeroID = Shard(id: 0, value: SecretBytes(zeroedCount: 32))
        #expect(zeroID.id == 0 && zeroID.value.isAllZero)
        let short = Shard(id: UInt64.max, value: SecretBytes(zeroedCount: 5))
        #expect(short.id == UInt64.max && short.value.count == 5)
    }

    @Test func splitKeepsShardsAndCoefficientsInOrder() {
        let coefficient = value(9)
        let shards = (1...3).map { Shard(id: UInt64($0), value: value(UInt8($0))) }
        let split = ShamirSplit(coefficients: [coefficient], shards: shards)
        #expect(split.coefficients.count == 1 && split.coefficients[0] === coefficient)
        #expect(split.shards.map(\.id) == [1, 2, 3])
        #expect(split.shards.map { $0.value.withUnsafeBytes { $0[31] } } == [1, 2, 3])
    }
}

// MARK: - Validation

@Suite struct ShamirValidationTests {
    @Test func splitParameterOrder() {
        // Threshold first, then shares ≥ threshold, then the limit (Spec/shamir.md §5 "Order").
        #expect(throws: ShamirError.thresholdBelowOne(0)) { try ShamirValidation.checkSplit(threshold: 0, shares: 0) }
        #expect(throws: ShamirError.thresholdBelowOne(-5)) { try ShamirValidation.checkSplit(threshold: -5, shares: 100_000) }
        #expect(throws: ShamirError.sharesBelowThreshold(threshold: 3, shares: 2)) { try ShamirValidation.checkSplit(threshold: 3, shares: 2) }
        // Both "below threshold" and "too many": the earlier check wins.
        #expect(throws: ShamirError.sharesBelowThreshold(threshold: 70_001, shares: 70_000)) {
            try ShamirValidation.checkSplit(threshold: 70_001, shares: 70_000)
        }
        #expect(throws: ShamirError.tooManyShares(65_537)) { try ShamirValidation.checkSplit(threshold: 2, shares: 65_537) }
    }

    @Test func splitBoundariesAccepted() throws {
        try ShamirValidation.checkSplit(threshold: 1, shares: 1)
        try ShamirValidation.checkSplit(threshold: 2, shares: 3)
        try ShamirValidation.checkSplit(threshold: 1, shares: ShamirConstants.maximumShares)
        try ShamirValidation.checkSplit(threshold: ShamirConstants.maximumShares, shares: ShamirConstants.maximumShares)
    }

    @Test func shardIDChecks() throws {
        #expect(throws: ShamirError.thresholdBelowOne(0)) { try ShamirValidation.checkShardIDs(threshold: 0, ids: [1, 2]) }
        #expect(throws: ShamirError.zeroShareID(position: 1)) { try ShamirValidation.checkShardIDs(threshold: 2, ids: [4, 0, 4]) }
        #expect(throws: ShamirError.duplicateShareID(4)) { try ShamirValidation.checkShardIDs(threshold: 2, ids: [4, 4, 0]) }
        let tooMany = Array(1...UInt64(ShamirConstants.maximumShares + 1))
        #expect(throws: ShamirError.tooManyShares(65_537)) { try ShamirValidation.checkShardIDs(threshold: 2, ids: tooMany) }
        // Exactly the limit, all distinct: accepted. Large ids are fine (any non-zero uint64).
        try ShamirValidation.checkShardIDs(threshold: 2, ids: Array(tooMany.dropLast()))
        try ShamirValidation.checkShardIDs(threshold: 2, ids: [UInt64.max, 1, 1 << 63])
    }

    /// ≤ 32 ids are compared pairwise, more go through a set: both paths must
    /// report the same class for the same leading ids.
    @Test func smallAndLargeIDListsAgree() {
        let padding = (1000...1040).map { UInt64($0) }  // distinct, pushes the count past 32
        let cases: [([UInt64], ShamirError)] = [
            ([5, 9, 5, 0], .duplicateShareID(5)),
            ([5, 0, 5], .zeroShareID(position: 1)),
            ([0], .zeroShareID(position: 0)),
            ([7, 8, 9, 8], .duplicateShareID(8)),
        ]
        for (ids, expected) in cases {
            #expect(throws: expected) { try ShamirValidation.checkShardIDs(threshold: 1, ids: ids) }
            #expect(throws: expected) { try ShamirValidation.checkShardIDs(threshold: 1, ids: ids + padding) }
        }
        // A duplicate found only at the end of a long list.
        #expect(throws: ShamirError.duplicateShareID(1017)) { try ShamirValidation.checkShardIDs(threshold: 1, ids: padding + [1017]) }
        #expect(throws: ShamirError.zeroShareID(position: 41)) { try ShamirValidation.checkShardIDs(threshold: 1, ids: padding + [0]) }
    }

    @Test func recoverChecksThresholdCountThenIDs() {
        let two = [Shard(id: 1, value: value(1)), Shard(id: 2, value: value(2))]
        #expect(throws: ShamirError.thresholdBelowOne(0)) { try ShamirValidation.checkRecover(threshold: 0, shards: []) }
        #expect(throws: ShamirError.tooFewShards(needed: 3, got: 2)) { try ShamirValidation.checkRecover(threshold: 3, shards: two) }
        // Too few wins over a bad id: the count is checked first.
        #expect(throws: ShamirError.tooFewShards(needed: 2, got: 1)) {
            try ShamirValidation.checkRecover(threshold: 2, shards: [Shard(id: 0, value: value(1))])
        }
        #expect(throws: ShamirError.zeroShareID(position: 1)) {
            try ShamirValidation.checkRecover(threshold: 2, shards: [two[0], Shard(id: 0, value: value(3))])
        }
        #expect(throws: ShamirError.duplicateShareID(2)) {
            try ShamirValidation.checkRecover(threshold: 2, shards: two + [Shard(id: 2, value: value(4))])
        }
        #expect(throws: Never.self) { try ShamirValidation.checkRecover(threshold: 2, shards: two) }
    }

    /// Value checks (length, range, zero) belong to each implementation's
    /// decoder, after these: a wrong-length or zero value passes here.
    @Test func recoverLeavesValueChecksToTheDecoder() {
        let odd = [Shard(id: 1, value: value(1, count: 5)), Shard(id: 2, value: SecretBytes(zeroedCount: 32))]
        #expect(throws: Never.self) { try ShamirValidation.checkRecover(threshold: 2, shards: odd) }
    }
}
