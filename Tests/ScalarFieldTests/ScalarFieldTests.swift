import ShamirCore
import ShamirReference
import Testing
import TestSupport
@testable import ScalarField

/// Deterministic test randomness, so a failure reproduces.
typealias TestRNG = SplitMix64

let order = ShamirConstants.groupOrderBigEndian

func below(_ k: UInt8) -> [UInt8] {
    var v = order
    v[31] -= k
    return v
}

func small(_ v: UInt64) -> [UInt8] { [UInt8](repeating: 0, count: 24) + withUnsafeBytes(of: v.bigEndian) { Array($0) } }

/// Operands that stress carries and the reduction: 0, 1, 2, n−1, n−2, 2^255,
/// 2^224, 2^64 ± 1, values just below n and the largest limb patterns below it.
let edgeValues: [[UInt8]] = {
    var p255 = [UInt8](repeating: 0, count: 32); p255[0] = 0x80
    var p224 = [UInt8](repeating: 0, count: 32); p224[3] = 1
    var p64 = [UInt8](repeating: 0, count: 32); p64[23] = 1
    var highOnes = [UInt8](repeating: 0xff, count: 32); highOnes[4...7] = [0, 0, 0, 0]; highOnes[16] = 0x00
    return [small(0), small(1), small(2), below(1), below(2), below(80), p255, p224, p64, small(UInt64.max),
            highOnes, [UInt8](repeating: 0x55, count: 32)]
}()

func randomScalar(_ rng: inout TestRNG) -> [UInt8] { rng.scalarBytes() }

func decode(_ b: [UInt8]) -> P256Scalar {
    let (v, ok) = b.withUnsafeBytes { P256Scalar.decode(bigEndian: $0) }
    precondition(ok == .max, "test operand not canonical")
    return v
}

func encode(_ s: P256Scalar) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 32)
    out.withUnsafeMutableBytes { s.encode(bigEndian: $0) }
    return out
}

@Suite struct ScalarFieldTests {
    @Test func constantsMatchTheirDefinitions() {
        // nInv·n ≡ −1 (mod 2^64).
        #expect(P256Scalar.nInv &* P256Scalar.n.0 == UInt64.max)
        // one is R mod n: decoding 1 gives it.
        #expect(P256Scalar.equalMask(decode(small(1)), .one) == .max)
        #expect(encode(.one) == small(1))
        // r2 decodes back as R² mod n's Montgomery form; checked through 2^128·2^128 = 2^256.
        var p128 = [UInt8](repeating: 0, count: 32); p128[15] = 1
        #expect(encode(decode(p128) * decode(p128)) == ReferenceField.mul(p128, p128))
    }

    @Test func differentialAgainstGMP() {
        var rng = TestRNG(seed: 0x5eed_0001)
        var operands = edgeValues
        for _ in 0..<300 { operands.append(randomScalar(&rng)) }
        var checked = 0
        for _ in 0..<6_000 {
            let a = operands[Int(rng.next() % UInt64(operands.count))]
            let b = operands[Int(rng.next() % UInt64(operands.count))]
            let x = decode(a), y = decode(b)
            #expect(encode(x + y) == ReferenceField.add(a, b))
            #expect(encode(x - y) == ReferenceField.sub(a, b))
            #expect(encode(x * y) == ReferenceField.mul(a, b))
            #expect(encode(x.squared()) == ReferenceField.mul(a, a))
            #expect(encode(-x) == ReferenceField.neg(a))
            checked += 5
        }
        // Every pair of edge values, exhaustively.
        for a in edgeValues {
            for b in edgeValues {
                #expect(encode(decode(a) * decode(b)) == ReferenceField.mul(a, b))
                #expect(encode(decode(a) + decode(b)) == ReferenceField.add(a, b))
                #expect(encode(decode(a) - decode(b)) == ReferenceField.sub(a, b))
                checked += 3
            }
        }
        #expect(checked > 30_000)
    }

    @Test func strictDecoding() {
        for bad in [order, { var v = order; v[31] += 1; return v }(),
                    [UInt8](repeating: 0xff, count: 32), { var v = order; v[0] = 0xff; v[4] = 1; return v }()] {
            let (v, ok) = bad.withUnsafeBytes { P256Scalar.decode(bigEndian: $0) }
            #expect(ok == 0)
            #expect(v.isZeroMask == .max)
        }
        for good in [small(0), small(1), below(1)] {
            let (v, ok) = good.withUnsafeBytes { P256Scalar.decode(bigEndian: $0) }
            #expect(ok == .max)
            #expect(encode(v) == good)
        }
    }

    @Test func masksAndSelection() {
        let a = decode(small(5)), b = decode(small(6))
        #expect(P256Scalar.zero.isZeroMask == .max)
        #expect(a.isZeroMask == 0)
        #expect(decode(below(1)).isZeroMask == 0)
        #expect(P256Scalar.equalMask(a, a) == .max)
        #expect(P256Scalar.equalMask(a, b) == 0)
        #expect(encode(P256Scalar.select(.max, a, b)) == small(5))
        #expect(encode(P256Scalar.select(0, a, b)) == small(6))
        var w = a
        w.wipe()
        #expect(w.isZeroMask == .max)
    }

    @Test func fieldLaws() {
        var rng = TestRNG(seed: 0x5eed_0002)
        for _ in 0..<2_000 {
            let a = decode(randomScalar(&rng)), b = decode(randomScalar(&rng)), c = decode(randomScalar(&rng))
            #expect(P256Scalar.equalMask((a * b) * c, a * (b * c)) == .max)
            #expect(P256Scalar.equalMask(a * b, b * a) == .max)
            #expect(P256Scalar.equalMask(a * (b + c), a * b + a * c) == .max)
            #expect(P256Scalar.equalMask((a + b) - b, a) == .max)
            #expect(P256Scalar.equalMask(a + (-a), .zero) == .max)
            #expect(P256Scalar.equalMask(a * .one, a) == .max)
        }
    }

