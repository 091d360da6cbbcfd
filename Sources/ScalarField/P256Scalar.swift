import CSecureMemory

/// An element of the scalar field of NIST P-256: the integers modulo the group
/// order n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551.
///
/// Invariant: the four little-endian 64-bit limbs hold x·R mod n with
/// R = 2^256 (Montgomery form), fully reduced: the limbs are < n.
///
/// Every operation here runs in time independent of the values of its
/// operands — no branch and no memory index depends on them — except
/// `inverseOfPublic`, which is variable-time and must only be given public
/// values (in this project: Lagrange denominators built from share IDs).
/// `tools/ct-check` holds this to account under valgrind.
public struct P256Scalar: Sendable {
    @usableFromInline var w0: UInt64
    @usableFromInline var w1: UInt64
    @usableFromInline var w2: UInt64
    @usableFromInline var w3: UInt64

    @inlinable @inline(__always)
    init(_ w0: UInt64, _ w1: UInt64, _ w2: UInt64, _ w3: UInt64) {
        self.w0 = w0
        self.w1 = w1
        self.w2 = w2
        self.w3 = w3
    }

    /// Size of an encoded scalar: 32 big-endian bytes.
    public static let byteCount = 32

    /// n, little-endian limbs.
    @usableFromInline static let n = (UInt64(0xf3b9_cac2_fc63_2551), UInt64(0xbce6_faad_a717_9e84), UInt64(0xffff_ffff_ffff_ffff), UInt64(0xffff_ffff_0000_0000))
    /// −n⁻¹ mod 2^64, the Montgomery reduction factor.
    @usableFromInline static let nInv: UInt64 = 0xccd1_c8aa_ee00_bc4f
    /// R² mod n: multiplying by it moves a plain value into Montgomery form.
    @usableFromInline static let r2 = P256Scalar(0x8324_4c95_be79_eea2, 0x4699_799c_49bd_6fa6, 0x2845_b239_2b6b_ec59, 0x66e1_2d94_f3d9_5620)

    public static let zero = P256Scalar(0, 0, 0, 0)
    /// 1 in Montgomery form (R mod n).
    public static let one = P256Scalar(0x0c46_353d_039c_daaf, 0x4319_0552_58e8_617b, 0, 0x0000_0000_ffff_ffff)

    // MARK: arithmetic

    /// a + b mod n.
    @inlinable @inline(__always)
    public static func + (a: P256Scalar, b: P256Scalar) -> P256Scalar {
        let (s0, c0) = addCarry(a.w0, b.w0, 0)
        let (s1, c1) = addCarry(a.w1, b.w1, c0)
        let (s2, c2) = addCarry(a.w2, b.w2, c1)
        let (s3, c3) = addCarry(a.w3, b.w3, c2)
        return reduceOnce(s0, s1, s2, s3, c3)
    }

    /// a − b mod n.
    @inlinable @inline(__always)
    public static func - (a: P256Scalar, b: P256Scalar) -> P256Scalar {
        let (d0, b0) = subBorrow(a.w0, b.w0, 0)
        let (d1, b1) = subBorrow(a.w1, b.w1, b0)
        let (d2, b2) = subBorrow(a.w2, b.w2, b1)
        let (d3, b3) = subBorrow(a.w3, b.w3, b2)
        // On borrow, add n back (masked, no branch).
        let m = mask(b3)
        let (r0, c0) = addCarry(d0, n.0 & m, 0)
        let (r1, c1) = addCarry(d1, n.1 & m, c0)
        let (r2, c2) = addCarry(d2, n.2 & m, c1)
        let (r3, _) = addCarry(d3, n.3 & m, c2)
        return P256Scalar(r0, r1, r2, r3)
    }

    /// −a mod n.
    @inlinable @inline(__always)
    public static prefix func - (a: P256Scalar) -> P256Scalar { zero - a }

    /// a·b mod n (Montgomery product: (aR)(bR)/R = abR).
    @inlinable @inline(__always)
    public static func * (a: P256Scalar, b: P256Scalar) -> P256Scalar { montgomeryProduct(a, b) }

    @inlinable public static func += (a: inout P256Scalar, b: P256Scalar) { a = a + b }
    @inlinable public static func -= (a: inout P256Scalar, b: P256Scalar) { a = a - b }
    @inlinable public static func *= (a: inout P256Scalar, b: P256Scalar) { a = montgomeryProduct(a, b) }

    /// a² mod n.
    @inlinable @inline(__always)
    public func squared() -> P256Scalar { P256Scalar.montgomeryProduct(self, self) }

