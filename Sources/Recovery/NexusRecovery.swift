import BackingStore
import CoreMetrics
import Foundation
import Logging
import NIOConcurrencyHelpers
import SecretJSON
import SecureMemory
import Shamir
import ShamirCore
import SpiffeIdentity
import SpikeWire

/// How a recovery run ended, with the counts the `--json` summary prints.
public struct RecoveryOutcome: Sendable {
    public enum Ending: Sendable, Equatable {
        case operational
        case stoodDown
        case failed(String)
        /// Step 3 refused a setting (exit 64): nothing was sent to any keeper.
        case rejected(String)
        /// `stop()` before step 12 (a shutdown signal): nothing installed, every buffer wiped.
        case stopped
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
                + "\"shards_used\":[\(shardsUsed.map { String($0) }.joined(separator: ","))],"
                + "\"keepers_rejected\":[\(keepersRejected.map { String($0) }.joined(separator: ","))],"
                + "\"elapsed_ms\":\(Int(elapsedMilliseconds.rounded()))}"
        case .stoodDown:
            return "{\"operational\":false,\"reason\":\"stood down: the root key was installed by another writer\"}"
        case .stopped:
            return "{\"operational\":false,\"reason\":\"stopped before step 12\"}"
        case .failed(let reason), .rejected(let reason):
            return "{\"operational\":false,\"reason\":" + JSONText.quoted(reason) + "}"
        }
    }
}

/// What an operator's `/v1/operator/restore` call gets back.
public enum RestoreReply: Sendable, Equatable {
    /// 200 `{"collected":C,"remaining":R,"restored":B}`.
    case progress(collected: Int, remaining: Int, restored: Bool)
    /// 400: the shard was refused; nothing changed.
    case badShard(String)
    /// 500: the restored key was refused (does not open the store, or the
    /// store failed to load under it); the reason is logged at error level.
    case failed(String)
}

/// The one recovery machine of the sequence diagram (Spec/recovery.md,
/// Spec/recovery-machine.json). Every path that installs a root key goes
/// through it: shards come from the keepers, from the operator restore
/// route (`submitRestore`) or from Pilot files (`run(restoreFiles:)`), and
/// exactly one place reconstructs, verifies, installs, loads, wipes and
/// starts distribution.
///
/// Invariant: all state below is owned by the task running `run`; every
/// input (a keeper's answer, a restore shard, a timer, the deadline) is an
/// element of one inbox processed in order (M1). Every move goes through
/// `RecoveryMachine.apply` and is recorded in the trace; each step's
/// assertions are checked on every run, in release builds too.
public final class NexusRecovery: @unchecked Sendable {
    let config: RecoveryConfiguration
    let client: any KeeperClient
    let store: any StoreAccess
    public let holder: RootKeyHolder
    public let trace: TraceRecorder
    let logger: Logger
    let shamir = NativeShamir()

    enum Source: Equatable {
        case keepers, restore
        var word: String { self == .keepers ? "keepers" : "operator restore" }
    }

    enum Input: @unchecked Sendable {
        case answer(round: Int, id: Int, KeeperAnswer)
        case restore(id: Int, shard: SecretBytes, reply: CheckedContinuation<RestoreReply, Never>)
        case backoffElapsed(generation: Int)
        case storeRetryDue(generation: Int)
        case holderWritten
        case lateAnswersDue
        case deadline
        case stop
    }

    /// What the store says about a candidate (7.2). `unreadable` is not a verdict on the key.
    enum Verdict {
        case opens(String), doesNotOpen(String), empty, missing, unreadable(String)
        var word: String {
            switch self {
            case .opens: "opens"
            case .doesNotOpen: "does not open"
            case .empty: "store empty"
            case .missing: "store missing"
            case .unreadable: "store unreadable"
            }
        }
    }

    /// How an installed key was proven (A11.3).
    enum Proof { case openedStore, confirmedByAllShards }

    enum Decision { case done(RecoveryOutcome), waitingForStore, keepCollecting }

    // The inbox (M1).
    private let inbox: AsyncStream<Input>
    private let post: AsyncStream<Input>.Continuation
    private var iterator: AsyncStream<Input>.Iterator

    // Published to other tasks (routes, metrics) under `lock`.
    /// `closed`: the final restore answer once the run has ended (inputs are
    /// posted under this lock, so none arrives after `close` drained the inbox).
    private let published = NIOLockedValueBox<(closed: RestoreReply?, operational: Bool)>((nil, false))

    // Owned by the run task.
    var machine = RecoveryMachine()
    var keeperShards: ShardCollection
    var restoreShards: ShardCollection
    var keepersRejected: [Int] = []
    var round = 0
    var shardsHeldAfterDrop: [Int] = []
    /// Per source: a candidate failed 7.2 (more than T shards may then be held).
    var candidateFailed: Set<Source> = []
    /// Per source: the store cannot check a key, so all shares are needed.
    var awaitingAllShards: Set<Source> = []
    /// Per source: all shares are held and do not lie on one polynomial.
    var undecidable: Set<Source> = []
    var outstanding: Set<Int> = []
    var fetches: [Int: Task<Void, Never>] = [:]
    var deferred: [Input] = []
    var pendingCandidate: (source: Source, key: SecretBytes, subset: [Int])?
    var storeAttempts = 0
    var generation = 0
    var wroteHolder = false
    var lastRestoreFailure: String?
    var fileMode = false
    var deadlineTask: Task<Void, Never>?
    /// Every candidate key buffer made, for the step-10 check.
    var candidates: [SecretBytes] = []
    /// The share ids the installed key was rebuilt from.
    var usedIDs: [Int] = []
    /// Late answers and inbox leftovers wiped after the run; false if one did not read back as zero.
    var drainedAllZero = true

