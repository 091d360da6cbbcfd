import ArgumentParser
import BreakGlass
import Foundation
import Logging
import MutualTLS
import NexusService
import ProcessSupport
import Recovery
import SecureMemory
import NIOConcurrencyHelpers
import ServiceLifecycle
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
            SPIKE_NEXUS_TLS_PORT (:8553), SPIKE_NEXUS_KEEPER_IDS (optional: the SPIFFE ID each keeper must \
            present, in SPIKE_NEXUS_KEEPER_PEERS order; unset, any keeper ID is accepted at any position, as in Go SPIKE), \
            SPIKE_SVID_*_FILE, SPIKE_TRUST_ROOT_*, SPIKE_TLS_MAX_CONNECTIONS (1024), SPIKE_MEM_LOCK_DISABLED (false), \
            SPIKE_SYSTEM_LOG_LEVEL.
            The store decides whether a rebuilt key is right: it must open the database's rows. A missing \
            database is a bad setting (exit 64, naming SPIKE_NEXUS_DATA_DIR) unless --allow-empty-store; a \
            database that cannot be read (locked, not a database, a table missing) is retried until it can \
            be, or until --deadline; an empty or allowed-missing store cannot check a key, which is then \
            accepted only when all SPIKE_NEXUS_SHAMIR_SHARES keepers' shards lie on one polynomial.
            On SIGTERM or SIGINT: stops accepting operator requests, answers those in flight, stops \
            distribution (or the recovery, before step 12), wipes the root key and every shard, exits 0.
            Exit status: 0 operational (with --once: after one distribution round) or stopped by a signal; \
            1 not operational (deadline, refused key, state error); 64 bad settings.
            """)

    @Flag(help: "After step 12, run one distribution round, then exit.") var once = false
    @Option(parsing: .upToNextOption, help: "Take the root key from Pilot shard files instead of the keepers.") var restore: [String] = []
    @Option(help: "Give up (exit 1) if not operational within this many seconds.") var deadline: Double?
    @Option(help: "Append one JSON object per transition to this file.") var trace: String?
    @Flag(help: "Print the summary as one JSON object on stdout.") var json = false
    @Option(help: "Serve plain HTTP on this host:port: GET /metrics (Prometheus), /healthz, /readyz (200 once operational).") var metricsAddress: String?
    @Flag(help: "First boot of a fresh installation: a missing database is not an error (its key is accepted only when all keepers agree).")
    var allowEmptyStore = false

    func validate() throws {
        if let deadline, !(deadline > 0 && deadline < 1e7) { throw ValidationError("--deadline must be a positive number of seconds") }
    }

    /// The warm-ups of a nexus process (`MTLSClient.startEarlyWarmUp`,
    /// `RecoveryWarmUp`): fixed public inputs, no secret, no keeper, no store.
    /// Started once; `SpikeRecovery.main` starts them before the command line
    /// is parsed, `run` in case it did not.
    static func startWarmUps() { _ = warmUpsStarted }
    private static let warmUpsStarted: Void = {
        MTLSClient.startEarlyWarmUp()
        RecoveryWarmUp.start()
    }()

    func run() async throws {
        Self.startWarmUps()
        let logger: Logger
        do {
            logger = try Settings.startProcess(label: "spike-nexus")
        } catch let error as OperatorError {
            throw fail(error)
        }
        // Each service is named: unnamed, the group describes it with "\(service)",
        // a reflection whose runtime type lookups would run beside the handshakes.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        let metrics: MetricsEndpoint?
        let settings: NexusSettings
        do {
            metrics = try await Settings.metricsEndpoint(metricsAddress)
            if let metrics { services.append(.init(service: metrics, serviceName: "metrics")) }
            settings = try await NexusSettings.fromEnvironment(logger: logger, deadline: deadline.map { .milliseconds(Int64($0 * 1000)) },
                                                               allowEmptyStore: allowEmptyStore)
        } catch let error as OperatorError {
            throw fail(error)
        }
        let node = NexusNode(config: settings.config, trustRoots: settings.roots, source: settings.source, logger: logger)
        defer { node.holder.wipe() }
        // The keeper client's and the operator server's TLS contexts are built on
        // the other core while the rest of start-up runs (MTLSClient.startWarmUp says why).
        node.client.startWarmUp()
        node.operatorTLS.startWarmUp()
        // Restore files are read before anything listens: a bad file is a clear error, nothing else happens.
        let files: [Shard]
        do {
            files = try settings.readRestoreFiles(restore)
        } catch let error as OperatorError {
            throw fail(error)
        }
        defer { for f in files { f.value.wipe() } }
        let recorder: TraceRecorder
        do {
            recorder = try TraceRecorder(file: trace)
        } catch {
            throw fail(OperatorError("--trace: \(error)", exitCode: 64))
        }
        let recovery = node.makeRecovery(trace: recorder)
        metrics?.setReadiness { recovery.isOperational }
        let outcome = OutcomeBox()
        let json = self.json
        let service = RecoveryService(recovery: recovery, mode: once ? .once(node.distributor) : .serve(node.distributor),
                                      restoreFiles: files, logger: logger) { result in
            outcome.set(result)
            Self.report(result, json: json, logger: logger)
        }
        // The keeper requests go out first; the operator server's TLS set-up and
        // listen, and the group's start, happen while the handshakes run. Nothing
        // is distributed before the group runs, so a port that cannot be had
        // stops the machine with no keeper written to.
        service.begin()
        let server = node.makeOperatorServer(recovery: recovery)
        do {
            try await server.start(host: settings.listen.host, port: settings.listen.port, maximumConnections: settings.maximumConnections)
        } catch {
            await service.abandon()
            throw fail(OperatorError("SPIKE_NEXUS_TLS_PORT: cannot listen on \(settings.listen): \(error)"))
        }
        // Stopped in reverse: the operator server first (no new requests, in-flight ones
        // answered), then the recovery, then distribution, then the SVID source.
        services.append(.init(service: settings.source, serviceName: "svid-source"))
        if !once { services.append(.init(service: node.distributor, serviceName: "shard-distributor")) }
        services.append(.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup,
                              failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "recovery"))
        services.append(.init(service: server, serviceName: "operator-server"))
        await Settings.runServices(services, logger: logger)
        node.holder.wipe()
        switch outcome.value?.ending {
        case .failed?, nil:
            throw ExitCode(1)
        case .rejected?:
            throw ExitCode(64)
        case .operational?:
            logger.info("stopped; root key wiped")
        case .stoodDown?, .stopped?:
            return
        }
    }

    static func report(_ outcome: RecoveryOutcome, json: Bool, logger: Logger) {
        if json { Console.json(outcome.summaryJSON) }
        switch outcome.ending {
        case .operational:
            let s = outcome.state
            logger.info("operational in \(Int(outcome.elapsedMilliseconds)) ms: \(s?.secretCount ?? 0) secrets, \(s?.versionCount ?? 0) versions, \(s?.policyCount ?? 0) policies; shards used \(idList(outcome.shardsUsed)); keepers rejected \(idList(outcome.keepersRejected))")
        case .stoodDown:
            logger.notice("recovery stood down: the root key was installed by another writer")
        case .stopped:
            logger.notice("stopped before step 12: nothing installed")
        case .failed(let reason):
            logger.error("not operational: \(reason)")
        case .rejected(let reason):
            logger.error("\(reason)")
        }
    }
}

/// The recovery's outcome, handed from the service to the command.
final class OutcomeBox: Sendable {
    private let box = NIOLockedValueBox<RecoveryOutcome?>(nil)
    func set(_ outcome: RecoveryOutcome) { box.withLockedValue { $0 = outcome } }
    var value: RecoveryOutcome? { box.withLockedValue { $0 } }
}

/// A Nexus's settings, parsed from the environment (every bad value is one line, exit 64).
struct NexusSettings {
    let config: RecoveryConfiguration
    let roots: TrustRoots
    let source: any X509Source & Service
    let listen: ListenAddress
    let maximumConnections: Int

    static func fromEnvironment(logger: Logger, deadline: Duration?, allowEmptyStore: Bool) async throws -> NexusSettings {
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
        let roots = try Settings.trustRoots()
        let maximumConnections = try Settings.maximumConnections()
        var keeperIDs: [SpiffeID]?
        if let raw = env[RecoveryConfiguration.keeperIDsVariable], !raw.isEmpty {
            do {
                keeperIDs = try RecoveryConfiguration.parseKeeperIDs(raw, trustRoots: roots)
            } catch {
                throw OperatorError(error.description, exitCode: 64)
            }
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
            maximumBackoff: try Settings.duration("SPIKE_NEXUS_RECOVERY_MAX_INTERVAL", default: .seconds(5), range: .milliseconds(10) ... .seconds(3600)),
            requestDeadline: try Settings.duration("SPIKE_NEXUS_KEEPER_REQUEST_TIMEOUT", default: .seconds(3), range: .milliseconds(10) ... .seconds(300)),
            deadline: deadline,
            // At least 1 s: each round is one request per keeper, and 1ns would be hundreds of rounds a second.
            updateInterval: try Settings.duration("SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL", default: .seconds(300), range: .seconds(1) ... .seconds(86_400)),
            allowEmptyStore: allowEmptyStore, keeperIDs: keeperIDs)
        config.initialBackoff = min(config.initialBackoff, config.maximumBackoff)
        do {
            // Step 3's checks, the store rule included, before any identity is fetched or request sent.
            try config.validate()
            try config.validateStorePresence()
        } catch {
            throw OperatorError(error.description, exitCode: 64)
        }
        let source = try await Settings.x509Source(role: .nexus, trustRoots: roots, logger: logger)
        _ = try Settings.requireOwnRole(.nexus, source: source, trustRoots: roots)
        let listen = try Settings.listenAddress("SPIKE_NEXUS_TLS_PORT", default: ":8553")
        return NexusSettings(config: config, roots: roots, source: source, listen: listen, maximumConnections: maximumConnections)
    }

    /// `--restore FILE...`: Pilot shard files, checked before the machine starts.
    func readRestoreFiles(_ files: [String]) throws -> [Shard] {
        guard !files.isEmpty else { return [] }
        let shards: [Shard]
        do {
            shards = try PilotFiles.read(files, warn: { Console.say($0) })
        } catch {
            throw OperatorError(error)
        }
        guard shards.count >= config.threshold else {
            for s in shards { s.value.wipe() }
            throw OperatorError("--restore: need \(config.threshold) shard files, got \(shards.count)")
        }
        return shards
    }
}
