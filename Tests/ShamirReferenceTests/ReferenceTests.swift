import Foundation
import SecureMemory
import ShamirCore
import Testing
import TestSupport
@testable import ShamirReference

/// Known answers from running Go SPIKE (Spec/shamir.md).
enum KnownAnswers {
    static let sequentialKey: [UInt8] = Array(1...32)
    static let sequentialShards = [
        "af236f32fa2a813f8bcb40fbaf87b2f4ded823a83c257443fea67d20d4c431e9",
        "5d44db62ef4efb760e8c76eb520156d9efb7398ebc1d32eaf079146290071f61",
        "0b664792e47375ac914dacdaf47afabf00964f753c14f191e24baba44b4a0cd9",
    ]
    static let spikeShards = [
        "952f7165986231d2f878f55181b191558930c198f4a966851c5f0def1b935b14",
        "b0d98ff79e7a32ebd3021cc9420183e817b6c4f6ab1e75036e29c3dafbd35aad",
        "cc83ae89a4923404ad8b44410251767aa63cc85461938381bff479c6dc135a46",
    ]
}

func secret(_ bytes: [UInt8]) -> SecretBytes { SecretBytes(copying: bytes) }
func hex(_ s: SecretBytes) -> String { s.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() } }

@Suite struct ReferenceShamirTests {
    let reference = ReferenceShamir()

    @Test func goKnownAnswers() throws {
        let a = try reference.split(rootKey: secret(KnownAnswers.sequentialKey), threshold: 2, shares: 3)
        #expect(a.shards.map { hex($0.value) } == KnownAnswers.sequentialShards)
        #expect(a.shards.map(\.id) == [1, 2, 3])
        let spikeKey = ReferenceShamir.sha256(Array("spike".utf8))
        let b = try reference.split(rootKey: secret(spikeKey), threshold: 2, shares: 3)
        #expect(b.shards.map { hex($0.value) } == KnownAnswers.spikeShards)
    }

    @Test func sha256KnownAnswer() {
        // FIPS 180-2 "abc".
        #expect(ReferenceShamir.sha256(Array("abc".utf8)).map { String(format: "%02x", $0) }.joined()
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func coefficientsComeFromTheHashChain() throws {
        let key = KnownAnswers.sequentialKey
        let split = try reference.split(rootKey: secret(key), threshold: 4, shares: 4)
        var block = key
        for c in split.coefficients {
            block = ReferenceShamir.sha256(block)
            #expect(hex(c) == block.map { String(format: "%02x", $0) }.joined())
        }
    }

    @Test func everyPairRecoversTheKey() throws {
        let split = try reference.split(rootKey: secret(KnownAnswers.sequentialKey), threshold: 2, shares: 5)
        for i in 0..<5 {
            for j in 0..<5 where i != j {
                let key = try reference.recover(threshold: 2, shards: [split.shards[i], split.shards[j]])
                #expect(key.withUnsafeBytes { Array($0) } == KnownAnswers.sequentialKey)
            }
        }
    }

    @Test func namedErrors() throws {
        let key = secret(KnownAnswers.sequentialKey)
        #expect(throws: ShamirError.thresholdBelowOne(0)) { try reference.split(rootKey: key, threshold: 0, shares: 3) }
        #expect(throws: ShamirError.sharesBelowThreshold(threshold: 3, shares: 2)) { try reference.split(rootKey: key, threshold: 3, shares: 2) }
        #expect(throws: ShamirError.tooManyShares(65_537)) { try reference.split(rootKey: key, threshold: 2, shares: 65_537) }
        #expect(throws: ShamirError.rootKeyWrongLength(31)) { try reference.split(rootKey: secret(Array(1...31)), threshold: 2, shares: 3) }
        #expect(throws: ShamirError.rootKeyZero) { try reference.split(rootKey: secret([UInt8](repeating: 0, count: 32)), threshold: 2, shares: 3) }
        #expect(throws: ShamirError.rootKeyNotCanonical) {
            try reference.split(rootKey: secret(ShamirConstants.groupOrderBigEndian), threshold: 2, shares: 3)
        }
        let shards = try reference.split(rootKey: key, threshold: 2, shares: 3).shards
        #expect(throws: ShamirError.tooFewShards(needed: 2, got: 1)) { try reference.recover(threshold: 2, shards: [shards[0]]) }
        #expect(throws: ShamirError.zeroShareID(position: 1)) {
            try reference.recover(threshold: 2, shards: [shards[0], Shard(id: 0, value: shards[1].value)])
        }
        #expect(throws: ShamirError.duplicateShareID(1)) { try reference.recover(threshold: 2, shards: [shards[0], shards[0]]) }
        #expect(throws: ShamirError.shardValueWrongLength(id: 9, count: 33)) {
            try reference.recover(threshold: 2, shards: [shards[0], Shard(id: 9, value: secret(Array(0...32)))])
        }
        #expect(throws: ShamirError.shardValueNotCanonical(id: 9)) {
            try reference.recover(threshold: 2, shards: [shards[0], Shard(id: 9, value: secret([UInt8](repeating: 0xff, count: 32)))])
        }
        #expect(throws: ShamirError.shardValueZero(id: 9)) {
            try reference.recover(threshold: 2, shards: [shards[0], Shard(id: 9, value: secret([UInt8](repeating: 0, count: 32)))])
        }
    }

    @Test func errorMessagesCarryNoSecret() throws {
        let value = [UInt8](repeating: 0xff, count: 32)
        do {
            _ = try reference.recover(threshold: 1, shards: [Shard(id: 4, value: secret(value))])
            Issue.record("expected a failure")
        } catch {
            #expect("\(error)" == "shard 4: value is not below the P-256 group order")
            #expect(!"\(error)".lowercased().contains("ffff"))
        }
    }

    @Test func fieldHelpersAgreeWithDefinitions() {
        let one = [UInt8](repeating: 0, count: 31) + [1]
        var nMinus1 = ShamirConstants.groupOrderBigEndian
        nMinus1[31] -= 1
        #expect(ReferenceField.add(nMinus1, one) == [UInt8](repeating: 0, count: 32))
        #expect(ReferenceField.neg(one) == nMinus1)
        #expect(ReferenceField.mul(nMinus1, nMinus1) == one)
        #expect(ReferenceField.inverse(nMinus1) == nMinus1)
        #expect(ReferenceField.inverse([UInt8](repeating: 0, count: 32)) == nil)
    }
}