    public init(config: RecoveryConfiguration, client: any KeeperClient, store: any StoreAccess, holder: RootKeyHolder,
                trace: TraceRecorder, logger: Logger) {
        self.config = config
        self.client = client
        self.store = store
        self.holder = holder
        self.trace = trace
        self.logger = logger
        keeperShards = ShardCollection(threshold: max(config.threshold, 1))
        restoreShards = ShardCollection(threshold: max(config.threshold, 1))
        let (stream, continuation) = AsyncStream.makeStream(of: Input.self)
        inbox = stream
        post = continuation
        iterator = stream.makeAsyncIterator()
    }

    // MARK: the outside

    /// Step 12 has been reached (routes other than restore serve only then).
    public var isOperational: Bool { published.withLockedValue { $0.operational } }

    /// One operator shard (the restore route). The machine takes ownership of
    /// `shard` and answers once the shard has been processed.
    public func submitRestore(id: Int, shard: SecretBytes) async -> RestoreReply {
        await withCheckedContinuation { (reply: CheckedContinuation<RestoreReply, Never>) in
            let closed: RestoreReply? = published.withLockedValue { state in
                if let closedReply = state.closed { return closedReply }
                // The inbox ends early only when the run's task was cancelled.
                if case .terminated = post.yield(.restore(id: id, shard: shard, reply: reply)) { return .failed("this Nexus is shutting down") }
                return nil
            }
            if let closed {
                shard.wipe()
                reply.resume(returning: closed)
            }
        }
    }

    /// All shards of the installed key (for `/v1/operator/recover`), only once operational.
    public func installedKeyShards() -> [Shard]? {
        guard isOperational else { return nil }
        return try? holder.shards(threshold: config.threshold, shares: config.shares)
    }

    /// Ends a run that has not reached step 12 (the process is shutting down):
    /// no further transition, every buffer wiped, nothing written, the
    /// outcome `.stopped`. After step 12, or once the run ended, it does nothing.
    public func stop() {
        published.withLockedValue { state in
            if state.closed == nil { post.yield(.stop) }
        }
    }

    /// Runs steps 1–12 (distribution is handed to `distributor` at step 11).
    /// With `restoreFiles`, the keepers are not asked: the files are the only source.
    public func run(distributor: ShardDistributor?, restoreFiles: [Shard] = []) async -> RecoveryOutcome {
        var result: RecoveryOutcome
        do {
            result = try await steps(distributor: distributor, restoreFiles: restoreFiles)
        } catch let violation as RecoveryViolation {
            logger.critical("\(violation)")
            if wroteHolder { holder.wipe() }
            wipeEverything()
            result = outcome(.failed(violation.description), state: nil)
        } catch {
            if wroteHolder { holder.wipe() }
            wipeEverything()
            result = outcome(.failed("\(error)"), state: nil)
        }
        await close(result.ending)
        return result
    }

    // MARK: steps 1-3, then the inbox

    func steps(distributor: ShardDistributor?, restoreFiles: [Shard]) async throws -> RecoveryOutcome {
        // 1. Nexus starts without a root key.
        try RecoveryMachine.require(!holder.isSet, "1", "A1.1", "the root-key holder is not empty at start")
        try RecoveryMachine.require(keeperShards.count + restoreShards.count == 0 && candidates.isEmpty, "1", "A1.2", "a shard or candidate exists at start")
        trace.recordInitial()
        // 2.
        try RecoveryMachine.require(!holder.isSet, "2", "A2.1", "the root-key holder is not empty")
        try RecoveryMachine.require(keeperShards.count == 0 && candidates.isEmpty, "2", "A2.2", "the collection is not empty")
        try emit(.recoveryBegun)
        // 3. Configuration, the store rule included, before any request.
        do {
            try config.validate()
            try config.validateStorePresence()
            try validate(restoreFiles: restoreFiles)
        } catch {
            try RecoveryMachine.require(fetches.isEmpty, "3", "A3.6", "a request was sent before the configuration was checked")
            try emit(.configurationRejected, detail: error.description)
            return outcome(.rejected(error.description), state: nil)
        }
        let t = config.threshold, k = config.keepers.count
        try RecoveryMachine.require(1 <= t && t <= config.shares && config.shares <= ShamirConstants.maximumShares, "3", "A3.1", "threshold \(t), shares \(config.shares)")
        try RecoveryMachine.require(k == config.shares, "3", "A3.2", "\(k) keepers for \(config.shares) shares")
        try RecoveryMachine.require(Set(config.keepers).count == k && config.keepers.allSatisfy { $0.hasPrefix("https://") }, "3", "A3.3", "keeper URLs are not distinct https URLs")
        try RecoveryMachine.require(config.allowEmptyStore || SpikeDatabase.exists(path: config.databasePath), "3", "A3.7", "no database and no --allow-empty-store")
        try emit(.keepersConfigured, detail: "\(k) keepers, threshold \(t)" + (restoreFiles.isEmpty ? "" : "; shards from \(restoreFiles.count) restore files"))
        if let deadline = config.deadline {
            let post = self.post, remaining = deadline - .milliseconds(Int64(trace.elapsedMilliseconds))
            deadlineTask = Task {
                try? await Task.sleep(for: remaining)
                post.yield(.deadline)
            }
        }
        self.distributor = distributor

        if !restoreFiles.isEmpty {
            // `--restore FILE...`: the files are the only source.
            fileMode = true
            for shard in restoreFiles {
                let refused = try addRestoreShard(id: Int(shard.id), value: shard.value.copy())
                try RecoveryMachine.require(refused == nil, "R", "AR.1", "a restore file checked at step 3 was refused")
            }
            if let done = try await advance() { return done }
            while machine.state == .waitingForStore {
                guard let input = await iterator.next() else {
                    if Task.isCancelled { return try stopped() }
                    break
                }
                if let done = try await handle(input) { return done }
            }
            let why = lastRestoreFailure ?? "the restored key was not accepted"
            try emit(.restoreFailed, detail: why)
            wipeEverything()
            try RecoveryMachine.require(allShardBuffersZero && !wroteHolder, "7.2", "A4.D1", "buffers not wiped, or the holder was written")
            try RecoveryMachine.require(!why.isEmpty, "7.2", "A4.D2", "no reason")
            return outcome(.failed("--restore: \(why)"), state: nil)
        }

        if let done = try startRound() { return done }
        // With the requests out, the store is opened while the handshakes run
        // (StoreReader); the check at 7.2 still decides.
        store.prepare()
        while let input = await iterator.next() {
            if let done = try await handle(input) { return done }
        }
        // The inbox ends only when this task is cancelled (its group shutting down): a stop.
        if Task.isCancelled { return try stopped() }
        throw RecoveryViolation(step: "-", assertion: "M1", detail: "the inbox closed while recovering")
    }

