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

/// A response to write. The body lives in wiping storage: a keeper's shard
/// answer and a Nexus's recover answer carry shards as decimal text.
public struct HTTPResponseData: Sendable {
    public var status: HTTPResponseStatus
    public var contentType: String?
    public var extraHeaders: [(String, String)]
    public var body: SecretBytes

    public init(status: HTTPResponseStatus, contentType: String? = "application/json", extraHeaders: [(String, String)] = [], body: SecretBytes) {
        self.status = status
        self.contentType = contentType
        self.extraHeaders = extraHeaders
        self.body = body
    }

    /// A body of public text (errors, `{}`).
    public init(status: HTTPResponseStatus, contentType: String? = "application/json", extraHeaders: [(String, String)] = [], body: [UInt8]) {
        self.init(status: status, contentType: contentType, extraHeaders: extraHeaders, body: SecretBytes(copying: body))
    }
}

/// An HTTP/1.1 server over mutual TLS on SwiftNIO. Peers are verified during
/// the handshake (`PeerPolicy`); request bodies are bounded; each connection
/// is closed after an idle period. The application answers through `respond`.
public final class MTLSHTTPServer: Sendable {
    public struct Limits: Sendable {
        /// Bodies over this many bytes are answered with `tooLargeResponse`
        /// (at once, when the head declares the length) and the connection closed.
        public var maximumBodyBytes = 4096
        public var idleTimeout: TimeAmount = .seconds(60)
        public var handshakeTimeout: TimeAmount = .seconds(10)
        /// From the handshake, or from the first byte of a later request on a
        /// kept-alive connection, to its complete head: a peer dripping header
        /// bytes cannot hold a connection. Between requests the idle timeout rules.
        public var requestHeadTimeout: TimeAmount = .seconds(10)
        /// From a request head to its last body byte.
        public var requestTimeout: TimeAmount = .seconds(30)
        /// Open connections, handshakes included; one more is closed as soon as it is accepted.
        public var maximumConnections = 1024
        /// Refused handshakes are logged one line per this interval (the first
        /// at once, the rest as a count), so a flood of them cannot fill the log.
        public var refusalNoticeInterval: Duration = .seconds(10)
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
    private let notices = NIOLockedValueBox<RefusalNotices?>(nil)
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
        try await start(host: host, port: port, tls: ServerTLSContexts(source: source), policy: policy, limits: limits,
                        tooLargeResponse: tooLargeResponse, onRefused: onRefused, responder: responder)
    }

    /// `start` with TLS contexts made beforehand (`ServerTLSContexts.startWarmUp`).
    public func start(host: String, port: Int, tls: ServerTLSContexts, policy: PeerPolicy, limits: Limits = Limits(),
                      tooLargeResponse: HTTPResponseData, onRefused: @escaping @Sendable (String) -> Void,
                      responder: Responder) async throws {
        let contexts = tls.cache, source = contexts.source
        _ = try contexts.context()  // fail now, not on the first connection, if the SVID is unusable
        let connections = self.connections
        let refused = RefusalNotices(interval: limits.refusalNoticeInterval, loop: group.next(), emit: onRefused)
        notices.withLockedValue { $0 = refused }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allocator, value: WipingAllocator.shared)
            .childChannelInitializer { channel in
                // Counted and admitted under one lock: connections accepted on
                // several event loops at once cannot pass the cap together.
                guard connections.add(channel, limit: limits.maximumConnections) else {
                    refused.note("over \(limits.maximumConnections) open connections; closed at once")
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    let box = PeerIdentityBox()
                    let tls = NIOSSLServerHandler(
                        context: try contexts.context(),
                        customVerificationCallbackWithMetadata: PeerVerification.callback(
                            source: source, policy: policy, box: box, onRefused: refused.note))
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(tls)
                    // After the TLS handler: it announces handshakeCompleted toward the tail.
                    try sync.addHandler(HandshakeDeadline(timeout: limits.handshakeTimeout))
                    try sync.addHandler(IdleStateHandler(readTimeout: limits.idleTimeout))
                    let headClock = RequestHeadDeadline(timeout: limits.requestHeadTimeout)
                    try sync.addHandler(headClock)
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(RequestHandler(box: box, limits: limits, headClock: headClock, tooLarge: tooLargeResponse, respond: responder))
                }
            }
        // An address literal (the usual listen setting) is bound as it is: NIO's
        // resolver runs getaddrinfo even for one (nsswitch.conf, /etc/hosts, an
        // nscd attempt), on the nexus's path while its keeper handshakes run.
        let literal = try? SocketAddress(ipAddress: host, port: port)
        let channel = try await (literal.map { bootstrap.bind(to: $0) } ?? bootstrap.bind(host: host, port: port)).get()
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
            // RequestHandler closes an idle connection at once, a busy one after its response.
            // (Not NIO's quiescing: its pipeline handler asserts when a malformed request's
            // 400 comes after it has closed the connection.)
            for channel in connections.channels {
                channel.eventLoop.execute { channel.pipeline.fireUserInboundEventTriggered(ServerDrainEvent()) }
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
        notices.withLockedValue { $0 }?.flush()
        if ownsGroup { try? await group.shutdownGracefully() }
    }
}

