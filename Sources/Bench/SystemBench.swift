import BackingStore
import BackingStoreWriter
import Foundation
import KeeperService
import Logging
import NIOCore
import NIOPosix
import Recovery
import SecureMemory
import Shamir
import SpiffeIdentity

/// `bench --system`: the store and the whole recovery, on loopback with real
/// mTLS keepers and a real SQLite file (in-process, one event loop group).
public enum SystemBench {
    /// Records (name, milliseconds) for each measure; `quick` for a smoke run.
    public static func run(quick: Bool, record: (String, Double) -> Void) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spike-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = NativeShamir.randomRootKey()
        defer { key.wipe() }

        // Store: 2,000 paths × 5 versions = 10,000 secret versions.
        let bigPath = dir.appendingPathComponent("big/spike.db").path
        do {
            let w = try SpikeDatabaseWriter(path: bigPath, rootKey: key)
            let t = Date()
            try w.execute("BEGIN")
            for i in 0..<2000 {
                try w.putSecretInTransaction(path: "apps/app-\(i)/config",
                                             versions: (1...5).map { .init(version: $0, data: ["user": "u\(i)", "password": "p\(i)-\($0)", "url": "https://db-\(i).internal:5432"], created: t) },
                                             created: t, updated: t)
            }
            try w.execute("COMMIT")
        }
        var loadTimes: [Double] = []
        for _ in 0..<(quick ? 2 : 5) {
            let start = ContinuousClock.now
            let state = try SpikeDatabase.load(path: bigPath, rootKey: key)
            loadTimes.append((ContinuousClock.now - start) / .milliseconds(1))
            precondition(state.versionCount == 10_000)
        }
        record("store_load_10000_versions_ms", loadTimes.sorted()[loadTimes.count / 2])

        // Recovery, start to step 12.
        let smallPath = dir.appendingPathComponent("small/spike.db").path
        do {
            let w = try SpikeDatabaseWriter(path: smallPath, rootKey: key)
            for i in 0..<20 {
                try w.putSecret(path: "s/\(i)", versions: [.init(version: 1, data: ["k": "v\(i)"], created: Date())], created: Date(), updated: Date())
            }
            try w.putPolicy(name: "p", spiffeIDPattern: ".*", pathPattern: ".*", permissions: ["read"], created: 1, updated: 1)
        }
        let pki = try DevelopmentPKI()
        let group = MultiThreadedEventLoopGroup.singleton
        let quiet = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
        let nexus = StaticX509Source(try pki.snapshot(path: "/spike/nexus"))
        for (label, count, silent) in [("recovery_3_keepers_ms", 3, false), ("recovery_5_keepers_ms", 5, false),
                                       ("recovery_10_keepers_ms", 10, false), ("recovery_3_keepers_one_silent_ms", 3, true)] {
            var servers: [KeeperServer] = []
            var urls: [String] = []
            var silentChannel: Channel?
            let threshold = count == 3 ? 2 : count / 2 + 1
            let shards = try NativeShamir().split(rootKey: key, threshold: threshold, shares: count).shards
            defer { for s in shards { s.value.wipe() } }
            for i in 0..<count {
                if silent && i == 0 {
                    let ch = try await ServerBootstrap(group: group).childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
                        .bind(host: "127.0.0.1", port: 0).get()
                    silentChannel = ch
                    urls.append("https://127.0.0.1:\(ch.localAddress!.port!)")
                    continue
                }
                let k = KeeperServer(source: StaticX509Source(try pki.snapshot(path: "/spike/keeper/\(i + 1)")), trustRoots: TrustRoots(),
                                     logger: quiet, group: group)
                try await k.start(host: "127.0.0.1", port: 0)
                k.slot.store(shards[i].value)
                servers.append(k)
                urls.append("https://127.0.0.1:\(k.port)")
            }
            let client = MTLSKeeperClient(group: group, source: nexus, trustRoots: TrustRoots())
            var times: [Double] = []
            for _ in 0..<(quick ? 3 : 15) {
                let config = RecoveryConfiguration(keepers: urls, threshold: threshold, shares: count, databasePath: smallPath,
                                                   requestDeadline: .seconds(10), deadline: .seconds(30))
                let r = NexusRecovery(config: config, client: client, store: SQLiteStore(path: smallPath), holder: RootKeyHolder(),
                                      trace: try TraceRecorder(), logger: quiet)
                let outcome = await r.run(distributor: nil)
                precondition(outcome.ending == .operational, "bench recovery failed: \(outcome.summaryJSON)")
                times.append(outcome.elapsedMilliseconds)
            }
            record(label, times.sorted()[times.count / 2])
            for s in servers { await s.stop() }
            try? await silentChannel?.close()
        }
    }
}
