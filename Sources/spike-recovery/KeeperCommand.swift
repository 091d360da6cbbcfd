import ArgumentParser
import Foundation
import KeeperService
import Logging
import SecureMemory
import SpiffeIdentity

/// `spike-recovery keeper`: a production SPIKE Keeper (Spec/keeper-wire.md).
struct KeeperCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keeper",
        abstract: "Run a SPIKE Keeper: holds one shard in memory, serves it to Nexus over mTLS.",
        discussion: """
            Settings: SPIKE_KEEPER_TLS_PORT (default :8443), SPIKE_SVID_CERT_FILE, SPIKE_SVID_KEY_FILE, \
            SPIKE_SVID_BUNDLE_FILE, SPIKE_TRUST_ROOT_* and SPIKE_SYSTEM_LOG_LEVEL.
            """)

    @Option(help: "Serve Prometheus metrics on this host:port (GET /metrics, plain HTTP).") var metricsAddress: String?

    func run() async throws {
        Settings.bootstrapLogging()
        let logger = Logger(label: "spike-keeper")
        ProcessHardening.apply(logger: logger)
        let keeper: KeeperServer
        do {
            if let metricsAddress { _ = try await MetricsEndpoint.start(address: metricsAddress) }
            let (host, port) = try Settings.listenAddress("SPIKE_KEEPER_TLS_PORT", default: ":8443")
            let roots = try Settings.trustRoots()
            let source = try await Settings.x509Source(trustRoots: roots, logger: logger)
            let me = source.current.id
            guard roots.id(me, hasRole: .keeper) else {
                throw OperatorError("the SVID \(me) is not a keeper ID (expected spiffe://<\(SpikeRole.keeper.trustRootVariable)>/spike/keeper[/...])",
                                    exitCode: 64)
            }
            keeper = KeeperServer(source: source, trustRoots: roots, logger: logger)
            do {
                try await keeper.start(host: host, port: port)
            } catch {
                throw OperatorError("cannot listen on \(host):\(port): \(error)", exitCode: 1)
            }
            logger.info("keeper \(me) listening on \(host):\(keeper.port)")
        } catch let error as OperatorError {
            throw fail(error)
        }
        Self.exitWithParent(logger: logger)
        let sig = await Signals.waitForTermination()
        logger.info("signal \(sig): stopping, shard wiped")
        await keeper.stop()
    }

    /// With SPIKE_RECOVERY_PARENT_PID set (the demo sets it), exit when that
    /// parent is gone, so no keeper outlives a demo that was killed.
    static func exitWithParent(logger: Logger) {
        guard let raw = Settings.environment["SPIKE_RECOVERY_PARENT_PID"], let parent = Int32(raw) else { return }
        Task.detached {
            while getppid() == parent { try? await Task.sleep(for: .milliseconds(200)) }
            logger.notice("parent process gone: exiting")
            Glibc.exit(0)
        }
    }
}