    var distributor: ShardDistributor?

    /// `--restore` files are settings of this run: checked at step 3 like the rest.
    func validate(restoreFiles: [Shard]) throws(SettingError) {
        guard !restoreFiles.isEmpty else { return }
        if let bad = restoreFiles.first(where: { !(1...config.shares).contains(Int($0.id)) || !NativeShamir.isCanonicalNonZero($0.value) }) {
            throw SettingError(setting: "--restore", problem: "shard \(bad.id) is not a non-zero value below n with an id in 1...\(config.shares)")
        }
        let ids = Set(restoreFiles.map(\.id))
        guard ids.count == restoreFiles.count, ids.count >= config.threshold else {
            throw SettingError(setting: "--restore", problem: "need \(config.threshold) shard files with distinct ids, got \(ids.count)")
        }
    }

    /// One input, in the state the machine is in now (M1).
    func handle(_ input: Input) async throws -> RecoveryOutcome? {
        switch input {
        case .answer(_, let id, let answer):
            guard machine.state == .collecting else {
                deferred.append(input)  // processed once back in collecting
                return nil
            }
            outstanding.remove(id)
            fetches[id] = nil
            try receive(answer, from: id)
            return try await advance()

        case .restore(let id, let shard, let reply):
            if fileMode {
                // `--restore FILE...` owns the restore collection: route shards are not mixed in.
                shard.wipe()
                reply.resume(returning: .failed("this Nexus is restoring from files"))
                return nil
            }
            switch machine.state {
            case .configured, .collecting, .waitingForRetry, .waitingForStore:
                // A failure this call did not cause is not its answer.
                lastRestoreFailure = nil
                do {
                    if case .badShard(let why) = try addRestoreShard(id: id, value: shard) {
                        reply.resume(returning: .badShard(why))
                        return nil
                    }
                    let done = machine.state == .waitingForStore ? nil : try await advance()
                    reply.resume(returning: restoreAnswer(after: done))
                    return done
                } catch {
                    reply.resume(returning: .failed("recovery stopped: \(error)"))
                    throw error
                }
            default:
                deferred.append(input)
                return nil
            }

        case .backoffElapsed(let g):
            guard machine.state == .waitingForRetry, g == generation else { return nil }
            return try startRound()

        case .holderWritten:
            guard machine.state == .waitingForRetry || machine.state == .waitingForStore, holder.isSet, !wroteHolder else { return nil }
            return try standDown(detail: "the root key was installed by another writer during the wait")

        case .storeRetryDue(let g):
            guard machine.state == .waitingForStore, g == generation, let pending = pendingCandidate else { return nil }
            if holder.isSet && !wroteHolder { return try standDown(detail: "the root key was installed by another writer during the wait") }
            pendingCandidate = nil
            try emit(.storeRetry, detail: "attempt \(storeAttempts + 1) on \(config.databasePath)")
            switch try await judge(pending.source, subset: pending.subset, candidate: pending.key) {
            case .done(let o): return o
            case .waitingForStore: return nil
            case .keepCollecting:
                while machine.state == .collecting, !deferred.isEmpty {
                    if let done = try await handle(deferred.removeFirst()) { return done }
                }
                return try await advance()
            }

        case .deadline:
            switch machine.state {
            case .collecting, .waitingForRetry, .waitingForStore: return try deadlineExceeded()
            default: return nil
            }

        case .lateAnswersDue:
            return nil

        case .stop:
            // Before installation only: install runs to step 12 without reading this inbox loop.
            return try stopped()
        }
    }

    // MARK: step 4: rounds

    /// Steps 4 and 4.0: ask, concurrently, every keeper whose shard is not held.
    func startRound() throws -> RecoveryOutcome? {
        let first = machine.state == .configured
        round += 1
        try emit(.roundStarted, detail: "round \(round)")
        if first {
            try RecoveryMachine.require(round == 1, "4", "A4.R1", "first round is numbered \(round)")
            try RecoveryMachine.require(keeperShards.count == 0, "4", "A4.R2", "shards held before the first round")
        } else {
            try RecoveryMachine.require(round >= 2, "4", "A4.R3", "round number did not advance")
            try RecoveryMachine.require(keeperShards.ids == shardsHeldAfterDrop, "4", "A4.R4", "held shards changed during the wait")
        }
        // 4.0: another writer may have installed the key.
        if holder.isSet && !wroteHolder { return try standDown(detail: "the root key was installed by another writer") }
        if deadlinePassed { return try deadlineExceeded() }
        let missing = (1...config.keepers.count).filter { !keeperShards.holds($0) }
        let config = self.config, client = self.client, post = self.post, round = self.round
        for id in missing {
            outstanding.insert(id)
            fetches[id] = Task {
                let answer = await client.fetchShard(url: config.shardURL(keeper: id - 1), deadline: config.requestDeadline)
                post.yield(.answer(round: round, id: id, answer))
            }
        }
        if missing.isEmpty { return try exhaustRound() }
        return nil
    }

