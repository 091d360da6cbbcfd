import BackingStoreWriter
import Foundation
import SecureMemory
import Testing
import TestSupport

/// The operators' view with real keeper and nexus processes: the recovery
/// drill, the probes, two Nexus processes at once, SPIKE Bootstrap's bare
/// TCP probe, and the memory-locking opt-out.
@Suite(.serialized, .timeLimit(.minutes(10))) struct OperationsProcessTests {
    /// What the drill must leave as it found it: the database bytes, the data
    /// directory's files, and what each keeper holds.
    struct Snapshot: Equatable {
        let database: Data
        let files: [String]
        /// What the keepers answered, hashed: a failing comparison prints no shard.
        let shards: Int
        /// How many keepers answered with a shard (so an equal hash is not two failures alike).
        let answered: Int

        init(_ w: FaultWorld, dataDir: URL? = nil) async {
            let data = (dataDir ?? w.dir.appendingPathComponent("nexus")).appendingPathComponent("data")
            database = (try? Data(contentsOf: data.appendingPathComponent("spike.db"))) ?? Data()
            files = ((try? FileManager.default.contentsOfDirectory(atPath: data.path)) ?? []).sorted()
            var held: [String] = []
            for i in 0..<3 { held.append(await w.curl(i, "/v1/store/shard", "{}")) }
            shards = held.hashValue
            answered = held.filter { $0.hasPrefix("{\"shard\":[") }.count
        }
    }

    struct Drill {
        let status: Int32
        let report: [String: Any]
        let stderr: String
        var keepers: [(id: Int, status: String, detail: String?)] {
            ((report["keepers"] as? [[String: Any]]) ?? []).map { ($0["id"] as? Int ?? 0, $0["status"] as? String ?? "", $0["detail"] as? String) }
        }
        var statuses: [String] { keepers.map(\.status) }
    }

    func drill(_ w: FaultWorld, _ args: [String] = [], env: [String: String] = [:]) async throws -> Drill {
        let r = try await cli(["drill", "--json"] + args, env: w.nexusEnvironment().merging(env) { $1 }, timeout: .seconds(60))
        w.scan.check(r.stdout + r.stderr, "drill output")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count <= 1, "one JSON object on stdout: \(r.stdout)")
        let report = lines.first.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } as? [String: Any] ?? [:]
        return Drill(status: r.status, report: report, stderr: r.stderr)
    }

    @Test func healthyDrill() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }
        let before = await Snapshot(w)
        #expect(before.answered == 3)
        let d = try await drill(w)
        #expect(d.status == 0, "\(d.stderr)")
        #expect(d.report["recoverable"] as? Bool == true && d.report["verified"] as? Bool == true)
        #expect(d.report["tolerates"] as? Int == 1 && d.report["threshold"] as? Int == 2)
        #expect(d.report["store"] as? String == "opens")
        #expect(d.keepers.map(\.id) == [1, 2, 3] && d.statuses == ["ok", "ok", "ok"])
        #expect(await Snapshot(w) == before, "the drill changed a keeper or the database")
        // Without --json: the table on stderr, nothing on stdout.
        let table = try await cli(["drill"], env: w.nexusEnvironment())
        #expect(table.status == 0 && table.stdout.isEmpty && table.stderr.contains("recoverable, tolerates the loss of 1 more keeper"), "\(table.stderr)")
        w.scan.check(table.stderr, "drill table")
        await w.finish()
    }

    @Test func staleKeeperIsNamedWrongShard() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }
        #expect(try await w.giveStaleShard(2))
        let before = await Snapshot(w)
        #expect(before.answered == 3)
        let d = try await drill(w)
        #expect(d.status == 1)
        #expect(d.statuses == ["ok", "ok", "wrong_shard"], "\(d.report)")
        #expect(d.keepers[2].detail?.contains("stale or corrupted") == true)
        #expect(d.report["verified"] as? Bool == true && d.report["recoverable"] as? Bool == true && d.report["tolerates"] as? Int == 0)
        #expect(await Snapshot(w) == before, "the drill changed a keeper or the database")
        await w.finish()
    }

    @Test func keeperDownIsUnreachable() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }
        w.signal(1, SIGKILL)
        #expect(try await eventually { !portOpen(w.keeperPorts[1]) })
        let before = await Snapshot(w)
        #expect(before.answered == 2)
        let d = try await drill(w)
        #expect(d.status == 1)
        #expect(d.statuses == ["ok", "unreachable", "ok"], "\(d.report)")
        #expect(d.report["verified"] as? Bool == true && d.report["recoverable"] as? Bool == true && d.report["tolerates"] as? Int == 0)
        #expect(await Snapshot(w) == before)
        await w.finish()
    }

    /// Under SPIKE_NEXUS_KEEPER_IDS, a keeper at a position pinned to another
    /// ID fails the handshake: `wrong_identity`, and no shard moves.
    @Test func keeperAtTheWrongPositionIsWrongIdentity() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }
        let before = await Snapshot(w)
        #expect(before.answered == 3)
        let id = { (n: Int) in "spiffe://spike.ist/spike/keeper/\(n)" }
        // Position 3 is meant for keeper/4; keeper/3 answers there.
        let one = try await drill(w, env: ["SPIKE_NEXUS_KEEPER_IDS": [id(1), id(2), id(4)].joined(separator: ",")])
        #expect(one.status == 1)
        #expect(one.statuses == ["ok", "ok", "wrong_identity"], "\(one.report)")
        #expect(one.keepers[2].detail?.contains("\(id(3)) refused: not \(id(4))") == true, "\(one.report)")
        #expect(one.report["recoverable"] as? Bool == true && one.report["verified"] as? Bool == true && one.report["tolerates"] as? Int == 0)
        // Keepers 2 and 3 swapped: one shard of the two needed, and it cannot be checked.
        let swapped = try await drill(w, env: ["SPIKE_NEXUS_KEEPER_IDS": [id(1), id(3), id(2)].joined(separator: ",")])
        #expect(swapped.status == 1)
        #expect(swapped.statuses == ["wrong_shard", "wrong_identity", "wrong_identity"], "\(swapped.report)")
        #expect(swapped.keepers[0].detail?.hasPrefix("unchecked: 1 of the 2 shards") == true, "\(swapped.report)")
        #expect(swapped.report["recoverable"] as? Bool == false && swapped.report["verified"] as? Bool == false)
        #expect(await Snapshot(w) == before)
        // Pinned in the right order, the drill is healthy again.
        let right = try await drill(w, env: ["SPIKE_NEXUS_KEEPER_IDS": [id(1), id(2), id(3)].joined(separator: ",")])
        #expect(right.status == 0 && right.statuses == ["ok", "ok", "ok"], "\(right.report)")
        await w.finish()
    }

    /// An empty store cannot check a key: not verified (exit 1), though all
    /// shards agree; a missing one is a bad setting unless allowed.
    @Test func emptyOrMissingStoreIsNotVerified() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }
        let empty = w.dir.appendingPathComponent("empty-nexus")
        _ = try SpikeDatabaseWriter(path: empty.appendingPathComponent("data/spike.db").path, rootKey: w.rootKey)
        let before = await Snapshot(w, dataDir: empty)
        #expect(before.answered == 3)
        let d = try await drill(w, env: ["SPIKE_NEXUS_DATA_DIR": empty.path])
        #expect(d.status == 1)
        #expect(d.report["verified"] as? Bool == false && d.report["store"] as? String == "empty", "\(d.report)")
        #expect(d.statuses == ["ok", "ok", "ok"], "\(d.report)")
        // The recovery's own rule for a store that cannot check a key: all shares, so no keeper to spare.
        #expect(d.report["recoverable"] as? Bool == true && d.report["tolerates"] as? Int == 0)
        let after = await Snapshot(w, dataDir: empty)
        #expect(after == before, "files \(before.files) -> \(after.files), database \(before.database.count) -> \(after.database.count) bytes")

        let nowhere = w.dir.appendingPathComponent("no-nexus")
        let missing = try await cli(["drill", "--json"], env: w.nexusEnvironment().merging(["SPIKE_NEXUS_DATA_DIR": nowhere.path]) { $1 })
        #expect(missing.status == 64 && missing.stderr.contains("SPIKE_NEXUS_DATA_DIR") && missing.stdout.isEmpty, "\(missing.stderr)")
        let allowed = try await drill(w, ["--allow-empty-store"], env: ["SPIKE_NEXUS_DATA_DIR": nowhere.path])
        #expect(allowed.status == 1 && allowed.report["store"] as? String == "missing" && allowed.report["verified"] as? Bool == false)
        #expect(!FileManager.default.fileExists(atPath: nowhere.path), "the drill created the data directory")
        await w.finish()
    }

    // MARK: probes

    /// (status, body) of a plain-HTTP GET.
    func get(_ port: Int, _ path: String) async -> (Int, String) {
        let r = await run("/usr/bin/curl", ["-s", "--max-time", "5", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)\(path)"])
        let parts = r.output.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(parts.last ?? "") ?? 0, parts.dropLast().joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test func keeperProbes() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }
        let port = w.metricsPorts[0]
        #expect(await get(port, "/healthz") == (200, "ok"))
        #expect(await get(port, "/readyz") == (200, "ready"))
        try await w.restartKeeper(0)
        #expect(try await eventually { portOpen(port) })
        // Listening, but without a shard: alive, not ready.
        #expect(await get(port, "/healthz") == (200, "ok"))
        #expect(await get(port, "/readyz") == (503, "unready"))
        #expect(try await w.contribute(0, w.shards[0]))
        #expect(await get(port, "/readyz") == (200, "ready"))
        #expect(await get(port, "/nothing").0 == 404)
        let metrics = await get(port, "/metrics")
        #expect(metrics.0 == 200 && metrics.1.contains("spike_keeper_requests_total"))
        w.scan.check(metrics.1, "keeper metrics")
        await w.finish()
    }

    /// Prometheus text of `port`'s /metrics once `condition` holds (up to 30 s).
    func metrics(_ port: Int, until condition: (String) -> Bool) async throws -> String {
        var text = ""
        for _ in 0..<60 {
            text = await get(port, "/metrics").1
            if condition(text) { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        return text
    }

    /// The nexus is ready at step 12, not before; it stays alive (and a drill
    /// beside it sees a healthy set) throughout.
    @Test func nexusProbes() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }
        let port = freePort()
        w.freeze(1)
        w.freeze(2)
        let n = try w.nexus("nexus", ["--deadline", "60", "--metrics-address", "127.0.0.1:\(port)"])
        #expect(try await eventually { portOpen(port) })
        #expect(await get(port, "/healthz") == (200, "ok"))
        #expect(await get(port, "/readyz") == (503, "unready"))
        w.thaw(1)
        w.thaw(2)
        #expect(try await eventually(30) { !n.events("operational").isEmpty }, "\(n.stderr)")
        #expect(await get(port, "/readyz") == (200, "ready"))
        #expect(await get(port, "/healthz") == (200, "ok"))
        let d = try await drill(w)
        #expect(d.status == 0 && d.statuses == ["ok", "ok", "ok"], "a drill beside a running nexus: \(d.report)")
        n.process.terminate()
        #expect(try await n.exit() == 0, "\(n.stderr)")
        await w.finish()
    }

    /// Keeper 3 holds a stale shard, is found out at recovery, then takes no
    /// contribute: the gauges name it until a round reaches it.
    @Test func keeperGaugesAfterEachDistributionRound() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }
        #expect(try await w.giveStaleShard(2))
        // Keeper 2 answers late, so keepers 1 and 3 make a key first, which the store refuses.
        w.proxies[1].mode = .delay(1)
        // Keeper 3's shard read gets through; the contributes after it do not.
        w.proxies[2].mode = .passNext(1)
        let port = freePort()
        let n = try w.nexus("nexus", ["--deadline", "60", "--metrics-address", "127.0.0.1:\(port)"],
                            env: ["SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL": "1s", "SPIKE_NEXUS_KEEPER_REQUEST_TIMEOUT": "4s"])
        #expect(try await eventually(30) { !n.events("operational").isEmpty }, "\(n.stderr)")
        let down = try await metrics(port) { $0.contains("spike_keeper_holds_shard{keeper=\"3\"} 0") }
        #expect(down.contains("spike_keeper_holds_shard{keeper=\"3\"} 0"), "\(down)")
        #expect(down.contains("spike_keeper_holds_shard{keeper=\"1\"} 1"), "\(down)")
        #expect(down.contains("spike_keeper_shard_disagreed{keeper=\"3\"} 1"), "\(down)")
        #expect(down.contains("spike_keeper_shard_disagreed{keeper=\"1\"} 0"), "\(down)")
        #expect(down.contains("spike_recovery_tolerates 0"), "\(down)")
        #expect(down.contains("spike_distribution_last_round_timestamp_seconds"), "\(down)")
        w.proxies[2].mode = .pass
        let back = try await metrics(port) { $0.contains("spike_keeper_holds_shard{keeper=\"3\"} 1") }
        #expect(back.contains("spike_keeper_holds_shard{keeper=\"3\"} 1"), "\(back)")
        #expect(back.contains("spike_keeper_shard_disagreed{keeper=\"3\"} 0"), "\(back)")
        #expect(back.contains("spike_recovery_tolerates 1"), "\(back)")
        w.scan.check(down + back, "nexus metrics")
        n.process.terminate()
        #expect(try await n.exit() == 0, "\(n.stderr)")
        #expect(await w.holdsItsShard(2), "keeper 3 after distribution")
        await w.finish()
    }

    // MARK: HA, Bootstrap's probe

    /// Two Nexus processes at once against the same keepers and store: both
    /// reach step 12 and every keeper ends with its right shard (the split is
    /// deterministic, so their distributions agree).
    @Test func twoNexusProcessesAtOnce() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }
        let env = ["SPIKE_NEXUS_KEEPER_REQUEST_TIMEOUT": "3s"]
        let a = try w.nexus("nexus-a", env: env)
        let b = try w.nexus("nexus-b", env: env)
        #expect(try await a.exit() == 0, "\(a.stderr)")
        #expect(try await b.exit() == 0, "\(b.stderr)")
        for n in [a, b] {
            #expect(n.summary?["operational"] as? Bool == true, "\(n.name): \(n.stdout)")
            #expect(n.summary?["keepers_rejected"] as? [Int] == [], "\(n.name)")
        }
        for i in 0..<3 { #expect(await w.holdsItsShard(i), "keeper \(i + 1) after two distributions") }
        await w.finish()
    }

    /// SPIKE Bootstrap checks a keeper with a bare TCP connect and close
    /// before seeding: 50 of them log nothing at error level (at most one
    /// line in all), and the keeper serves as before.
    @Test func bootstrapsBareTCPProbe() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }
        let before = w.log("keeper-1")
        for _ in 0..<50 { #expect(portOpen(w.keeperPorts[0])) }
        #expect(await w.holdsItsShard(0), "keeper 1 stopped serving after the probes")
        // The shard read's line comes after anything the probes logged (one sink, in order).
        #expect(try await eventually { w.log("keeper-1").dropFirst(before.count).contains("/v1/store/shard 200") })
        let added = String(w.log("keeper-1").dropFirst(before.count)).split(separator: "\n")
        #expect(!added.contains { $0.contains(" error ") || $0.contains(" critical ") }, "\(added)")
        // The shard read above is one line; a probe that sends no TLS at all is not worth one.
        #expect(added.filter { !$0.contains("/v1/store/shard") }.count <= 1, "\(added.count) lines for 50 probes: \(added)")
        await w.finish()
    }

    // MARK: memory locking

    @Test(arguments: ["keeper", "nexus", "drill"])
    func memoryLockSettingIsChecked(command: String) async throws {
        for bad in ["yes", "TRUE", "1"] {
            let r = try await cli([command], env: ["SPIKE_MEM_LOCK_DISABLED": bad])
            #expect(r.status == 64, "\(r.stderr)")
            #expect(r.stderr.contains("SPIKE_MEM_LOCK_DISABLED: expected true or false (got \"\(bad)\")"), "\(r.stderr)")
        }
        // Accepted values get past it (to the next missing setting).
        for good in ["true", "false", ""] {
            let r = try await cli([command], env: ["SPIKE_MEM_LOCK_DISABLED": good, "SPIKE_WORKLOAD_API_TIMEOUT": "100ms",
                                                   "SPIFFE_ENDPOINT_SOCKET": "unix:///nonexistent/agent.sock"])
            #expect(!r.stderr.contains("SPIKE_MEM_LOCK_DISABLED:"), "\(good): \(r.stderr)")
        }
    }
}
