import BackingStore
import BackingStoreWriter
import Foundation
import KeeperService
import Logging
import MutualTLS
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import SecureMemory
import Shamir
import SpikeWire
import Testing
import TestSupport
@testable import Recovery
@testable import SpiffeIdentity

/// Log lines of a test run, for the secrets scan.
final class LogCapture: Sendable {
    private let lines = NIOLockedValueBox<[String]>([])
    func append(_ line: String) { lines.withLockedValue { $0.append(line) } }
    var all: [String] { lines.withLockedValue { $0 } }
}

struct CapturingHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        capture.append("\(level) \(message)")
    }
}

/// A recovery world on loopback: a dev CA, N real keepers over mTLS, a real
/// SQLite file written as Go SPIKE writes it, and a Nexus identity.
final class World: @unchecked Sendable {
    let pki: DevelopmentPKI
    let rootKey = randomRootKey()
    var keepers: [KeeperServer] = []
    var extraServers: [MTLSHTTPServer] = []
    var extraChannels: [Channel] = []
    var urls: [String] = []
    let dir: URL
    let logs = LogCapture()
    let threshold: Int
    let group = MultiThreadedEventLoopGroup.singleton
    let nexusSource: StaticX509Source

    var databasePath: String { dir.appendingPathComponent("data/spike.db").path }
    var logger: Logger { Logger(label: "test") { _ in CapturingHandler(capture: self.logs) } }
    lazy var shards: [SecretBytes] = try! NativeShamir().split(rootKey: rootKey, threshold: threshold, shares: urls.count).shards.map(\.value)

    /// `policies: false` with `secrets: 0` leaves the store empty (schema, no row).
    init(threshold: Int = 2, secrets: Int = 5, policies: Bool = true) throws {
        self.threshold = threshold
        pki = try DevelopmentPKI()
        nexusSource = StaticX509Source(try pki.snapshot(path: "/spike/nexus"))
        dir = try temporaryDirectory("recovery")
        let writer = try SpikeDatabaseWriter(path: dir.appendingPathComponent("data/spike.db").path, rootKey: rootKey)
        let t = Date(timeIntervalSince1970: 1_764_000_000)
        for i in 0..<secrets {
            try writer.putSecret(path: "app/\(i)", versions: [.init(version: 1, data: ["password": "pw-\(i)"], created: t),
                                                               .init(version: 2, data: ["password": "pw-\(i)-2"], created: t)],
                                 created: t, updated: t)
        }
        if policies {
            try writer.putPolicy(name: "readers", spiffeIDPattern: "^spiffe://spike\\.ist/app$", pathPattern: "^app/.*$", permissions: ["read", "list"], created: 1, updated: 1)
        }
    }

    /// A healthy keeper (empty until `fill`), presenting keeper/<its position> unless told otherwise.
    func addKeeper(presenting path: String? = nil) async throws {
        let k = KeeperServer(source: StaticX509Source(try pki.snapshot(path: path ?? "/spike/keeper/\(urls.count + 1)")), trustRoots: TrustRoots(),
                             logger: logger, group: group)
        try await k.start(host: "127.0.0.1", port: 0)
        keepers.append(k)
        urls.append("https://127.0.0.1:\(k.port)")
    }

    /// A keeper address where nothing listens.
    func addDownKeeper() async throws {
        let ch = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = ch.localAddress!.port!
        try await ch.close()
        urls.append("https://127.0.0.1:\(port)")
    }

