import ArgumentParser
import KeeperService
import Logging
import MutualTLS
import ProcessSupport
import SecureMemory
import ServiceLifecycle
import SpiffeIdentity

/// `spike-recovery keeper`: a production SPIKE Keeper (Spec/keeper-wire.md).
struct KeeperCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keeper",
        abstract: "Run a SPIKE Keeper: holds one shard in memory, serves it to Nexus over mTLS.",
        discussion: """
            Settings: SPIKE_KEEPER_TLS_PORT (default :8443), SPIKE_SVID_CERT_FILE, SPIKE_SVID_KEY_FILE, \
            SPIKE_SVID_BUNDLE_FILE, SPIKE_TRUST_ROOT_*, SPIKE_TLS_MAX_CONNECTIONS (1024), SPIKE_MEM_LOCK_DISABLED (false) \
            and SPIKE_SYSTEM_LOG_LEVEL.
            On SIGTERM or SIGINT: stops accepting, answers requests in flight, closes every connection, \
            wipes the shard, exits 0.
            """)

    @Option(help: "Serve plain HTTP on this host:port: GET /metrics (Prometheus), /healthz, /readyz (200 once listening with a shard).") var metricsAddress: String?

    func run() async throws {
        let logger: Logger
        do {
            logger = try Settings.startProcess(label: Settings.keeperLogLabel)
        } catch let error as OperatorError {
            throw fail(error)
        }
        let keeper: KeeperServer
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        do {
            let metrics = try await Settings.metricsEndpoint(metricsAddress)
            if let metrics { services.append(.init(service: metrics, serviceName: "metrics")) }
            let address = try Settings.listenAddress("SPIKE_KEEPER_TLS_PORT", default: ":8443")
            var limits = MTLSHTTPServer.Limits.keeper
            limits.maximumConnections = try Settings.maximumConnections()
            let roots = try Settings.trustRoots()
            let source = try await Settings.x509Source(role: .keeper, trustRoots: roots, logger: logger)
            let me = try Settings.requireOwnRole(.keeper, source: source, trustRoots: roots)
            services.append(.init(service: source, serviceName: "svid-source"))
            keeper = KeeperServer(source: source, trustRoots: roots, logger: logger)
            do {
                try await keeper.start(host: address.host, port: address.port, limits: limits)
            } catch {
                throw OperatorError("cannot listen on \(address): \(error)", exitCode: 1)
            }
            logger.info("keeper \(me) listening on \(address.host):\(keeper.port)")
            LineLogHandler.flush()  // a supervisor waits for this line
            let ready = keeper
            metrics?.setReadiness { ready.isServing && ready.slot.isHeld }
        } catch let error as OperatorError {
            throw fail(error)
        }
        if let watch = Settings.parentWatch(logger: logger) {
            services.append(.init(service: watch, successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "parent-watch"))
        }
        // Last, so it is the first to stop: no new shard reads once shutdown begins.
        services.append(.init(service: keeper, serviceName: "keeper"))
        await Settings.runServices(services, logger: logger)
        logger.info("stopped; shard wiped")
    }
}
