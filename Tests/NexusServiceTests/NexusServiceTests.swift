import Foundation
import Logging
import NIOConcurrencyHelpers
import NexusService
import Recovery
import SecureMemory
import ServiceLifecycle
import SpiffeIdentity
import SpikeWire
import Testing
import TestSupport

/// The Nexus's service side: the recovery as a Service that a shutdown stops
/// cleanly before step 12, and the operator routes that serve nothing until then.
@Suite(.serialized, .timeLimit(.minutes(2))) struct NexusServiceTests {
    /// Three keepers nobody answers for: recovery keeps backing off until stopped.
    func node() throws -> (NexusNode, NexusRecovery) {
        let pki = try DevelopmentPKI()
        let dir = try temporaryDirectory("nexus-service")
        let config = RecoveryConfiguration(keepers: (0..<3).map { _ in "https://127.0.0.1:\(freePort())" }, threshold: 2, shares: 3,
                                           databasePath: dir.appendingPathComponent("absent/spike.db").path,
                                           maximumBackoff: .milliseconds(100), initialBackoff: .milliseconds(20),
                                           requestDeadline: .seconds(2), allowEmptyStore: true)
        let node = NexusNode(config: config, trustRoots: TrustRoots(), source: StaticX509Source(try pki.snapshot(path: "/spike/nexus")),
                             logger: Logger(label: "test"))
        return (node, node.makeRecovery(trace: try TraceRecorder()))
    }

    @Test func gracefulShutdownBeforeStep12StopsTheRecovery() async throws {
        let (node, recovery) = try node()
        let outcomes = NIOLockedValueBox<[RecoveryOutcome]>([])
        let service = RecoveryService(recovery: recovery, mode: .serve(node.distributor), restoreFiles: [], logger: Logger(label: "test")) { o in
            outcomes.withLockedValue { $0.append(o) }
        }
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: node.distributor),
                       .init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
            logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        // Wait until it is really recovering (a round has found no keeper).
        #expect(try await eventually(30) { recovery.trace.recorded.contains { $0.event == "round_exhausted" } })
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(outcomes.withLockedValue { $0 }.map(\.ending) == [.stopped])
        #expect(!node.holder.isSet && !node.distributor.isArmed && node.distributor.counts.passes == 0)
        #expect(recovery.allShardBuffersZero)
        #expect(!recovery.trace.recorded.contains { $0.event == "root_key_set" })
    }

    @Test func operatorRecoverIsRefusedUntilOperational() async throws {
        let (node, recovery) = try node()
        let routes = OperatorRoutes(recovery: recovery, trustRoots: node.trustRoots)
        let pilot = try SpiffeID(parsing: "spiffe://spike.ist/spike/pilot/role/recover")
        let answer = await routes.handle(method: "POST", uri: OperatorRoutes.recoverPath, body: SecretBytes(copying: Array("{}".utf8)), peer: pilot)
        #expect(answer == RouteResponse(status: 503, body: Array("{\"err\":\"state_not_ready\"}".utf8)))
        let stranger = try SpiffeID(parsing: "spiffe://spike.ist/workload/x")
        let refused = await routes.handle(method: "POST", uri: OperatorRoutes.recoverPath, body: SecretBytes(copying: Array("{}".utf8)), peer: stranger)
        #expect(refused.status == 401)
    }
}