    /// Given t = (t0..t3, t4) < 2n, returns t mod n by one masked subtraction.
    @inlinable @inline(__always)
    static func reduceOnce(_ t0: UInt64, _ t1: UInt64, _ t2: UInt64, _ t3: UInt64, _ t4: UInt64) -> P256Scalar {
        let (r0, b0) = subBorrow(t0, n.0, 0)
        let (r1, b1) = subBorrow(t1, n.1, b0)
        let (r2, b2) = subBorrow(t2, n.2, b1)
        let (r3, b3) = subBorrow(t3, n.3, b2)
        let (_, b4) = subBorrow(t4, 0, b3)
        // b4 = 1 exactly when t < n: keep t, else keep t − n.
        let keep = mask(b4)
        return P256Scalar((t0 & keep) | (r0 & ~keep), (t1 & keep) | (r1 & ~keep),
                          (t2 & keep) | (r2 & ~keep), (t3 & keep) | (r3 & ~keep))
    }

    /// Coarsely integrated operand scanning (CIOS) Montgomery multiplication,
    /// one outer round per limb of b; t stays below 2n between rounds.
    @inlinable @inline(__always)
    static func montgomeryProduct(_ a: P256Scalar, _ b: P256Scalar) -> P256Scalar {
        var t0: UInt64 = 0, t1: UInt64 = 0, t2: UInt64 = 0, t3: UInt64 = 0, t4: UInt64 = 0
        @inline(__always)
        func round(_ bi: UInt64) {
            var c: UInt64
            (t0, c) = mulAdd(t0, a.w0, bi, 0)
            (t1, c) = mulAdd(t1, a.w1, bi, c)
            (t2, c) = mulAdd(t2, a.w2, bi, c)
            (t3, c) = mulAdd(t3, a.w3, bi, c)
            let (u4, u5) = addCarry(t4, c, 0)
            // Add m·n so the lowest limb becomes zero, then shift one limb down.
            let m = t0 &* nInv
            (_, c) = mulAdd(t0, m, n.0, 0)
            (t0, c) = mulAdd(t1, m, n.1, c)
            (t1, c) = mulAdd(t2, m, n.2, c)
            (t2, c) = mulAdd(t3, m, n.3, c)
            let c2: UInt64
            (t3, c2) = addCarry(u4, c, 0)
            t4 = u5 &+ c2
        }
        round(b.w0)
        round(b.w1)
        round(b.w2)
        round(b.w3)
        return reduceOnce(t0, t1, t2, t3, t4)
    }

    /// a·w/2^64 mod n for a plain 64-bit word w: one CIOS round. In Montgomery
    /// form that is the value a·w·2^−64; callers take the 2^−64 factors off
    /// together (`WordPowers`). a·w + m·n < 2^65·n, so one subtraction reduces.
    @inlinable @inline(__always)
    static func timesWordOverR(_ a: P256Scalar, _ w: UInt64) -> P256Scalar {
        var c: UInt64
        let t0: UInt64, t1: UInt64, t2: UInt64, t3: UInt64, t4: UInt64
        (t0, c) = mulAdd(0, a.w0, w, 0)
        (t1, c) = mulAdd(0, a.w1, w, c)
        (t2, c) = mulAdd(0, a.w2, w, c)
        (t3, t4) = mulAdd(0, a.w3, w, c)
        let m = t0 &* nInv
        let s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64, s4: UInt64
        (_, c) = mulAdd(t0, m, n.0, 0)
        (s0, c) = mulAdd(t1, m, n.1, c)
        (s1, c) = mulAdd(t2, m, n.2, c)
        (s2, c) = mulAdd(t3, m, n.3, c)
        (s3, s4) = addCarry(t4, c, 0)
        return reduceOnce(s0, s1, s2, s3, s4)
    }

    // MARK: predicates and selection

    /// All ones when self == 0, else zero (a mask, not a Bool, so callers stay branch-free).
    @inlinable @inline(__always)
    public var isZeroMask: UInt64 {
        let x = w0 | w1 | w2 | w3
        // (x | −x) has its top bit set exactly when x ≠ 0.
        return mask(1 &- ((x | (0 &- x)) &>> 63))
    }

    /// All ones when a == b, else zero.
    @inlinable @inline(__always)
    public static func equalMask(_ a: P256Scalar, _ b: P256Scalar) -> UInt64 {
        P256Scalar(a.w0 ^ b.w0, a.w1 ^ b.w1, a.w2 ^ b.w2, a.w3 ^ b.w3).isZeroMask
    }

