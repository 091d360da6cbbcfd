import BackingStoreWriter
import Foundation
import KeeperService
import Logging
import NIOPosix
import SecureMemory
import Shamir
import SpiffeIdentity
import Testing
import TestSupport

/// A Nexus process against in-process keepers (real mTLS) and a real SQLite file.
struct NexusWorld {
    let dir: URL
    let keepers: [KeeperServer]
    let rootKey: SecretBytes
    let shards: [SecretBytes]
    var urls: String { keepers.map { "https://127.0.0.1:\($0.port)" }.joined(separator: ",") }

    init(fill: Bool) async throws {
        dir = try temporaryDirectory()
        #expect(try await cli(["certs", "issue", "--out", dir.path, "--keepers", "3"]).status == 0)
        var made: [KeeperServer] = []
        for i in 1...3 {
            let source = try FileX509Source(certFile: dir.appendingPathComponent("keeper-\(i).pem").path, keyFile: dir.appendingPathComponent("keeper-\(i).key").path,
                                            bundleFile: dir.appendingPathComponent("bundle.pem").path, trustDomains: ["spike.ist"])
            let k = KeeperServer(source: source, trustRoots: TrustRoots(), logger: Logger(label: "k"), group: MultiThreadedEventLoopGroup.singleton)
            try await k.start(host: "127.0.0.1", port: 0)
            made.append(k)
        }
        keepers = made
        let key = randomRootKey()
        rootKey = key
        shards = try NativeShamir().split(rootKey: key, threshold: 2, shares: 3).shards.map(\.value)
        let w = try SpikeDatabaseWriter(path: dir.appendingPathComponent("nexus/data/spike.db").path, rootKey: key)
        try w.putSecret(path: "a/b", versions: [.init(version: 1, data: ["k": "v"], created: Date())], created: Date(), updated: Date())
        try w.putPolicy(name: "p", spiffeIDPattern: ".*", pathPattern: ".*", permissions: ["read"], created: 1, updated: 1)
        if fill { for (k, s) in zip(keepers, shards) { k.slot.store(s) } }
    }

    func env(port: Int) -> [String: String] {
        ["SPIKE_NEXUS_KEEPER_PEERS": urls, "SPIKE_NEXUS_DATA_DIR": dir.appendingPathComponent("nexus").path,
         "SPIKE_SVID_CERT_FILE": dir.appendingPathComponent("nexus.pem").path, "SPIKE_SVID_KEY_FILE": dir.appendingPathComponent("nexus.key").path,
         "SPIKE_SVID_BUNDLE_FILE": dir.appendingPathComponent("bundle.pem").path, "SPIKE_NEXUS_TLS_PORT": "127.0.0.1:\(port)",
         "SPIKE_NEXUS_RECOVERY_MAX_INTERVAL": "200ms",
         // The keepers live in the test process (sanitized in CI's TSan run); no test
         // here is about a keeper timing out, so give answers all the time they need.
         "SPIKE_NEXUS_KEEPER_REQUEST_TIMEOUT": "30s"]
    }

    func stop() async {
        for k in keepers { await k.stop() }
        try? FileManager.default.removeItem(at: dir)
    }
}

