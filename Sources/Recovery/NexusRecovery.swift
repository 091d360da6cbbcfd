import BackingStore
import CoreMetrics
import Foundation
import Logging
import SecureMemory
import Shamir
import ShamirCore
import SpikeWire

/// How a recovery run ended, with the counts the `--json` summary prints.
public struct RecoveryOutcome: Sendable {
    public enum Ending: Sendable, Equatable {
        case operational
        case stoodDown
        case failed(String)
    }

    public let ending: Ending
    public let state: NexusState?
    public let shardsUsed: [Int]
    public let keepersRejected: [Int]
    public let elapsedMilliseconds: Double

    public init(ending: Ending, state: NexusState?, shardsUsed: [Int], keepersRejected: [Int], elapsedMilliseconds: Double) {
        self.ending = ending
        self.state = state
        self.shardsUsed = shardsUsed
        self.keepersRejected = keepersRejected
        self.elapsedMilliseconds = elapsedMilliseconds
    }

    /// The `--json` line of Spec cli.md.
    public var summaryJSON: String {
        switch ending {
        case .operational:
            let s = state ?? .empty
            return "{\"operational\":true,\"secrets\":\(s.secretCount),\"secret_versions\":\(s.versionCount),\"policies\":\(s.policyCount),"
                + "\"shards_used\":[\(shardsUsed.map(String.init).joined(separator: ","))],"
                + "\"keepers_rejected\":[\(keepersRejected.map(String.init).joined(separator: ","))],"
                + "\"elapsed_ms\":\(Int(elapsedMilliseconds.rounded()))}"
        case .stoodDown:
            return "{\"operational\":false,\"reason\":\"stood down: an operator restore installed the root key\"}"
        case .failed(let reason):
            return "{\"operational\":false,\"reason\":" + JSONText.quoted(reason) + "}"
        }
    }
}

/// The Nexus recovery of the sequence diagram, step for step
/// (Spec/recovery.md, Spec/recovery-machine.json). Every move goes through
/// `RecoveryMachine.apply` and is recorded in the trace; the assertions of
/// each step are checked on every run, in release builds too.
public final class NexusRecovery: @unchecked Sendable {
    let config: RecoveryConfiguration
    let client: any KeeperClient
    let store: any StoreAccess
    public let holder: RootKeyHolder
    public let trace: TraceRecorder
    let logger: Logger
    let shamir = NativeShamir()

    var machine = RecoveryMachine()
    var collection: ShardCollection
    var keepersRejected: [Int] = []
    var round = 0
    var candidateFailed = false
    /// Every candidate key buffer made, for the step-10 check.
    var candidates: [SecretBytes] = []

    public init(config: RecoveryConfiguration, client: any KeeperClient, store: any StoreAccess, holder: RootKeyHolder,
                trace: TraceRecorder, logger: Logger) {
        self.config = config
        self.client = client
        self.store = store
        self.holder = holder
        self.trace = trace
        self.logger = logger
        collection = ShardCollection(threshold: max(config.threshold, 1))
    }

    /// Runs steps 1–12 (distribution is handed to `distributor` at step 11).
    public func run(distributor: ShardDistributor?) async -> RecoveryOutcome {
        do {
            return try await steps(distributor: distributor)
        } catch let violation as RecoveryViolation {
            logger.critical("\(violation)")
            wipeEverything()
            return outcome(.failed(violation.description), state: nil)
        } catch {
            wipeEverything()
            return outcome(.failed("\(error)"), state: nil)
        }
    }

    // MARK: the steps

