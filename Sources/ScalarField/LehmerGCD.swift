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
/// cofactors at once: about nine rounds for a 256-bit value, one hardware
/// division per quotient. Where no quotient can be proven (a quotient that
/// does not fit the approximation, e.g. when b is far below a), one exact
/// step by long division is taken instead. At the end a = gcd = 1 (n is
/// prime and 0 < x < n), and x⁻¹ = t_a mod n.
enum LehmerGCD {
    /// Four little-endian limbs, a value below 2^256.
    struct Limbs4: Equatable {
        var w0, w1, w2, w3: UInt64
        static let zero = Limbs4(w0: 0, w1: 0, w2: 0, w3: 0)
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

    /// p·x − q·y, for one-word p and q, when the result is in [0, 2^256).
    @inline(__always)
    static func difference(_ p: UInt64, _ x: Limbs4, _ q: UInt64, _ y: Limbs4) -> Limbs4 {
        var c: UInt64, px = Limbs4.zero, qy = Limbs4.zero
        (px.w0, c) = mulAdd(0, p, x.w0, 0)
        (px.w1, c) = mulAdd(0, p, x.w1, c)
        (px.w2, c) = mulAdd(0, p, x.w2, c)
        (px.w3, _) = mulAdd(0, p, x.w3, c)
        (qy.w0, c) = mulAdd(0, q, y.w0, 0)
        (qy.w1, c) = mulAdd(0, q, y.w1, c)
        (qy.w2, c) = mulAdd(0, q, y.w2, c)
        (qy.w3, _) = mulAdd(0, q, y.w3, c)
        // Both products may exceed 2^256; their difference does not, so the low limbs suffice.
        return px - qy
    }

    /// p·x + q·y, for one-word p and q, when the result is below 2^256.
    @inline(__always)
    static func sum(_ p: UInt64, _ x: Limbs4, _ q: UInt64, _ y: Limbs4) -> Limbs4 {
        var c: UInt64, d: UInt64, r = Limbs4.zero
        (r.w0, c) = mulAdd(0, p, x.w0, 0)
        (r.w1, c) = mulAdd(0, p, x.w1, c)
        (r.w2, c) = mulAdd(0, p, x.w2, c)
        (r.w3, _) = mulAdd(0, p, x.w3, c)
        (r.w0, d) = mulAdd(r.w0, q, y.w0, 0)
        (r.w1, d) = mulAdd(r.w1, q, y.w1, d)
        (r.w2, d) = mulAdd(r.w2, q, y.w2, d)
        (r.w3, _) = mulAdd(r.w3, q, y.w3, d)
        return r
    }

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
        var ta = Limbs4.zero, tb = Limbs4(w0: 1, w1: 0, w2: 0, w3: 0)
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
                let (qu, o1) = q.multipliedReportingOverflow(by: u1)
                let (qv, o2) = q.multipliedReportingOverflow(by: v1)
                let (u2, o3) = u0.addingReportingOverflow(qu)
                let (v2, o4) = v0.addingReportingOverflow(qv)
                if o1 || o2 || o3 || o4 { break }
                if !exact {
                    // Jebelean's test, on both cofactor sequences: this quotient is the full values' own.
                    let (su, o5) = u2.addingReportingOverflow(u1)
                    let (sv, o6) = v2.addingReportingOverflow(v1)
                    let gap = r1 - r2
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
            (a, b) = even ? (difference(u0, a, v0, b), difference(v1, b, u1, a))
                          : (difference(v0, b, u0, a), difference(u1, a, v1, b))
            (ta, tb) = (sum(u0, ta, v0, tb), sum(u1, ta, v1, tb))
            if !even { taNegative.toggle() }
        }
        precondition(a == Limbs4(w0: 1, w1: 0, w2: 0, w3: 0), "inverse of a value that is zero or not below n (broken invariant)")
        let t = taNegative ? modulus - ta : ta
        return (t.w0, t.w1, t.w2, t.w3)
    }
}