@Suite(.serialized, .timeLimit(.minutes(5))) struct NexusProcessTests {
    @Test func nexusOnceRecoversAndTraces() async throws {
        let w = try await NexusWorld(fill: true)
        w.keepers[2].slot.wipe()  // keeper 3 restarted: empty until distribution
        let trace = w.dir.appendingPathComponent("trace.jsonl").path
        let r = try await cli(["nexus", "--once", "--json", "--trace", trace, "--deadline", "20"], env: w.env(port: freePort()))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("{\"operational\":true,\"secrets\":1,\"secret_versions\":1,\"policies\":1,\"shards_used\":[1,2],\"keepers_rejected\":[],\"elapsed_ms\":"))
        let lines = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n")
        #expect(lines.first?.hasPrefix("{\"step\":\"1\",\"event\":\"nexus_started\",\"t_ms\":") == true)
        #expect(lines.dropFirst().first?.hasPrefix("{\"step\":\"2\",\"event\":\"recovery_begun\",\"t_ms\":") == true)
        #expect(lines.last?.hasPrefix("{\"step\":\"12\",\"event\":\"operational\"") == true)
        // --once ran a distribution round: keeper 3 has its shard again.
        w.keepers[2].slot.withShard { #expect($0?.constantTimeEquals(w.shards[2]) == true) }
        SecretScan(w.shards + [w.rootKey]).check(r.stderr + (try String(contentsOfFile: trace, encoding: .utf8)), "nexus output and trace")
        await w.stop()
    }

    @Test func operatorRestoreThroughTheRouteFeedsTheMachine() async throws {
        let w = try await NexusWorld(fill: false)
        let port = freePort()
        let trace = w.dir.appendingPathComponent("trace.jsonl").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["nexus", "--once", "--json", "--trace", trace, "--deadline", "30"]
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in w.env(port: port) { environment[k] = v }
        p.environment = environment
        // Output goes to files: nothing blocks on a pipe, and a full pipe cannot stall Nexus.
        let outPath = w.dir.appendingPathComponent("nexus.out").path, errPath = w.dir.appendingPathComponent("nexus.err").path
        for path in [outPath, errPath] { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        func file(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        let nexusExit = ExitWatch(p)
        try p.run()
        let watchdog = DispatchWorkItem { if p.isRunning { p.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 30, execute: watchdog)
        defer { watchdog.cancel() }
        func restore(_ id: Int) async -> String {
            let shard = w.shards[id - 1].withUnsafeBytes { $0.map(String.init).joined(separator: ",") }
            return await run("/usr/bin/curl", ["-s", "-k", "--max-time", "10",
                                               "--cert", w.dir.appendingPathComponent("pilot-restore.pem").path,
                                               "--key", w.dir.appendingPathComponent("pilot-restore.key").path,
                                               "-X", "POST", "-d", "{\"id\":\(id),\"shard\":[\(shard)]}",
                                               "https://127.0.0.1:\(port)/v1/operator/restore"]).output
        }
        // Wait for the operator port (bounded), then let recovery loop over the empty keepers a little.
        var up = false
        for _ in 0..<300 where !up && p.isRunning {
            up = portOpen(port)
            if !up { try await Task.sleep(for: .milliseconds(50)) }
        }
        if !up {
            p.terminate()
            Issue.record("nexus did not open its operator port: \(file(errPath))")
            await w.stop()
            return
        }
        try await Task.sleep(for: .milliseconds(500))
        #expect(await restore(1) == "{\"collected\":1,\"remaining\":1,\"restored\":false}")
        #expect(await restore(1) == "{\"collected\":1,\"remaining\":1,\"restored\":false}")  // repeated id ignored
        let last = await restore(3)
        #expect(last == "{\"collected\":2,\"remaining\":0,\"restored\":true}")
        #expect(try await eventually(30) { !p.isRunning }, "nexus did not exit after the restore")
        // The watchdog has sent SIGTERM by 30 s after the start.
        guard await nexusExit.exited(within: .seconds(60)) else {
            kill(p.processIdentifier, SIGKILL)
            Issue.record("nexus did not exit, even after the watchdog's SIGTERM: \(file(errPath))")
            await w.stop()
            return
        }
        #expect(p.terminationStatus == 0, "\(file(errPath))")
        #expect(file(outPath).hasPrefix("{\"operational\":true,\"secrets\":1,"))
        // The restore went through the one machine: every step is in the trace.
        let events = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n")
        #expect(events.filter { $0.contains("\"event\":\"restore_shard_received\"") }.count == 2)
        #expect(events.contains { $0.contains("\"event\":\"restore_threshold_met\"") })
        #expect(events.contains { $0.contains("\"event\":\"key_verified\"") })
        #expect(events.filter { $0.contains("\"event\":\"root_key_set\"") }.count == 1)
        #expect(events.contains { $0.contains("\"event\":\"root_key_set\"") && $0.contains("operator restore") })
        #expect(events.last?.contains("\"event\":\"operational\"") == true)
        // The restore pushed shards to every keeper.
        for (k, s) in zip(w.keepers, w.shards) { k.slot.withShard { #expect($0?.constantTimeEquals(s) == true) } }
        await w.stop()
    }

    @Test func restoreFromPilotFiles() async throws {
        let w = try await NexusWorld(fill: false)
        let keyFile = w.dir.appendingPathComponent("rk").path
        try w.rootKey.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }.write(toFile: keyFile, atomically: true, encoding: .utf8)
        let files = w.dir.appendingPathComponent("pilot").path
        #expect(try await cli(["shamir", "split", "--threshold", "2", "--shares", "3", "--root-key-file", keyFile, "--out", files]).status == 0)
        let r = try await cli(["nexus", "--once", "--json", "--restore", files + "/spike.recovery.2.txt", files + "/spike.recovery.3.txt"], env: w.env(port: freePort()))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("{\"operational\":true,\"secrets\":1,\"secret_versions\":1,\"policies\":1,\"shards_used\":[2,3]"))
        for (k, s) in zip(w.keepers, w.shards) { k.slot.withShard { #expect($0?.constantTimeEquals(s) == true) } }
        // Shards of another key do not open the store: refused, exit 1.
        let other = w.dir.appendingPathComponent("other").path
        try String(repeating: "1f", count: 32).write(toFile: keyFile, atomically: true, encoding: .utf8)
        #expect(try await cli(["shamir", "split", "--threshold", "2", "--shares", "3", "--root-key-file", keyFile, "--out", other]).status == 0)
        let bad = try await cli(["nexus", "--once", "--restore", other + "/spike.recovery.1.txt", other + "/spike.recovery.2.txt"], env: w.env(port: freePort()))
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("does not open the store"))
        await w.stop()
    }
}

@Suite(.serialized, .timeLimit(.minutes(5))) struct MetricsEndpointTests {
    func scrape(_ port: Int) async -> String {
        await run("/usr/bin/curl", ["-s", "--max-time", "5", "http://127.0.0.1:\(port)/metrics"]).output
    }

    @Test func nexusExportsRecoveryMetrics() async throws {
        let w = try await NexusWorld(fill: true)
        let metrics = freePort()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["nexus", "--metrics-address", "127.0.0.1:\(metrics)"]
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in w.env(port: freePort()) { environment[k] = v }
        p.environment = environment
        p.standardError = FileHandle.nullDevice
        let nexusExit = ExitWatch(p)
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        var text = ""
        for _ in 0..<600 where !text.contains("spike_recovery_time_to_operational_seconds") {
            try await Task.sleep(for: .milliseconds(50))
            text = await scrape(metrics)
        }
        #expect(text.contains("spike_recovery_rounds_total 1"))
        // Two shards were received (from whichever keepers answered first).
        let received = text.split(separator: "\n").filter { $0.hasPrefix("spike_recovery_keeper_answers_total{") && $0.contains("outcome=\"shard_received\"") }
            .compactMap { Int($0.split(separator: " ").last ?? "") }.reduce(0, +)
        #expect(received == 2, "\(text)")
        #expect(text.contains("spike_recovery_time_to_operational_seconds"))
        var delivered = false
        for _ in 0..<400 where !delivered {
            delivered = await scrape(metrics).contains("spike_distribution_shards_total{outcome=\"delivered\"} 3")
            if !delivered { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(delivered)
        p.terminate()
        guard await nexusExit.exited(within: .seconds(60)) else {
            kill(p.processIdentifier, SIGKILL)
            Issue.record("nexus did not exit within 60 s of SIGTERM")
            await w.stop()
            return
        }
        #expect(p.terminationStatus == 0)
        await w.stop()
    }
}
