import Foundation
import SecureMemory
import Shamir
import SpiffeIdentity
import SpikeWire
import Testing
import TestSupport
@testable import Recovery

/// The drill's verdicts, in process, with real keepers over mTLS and a real
/// SQLite file: stale shards of an older key, broken answers, spares.
@Suite(.serialized, .timeLimit(.minutes(2))) struct RecoveryDrillTests {
    func drill(_ w: World, allowEmptyStore: Bool = false, database: String? = nil) throws -> RecoveryDrill {
        let r = try w.recovery(requestDeadline: .seconds(5), database: database, allowEmptyStore: allowEmptyStore)
        return RecoveryDrill(config: r.config, client: r.client, store: SQLiteStore(path: r.config.databasePath, leavingNoFiles: true))
    }

    func statuses(_ report: DrillReport) -> [String] { report.statuses }

    @Test func sparesFindTheWrongShardAndTheDownKeeper() async throws {
        let w = try World(threshold: 3)
        for _ in 0..<4 { try await w.addKeeper() }
        try await w.addDownKeeper()
        for i in 0..<3 { w.fill(i) }
        w.fill(3, with: try NativeShamir().split(rootKey: randomRootKey(), threshold: 3, shares: 5).shards[3].value)
        let report = try await drill(w).run()
        #expect(statuses(report) == ["ok", "ok", "ok", "wrong_shard", "unreachable"], "\(report.json)")
        #expect(report.verified && report.recoverable && report.tolerates == 0 && report.threshold == 3 && report.store == .opens)
        #expect(!report.healthy)
        w.expectNoSecretsInLogs()
        SecretScan(w.shards + [w.rootKey]).check(report.json + report.table, "drill report")
        await w.stop()
    }

    /// Two keepers still hold an older root key's shards: they agree with each
    /// other, the store refuses that key, and keeper 1 alone cannot be checked.
    @Test func shardsOfAnOlderKeyAreNotMistakenForTheKey() async throws {
        let w = try World()
        for _ in 0..<3 { try await w.addKeeper() }
        let old = try NativeShamir().split(rootKey: randomRootKey(), threshold: 2, shares: 3).shards
        w.fill(0)
        w.fill(1, with: old[1].value)
        w.fill(2, with: old[2].value)
        let report = try await drill(w).run()
        #expect(statuses(report) == ["wrong_shard", "wrong_shard", "wrong_shard"], "\(report.json)")
        #expect(report.keepers[1].detail?.contains("does not open the store") == true, "\(report.json)")
        #expect(report.keepers[0].detail?.hasPrefix("unchecked:") == true, "\(report.json)")
        #expect(!report.verified && !report.recoverable && report.tolerates == 0 && report.store == .doesNotOpen)
        #expect(report.storeDetail?.contains("does not open") == true)
        await w.stop()
    }

    @Test func brokenAnswersAndEmptyKeepers() async throws {
        let w = try World()
        try await w.addKeeper()
        try await w.addScriptedKeeper { Array("{\"shard\":\"AAAA\"}".utf8) }
        try await w.addKeeper()
        w.fill(0)
        w.fill(2)
        let report = try await drill(w).run()
        #expect(statuses(report) == ["ok", "wrong_shard", "ok"], "\(report.json)")
        #expect(report.keepers[1].detail?.hasPrefix("answer refused: ") == true)
        #expect(report.verified && report.recoverable && report.tolerates == 0)

        let empty = try World()
        for _ in 0..<3 { try await empty.addKeeper() }
        empty.fill(0)
        let none = try await drill(empty).run()
        #expect(statuses(none) == ["wrong_shard", "no_shard", "no_shard"], "\(none.json)")
        #expect(!none.recoverable && !none.verified && none.store == .notAsked)
        await w.stop()
        await empty.stop()
    }

    /// A store that cannot be read says nothing about the key: not verified,
    /// not recoverable now (a recovery would wait for it), shards checked by agreement.
    @Test func anUnreadableStoreIsNotAVerdict() async throws {
        let w = try World()
        for _ in 0..<3 { try await w.addKeeper() }
        for i in 0..<3 { w.fill(i) }
        let garbage = w.dir.appendingPathComponent("garbage.db").path
        try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: garbage))
        let report = try await drill(w, database: garbage).run()
        #expect(statuses(report) == ["ok", "ok", "ok"], "\(report.json)")
        #expect(report.store == .unreadable && !report.verified && !report.recoverable && report.tolerates == 0)
        #expect(report.storeDetail?.contains("not an SQLite database") == true, "\(report.json)")
        await w.stop()
    }

    @Test func aMissingStoreIsABadSettingUnlessAllowed() async throws {
        let w = try World()
        let asked = Counter()
        for _ in 0..<3 { try await w.addScriptedKeeper { asked.bump(); return Array("{}".utf8) } }
        let missing = w.dir.appendingPathComponent("typo/spike.db").path
        await #expect(throws: SettingError.self) { try await drill(w, database: missing).run() }
        #expect(asked.value == 0)
        await w.stop()

        // Allowed missing (a fresh installation): asked, but the key is not verified.
        let fresh = try World()
        for _ in 0..<3 { try await fresh.addKeeper() }
        for i in 0..<3 { fresh.fill(i) }
        let report = try await drill(fresh, allowEmptyStore: true, database: missing).run()
        #expect(report.store == .missing && !report.verified && report.recoverable && report.tolerates == 0, "\(report.json)")
        #expect(statuses(report) == ["ok", "ok", "ok"])
        #expect(!FileManager.default.fileExists(atPath: missing))
        await fresh.stop()
    }

    /// Shards handed over directly (no network), for sizes where only the search matters.
    struct HandedShards: KeeperClient {
        let shards: [String: SecretBytes]
        func fetchShard(url: String, deadline: Duration) async -> KeeperAnswer {
            shards[url].map { .shard($0.copy()) } ?? .noShard
        }
        func contribute(url: String, shard: SecretBytes, deadline: Duration) async -> Result<Void, KeeperContributeError> {
            .failure(KeeperContributeError(description: "the drill never contributes"))
        }
    }

    /// 40 keepers, threshold 20, an empty store: once one key holds every
    /// shard, the search stops (C(40, 20) subsets are never walked).
    @Test func aKeyThatHoldsEveryShardEndsTheSearch() async throws {
        let w = try World(threshold: 20, secrets: 0, policies: false)
        let urls = (1...40).map { "https://127.0.0.1:\(10_000 + $0)" }
        let split = try NativeShamir().split(rootKey: w.rootKey, threshold: 20, shares: 40).shards
        var handed: [String: SecretBytes] = [:]
        for (i, url) in urls.enumerated() { handed[url + "/v1/store/shard"] = split[i].value }
        let config = RecoveryConfiguration(keepers: urls, threshold: 20, shares: 40, databasePath: w.databasePath)
        let report = try await RecoveryDrill(config: config, client: HandedShards(shards: handed), store: SQLiteStore(path: w.databasePath)).run()
        #expect(report.statuses == Array(repeating: "ok", count: 40) && report.store == .empty && report.recoverable && !report.verified)
        for s in split { s.value.wipe() }
    }

    @Test func subsetCounting() {
        #expect(!RecoveryDrill.subsetCount(3, 2, exceeds: 3) && RecoveryDrill.subsetCount(3, 2, exceeds: 2))
        // 18 choose 9 = 48,620; 19 choose 9 = 92,378.
        #expect(!RecoveryDrill.subsetCount(18, 9, exceeds: 65_536) && RecoveryDrill.subsetCount(19, 9, exceeds: 65_536))
        #expect(RecoveryDrill.subsetCount(1000, 500, exceeds: 65_536) && !RecoveryDrill.subsetCount(1000, 1000, exceeds: 1))
        #expect(!RecoveryDrill.subsetCount(2, 3, exceeds: 0))
    }

    @Test func reportFormats() {
        let report = DrillReport(recoverable: true, verified: false, tolerates: 0, threshold: 2, store: .empty, storeDetail: nil,
                                 keepers: [.init(id: 1, status: .ok, detail: nil), .init(id: 2, status: .unreachable, detail: "connect failed: \"refused\"")])
        #expect(report.json == "{\"recoverable\":true,\"verified\":false,\"tolerates\":0,\"threshold\":2,\"keepers\":[{\"id\":1,\"status\":\"ok\"},"
            + "{\"id\":2,\"status\":\"unreachable\",\"detail\":\"connect failed: \\\"refused\\\"\"}],\"store\":\"empty\"}")
        #expect(report.table.contains("2       unreachable     connect failed"))
        #expect(report.table.hasSuffix("threshold 2; store: empty; verified: no; recoverable, tolerates the loss of 0 more keepers"))
        #expect(!report.healthy)
    }
}
