extension P256Scalar {
    /// a⁻¹ mod n for a PUBLIC, non-zero value — variable-time.
    ///
    /// Only Lagrange denominators (built from share IDs) are ever inverted in
    /// this project, and those are public, so speed wins over constant time:
    /// a value within 2^64 of 0 or of n (every denominator product of small
    /// share IDs) takes a 64-bit extended Euclid; anything else takes Fermat's
    /// a^(n−2). Returns zero for zero.
    public func inverseOfPublic() -> P256Scalar {
        let (v0, v1, v2, v3) = canonicalLimbs
        if v1 == 0 && v2 == 0 && v3 == 0 {
            return v0 == 0 ? .zero : P256Scalar.inverseOfSmall(v0)
        }
        // n − v small: v ≡ −(n − v), so v⁻¹ = −(n − v)⁻¹.
        let negated = (-self).canonicalLimbs
        if negated.1 == 0 && negated.2 == 0 && negated.3 == 0 {
            return -P256Scalar.inverseOfSmall(negated.0)
        }
        return fermatInverse()
    }

    /// a^(n−2) with fixed 4-bit windows over the public exponent.
    public func fermatInverse() -> P256Scalar {
        // n − 2, most significant word first.
        let exponent: [UInt64] = [0xffff_ffff_0000_0000, 0xffff_ffff_ffff_ffff, 0xbce6_faad_a717_9e84, 0xf3b9_cac2_fc63_254f]
        var table = [P256Scalar](repeating: .one, count: 16)
        for i in 1..<16 { table[i] = table[i - 1] * self }
        var acc = P256Scalar.one
        for word in exponent {
            for shift in stride(from: 60, through: 0, by: -4) {
                acc = acc.squared().squared().squared().squared()
                acc = acc * table[Int((word >> UInt64(shift)) & 0xf)]
            }
        }
        return acc
    }

    /// d⁻¹ mod n for 0 < d < 2^64: with n = q·d + r, Euclid on (d, r) gives
    /// u·d + v·r = 1, hence d·(u − v·q) ≡ 1 (mod n).
    static func inverseOfSmall(_ d: UInt64) -> P256Scalar {
        if d == 1 { return .one }
        // Long division of n by d, top limb first.
        var remainder: UInt64 = 0
        var q = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        (q.3, remainder) = d.dividingFullWidth((remainder, n.3))
        (q.2, remainder) = d.dividingFullWidth((remainder, n.2))
        (q.1, remainder) = d.dividingFullWidth((remainder, n.1))
        (q.0, remainder) = d.dividingFullWidth((remainder, n.0))
        // Extended Euclid on (d, r): invariant oldR = oldU·d + oldV·r.
        var (oldR, r) = (d, remainder)
        var (oldU, u): (Int128, Int128) = (1, 0)
        var (oldV, v): (Int128, Int128) = (0, 1)
        while r != 0 {
            let quotient = oldR / r
            (oldR, r) = (r, oldR - quotient * r)
            (oldU, u) = (u, oldU - Int128(quotient) * u)
            (oldV, v) = (v, oldV - Int128(quotient) * v)
        }
        precondition(oldR == 1, "a value below 2^64 shares a factor with the prime n")
        let quotientScalar = P256Scalar.montgomeryProduct(P256Scalar(q.0, q.1, q.2, q.3), r2)
        return P256Scalar(signed: oldU) - P256Scalar(signed: oldV) * quotientScalar
    }

    /// A small signed integer (|x| < 2^64) as a scalar.
    init(signed x: Int128) {
        let magnitude = P256Scalar(UInt64(x.magnitude))
        self = x < 0 ? -magnitude : magnitude
    }

    /// Inverts every element of `values` (all PUBLIC and non-zero) with one
    /// inversion and 3(k−1) multiplications (Montgomery's trick).
    public static func batchInverseOfPublic(_ values: [P256Scalar]) -> [P256Scalar] {
        guard !values.isEmpty else { return [] }
        var prefix = [P256Scalar](repeating: .one, count: values.count)
        var running = P256Scalar.one
        for i in 0..<values.count {
            prefix[i] = running
            running = running * values[i]
        }
        var inverse = running.inverseOfPublic()
        var out = [P256Scalar](repeating: .zero, count: values.count)
        for i in stride(from: values.count - 1, through: 0, by: -1) {
            out[i] = inverse * prefix[i]
            inverse = inverse * values[i]
        }
        return out
    }

    /// Lagrange weights at x = 0 for distinct non-zero share IDs (public):
    /// λ_j = Π_{m≠j} x_m / Π_{m≠j} (x_m − x_j). The secret is Σ λ_j·y_j.
    public static func lagrangeWeightsAtZero(ids: [UInt64]) -> [P256Scalar] {
        let xs = ids.map(P256Scalar.init)
        let k = xs.count
        // Numerators from prefix and suffix products: O(k).
        var suffix = [P256Scalar](repeating: .one, count: k + 1)
        for i in stride(from: k - 1, through: 0, by: -1) { suffix[i] = suffix[i + 1] * xs[i] }
        var numerators = [P256Scalar](repeating: .one, count: k)
        var prefix = P256Scalar.one
        for j in 0..<k {
            numerators[j] = prefix * suffix[j + 1]
            prefix = prefix * xs[j]
        }
        // Denominators Π_{m≠j} (x_m − x_j): O(k²) differences, taken as integers
        // (ids are below 2^64) and multiplied together in a machine word until
        // the next one would overflow it; only then does a field step follow.
        // Ids up to 2000 put five or six differences in a word, so the field does
        // a fifth to a sixth of the work. Then one batched inversion.
        var denominators = [P256Scalar](repeating: .one, count: k)
        var wordPowers = WordPowers()
        for j in 0..<k {
            let xj = ids[j]
            var acc = P256Scalar.one
            var pending: UInt64 = 1
            var steps = 0
            var negative = false
            for m in 0..<k where m != j {
                let xm = ids[m]
                let difference = xm > xj ? xm - xj : xj - xm
                if xm < xj { negative.toggle() }
                let (product, overflow) = pending.multipliedReportingOverflow(by: difference)
                if overflow {
                    acc = timesWordOverR(acc, pending)
                    steps += 1
                    pending = difference
                } else {
                    pending = product
                }
            }
            acc = timesWordOverR(acc, pending)
            steps += 1
            let d = acc * wordPowers[steps]
            denominators[j] = negative ? -d : d
        }
        let inverses = batchInverseOfPublic(denominators)
        return (0..<k).map { numerators[$0] * inverses[$0] }
    }
}

/// Powers of the word base: entry f is 2^(64·f) in Montgomery form, the factor
/// that `timesWordOverR` takes off f times. Public values; grown on demand.
struct WordPowers {
    private var powers: [P256Scalar] = [.one]

    subscript(f: Int) -> P256Scalar {
        mutating get {
            while powers.count <= f { powers.append(powers[powers.count - 1] * P256Scalar.rTimesWord) }
            return powers[f]
        }
    }
}