    /// A keeper that accepts TCP and never answers.
    func addSilentKeeper() async throws {
        let ch = try await ServerBootstrap(group: group).childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0).get()
        extraChannels.append(ch)
        urls.append("https://127.0.0.1:\(ch.localAddress!.port!)")
    }

    /// A keeper (valid keeper SVID) that answers with `body` after `delay`.
    func addScriptedKeeper(status: HTTPResponseStatus = .ok, delay: Duration = .zero, gate: Gate? = nil, body: @escaping @Sendable () -> [UInt8]) async throws {
        try await addScriptedKeeper(status: status, delay: delay, gate: gate, secretBody: { SecretBytes(copying: body()) })
    }

    /// A keeper whose answer is `secretBody()` (a shard body, in wiping storage).
    func addScriptedKeeper(status: HTTPResponseStatus = .ok, delay: Duration = .zero, gate: Gate? = nil,
                           secretBody body: @escaping @Sendable () -> SecretBytes) async throws {
        let server = MTLSHTTPServer(group: group)
        try await server.start(host: "127.0.0.1", port: 0, source: StaticX509Source(try pki.snapshot(path: "/spike/keeper/\(urls.count + 1)")),
                               policy: .roles([.nexus], trustRoots: TrustRoots()), tooLargeResponse: .init(status: .payloadTooLarge, body: []),
                               onRefused: { _ in }, responder: .async { _ in
                                   if delay > .zero { try? await Task.sleep(for: delay) }
                                   if let gate { await gate.wait(limit: .seconds(20)) }
                                   return HTTPResponseData(status: status, body: body())
                               })
        extraServers.append(server)
        urls.append("https://127.0.0.1:\(server.port)")
    }

    /// Gives keeper at position `index` (0-based) its shard, as Bootstrap would.
    func fill(_ index: Int, with value: SecretBytes? = nil) {
        keepers.first { "https://127.0.0.1:\($0.port)" == urls[index] }!.slot.store(value ?? shards[index])
    }

    func recovery(deadline: Duration? = nil, maxBackoff: Duration = .milliseconds(200), initialBackoff: Duration = .milliseconds(50),
                  requestDeadline: Duration = .seconds(30), urls: [String]? = nil, shares: Int? = nil,
                  lateAnswerWait: Duration = .milliseconds(100), database: String? = nil, allowEmptyStore: Bool = false,
                  keeperIDs: [SpiffeID]? = nil, observer: (@Sendable (TraceEntry) -> Void)? = nil) throws -> NexusRecovery {
        let list = urls ?? self.urls
        let path = database ?? databasePath
        let config = RecoveryConfiguration(keepers: list, threshold: threshold, shares: shares ?? list.count, databasePath: path,
                                           maximumBackoff: maxBackoff, initialBackoff: initialBackoff, requestDeadline: requestDeadline,
                                           deadline: deadline, updateInterval: .seconds(3600), allowEmptyStore: allowEmptyStore,
                                           lateAnswerWait: lateAnswerWait, keeperIDs: keeperIDs)
        return NexusRecovery(config: config, client: MTLSKeeperClient(group: group, source: nexusSource, trustRoots: TrustRoots(),
                                                                      pins: config.pinnedKeeperIDs),
                             store: SQLiteStore(path: path), holder: RootKeyHolder(), trace: try TraceRecorder(observer: observer), logger: logger)
    }

    func distributor(for r: NexusRecovery) -> ShardDistributor {
        ShardDistributor(config: r.config, client: r.client, holder: r.holder, logger: logger)
    }

    func stop() async {
        for k in keepers { await k.stop() }
        for s in extraServers { await s.stop() }
        for c in extraChannels { try? await c.close() }
    }

    /// No log line carries a shard or the root key, in any form SecretScan knows.
    func expectNoSecretsInLogs(sourceLocation: SourceLocation = #_sourceLocation) {
        SecretScan(shards + [rootKey]).check(logs.all.joined(separator: "\n"), "the recovery's log", sourceLocation: sourceLocation)
    }
}

func events(_ r: NexusRecovery) -> [String] { r.trace.recorded.map(\.event) }

/// Holds a scripted keeper's answer until an event of the recovery opens it.
final class Gate: Sendable {
    private let isOpen = NIOLockedValueBox(false)
    func open() { isOpen.withLockedValue { $0 = true } }
    func wait(limit: Duration) async {
        let until = ContinuousClock.now + limit
        while !isOpen.withLockedValue({ $0 }) && ContinuousClock.now < until { try? await Task.sleep(for: .milliseconds(5)) }
    }
}

