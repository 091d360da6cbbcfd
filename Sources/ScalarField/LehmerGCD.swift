/// Variable-time inversion modulo n by Lehmer's extended Euclidean algorithm.
/// For PUBLIC values only: every branch, division and loop count here depends
/// on the value inverted.
///
/// Euclid on (a, b) = (n, x) with cofactors: a ≡ t_a·x and b ≡ t_b·x (mod n).
/// Euclid's cofactors alternate in sign and never exceed n in magnitude, so
/// they are kept as magnitudes below 2^256 (`T_a`, `T_b`) with one sign bit,
/// t_b's sign being always the opposite of t_a's. Each outer round runs
/// Euclid on the top 64 bits of a and b (both shifted alike) for as many
/// quotients as Jebelean's test proves equal to those of the full values,
/// then applies the resulting 2×2 matrix of one-word entries to a, b and the
/// cofactors at once, on only the limbs they use (a and b shrink while the
/// cofactors grow): about nine rounds for a 256-bit value, one hardware
/// division per quotient. Where no quotient can be proven (a quotient that
/// does not fit the approximation, e.g. when b is far below a), one exact
/// step by long division is taken instead. At the end a = gcd = 1 (n is
/// prime and 0 < x < n), and x⁻¹ = t_a mod n.
enum LehmerGCD {
    /// Four little-endian limbs, a value below 2^256.
    struct Limbs4: Equatable {
        var w0, w1, w2, w3: UInt64
        static let zero = Limbs4(w0: 0, w1: 0, w2: 0, w3: 0)
        static let one = Limbs4(w0: 1, w1: 0, w2: 0, w3: 0)
        var isZero: Bool { (w0 | w1 | w2 | w3) == 0 }
        /// Fits one limb.
        var isSingleWord: Bool { (w1 | w2 | w3) == 0 }

        subscript(i: Int) -> UInt64 {
            get { i == 0 ? w0 : i == 1 ? w1 : i == 2 ? w2 : w3 }
            set { if i == 0 { w0 = newValue } else if i == 1 { w1 = newValue } else if i == 2 { w2 = newValue } else { w3 = newValue } }
        }

        static func >= (a: Limbs4, b: Limbs4) -> Bool {
            if a.w3 != b.w3 { return a.w3 > b.w3 }
            if a.w2 != b.w2 { return a.w2 > b.w2 }
            if a.w1 != b.w1 { return a.w1 > b.w1 }
            return a.w0 >= b.w0
        }

        /// a − b mod 2^256.
        static func - (a: Limbs4, b: Limbs4) -> Limbs4 {
            var r = Limbs4.zero, c: UInt64
            (r.w0, c) = subBorrow(a.w0, b.w0, 0)
            (r.w1, c) = subBorrow(a.w1, b.w1, c)
            (r.w2, c) = subBorrow(a.w2, b.w2, c)
            (r.w3, _) = subBorrow(a.w3, b.w3, c)
            return r
        }

        /// a + b mod 2^256.
        static func + (a: Limbs4, b: Limbs4) -> Limbs4 {
            var r = Limbs4.zero, c: UInt64
            (r.w0, c) = addCarry(a.w0, b.w0, 0)
            (r.w1, c) = addCarry(a.w1, b.w1, c)
            (r.w2, c) = addCarry(a.w2, b.w2, c)
            (r.w3, _) = addCarry(a.w3, b.w3, c)
            return r
        }
    }

    static let modulus = Limbs4(w0: P256Scalar.n.0, w1: P256Scalar.n.1, w2: P256Scalar.n.2, w3: P256Scalar.n.3)

