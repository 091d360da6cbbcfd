import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import SecureMemory
import SpiffeIdentity

/// One HTTP request as the application sees it, after mTLS admitted the peer.
public struct HTTPRequestData: Sendable {
    public let method: HTTPMethod
    public let uri: String
    /// Request bodies may carry shards, so they live in a wiping buffer.
    public let body: SecretBytes
    /// The peer's verified SPIFFE ID (always set: unverified peers never get here).
    public let peer: SpiffeID
}

public struct HTTPResponseData: Sendable {
    public var status: HTTPResponseStatus
    public var contentType: String?
    public var extraHeaders: [(String, String)]
    public var body: [UInt8]

    public init(status: HTTPResponseStatus, contentType: String? = "application/json", extraHeaders: [(String, String)] = [], body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.extraHeaders = extraHeaders
        self.body = body
    }
}

/// An HTTP/1.1 server over mutual TLS on SwiftNIO. Peers are verified during
/// the handshake (`PeerPolicy`); request bodies are bounded; each connection
/// is closed after an idle period. The application answers through `respond`.
public final class MTLSHTTPServer: Sendable {
    public struct Limits: Sendable {
        /// Bodies over this many bytes are answered with `tooLargeResponse` and the connection closed.
        public var maximumBodyBytes = 4096
        public var idleTimeout: TimeAmount = .seconds(60)
        public var handshakeTimeout: TimeAmount = .seconds(10)
        public init() {}
    }

    /// How the application answers: `immediate` runs on the connection's
    /// event loop (for fast, non-blocking handlers such as the Keeper's);
    /// `async` runs as a task (for handlers that wait on I/O or heavy work).
    public enum Responder: Sendable {
        case immediate(@Sendable (HTTPRequestData) -> HTTPResponseData)
        case async(@Sendable (HTTPRequestData) async -> HTTPResponseData)
    }

    private let group: EventLoopGroup
    private let ownsGroup: Bool
    private let listening = NIOLockedValueBox<(channel: Channel?, port: Int)>((nil, 0))
    /// Every accepted connection still open: `stop` asks each to finish, then closes what is left.
    private let connections = ConnectionSet()
    public var port: Int { listening.withLockedValue { $0.port } }

    public init(group: EventLoopGroup? = nil) {
        if let group {
            self.group = group
            ownsGroup = false
        } else {
            self.group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
            ownsGroup = true
        }
    }

    /// Binds and starts serving. `host`/`port` as for a listen address (port 0 picks a free one).
    public func start(host: String, port: Int, source: any X509Source, policy: PeerPolicy, limits: Limits = Limits(),
                      tooLargeResponse: HTTPResponseData, onRefused: @escaping @Sendable (String) -> Void,
                      responder: Responder) async throws {
        let contexts = TLSContextCache(source: source, side: .server)
        _ = try contexts.context()  // fail now, not on the first connection, if the SVID is unusable
        let connections = self.connections
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                connections.add(channel)
                return channel.eventLoop.makeCompletedFuture {
                    let box = PeerIdentityBox()
                    let tls = NIOSSLServerHandler(
                        context: try contexts.context(),
                        customVerificationCallbackWithMetadata: PeerVerification.callback(
                            source: source, policy: policy, box: box, onRefused: onRefused))
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(tls)
                    // After the TLS handler: it announces handshakeCompleted toward the tail.
                    try sync.addHandler(HandshakeDeadline(timeout: limits.handshakeTimeout))
                    try sync.addHandler(IdleStateHandler(readTimeout: limits.idleTimeout))
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(RequestHandler(box: box, limit: limits.maximumBodyBytes,
                                                       tooLarge: tooLargeResponse, respond: responder))
                }
            }
        let channel = try await bootstrap.bind(host: host, port: port).get()
        listening.withLockedValue { $0 = (channel, channel.localAddress?.port ?? port) }
    }

    /// Graceful stop: no new connections; each open connection closes as soon
    /// as it owes no response (idle keep-alive ones at once, one with a request
    /// in flight once its response is written: a process that exits right
    /// after `stop` must not drop an answer it owes, an operator restore's say).
    /// Returns when every connection is closed; connections still open after
    /// `drainLimit` (a peer that never finishes its request) are closed then.
    public func stop(drainLimit: Duration = .seconds(2)) async {
        let server = listening.withLockedValue { state -> Channel? in
            defer { state.channel = nil }
            return state.channel
        }
        if let server {
            try? await server.close()  // no new connections from here on
            // HTTP/1.1's pipeline handler closes an idle connection at once, a busy one after its response.
            for channel in connections.channels {
                channel.eventLoop.execute { channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
            }
            // Whichever comes first: every connection closed, or the limit.
            let waiter = NIOLockedValueBox<CheckedContinuation<Void, Never>?>(nil)
            let loop = group.next()
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                waiter.withLockedValue { $0 = continuation }
                let resume: @Sendable () -> Void = { waiter.withLockedValue { w in defer { w = nil }; return w }?.resume() }
                let timer = loop.scheduleTask(in: .nanoseconds(Int64(drainLimit / .nanoseconds(1)))) { resume() }
                connections.whenEmpty {
                    timer.cancel()
                    resume()
                }
            }
            for channel in connections.channels { try? await channel.close() }
        }
        if ownsGroup { try? await group.shutdownGracefully() }
    }
}

