/// Variable-time inversion modulo n by Bernstein–Yang divsteps ("safegcd",
/// https://eprint.iacr.org/2019/266), in the variable-time form that skips runs
/// of zero bits and cancels several low bits of g per step. For PUBLIC values
/// only: every branch and loop count here depends on the value inverted.
///
/// Values are held as five signed 62-bit limbs (`Signed62`): x = Σ limb_i·2^(62·i),
/// limbs 0…3 in [0, 2^62) once normalised, limb 4 signed. 310 bits leave room
/// for the sign and for the intermediate ranges below. f and g shrink as the
/// divsteps go on, so they are kept in their low `length` limbs only (the top
/// one signed, up to 64 bits): each batch then updates fewer limbs.
enum SafeGCD {
    typealias Signed62 = (Int64, Int64, Int64, Int64, Int64)

    /// Bits per limb, and the divsteps done per batch (one batch fills one transition matrix).
    static let limbBits = 62
    static let limbMask: Int64 = (1 << 62) - 1

    /// A transition matrix of one batch, scaled by 2^62: after the batch,
    /// f' = (u·f + v·g)/2^62 and g' = (q·f + r·g)/2^62, exactly.
    struct Matrix { var u, v, q, r: Int64 }

    /// n in signed-62 form.
    static let modulus: Signed62 = signed62(P256Scalar.n.0, P256Scalar.n.1, P256Scalar.n.2, P256Scalar.n.3)
    /// n⁻¹ mod 2^62 (from −n⁻¹ mod 2^64, the Montgomery factor).
    static let modulusInverse62 = UInt64(bitPattern: limbMask) & (0 &- P256Scalar.nInv)
    /// Enough batches for any 256-bit input (the divstep bound for 256 bits is
    /// below 741 = 12 batches); reaching it would mean a broken invariant.
    static let batchLimit = 24

    /// Four little-endian 64-bit limbs (a value below 2^256) as signed-62 limbs.
    @inline(__always)
    static func signed62(_ a0: UInt64, _ a1: UInt64, _ a2: UInt64, _ a3: UInt64) -> Signed62 {
        let m = UInt64(bitPattern: limbMask)
        return (Int64(bitPattern: a0 & m),
                Int64(bitPattern: (a0 >> 62 | a1 << 2) & m),
                Int64(bitPattern: (a1 >> 60 | a2 << 4) & m),
                Int64(bitPattern: (a2 >> 58 | a3 << 6) & m),
                Int64(bitPattern: a3 >> 56))
    }

    /// The inverse of 0 < a < n, as four little-endian limbs of a value in [0, n).
    static func inverse(_ a0: UInt64, _ a1: UInt64, _ a2: UInt64, _ a3: UInt64) -> (UInt64, UInt64, UInt64, UInt64) {
        // Invariants: d·a ≡ f and e·a ≡ g (mod n); f stays odd; d, e in (−2n, n).
        var f = modulus, g = signed62(a0, a1, a2, a3)
        var d: Signed62 = (0, 0, 0, 0, 0), e: Signed62 = (1, 0, 0, 0, 0)
        var eta: Int64 = -1
        var length = 5
        var batches = 0
        while true {
            precondition(batches < batchLimit, "safegcd did not converge (broken invariant)")
            batches += 1
            let t = divsteps(&eta, UInt64(bitPattern: f.0), UInt64(bitPattern: g.0))
            // f and g first: the next batch's divsteps wait on them, not on d and e.
            let gIsZero = updateFG(&f, &g, t, length: &length)
            updateDE(&d, &e, t)
            if gIsZero { break }
        }
        // g = 0 leaves f = ±gcd(a, n) = ±1, and d·a ≡ f. In `length` limbs, +1 is
        // (1, 0, …, 0); −1 is all-ones low limbs under a top limb of −1.
        let (fIsOne, fIsMinusOne) = withUnsafeBytes(of: f) { raw in
            let limbs = raw.assumingMemoryBound(to: Int64.self)
            var one = limbs[0] == 1, minusOne = limbs[0] == (length == 1 ? -1 : limbMask)
            for i in 1..<length {
                one = one && limbs[i] == 0
                minusOne = minusOne && limbs[i] == (i == length - 1 ? -1 : limbMask)
            }
            return (one, minusOne)
        }
        precondition(fIsOne || fIsMinusOne, "a value shares a factor with the prime n")
        return normalise(d, negate: fIsMinusOne)
    }

