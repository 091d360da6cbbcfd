import BackingStoreWriter
import Foundation
import SecureMemory
import Shamir
import Testing
import TestSupport

/// Three keeper processes, each reached through a FaultProxy (or, with
/// `namespaces`, living in its own network namespace), a SPIKE database
/// under a fresh root key, and Nexus processes run against them.
final class FaultWorld: @unchecked Sendable {
    let dir: URL
    let rootKey: SecretBytes
    let shards: [SecretBytes]
    let keeperPorts: [Int]
    /// Each keeper's `--metrics-address` port (probes).
    let metricsPorts: [Int]
    var keepers: [Process?] = [nil, nil, nil]
    /// Each keeper's exit, watched from before it started.
    var keeperExits: [ExitWatch?] = [nil, nil, nil]
    /// Set by `finish()` (or `abandon()`): the processes are stopped and the files scanned and removed.
    var finished = false
    var proxies: [FaultProxy] = []
    let namespaces: NetworkNamespaces?
    let scan: SecretScan

    init(namespaces: NetworkNamespaces? = nil) async throws {
        dir = try temporaryDirectory()
        self.namespaces = namespaces
        #expect(try await cli(["certs", "issue", "--out", dir.path, "--keepers", "3"], env: [:]).status == 0)
        let key = randomRootKey()
        rootKey = key
        shards = try NativeShamir().split(rootKey: key, threshold: 2, shares: 3).shards.map(\.value)
        scan = SecretScan([key] + shards)
        let writer = try SpikeDatabaseWriter(path: dir.appendingPathComponent("nexus/data/spike.db").path, rootKey: key)
        try writer.putSecret(path: "db/creds", versions: [.init(version: 1, data: ["password": "hunter2"], created: Date())],
                             created: Date(), updated: Date())
        keeperPorts = namespaces == nil ? (0..<3).map { _ in freePort() } : [8443, 8443, 8443]
        metricsPorts = (0..<3).map { _ in freePort() }
        for i in 0..<3 { try startKeeper(i) }
        for i in 0..<3 { #expect(try await eventually { self.keeperListening(i) }, "keeper \(i + 1) did not start") }
        if namespaces == nil { proxies = try keeperPorts.map { try FaultProxy(upstreamPort: $0) } }
        for i in 0..<3 { #expect(try await contribute(i, shards[i])) }
    }

    /// Where Nexus reaches keeper i (0-based).
    func url(_ i: Int) -> String {
        if let namespaces { return "https://\(namespaces.keeperAddress(i)):\(keeperPorts[i])" }
        return "https://127.0.0.1:\(proxies[i].port)"
    }

    func keeperListening(_ i: Int) -> Bool {
        if namespaces != nil { return FileManager.default.fileExists(atPath: logPath("keeper-\(i + 1)")) && log("keeper-\(i + 1)").contains("listening") }
        return portOpen(keeperPorts[i])
    }

    func logPath(_ name: String) -> String { dir.appendingPathComponent("\(name).log").path }
    func log(_ name: String) -> String { (try? String(contentsOfFile: logPath(name), encoding: .utf8)) ?? "" }

    /// Starts keeper i (empty, as every fresh keeper is).
    func startKeeper(_ i: Int) throws {
        let p = Process()
        var env = ProcessInfo.processInfo.environment
        env["SPIKE_SVID_CERT_FILE"] = dir.appendingPathComponent("keeper-\(i + 1).pem").path
        env["SPIKE_SVID_KEY_FILE"] = dir.appendingPathComponent("keeper-\(i + 1).key").path
        env["SPIKE_SVID_BUNDLE_FILE"] = dir.appendingPathComponent("bundle.pem").path
        if let namespaces {
            env["SPIKE_KEEPER_TLS_PORT"] = "\(namespaces.keeperAddress(i)):\(keeperPorts[i])"
            p.executableURL = URL(fileURLWithPath: NetworkNamespaces.ip)
            p.arguments = ["netns", "exec", namespaces.names[i], binary, "keeper"]
        } else {
            env["SPIKE_KEEPER_TLS_PORT"] = "127.0.0.1:\(keeperPorts[i])"
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = ["keeper", "--metrics-address", "127.0.0.1:\(metricsPorts[i])"]
        }
        p.environment = env
        let logURL = URL(fileURLWithPath: logPath("keeper-\(i + 1)"))
        if !FileManager.default.fileExists(atPath: logURL.path) { _ = FileManager.default.createFile(atPath: logURL.path, contents: nil) }
        let handle = try FileHandle(forWritingTo: logURL)
        handle.seekToEndOfFile()
        p.standardError = handle
        p.standardOutput = handle
        let watch = ExitWatch(p)
        try p.run()
        keepers[i] = p
        keeperExits[i] = watch
    }

    func signal(_ i: Int, _ sig: Int32) { if let p = keepers[i] { kill(p.processIdentifier, sig) } }
    func freeze(_ i: Int) { signal(i, SIGSTOP) }
    func thaw(_ i: Int) { signal(i, SIGCONT) }

    /// Kills keeper i outright (its shard dies with it) and starts a fresh, empty one.
    func restartKeeper(_ i: Int) async throws {
        signal(i, SIGKILL)
        if let watch = keeperExits[i], !(await watch.exited(within: .seconds(30))) {
            Issue.record("keeper \(i + 1) did not die of SIGKILL within 30 s")
        }
        try startKeeper(i)
        #expect(try await eventually { self.keeperListening(i) })
    }

    func curl(_ i: Int, _ path: String, _ body: String) async -> String {
        let direct = namespaces.map { "https://\($0.keeperAddress(i)):\(keeperPorts[i])" } ?? "https://127.0.0.1:\(keeperPorts[i])"
        return await run("/usr/bin/curl", ["-s", "-k", "--max-time", "5", "--cert", dir.appendingPathComponent("nexus.pem").path,
                                           "--key", dir.appendingPathComponent("nexus.key").path, "-X", "POST", "-d", body,
                                           direct + path]).output
    }

    func contribute(_ i: Int, _ shard: SecretBytes) async throws -> Bool {
        let array = shard.withUnsafeBytes { $0.map(String.init).joined(separator: ",") }
        return await curl(i, "/v1/store/contribute", "{\"shard\":[\(array)]}") == "{}"
    }

    /// Gives keeper i a shard of another root key (stale, as after a key change it missed).
    func giveStaleShard(_ i: Int) async throws -> Bool {
        var other = randomRootKey().withUnsafeBytes { Array($0) }
        other[0] &= 0x7f  // below the group order
        return try await contribute(i, SecretBytes(consuming: &other))
    }

    /// True when keeper i holds exactly the shard Go SPIKE would give it for the root key.
    func holdsItsShard(_ i: Int) async -> Bool {
        let array = shards[i].withUnsafeBytes { $0.map(String.init).joined(separator: ",") }
        return await curl(i, "/v1/store/shard", "{}") == "{\"shard\":[\(array)],\"Err\":\"\"}"
    }

    /// A Nexus process (stdout, stderr and trace go to files).
    final class Nexus: @unchecked Sendable {
        let process = Process()
        /// The process's exit, watched from before it started.
        let exitWatch: ExitWatch
        let name: String
        let world: FaultWorld
        var trace: String { (try? String(contentsOfFile: world.dir.appendingPathComponent("\(name).trace").path, encoding: .utf8)) ?? "" }
        var stdout: String { world.log("\(name).out") }
        var stderr: String { world.log(name) }

        init(_ world: FaultWorld, name: String, args: [String], env extra: [String: String] = [:]) throws {
            self.world = world
            self.name = name
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["nexus", "--json", "--trace", world.dir.appendingPathComponent("\(name).trace").path] + args
            var env = ProcessInfo.processInfo.environment
            for (k, v) in world.nexusEnvironment() { env[k] = v }
            for (k, v) in extra { env[k] = v }
            process.environment = env
            for file in ["\(name).out", name] { _ = FileManager.default.createFile(atPath: world.logPath(file), contents: nil) }
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: world.logPath("\(name).out")))
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: world.logPath(name)))
            exitWatch = ExitWatch(process)
            try process.run()
        }

        /// Trace lines with this event (and keeper, if given).
        func events(_ event: String, keeper: Int? = nil) -> [String] {
            trace.split(separator: "\n").map(String.init).filter { line in
                line.contains("\"event\":\"\(event)\"")
                    && (keeper.map { k in line.contains("\"keeper\":\(k),") || line.hasSuffix("\"keeper\":\(k)}") } ?? true)
            }
        }

        func exit(within seconds: TimeInterval = 30) async throws -> Int32 {
            if try await !eventually(seconds, { !self.process.isRunning }) {
                process.terminate()
                Issue.record("nexus did not exit within \(seconds) s")
            }
            if !(await exitWatch.exited(within: .seconds(30))) {
                kill(process.processIdentifier, SIGKILL)
                Issue.record("nexus did not exit within 30 s of SIGTERM")
                guard await exitWatch.exited(within: .seconds(30)) else {
                    throw CocoaError(.featureUnsupported, userInfo: [NSLocalizedDescriptionKey: "nexus \(name) survived SIGKILL"])
                }
            }
            return process.terminationStatus
        }

        var summary: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(stdout.utf8))) as? [String: Any]
        }
    }

    /// A Nexus's settings for this world (also the drill's): its SVID, the keepers, the store.
    func nexusEnvironment() -> [String: String] {
        ["SPIKE_SVID_CERT_FILE": dir.appendingPathComponent("nexus.pem").path,
         "SPIKE_SVID_KEY_FILE": dir.appendingPathComponent("nexus.key").path,
         "SPIKE_SVID_BUNDLE_FILE": dir.appendingPathComponent("bundle.pem").path,
         "SPIKE_NEXUS_KEEPER_PEERS": (0..<3).map(url).joined(separator: ","),
         "SPIKE_NEXUS_DATA_DIR": dir.appendingPathComponent("nexus").path,
         "SPIKE_NEXUS_TLS_PORT": "127.0.0.1:\(freePort())",
         "SPIKE_NEXUS_KEEPER_REQUEST_TIMEOUT": "1s",
         "SPIKE_NEXUS_RECOVERY_MAX_INTERVAL": "200ms"]
    }

    func nexus(_ name: String, _ args: [String] = ["--once", "--deadline", "30"], env: [String: String] = [:]) throws -> Nexus {
        try Nexus(self, name: name, args: args, env: env)
    }

    /// Stops the keepers (SIGTERM, each awaited), scans everything the run
    /// wrote for the root key and shards, then removes it all. Every test ends
    /// with it; `abandon()` in a `defer` covers a test that throws first.
    func finish() async {
        guard !finished else { return }
        finished = true
        for i in 0..<3 {
            thaw(i)
            keepers[i]?.terminate()
        }
        for i in 0..<3 {
            guard let watch = keeperExits[i], !(await watch.exited(within: .seconds(60))) else { continue }
            Issue.record("keeper \(i + 1) did not exit within 60 s of SIGTERM")
            signal(i, SIGKILL)
            _ = await watch.exited(within: .seconds(30))
        }
        scanAndRemove()
    }

    /// For a `defer`: when a test throws before `await finish()`, kills the
    /// keepers (SIGKILL, not waited for: a `defer` cannot await), then scans and
    /// removes what the run wrote. Does nothing after `finish()`.
    func abandon() {
        guard !finished else { return }
        finished = true
        for i in 0..<3 {
            thaw(i)
            signal(i, SIGKILL)
        }
        scanAndRemove()
    }

    private func scanAndRemove() {
        for p in proxies { p.stop() }
        if let files = try? FileManager.default.contentsOfDirectory(atPath: dir.path) {
            for f in files where f.hasSuffix(".log") || f.hasSuffix(".trace") {
                scan.check((try? String(contentsOfFile: dir.appendingPathComponent(f).path, encoding: .utf8)) ?? "", f)
            }
        }
        try? FileManager.default.removeItem(at: dir)
    }
}