    /// Step 4.4: classify one answer.
    func receive(_ answer: KeeperAnswer, from id: Int) throws {
        let before = keeperShards.count
        switch answer {
        case .shard(let value):
            guard NativeShamir.isCanonicalNonZero(value) else {
                value.wipe()
                try emit(.shardRejected, keeper: id, detail: "shard value is not below the group order")
                logger.warning("keeper \(id): shard rejected (value is not below the group order)")
                try RecoveryMachine.require(keeperShards.count == before, "4.4", "A4.4.5", "collection changed on a rejected shard")
                return
            }
            try RecoveryMachine.require(value.count == ShamirConstants.scalarByteCount && !value.isAllZero, "4.4", "A4.4.1", "shard is not 32 non-zero bytes")
            try RecoveryMachine.require(!keeperShards.holds(id), "4.4", "A4.4.2", "share id \(id) already held")
            keeperShards.append(id: id, value: value)
            let spares = candidateFailed.contains(.keepers) || awaitingAllShards.contains(.keepers)
            try RecoveryMachine.require(keeperShards.count <= config.keepers.count && (spares || keeperShards.count <= config.threshold),
                                        "4.4", "A4.4.3", "collection holds \(keeperShards.count) shards")
            try emit(.shardReceived, keeper: id, detail: "\(keeperShards.count)/\(config.threshold)")
        case .noShard:
            try emit(.noShard, keeper: id)
            try RecoveryMachine.require(keeperShards.count == before, "4.4", "A4.4.4", "collection changed on no shard")
        case .rejected(let reason):
            try emit(.shardRejected, keeper: id, detail: reason)
            logger.warning("keeper \(id): answer rejected (\(reason))")
            try RecoveryMachine.require(keeperShards.count == before, "4.4", "A4.4.5", "collection changed on a rejected answer")
        case .unreachable(let reason), .wrongIdentity(let reason):
            try emit(.keeperUnreachable, keeper: id, detail: reason)
            logger.notice("keeper \(id): unreachable (\(reason))")
            try RecoveryMachine.require(keeperShards.count == before && !keeperShards.holds(id), "4.4", "A4.4.7", "collection changed on an unreachable keeper")
        }
    }

    /// Step 5: the round is over without a key. Shards of failed subsets are
    /// dropped so their keepers are heard again (a keeper may have been fixed).
    func exhaustRound() throws -> RecoveryOutcome? {
        try RecoveryMachine.require(outstanding.isEmpty, "5", "A5.1", "\(outstanding.count) requests outstanding")
        // Waiting for every share (an empty store) drops them all: each keeper is heard again.
        let waitedForAll = awaitingAllShards.contains(.keepers) || undecidable.contains(.keepers)
        if waitedForAll { for id in keeperShards.ids { keeperShards.markTried([id]) } }
        let (dropped, zero) = keeperShards.dropTried()
        try RecoveryMachine.require(zero && dropped.allSatisfy { !keeperShards.holds($0) }, "5", "A5.3", "a dropped shard was not wiped")
        candidateFailed.remove(.keepers)
        awaitingAllShards.remove(.keepers)
        undecidable.remove(.keepers)
        shardsHeldAfterDrop = keeperShards.ids
        var detail = "round \(round): \(keeperShards.count) of \(config.threshold) shards held"
        if !dropped.isEmpty { detail += "; keepers \(idList(dropped)) will be asked again (their shards were in subsets that failed)" }
        try emit(.roundExhausted, detail: detail)
        let delay = backoffDelay(round: round)
        try RecoveryMachine.require(delay <= config.maximumBackoff && delay >= .zero, "5", "A5.2", "wait \(delay) above the cap")
        scheduleWait(delay) { .backoffElapsed(generation: $0) }
        return nil
    }

    /// Posts `done(generation)` after `delay`, or `.holderWritten` as soon as
    /// another writer installs a key (4.0: the wait ends early). A newer wait
    /// makes this one's input stale (its generation no longer matches).
    func scheduleWait(_ delay: Duration, then done: @escaping @Sendable (Int) -> Input) {
        generation += 1
        let g = generation, holder = self.holder, post = self.post
        Task {
            let until = ContinuousClock.now + delay
            while ContinuousClock.now < until {
                if holder.isSet { post.yield(.holderWritten); return }
                try? await Task.sleep(for: min(.milliseconds(20), until - ContinuousClock.now))
            }
            post.yield(done(g))
        }
    }

    // MARK: operator shards

    /// A restore shard: validated (AR.1), first value per id wins (AR.2).
    func addRestoreShard(id: Int, value: SecretBytes) throws -> RestoreReply? {
        guard (1...config.shares).contains(id) else {
            value.wipe()
            return .badShard("shard id \(id) is outside 1...\(config.shares) (\(RecoveryConfiguration.sharesVariable))")
        }
        guard value.count == ShamirConstants.scalarByteCount, NativeShamir.isCanonicalNonZero(value) else {
            value.wipe()
            return .badShard("value is not a non-zero scalar below n")
        }
        try RecoveryMachine.require(value.count == ShamirConstants.scalarByteCount && !value.isAllZero, "R", "AR.1", "restore shard is not 32 non-zero bytes")
        if restoreShards.holds(id) {
            let before = restoreShards.ids
            value.wipe()
            try RecoveryMachine.require(restoreShards.ids == before, "R", "AR.2", "a repeated restore id changed the collection")
            return nil
        }
        restoreShards.append(id: id, value: value)
        try emit(.restoreShardReceived, detail: "shard \(id): \(restoreShards.count) of \(config.threshold)")
        return nil
    }

    /// M7: the run ends where it stands, before step 8; nothing was installed.
    func stopped() throws -> RecoveryOutcome {
        wipeEverything()
        try RecoveryMachine.require(!wroteHolder && allShardBuffersZero, "-", "A4.D1", "buffers not wiped, or the holder was written, at stop")
        logger.notice("recovery stopped in state \(machine.state) before step 12: nothing installed, every shard wiped")
        return outcome(.stopped, state: nil)
    }

