import SecureMemory

/// One Shamir share: the point (id, value) of the secret polynomial.
///
/// Invariant: `id` is public (keeper i holds id i); `value` is secret and
/// lives only in its `SecretBytes`. A shard is not validated on creation:
/// `recover` checks it, so bad input reaches a named error, not a crash.
public struct Shard: Sendable {
    public let id: UInt64
    public let value: SecretBytes

    public init(id: UInt64, value: SecretBytes) {
        self.id = id
        self.value = value
    }
}

/// What a split produces: every shard (ids 1...shares) and, for vectors and
/// tests, the random coefficients coeff[1...t] as drawn from the hash chain.
public struct ShamirSplit: Sendable {
    public let coefficients: [SecretBytes]
    public let shards: [Shard]

    public init(coefficients: [SecretBytes], shards: [Shard]) {
        self.coefficients = coefficients
        self.shards = shards
    }
}

/// The operations both implementations provide; the verifier, the benchmark
/// and the differential tests run either through this.
public protocol ShamirScheme: Sendable {
    /// Short name for reports ("native", "gmp-reference").
    var name: String { get }
    /// SPIKE's deterministic split of `rootKey` into `shares` shards, any
    /// `threshold` of which recover it. Includes the post-split self-check.
    func split(rootKey: SecretBytes, threshold: Int, shares: Int) throws(ShamirError) -> ShamirSplit
    /// The shards the same polynomial gives at arbitrary non-zero ids.
    func shards(rootKey: SecretBytes, threshold: Int, ids: [UInt64]) throws(ShamirError) -> [Shard]
    /// Lagrange interpolation at 0 over the first `threshold` shards (all
    /// shards given are validated).
    func recover(threshold: Int, shards: [Shard]) throws(ShamirError) -> SecretBytes
}

/// The parameter and input checks shared by both implementations, in the
/// order the spec gives them, so both report the same failure class.
public enum ShamirValidation {
    public static func checkSplit(threshold: Int, shares: Int) throws(ShamirError) {
        guard threshold >= 1 else { throw .thresholdBelowOne(threshold) }
        guard shares >= threshold else { throw .sharesBelowThreshold(threshold: threshold, shares: shares) }
        guard shares <= ShamirConstants.maximumShares else { throw .tooManyShares(shares) }
    }

    public static func checkShardIDs(threshold: Int, ids: [UInt64]) throws(ShamirError) {
        guard threshold >= 1 else { throw .thresholdBelowOne(threshold) }
        guard ids.count <= ShamirConstants.maximumShares else { throw .tooManyShares(ids.count) }
        try checkDistinctNonZero(ids)
    }

    /// Checks that runs before any arithmetic: threshold, count, ids. Value
    /// checks (length, canonical, zero) belong to each implementation's decoder
    /// and come after, per shard in order.
    public static func checkRecover(threshold: Int, shards: [Shard]) throws(ShamirError) {
        guard threshold >= 1 else { throw .thresholdBelowOne(threshold) }
        guard shards.count >= threshold else { throw .tooFewShards(needed: threshold, got: shards.count) }
        try checkDistinctNonZero(shards.lazy.map { $0.id })
    }

    private static func checkDistinctNonZero(_ ids: some Collection<UInt64>) throws(ShamirError) {
        // Few ids (the usual case): compare pairwise, no allocation.
        if ids.count <= 32 {
            for (position, id) in ids.enumerated() {
                guard id != 0 else { throw .zeroShareID(position: position) }
                for earlier in ids.prefix(position) where earlier == id { throw .duplicateShareID(id) }
            }
            return
        }
        var seen = Set<UInt64>()
        seen.reserveCapacity(ids.count)
        for (position, id) in ids.enumerated() {
            guard id != 0 else { throw .zeroShareID(position: position) }
            guard seen.insert(id).inserted else { throw .duplicateShareID(id) }
        }
    }
}