/// Sent down each connection by `stop`: finish the request in flight, take no more.
struct ServerDrainEvent {}

/// Rate-limited refusal lines: the first refusal of an interval is passed on
/// at once; later ones in the same interval are counted and reported, with
/// the last reason, as one line when the interval ends (or at `flush`).
///
/// Invariant: while a window has suppressed refusals, one task is scheduled
/// to end it; it ends only the window it was scheduled for (`id`).
final class RefusalNotices: Sendable {
    private struct Window {
        var id: UInt64
        var started: ContinuousClock.Instant
        var suppressed = 0
        var lastReason = ""
        var end: Scheduled<Void>?
    }
    private let window = NIOLockedValueBox<(current: Window?, nextID: UInt64)>((nil, 0))
    private let interval: Duration
    private let loop: any EventLoop
    private let emit: @Sendable (String) -> Void

    init(interval: Duration, loop: any EventLoop, emit: @escaping @Sendable (String) -> Void) {
        self.interval = interval
        self.loop = loop
        self.emit = emit
    }

    func note(_ reason: String) {
        let now = ContinuousClock.now
        let lines: [String] = window.withLockedValue { state in
            if var current = state.current, now - current.started < interval {
                current.suppressed += 1
                current.lastReason = reason
                if current.end == nil {
                    let id = current.id, remaining = interval - (now - current.started)
                    current.end = loop.scheduleTask(in: .nanoseconds(Int64(remaining / .nanoseconds(1)))) { self.endWindow(id) }
                }
                state.current = current
                return []
            }
            let summary = state.current.flatMap(Self.summary)
            state.current?.end?.cancel()
            state.nextID += 1
            state.current = Window(id: state.nextID, started: now)
            return (summary.map { [$0] } ?? []) + [reason]
        }
        lines.forEach(emit)
    }

    /// The interval is over: its count goes out, and the next refusal is passed on at once.
    private func endWindow(_ id: UInt64) {
        let line: String? = window.withLockedValue { state in
            guard let current = state.current, current.id == id else { return nil }
            state.current = nil
            return Self.summary(current)
        }
        line.map(emit)
    }

    /// Reports what the current interval has counted so far (at stop).
    func flush() {
        let line: String? = window.withLockedValue { state in
            guard let current = state.current else { return nil }
            current.end?.cancel()
            state.current = nil
            return Self.summary(current)
        }
        line.map(emit)
    }

    private static func summary(_ w: Window) -> String? {
        w.suppressed == 0 ? nil : "\(w.suppressed) more refused since the line above (the last: \(w.lastReason))"
    }
}