    /// 62 divsteps on the low limbs of f (odd) and g, returning their matrix.
    /// Each round first shifts out g's trailing zeros in one go; with g odd, it
    /// swaps when η < 0 and then adds the multiple w·f that clears as many low
    /// bits of g as may be cleared before η changes sign (at most 6 after a
    /// swap, 4 otherwise, with w = −g/f modulo that power of two). The swap is
    /// done with masks rather than a branch: its direction is close to a coin
    /// toss, and a mispredicted branch costs more than the masked work.
    @inline(__always)
    static func divsteps(_ eta: inout Int64, _ f0: UInt64, _ g0: UInt64) -> Matrix {
        var u: UInt64 = 1, v: UInt64 = 0, q: UInt64 = 0, r: UInt64 = 1
        var f = f0, g = g0
        var i = UInt64(limbBits)
        var e = eta
        while true {
            // Trailing zeros of g, at most i of them.
            let zeros = UInt64((g | (UInt64.max &<< i)).trailingZeroBitCount)
            g &>>= zeros
            u &<<= zeros
            v &<<= zeros
            e &-= Int64(bitPattern: zeros)
            i &-= zeros
            if i == 0 { break }
            // g is odd; when η < 0, (η, f, g) ← (−η, g, −f) and the matrix rows likewise.
            // Selects, not a branch: the direction is close to a coin toss.
            let swap = e < 0
            let fOld = f, uOld = u, vOld = v
            e = swap ? 0 &- e : e
            f = swap ? g : f
            g = swap ? 0 &- fOld : g
            u = swap ? q : u
            q = swap ? 0 &- uOld : q
            v = swap ? r : v
            r = swap ? 0 &- vOld : r
            // Clear min(η + 1, i, 6) low bits of g with w = −g/f mod 2^6:
            // f·(f² − 2) ≡ −f⁻¹ (mod 64) for odd f (f² ≡ 1 mod 8).
            let reach = min(UInt64(bitPattern: e) &+ 1, i, 6)
            let w = (f &* (f &* f &- 2) &* g) & (UInt64.max &>> (64 &- reach))
            g = g &+ f &* w
            q = q &+ u &* w
            r = r &+ v &* w
        }
        eta = e
        return Matrix(u: Int64(bitPattern: u), v: Int64(bitPattern: v), q: Int64(bitPattern: q), r: Int64(bitPattern: r))
    }

    /// (f, g) ← t·(f, g)/2^62 over their low `length` limbs (the low 62 bits of
    /// both products are zero by construction of t, so the division is exact).
    /// Then, when the top limb of both holds nothing but sign (0 or −1), it is
    /// folded into the limb below, which becomes the signed top one. Returns
    /// whether g is now zero.
    @inline(__always)
    static func updateFG(_ f: inout Signed62, _ g: inout Signed62, _ t: Matrix, length: inout Int) -> Bool {
        let count = length
        return withUnsafeMutableBytes(of: &f) { fRaw in
            withUnsafeMutableBytes(of: &g) { gRaw in
                let f = fRaw.assumingMemoryBound(to: Int64.self), g = gRaw.assumingMemoryBound(to: Int64.self)
                let u = Int128(t.u), v = Int128(t.v), q = Int128(t.q), r = Int128(t.r)
                var cf = u &* Int128(f[0]) &+ v &* Int128(g[0])
                var cg = q &* Int128(f[0]) &+ r &* Int128(g[0])
                assert(cf & Int128(limbMask) == 0 && cg & Int128(limbMask) == 0)
                cf >>= 62; cg >>= 62
                for i in 1..<count {
                    cf &+= u &* Int128(f[i]) &+ v &* Int128(g[i])
                    cg &+= q &* Int128(f[i]) &+ r &* Int128(g[i])
                    f[i - 1] = Int64(truncatingIfNeeded: cf) & limbMask
                    g[i - 1] = Int64(truncatingIfNeeded: cg) & limbMask
                    cf >>= 62; cg >>= 62
                }
                // Neither |f| nor |g| ever exceeds n, so what is left above the lower limbs fits 64 bits.
                let fTop = Int64(truncatingIfNeeded: cf), gTop = Int64(truncatingIfNeeded: cg)
                f[count - 1] = fTop
                g[count - 1] = gTop
                if gTop == 0 {
                    var rest: Int64 = 0
                    for i in 0..<(count - 1) { rest |= g[i] }
                    if rest == 0 { return true }
                }
                // x ^ (x >> 63) is zero exactly for 0 and −1.
                if count > 1 && (fTop ^ (fTop >> 63)) | (gTop ^ (gTop >> 63)) == 0 {
                    f[count - 2] |= fTop &<< 62
                    g[count - 2] |= gTop &<< 62
                    length = count - 1
                }
                return false
            }
        }
    }

