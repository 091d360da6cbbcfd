import Logging
import MutualTLS
import NIOConcurrencyHelpers
import NIOPosix
import Recovery
import SecureMemory
import ServiceLifecycle
import ShamirCore
import SpiffeIdentity

/// The pieces of one Nexus process, built from its parsed settings: the
/// root-key holder, the keeper client, the store, step 11's distributor and
/// the operator server. The CLI parses; this wires.
public final class NexusNode: Sendable {
    public let config: RecoveryConfiguration
    public let trustRoots: TrustRoots
    public let source: any X509Source
    public let holder = RootKeyHolder()
    public let client: MTLSKeeperClient
    public let store: SQLiteStore
    public let distributor: ShardDistributor
    /// The operator server's TLS contexts, made with the node so that they can
    /// be built before the recovery starts (`ServerTLSContexts.startWarmUp`).
    public let operatorTLS: ServerTLSContexts
    public let logger: Logger

    public init(config: RecoveryConfiguration, trustRoots: TrustRoots, source: any X509Source, logger: Logger) {
        self.config = config
        self.trustRoots = trustRoots
        self.source = source
        self.logger = logger
        client = MTLSKeeperClient(group: MultiThreadedEventLoopGroup.singleton, source: source, trustRoots: trustRoots,
                                  pins: config.pinnedKeeperIDs)
        store = SQLiteStore(path: config.databasePath)
        distributor = ShardDistributor(config: config, client: client, holder: holder, logger: logger)
        operatorTLS = ServerTLSContexts(source: source)
    }

    public func makeRecovery(trace: TraceRecorder) -> NexusRecovery {
        NexusRecovery(config: config, client: client, store: store, holder: holder, trace: trace, logger: logger)
    }

    /// The recovery drill with this node's settings, client and store (writes nothing).
    public func makeDrill() -> RecoveryDrill {
        RecoveryDrill(config: config, client: client, store: SQLiteStore(path: config.databasePath, leavingNoFiles: true))
    }

    public func makeOperatorServer(recovery: NexusRecovery) -> OperatorServer {
        OperatorServer(routes: OperatorRoutes(recovery: recovery, trustRoots: trustRoots), tls: operatorTLS, logger: logger)
    }
}

/// Steps 1–12 as a `Service`, then either one distribution round (`once`) or
/// serving until graceful shutdown. A shutdown before step 12 stops the
/// machine (`NexusRecovery.stop`: nothing installed, every buffer wiped).
/// The run's outcome goes to `onOutcome` as soon as the machine ends.
///
/// In a ServiceGroup it is configured to shut the group down when it returns
/// (recovery failed, stood down, or `once` done), so the process exits.
public final class RecoveryService: Service, Sendable {
    public enum Mode: Sendable {
        /// Distribution is the distributor service's, armed at step 11.
        case serve(ShardDistributor)
        /// After step 12, one distribution round, then return.
        case once(ShardDistributor)
    }

    let recovery: NexusRecovery
    let mode: Mode
    let restoreFiles: [Shard]
    let logger: Logger
    let onOutcome: @Sendable (RecoveryOutcome) -> Void
    private let started = NIOLockedValueBox<Task<RecoveryOutcome, Never>?>(nil)

    public init(recovery: NexusRecovery, mode: Mode, restoreFiles: [Shard], logger: Logger,
                onOutcome: @escaping @Sendable (RecoveryOutcome) -> Void) {
        self.recovery = recovery
        self.mode = mode
        self.restoreFiles = restoreFiles
        self.logger = logger
        self.onOutcome = onOutcome
    }

    /// Starts steps 1–12 now, before the service group runs, so that the keeper
    /// requests overlap the rest of start-up (the operator server's TLS set-up
    /// and listen, the group's own start). Idempotent; `run` waits for this run.
    public func begin() {
        let recovery = self.recovery, restoreFiles = self.restoreFiles
        let armed: ShardDistributor? = if case .serve(let d) = mode { d } else { nil }
        started.withLockedValue { task in
            if task == nil { task = Task { await recovery.run(distributor: armed, restoreFiles: restoreFiles) } }
        }
    }

    /// For a process that cannot go on (e.g. its port is taken) after `begin`:
    /// stops a run not yet at step 12 and waits until the machine has ended
    /// and wiped its buffers. Nothing is distributed: that is `run`'s.
    public func abandon() async {
        recovery.stop()
        _ = await started.withLockedValue { $0 }?.value
    }

    public func run() async {
        begin()
        let recovery = self.recovery
        let run = started.withLockedValue { $0 }!
        let outcome = await withGracefulShutdownHandler {
            await withTaskCancellationHandler { await run.value } onCancel: { recovery.stop() }
        } onGracefulShutdown: {
            recovery.stop()
        }
        onOutcome(outcome)
        guard outcome.ending == .operational else { return }
        switch mode {
        case .once(let distributor):
            let delivered = await distributor.distributeOnce()
            logger.info("distribution round: keepers \(delivered) took their shard")
        case .serve:
            try? await gracefulShutdown()
        }
    }
}

/// Pilot's operator routes on the Nexus's mTLS port, as a `Service`: serves
/// from `start` until graceful shutdown, then stops accepting and answers
/// what is in flight (bounded) before it returns.
public final class OperatorServer: Service, Sendable {
    let routes: OperatorRoutes
    let tls: ServerTLSContexts
    let logger: Logger
    let server = MTLSHTTPServer(group: MultiThreadedEventLoopGroup.singleton)

    init(routes: OperatorRoutes, tls: ServerTLSContexts, logger: Logger) {
        self.routes = routes
        self.tls = tls
        self.logger = logger
    }

    public var port: Int { server.port }

    public func start(host: String, port: Int, maximumConnections: Int = MTLSHTTPServer.Limits().maximumConnections) async throws {
        let routes = self.routes, logger = self.logger
        var limits = MTLSHTTPServer.Limits()
        limits.maximumConnections = maximumConnections
        try await server.start(
            host: host, port: port, tls: tls,
            policy: PeerPolicy(name: "a SPIFFE ID of a trusted domain") { _ in true }, limits: limits,
            tooLargeResponse: HTTPResponseData(status: .payloadTooLarge, body: OperatorRoutes.tooLarge.body),
            onRefused: { logger.notice("operator TLS handshake refused: \($0)") },
            responder: .async { request in
                let answer = await routes.handle(method: request.method.rawValue, uri: request.uri, body: request.body, peer: request.peer)
                logger.info("\(request.peer) \(request.method.rawValue) \(request.uri) \(answer.status)")
                return HTTPResponseData(status: .init(statusCode: answer.status), body: answer.body)
            })
        logger.info("operator routes on \(host):\(server.port)")
    }

    public func stop() async { await server.stop() }

    public func run() async {
        try? await gracefulShutdown()
        await stop()
    }
}