    @Test func inversesMatchGMPAndFermat() {
        var rng = TestRNG(seed: 0x5eed_0003)
        var values = edgeValues.filter { $0 != small(0) } + [small(3), below(77), ReferenceField.neg(small(UInt64.max))]
        for _ in 0..<300 { values.append(randomScalar(&rng)) }
        for _ in 0..<100 { values.append(small(rng.next() | 1)) }
        for v in values {
            let x = decode(v)
            let inv = x.inverseOfPublic()
            #expect(encode(inv) == ReferenceField.inverse(v)!)
            #expect(P256Scalar.equalMask(inv, x.fermatInverse()) == .max)
            #expect(P256Scalar.equalMask(x * inv, .one) == .max)
        }
        #expect(P256Scalar.zero.inverseOfPublic().isZeroMask == .max)
    }

    /// The general inversion on raw integers (`inverseOfPublic` hands it
    /// Montgomery limbs, which hide structure): powers of two and single words
    /// (quotients far beyond one word: the long-division step), n − 2^k (the
    /// cofactor's sign ending negative as often as positive), and random values
    /// of every length from 1 to 255 bits (the rounds start from a different
    /// limb each time).
    @Test func generalInversionOnStructuredIntegers() {
        func bytes(_ l: (UInt64, UInt64, UInt64, UInt64)) -> [UInt8] {
            [l.3, l.2, l.1, l.0].flatMap { w in withUnsafeBytes(of: w.bigEndian) { Array($0) } }
        }
        func limbs(_ b: [UInt8]) -> (UInt64, UInt64, UInt64, UInt64) {
            b.withUnsafeBytes { raw in
                func word(_ i: Int) -> UInt64 { UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
                return (word(3), word(2), word(1), word(0))
            }
        }
        var inputs: [[UInt8]] = []
        for k in 0..<256 {
            var power = [UInt8](repeating: 0, count: 32)
            power[31 - k / 8] = 1 << UInt8(k % 8)
            if k < 255 { inputs.append(power) }  // 2^255 > n
            if k < 255 { inputs.append(ReferenceField.neg(power)) }
        }
        inputs += [small(1), small(2), small(UInt64.max), below(1), below(2), [UInt8](repeating: 0x55, count: 32)]
        var rng = TestRNG(seed: 0x5eed_0006)
        for bits in 1...255 {
            for _ in 0..<4 {
                var value = [UInt8](repeating: 0, count: 32)
                for i in 0..<32 { value[i] = UInt8(truncatingIfNeeded: rng.next()) }
                // Keep the low `bits` bits, with the top one of them set (below n: bits ≤ 255).
                for i in 0..<32 {
                    let low = (31 - i) * 8
                    if low >= bits { value[i] = 0 } else if low + 8 > bits { value[i] &= UInt8((1 << (bits - low)) - 1) }
                }
                value[31 - (bits - 1) / 8] |= 1 << UInt8((bits - 1) % 8)
                inputs.append(value)
            }
        }
        // Values whose inverses are short: the cofactors stay small while a and b
        // shrink, so the two length switches of a round disagree.
        inputs += inputs.suffix(255 * 4).compactMap { ReferenceField.inverse($0) }
        // n/φ and n/φ² (rounded down): Euclid's first 184 quotients (after a 2
        // for n/φ²) are all 1, the most steps a round's word can take.
        inputs += ["9e3779b8e113025d1289be03e89b83e97db92407d687d915d8e3686f247ce35f",
                   "61c886461eecfda3ed7641fc17647c163f2dd6a5d08fc56f1ad66253d7e641f1"].map { TestSupport.bytes(hex: $0) }
        for v in inputs {
            let inverse = LehmerGCD.inverse(limbs(v).0, limbs(v).1, limbs(v).2, limbs(v).3)
            #expect(bytes(inverse) == ReferenceField.inverse(v)!, "Lehmer differs from GMP on \(v)")
        }
    }

    @Test func batchInversionMatchesSingle() {
        var rng = TestRNG(seed: 0x5eed_0004)
        for count in [1, 2, 3, 17, 100] {
            let xs = (0..<count).map { _ in decode(randomScalar(&rng)) }
            let batch = P256Scalar.batchInverseOfPublic(xs)
            for (x, inv) in zip(xs, batch) { #expect(P256Scalar.equalMask(x * inv, .one) == .max) }
        }
        #expect(P256Scalar.batchInverseOfPublic([]).isEmpty)
    }

    @Test func lagrangeWeightsMatchTheReference() {
        var rng = TestRNG(seed: 0x5eed_0005)
        let idSets: [[UInt64]] = [[1], [1, 2], [1, 2, 3], [3, 1], [UInt64.max, 1], [UInt64.max, UInt64.max - 1, 1 << 63],
                                  Array(1...20), (0..<30).map { _ in rng.next() | 1 }]
        for ids in idSets where Set(ids).count == ids.count {
            let weights = P256Scalar.lagrangeWeightsAtZero(ids: ids)
            #expect(weights.map(encode) == ReferenceField.lagrangeWeights(ids: ids))
            // The weights of a constant polynomial sum to 1.
            #expect(P256Scalar.equalMask(weights.reduce(.zero, +), .one) == .max)
        }
    }

    @Test func shareIDScalars() {
        for id: UInt64 in [0, 1, 2, 255, 1 << 32, UInt64.max] {
            #expect(encode(P256Scalar(id)) == small(id))
        }
    }
}