    /// What a restore call gets once the run has ended this way.
    func finalReply(_ ending: RecoveryOutcome.Ending) -> RestoreReply {
        switch ending {
        case .operational: .progress(collected: config.threshold, remaining: 0, restored: true)
        case .stoodDown: .failed("stood down: the root key was installed by another writer")
        case .stopped: .failed("this Nexus is shutting down")
        case .failed(let why), .rejected(let why): .failed(why)
        }
    }

    /// The restore route's answer after its shard was processed.
    func restoreAnswer(after done: RecoveryOutcome?) -> RestoreReply {
        if let failure = lastRestoreFailure {
            lastRestoreFailure = nil
            return .failed(failure)
        }
        if let done { return finalReply(done.ending) }
        let c = restoreShards.count
        // An empty store needs every share of the restore, not just T.
        let needed = awaitingAllShards.contains(.restore) ? config.shares : config.threshold
        return .progress(collected: c, remaining: max(needed - c, 0), restored: false)
    }

    // MARK: steps 6-7

    /// Steps 6–12 while a source holds an untried T-subset; then step 5 when
    /// the round has nothing outstanding.
    func advance() async throws -> RecoveryOutcome? {
        while true {
            let state = machine.state
            guard state == .collecting || state == .waitingForRetry || state == .configured else { return nil }
            let source: Source
            let subset: [Int]
            if state == .collecting, let s = nextSubset(.keepers) {
                source = .keepers
                subset = s
                try emit(.thresholdMet, detail: "shards \(idList(s))")
            } else if let s = nextSubset(.restore) {
                source = .restore
                subset = s
                try emit(.restoreThresholdMet, detail: "restore shards \(idList(s))")
            } else {
                break
            }
            let collection = self[keyPath: Self.shards(of: source)]
            let t = config.threshold
            try RecoveryMachine.require(collection.count >= t && Set(subset).count == t, "6", "A6.1", "fewer than \(t) distinct shards held")
            let spares = candidateFailed.contains(source) || awaitingAllShards.contains(source)
            // Keepers are asked only for missing shards, so exactly T before any failure; an operator may send more.
            try RecoveryMachine.require(source == .restore || spares || collection.count == t, "6", "A6.2", "\(collection.count) shards held before any failure")
            let candidate = try reconstruct(source, subset)
            try emit(.keyReconstructed, detail: (source == .keepers ? "from shards " : "from restore shards ") + idList(subset))
            switch try await judge(source, subset: subset, candidate: candidate) {
            case .done(let o): return o
            case .waitingForStore: return nil
            case .keepCollecting: continue
            }
        }
        if machine.state == .collecting, outstanding.isEmpty, !fileMode { return try exhaustRound() }
        return nil
    }

    func nextSubset(_ source: Source) -> [Int]? {
        guard !undecidable.contains(source) else { return nil }
        let collection = self[keyPath: Self.shards(of: source)]
        if awaitingAllShards.contains(source) && collection.count < config.shares { return nil }
        return collection.firstUntriedSubset()
    }