    func steps(distributor: ShardDistributor?) async throws -> RecoveryOutcome {
        // 1. Nexus starts without a root key.
        try RecoveryMachine.require(!holder.isSet, "1", "A1.1", "the root-key holder is not empty at start")
        // 2.
        try emit(.recoveryBegun)
        // 3. Configuration.
        do {
            try config.validate()
        } catch {
            try emit(.configurationRejected, detail: error.description)
            return outcome(.failed(error.description), state: nil)
        }
        try emit(.keepersConfigured, detail: "\(config.keepers.count) keepers, threshold \(config.threshold)")

        // 4–7: rounds until a verified key.
        var key: SecretBytes?
        while key == nil {
            if round > 0 {
                switch await backoff() {
                case .elapsed: break
                case .holderSet: return try standDown()
                case .deadline: return try deadlineExceeded()
                }
            }
            round += 1
            try emit(.roundStarted, detail: "round \(round)")
            if holder.isSet { return try standDown() }
            if deadlinePassed { return try deadlineExceeded() }
            switch try await collectRound() {
            case .verified(let k): key = k
            case .exhausted: try emit(.roundExhausted, detail: "round \(round): \(collection.count) of \(config.threshold) shards held")
            case .deadline: return try deadlineExceeded()
            }
        }
        guard let key else { preconditionFailure("loop exits with a key") }

        // 8. Install (compare-and-set: an operator restore may have won).
        guard holder.setIfEmpty(key, by: "recovery") else {
            try emit(.standDown, detail: "an operator restore installed the key first")
            wipeEverything()
            try RecoveryMachine.require(key.isAllZero, "8", "A4.0.1", "candidate not wiped at stand-down")
            return outcome(.stoodDown, state: nil)
        }
        try emit(.rootKeySet)
        try RecoveryMachine.require(holder.isSet, "8", "A8.2", "the holder is empty after SetRootKey")

        // 9. Load and decrypt the store.
        let state: NexusState
        do {
            state = try store.load(rootKey: key)
        } catch {
            try emit(.stateInitializationFailed, detail: error.description)
            wipeEverything()
            return outcome(.failed("state initialization: \(error)"), state: nil)
        }
        try emit(.stateInitialized, detail: "\(state.secretCount) secrets, \(state.versionCount) versions, \(state.policyCount) policies")

        // 10. Zero every shard and every temporary key copy.
        let shardsZero = collection.wipeAll()
        for c in candidates { c.wipe() }
        try RecoveryMachine.require(shardsZero, "10", "A10.1", "a collected shard buffer is not zero")
        try RecoveryMachine.require(candidates.allSatisfy(\.isAllZero), "10", "A10.2", "a temporary key copy is not zero")
        try emit(.shardsWiped, detail: "\(collection.everHeld.count) shard buffers, \(candidates.count) key copies")

        // 11. Periodic distribution.
        distributor?.start()
        try emit(.distributionStarted, detail: "every \(config.updateInterval)")

        // 12.
        try emit(.operational)
        return outcome(.operational, state: state)
    }

    enum RoundResult { case verified(SecretBytes), exhausted, deadline }
    enum RoundMessage: Sendable { case answer(Int, KeeperAnswer), deadline }

    /// Steps 4.1–4.4 for every keeper whose shard is not held, concurrently;
    /// after each shard, steps 6–7 as soon as an untried T-subset is held.
    func collectRound() async throws -> RoundResult {
        let missing = (1...config.keepers.count).filter { !collection.holds($0) }
        if missing.isEmpty {
            logger.warning("round \(round): every keeper has answered with a shard, and no \(config.threshold) of them give a key that opens the store; keepers may hold shards of another root key — waiting for an operator restore")
            return .exhausted
        }
        let config = self.config, client = self.client
        let remaining = remainingDeadline
        return try await withThrowingTaskGroup(of: RoundMessage.self) { group in
            for id in missing {
                group.addTask { .answer(id, await client.fetchShard(url: config.shardURL(keeper: id - 1), deadline: config.requestDeadline)) }
            }
            if let remaining {
                group.addTask {
                    try? await Task.sleep(for: remaining)
                    return .deadline
                }
            }
            var outstanding = missing.count
            defer { group.cancelAll() }
            while let message = try await group.next() {
                switch message {
                case .deadline:
                    if Task.isCancelled { continue }
                    return .deadline
                case .answer(let id, let answer):
                    outstanding -= 1
                    try receive(answer, from: id)
                    if let key = try reconstructAndVerify() {
                        return .verified(key)
                    }
                    if outstanding == 0 { return .exhausted }
                }
            }
            return .exhausted
        }
    }

    /// Step 4.4: classify one answer.
    func receive(_ answer: KeeperAnswer, from id: Int) throws {
        switch answer {
        case .shard(let value):
            guard NativeShamir.isCanonicalNonZero(value) else {
                value.wipe()
                try emit(.shardRejected, keeper: id, detail: "shard value is not below the group order")
                logger.warning("keeper \(id): shard rejected (value is not below the group order)")
                return
            }
            try RecoveryMachine.require(!collection.holds(id), "4.4", "A4.4.2", "share id \(id) already held")
            collection.append(id: id, value: value)
            try RecoveryMachine.require(collection.count <= config.keepers.count && (candidateFailed || collection.count <= config.threshold),
                                        "4.4", "A4.4.3", "collection holds \(collection.count) shards")
            try emit(.shardReceived, keeper: id, detail: "\(collection.count)/\(config.threshold)")
        case .noShard:
            try emit(.noShard, keeper: id)
        case .rejected(let reason):
            try emit(.shardRejected, keeper: id, detail: reason)
            logger.warning("keeper \(id): answer rejected (\(reason))")
        case .unreachable(let reason):
            try emit(.keeperUnreachable, keeper: id, detail: reason)
            logger.notice("keeper \(id): unreachable (\(reason))")
        }
    }

