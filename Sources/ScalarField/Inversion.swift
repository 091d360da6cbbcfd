extension P256Scalar {
    /// a⁻¹ mod n for a PUBLIC value — variable-time (Lehmer's extended
    /// Euclid, `LehmerGCD`). Returns zero for zero.
    ///
    /// Only public values are inverted with it in this project: Lagrange
    /// denominators, built from share IDs. `fermatInverse` is the
    /// constant-time one, for anything secret.
    public func inverseOfPublic() -> P256Scalar {
        if w0 | w1 | w2 | w3 == 0 { return .zero }
        // The limbs hold aR; Lehmer gives (aR)⁻¹ as a plain integer, and one
        // Montgomery product with R³ turns it into a⁻¹R: (aR)⁻¹·R³/R.
        let y = LehmerGCD.inverse(w0, w1, w2, w3)
        return P256Scalar.montgomeryProduct(P256Scalar(y.0, y.1, y.2, y.3), P256Scalar.r3)
    }

    /// R³ mod n in the limbs (R²·R²/R), for `inverseOfPublic`.
    static let r3 = montgomeryProduct(r2, r2)

    /// a^(n−2), constant-time in a: fixed 4-bit windows over the public
    /// exponent, every table entry computed whatever a is. Returns zero for zero.
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
