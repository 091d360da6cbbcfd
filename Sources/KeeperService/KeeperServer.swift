import CoreMetrics
import Foundation
import Logging
import MutualTLS
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import SecureMemory
import ServiceLifecycle
import SpiffeIdentity
import SpikeWire

/// A running SPIKE Keeper: the routes on an mTLS server that admits only
/// Nexus and Bootstrap peers (anyone else fails the TLS handshake).
///
/// As a `Service` (after `start`): serves until graceful shutdown, then stops
/// accepting, answers what is in flight (bounded), closes every connection
/// and wipes the shard.
public final class KeeperServer: Service, Sendable {
    public let slot = ShardSlot()
    let server: MTLSHTTPServer
    let routes: KeeperRoutes
    let source: any X509Source
    let logger: Logger
    private let serving = NIOLockedValueBox(false)

    public init(source: any X509Source, trustRoots: TrustRoots, logger: Logger, group: EventLoopGroup? = nil) {
        self.source = source
        self.logger = logger
        server = MTLSHTTPServer(group: group)
        routes = KeeperRoutes(slot: slot, trustRoots: trustRoots)
    }

    public var port: Int { server.port }

    public func start(host: String, port: Int, limits: MTLSHTTPServer.Limits = .keeper) async throws {
        let routes = self.routes, logger = self.logger
        let policy = PeerPolicy.roles([.nexus, .bootstrap], trustRoots: routes.trustRoots)
        let tooLarge = HTTPResponseData(status: .payloadTooLarge, extraHeaders: KeeperServer.headers, body: KeeperRoutes.tooLarge.body)
        try await server.start(
            host: host, port: port, source: source, policy: policy, limits: limits, tooLargeResponse: tooLarge,
            onRefused: { reason in logger.notice("TLS handshake refused: \(reason)") },
            responder: .immediate { request in
                let clock = ContinuousClock()
                let start = clock.now
                let answer = routes.handle(method: request.method.rawValue, uri: request.uri, body: request.body, peer: request.peer)
                KeeperServer.count(uri: request.uri, status: answer.status)
                if logger.logLevel <= .info {
                    var line = "\(request.peer) \(request.method.rawValue) \(request.uri) \(answer.status)"
                    if answer.status == 400, let why = routes.refusalReason(uri: request.uri, body: request.body) { line += " (\(why))" }
                    line += String(format: " %.3fms", (clock.now - start) / .milliseconds(1))
                    logger.info("\(line)")
                }
                return HTTPResponseData(status: HTTPResponseStatus(statusCode: answer.status), extraHeaders: KeeperServer.headers, body: answer.body)
            })
        serving.withLockedValue { $0 = true }
    }

    /// Listening, and not yet stopping (`/readyz` asks this and whether a shard is held).
    public var isServing: Bool { serving.withLockedValue { $0 } }

    /// Stops the listener, lets in-flight requests finish (bounded), wipes the shard.
    public func stop() async {
        serving.withLockedValue { $0 = false }
        await server.stop()
        slot.wipe()
    }

    /// Serves until the service group shuts down (or this task is cancelled), then stops.
    public func run() async {
        try? await gracefulShutdown()
        await stop()
    }

    static let headers = [("Cache-Control", KeeperWire.cacheControl), ("Expires", KeeperWire.expires), ("Pragma", KeeperWire.pragma)]

    /// `spike_keeper_requests_total{route,status}`; unknown paths share one label value.
    static func count(uri: String, status: Int) {
        let route = uri == KeeperWire.shardPath || uri == KeeperWire.contributePath ? uri : "other"
        Counter(label: "spike_keeper_requests_total", dimensions: [("route", route), ("status", String(status))]).increment()
    }
}

extension MTLSHTTPServer.Limits {
    public static var keeper: Self {
        var limits = Self()
        limits.maximumBodyBytes = KeeperWire.maximumRequestBytes
        return limits
    }
}