    /// `ifOnes` where `selector` is all ones, `ifZero` where it is zero.
    @inlinable @inline(__always)
    public static func select(_ selector: UInt64, _ ifOnes: P256Scalar, _ ifZero: P256Scalar) -> P256Scalar {
        P256Scalar((ifOnes.w0 & selector) | (ifZero.w0 & ~selector), (ifOnes.w1 & selector) | (ifZero.w1 & ~selector),
                   (ifOnes.w2 & selector) | (ifZero.w2 & ~selector), (ifOnes.w3 & selector) | (ifZero.w3 & ~selector))
    }

    // MARK: encoding

    /// The scalar of a share ID (public): the value `id`, in Montgomery form.
    /// One word-by-scalar round instead of a full product: id·(R·2^64)/2^64 = id·R.
    public init(_ id: UInt64) {
        self = P256Scalar.timesWordOverR(P256Scalar.rTimesWord, id)
    }

    /// 2^64 in Montgomery form, R·2^64 mod n (2^64 < n, so the limbs (0, 1, 0, 0)
    /// are canonical): the factor `init(_ id:)` scales by, and the step of `WordPowers`.
    @usableFromInline static let rTimesWord = montgomeryProduct(r2, P256Scalar(0, 1, 0, 0))

    /// Decodes 32 big-endian bytes without branching on them. Returns the
    /// scalar and a mask that is all ones when the bytes were < n (canonical);
    /// for a non-canonical input the scalar is zero.
    /// Precondition: `bytes.count == 32` (the length is public; check it first).
    public static func decode(bigEndian bytes: UnsafeRawBufferPointer) -> (value: P256Scalar, validMask: UInt64) {
        let (plain, valid) = decodeLimbs(bigEndian: bytes)
        return (montgomeryProduct(plain, r2), valid)
    }

    /// The 32 big-endian bytes as limbs, unconverted (zero when not below n),
    /// and the mask of being below n: shared by both forms' decoders.
    static func decodeLimbs(bigEndian bytes: UnsafeRawBufferPointer) -> (P256Scalar, UInt64) {
        precondition(bytes.count == byteCount, "a scalar decodes from exactly 32 bytes")
        @inline(__always)
        func word(_ i: Int) -> UInt64 { UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
        let x = P256Scalar(word(3), word(2), word(1), word(0))
        let (_, b0) = subBorrow(x.w0, n.0, 0)
        let (_, b1) = subBorrow(x.w1, n.1, b0)
        let (_, b2) = subBorrow(x.w2, n.2, b1)
        let (_, b3) = subBorrow(x.w3, n.3, b2)
        let valid = mask(b3)  // borrow out of x − n means x < n
        return (select(valid, x, zero), valid)
    }

    /// Writes the canonical 32 big-endian bytes of the value.
    /// Precondition: `out.count == 32`.
    public func encode(bigEndian out: UnsafeMutableRawBufferPointer) {
        // Multiplying by plain 1 leaves Montgomery form: (xR)(1)/R = x.
        P256Scalar.montgomeryProduct(self, P256Scalar(1, 0, 0, 0)).storeLimbs(bigEndian: out)
    }

    /// The limbs as they are, big-endian (no conversion): shared by both forms' encoders.
    func storeLimbs(bigEndian out: UnsafeMutableRawBufferPointer) {
        precondition(out.count == P256Scalar.byteCount, "a scalar encodes to exactly 32 bytes")
        @inline(__always)
        func put(_ word: UInt64, at offset: Int) { out.storeBytes(of: word.bigEndian, toByteOffset: offset, as: UInt64.self) }
        put(w3, at: 0)
        put(w2, at: 8)
        put(w1, at: 16)
        put(w0, at: 24)
    }

    /// The plain (non-Montgomery) value as little-endian limbs; for public values and tests.
    public var canonicalLimbs: (UInt64, UInt64, UInt64, UInt64) {
        let x = P256Scalar.montgomeryProduct(self, P256Scalar(1, 0, 0, 0))
        return (x.w0, x.w1, x.w2, x.w3)
    }

    /// Wipes the limbs (for locals that held a secret).
    public mutating func wipe() {
        withUnsafeMutableBytes(of: &self) { csm_wipe($0.baseAddress, $0.count) }
    }
}

extension Array where Element == P256Scalar {
    /// Wipes every element in place (arrays of secret scalars: coefficients, shard values).
    public mutating func wipeAll() {
        withUnsafeMutableBytes { if $0.count > 0 { csm_wipe($0.baseAddress, $0.count) } }
    }
}
