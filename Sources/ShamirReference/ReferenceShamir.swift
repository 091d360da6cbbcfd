import COpenSSLCrypto
import SecureMemory
import ShamirCore

/// SPIKE's Shamir scheme written plainly on GMP, line by line after
/// Spec/shamir.md: obviously correct, not fast, not constant-time.
///
/// Used by tests, `vectors generate|verify` and `bench` only — never on the
/// production path. Hashes with OpenSSL's libcrypto so that it shares no code
/// with the native implementation.
public struct ReferenceShamir: ShamirScheme {
    public let name = "gmp-reference"
    public init() {}

    static let order = BigInt(bigEndian: ShamirConstants.groupOrderBigEndian)

    /// SHA-256 with OpenSSL.
    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let ok = bytes.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { copenssl_sha256(input.baseAddress, input.count, $0.baseAddress) }
        }
        precondition(ok == 1, "OpenSSL SHA-256 failed")
        return out
    }

    // MARK: split

    /// The polynomial's coefficients: coeff[0] = rk, then t draws from the
    /// SHA-256 chain B1 = H(rk), B(k+1) = H(Bk), skipping blocks >= n.
    static func coefficients(rootKey: SecretBytes, threshold: Int) throws(ShamirError) -> [BigInt] {
        guard rootKey.count == ShamirConstants.scalarByteCount else { throw .rootKeyWrongLength(rootKey.count) }
        let key = rootKey.withUnsafeBytes { BigInt(bigEndian: $0) }
        guard !key.isZero else { throw .rootKeyZero }
        guard key < order else { throw .rootKeyNotCanonical }
        var coefficients = [key]
        var block = rootKey.withUnsafeBytes { [UInt8]($0) }
        for _ in 0..<(threshold - 1) {
            while true {
                block = sha256(block)
                let candidate = BigInt(bigEndian: block)
                if candidate < order {
                    coefficients.append(candidate)
                    break
                }
            }
        }
        return coefficients
    }

    /// f(x) by Horner's rule, mod n.
    static func evaluate(_ coefficients: [BigInt], at x: UInt64) -> BigInt {
        let point = BigInt(x)
        var acc = BigInt(0)
        for c in coefficients.reversed() {
            acc = BigInt.addMod(BigInt.mulMod(acc, point, order), c, order)
        }
        return acc
    }

    static func secret(_ value: BigInt) -> SecretBytes {
        var bytes = value.bigEndianBytes(width: ShamirConstants.scalarByteCount)
        return SecretBytes(consuming: &bytes)
    }

    public func split(rootKey: SecretBytes, threshold: Int, shares: Int) throws(ShamirError) -> ShamirSplit {
        try ShamirValidation.checkSplit(threshold: threshold, shares: shares)
        let coefficients = try Self.coefficients(rootKey: rootKey, threshold: threshold)
        let shards = (1...UInt64(shares)).map { Shard(id: $0, value: Self.secret(Self.evaluate(coefficients, at: $0))) }
        // Go SPIKE's self-check: the first `threshold` shards must give the key back.
        let back = try recover(threshold: threshold, shards: Array(shards.prefix(threshold)))
        guard back.constantTimeEquals(rootKey) else { throw .selfCheckFailed }
        return ShamirSplit(coefficients: coefficients.dropFirst().map(Self.secret), shards: shards)
    }

    public func shards(rootKey: SecretBytes, threshold: Int, ids: [UInt64]) throws(ShamirError) -> [Shard] {
        try ShamirValidation.checkShardIDs(threshold: threshold, ids: ids)
        let coefficients = try Self.coefficients(rootKey: rootKey, threshold: threshold)
        return ids.map { Shard(id: $0, value: Self.secret(Self.evaluate(coefficients, at: $0))) }
    }

    // MARK: recover

    public func recover(threshold: Int, shards: [Shard]) throws(ShamirError) -> SecretBytes {
        try ShamirValidation.checkRecover(threshold: threshold, shards: shards)
        var values: [BigInt] = []
        for shard in shards {
            guard shard.value.count == ShamirConstants.scalarByteCount else {
                throw .shardValueWrongLength(id: shard.id, count: shard.value.count)
            }
            let y = shard.value.withUnsafeBytes { BigInt(bigEndian: $0) }
            guard y < Self.order else { throw .shardValueNotCanonical(id: shard.id) }
            guard !y.isZero else { throw .shardValueZero(id: shard.id) }
            values.append(y)
        }
        // secret = Σ_j y_j · Π_{m≠j} x_m / (x_m − x_j), over the first `threshold` shards.
        let used = Array(shards.prefix(threshold))
        let xs = used.map { BigInt($0.id) }
        var sum = BigInt(0)
        for j in 0..<used.count {
            var numerator = BigInt(1)
            var denominator = BigInt(1)
            for m in 0..<used.count where m != j {
                numerator = BigInt.mulMod(numerator, xs[m], Self.order)
                denominator = BigInt.mulMod(denominator, BigInt.subMod(xs[m], xs[j], Self.order), Self.order)
            }
            // Distinct non-zero ids below n make every denominator invertible.
            guard let inverse = BigInt.invMod(denominator, Self.order) else {
                preconditionFailure("distinct share ids gave a zero Lagrange denominator")
            }
            let weight = BigInt.mulMod(numerator, inverse, Self.order)
            sum = BigInt.addMod(sum, BigInt.mulMod(values[j], weight, Self.order), Self.order)
        }
        return Self.secret(sum)
    }
}
