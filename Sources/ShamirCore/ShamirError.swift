/// Every way a split or a recovery can be refused. Each case is one failure
/// class of the spec (Spec/shamir.md, "Failure classes"); `failureClass` is
/// the name the vector files use. Messages name positions and share IDs
/// (public), never a secret value.
public enum ShamirError: Error, Equatable, Sendable, CustomStringConvertible {
    case thresholdBelowOne(Int)
    case sharesBelowThreshold(threshold: Int, shares: Int)
    case tooManyShares(Int)
    case rootKeyWrongLength(Int)
    case rootKeyZero
    case rootKeyNotCanonical
    case tooFewShards(needed: Int, got: Int)
    case zeroShareID(position: Int)
    case duplicateShareID(UInt64)
    case shardValueWrongLength(id: UInt64, count: Int)
    case shardValueNotCanonical(id: UInt64)
    case shardValueZero(id: UInt64)
    /// The split's own check (recover from the first `threshold` shards) did not give the key back.
    case selfCheckFailed

    public var failureClass: String {
        switch self {
        case .thresholdBelowOne: "threshold-below-one"
        case .sharesBelowThreshold: "shares-below-threshold"
        case .tooManyShares: "too-many-shares"
        case .rootKeyWrongLength: "root-key-wrong-length"
        case .rootKeyZero: "root-key-zero"
        case .rootKeyNotCanonical: "root-key-not-canonical"
        case .tooFewShards: "too-few-shards"
        case .zeroShareID: "zero-share-id"
        case .duplicateShareID: "duplicate-share-id"
        case .shardValueWrongLength: "shard-value-wrong-length"
        case .shardValueNotCanonical: "shard-value-not-canonical"
        case .shardValueZero: "shard-value-zero"
        case .selfCheckFailed: "self-check-failed"
        }
    }

    /// Every failure class, in the order the spec lists them.
    public static let allFailureClasses: [String] = [
        "threshold-below-one", "shares-below-threshold", "too-many-shares", "root-key-wrong-length",
        "root-key-not-canonical", "root-key-zero", "too-few-shards", "zero-share-id",
        "duplicate-share-id", "shard-value-wrong-length", "shard-value-not-canonical",
        "shard-value-zero", "self-check-failed",
    ]

    public var description: String {
        switch self {
        case .thresholdBelowOne(let t): "threshold must be at least 1 (got \(t))"
        case .sharesBelowThreshold(let t, let s): "shares (\(s)) must be at least the threshold (\(t))"
        case .tooManyShares(let s): "shares (\(s)) exceeds the limit of \(ShamirConstants.maximumShares)"
        case .rootKeyWrongLength(let c): "root key must be \(ShamirConstants.scalarByteCount) bytes (got \(c))"
        case .rootKeyZero: "root key is all zero"
        case .rootKeyNotCanonical: "root key is not below the P-256 group order"
        case .tooFewShards(let n, let g): "need \(n) shards, got \(g)"
        case .zeroShareID(let p): "shard at position \(p) has share id 0"
        case .duplicateShareID(let id): "two shards have share id \(id)"
        case .shardValueWrongLength(let id, let c): "shard \(id): value must be \(ShamirConstants.scalarByteCount) bytes (got \(c))"
        case .shardValueNotCanonical(let id): "shard \(id): value is not below the P-256 group order"
        case .shardValueZero(let id): "shard \(id): value is all zero (treated as no shard)"
        case .selfCheckFailed: "split self-check failed: the first threshold shards do not give back the root key"
        }
    }
}