    /// Steps 7.3 and 7.2 for one candidate: the store decides, spare shards
    /// find a good subset, an empty store needs every share.
    func judge(_ source: Source, subset: [Int], candidate: SecretBytes) async throws -> Decision {
        let t = config.threshold
        var key = candidate, used = subset
        var verdict = verify(key)
        var collection: ShardCollection { self[keyPath: Self.shards(of: source)] }

        // 7.3: with spare shards, search the untried subsets for a key the store accepts.
        if collection.count > t, case .doesNotOpen = verdict {
            var checked = 0
            for other in collection.untriedSubsets(limit: ShardCollection.spareSearchLimit) {
                checked += 1
                let next = try reconstruct(source, other)
                let result = verify(next)
                try emit(.subsetTried, detail: "shards \(idList(other)): \(result.word)")
                if case .opens = result {
                    key.wipe()
                    key = next
                    used = other
                    verdict = result
                    break
                }
                next.wipe()
                switch result {
                case .unreadable:
                    // Not a verdict on that subset: it comes back once the store reads.
                    self[keyPath: Self.shards(of: source)].unmarkTried(other)
                    verdict = result
                case .empty, .missing:
                    // The store changed under the search: stop, leave the subset untried.
                    self[keyPath: Self.shards(of: source)].unmarkTried(other)
                default:
                    continue
                }
                break
            }
            try RecoveryMachine.require(checked <= ShardCollection.spareSearchLimit, "7.3", "A7.3.4", "\(checked) subsets checked in one step")
        }
        if collection.count > t, case .opens = verdict {
            let off = try shardsOff(collection, key)
            if !off.isEmpty {
                self[keyPath: Self.shards(of: source)].exclude(off)
                if source == .keepers { reject(off) }
                for id in off where source == .keepers {
                    logger.warning("keeper \(id) holds a shard that is not part of the root key's split (stale or corrupted); excluded")
                }
                try RecoveryMachine.require(off.allSatisfy { !collection.holds($0) }, "7.3", "A7.3.1", "an off shard is still held")
                let remainingOff = try shardsOff(collection, key)
                try RecoveryMachine.require(collection.count >= t && remainingOff.isEmpty, "7.3", "A7.3.2", "the remaining shards are not on one polynomial")
                try RecoveryMachine.require(candidate === key || candidate.isAllZero, "7.3", "A7.3.3", "the replaced candidate was not wiped")
                try emit(.badShardsExcluded, detail: "excluded \(source == .keepers ? "keepers" : "restore shards") \(idList(off)); key from shards \(idList(used))")
            }
        }

        switch verdict {
        case .opens(let rows):
            try emit(.keyVerified, detail: "opens \(rows)")
            return try await install(source, key: key, subset: used, proof: .openedStore)

        case .empty, .missing:
            let what = verdict.word
            let agreeing = collection.count == config.shares ? try shardsOff(collection, key).isEmpty : false
            if agreeing {
                try RecoveryMachine.require(collection.count == config.shares, "7.2", "A7.2.8", "confirmed with \(collection.count) of \(config.shares) shards")
                try emit(.keyConfirmed, detail: "\(what): not checked against the store; all \(config.shares) shards lie on one polynomial")
                logger.warning("the store has no encrypted row (\(what)): the root key was accepted because all \(config.shares) shards agree, not because it opened the store")
                return try await install(source, key: key, subset: used, proof: .confirmedByAllShards)
            }
            key.wipe()
            let why: String
            if collection.count == config.shares {
                undecidable.insert(source)
                why = "\(what): the \(config.shares) shards do not lie on one polynomial; no key is accepted"
                if source == .restore {
                    // Operator shards that cannot be confirmed are discarded whole, like a wrong restore key.
                    _ = restoreShards.discardAll()
                    undecidable.remove(.restore)
                    awaitingAllShards.remove(.restore)
                    lastRestoreFailure = why + "; the restore shards were discarded"
                    logger.error("operator restore refused: \(why); shards discarded")
                }
            } else {
                awaitingAllShards.insert(source)
                why = "\(what): the key cannot be checked; it is accepted only when all \(config.shares) shards agree (\(collection.count) held)"
            }
            try RecoveryMachine.require(key.isAllZero && !wroteHolder, "7.2", "A7.2.9", "unverifiable candidate not wiped, or the holder was written")
            try emit(.keyUnverifiable, detail: why)
            logger.warning("\(why)")
            if source == .restore, fileMode, lastRestoreFailure == nil { lastRestoreFailure = why }
            return .keepCollecting

        case .doesNotOpen(let why):
            key.wipe()
            try RecoveryMachine.require(key.isAllZero, "7.2", "A7.2.1", "candidate not wiped")
            try RecoveryMachine.require(collection.tried.contains(used), "7.2", "A7.2.2", "the failed subset is not marked tried")
            try RecoveryMachine.require(!wroteHolder, "7.2", "A7.2.3", "the holder was written")
            candidateFailed.insert(source)
            try emit(.keyVerificationFailed, detail: why)
            if source == .restore {
                // An operator's shards that make a wrong key are discarded whole: resend them.
                let zero = restoreShards.discardAll()
                candidateFailed.remove(.restore)
                awaitingAllShards.remove(.restore)
                undecidable.remove(.restore)
                try RecoveryMachine.require(zero, "7.2", "A7.2.1", "a discarded restore shard is not zero")
                lastRestoreFailure = "the restored key does not open the store (\(why)); the restore shards were discarded"
                logger.error("operator restore refused: the key rebuilt from restore shards \(idList(used)) does not open the store (\(why)); shards discarded")
            } else {
                logger.warning("the key rebuilt from shards \(idList(used)) does not open the store (\(why)); collecting more shards")
            }
            return .keepCollecting

        case .unreadable(let why):
            try RecoveryMachine.require(!key.isAllZero && !wroteHolder, "7.2", "A7.2.7", "the kept candidate was wiped, or the holder was written")
            pendingCandidate = (source, key, used)
            storeAttempts += 1
            let delay = backoffDelay(round: storeAttempts)
            let detail = "\(config.databasePath) (\(RecoveryConfiguration.dataDirectoryVariable)) cannot be read: \(why); the key is kept and checked again in \(Int(delay / .milliseconds(1))) ms"
            try emit(.storeUnreadable, detail: detail)
            logger.warning("\(detail)")
            scheduleWait(delay) { .storeRetryDue(generation: $0) }
            return .waitingForStore
        }
    }

    func verify(_ candidate: SecretBytes) -> Verdict {
        guard !candidate.isAllZero else { return .doesNotOpen("the rebuilt key is zero") }
        do {
            switch try store.check(candidate: candidate) {
            case .opens(let rows): return .opens(rows.joined(separator: ", "))
            case .empty: return .empty
            // Present at step 3 and gone now: that is a store that cannot be read, not a fresh installation.
            case .missing: return config.allowEmptyStore ? .missing : .unreadable("the database file is gone")
            case .doesNotOpen(let row): return .doesNotOpen("tag does not verify on \(row)")
            }
        } catch {
            return .unreadable(error.description)
        }
    }

    /// Step 7.1: Lagrange at 0 over the subset (marks it tried).
    func reconstruct(_ source: Source, _ subset: [Int]) throws -> SecretBytes {
        let path = Self.shards(of: source)
        let shards = self[keyPath: path].shards(for: subset)
        self[keyPath: path].markTried(subset)
        do {
            let key = try shamir.recover(threshold: config.threshold, shards: shards)
            candidates.append(key)
            try RecoveryMachine.require(shards.count == config.threshold && Set(subset).count == config.threshold, "7.1", "A7.1.1", "\(shards.count) shards used")
            try RecoveryMachine.require(key.count == ShamirConstants.scalarByteCount && NativeShamir.isCanonicalNonZero(key), "7.1", "A7.1.2",
                                        "candidate is not 32 bytes, non-zero, below n")
            try RecoveryMachine.require(self[keyPath: path].tried.contains(subset), "7.1", "A7.1.3", "subset not marked tried")
            return key
        } catch let error as ShamirError {
            throw RecoveryViolation(step: "7.1", assertion: "A7.1", detail: "shards validated on arrival were refused by Shamir: \(error)")
        }
    }

    /// The collection a source fills.
    static func shards(of source: Source) -> ReferenceWritableKeyPath<NexusRecovery, ShardCollection> {
        source == .keepers ? \.keeperShards : \.restoreShards
    }

    /// Names keepers whose shard was found bad (`keepers_rejected`), each once.
    func reject(_ ids: [Int]) {
        for id in ids where !keepersRejected.contains(id) { keepersRejected.append(id) }
    }

