import CoreMetrics
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle

/// `--metrics-address HOST:PORT`: plain HTTP for the long-running commands —
/// `GET /metrics` (Prometheus text), `GET /healthz` (200 `ok` while the
/// process runs) and `GET /readyz` (200 `ready` once the readiness check
/// passes, else 503 `unready`), as Kubernetes probes expect. Metrics carry
/// counts and times only, never a secret; bind it to loopback unless a
/// scraper or kubelet needs more.
///
/// As a `Service`: serves from `start` until graceful shutdown, then closes.
public final class MetricsEndpoint: Service, Sendable {
    let channel: Channel
    let readiness: ReadinessCheck

    private init(channel: Channel, readiness: ReadinessCheck) {
        self.channel = channel
        self.readiness = readiness
    }

    /// What `/readyz` asks (until set: not ready). The command sets it once
    /// the pieces it asks about exist.
    public func setReadiness(_ check: @escaping @Sendable () -> Bool) { readiness.set(check) }

    /// Bootstraps swift-metrics with a Prometheus registry and binds the endpoint.
    public static func start(_ address: ListenAddress) async throws -> MetricsEndpoint {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let readiness = ReadinessCheck()
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsHandler(registry: registry, readiness: readiness))
                }
            }
        // An address literal is bound as it is, without getaddrinfo (MTLSHTTPServer.start says why).
        let literal = try? SocketAddress(ipAddress: address.host, port: address.port)
        let channel = try await (literal.map { bootstrap.bind(to: $0) } ?? bootstrap.bind(host: address.host, port: address.port)).get()
        return MetricsEndpoint(channel: channel, readiness: readiness)
    }

    public var port: Int { channel.localAddress?.port ?? 0 }

    public func run() async {
        try? await gracefulShutdown()
        try? await channel.close()
    }
}

/// The readiness question of `/readyz`, set once by the command.
final class ReadinessCheck: Sendable {
    private let check = NIOLockedValueBox<(@Sendable () -> Bool)?>(nil)
    func set(_ body: @escaping @Sendable () -> Bool) { check.withLockedValue { $0 = body } }
    var isReady: Bool { check.withLockedValue { $0 }?() ?? false }
}

final class MetricsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    static let metricsPath = "/metrics", healthPath = "/healthz", readinessPath = "/readyz"
    let registry: PrometheusCollectorRegistry
    let readiness: ReadinessCheck
    var head: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry, readiness: ReadinessCheck) {
        self.registry = registry
        self.readiness = readiness
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            let (status, contentType, body) = answer(head)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: String(body.count))
            headers.add(name: "Cache-Control", value: "no-store")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    func answer(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String, [UInt8]) {
        let text = "text/plain; charset=utf-8"
        guard head.method == .GET else { return (.methodNotAllowed, text, Array("method not allowed\n".utf8)) }
        switch head.uri {
        case Self.metricsPath: return (.ok, "text/plain; version=0.0.4", registry.emitToBuffer())
        case Self.healthPath: return (.ok, text, Array("ok\n".utf8))
        case Self.readinessPath:
            return readiness.isReady ? (.ok, text, Array("ready\n".utf8)) : (.serviceUnavailable, text, Array("unready\n".utf8))
        default: return (.notFound, text, Array("not found\n".utf8))
        }
    }
}