    /// p·x − q·y over the low `limbs` limbs, for one-word p and q, when the
    /// result is in [0, 2^(64·limbs)) and x, y are zero above `limbs`.
    /// Callers pass a literal count, so each use unrolls to just those limbs.
    @inline(__always)
    static func difference(_ p: UInt64, _ x: Limbs4, _ q: UInt64, _ y: Limbs4, limbs: Int) -> Limbs4 {
        var c: UInt64, d: UInt64, borrow: UInt64, px: UInt64, qy: UInt64, r = Limbs4.zero
        // Both products may exceed the width; their difference does not, so the low limbs suffice.
        (px, c) = mulAdd(0, p, x.w0, 0)
        (qy, d) = mulAdd(0, q, y.w0, 0)
        (r.w0, borrow) = subBorrow(px, qy, 0)
        if limbs > 1 {
            (px, c) = mulAdd(0, p, x.w1, c)
            (qy, d) = mulAdd(0, q, y.w1, d)
            (r.w1, borrow) = subBorrow(px, qy, borrow)
        }
        if limbs > 2 {
            (px, c) = mulAdd(0, p, x.w2, c)
            (qy, d) = mulAdd(0, q, y.w2, d)
            (r.w2, borrow) = subBorrow(px, qy, borrow)
        }
        if limbs > 3 {
            (r.w3, _) = subBorrow(p &* x.w3 &+ c, q &* y.w3 &+ d, borrow)
        }
        return r
    }

    /// p·x + q·y, for one-word p and q, when x and y are zero above `limbs`
    /// and the result is below 2^256: the products' carries fill the (at
    /// most two) limbs above. Callers pass a literal count.
    @inline(__always)
    static func sum(_ p: UInt64, _ x: Limbs4, _ q: UInt64, _ y: Limbs4, limbs: Int) -> Limbs4 {
        var c: UInt64, d: UInt64, t: UInt64, r = Limbs4.zero
        (t, c) = mulAdd(0, p, x.w0, 0)
        (r.w0, d) = mulAdd(t, q, y.w0, 0)
        if limbs > 1 {
            (t, c) = mulAdd(0, p, x.w1, c)
            (r.w1, d) = mulAdd(t, q, y.w1, d)
        }
        if limbs > 2 {
            (t, c) = mulAdd(0, p, x.w2, c)
            (r.w2, d) = mulAdd(t, q, y.w2, d)
        }
        if limbs > 3 {
            r.w3 = p &* x.w3 &+ c &+ q &* y.w3 &+ d
        } else {
            let (top, carry) = addCarry(c, d, 0)
            r[limbs] = top
            if limbs < 3 { r[limbs + 1] = carry }
        }
        return r
    }

    /// The number of limbs up to the highest non-zero one (1 for zero).
    @inline(__always)
    static func length(_ x: Limbs4) -> Int { x.w3 != 0 ? 4 : x.w2 != 0 ? 3 : x.w1 != 0 ? 2 : 1 }

    /// The top 64 bits of a (from its leading one), and b shifted by as much;
    /// exact when a fits one word.
    @inline(__always)
    static func approximations(_ a: Limbs4, _ b: Limbs4) -> (UInt64, UInt64) {
        let top = a.w3 != 0 ? 3 : a.w2 != 0 ? 2 : a.w1 != 0 ? 1 : 0
        if top == 0 { return (a.w0, b.w0) }
        let s = UInt64(a[top].leadingZeroBitCount)
        if s == 0 { return (a[top], b[top]) }
        return ((a[top] << s) | (a[top - 1] >> (64 - s)), (b[top] << s) | (b[top - 1] >> (64 - s)))
    }

    /// x·y mod 2^256 (the slow step's cofactor update, where x·y < n).
    static func productLow(_ x: Limbs4, _ y: Limbs4) -> Limbs4 {
        var r = Limbs4.zero
        for i in 0..<4 {
            var carry: UInt64 = 0
            for j in 0..<(4 - i) { (r[i + j], carry) = mulAdd(r[i + j], x[i], y[j], carry) }
        }
        return r
    }

    /// (a / b, a mod b) by binary long division, for b > 0: the rare exact step.
    static func longDivision(_ a: Limbs4, _ b: Limbs4) -> (quotient: Limbs4, remainder: Limbs4) {
        var q = Limbs4.zero, r = Limbs4.zero
        for i in stride(from: 255, through: 0, by: -1) {
            // r < b before the shift, so 2r + 1 < 2b; a bit shifted out of r means r ≥ 2^256 > b.
            let out = r.w3 >> 63
            r = Limbs4(w0: r.w0 << 1 | (a[i / 64] >> UInt64(i % 64)) & 1, w1: r.w1 << 1 | r.w0 >> 63,
                       w2: r.w2 << 1 | r.w1 >> 63, w3: r.w3 << 1 | r.w2 >> 63)
            if out == 1 || r >= b {
                r = r - b
                q[i / 64] |= 1 << UInt64(i % 64)
            }
        }
        return (q, r)
    }