/// The open connections of a server. Invariant: a channel is in the set from
/// its initializer until its close future completes.
final class ConnectionSet: Sendable {
    private let state = NIOLockedValueBox<(open: [ObjectIdentifier: Channel], whenEmpty: [@Sendable () -> Void])>(([:], []))

    func add(_ channel: Channel) {
        let id = ObjectIdentifier(channel)
        state.withLockedValue { $0.open[id] = channel }
        channel.closeFuture.whenComplete { _ in
            let callbacks = self.state.withLockedValue { s -> [@Sendable () -> Void] in
                s.open[id] = nil
                guard s.open.isEmpty else { return [] }
                defer { s.whenEmpty = [] }
                return s.whenEmpty
            }
            for callback in callbacks { callback() }
        }
    }

    var channels: [Channel] { state.withLockedValue { Array($0.open.values) } }

    /// Calls `body` once no connection is open (at once if none is).
    func whenEmpty(_ body: @escaping @Sendable () -> Void) {
        let now = state.withLockedValue { s -> Bool in
            if s.open.isEmpty { return true }
            s.whenEmpty.append(body)
            return false
        }
        if now { body() }
    }
}

/// Closes a connection whose TLS handshake has not completed in time (a peer
/// that connects and stays silent must not hold a slot forever).
final class HandshakeDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let timeout: TimeAmount
    var task: Scheduled<Void>?
    init(timeout: TimeAmount) { self.timeout = timeout }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }
    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }
    func arm(_ context: ChannelHandlerContext) {
        guard task == nil else { return }
        let channel = context.channel
        task = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            task?.cancel()
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
    func channelInactive(context: ChannelHandlerContext) {
        task?.cancel()
        context.fireChannelInactive()
    }
}

/// Collects one request (head + body up to the limit), asks the responder,
/// writes the response with exact bytes. Keeps the connection alive when the
/// client asked for it.
final class RequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let box: PeerIdentityBox
    let limit: Int
    let tooLarge: HTTPResponseData
    let respond: MTLSHTTPServer.Responder
    var head: HTTPRequestHead?
    var body: [UInt8] = []
    var overLimit = false

    init(box: PeerIdentityBox, limit: Int, tooLarge: HTTPResponseData, respond: MTLSHTTPServer.Responder) {
        self.box = box
        self.limit = limit
        self.tooLarge = tooLarge
        self.respond = respond
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.removeAll(keepingCapacity: true)
            body.reserveCapacity(limit)  // no reallocation, so no unwiped copies left behind
            overLimit = false
            if let length = h.headers.first(name: "content-length").flatMap(Int.init), length > limit { overLimit = true }
        case .body(var chunk):
            guard !overLimit else { return }
            if body.count + chunk.readableBytes > limit {
                overLimit = true
                SecureMemory.wipe(&body)
                return
            }
            body += chunk.readBytes(length: chunk.readableBytes) ?? []
        case .end:
            guard let head else { return }
            self.head = nil
            let keepAlive = head.isKeepAlive && !overLimit
            if overLimit {
                write(context: context, tooLarge, version: head.version, keepAlive: false)
                return
            }
            guard let peer = box.id else {
                context.close(promise: nil)  // cannot happen: the handshake sets it
                return
            }
            // Moves the bytes into a wiping buffer and zeroes this handler's copy.
            let request = HTTPRequestData(method: head.method, uri: head.uri, body: SecretBytes(consuming: &body), peer: peer)
            let version = head.version
            switch respond {
            case .immediate(let answer):
                write(context: context, answer(request), version: version, keepAlive: keepAlive)
            case .async(let answer):
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                let promise = context.eventLoop.makePromise(of: HTTPResponseData.self)
                // Not on the cooperative pool: CPU-bound work elsewhere must not stall request handling.
                Task(executorPreference: DispatchTaskExecutor.responders) { promise.succeed(await answer(request)) }
                promise.futureResult.whenComplete { result in
                    let (handler, context) = loopBound.value
                    switch result {
                    case .success(let response): handler.write(context: context, response, version: version, keepAlive: keepAlive)
                    case .failure:
                        context.close(promise: nil)
                    }
                }
            }
        }
    }

    func write(context: ChannelHandlerContext, _ response: HTTPResponseData, version: HTTPVersion, keepAlive: Bool) {
        var headers = HTTPHeaders()
        if let type = response.contentType { headers.add(name: "Content-Type", value: type) }
        for (name, value) in response.extraHeaders { headers.add(name: name, value: value) }
        headers.add(name: "Content-Length", value: String(response.body.count))
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: version, status: response.status, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: response.body.count)
        buffer.writeBytes(response.body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        let channel = context.channel
        done.whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
