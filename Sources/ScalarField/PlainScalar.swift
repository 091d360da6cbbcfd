import CSecureMemory

/// A scalar mod n held as its own value, not in Montgomery form: the form of
/// values that come from bytes and go back to bytes (shard values, polynomial
/// coefficients, the root key).
///
/// Invariant: the limbs of `limbs` hold x itself, fully reduced (x < n); the
/// wrapped `P256Scalar` is storage here, not a Montgomery-form value.
///
/// Why: the Montgomery product of a plain x with a Montgomery-form w·R is
/// x·(wR)/R = x·w, again plain. So a Lagrange weight or a share-id point kept
/// in Montgomery form multiplies plain values directly, and decoding or
/// encoding needs no conversion product (two of the five products of a
/// 2-of-3 recovery were conversions). Addition does not care about the form.
/// Constant-time in the value, like `P256Scalar`.
public struct PlainScalar: Sendable {
    @usableFromInline var limbs: P256Scalar

    @inlinable @inline(__always)
    init(limbs: P256Scalar) { self.limbs = limbs }

    public static let zero = PlainScalar(limbs: .zero)

    /// Decodes 32 big-endian bytes without branching on them: the value and
    /// a mask that is all ones when the bytes were < n; a non-canonical input
    /// gives zero. Precondition: `bytes.count == 32` (public; check it first).
    public static func decode(bigEndian bytes: UnsafeRawBufferPointer) -> (value: PlainScalar, validMask: UInt64) {
        let (x, valid) = P256Scalar.decodeLimbs(bigEndian: bytes)
        return (PlainScalar(limbs: x), valid)
    }

    /// Writes the 32 big-endian bytes of the value. Precondition: `out.count == 32`.
    public func encode(bigEndian out: UnsafeMutableRawBufferPointer) {
        limbs.storeLimbs(bigEndian: out)
    }

    /// x·w for a Montgomery-form w (a weight, a point): one Montgomery product.
    @inlinable @inline(__always)
    public func times(_ w: P256Scalar) -> PlainScalar {
        PlainScalar(limbs: P256Scalar.montgomeryProduct(limbs, w))
    }

    /// a + b mod n.
    @inlinable @inline(__always)
    public static func + (a: PlainScalar, b: PlainScalar) -> PlainScalar { PlainScalar(limbs: a.limbs + b.limbs) }

    /// All ones when the value is 0, else zero.
    @inlinable @inline(__always)
    public var isZeroMask: UInt64 { limbs.isZeroMask }

    /// All ones when a == b, else zero.
    @inlinable @inline(__always)
    public static func equalMask(_ a: PlainScalar, _ b: PlainScalar) -> UInt64 { P256Scalar.equalMask(a.limbs, b.limbs) }

    /// Wipes the limbs (for locals that held a secret).
    public mutating func wipe() {
        withUnsafeMutableBytes(of: &self) { csm_wipe($0.baseAddress, $0.count) }
    }
}

extension Array where Element == PlainScalar {
    /// Wipes every element in place (coefficients, shard values).
    public mutating func wipeAll() {
        withUnsafeMutableBytes { if $0.count > 0 { csm_wipe($0.baseAddress, $0.count) } }
    }
}
