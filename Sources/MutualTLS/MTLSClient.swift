import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import NIOSSL
import SecureMemory
import SpiffeIdentity

/// Why a request to a peer did not produce a response.
public enum MTLSClientError: Error, Equatable, Sendable, CustomStringConvertible {
    case badURL(String)
    case connectFailed(String)
    case handshakeRefused(String)
    case deadlineExceeded(Int)
    case responseTooLarge(Int)
    case connectionClosed

    public var description: String {
        switch self {
        case .badURL(let why): "bad URL: \(why)"
        case .connectFailed(let why): "connect failed: \(why)"
        case .handshakeRefused(let why): "TLS handshake refused: \(why)"
        case .deadlineExceeded(let ms): "no response within \(ms) ms"
        case .responseTooLarge(let limit): "response body over \(limit) bytes"
        case .connectionClosed: "connection closed before a complete response"
        }
    }

    /// The peer's certificate was refused by the identity policy.
    public var isHandshakeRefusal: Bool {
        if case .handshakeRefused = self { return true }
        return false
    }
}

/// A small HTTPS client over mutual TLS that insists on a peer identity
/// (AsyncHTTPClient can neither enforce one nor show the peer certificate).
/// One connection per request; every request has a deadline covering
/// connect, handshake and response, and a response size limit.
public final class MTLSClient: Sendable {
    public struct Response: Sendable {
        public let status: Int
        /// Responses may carry shards: kept in a wiping buffer.
        public let body: SecretBytes
        public let peer: SpiffeID
    }

    private let group: EventLoopGroup
    private let contexts: TLSContextCache
    private let source: any X509Source
    private let policy: PeerPolicy
    public let maximumResponseBytes: Int

    /// `now` is the wall clock of the own-SVID expiry check.
    public init(group: EventLoopGroup, source: any X509Source, serverPolicy: PeerPolicy, maximumResponseBytes: Int = 4096,
                now: @escaping @Sendable () -> Date = Date.init) {
        self.group = group
        self.source = source
        self.contexts = TLSContextCache(source: source, side: .client, now: now)
        self.policy = serverPolicy
        self.maximumResponseBytes = maximumResponseBytes
    }

    /// Builds this client's TLS context ahead of the first request. Nothing is
    /// concluded from it: a failure here is met again, and reported, by the
    /// request that needs the context. It runs on a verification queue, not
    /// the cooperative pool, so that the recovery's own tasks do not wait for it.
    public func startWarmUp() { contexts.startWarmUp() }

    /// The part of the warm-up that needs no SVID, for the very start of a
    /// process while the other core parses the command line and reads the
    /// settings: the threads of NIO's process-wide event loop group (the one
    /// keeper and nexus use), a request's pipeline with its TLS handler (on a
    /// context with no identity) up to its ClientHello, a peer check
    /// (`SVIDVerifier.warmUp`), the type of a server (a nexus starts its
    /// operator server while its keeper handshakes run), and a refused connect.
    /// The Swift runtime sets up each generic type of those paths on first use,
    /// by a linear scan of the binary's conformance records; paid here, the
    /// scans are off the first handshakes' path. On a verification queue,
    /// where the handshakes' peer checks run.
    public static func startEarlyWarmUp() {
        Task(executorPreference: DispatchTaskExecutor.verification) {
            _ = MultiThreadedEventLoopGroup.singleton
            var anonymous = TLSConfiguration.makeClientConfiguration()
            anonymous.trustRoots = .certificates([])  // not the system CA store: nothing is verified here
            addRequestHandlers(tls: (try? NIOSSLContext(configuration: anonymous)).flatMap { try? NIOSSLClientHandler(context: $0, serverHostname: nil) })
            await SVIDVerifier.warmUp()
            _ = MTLSHTTPServer(group: MultiThreadedEventLoopGroup.singleton)
            await refusedConnect()
        }
    }

