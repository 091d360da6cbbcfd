import ArgumentParser
import Foundation
import Logging
import MutualTLS
import NIOPosix
import Recovery
import SecureMemory
import ShamirCore
import SpiffeIdentity

/// `spike-recovery nexus`: the Nexus recovery lifecycle (Spec/recovery.md steps 1–12),
/// then periodic shard distribution; serves Pilot's restore/recover routes.
struct NexusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nexus",
        abstract: "Recover the root key from the keepers, open the store, keep distributing shards.",
        discussion: """
            Settings: SPIKE_NEXUS_KEEPER_PEERS (comma-separated https URLs; position = share id), \
            SPIKE_NEXUS_SHAMIR_THRESHOLD (2), SPIKE_NEXUS_SHAMIR_SHARES (3), SPIKE_NEXUS_DATA_DIR \
            (database at $SPIKE_NEXUS_DATA_DIR/data/spike.db), SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL (5m), \
            SPIKE_NEXUS_RECOVERY_MAX_INTERVAL (5s), SPIKE_NEXUS_KEEPER_REQUEST_TIMEOUT (3s), \
            SPIKE_NEXUS_TLS_PORT (:8553), SPIKE_SVID_*_FILE, SPIKE_TRUST_ROOT_*, SPIKE_SYSTEM_LOG_LEVEL.
            The store decides whether a rebuilt key is right: it must open the database's rows. A missing \
            database is a bad setting (exit 64, naming SPIKE_NEXUS_DATA_DIR) unless --allow-empty-store; a \
            database that cannot be read (locked, not a database, a table missing) is retried until it can \
            be, or until --deadline; an empty or allowed-missing store cannot check a key, which is then \
            accepted only when all SPIKE_NEXUS_SHAMIR_SHARES keepers' shards lie on one polynomial.
            Exit status: 0 operational (with --once: after one distribution round) or stopped by a signal; \
            1 not operational (deadline, refused key, state error); 64 bad settings.
            """)

    @Flag(help: "After step 12, run one distribution round, then exit.") var once = false
    @Option(parsing: .upToNextOption, help: "Take the root key from Pilot shard files instead of the keepers.") var restore: [String] = []
    @Option(help: "Give up (exit 1) if not operational within this many seconds.") var deadline: Double?
    @Option(help: "Append one JSON object per transition to this file.") var trace: String?
    @Flag(help: "Print the summary as one JSON object on stdout.") var json = false
    @Option(help: "Serve Prometheus metrics on this host:port (GET /metrics, plain HTTP).") var metricsAddress: String?
    @Flag(help: "First boot of a fresh installation: a missing database is not an error (its key is accepted only when all keepers agree).")
    var allowEmptyStore = false

    func validate() throws {
        if let deadline, !(deadline > 0 && deadline < 1e7) { throw ValidationError("--deadline must be a positive number of seconds") }
    }

    func run() async throws {
        Settings.bootstrapLogging()
        let logger = Logger(label: "spike-nexus")
        ProcessHardening.apply(logger: logger)
        let setup: NexusSetup
        do {
            if let metricsAddress { _ = try await MetricsEndpoint.start(address: metricsAddress) }
            setup = try await NexusSetup.fromEnvironment(logger: logger, deadline: deadline.map { .milliseconds(Int64($0 * 1000)) },
                                                         allowEmptyStore: allowEmptyStore)
        } catch let error as OperatorError {
            throw fail(error)
        }
        // Restore files are read before anything listens: a bad file is a clear error, nothing else happens.
        let files: [Shard]
        do {
            files = try restore.isEmpty ? [] : setup.readRestoreFiles(restore)
        } catch let error as OperatorError {
            throw fail(error)
        }
        defer { for f in files { f.value.wipe() } }
        let recorder: TraceRecorder
        do {
            recorder = try TraceRecorder(file: trace)
        } catch {
            throw fail(OperatorError("--trace: cannot write \(trace ?? ""): \(error.localizedDescription)", exitCode: 64))
        }
        let recovery = setup.makeRecovery(trace: recorder)
        do {
            try await setup.startOperatorServer(recovery: recovery)
        } catch {
            throw fail(OperatorError("SPIKE_NEXUS_TLS_PORT: cannot listen on \(setup.listen.host):\(setup.listen.port): \(error)"))
        }
        defer { setup.holder.wipe() }

        let outcome = await recovery.run(distributor: once ? nil : setup.distributor, restoreFiles: files)
        report(outcome, logger: logger)
        switch outcome.ending {
        case .failed:
            await setup.stop()
            throw ExitCode(1)
        case .rejected:
            await setup.stop()
            throw ExitCode(64)
        case .stoodDown:
            await setup.stop()
            return
        case .operational:
            break
        }
        if once {
            let delivered = await setup.distributor.distributeOnce()
            logger.info("distribution round: keepers \(delivered) took their shard")
            await setup.stop()
            return
        }
        let sig = await Signals.waitForTermination()
        logger.info("signal \(sig): stopping; root key wiped")
        await setup.stop()
    }

    func report(_ outcome: RecoveryOutcome, logger: Logger) {
        if json { Console.json(outcome.summaryJSON) }
        switch outcome.ending {
        case .operational:
            let s = outcome.state
            logger.info("operational in \(Int(outcome.elapsedMilliseconds)) ms: \(s?.secretCount ?? 0) secrets, \(s?.versionCount ?? 0) versions, \(s?.policyCount ?? 0) policies; shards used \(outcome.shardsUsed); keepers rejected \(outcome.keepersRejected)")
        case .stoodDown:
            logger.notice("recovery stood down: the root key was installed by another writer")
        case .failed(let reason):
            logger.error("not operational: \(reason)")
        case .rejected(let reason):
            logger.error("\(reason)")
        }
    }
}