@Suite(.serialized, .timeLimit(.minutes(10))) struct FaultTests {
    /// For runs whose single `--once` distribution pass must reach every keeper:
    /// the 1 s default of these tests is for detecting faults, not for a loaded machine.
    static let distributionTimeout = ["SPIKE_NEXUS_KEEPER_REQUEST_TIMEOUT": "3s"]

    /// A keeper that takes seconds per answer (within the deadline) is waited for when it is needed.
    @Test func slowKeeperWithinTheDeadline() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }  // only if it throws before `finish()`
        w.proxies[2].mode = .delay(1.5)
        w.freeze(1)
        let n = try w.nexus("nexus", ["--once", "--deadline", "30"], env: ["SPIKE_NEXUS_KEEPER_REQUEST_TIMEOUT": "4s"])
        #expect(try await n.exit() == 0, "\(n.stderr)")
        #expect(n.summary?["shards_used"] as? [Int] == [1, 3])
        #expect((n.summary?["elapsed_ms"] as? Int ?? 0) >= 1500)
        #expect(n.events("root_key_set").count == 1)
        await w.finish()
    }

    /// Answers after the deadline, a blackhole, and a reset mid-reply are each
    /// reported for that keeper every round; once a second good keeper is
    /// reachable, recovery completes from it.
    @Test(arguments: [
        ("after-deadline", FaultProxy.Mode.delay(2), "no response within 1000 ms"),
        ("blackhole", FaultProxy.Mode.blackhole, "no response within 1000 ms"),
        ("reset", FaultProxy.Mode.resetMidResponse, ""),
    ])
    func faultyKeeperIsReportedAndRecoveryCompletes(name: String, mode: FaultProxy.Mode, detail: String) async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }  // only if it throws before `finish()`
        w.proxies[2].mode = mode
        w.freeze(1)
        let n = try w.nexus("nexus")
        #expect(try await eventually { n.events("keeper_unreachable", keeper: 3).count >= 2 }, "\(name): keeper 3 not reported")
        let reports = n.events("keeper_unreachable", keeper: 3)
        if !detail.isEmpty { #expect(reports.allSatisfy { $0.contains(detail) }, "\(reports)") }
        // A reset fails fast; on a loaded machine one round may still time out before the reset comes.
        else { #expect(reports.contains { !$0.contains("no response within") }, "a reset must fail fast: \(reports)") }
        #expect(n.events("root_key_set").isEmpty, "installed a key with one good keeper")
        w.thaw(1)
        #expect(try await n.exit() == 0, "\(n.stderr)")
        #expect(n.summary?["operational"] as? Bool == true)
        #expect(n.summary?["shards_used"] as? [Int] == [1, 2])
        #expect(n.stderr.contains("keeper 3: unreachable ("))
        await w.finish()
    }

    /// Below the threshold recovery never completes and never installs a key; it names the failing keepers.
    @Test func belowThresholdGivesUpAtTheDeadline() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }  // only if it throws before `finish()`
        w.proxies[1].mode = .blackhole
        w.proxies[2].stop()
        let n = try w.nexus("nexus", ["--once", "--deadline", "3"])
        #expect(try await n.exit() == 1)
        #expect(n.summary?["operational"] as? Bool == false)
        #expect(n.events("root_key_set").isEmpty && n.events("key_reconstructed").isEmpty)
        #expect(!n.events("keeper_unreachable", keeper: 2).isEmpty && !n.events("keeper_unreachable", keeper: 3).isEmpty)
        #expect(n.events("keeper_unreachable", keeper: 3).allSatisfy { $0.contains("refused") }, "\(n.events("keeper_unreachable", keeper: 3))")
        await w.finish()
    }

    /// A keeper killed and restarted mid-recovery comes back empty; recovery
    /// completes from the others and distribution gives it its shard again.
    @Test func keeperRestartedMidRecoveryIsRefilled() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }  // only if it throws before `finish()`
        w.freeze(1)
        w.freeze(2)
        let n = try w.nexus("nexus", env: Self.distributionTimeout)
        #expect(try await eventually(60) { !n.events("round_exhausted").isEmpty })
        try await w.restartKeeper(2)
        #expect(try await eventually(60) { !n.events("no_shard", keeper: 3).isEmpty }, "the restarted keeper's empty answer")
        #expect(n.events("root_key_set").isEmpty)
        w.thaw(1)
        #expect(try await n.exit() == 0, "\(n.stderr)")
        #expect(n.summary?["shards_used"] as? [Int] == [1, 2])
        for i in 0..<3 { #expect(await w.holdsItsShard(i), "keeper \(i + 1) after distribution") }
        await w.finish()
    }

    /// A keeper holding a shard of another key is found out; the key installed is the store's.
    @Test func wrongShardNeverInstallsAWrongKey() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }  // only if it throws before `finish()`
        #expect(try await w.giveStaleShard(2))
        w.freeze(1)
        let n = try w.nexus("nexus", env: Self.distributionTimeout)
        #expect(try await eventually(60) { !n.events("key_verification_failed").isEmpty })
        #expect(n.events("root_key_set").isEmpty)
        w.thaw(1)
        #expect(try await n.exit() == 0, "\(n.stderr)")
        #expect(n.summary?["keepers_rejected"] as? [Int] == [3])
        #expect(n.events("root_key_set").count == 1)
        for i in 0..<3 { #expect(await w.holdsItsShard(i), "keeper \(i + 1) after distribution") }
        await w.finish()
    }

    /// Nexus killed (SIGKILL) while distributing: keepers keep valid shards,
    /// and the next Nexus recovers the same key.
    @Test func nexusKilledDuringDistribution() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }  // only if it throws before `finish()`
        for round in 0..<3 {
            let n = try w.nexus("nexus-\(round)", ["--deadline", "30"], env: ["SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL": "1s"])  // the shortest allowed; the first round starts at step 11
            #expect(try await eventually(60) { !n.events("operational").isEmpty })
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...150)))
            kill(n.process.processIdentifier, SIGKILL)
            if !(await n.exitWatch.exited(within: .seconds(30))) { Issue.record("nexus-\(round) did not die of SIGKILL within 30 s") }
        }
        let n = try w.nexus("nexus-after", env: Self.distributionTimeout)
        #expect(try await n.exit() == 0, "\(n.stderr)")
        #expect(n.summary?["operational"] as? Bool == true && n.summary?["secrets"] as? Int == 1)
        for i in 0..<3 { #expect(await w.holdsItsShard(i)) }
        await w.finish()
    }

    /// Keepers in their own network namespaces behind veth links; cutting two
    /// links partitions Nexus below the threshold, restoring one lets it through.
    @Test(.enabled("needs root and iproute2 (CI has both)") { await NetworkNamespaces.available() })
    func partitionedKeepersInNetworkNamespaces() async throws {
        let spaces = try await NetworkNamespaces(count: 3)
        defer { spaces.abandon() }  // only if it throws before `remove()`
        let w = try await FaultWorld(namespaces: spaces)
        defer { w.abandon() }  // only if it throws before `finish()`
        #expect(await run(NetworkNamespaces.ip, ["link", "set", spaces.hostLinks[1], "down"]).status == 0)
        #expect(await run(NetworkNamespaces.ip, ["link", "set", spaces.hostLinks[2], "down"]).status == 0)
        let n = try w.nexus("nexus")
        #expect(try await eventually { n.events("keeper_unreachable", keeper: 2).count >= 2 && n.events("keeper_unreachable", keeper: 3).count >= 2 })
        #expect(n.events("root_key_set").isEmpty)
        #expect(await run(NetworkNamespaces.ip, ["link", "set", spaces.hostLinks[2], "up"]).status == 0)
        #expect(try await n.exit() == 0, "\(n.stderr)")
        #expect(n.summary?["shards_used"] as? [Int] == [1, 3])
        await w.finish()
        await spaces.remove()
    }
}