/// The open connections of a server. Invariant: a channel is in the set from
/// its initializer until its close future completes.
final class ConnectionSet: Sendable {
    private let state = NIOLockedValueBox<(open: [ObjectIdentifier: Channel], whenEmpty: [@Sendable () -> Void])>(([:], []))

    /// Adds `channel` unless `limit` channels are open already; false when refused.
    func add(_ channel: Channel, limit: Int) -> Bool {
        let id = ObjectIdentifier(channel)
        let admitted = state.withLockedValue { s -> Bool in
            guard s.open.count < limit else { return false }
            s.open[id] = channel
            return true
        }
        guard admitted else { return false }
        channel.closeFuture.whenComplete { _ in
            let callbacks = self.state.withLockedValue { s -> [@Sendable () -> Void] in
                s.open[id] = nil
                guard s.open.isEmpty else { return [] }
                defer { s.whenEmpty = [] }
                return s.whenEmpty
            }
            for callback in callbacks { callback() }
        }
        return true
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
        // Passed on before this handler leaves the pipeline, so the handlers after it see it.
        context.fireUserInboundEventTriggered(event)
        if case TLSUserEvent.handshakeCompleted = event {
            task?.cancel()
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }
    func channelInactive(context: ChannelHandlerContext) {
        task?.cancel()
        context.fireChannelInactive()
    }
}

/// The request-head deadline, from bytes rather than parsed parts: between
/// the decrypted stream and the HTTP decoder, it starts the clock at the
/// handshake and, on a kept-alive connection, at the first byte of the next
/// request (as Go's server does: idle time between requests is the idle
/// timeout's). `RequestHandler` stops it when a head is complete and lets the
/// next byte start it again once a response is written.
///
/// Invariant: `task` is scheduled only while `awaitingHead`.
final class RequestHeadDeadline: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let timeout: TimeAmount
    private var awaitingHead = true
    private var task: Scheduled<Void>?
    private var channel: Channel?

    init(timeout: TimeAmount) { self.timeout = timeout }

    func handlerAdded(context: ChannelHandlerContext) { channel = context.channel }

    private func start(_ loop: EventLoop) {
        guard awaitingHead, task == nil, let channel else { return }
        task = loop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        start(context.eventLoop)
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { start(context.eventLoop) }  // the first request is owed at once
        context.fireUserInboundEventTriggered(event)
    }

    /// A request head is complete: its body has the request deadline.
    func headArrived() {
        awaitingHead = false
        task?.cancel()
        task = nil
    }

    /// A response is written: the next byte starts the next head's clock.
    func awaitNextHead() { awaitingHead = true }

    func channelInactive(context: ChannelHandlerContext) {
        task?.cancel()
        task = nil
        channel = nil
        context.fireChannelInactive()
    }
}

