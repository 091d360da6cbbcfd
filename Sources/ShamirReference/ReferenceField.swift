import CGMP
import ShamirCore

/// The scalar field of P-256 on GMP, for differential tests and the
/// benchmark: each operation takes and returns 32-byte big-endian values.
/// Plain and variable-time, like the rest of the reference.
public enum ReferenceField {
    static var n: BigInt { ReferenceShamir.order }

    public static func add(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] { op(a, b, BigInt.addMod) }
    public static func sub(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] { op(a, b, BigInt.subMod) }
    public static func mul(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] { op(a, b, BigInt.mulMod) }
    public static func neg(_ a: [UInt8]) -> [UInt8] { sub([UInt8](repeating: 0, count: 32), a) }

    /// a⁻¹ mod n; nil for zero.
    public static func inverse(_ a: [UInt8]) -> [UInt8]? {
        BigInt.invMod(BigInt(bigEndian: a), n)?.bigEndianBytes(width: 32)
    }

    /// Lagrange weights at 0 for the given ids, as the reference computes them.
    public static func lagrangeWeights(ids: [UInt64]) -> [[UInt8]] {
        let xs = ids.map { BigInt($0) }
        return xs.indices.map { j in
            var num = BigInt(1), den = BigInt(1)
            for m in xs.indices where m != j {
                num = BigInt.mulMod(num, xs[m], n)
                den = BigInt.mulMod(den, BigInt.subMod(xs[m], xs[j], n), n)
            }
            return BigInt.mulMod(num, BigInt.invMod(den, n)!, n).bigEndianBytes(width: 32)
        }
    }

    static func op(_ a: [UInt8], _ b: [UInt8], _ f: (BigInt, BigInt, BigInt) -> BigInt) -> [UInt8] {
        f(BigInt(bigEndian: a), BigInt(bigEndian: b), n).bigEndianBytes(width: 32)
    }

    // MARK: benchmark kernels (operands stay in GMP form, as a GMP user would keep them)

    /// An opaque GMP value for timing loops.
    public final class Value: @unchecked Sendable {
        let big: BigInt
        public init(bigEndian bytes: [UInt8]) { big = BigInt(bigEndian: bytes) }
    }

    /// `count` chained products r = r·b mod n; returns r's low byte (keeps the loop alive).
    /// In place, with no allocation in the loop: mpz_mul then mpz_mod.
    public static func chainedMulMod(_ a: Value, _ b: Value, count: Int) -> UInt8 {
        let r = BigInt(), product = BigInt(), modulus = n
        cgmp_set(r.raw, a.big.raw)
        for _ in 0..<count {
            cgmp_mul(product.raw, r.raw, b.big.raw)
            cgmp_mod(r.raw, product.raw, modulus.raw)
        }
        return r.bigEndianBytes(width: 32)[31]
    }

    /// `count` rounds of four independent chains r_k = r_k·b mod n (4·count products).
    public static func interleavedMulMod(_ a: Value, _ b: Value, count: Int) -> UInt8 {
        let r = (0..<4).map { _ in BigInt() }, product = BigInt(), modulus = n
        for x in r { cgmp_set(x.raw, a.big.raw) }
        for _ in 0..<count {
            for x in r {
                cgmp_mul(product.raw, x.raw, b.big.raw)
                cgmp_mod(x.raw, product.raw, modulus.raw)
            }
        }
        return r[0].bigEndianBytes(width: 32)[31] ^ r[3].bigEndianBytes(width: 32)[31]
    }

    /// `count` inversions (mpz_invert), taking `values` in turn: inverting one
    /// value over and over would let the branch predictor learn its path.
    public static func repeatedInverse(_ values: [Value], count: Int) -> UInt8 {
        let r = BigInt(), modulus = n
        var acc: UInt8 = 0, next = 0
        for _ in 0..<count {
            _ = cgmp_invert(r.raw, values[next].big.raw, modulus.raw)
            acc ^= UInt8(truncatingIfNeeded: cgmp_low_limb(r.raw))
            next += 1
            if next == values.count { next = 0 }
        }
        return acc
    }
}
