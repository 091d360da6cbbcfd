import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import SecureMemory
import WorkloadAPIWire
import SpiffeIdentity
import X509

/// A small Workload API server for tests and local development (SPIRE is
/// the production server): serves the X.509 streams over gRPC on a Unix
/// socket, pushes whatever is published to every open stream, and, as the
/// SPIFFE spec requires, refuses calls without the `workload.spiffe.io: true`
/// header. Every caller gets the same identity; one socket per workload.
/// The keys it sends pass through NIO buffers it does not wipe: it serves
/// test identities only.
public final class DevelopmentWorkloadAPIServer: Sendable {
    typealias Stream = NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>

    public let socketPath: String
    private let hub = Hub()
    private struct Running: Sendable {
        var listener: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var serving: Task<Void, Never>?
    }
    private let running = NIOLockedValueBox(Running())

    public init(socketPath: String) { self.socketPath = socketPath }

    /// Binds the socket (replacing a stale file) and serves until `stop`.
    public func start() async throws {
        let server: NIOAsyncChannel<(any Channel, NIOHTTP2Handler.AsyncStreamMultiplexer<Stream>), Never>
        do {
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(mode: .server) { stream in
                            stream.eventLoop.makeCompletedFuture { try Stream(wrappingChannelSynchronously: stream) }
                        }
                        return (channel, multiplexer)
                    }
                }
        } catch {
            throw WorkloadAPIError.badEndpoint(address: "unix://\(socketPath)", reason: "the development server could not listen (\(error))")
        }
        let hub = self.hub
        let task = Task {
            _ = try? await server.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await (channel, multiplexer) in connections {
                        self.running.withLockedValue { $0.connections[ObjectIdentifier(channel)] = channel }
                        group.addTask {
                            defer { _ = self.running.withLockedValue { $0.connections.removeValue(forKey: ObjectIdentifier(channel)) } }
                            try? await withThrowingDiscardingTaskGroup { streams in
                                for try await stream in multiplexer.inbound {
                                    streams.addTask { await Self.serve(stream, hub: hub) }
                                }
                            }
                        }
                    }
                }
            }
        }
        running.withLockedValue {
            $0.listener = server.channel
            $0.serving = task
        }
    }

    /// How long `stop` waits for open streams to write their final status
    /// before it closes the connections anyway (a client that does not read).
    static let streamEndGrace = Duration.seconds(2)

    /// Ends every stream (status OK) and closes the socket and every
    /// connection (clients see the stream end and reconnect).
    public func stop() async {
        hub.endStreams()
        // Each call writes its OK status on its own task; closing a connection
        // before that write would turn a clean end into a dropped connection.
        let clock = ContinuousClock()
        let deadline = clock.now + Self.streamEndGrace
        while hub.streamingCalls > 0 && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(1))
        }
        let (listener, task) = running.withLockedValue { ($0.listener, $0.serving) }
        try? await listener?.close()
        running.withLockedValue { Array($0.connections.values) }.forEach { $0.close(promise: nil) }
        await task?.value
        _ = unlink(socketPath)
        running.withLockedValue {
            $0.listener = nil
            $0.serving = nil
        }
    }

    /// Sends `response` on every open and future `FetchX509SVID` stream.
    package func publish(_ response: X509SVIDResponse) { hub.publish(response) }
    /// Sends `response` on every open and future `FetchX509Bundles` stream.
    package func publish(_ response: X509BundlesResponse) { hub.publish(response) }

    /// Publishes one SVID (with its chain's CA as the trust-domain bundle)
    /// and that bundle on the bundles stream.
    public func publish(svid certificate: Certificate, key: P256.Signing.PrivateKey, bundle: [Certificate], hint: String = "") throws {
        let id = try SVIDVerifier.leafID(certificate, now: certificate.notValidBefore)
        var svid = X509SVID()
        svid.spiffeID = id.description
        svid.x509Svid = try DERCertificates.serialize(certificate)
        var keyDER = Array(key.derRepresentation)
        svid.x509SvidKey = SecretBytes(consuming: &keyDER)
        svid.bundle = try bundle.flatMap(DERCertificates.serialize)
        svid.hint = hint
        var response = X509SVIDResponse()
        response.svids = [svid]
        hub.publish(response)
        var bundles = X509BundlesResponse()
        bundles.bundles = ["spiffe://\(id.trustDomain)": svid.bundle]
        hub.publish(bundles)
    }

    /// Calls refused for a missing security header.
    public var refusedCalls: Int { hub.refusedCalls }
    /// Streams open now.
    public var openStreams: Int { hub.openStreams }

    /// One stream kind: its newest message (encoded) and the open streams waiting for the next.
    final class Topic: Sendable {
        typealias Message = SecretBytes
        private struct State: Sendable {
            var latest: Message?
            var streams: [Int: AsyncStream<Message>.Continuation] = [:]
            var nextID = 0
        }
        private let state = NIOLockedValueBox(State())

        var openStreams: Int { state.withLockedValue { $0.streams.count } }

        func publish(_ message: Message) {
            let open = state.withLockedValue { $0.latest = message; return Array($0.streams.values) }
            open.forEach { $0.yield(message) }
        }

        func endStreams() {
            state.withLockedValue { Array($0.streams.values) }.forEach { $0.finish() }
        }

        /// A new stream that starts with the newest message, if any.
        func subscribe() -> AsyncStream<Message> {
            let (stream, continuation) = AsyncStream<Message>.makeStream()
            let id = state.withLockedValue { s in
                s.nextID += 1
                return s.nextID
            }
            // Before registering, so a stream ended at once is still removed.
            continuation.onTermination = { [weak self] _ in self?.state.withLockedValue { _ = $0.streams.removeValue(forKey: id) } }
            state.withLockedValue { s in
                s.streams[id] = continuation
                if let latest = s.latest { continuation.yield(latest) }
            }
            return stream
        }
    }

    /// Both X.509 streams and the count of refused calls.
    final class Hub: Sendable {
        let svids = Topic()
        let bundles = Topic()
        private let refused = NIOLockedValueBox(0)
        /// Streaming calls whose final status is not written yet.
        private let streaming = NIOLockedValueBox(0)

        var refusedCalls: Int { refused.withLockedValue { $0 } }
        var streamingCalls: Int { streaming.withLockedValue { $0 } }
        func streamStarted() { streaming.withLockedValue { $0 += 1 } }
        func streamFinished() { streaming.withLockedValue { $0 -= 1 } }
        var openStreams: Int { svids.openStreams + bundles.openStreams }
        func refuse() { refused.withLockedValue { $0 += 1 } }
        func publish(_ response: X509SVIDResponse) { svids.publish(response.encoded()) }
        func publish(_ response: X509BundlesResponse) {
            var bytes = response.encoded()
            bundles.publish(SecretBytes(consuming: &bytes))
        }

        func endStreams() {
            svids.endStreams()
            bundles.endStreams()
        }
    }

    /// The Workload API's methods this server knows but does not serve (the
    /// X.509 streams' paths are the client's, `WorkloadAPIConnection`).
    static let unservedPaths = ["FetchJWTSVID", "FetchJWTBundles", "ValidateJWTSVID", "FetchWITSVID", "FetchWITBundles"]
        .map { "/SpiffeWorkloadAPI/" + $0 }

    /// One call: the request headers decide the method; a streaming method
    /// writes every message of its topic until the server stops (then status
    /// OK) or the client goes away.
    static func serve(_ stream: Stream, hub: Hub) async {
        try? await stream.executeThenClose { inbound, outbound in
            var requests = inbound.makeAsyncIterator()
            guard case .headers(let request)? = try await requests.next() else { return }
            func finish(_ code: GRPCWire.StatusCode, _ message: String, headersSent: Bool) async throws {
                var trailers: HPACKHeaders = headersSent ? [:] : [":status": "200", "content-type": GRPCWire.contentType]
                trailers.add(name: "grpc-status", value: "\(code.rawValue)")
                if !message.isEmpty { trailers.add(name: "grpc-message", value: GRPCWire.percentEncoded(message)) }
                try await outbound.write(.headers(.init(headers: trailers, endStream: true)))
            }
            let path = request.headers.first(name: ":path") ?? ""
            let topic: Topic? = switch path {
            case WorkloadAPIConnection.fetchX509SVID: hub.svids
            case WorkloadAPIConnection.fetchX509Bundles: hub.bundles
            default: nil
            }
            guard topic != nil || unservedPaths.contains(path) else {
                return try await finish(.unimplemented, "unknown method \(path)", headersSent: false)
            }
            let (header, value) = WorkloadAPIConnection.securityHeader
            guard request.headers[header].contains(value) else {
                hub.refuse()
                return try await finish(.invalidArgument, "security header missing from request", headersSent: false)
            }
            guard let topic else {
                return try await finish(.unimplemented, "this development server serves X.509 SVIDs only", headersSent: false)
            }
            hub.streamStarted()
            defer { hub.streamFinished() }
            let messages = topic.subscribe()
            try await outbound.write(.headers(.init(headers: [":status": "200", "content-type": GRPCWire.contentType])))
            try await withThrowingTaskGroup(of: Void.self) { group in
                // The client going away closes the stream channel; that ends the call.
                group.addTask {
                    try await withTaskCancellationHandler {
                        try await stream.channel.closeFuture.get()
                    } onCancel: {
                        stream.channel.close(promise: nil)
                    }
                }
                group.addTask {
                    for await message in messages {
                        let framed = message.withUnsafeBytes { GRPCWire.frame($0, allocator: stream.channel.allocator) }
                        try await outbound.write(.data(.init(data: .byteBuffer(framed))))
                    }
                    if !Task.isCancelled { try await finish(.ok, "", headersSent: true) }
                }
                _ = try await group.next()
                group.cancelAll()
            }
        }
    }
}