    /// Steps 6, 7.1, 7.3 and 7.2 while an untried T-subset is held. Returns
    /// the verified key, or nil to keep collecting.
    func reconstructAndVerify() throws -> SecretBytes? {
        let t = config.threshold
        while let subset = collection.firstUntriedSubset() {
            try emit(.thresholdMet, detail: "shards \(subset)")
            try RecoveryMachine.require(collection.count >= t, "6", "A6.1", "fewer than \(t) shards held")
            try RecoveryMachine.require(candidateFailed || collection.count == t, "6", "A6.2", "\(collection.count) shards held before any failure")
            var candidate = try reconstruct(subset)
            try emit(.keyReconstructed, detail: "from shards \(subset)")

            var check = verify(candidate)
            // 7.3: with spare shards, find the key the store accepts and drop the shards off it.
            if collection.count > t, check.isVerifiable {
                var winner: (key: SecretBytes, subset: [Int], check: Verification)? = check.opens ? (candidate, subset, check) : nil
                if winner == nil {
                    for other in collection.untriedSubsets() {
                        let key = try reconstruct(other)  // marks the subset tried
                        let result = verify(key)
                        if result.opens {
                            winner = (key, other, result)
                            break
                        }
                        key.wipe()
                    }
                }
                if let winner {
                    let off = try shardsOff(winner.key)
                    if !off.isEmpty {
                        collection.exclude(off)
                        keepersRejected += off
                        for id in off { logger.warning("keeper \(id) holds a shard that is not part of the root key's split (stale or corrupted); excluded") }
                        if winner.key !== candidate { candidate.wipe() }
                        candidate = winner.key
                        try emit(.badShardsExcluded, detail: "excluded keepers \(off); key from shards \(winner.subset)")
                        check = winner.check
                    }
                }
            }
            switch check {
            case .opens, .nothingToCheck:
                if case .nothingToCheck = check {
                    logger.notice("the store holds no encrypted row: the rebuilt key cannot be checked (nothing to check)")
                    if collection.count > t, let off = try? shardsOff(candidate), !off.isEmpty {
                        logger.warning("keepers \(off) hold shards that disagree with the rebuilt key")
                    }
                }
                try emit(.keyVerified, detail: check.detail)
                return candidate
            case .doesNotOpen(let reason):
                candidate.wipe()
                try RecoveryMachine.require(candidate.isAllZero, "7.2", "A7.2.1", "candidate not wiped")
                candidateFailed = true
                try emit(.keyVerificationFailed, detail: reason)
                logger.warning("the key rebuilt from shards \(subset) does not open the store (\(reason)); collecting more shards")
            }
        }
        return nil
    }

    /// The share ids the current candidate was rebuilt from.
    var usedIDs: [Int] = []

    enum Verification {
        case opens(String), nothingToCheck, doesNotOpen(String)
        var opens: Bool { if case .opens = self { return true } else { return false } }
        var isVerifiable: Bool { if case .nothingToCheck = self { return false } else { return true } }
        var detail: String {
            switch self {
            case .opens(let rows): "opens \(rows)"
            case .nothingToCheck: "nothing to check (empty store)"
            case .doesNotOpen(let why): why
            }
        }
    }

    func verify(_ candidate: SecretBytes) -> Verification {
        guard !candidate.isAllZero else { return .doesNotOpen("the rebuilt key is zero") }
        do {
            switch try store.check(candidate: candidate) {
            case .opens(let rows): return .opens(rows.joined(separator: ", "))
            case .nothingToCheck: return .nothingToCheck
            case .doesNotOpen(let row): return .doesNotOpen("tag does not verify on \(row)")
            }
        } catch {
            return .doesNotOpen("store cannot be read: \(error)")
        }
    }

    /// Step 7.1: Lagrange at 0 over the subset (marks it tried).
    func reconstruct(_ subset: [Int]) throws -> SecretBytes {
        collection.markTried(subset)
        do {
            let key = try shamir.recover(threshold: config.threshold, shards: collection.shards(for: subset))
            candidates.append(key)
            usedIDs = subset
            try RecoveryMachine.require(key.count == ShamirConstants.scalarByteCount, "7.1", "A7.1.1", "candidate is \(key.count) bytes")
            return key
        } catch let error as ShamirError {
            throw RecoveryViolation(step: "7.1", assertion: "A7.1", detail: "shards validated at 4.4 were refused by Shamir: \(error)")
        }
    }