/// Everything a Nexus process wires together from its settings.
final class NexusSetup: @unchecked Sendable {
    let config: RecoveryConfiguration
    let roots: TrustRoots
    let source: any X509Source
    let holder = RootKeyHolder()
    let client: MTLSKeeperClient
    let store: SQLiteStore
    let distributor: ShardDistributor
    let listen: (host: String, port: Int)
    let logger: Logger
    let server = MTLSHTTPServer(group: MultiThreadedEventLoopGroup.singleton)

    init(config: RecoveryConfiguration, roots: TrustRoots, source: any X509Source, listen: (host: String, port: Int), logger: Logger) {
        self.config = config
        self.roots = roots
        self.source = source
        self.listen = listen
        self.logger = logger
        client = MTLSKeeperClient(group: MultiThreadedEventLoopGroup.singleton, source: source, trustRoots: roots)
        store = SQLiteStore(path: config.databasePath)
        distributor = ShardDistributor(config: config, client: client, holder: holder, logger: logger)
    }

    static func fromEnvironment(logger: Logger, deadline: Duration?, allowEmptyStore: Bool) async throws -> NexusSetup {
        let env = Settings.environment
        guard let peers = env[RecoveryConfiguration.peersVariable], !peers.isEmpty else {
            throw Settings.bad(RecoveryConfiguration.peersVariable, "not set (comma-separated https URLs of the keepers)")
        }
        let keepers: [String]
        do {
            keepers = try RecoveryConfiguration.parsePeers(peers)
        } catch {
            throw OperatorError(error.description, exitCode: 64)
        }
        let threshold = try Settings.integer(RecoveryConfiguration.thresholdVariable, default: 2, range: 1...1000)
        let shares = try Settings.integer(RecoveryConfiguration.sharesVariable, default: 3, range: 1...1000)
        let dataRoot: String
        if let dir = env[RecoveryConfiguration.dataDirectoryVariable], !dir.isEmpty {
            guard dir.hasPrefix("/") else { throw Settings.bad(RecoveryConfiguration.dataDirectoryVariable, "must be an absolute path (got \"\(dir)\")") }
            dataRoot = (dir as NSString).appendingPathComponent("data")
        } else {
            dataRoot = (NSHomeDirectory() as NSString).appendingPathComponent(".spike/data")
        }
        var config = RecoveryConfiguration(
            keepers: keepers, threshold: threshold, shares: shares, databasePath: (dataRoot as NSString).appendingPathComponent("spike.db"),
            maximumBackoff: try Settings.duration("SPIKE_NEXUS_RECOVERY_MAX_INTERVAL", default: .seconds(5)),
            requestDeadline: try Settings.duration("SPIKE_NEXUS_KEEPER_REQUEST_TIMEOUT", default: .seconds(3)),
            deadline: deadline,
            updateInterval: try Settings.duration("SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL", default: .seconds(300)),
            allowEmptyStore: allowEmptyStore)
        config.initialBackoff = min(config.initialBackoff, config.maximumBackoff)
        do {
            // Step 3's checks, the store rule included, before any identity is fetched or request sent.
            try config.validate()
            try config.validateStorePresence()
        } catch {
            throw OperatorError(error.description, exitCode: 64)
        }
        let roots = try Settings.trustRoots()
        let source = try await Settings.x509Source(trustRoots: roots, logger: logger)
        guard roots.id(source.current.id, hasRole: .nexus) else {
            throw OperatorError("the SVID \(source.current.id) is not a nexus ID (expected spiffe://<\(SpikeRole.nexus.trustRootVariable)>/spike/nexus[/...])", exitCode: 64)
        }
        let listen = try Settings.listenAddress("SPIKE_NEXUS_TLS_PORT", default: ":8553")
        return NexusSetup(config: config, roots: roots, source: source, listen: listen, logger: logger)
    }

    func makeRecovery(trace: TraceRecorder) -> NexusRecovery {
        NexusRecovery(config: config, client: client, store: store, holder: holder, trace: trace, logger: logger)
    }

    func startOperatorServer(recovery: NexusRecovery) async throws {
        let routes = OperatorRoutes(recovery: recovery, trustRoots: roots)
        let logger = self.logger
        try await server.start(
            host: listen.host, port: listen.port, source: source,
            policy: PeerPolicy(name: "a SPIFFE ID of a trusted domain") { _ in true },
            tooLargeResponse: HTTPResponseData(status: .payloadTooLarge, body: Array("{\"err\":\"api_bad_request\"}".utf8)),
            onRefused: { logger.notice("operator TLS handshake refused: \($0)") },
            responder: .async { request in
                let answer = await routes.handle(method: request.method.rawValue, uri: request.uri, body: request.body, peer: request.peer)
                logger.info("\(request.peer) \(request.method.rawValue) \(request.uri) \(answer.status)")
                return HTTPResponseData(status: .init(statusCode: answer.status), body: answer.body)
            })
        logger.info("operator routes on \(listen.host):\(server.port)")
    }

    /// `--restore FILE...`: Pilot shard files, checked before the machine starts.
    func readRestoreFiles(_ files: [String]) throws -> [Shard] {
        let shards = try PilotFiles.read(files)
        guard shards.count >= config.threshold else {
            for s in shards { s.value.wipe() }
            throw OperatorError("--restore: need \(config.threshold) shard files, got \(shards.count)")
        }
        return shards
    }

    func stop() async {
        distributor.stop()
        await server.stop()
    }
}