    /// Held shard ids whose value differs from what `key`'s deterministic split gives.
    func shardsOff(_ collection: ShardCollection, _ key: SecretBytes) throws -> [Int] {
        let expected = try shamir.split(rootKey: key, threshold: config.threshold, shares: config.shares).shards
        defer { for s in expected { s.value.wipe() } }
        return collection.ids.filter { id in
            guard let held = collection.shards[id] else { return false }
            return !held.constantTimeEquals(expected[id - 1].value)
        }
    }

    // MARK: steps 8-12

    func install(_ source: Source, key: SecretBytes, subset: [Int], proof: Proof) async throws -> Decision {
        // 7.2: every held keeper shard is checked against the key, needed or not.
        for id in try shardsOff(keeperShards, key) {
            keeperShards.exclude([id])
            reject([id])
            try emit(.shardDisagrees, keeper: id, detail: "its shard is not part of the installed key's split")
            logger.warning("keeper \(id) holds a shard that disagrees with the root key (stale or corrupted); distribution will replace it")
        }
        try RecoveryMachine.require(outstanding == Set(fetches.keys), "7.2", "A7.2.5", "an outstanding request is not tracked for step 10")
        let stillOff = try shardsOff(keeperShards, key)
        try RecoveryMachine.require(stillOff.isEmpty, "7.2", "A7.2.6", "a held shard that disagrees is not named")

        // 8. Install (compare-and-set: another writer may have won).
        guard holder.setIfEmpty(key, by: source == .keepers ? "recovery" : (fileMode ? "restore files" : "operator restore")) else {
            return .done(try standDown(detail: "the root key was installed by another writer first"))
        }
        wroteHolder = true
        try RecoveryMachine.require(holder.copy().map { $0.constantTimeEquals(key) } ?? false, "8", "A8.1", "the holder does not hold the candidate")
        try RecoveryMachine.require(holder.isSet, "8", "A8.2", "the holder is empty after SetRootKey")
        try emit(.rootKeySet, detail: "from \(fileMode ? "restore files" : source.word)")

        // 9. Load and decrypt the store; a failure takes the key back out.
        let state: NexusState
        do {
            state = try store.load(rootKey: key)
        } catch {
            holder.wipe()
            wipeEverything()
            try RecoveryMachine.require(!holder.isSet && allShardBuffersZero, "9", "A9.3", "holder, candidate or shards not wiped after a failed load")
            try emit(.stateInitializationFailed, detail: error.description)
            logger.error("state initialization failed: \(error); the root key was removed from memory")
            if source == .restore { lastRestoreFailure = "state initialization failed: \(error)" }
            return .done(outcome(.failed("state initialization: \(error)"), state: nil))
        }
        try RecoveryMachine.require(proof == .confirmedByAllShards || state.databaseExists, "9", "A9.1", "a key verified against the store loaded no database")
        try emit(.stateInitialized, detail: "\(state.secretCount) secrets, \(state.versionCount) versions, \(state.policyCount) policies")

        // 10. Hear out the answers still outstanding, then zero every shard and key copy.
        try await drainLateAnswers(key)
        try RecoveryMachine.require(outstanding.isEmpty, "10", "A10.3", "\(outstanding.count) answers not accounted for")
        usedIDs = subset
        let shardsZero = keeperShards.wipeAll() && restoreShards.wipeAll()
        for c in candidates { c.wipe() }
        try RecoveryMachine.require(shardsZero, "10", "A10.1", "a collected shard buffer is not zero")
        try RecoveryMachine.require(candidates.allSatisfy(\.isAllZero), "10", "A10.2", "a temporary key copy is not zero")
        try emit(.shardsWiped, detail: "\(keeperShards.everHeld.count + restoreShards.everHeld.count) shard buffers, \(candidates.count) key copies")

        // 11. Periodic distribution, only for a proven key.
        try RecoveryMachine.require(holder.isSet, "11", "A11.1", "the holder is empty")
        try RecoveryMachine.require(allShardBuffersZero, "11", "A11.2", "a recovery buffer is not zero")
        try RecoveryMachine.require(proof == .openedStore || proof == .confirmedByAllShards, "11", "A11.3", "distribution for an unproven key")
        // Before arming: the first round's reset of a replaced shard must come after.
        for id in 1...config.keepers.count {
            Gauge(label: "spike_keeper_shard_disagreed", dimensions: [("keeper", String(id))]).record(keepersRejected.contains(id) ? 1 : 0)
        }
        distributor?.arm()
        try emit(.distributionStarted, detail: distributor == nil ? "left to the caller" : "every \(config.updateInterval)")

        // 12.
        try RecoveryMachine.require(holder.isSet, "12", "A12.1", "the holder is empty")
        try RecoveryMachine.require(outstanding.isEmpty, "12", "A12.2", "a recovery request is outstanding")
        published.withLockedValue { $0.operational = true }
        try RecoveryMachine.require(isOperational, "12", "A12.3", "routes still see the state as not ready")
        try emit(.operational)
        return .done(outcome(.operational, state: state))
    }

    /// Step 10: answers outstanding at verification get `lateAnswerWait` to
    /// arrive; the rest are cancelled. Each is checked against `key` and wiped.
    func drainLateAnswers(_ key: SecretBytes) async throws {
        let expected = try shamir.split(rootKey: key, threshold: config.threshold, shares: config.shares).shards
        defer { for s in expected { s.value.wipe() } }
        // Answers that came in while the store was being waited for.
        let early = deferred
        deferred.removeAll()
        for input in early {
            if case .answer(_, let id, let answer) = input, outstanding.contains(id) {
                try lateAnswer(id, answer, expected: expected, cancelled: false)
            } else {
                deferred.append(input)
            }
        }
        guard !outstanding.isEmpty else { return }
        let wait = min(config.lateAnswerWait, config.requestDeadline)
        let post = self.post
        // Once to cancel the stragglers, once more to stop waiting for a client that ignores cancellation.
        let timer = Task {
            try? await Task.sleep(for: wait)
            post.yield(.lateAnswersDue)
            try? await Task.sleep(for: .seconds(1))
            post.yield(.lateAnswersDue)
        }
        defer { timer.cancel() }
        var cancelled = false
        while !outstanding.isEmpty {
            guard let input = await iterator.next() else { break }
            switch input {
            case .answer(_, let id, let answer):
                try lateAnswer(id, answer, expected: expected, cancelled: cancelled)
            case .lateAnswersDue where !cancelled:
                cancelled = true
                for task in fetches.values { task.cancel() }
            case .lateAnswersDue:
                // Cancelled and still not back: recorded now, wiped by `close` when the task ends.
                for id in outstanding.sorted() {
                    try emit(.lateAnswer, keeper: id, detail: "cancelled")
                    outstanding.remove(id)
                }
            case .restore:
                deferred.append(input)
            default:
                break
            }
        }
        try RecoveryMachine.require(drainedAllZero, "10", "A10.3", "a late shard is not zero")
    }

