/// The recovery's states: one per box of the sequence diagram, named in
/// Spec/recovery-machine.json (a test holds the two to the same set).
public enum RecoveryState: String, CaseIterable, Sendable {
    case start, recovering, configured, collecting, waitingForRetry, thresholdMet, reconstructed, waitingForStore, verified
    case keyInstalled, stateInitialized, shardsWiped, distributing, operational, stoodDown, failed

    public var isFinal: Bool { self == .operational || self == .stoodDown || self == .failed }
}

/// The recovery's events, each tied to a step of Spec/recovery.md.
public enum RecoveryEvent: String, CaseIterable, Sendable {
    case recoveryBegun = "recovery_begun"
    case keepersConfigured = "keepers_configured"
    case configurationRejected = "configuration_rejected"
    case roundStarted = "round_started"
    case standDown = "stand_down"
    case shardReceived = "shard_received"
    case noShard = "no_shard"
    case shardRejected = "shard_rejected"
    case keeperUnreachable = "keeper_unreachable"
    case roundExhausted = "round_exhausted"
    case thresholdMet = "threshold_met"
    case keyReconstructed = "key_reconstructed"
    case badShardsExcluded = "bad_shards_excluded"
    case subsetTried = "subset_tried"
    case keyVerificationFailed = "key_verification_failed"
    case keyVerified = "key_verified"
    case keyConfirmed = "key_confirmed"
    case keyUnverifiable = "key_unverifiable"
    case storeUnreadable = "store_unreadable"
    case storeRetry = "store_retry"
    case shardDisagrees = "shard_disagrees"
    case rootKeySet = "root_key_set"
    case stateInitialized = "state_initialized"
    case stateInitializationFailed = "state_initialization_failed"
    case lateAnswer = "late_answer"
    case shardsWiped = "shards_wiped"
    case distributionStarted = "distribution_started"
    case operational = "operational"
    case deadlineExceeded = "deadline_exceeded"
    case restoreShardReceived = "restore_shard_received"
    case restoreThresholdMet = "restore_threshold_met"
    case restoreFailed = "restore_failed"
}

/// The process start (step 1): not a transition, it makes the initial state
/// `start`; recorded as the trace's first line.
public let nexusStartedEvent = "nexus_started"

/// One row of the transition table.
public struct RecoveryTransition: Sendable, Hashable {
    public let from: RecoveryState
    public let event: RecoveryEvent
    public let to: RecoveryState
    public let step: String
}

/// A broken invariant: the code and the spec disagree. Recovery stops; the
/// process exits with a clear message (never a secret).
public struct RecoveryViolation: Error, CustomStringConvertible, Sendable {
    public let step: String
    public let assertion: String
    public let detail: String
    public var description: String { "recovery invariant violated at step \(step) (\(assertion)): \(detail)" }
}