    /// A request's bootstrap before its pipeline: the refused connect of the
    /// warm-up takes the same, so that it sets up the same types.
    static func requestBootstrap(group: EventLoopGroup, timeout: TimeAmount) -> ClientBootstrap {
        ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.allocator, value: WipingAllocator.shared)
    }

    /// 127.0.0.1, port 0: nothing can listen there.
    static let nowhere = try? SocketAddress(ipAddress: "127.0.0.1", port: 0)

    /// A connect that cannot succeed: nothing can listen on port 0, so the
    /// loopback refuses it and no peer ever sees it. It takes a request's own
    /// path up to the handshake (the client bootstrap with a request's options,
    /// the socket channel, its initializer, registration and the connect),
    /// whose types the runtime would otherwise set up while the first
    /// `connect(2)` to a keeper waits. Returns whether it was refused.
    @discardableResult
    static func refusedConnect() async -> Bool {
        guard let nowhere else { return false }
        do {
            let channel = try await requestBootstrap(group: MultiThreadedEventLoopGroup.singleton, timeout: .seconds(1))
                .channelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
                .connect(to: nowhere).get()
            try? await channel.close()
            return false
        } catch {
            return true
        }
    }

    /// The handlers of a request's pipeline, on an in-memory channel. Made
    /// active, the TLS handler starts its handshake: it draws its key shares
    /// (ML-KEM and X25519) and writes a ClientHello into that memory, which is
    /// dropped; no socket is involved.
    static func addRequestHandlers(tls: NIOSSLClientHandler?) {
        let channel = EmbeddedChannel()
        let sync = channel.pipeline.syncOperations
        if let tls { try? sync.addHandler(tls) }
        try? sync.addHTTPClientHandlers()
        let unused = channel.eventLoop.makePromise(of: (Int, SecretBytes).self)
        try? sync.addHandler(ResponseCollector(promise: unused, limit: 1,
                                               request: RequestBytes(head: HTTPRequestHead(version: .http1_1, method: .POST, uri: "/"), body: SecretBytes(zeroedCount: 1))))
        if let nowhere { _ = channel.connect(to: nowhere) }
        unused.fail(CancellationError())
        _ = try? channel.finish()
    }

    /// POSTs `body` (JSON) to `url` and returns the status and body. With
    /// `expectedPeer`, the server must present exactly that ID (and satisfy
    /// the client's policy); anything else fails the handshake.
    public func post(_ url: String, json body: [UInt8], deadline: Duration, expectedPeer: SpiffeID? = nil) async throws -> Response {
        try await post(url, json: SecretBytes(copying: body), deadline: deadline, expectedPeer: expectedPeer)
    }

    /// `post` with a body in wiping storage (a contribute carries a shard).
    public func post(_ url: String, json body: SecretBytes, deadline: Duration, expectedPeer: SpiffeID? = nil) async throws -> Response {
        let target = try Target(url)
        let context = try contexts.context()
        let box = PeerIdentityBox()
        let refusal = RefusalBox()
        let eventLoop = group.next()
        let responsePromise = eventLoop.makePromise(of: (Int, SecretBytes).self)
        let limit = maximumResponseBytes
        let policy = expectedPeer.map { self.policy.pinned(to: $0) } ?? self.policy, source = self.source
        let timeout = TimeAmount.nanoseconds(Int64(deadline / .nanoseconds(1)))
        let milliseconds = Int(deadline / .milliseconds(1))
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: target.path)
        head.headers.add(name: "Host", value: target.hostHeader)
        head.headers.add(name: "Content-Type", value: "application/json")
        head.headers.add(name: "Content-Length", value: String(body.count))
        head.headers.add(name: "Connection", value: "close")
        let request = RequestBytes(head: head, body: body)

        // The whole exchange runs on the event loop: the request is written when
        // the channel becomes active (NIOSSL holds it until the handshake is
        // done) and the response completes the promise. The calling task only
        // waits, so a busy cooperative pool cannot delay the request.
        let makeBootstrap: @Sendable () -> ClientBootstrap = { Self.requestBootstrap(group: eventLoop, timeout: timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let tls = try NIOSSLClientHandler(
                        context: context, serverHostname: nil,
                        customVerificationCallbackWithMetadata: PeerVerification.callback(
                            source: source, policy: policy, box: box, onRefused: { refusal.reason = $0 }))
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(tls)
                    try sync.addHTTPClientHandlers()
                    try sync.addHandler(ResponseCollector(promise: responsePromise, limit: limit, request: request))
                }
            }
        }
        let deadlineTask = eventLoop.scheduleTask(in: timeout) {
            responsePromise.fail(MTLSClientError.deadlineExceeded(milliseconds))
        }
        let connected = ChannelBox()
        let connecting: EventLoopFuture<Channel>
        if let address = target.ipAddress {
            // No resolver for an address literal (the usual keeper URL).
            connecting = makeBootstrap().connect(to: address)
        } else {
            // Started from the event loop, NIO resolves the name on a queue of that loop's
            // own; from here it would use Dispatch's global pool, which blocked work elsewhere
            // in the process can occupy (two threads on two cores) until the deadline.
            let host = target.host, port = target.port
            connecting = eventLoop.flatSubmit { makeBootstrap().connect(host: host, port: port) }
        }
        connecting.whenComplete { result in
            switch result {
            case .success(let channel):
                connected.set(channel)
            case .failure(let error):
                if case ChannelError.connectTimeout = error {
                    responsePromise.fail(MTLSClientError.deadlineExceeded(milliseconds))
                } else {
                    responsePromise.fail(MTLSClientError.connectFailed(Self.describe(error)))
                }
            }
        }
        defer {
            deadlineTask.cancel()
            connected.close()
        }
        do {
            // Cancelling the calling task (e.g. recovery has enough shards) ends the request at once.
            let (status, responseBody) = try await withTaskCancellationHandler {
                try await responsePromise.futureResult.get()
            } onCancel: {
                responsePromise.fail(CancellationError())
            }
            guard let peer = box.id else { throw MTLSClientError.handshakeRefused("peer not verified") }
            return Response(status: status, body: responseBody, peer: peer)
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as MTLSClientError {
            if let reason = refusal.reason { throw MTLSClientError.handshakeRefused(reason) }
            throw error
        } catch {
            if let reason = refusal.reason { throw MTLSClientError.handshakeRefused(reason) }
            throw MTLSClientError.connectionClosed
        }
    }

    static func describe(_ error: Error) -> String {
        if let e = error as? IOError { return String(cString: strerror(e.errnoCode)).lowercased() }
        if let e = error as? NIOConnectionError {
            return e.connectionErrors.first.map { describe($0.error) } ?? "connection refused"
        }
        return "\(error)"
    }

    /// `https://host:port/prefix` + route.
    struct Target {
        let host: String
        let port: Int
        let path: String
        var hostHeader: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
        /// The host as an IP address, when it is one.
        var ipAddress: SocketAddress? { try? SocketAddress(ipAddress: host, port: port) }

        init(_ url: String) throws {
            guard let components = URLComponents(string: url), components.scheme == "https",
                  let host = components.host, !host.isEmpty else {
                throw MTLSClientError.badURL("expected https://host[:port]/path")
            }
            // URLComponents keeps an IPv6 literal's brackets; the address itself has none.
            self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
            self.port = components.port ?? 443
            let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
            self.path = components.percentEncodedQuery.map { path + "?" + $0 } ?? path
        }
    }
}