    func lateAnswer(_ id: Int, _ answer: KeeperAnswer, expected: [Shard], cancelled: Bool) throws {
        outstanding.remove(id)
        fetches[id] = nil
        let detail: String
        switch answer {
        case .shard(let value):
            if value.count == ShamirConstants.scalarByteCount, value.constantTimeEquals(expected[id - 1].value) {
                detail = "shard agrees with the installed key"
            } else {
                detail = "shard disagrees with the installed key"
                reject([id])
                logger.warning("keeper \(id) answered late with a shard that disagrees with the root key (stale or corrupted); distribution will replace it")
            }
            value.wipe()
            if !value.isAllZero { drainedAllZero = false }
        case .noShard: detail = "no shard"
        case .rejected(let why): detail = "rejected (\(why))"
        case .unreachable(let why), .wrongIdentity(let why): detail = cancelled ? "cancelled" : "unreachable (\(why))"
        }
        try emit(.lateAnswer, keeper: id, detail: detail)
    }

    // MARK: waiting, standing down, giving up

    public func backoffDelay(round: Int) -> Duration {
        let exponent = min(max(round - 1, 0), 30)
        let base = min(config.maximumBackoff, config.initialBackoff * (1 << exponent))
        let jitter = Double.random(in: 0...0.25)
        return base * (1 - jitter)
    }

    func standDown(detail: String) throws -> RecoveryOutcome {
        try emit(.standDown, detail: detail)
        wipeEverything()
        try RecoveryMachine.require(allShardBuffersZero, "4.0", "A4.0.1", "a shard or candidate is not wiped at stand-down")
        try RecoveryMachine.require(!wroteHolder, "4.0", "A4.0.2", "recovery wrote the holder")
        return outcome(.stoodDown, state: nil)
    }

    func deadlineExceeded() throws -> RecoveryOutcome {
        var reason = "not operational within the deadline (\(keeperShards.count) of \(config.threshold) shards held after \(round) rounds)"
        if machine.state == .waitingForStore { reason = "not operational within the deadline: the store at \(config.databasePath) could not be read" }
        try emit(.deadlineExceeded, detail: reason)
        wipeEverything()
        try RecoveryMachine.require(allShardBuffersZero && !wroteHolder, "4", "A4.D1", "buffers not wiped, or the holder was written")
        try RecoveryMachine.require(!reason.isEmpty, "4", "A4.D2", "no reason")
        return outcome(.failed(reason), state: nil)
    }

    var deadlinePassed: Bool {
        guard let deadline = config.deadline else { return false }
        return .milliseconds(Int64(trace.elapsedMilliseconds)) >= deadline
    }

    func wipeEverything() {
        for task in fetches.values { task.cancel() }
        _ = keeperShards.wipeAll()
        _ = restoreShards.wipeAll()
        pendingCandidate?.key.wipe()
        pendingCandidate = nil
        for c in candidates { c.wipe() }
    }

    /// After the final state: no more inputs; requests still running are
    /// cancelled and awaited, and whatever is left in the inbox is wiped and
    /// answered (restore calls get the final answer).
    func close(_ ending: RecoveryOutcome.Ending) async {
        deadlineTask?.cancel()
        for task in fetches.values { task.cancel() }
        for task in fetches.values { await task.value }
        fetches.removeAll()
        let final = finalReply(ending)
        published.withLockedValue { state in
            state.closed = final
            post.finish()
        }
        func settle(_ input: Input) {
            switch input {
            case .answer(_, _, .shard(let value)):
                value.wipe()
                if !value.isAllZero { drainedAllZero = false }
            case .restore(_, let shard, let reply):
                shard.wipe()
                reply.resume(returning: final)
            default: break
            }
        }
        for input in deferred { settle(input) }
        deferred.removeAll()
        while let input = await iterator.next() { settle(input) }
        outstanding.removeAll()
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

    /// Whether every shard buffer ever collected (and every late answer) reads back as zeros.
    public var allShardBuffersZero: Bool {
        keeperShards.everHeld.allSatisfy(\.isAllZero) && restoreShards.everHeld.allSatisfy(\.isAllZero)
            && candidates.allSatisfy(\.isAllZero) && (pendingCandidate?.key.isAllZero ?? true) && drainedAllZero
    }
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
        case .keyVerificationFailed, .badShardsExcluded, .standDown, .deadlineExceeded, .keyUnverifiable, .keyConfirmed,
             .storeUnreadable, .shardDisagrees, .restoreFailed, .stateInitializationFailed:
            Counter(label: "spike_recovery_events_total", dimensions: [("event", event.rawValue)]).increment()
        case .operational:
            Gauge(label: "spike_recovery_time_to_operational_seconds").record(milliseconds / 1000)
        default:
            break
        }
    }
}

/// Share ids as the trace and the log print them, "[2, 3]" (as an array's
/// description reads, without its dynamic casts: on first use each costs a
/// scan of the binary's conformance records, on the path of a recovery).
public func idList(_ ids: [Int]) -> String { "[" + ids.map { String($0) }.joined(separator: ", ") + "]" }
