import BackingStore
import BackingStoreWriter
import Foundation
import Logging
import MutualTLS
import NIOConcurrencyHelpers
import NIOPosix
import Recovery
import SecureMemory
import Shamir
import ShamirCore
import SpiffeIdentity

/// A demo or benchmark set-up that could not be made: one line, no secret.
public struct DemoError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// `spike-recovery demo`: everything on loopback in a temporary directory: a
/// development CA, N keeper processes (`keeperExecutable keeper`), a
/// SPIKE-format database under a fresh root key, keepers seeded as Bootstrap
/// does, then a Nexus that starts without the key and recovers it, step by
/// step. Each line of the running account goes to `say`.
///
/// Invariant: `cleanUp` stops every keeper started and removes the directory;
/// it is safe to call twice and from two threads.
public final class DemoRun: @unchecked Sendable {
    let keeperCount: Int
    let threshold: Int
    let killOne: Bool
    let keeperExecutable: String
    let output: @Sendable (String) -> Void
    let colour: Bool
    public let dir: URL
    let started = ContinuousClock.now
    private let children = NIOLockedValueBox<[(process: Process, exit: ChildExit)]>([])
    /// Held for the whole clean-up, so a second caller waits until the first is done.
    private let cleaned = NIOLockedValueBox(false)

    public init(keepers: Int, threshold: Int, killOne: Bool, keeperExecutable: String, colour: Bool,
                output: @escaping @Sendable (String) -> Void) throws(DemoError) {
        keeperCount = keepers
        self.threshold = threshold
        self.killOne = killOne
        self.keeperExecutable = keeperExecutable
        self.colour = colour
        self.output = output
        var template = Array((FileManager.default.temporaryDirectory.path + "/spike-recovery-demo-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw DemoError("demo: cannot create a temporary directory") }
        dir = URL(fileURLWithPath: String(cString: made))
    }

    func say(_ tag: String, _ text: String) {
        let ms = (ContinuousClock.now - started) / .milliseconds(1)
        let padded = tag.padding(toLength: 9, withPad: " ", startingAt: 0)
        let label = colour ? "\u{1B}[36m\(padded)\u{1B}[0m" : padded
        output(String(format: "%8.1f ms  ", ms) + label + " " + text)
    }

    /// A dev CA and SVIDs, a SPIKE database under a fresh root key, keeper
    /// processes seeded as Bootstrap does; the key is then wiped (a copy stays
    /// in `minted`, which the caller wipes).
    public func deploy() async throws -> Deployment {
        // A development CA and the SVIDs.
        let pki = try DevelopmentPKI()
        try pki.writeBundle(into: dir)
        try pki.write(path: "/spike/nexus", name: "nexus", into: dir)
        try pki.write(path: "/spike/bootstrap", name: "bootstrap", into: dir)
        for i in 1...keeperCount { try pki.write(path: "/spike/keeper/\(i)", name: "keeper-\(i)", into: dir) }
        say("setup", "dev CA and SVIDs for nexus, bootstrap and \(keeperCount) keepers in \(dir.path)")

        // A SPIKE database under a fresh root key.
        let rootKey = NativeShamir.randomRootKey()
        defer { rootKey.wipe() }
        let databasePath = dir.appendingPathComponent("nexus/data/spike.db").path
        let (secrets, versions, policies) = try DemoRun.writeSampleDatabase(path: databasePath, rootKey: rootKey)
        say("setup", "SPIKE database: \(secrets) secrets, \(versions) versions, \(policies) policies, AES-256-GCM under a fresh root key")

        // Keeper processes.
        var urls: [String] = []
        for i in 1...keeperCount {
            guard let port = Loopback.freePort() else { throw DemoError("demo: no free loopback port") }
            try startKeeper(index: i, port: port)
            urls.append("https://127.0.0.1:\(port)")
        }
        let roots = TrustRoots()
        let group = MultiThreadedEventLoopGroup.singleton
        // Keeper i must present spiffe://spike.ist/spike/keeper/i (SPIKE_NEXUS_KEEPER_IDS): a keeper
        // at the wrong position would otherwise be handed another keeper's shard.
        let keeperIDs = try (1...keeperCount).map { try SpiffeID(parsing: "spiffe://\(TrustRoots.defaultRoot)/spike/keeper/\($0)") }
        var seedPins: [String: SpiffeID] = [:]
        for (i, url) in urls.enumerated() { seedPins[url + "/v1/store/contribute"] = keeperIDs[i] }
        let bootstrap = MTLSKeeperClient(group: group, source: try source("bootstrap", roots: roots), trustRoots: roots, pins: seedPins)
        for (i, url) in urls.enumerated() { try await waitForKeeper(url: url, index: i + 1) }
        say("keepers", "\(keeperCount) keeper processes up on \(urls.map { $0.replacingOccurrences(of: "https://", with: "") }.joined(separator: ", "))")

        // Bootstrap: split and seed, keeper i gets share i.
        let split = try NativeShamir().split(rootKey: rootKey, threshold: threshold, shares: keeperCount)
        defer { for s in split.shards { s.value.wipe() } }
        for (i, shard) in split.shards.enumerated() {
            if case .failure(let e) = await bootstrap.contribute(url: urls[i] + "/v1/store/contribute", shard: shard.value, deadline: .seconds(15)) {
                throw DemoError("demo: seeding keeper \(i + 1) failed: \(e)")
            }
            shard.value.wipe()
        }
        say("bootstrap", "split the root key \(threshold)-of-\(keeperCount) and sent share i to keeper i over mTLS")
        let minted = rootKey.copy()
        rootKey.wipe()
        return Deployment(urls: urls, keeperIDs: keeperIDs, databasePath: databasePath, minted: minted)
    }

    /// What `deploy` set up: keepers seeded with the shards of a root key that
    /// is no longer held anywhere but `minted` (for the final check), and the store.
    public struct Deployment: Sendable {
        public let urls: [String]
        public let keeperIDs: [SpiffeID]
        public let databasePath: String
        let minted: SecretBytes
    }

    /// The whole demo; the outcome is `.operational` only if the recovered key is the minted one.
    public func run() async throws -> RecoveryOutcome {
        let deployment = try await deploy()
        let minted = deployment.minted
        defer { minted.wipe() }
        let urls = deployment.urls, keeperIDs = deployment.keeperIDs, databasePath = deployment.databasePath
        let roots = TrustRoots()
        let group = MultiThreadedEventLoopGroup.singleton
        if killOne {
            let first = children.withLockedValue { $0[0] }
            first.process.interrupt()
            await first.exit.wait()
            say("fault", "keeper 1 killed (its shard is gone with it)")
        }

        // Nexus: starts without a root key and recovers.
        say("nexus", "starts with no root key in memory (step 1)")
        let config = RecoveryConfiguration(keepers: urls, threshold: threshold, shares: keeperCount, databasePath: databasePath,
                                           maximumBackoff: .seconds(1), initialBackoff: .milliseconds(200), requestDeadline: .seconds(2),
                                           deadline: .seconds(30), updateInterval: .seconds(300), keeperIDs: keeperIDs)
        let client = MTLSKeeperClient(group: group, source: try source("nexus", roots: roots), trustRoots: roots,
                                      pins: config.pinnedKeeperIDs)
        let holder = RootKeyHolder()
        defer { holder.wipe() }
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
            let recovered = holder.copy()
            defer { recovered?.wipe() }
            let same = recovered?.constantTimeEquals(minted) ?? false
            say("check", same ? "the recovered root key is the one Bootstrap minted" : "THE RECOVERED KEY DIFFERS")
            let s = outcome.state
            output("demo ok: operational in \(Int(outcome.elapsedMilliseconds)) ms — \(s?.secretCount ?? 0) secrets, "
                        + "\(s?.versionCount ?? 0) versions, \(s?.policyCount ?? 0) policies decrypted; shards used \(outcome.shardsUsed)"
                        + (killOne ? "; keeper 1 was down" : ""))
            if !same { return RecoveryOutcome(ending: .failed("recovered key differs"), state: nil, shardsUsed: [], keepersRejected: [], elapsedMilliseconds: 0) }
        } else {
            output("demo failed: \(outcome.summaryJSON)")
        }
        return outcome
    }

    func source(_ name: String, roots: TrustRoots) throws -> FileX509Source {
        try FileX509Source(certFile: dir.appendingPathComponent("\(name).pem").path, keyFile: dir.appendingPathComponent("\(name).key").path,
                           bundleFile: dir.appendingPathComponent("bundle.pem").path, trustDomains: [TrustRoots.defaultRoot])
    }

    func startKeeper(index: Int, port: Int) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: keeperExecutable)
        p.arguments = ["keeper"]
        var env = ProcessInfo.processInfo.environment
        env["SPIKE_SVID_CERT_FILE"] = dir.appendingPathComponent("keeper-\(index).pem").path
        env["SPIKE_SVID_KEY_FILE"] = dir.appendingPathComponent("keeper-\(index).key").path
        env["SPIKE_SVID_BUNDLE_FILE"] = dir.appendingPathComponent("bundle.pem").path
        env["SPIKE_KEEPER_TLS_PORT"] = "127.0.0.1:\(port)"
        env["SPIKE_SYSTEM_LOG_LEVEL"] = "warn"
        env["SPIKE_RECOVERY_PARENT_PID"] = String(getpid())
        // As the README recommends: no glibc per-thread cache, so every freed block is overwritten.
        env["GLIBC_TUNABLES"] = "glibc.malloc.tcache_count=0"
        p.environment = env
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        let exit = ChildExit()
        p.terminationHandler = { _ in exit.markExited() }
        do {
            try p.run()
        } catch {
            throw DemoError("demo: cannot start keeper \(index) (\(keeperExecutable)): \(error.localizedDescription)")
        }
        children.withLockedValue { $0.append((p, exit)) }
    }