/// The request a client channel sends once active.
/// Request bodies may carry shards (contribute): kept in a wiping buffer.
struct RequestBytes: @unchecked Sendable {
    let head: HTTPRequestHead
    let body: SecretBytes
}

/// The connected channel, closed when the caller is done (or at once, if the
/// caller finished before the connection completed).
final class ChannelBox: Sendable {
    private struct State: Sendable {
        var channel: Channel?
        var closed = false
    }
    private let state = NIOLockedValueBox(State())

    func set(_ channel: Channel) {
        let closeNow = state.withLockedValue { s -> Bool in
            if s.closed { return true }
            s.channel = channel
            return false
        }
        if closeNow { channel.close(promise: nil) }
    }

    func close() {
        let channel = state.withLockedValue { s -> Channel? in
            s.closed = true
            return s.channel
        }
        channel?.close(promise: nil)
    }
}

final class RefusalBox: Sendable {
    private let value = NIOLockedValueBox<String?>(nil)
    var reason: String? {
        get { value.withLockedValue { $0 } }
        set { value.withLockedValue { if $0 == nil { $0 = newValue } } }
    }
}

/// Gathers one response; fails the promise past the size limit or on early close.
final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    let promise: EventLoopPromise<(Int, SecretBytes)>
    let limit: Int
    let request: RequestBytes
    var status = 0
    var body: [UInt8] = []

    init(promise: EventLoopPromise<(Int, SecretBytes)>, limit: Int, request: RequestBytes) {
        self.promise = promise
        self.limit = limit
        self.request = request
        body.reserveCapacity(limit)
    }

    func channelActive(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: request.body.count)
        _ = request.body.withUnsafeBytes { buffer.writeBytes($0) }
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
        case .body(let chunk):
            if body.count + chunk.readableBytes > limit {
                wipe(&body)
                promise.fail(MTLSClientError.responseTooLarge(limit))
                context.close(promise: nil)
                return
            }
            chunk.withUnsafeReadableBytes { body.append(contentsOf: $0) }  // no temporary copy
        case .end:
            promise.succeed((status, SecretBytes(consuming: &body)))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        wipe(&body)
        promise.fail(MTLSClientError.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}