    /// Held shard ids whose value differs from what `key`'s deterministic split gives.
    func shardsOff(_ key: SecretBytes) throws -> [Int] {
        let expected = try shamir.split(rootKey: key, threshold: config.threshold, shares: config.shares).shards
        return collection.ids.filter { id in
            guard let held = collection.shards[id] else { return false }
            return !held.constantTimeEquals(expected[id - 1].value)
        }
    }

    // MARK: waiting, standing down, giving up

    enum WaitResult { case elapsed, holderSet, deadline }

    /// Step 5: d = min(cap, initial · 2^(round−1)) minus up to 25% jitter;
    /// wakes early for a restore or the deadline.
    func backoff() async -> WaitResult {
        let delay = backoffDelay(round: round)
        let until = ContinuousClock.now + delay
        while ContinuousClock.now < until {
            if holder.isSet { return .holderSet }
            if deadlinePassed { return .deadline }
            try? await Task.sleep(for: min(.milliseconds(20), until - ContinuousClock.now))
        }
        return holder.isSet ? .holderSet : (deadlinePassed ? .deadline : .elapsed)
    }

    public func backoffDelay(round: Int) -> Duration {
        let exponent = min(max(round - 1, 0), 30)
        let base = min(config.maximumBackoff, config.initialBackoff * (1 << exponent))
        let jitter = Double.random(in: 0...0.25)
        return base * (1 - jitter)
    }

    func standDown() throws -> RecoveryOutcome {
        try emit(.standDown, detail: "an operator restore installed the root key")
        wipeEverything()
        return outcome(.stoodDown, state: nil)
    }

    func deadlineExceeded() throws -> RecoveryOutcome {
        let reason = "not operational within the deadline (\(collection.count) of \(config.threshold) shards held after \(round) rounds)"
        try emit(.deadlineExceeded, detail: reason)
        wipeEverything()
        return outcome(.failed(reason), state: nil)
    }

    var remainingDeadline: Duration? {
        guard let deadline = config.deadline else { return nil }
        return deadline - .milliseconds(Int64(trace.elapsedMilliseconds))
    }

    var deadlinePassed: Bool { (remainingDeadline.map { $0 <= .zero }) ?? false }

    func wipeEverything() {
        _ = collection.wipeAll()
        for c in candidates { c.wipe() }
    }

    // MARK: recording

    func emit(_ event: RecoveryEvent, keeper: Int? = nil, detail: String? = nil) throws(RecoveryViolation) {
        let transition = try machine.apply(event)
        let entry = trace.record(transition, keeper: keeper, detail: detail)
        RecoveryMetrics.record(event, keeper: keeper, milliseconds: entry.milliseconds)
        var line = "step \(transition.step) \(event.rawValue)"
        if let keeper { line += " keeper=\(keeper)" }
        if let detail { line += " (\(detail))" }
        logger.info("\(line)")
    }

    func outcome(_ ending: RecoveryOutcome.Ending, state: NexusState?) -> RecoveryOutcome {
        RecoveryOutcome(ending: ending, state: state, shardsUsed: ending == .operational ? usedIDs : [],
                        keepersRejected: keepersRejected, elapsedMilliseconds: trace.elapsedMilliseconds)
    }

    /// Test hook: whether every shard buffer ever collected reads back as zeros.
    public var allShardBuffersZero: Bool { collection.everHeld.allSatisfy(\.isAllZero) && candidates.allSatisfy(\.isAllZero) }
}

/// Metrics of the recovery (swift-metrics; no-ops unless a backend is bootstrapped,
/// e.g. the Prometheus endpoint of `nexus --metrics-address`).
enum RecoveryMetrics {
    static func record(_ event: RecoveryEvent, keeper: Int?, milliseconds: Double) {
        switch event {
        case .roundStarted:
            Counter(label: "spike_recovery_rounds_total").increment()
        case .shardReceived, .noShard, .shardRejected, .keeperUnreachable:
            Counter(label: "spike_recovery_keeper_answers_total",
                    dimensions: [("keeper", keeper.map(String.init) ?? "?"), ("outcome", event.rawValue)]).increment()
        case .keyVerificationFailed, .badShardsExcluded, .standDown, .deadlineExceeded:
            Counter(label: "spike_recovery_events_total", dimensions: [("event", event.rawValue)]).increment()
        case .operational:
            Gauge(label: "spike_recovery_time_to_operational_seconds").record(milliseconds / 1000)
        default:
            break
        }
    }
}
