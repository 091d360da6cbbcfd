import ArgumentParser
import BackingStoreWriter
import Foundation
import Logging
import MutualTLS
import NIOPosix
import Recovery
import SecureMemory
import Shamir
import ShamirCore
import SpiffeIdentity
import SpikeWire

/// `spike-recovery demo`: the embedded default. Everything on loopback in a
/// temporary directory: a development CA, N keeper processes, a SPIKE-format
/// database under a fresh root key, keepers seeded as Bootstrap does, then a
/// Nexus that starts without the key and recovers it, step by step.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the whole recovery on loopback: keepers, a SPIKE database, a Nexus that recovers (default 3 keepers, threshold 2).")

    @Option(help: "Number of keepers (shares).") var keepers = 3
    @Option(help: "Shards needed to rebuild the root key.") var threshold = 2
    @Flag(help: "Kill keeper 1 after seeding, before the Nexus asks for shards.") var killOne = false
    @Flag(help: "Print the Nexus summary as one JSON object on stdout.") var json = false

    func validate() throws {
        guard (1...32).contains(keepers) else { throw ValidationError("--keepers must be 1...32 (got \(keepers))") }
        guard threshold >= 1, threshold <= keepers else {
            throw ValidationError("--threshold must be 1...keepers (got \(threshold) with \(keepers) keepers)")
        }
        if killOne && threshold > keepers - 1 {
            throw ValidationError("--kill-one needs threshold <= keepers - 1 (got \(threshold) of \(keepers))")
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = .critical  // the demo prints its own view
            return h
        }
        let demo = try DemoRun(keepers: keepers, threshold: threshold, killOne: killOne)
        Signals.onInterrupt { demo.cleanUp(); Glibc.exit(130) }
        do {
            let outcome = try await demo.run()
            if json { Console.json(outcome.summaryJSON) }
            demo.cleanUp()
            if outcome.ending != .operational { throw ExitCode(1) }
        } catch let error as OperatorError {
            demo.cleanUp()
            throw fail(error)
        } catch {
            demo.cleanUp()
            throw error
        }
    }
}

final class DemoRun: @unchecked Sendable {
    let keeperCount: Int
    let threshold: Int
    let killOne: Bool
    let dir: URL
    let clock = ContinuousClock()
    let started = ContinuousClock.now
    let lock = NSLock()
    var children: [Process] = []
    var cleaned = false
    let cleanupLock = NSLock()
    let tty = isatty(2) != 0