/// The transition table of Spec/recovery-machine.json, as code. Every move of
/// the recovery goes through `apply`, which refuses anything not in the table.
public struct RecoveryMachine: Sendable {
    public static let transitions: [RecoveryTransition] = [
        .init(from: .start, event: .recoveryBegun, to: .recovering, step: "2"),
        .init(from: .recovering, event: .keepersConfigured, to: .configured, step: "3"),
        .init(from: .recovering, event: .configurationRejected, to: .failed, step: "3"),
        .init(from: .configured, event: .roundStarted, to: .collecting, step: "4"),
        .init(from: .waitingForRetry, event: .roundStarted, to: .collecting, step: "4"),
        .init(from: .collecting, event: .standDown, to: .stoodDown, step: "4.0"),
        .init(from: .waitingForRetry, event: .standDown, to: .stoodDown, step: "4.0"),
        .init(from: .collecting, event: .shardReceived, to: .collecting, step: "4.4"),
        .init(from: .collecting, event: .noShard, to: .collecting, step: "4.4"),
        .init(from: .collecting, event: .shardRejected, to: .collecting, step: "4.4"),
        .init(from: .collecting, event: .keeperUnreachable, to: .collecting, step: "4.4"),
        .init(from: .collecting, event: .roundExhausted, to: .waitingForRetry, step: "5"),
        .init(from: .collecting, event: .thresholdMet, to: .thresholdMet, step: "6"),
        .init(from: .thresholdMet, event: .keyReconstructed, to: .reconstructed, step: "7.1"),
        .init(from: .reconstructed, event: .badShardsExcluded, to: .reconstructed, step: "7.3"),
        .init(from: .reconstructed, event: .subsetTried, to: .reconstructed, step: "7.3"),
        .init(from: .reconstructed, event: .keyVerificationFailed, to: .collecting, step: "7.2"),
        .init(from: .reconstructed, event: .keyVerified, to: .verified, step: "7.2"),
        .init(from: .reconstructed, event: .keyConfirmed, to: .verified, step: "7.2"),
        .init(from: .reconstructed, event: .keyUnverifiable, to: .collecting, step: "7.2"),
        .init(from: .reconstructed, event: .storeUnreadable, to: .waitingForStore, step: "7.2"),
        .init(from: .waitingForStore, event: .storeRetry, to: .reconstructed, step: "7.2"),
        .init(from: .waitingForStore, event: .deadlineExceeded, to: .failed, step: "7.2"),
        .init(from: .waitingForStore, event: .standDown, to: .stoodDown, step: "7.2"),
        .init(from: .verified, event: .shardDisagrees, to: .verified, step: "7.2"),
        .init(from: .verified, event: .rootKeySet, to: .keyInstalled, step: "8"),
        .init(from: .verified, event: .standDown, to: .stoodDown, step: "8"),
        .init(from: .keyInstalled, event: .stateInitialized, to: .stateInitialized, step: "9"),
        .init(from: .keyInstalled, event: .stateInitializationFailed, to: .failed, step: "9"),
        .init(from: .stateInitialized, event: .lateAnswer, to: .stateInitialized, step: "10"),
        .init(from: .stateInitialized, event: .shardsWiped, to: .shardsWiped, step: "10"),
        .init(from: .shardsWiped, event: .distributionStarted, to: .distributing, step: "11"),
        .init(from: .distributing, event: .operational, to: .operational, step: "12"),
        .init(from: .collecting, event: .deadlineExceeded, to: .failed, step: "4"),
        .init(from: .waitingForRetry, event: .deadlineExceeded, to: .failed, step: "5"),
        // Operator shards (restore route, --restore files): a second source feeding steps 6-12.
        .init(from: .configured, event: .restoreShardReceived, to: .configured, step: "R"),
        .init(from: .collecting, event: .restoreShardReceived, to: .collecting, step: "R"),
        .init(from: .waitingForRetry, event: .restoreShardReceived, to: .waitingForRetry, step: "R"),
        .init(from: .waitingForStore, event: .restoreShardReceived, to: .waitingForStore, step: "R"),
        .init(from: .configured, event: .restoreThresholdMet, to: .thresholdMet, step: "6"),
        .init(from: .collecting, event: .restoreThresholdMet, to: .thresholdMet, step: "6"),
        .init(from: .waitingForRetry, event: .restoreThresholdMet, to: .thresholdMet, step: "6"),
        .init(from: .collecting, event: .restoreFailed, to: .failed, step: "7.2"),
    ]

    static let table: [String: RecoveryTransition] = Dictionary(
        uniqueKeysWithValues: transitions.map { ("\($0.from.rawValue)|\($0.event.rawValue)", $0) })

    public private(set) var state: RecoveryState = .start

    public init() {}

    /// Moves along the table; any move not in it is a violation.
    @discardableResult
    public mutating func apply(_ event: RecoveryEvent) throws(RecoveryViolation) -> RecoveryTransition {
        guard let t = Self.table["\(state.rawValue)|\(event.rawValue)"] else {
            throw RecoveryViolation(step: "-", assertion: "table", detail: "event \(event.rawValue) is not allowed in state \(state.rawValue)")
        }
        state = t.to
        return t
    }

    /// Checks one assertion of the spec; throws a violation naming it.
    public static func require(_ condition: Bool, _ step: String, _ assertion: String, _ detail: @autoclosure () -> String) throws(RecoveryViolation) {
        if !condition { throw RecoveryViolation(step: step, assertion: assertion, detail: detail()) }
    }
}
