import ScalarField
import SecureMemory
import ShamirCore

/// SPIKE's Shamir scheme on the constant-time P-256 scalar field: the
/// production implementation.
///
/// Byte-compatible with Go SPIKE (Spec/shamir.md): the coefficients come from
/// the SHA-256 chain seeded with the root key, shards are f(1)…f(shares).
/// Secrets (root key, coefficients, shard values) live in `SecretBytes` or in
/// scalar arrays wiped before they are released. They are computed on in plain
/// form (`PlainScalar`): weights and points stay in Montgomery form, so bytes
/// are read and written without conversion products. The only secret-dependent
/// branches are the ones the spec demands and that reveal nothing beyond the
/// outcome: skipping a chain block >= n (probability ~2^-32 per draw) and
/// refusing invalid input; each is marked with `ConstantTime.declassified`.
public struct NativeShamir: ShamirScheme {
    public let name = "native"
    public init() {}

    // MARK: split

    public func split(rootKey: SecretBytes, threshold: Int, shares: Int) throws(ShamirError) -> ShamirSplit {
        try ShamirValidation.checkSplit(threshold: threshold, shares: shares)
        var coefficients = try Self.coefficients(rootKey: rootKey, threshold: threshold)
        defer { coefficients.wipeAll() }
        let shards = (1...UInt64(shares)).map { Shard(id: $0, value: Self.secret(Self.evaluate(coefficients, at: $0))) }
        // Go SPIKE's self-check: the first `threshold` shards must give the key back.
        guard try Self.firstShardsGiveBack(coefficients[0], shards: shards, threshold: threshold) else { throw .selfCheckFailed }
        return ShamirSplit(coefficients: coefficients.dropFirst().map(Self.secret), shards: shards)
    }

    /// The self-check as `recover` would make it (each shard read back from its
    /// bytes and checked, then combined), compared with the key as scalars:
    /// the values stay in a wiped stack buffer instead of new secret buffers.
    static func firstShardsGiveBack(_ key: PlainScalar, shards: [Shard], threshold: Int) throws(ShamirError) -> Bool {
        let weights = LagrangeCache.shared.weights(ofFirst: threshold, of: shards)
        let sum: PlainScalar = try withUnsafeTemporaryAllocation(of: PlainScalar.self, capacity: threshold) { (values) throws(ShamirError) in
            defer { wipe(UnsafeMutableRawBufferPointer(values)) }
            for j in 0..<threshold { values[j] = try Self.value(of: shards[j]) }
            return Self.combine(weights: weights, values: UnsafeBufferPointer(values))
        }
        return ConstantTime.declassified(PlainScalar.equalMask(sum, key)) != 0
    }

    public func shards(rootKey: SecretBytes, threshold: Int, ids: [UInt64]) throws(ShamirError) -> [Shard] {
        try ShamirValidation.checkShardIDs(threshold: threshold, ids: ids)
        var coefficients = try Self.coefficients(rootKey: rootKey, threshold: threshold)
        defer { coefficients.wipeAll() }
        return ids.map { Shard(id: $0, value: Self.secret(Self.evaluate(coefficients, at: $0))) }
    }

    /// The root key's scalar, then `threshold − 1` draws from the chain
    /// B1 = SHA256(rk), B(k+1) = SHA256(Bk); a block >= n is skipped.
    static func coefficients(rootKey: SecretBytes, threshold: Int) throws(ShamirError) -> [PlainScalar] {
        guard rootKey.count == ShamirConstants.scalarByteCount else { throw .rootKeyWrongLength(rootKey.count) }
        let (key, valid) = rootKey.withUnsafeBytes { PlainScalar.decode(bigEndian: $0) }
        guard ConstantTime.declassified(valid) != 0 else { throw .rootKeyNotCanonical }
        guard ConstantTime.declassified(key.isZeroMask) == 0 else { throw .rootKeyZero }
        var coefficients = [PlainScalar]()
        coefficients.reserveCapacity(threshold)
        coefficients.append(key)
        // The chain block on the stack, wiped before it goes.
        withUnsafeTemporaryAllocation(byteCount: ShamirConstants.scalarByteCount, alignment: 8) { block in
            defer { wipe(block) }
            rootKey.withUnsafeBytes { block.copyMemory(from: $0) }
            while coefficients.count < threshold {
                SHA256.hash(UnsafeRawBufferPointer(block), into: block)
                let (candidate, inRange) = PlainScalar.decode(bigEndian: UnsafeRawBufferPointer(block))
                // Rejection sampling: whether this draw is used is revealed by the loop count anyway.
                if ConstantTime.declassified(inRange) != 0 { coefficients.append(candidate) }
            }
        }
        return coefficients
    }