    init(keepers: Int, threshold: Int, killOne: Bool) throws {
        keeperCount = keepers
        self.threshold = threshold
        self.killOne = killOne
        var template = Array((FileManager.default.temporaryDirectory.path + "/spike-recovery-demo-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw OperatorError("demo: cannot create a temporary directory") }
        dir = URL(fileURLWithPath: String(cString: made))
    }

    func say(_ tag: String, _ text: String) {
        let ms = (ContinuousClock.now - started) / .milliseconds(1)
        let label = tty ? "\u{1B}[36m\(tag.padding(toLength: 9, withPad: " ", startingAt: 0))\u{1B}[0m" : tag.padding(toLength: 9, withPad: " ", startingAt: 0)
        Console.say(String(format: "%8.1f ms  ", ms) + label + " " + text)
    }

    func run() async throws -> RecoveryOutcome {
        // A development CA and the SVIDs.
        let pki = try DevelopmentPKI()
        try pki.writeBundle(into: dir)
        try pki.write(path: "/spike/nexus", name: "nexus", into: dir)
        try pki.write(path: "/spike/bootstrap", name: "bootstrap", into: dir)
        for i in 1...keeperCount { try pki.write(path: "/spike/keeper/\(i)", name: "keeper-\(i)", into: dir) }
        say("setup", "dev CA and SVIDs for nexus, bootstrap and \(keeperCount) keepers in \(dir.path)")

        // A SPIKE database under a fresh root key.
        let rootKey = DemoRun.freshRootKey()
        let databasePath = dir.appendingPathComponent("nexus/data/spike.db").path
        let (secrets, versions, policies) = try DemoRun.writeSampleDatabase(path: databasePath, rootKey: rootKey)
        say("setup", "SPIKE database: \(secrets) secrets, \(versions) versions, \(policies) policies, AES-256-GCM under a fresh root key")

        // Keeper processes.
        var urls: [String] = []
        for i in 1...keeperCount {
            let port = try DemoRun.freePort()
            try startKeeper(index: i, port: port)
            urls.append("https://127.0.0.1:\(port)")
        }
        let roots = TrustRoots()
        let group = MultiThreadedEventLoopGroup.singleton
        let bootstrap = MTLSKeeperClient(group: group, source: try source("bootstrap", roots: roots), trustRoots: roots)
        for (i, url) in urls.enumerated() { try await waitForKeeper(url: url, index: i + 1) }
        say("keepers", "\(keeperCount) keeper processes up on \(urls.map { $0.replacingOccurrences(of: "https://", with: "") }.joined(separator: ", "))")

        // Bootstrap: split and seed, keeper i gets share i.
        let split = try NativeShamir().split(rootKey: rootKey, threshold: threshold, shares: keeperCount)
        for (i, shard) in split.shards.enumerated() {
            if case .failure(let e) = await bootstrap.contribute(url: urls[i] + "/v1/store/contribute", shard: shard.value, deadline: .seconds(15)) {
                throw OperatorError("demo: seeding keeper \(i + 1) failed: \(e)")
            }
            shard.value.wipe()
        }
        say("bootstrap", "split the root key \(threshold)-of-\(keeperCount) and sent share i to keeper i over mTLS")
        let minted = rootKey.copy()
        rootKey.wipe()
        if killOne {
            lock.withLock { children[0].interrupt() }
            lock.withLock { children[0] }.waitUntilExit()
            say("fault", "keeper 1 killed (its shard is gone with it)")
        }

        // Nexus: starts without a root key and recovers.
        say("nexus", "starts with no root key in memory (step 1)")
        let config = RecoveryConfiguration(keepers: urls, threshold: threshold, shares: keeperCount, databasePath: databasePath,
                                           maximumBackoff: .seconds(1), initialBackoff: .milliseconds(200), requestDeadline: .seconds(2),
                                           deadline: .seconds(30), updateInterval: .seconds(300))
        let client = MTLSKeeperClient(group: group, source: try source("nexus", roots: roots), trustRoots: roots)
        let holder = RootKeyHolder()
        let trace = try TraceRecorder(observer: { [self] entry in
            var text = entry.event.replacingOccurrences(of: "_", with: " ")
            if let keeper = entry.keeper { text += " — keeper \(keeper)" }
            if let detail = entry.detail { text += " (\(detail))" }
            say("step " + entry.step, text)
        })
        let logger = Logger(label: "demo-nexus")
        let recovery = NexusRecovery(config: config, client: client, store: SQLiteStore(path: databasePath), holder: holder, trace: trace, logger: logger)
        let distributor = ShardDistributor(config: config, client: client, holder: holder, logger: logger)
        let outcome = await recovery.run(distributor: nil)
        if outcome.ending == .operational {
            let delivered = await distributor.distributeOnce()
            say("nexus", "first distribution round: keepers \(delivered) hold their shard")
            let same = holder.copy()?.constantTimeEquals(minted) ?? false
            say("check", same ? "the recovered root key is the one Bootstrap minted" : "THE RECOVERED KEY DIFFERS")
            let s = outcome.state
            Console.say("demo ok: operational in \(Int(outcome.elapsedMilliseconds)) ms — \(s?.secretCount ?? 0) secrets, "
                        + "\(s?.versionCount ?? 0) versions, \(s?.policyCount ?? 0) policies decrypted; shards used \(outcome.shardsUsed)"
                        + (killOne ? "; keeper 1 was down" : ""))
            if !same { return RecoveryOutcome(ending: .failed("recovered key differs"), state: nil, shardsUsed: [], keepersRejected: [], elapsedMilliseconds: 0) }
        } else {
            Console.say("demo failed: \(outcome.summaryJSON)")
        }
        minted.wipe()
        holder.wipe()
        return outcome
    }

    func source(_ name: String, roots: TrustRoots) throws -> FileX509Source {
        try FileX509Source(certFile: dir.appendingPathComponent("\(name).pem").path, keyFile: dir.appendingPathComponent("\(name).key").path,
                           bundleFile: dir.appendingPathComponent("bundle.pem").path, trustDomains: [TrustRoots.defaultRoot])
    }

    func startKeeper(index: Int, port: Int) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        p.arguments = ["keeper"]
        var env = ProcessInfo.processInfo.environment
        env["SPIKE_SVID_CERT_FILE"] = dir.appendingPathComponent("keeper-\(index).pem").path
        env["SPIKE_SVID_KEY_FILE"] = dir.appendingPathComponent("keeper-\(index).key").path
        env["SPIKE_SVID_BUNDLE_FILE"] = dir.appendingPathComponent("bundle.pem").path
        env["SPIKE_KEEPER_TLS_PORT"] = "127.0.0.1:\(port)"
        env["SPIKE_SYSTEM_LOG_LEVEL"] = "warn"
        env["SPIKE_RECOVERY_PARENT_PID"] = String(getpid())
        p.environment = env
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        lock.withLock { children.append(p) }
    }

    /// Keepers start in well under a second; the 30 s bound is for a machine busy
    /// with other work (a CI run under sanitizers), not for a normal start.
    func waitForKeeper(url: String, index: Int) async throws {
        let until = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < until {
            if connectable(url) { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw OperatorError("demo: keeper \(index) did not start listening on \(url) within 30 s")
    }

    func connectable(_ url: String) -> Bool {
        guard let port = URLComponents(string: url)?.port else { return false }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }

    /// Stops the keepers and removes the directory. Safe to call twice and
    /// from two threads (Ctrl-C and the main flow): the second caller waits
    /// until the first has finished, so neither exits with work half done.
    func cleanUp() {
        cleanupLock.lock()
        defer { cleanupLock.unlock() }
        guard !cleaned else { return }
        cleaned = true
        let procs = lock.withLock { children }
        for p in procs where p.isRunning { p.terminate() }
        for p in procs { p.waitUntilExit() }
        try? FileManager.default.removeItem(at: dir)
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { throw OperatorError("demo: no free loopback port") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// 32 random bytes below n, not zero.
    static func freshRootKey() -> SecretBytes {
        while true {
            let key = SecretBytes(zeroedCount: ShamirConstants.scalarByteCount)
            key.withUnsafeMutableBytes { raw in
                var rng = SystemRandomNumberGenerator()
                for i in 0..<raw.count { raw[i] = UInt8.random(in: 0...255, using: &rng) }
            }
            if NativeShamir.isCanonicalNonZero(key) { return key }
        }
    }

    static func writeSampleDatabase(path: String, rootKey: SecretBytes) throws -> (Int, Int, Int) {
        let w = try SpikeDatabaseWriter(path: path, rootKey: rootKey)
        let now = Date()
        let samples: [(String, [[String: String]])] = [
            ("apps/billing/db", [["username": "billing", "password": "first-password"], ["username": "billing", "password": "rotated-password"]]),
            ("apps/billing/stripe", [["api_key": "sk_demo_51H…"]]),
            ("apps/frontend/session", [["secret": "<signing & sealing>"]]),
            ("infra/ssh/deploy", [["private_key": "-----BEGIN OPENSSH PRIVATE KEY-----…"], ["private_key": "rotated"], ["private_key": "rotated again"]]),
            ("teams/ünïcödé/notes", [["note": "日本語のメモ 🔐"]]),
        ]
        var versions = 0
        for (path, datas) in samples {
            let vs = datas.enumerated().map { i, data in
                SpikeDatabaseWriter.Version(version: i + 1, data: data, created: now.addingTimeInterval(Double(i)),
                                            deleted: (i == 0 && datas.count > 2) ? now.addingTimeInterval(5) : nil)
            }
            versions += vs.count
            try w.putSecret(path: path, versions: vs, created: now, updated: now)
        }
        let t = Int64(now.timeIntervalSince1970)
        try w.putPolicy(name: "billing-readers", spiffeIDPattern: "^spiffe://spike\\.ist/workload/billing$", pathPattern: "^apps/billing/.*$",
                        permissions: ["read", "list"], created: t, updated: t)
        try w.putPolicy(name: "admins", spiffeIDPattern: "^spiffe://spike\\.ist/spike/pilot/role/superuser$", pathPattern: ".*",
                        permissions: ["super"], created: t, updated: t)
        return (samples.count, versions, 2)
    }
}