    /// Keepers start in well under a second; the 30 s bound is for a machine busy
    /// with other work (a CI run under sanitizers), not for a normal start.
    func waitForKeeper(url: String, index: Int) async throws {
        let until = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < until {
            if let port = URLComponents(string: url)?.port, Loopback.isListening(port: port) { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw DemoError("demo: keeper \(index) did not start listening on \(url) within 30 s")
    }

    /// Stops the keepers and removes the directory. Safe to call twice and
    /// from two threads (Ctrl-C and the main flow): the second caller waits
    /// until the first has finished, so neither exits with work half done.
    public func cleanUp() {
        cleaned.withLockedValue { done in
            guard !done else { return }
            done = true
            let procs = children.withLockedValue { $0.map(\.process) }
            for p in procs where p.isRunning { p.terminate() }
            // Blocking here is deliberate: clean-up runs at exit, on the signal's thread or after the demo.
            for p in procs { p.waitUntilExit() }
            try? FileManager.default.removeItem(at: dir)
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

/// A child's exit, awaited without blocking a thread of the cooperative pool
/// (set as the process's termination handler before it starts).
final class ChildExit: Sendable {
    private let state = NIOLockedValueBox<(exited: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func markExited() {
        let waiters = state.withLockedValue { s -> [CheckedContinuation<Void, Never>] in
            s.exited = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLockedValue { s -> Bool in
                if s.exited { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }
}