@Suite(.serialized, .timeLimit(.minutes(5))) struct RecoveryEndToEndTests {
    @Test func happyPathThreeKeepersThresholdTwo() async throws {
        let w = try World(secrets: 7)
        for _ in 0..<3 { try await w.addKeeper() }
        for i in 0..<3 { w.fill(i) }
        let r = try w.recovery()
        let d = w.distributor(for: r)
        let distribution = Task { await d.run() }
        let outcome = await r.run(distributor: d)
        distribution.cancel()
        await distribution.value
        #expect(outcome.ending == .operational)
        #expect(d.isArmed, "step 11 did not hand distribution over")
        let spec = try SpecTable.load()
        #expect(r.trace.recorded.map { SpecTable.Step(step: $0.step, event: $0.event) } == spec.expected_traces["happy_path_3_keepers_threshold_2"]!)
        #expect(outcome.state?.secretCount == 7 && outcome.state?.versionCount == 14 && outcome.state?.policyCount == 1)
        #expect(outcome.summaryJSON.hasPrefix("{\"operational\":true,\"secrets\":7,\"secret_versions\":14,\"policies\":1,\"shards_used\":["))
        #expect(outcome.shardsUsed.count == 2 && outcome.keepersRejected.isEmpty)
        #expect(r.holder.copy()!.constantTimeEquals(w.rootKey))
        #expect(r.allShardBuffersZero)
        w.expectNoSecretsInLogs()
        await w.stop()
    }

    @Test func downSilentAndGarbageKeepersDoNotStallRecovery() async throws {
        let w = try World()
        try await w.addDownKeeper()        // 1
        try await w.addSilentKeeper()      // 2
        try await w.addScriptedKeeper { Array("{\"shard\":[\(Array(repeating: "7", count: 33).joined(separator: ","))],\"Err\":\"\"}".utf8) }  // 3
        // Keepers 4 and 5 hold the real shards and answer only once the down and
        // garbage keepers have had their say (the silent one never answers).
        let good = try NativeShamir().split(rootKey: w.rootKey, threshold: 2, shares: 5).shards.map { $0.value.withUnsafeBytes { Array($0) } }
        let gate = Gate()
        for i in [3, 4] {
            let bytes = good[i]
            try await w.addScriptedKeeper(gate: gate, secretBody: { KeeperWire.shardBody(SecretBytes(copying: bytes)) })
        }
        let seen = LogCapture()
        let observer: @Sendable (TraceEntry) -> Void = { entry in
            if entry.event == "keeper_unreachable" || entry.event == "shard_rejected" { seen.append(entry.event) }
            if Set(seen.all).count == 2 { gate.open() }
        }
        let started = ContinuousClock.now
        let r = try w.recovery(requestDeadline: .seconds(30), observer: observer)
        let outcome = await r.run(distributor: nil)
        let elapsed = ContinuousClock.now - started
        #expect(outcome.ending == .operational)
        // Not a speed check: far below the silent keeper's 30 s deadline (and see keeper 2 below).
        #expect(elapsed < .seconds(20), "took \(elapsed): waited for the silent keeper")
        #expect(Set(outcome.shardsUsed) == [4, 5])
        let byKeeper = Dictionary(r.trace.recorded.compactMap { e in e.keeper.map { ($0, e.event) } }, uniquingKeysWith: { a, _ in a })
        #expect(byKeeper[1] == "keeper_unreachable")
        #expect(byKeeper[3] == "shard_rejected")
        // Still silent at step 10: given the late-answer wait, then cancelled.
        #expect(byKeeper[2] == "late_answer")
        #expect(r.trace.recorded.first { $0.keeper == 2 }?.detail == "cancelled")
        #expect(SpecTable.validate(r.trace.recorded.map { ($0.step, $0.event) }, in: try SpecTable.load()) == nil)
        w.expectNoSecretsInLogs()
        await w.stop()
    }

    @Test func emptyKeepersFilledLaterAndBackoffRespectsTheCap() async throws {
        let w = try World()
        for _ in 0..<3 { try await w.addKeeper() }
        // The keepers are filled after the ninth exhausted round, counted from the
        // trace rather than guessed from a clock, so a slow machine cannot skip rounds.
        let roundsBeforeFill = 9
        let exhausted = Counter()
        let observer: @Sendable (TraceEntry) -> Void = { entry in
            guard entry.event == "round_exhausted" else { return }
            exhausted.bump()
            if exhausted.value == roundsBeforeFill {
                w.fill(0)
                w.fill(2)
            }
        }
        let r = try w.recovery(maxBackoff: .milliseconds(150), initialBackoff: .milliseconds(40), observer: observer)
        let outcome = await r.run(distributor: nil)
        #expect(outcome.ending == .operational)
        let entries = r.trace.recorded
        #expect(entries.filter { $0.event == "round_exhausted" }.count == roundsBeforeFill)
        #expect(entries.filter { $0.event == "round_started" }.count == roundsBeforeFill + 1)
        // Each wait (round exhausted → next round) stays within the cap plus generous
        // scheduling slack. Uncapped, the ninth wait would be at least
        // 40 ms × 2⁸ × 0.75 ≈ 7.7 s; the exact cap is checked without a clock below.
        for (a, b) in zip(entries, entries.dropFirst()) where a.event == "round_exhausted" {
            #expect(b.event == "round_started")
            #expect(b.milliseconds - a.milliseconds < 150 + 3000)
        }
        for round in 1...40 { #expect(r.backoffDelay(round: round) <= .milliseconds(150)) }
        #expect(SpecTable.validate(r.trace.recorded.map { ($0.step, $0.event) }, in: try SpecTable.load()) == nil)
        await w.stop()
    }

    @Test func staleShardIsFoundWithASpareKeeper() async throws {
        let w = try World()
        try await w.addKeeper()
        try await w.addKeeper()
        // Keeper 3 answers with its real shard, but only after the key from shards {1, 2} has failed.
        let third = try NativeShamir().split(rootKey: w.rootKey, threshold: 2, shares: 3).shards[2].value.withUnsafeBytes { Array($0) }
        let gate = Gate()
        try await w.addScriptedKeeper(gate: gate, secretBody: { KeeperWire.shardBody(SecretBytes(copying: third)) })
        // Keeper 1 holds a shard of another root key.
        let stale = try NativeShamir().split(rootKey: randomRootKey(), threshold: 2, shares: 3).shards[0].value
        w.fill(0, with: stale)
        w.fill(1)
        let r = try w.recovery(requestDeadline: .seconds(30), observer: { if $0.event == "key_verification_failed" { gate.open() } })
        let outcome = await r.run(distributor: nil)
        #expect(outcome.ending == .operational)
        #expect(outcome.keepersRejected == [1])
        #expect(r.holder.copy()!.constantTimeEquals(w.rootKey))
        let spec = try SpecTable.load()
        #expect(r.trace.recorded.map { SpecTable.Step(step: $0.step, event: $0.event) } == spec.expected_traces["stale_keeper_found_with_spare_shard"]!)
        #expect(w.logs.all.contains { $0.contains("keeper 1 holds a shard that is not part of the root key's split") })
        await w.stop()
    }

    @Test func withoutASpareAWrongKeyIsNeverInstalled() async throws {
        let w = try World()
        try await w.addKeeper()
        try await w.addKeeper()
        w.fill(0, with: try NativeShamir().split(rootKey: randomRootKey(), threshold: 2, shares: 2).shards[0].value)
        w.fill(1)
        // The deadline ends a recovery that can never succeed. It must leave time for
        // both shards to arrive on a loaded machine (800 ms is too short under a full
        // parallel run), so the verification failure is always reached first.
        let r = try w.recovery(deadline: .seconds(10))
        let outcome = await r.run(distributor: nil)
        guard case .failed(let reason) = outcome.ending else { Issue.record("expected failure"); return }
        #expect(reason.contains("deadline"))
        #expect(!r.holder.isSet)
        #expect(events(r).contains("key_verification_failed"))
        #expect(w.logs.all.contains { $0.contains("does not open the store") })
        #expect(outcome.summaryJSON.hasPrefix("{\"operational\":false,\"reason\":\"not operational within the deadline"))
        #expect(SpecTable.validate(r.trace.recorded.map { ($0.step, $0.event) }, in: try SpecTable.load()) == nil)
        await w.stop()
    }

    @Test func reorderedKeeperListNeverInstallsAWrongKey() async throws {
        let w = try World()
        for _ in 0..<3 { try await w.addKeeper() }
        for i in 0..<3 { w.fill(i) }
        let swapped = [w.urls[1], w.urls[0], w.urls[2]]
        let r = try w.recovery(deadline: .seconds(10), urls: swapped)  // time for shards to arrive, as above
        let outcome = await r.run(distributor: nil)
        // Every pair now mixes positions: no subset opens the store.
        if case .failed = outcome.ending {} else { Issue.record("a reordered list must not recover: \(outcome.ending)") }
        #expect(events(r).contains("key_verification_failed"))
        #expect(!r.holder.isSet)
        await w.stop()
    }

    @Test func operatorRestoreMakesALoopingRecoveryStandDown() async throws {
        let w = try World()
        for _ in 0..<3 { try await w.addKeeper() }
        let r = try w.recovery(maxBackoff: Duration.milliseconds(100))
        let restore = Task {
            try await Task.sleep(for: .milliseconds(300))
            #expect(r.holder.setIfEmpty(w.rootKey, by: "operator restore"))
        }
        let outcome = await r.run(distributor: nil)
        try await restore.value
        #expect(outcome.ending == .stoodDown)
        #expect(events(r).last == "stand_down")
        #expect(r.holder.installer == "operator restore")
        #expect(SpecTable.validate(r.trace.recorded.map { ($0.step, $0.event) }, in: try SpecTable.load()) == nil)
        await w.stop()
    }

    @Test func distributionRefillsARestartedKeeper() async throws {
        let w = try World()
        for _ in 0..<3 { try await w.addKeeper() }
        w.fill(0)
        w.fill(1)  // keeper 3 restarted: empty
        let r = try w.recovery()
        let d = w.distributor(for: r)
        let outcome = await r.run(distributor: nil)
        #expect(outcome.ending == .operational)
        #expect(await d.distributeOnce() == [1, 2, 3])
        for (i, keeper) in w.keepers.enumerated() {
            keeper.slot.withShard { held in #expect(held?.constantTimeEquals(w.shards[i]) == true) }
        }
        w.expectNoSecretsInLogs()
        await w.stop()
    }

    /// SPIKE_NEXUS_KEEPER_IDS: a keeper presenting keeper/2's SVID at position 1
    /// fails the handshake, counts as unreachable (both IDs in the reason) and
    /// is never handed shard 1. Without the pin (Go's rule) it is handed shard
    /// 1, which with its own shard 2 is the threshold: the root key.
    @Test func pinnedKeeperIDsKeepShardsFromAMisplacedKeeper() async throws {
        let w = try World()
        try await w.addKeeper(presenting: "/spike/keeper/2")
        try await w.addKeeper()
        try await w.addKeeper()
        w.fill(1)
        w.fill(2)
        let ids = try (1...3).map { try SpiffeID(parsing: "spiffe://spike.ist/spike/keeper/\($0)") }
        let r = try w.recovery(keeperIDs: ids)
        let outcome = await r.run(distributor: nil)
        #expect(outcome.ending == .operational)
        #expect(outcome.shardsUsed == [2, 3])
        #expect(!r.trace.recorded.contains { $0.event == "shard_received" && $0.keeper == 1 })
        #expect(await w.distributor(for: r).distributeOnce() == [2, 3])
        #expect(!w.keepers[0].slot.isHeld)
        // The refusal names both IDs (the recovery may have cancelled keeper 1's read
        // once 2 and 3 answered; the distribution's contribute always reaches it).
        let both = "peer spiffe://spike.ist/spike/keeper/2 refused: not spiffe://spike.ist/spike/keeper/1"
        #expect(w.logs.all.contains { $0.contains("keeper 1 did not take its shard") && $0.contains(both) }, "\(w.logs.all)")

        // The same world under Go's rule: the misplaced keeper gets shard 1.
        var unpinned = r.config
        unpinned.keeperIDs = nil
        let goRule = ShardDistributor(config: unpinned, client: MTLSKeeperClient(group: w.group, source: w.nexusSource, trustRoots: TrustRoots()),
                                      holder: r.holder, logger: w.logger)
        #expect(await goRule.distributeOnce() == [1, 2, 3])
        w.keepers[0].slot.withShard { held in #expect(held?.constantTimeEquals(w.shards[0]) == true) }
        w.expectNoSecretsInLogs()
        await w.stop()
    }

    @Test func badConfigurationIsRejectedAtStepThree() async throws {
        let w = try World()
        try await w.addKeeper()
        try await w.addKeeper()
        let r = try w.recovery(shares: 3)
        let outcome = await r.run(distributor: nil)
        #expect(outcome.ending == .rejected("SPIKE_NEXUS_KEEPER_PEERS: lists 2 keepers but SPIKE_NEXUS_SHAMIR_SHARES is 3 (one keeper per share)"))
        #expect(events(r) == ["nexus_started", "recovery_begun", "configuration_rejected"])
        func peersProblem(_ problem: String) -> SettingError { SettingError(setting: RecoveryConfiguration.peersVariable, problem: problem) }
        #expect(throws: peersProblem("entry 2 is not an https://host[:port][/prefix] URL")) { try RecoveryConfiguration.parsePeers("https://a:1,http://b:2") }
        #expect(throws: peersProblem("entry 2 is empty")) { try RecoveryConfiguration.parsePeers("https://a:1,,https://b:2") }
        #expect(throws: peersProblem("entry 2 repeats entry 1 (the same keeper)")) { try RecoveryConfiguration.parsePeers("https://a:1, https://a:1") }
        #expect(throws: peersProblem("entry 2 repeats entry 1 (the same keeper)")) { try RecoveryConfiguration.parsePeers("https://h,https://H:443/") }
        #expect(throws: peersProblem("entry 3 repeats entry 1 (the same keeper)")) {
            try RecoveryConfiguration.parsePeers("HTTPS://keeper.example:8443/p,https://other:8443/p,https://Keeper.Example:8443/p")
        }
        #expect(throws: peersProblem("entry 1 has port 99999; a port is 1...65535")) { try RecoveryConfiguration.parsePeers("https://a:99999") }
        #expect(throws: peersProblem("entry 1 has port 0; a port is 1...65535")) { try RecoveryConfiguration.parsePeers("https://a:0") }
        #expect(try RecoveryConfiguration.parsePeers("https://h:8443,https://h:8444,https://h:8443/other").count == 3)
        // Stored with a lowercase scheme: the client requires "https".
        #expect(try RecoveryConfiguration.parsePeers("HTTPS://K:8443/") == ["https://K:8443"])
        #expect(throws: peersProblem("entry 1 is not an https://host[:port][/prefix] URL")) { try RecoveryConfiguration.parsePeers("https://u:p@h:1") }
        #expect(try RecoveryConfiguration.parsePeers(" https://a:8443 ,https://b:8543/prefix/") == ["https://a:8443", "https://b:8543/prefix"])
        let ids = try RecoveryConfiguration.parseKeeperIDs(" spiffe://spike.ist/spike/keeper/1 ,spiffe://spike.ist/spike/keeper/2", trustRoots: TrustRoots())
        #expect(ids.map(\.description) == ["spiffe://spike.ist/spike/keeper/1", "spiffe://spike.ist/spike/keeper/2"])
        func idsProblem(_ problem: String) -> SettingError { SettingError(setting: RecoveryConfiguration.keeperIDsVariable, problem: problem) }
        #expect(throws: idsProblem("entry 2 repeats spiffe://spike.ist/spike/keeper/1")) {
            try RecoveryConfiguration.parseKeeperIDs("spiffe://spike.ist/spike/keeper/1,spiffe://spike.ist/spike/keeper/1", trustRoots: TrustRoots())
        }
        let mismatched = RecoveryConfiguration(keepers: ["https://a:1", "https://b:2"], threshold: 2, shares: 2, databasePath: "/x", keeperIDs: [ids[0]])
        #expect(throws: idsProblem("lists 1 IDs but SPIKE_NEXUS_KEEPER_PEERS lists 2 keepers (one ID per keeper, in the same order)")) { try mismatched.validate() }
        await w.stop()
    }
}