/// Network namespaces `spk<r>-<i>`, each joined to the host by a veth pair
/// (10.<a>.<i>.1 on the host, .2 inside). Removing a namespace removes its link.
final class NetworkNamespaces: @unchecked Sendable {
    static let ip = "/usr/sbin/ip"
    let names: [String]
    let hostLinks: [String]
    let subnet: Int
    private var removed = false

    /// Whether this machine can make network namespaces: root, iproute2, and a probe namespace added and deleted.
    static func available() async -> Bool {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: ip) else { return false }
        let probe = "spkprobe\(getpid())"
        guard await run(ip, ["netns", "add", probe]).status == 0 else { return false }
        _ = await run(ip, ["netns", "del", probe])
        return true
    }

    init(count: Int) async throws {
        let tag = String(UInt32.random(in: 0...0xfffff), radix: 36)
        subnet = Int.random(in: 64...250)
        names = (0..<count).map { "spk\(tag)-\($0)" }
        hostLinks = (0..<count).map { "vh\(tag)\($0)" }
        for i in 0..<count {
            let inner = "vk\(tag)\(i)"
            let steps: [[String]] = [
                ["netns", "add", names[i]],
                ["link", "add", hostLinks[i], "type", "veth", "peer", "name", inner],
                ["link", "set", inner, "netns", names[i]],
                ["addr", "add", "10.\(subnet).\(i).1/24", "dev", hostLinks[i]],
                ["link", "set", hostLinks[i], "up"],
                ["netns", "exec", names[i], "ip", "addr", "add", "10.\(subnet).\(i).2/24", "dev", inner],
                ["netns", "exec", names[i], "ip", "link", "set", inner, "up"],
                ["netns", "exec", names[i], "ip", "link", "set", "lo", "up"],
            ]
            for step in steps {
                guard await run(Self.ip, step).status == 0 else {
                    await remove()
                    throw CocoaError(.featureUnsupported, userInfo: [NSLocalizedDescriptionKey: "ip \(step.joined(separator: " ")) failed"])
                }
            }
        }
    }

    func keeperAddress(_ i: Int) -> String { "10.\(subnet).\(i).2" }

    /// Deletes the namespaces (and so their links), each `ip netns del` awaited.
    func remove() async {
        guard !removed else { return }
        removed = true
        for name in names { _ = await run(Self.ip, ["netns", "del", name]) }
    }

    /// For a `defer`: when a test throws before `await remove()`, starts the
    /// same deletions without waiting for them (a `defer` cannot await).
    /// Does nothing after `remove()`.
    func abandon() {
        guard !removed else { return }
        removed = true
        for name in names {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Self.ip)
            p.arguments = ["netns", "del", name]
            p.standardError = FileHandle.nullDevice
            try? p.run()
        }
    }
}