    /// (d, e) ← t·(d, e)/2^62 mod n: multiples md·n and me·n are added so the
    /// low 62 bits vanish (and negative inputs come back up), which keeps both
    /// in (−2n, n).
    @inline(__always)
    static func updateDE(_ d: inout Signed62, _ e: inout Signed62, _ t: Matrix) {
        let dNegative = d.4 >> 63, eNegative = e.4 >> 63  // all ones when negative
        var md = (t.u & dNegative) &+ (t.v & eNegative)
        var me = (t.q & dNegative) &+ (t.r & eNegative)
        let u = Int128(t.u), v = Int128(t.v), q = Int128(t.q), r = Int128(t.r)
        var cd = u &* Int128(d.0) &+ v &* Int128(e.0)
        var ce = q &* Int128(d.0) &+ r &* Int128(e.0)
        // Choose md, me so that cd + md·n and ce + me·n are multiples of 2^62.
        md &-= Int64(bitPattern: (modulusInverse62 &* UInt64(truncatingIfNeeded: cd) &+ UInt64(bitPattern: md)) & UInt64(bitPattern: limbMask))
        me &-= Int64(bitPattern: (modulusInverse62 &* UInt64(truncatingIfNeeded: ce) &+ UInt64(bitPattern: me)) & UInt64(bitPattern: limbMask))
        let mdWide = Int128(md), meWide = Int128(me)
        cd &+= Int128(modulus.0) &* mdWide
        ce &+= Int128(modulus.0) &* meWide
        assert(cd & Int128(limbMask) == 0 && ce & Int128(limbMask) == 0)
        cd >>= 62; ce >>= 62
        @inline(__always)
        func limb(_ di: Int64, _ ei: Int64, _ ni: Int64) -> (Int64, Int64) {
            cd &+= u &* Int128(di) &+ v &* Int128(ei) &+ Int128(ni) &* mdWide
            ce &+= q &* Int128(di) &+ r &* Int128(ei) &+ Int128(ni) &* meWide
            let out = (Int64(truncatingIfNeeded: cd) & limbMask, Int64(truncatingIfNeeded: ce) & limbMask)
            cd >>= 62; ce >>= 62
            return out
        }
        (d.0, e.0) = limb(d.1, e.1, modulus.1)
        (d.1, e.1) = limb(d.2, e.2, modulus.2)
        (d.2, e.2) = limb(d.3, e.3, modulus.3)
        (d.3, e.3) = limb(d.4, e.4, modulus.4)
        d.4 = Int64(truncatingIfNeeded: cd)
        e.4 = Int64(truncatingIfNeeded: ce)
    }

    /// d in (−2n, n), negated when asked, brought into [0, n) and repacked
    /// as 64-bit limbs. Public data, so plain branches.
    static func normalise(_ x: Signed62, negate: Bool) -> (UInt64, UInt64, UInt64, UInt64) {
        // As one signed integer: limb 4 carries the sign, limbs 0–3 are in [0, 2^62).
        var value = Wide(x)
        if negate { value = value.negated() }
        let n = Wide(modulus)
        while value.isNegative { value = value.adding(n) }
        while !value.isLess(than: n) { value = value.adding(n.negated()) }
        return value.limbs64
    }

    /// A signed integer of five 62-bit limbs with carries normalised (limbs
    /// 0–3 in [0, 2^62)), for `normalise`'s few additions.
    struct Wide {
        var limbs: Signed62
        init(_ limbs: Signed62) { self.limbs = limbs }

        var isNegative: Bool { limbs.4 < 0 }

        func adding(_ other: Wide) -> Wide {
            var carry: Int64 = 0
            @inline(__always)
            func add(_ a: Int64, _ b: Int64) -> Int64 {
                let s = a + b + carry
                carry = s >> 62
                return s & limbMask
            }
            let l0 = add(limbs.0, other.limbs.0)
            let l1 = add(limbs.1, other.limbs.1)
            let l2 = add(limbs.2, other.limbs.2)
            let l3 = add(limbs.3, other.limbs.3)
            return Wide((l0, l1, l2, l3, limbs.4 + other.limbs.4 + carry))
        }

        func negated() -> Wide {
            // −x = (~x) + 1 limb by limb within 62 bits, the top limb carrying the sign.
            let complement = Wide((~limbs.0 & limbMask, ~limbs.1 & limbMask, ~limbs.2 & limbMask, ~limbs.3 & limbMask, ~limbs.4))
            return complement.adding(Wide((1, 0, 0, 0, 0)))
        }

        func isLess(than other: Wide) -> Bool {
            if limbs.4 != other.limbs.4 { return limbs.4 < other.limbs.4 }
            if limbs.3 != other.limbs.3 { return limbs.3 < other.limbs.3 }
            if limbs.2 != other.limbs.2 { return limbs.2 < other.limbs.2 }
            if limbs.1 != other.limbs.1 { return limbs.1 < other.limbs.1 }
            return limbs.0 < other.limbs.0
        }

        /// For 0 ≤ value < 2^256: four little-endian 64-bit limbs.
        var limbs64: (UInt64, UInt64, UInt64, UInt64) {
            let l = (UInt64(limbs.0), UInt64(limbs.1), UInt64(limbs.2), UInt64(limbs.3), UInt64(limbs.4))
            return (l.0 | l.1 << 62, l.1 >> 2 | l.2 << 60, l.2 >> 4 | l.3 << 58, l.3 >> 6 | l.4 << 56)
        }
    }
}