/// Collects one request (head + body up to the limit), asks the responder,
/// writes the response with exact bytes. Keeps the connection alive when the
/// client asked for it. Deadlines: a complete head within `requestHeadTimeout`
/// (`RequestHeadDeadline`), the rest of the request within `requestTimeout`
/// of its head; either missed closes the connection. With pipelining, NIO
/// hands over the next request's head during the previous response's `.end`
/// write, so every state change for a response is made before that write.
/// A body over the limit is answered at once (from its declared length, or
/// as soon as it crosses the limit) and the connection closed.
final class RequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let box: PeerIdentityBox
    let limit: Int
    let limits: MTLSHTTPServer.Limits
    let tooLarge: HTTPResponseData
    let respond: MTLSHTTPServer.Responder
    let headClock: RequestHeadDeadline
    var head: HTTPRequestHead?
    var body: [UInt8] = []
    /// Set once a request got its 413: the connection closes at the request's
    /// end, or once `discardBudget` more body bytes (dropped unread) have come,
    /// or at `refusalLinger`. Reading a little past the 413 lets a client
    /// that is still sending its body see the answer instead of a reset.
    var refusedTooLarge = false
    var discardBudget = 0
    static let discardBudgetBytes = 64 * 1024
    static let refusalLinger: TimeAmount = .seconds(1)
    var deadline: Scheduled<Void>?
    /// From a request's head until its response is handed to the channel.
    var inFlight = false
    /// Responses handed to the channel and not yet written out.
    var unwritten = 0
    /// `stop` asked: close once nothing is in flight, answer with `Connection: close`.
    var draining = false

    init(box: PeerIdentityBox, limits: MTLSHTTPServer.Limits, headClock: RequestHeadDeadline, tooLarge: HTTPResponseData,
         respond: MTLSHTTPServer.Responder) {
        self.box = box
        self.headClock = headClock
        self.limit = limits.maximumBodyBytes
        self.limits = limits
        self.tooLarge = tooLarge
        self.respond = respond
    }

    func arm(_ context: ChannelHandlerContext, _ timeout: TimeAmount) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func disarm() {
        deadline?.cancel()
        deadline = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if refusedTooLarge {
            switch part {
            case .body(let chunk):
                discardBudget -= chunk.readableBytes
                if discardBudget < 0 { context.close(promise: nil) }
            case .end: context.close(promise: nil)
            case .head: break
            }
            return
        }
        switch part {
        case .head(let h):
            head = h
            inFlight = true
            headClock.headArrived()
            arm(context, limits.requestTimeout)
            body.removeAll(keepingCapacity: true)
            body.reserveCapacity(limit)  // no reallocation, so no unwiped copies left behind
            if let length = h.headers.first(name: "content-length").flatMap(Int.init), length > limit {
                refuseTooLarge(context: context, version: h.version)
            }
        case .body(let chunk):
            if body.count + chunk.readableBytes > limit {
                SecureMemory.wipe(&body)
                refuseTooLarge(context: context, version: head?.version ?? .http1_1)
                return
            }
            // Straight from NIO's buffer into the reserved array: no temporary copy.
            chunk.withUnsafeReadableBytes { body.append(contentsOf: $0) }
        case .end:
            disarm()
            guard let head else { return }
            self.head = nil
            let keepAlive = head.isKeepAlive
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

    /// 413 now, then close: the rest of the body is never read into memory.
    func refuseTooLarge(context: ChannelHandlerContext, version: HTTPVersion) {
        refusedTooLarge = true
        discardBudget = Self.discardBudgetBytes
        head = nil
        write(context: context, tooLarge, version: version, keepAlive: false, closeWhenWritten: false)
        arm(context, Self.refusalLinger)
    }

    func write(context: ChannelHandlerContext, _ response: HTTPResponseData, version: HTTPVersion, keepAlive: Bool,
               closeWhenWritten: Bool = true) {
        let keepAlive = keepAlive && !draining
        var headers = HTTPHeaders()
        if let type = response.contentType { headers.add(name: "Content-Type", value: type) }
        for (name, value) in response.extraHeaders { headers.add(name: name, value: value) }
        headers.add(name: "Content-Length", value: String(response.body.count))
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: version, status: response.status, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: response.body.count)  // a wiping allocator's
        response.body.withUnsafeBytes { _ = buffer.writeBytes($0) }
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        // Before `.end`: writing it may deliver a pipelined next head at once.
        inFlight = false
        unwritten += 1
        disarm()
        if keepAlive { headClock.awaitNextHead() }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        let channel = context.channel
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        done.whenComplete { _ in
            let h = handler.value
            h.unwritten -= 1
            if (!keepAlive && closeWhenWritten) || (h.draining && !h.inFlight && h.unwritten == 0) { channel.close(promise: nil) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) }
        if event is ServerDrainEvent {
            draining = true
            if !inFlight && unwritten == 0 { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        SecureMemory.wipe(&body)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