    /// f(x) by Horner's rule; x is public (in Montgomery form, so the plain
    /// accumulator stays plain), the coefficients are secret.
    @inline(__always)
    static func evaluate(_ coefficients: [PlainScalar], at x: UInt64) -> PlainScalar {
        let point = P256Scalar(x)
        var acc = coefficients[coefficients.count - 1]
        for c in coefficients.dropLast().reversed() { acc = acc.times(point) + c }
        return acc
    }

    static func secret(_ value: PlainScalar) -> SecretBytes {
        let out = SecretBytes(zeroedCount: ShamirConstants.scalarByteCount)
        out.withUnsafeMutableBytes { value.encode(bigEndian: $0) }
        return out
    }

    /// Whether 32 bytes are a valid shard value: canonical (below n) and not
    /// zero. The answer is public (a shard is accepted or refused).
    public static func isCanonicalNonZero(_ value: SecretBytes) -> Bool {
        guard value.count == ShamirConstants.scalarByteCount else { return false }
        let (scalar, valid) = value.withUnsafeBytes { PlainScalar.decode(bigEndian: $0) }
        return ConstantTime.declassified(valid & ~scalar.isZeroMask) != 0
    }

    /// A fresh root key SPIKE accepts: 32 bytes from the system's CSPRNG,
    /// drawn again until canonical (below n) and non-zero.
    public static func randomRootKey() -> SecretBytes {
        var rng = SystemRandomNumberGenerator()
        while true {
            let key = SecretBytes(zeroedCount: ShamirConstants.scalarByteCount)
            key.withUnsafeMutableBytes { raw in
                for i in 0..<raw.count { raw[i] = UInt8.random(in: 0...255, using: &rng) }
            }
            if isCanonicalNonZero(key) { return key }
            key.wipe()
        }
    }

    // MARK: recover

    public func recover(threshold: Int, shards: [Shard]) throws(ShamirError) -> SecretBytes {
        try ShamirValidation.checkRecover(threshold: threshold, shards: shards)
        // Every shard is read and checked (a bad one past the threshold is still
        // refused); the values go to a temporary buffer (on the stack when
        // small) that is wiped before it goes.
        let sum: PlainScalar = try withUnsafeTemporaryAllocation(of: PlainScalar.self, capacity: shards.count) { (values) throws(ShamirError) in
            defer { wipe(UnsafeMutableRawBufferPointer(values)) }
            for j in 0..<shards.count { values[j] = try Self.value(of: shards[j]) }
            let weights = LagrangeCache.shared.weights(ofFirst: threshold, of: shards)
            return Self.combine(weights: weights, values: UnsafeBufferPointer(values))
        }
        return Self.secret(sum)
    }

    /// A shard's value as a scalar: exactly 32 bytes, canonical (below n) and
    /// not zero; which of these fails is public (the shard is refused).
    static func value(of shard: Shard) throws(ShamirError) -> PlainScalar {
        guard shard.value.count == ShamirConstants.scalarByteCount else {
            throw .shardValueWrongLength(id: shard.id, count: shard.value.count)
        }
        let (y, valid) = shard.value.withUnsafeBytes { PlainScalar.decode(bigEndian: $0) }
        guard ConstantTime.declassified(valid) != 0 else { throw .shardValueNotCanonical(id: shard.id) }
        guard ConstantTime.declassified(y.isZeroMask) == 0 else { throw .shardValueZero(id: shard.id) }
        return y
    }

    /// Σ λ_j·y_j over the first `weights.count` values (weights in Montgomery
    /// form, values and sum plain): the only part of recovery that touches
    /// secrets, and constant-time in them.
    @inline(never)
    public static func combine(weights: [P256Scalar], values: [PlainScalar]) -> PlainScalar {
        values.withUnsafeBufferPointer { combine(weights: weights, values: $0) }
    }

    /// `combine` over values held outside an array (split's self-check keeps them on the stack).
    @inline(never)
    static func combine(weights: [P256Scalar], values: UnsafeBufferPointer<PlainScalar>) -> PlainScalar {
        var sum = PlainScalar.zero
        for j in 0..<weights.count { sum = sum + values[j].times(weights[j]) }
        return sum
    }
}