    /// The inverse of 0 < x < n, as four little-endian limbs of a value in [0, n).
    static func inverse(_ x0: UInt64, _ x1: UInt64, _ x2: UInt64, _ x3: UInt64) -> (UInt64, UInt64, UInt64, UInt64) {
        var a = modulus, b = Limbs4(w0: x0, w1: x1, w2: x2, w3: x3)
        // a = n ≡ 0·x and b = x = 1·x: t_b = +1, so t_a's sign is negative.
        var ta = Limbs4.zero, tb = Limbs4.one
        var taNegative = true
        while !b.isZero {
            let exact = a.isSingleWord
            var (r0, r1) = approximations(a, b)
            // Cofactor magnitudes of the approximations: r0 = ±u0·â ∓ v0·b̂, r1 likewise with u1, v1.
            var u0: UInt64 = 1, v0: UInt64 = 0, u1: UInt64 = 0, v1: UInt64 = 1
            var steps = 0
            while r1 != 0 {
                let q = r0 / r1
                let r2 = r0 &- q &* r1
                // No overflow: v2·r1 + v1·r2 = â and u2·r1 + u1·r2 = b̂ (the
                // continuant identities) with r1 ≥ 1 keep u2 and v2, and so
                // q·u1 and q·v1, below 2^64.
                let u2 = u0 &+ q &* u1, v2 = v0 &+ q &* v1
                if !exact {
                    // Jebelean's test, on both cofactor sequences: this quotient is the full values' own.
                    let (su, o5) = u2.addingReportingOverflow(u1)
                    let (sv, o6) = v2.addingReportingOverflow(v1)
                    let gap = r1 &- r2
                    if o5 || o6 || r2 < u2 || r2 < v2 || gap < su || gap < sv { break }
                }
                (r0, r1, u0, u1, v0, v1) = (r1, r2, u1, u2, v1, v2)
                steps += 1
            }
            if steps == 0 {
                // One exact step: (a, b) ← (b, a mod b), t_b' = t_a − q·t_b.
                let (q, r) = longDivision(a, b)
                (a, b) = (b, r)
                (ta, tb) = (tb, ta + productLow(q, tb))
                taNegative.toggle()
                continue
            }
            // After `steps` quotients the signs of (u, v) alternate with the step count.
            let even = steps & 1 == 0
            // a and b only shrink, the cofactors only grow: the matrix is applied
            // to the limbs in use, each length a literal in its own branch.
            @inline(__always) func values(_ n: Int) {
                (a, b) = even ? (difference(u0, a, v0, b, limbs: n), difference(v1, b, u1, a, limbs: n))
                              : (difference(v0, b, u0, a, limbs: n), difference(u1, a, v1, b, limbs: n))
            }
            @inline(__always) func cofactors(_ n: Int) {
                (ta, tb) = (sum(u0, ta, v0, tb, limbs: n), sum(u1, ta, v1, tb, limbs: n))
            }
            switch length(a) {
            case 4: values(4)
            case 3: values(3)
            case 2: values(2)
            default: values(1)
            }
            switch length(Limbs4(w0: ta.w0 | tb.w0, w1: ta.w1 | tb.w1, w2: ta.w2 | tb.w2, w3: ta.w3 | tb.w3)) {
            case 4: cofactors(4)
            case 3: cofactors(3)
            case 2: cofactors(2)
            default: cofactors(1)
            }
            if !even { taNegative.toggle() }
        }
        precondition(a == Limbs4.one, "inverse of a value that is zero or not below n (broken invariant)")
        let t = taNegative ? modulus - ta : ta
        return (t.w0, t.w1, t.w2, t.w3)
    }
}
