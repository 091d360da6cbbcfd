import Crypto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NIOConcurrencyHelpers
import SpiffeIdentity
import SwiftASN1
import SwiftProtobuf
import WorkloadAPIProto
import X509

/// A small Workload API server for tests and local development (SPIRE is
/// the production server): serves the X.509 streams on a Unix socket, pushes
/// whatever is published to every open stream, and, as the SPIFFE spec
/// requires, refuses calls without the `workload.spiffe.io: true` header.
/// Every caller gets the same identity; one socket per workload.
public final class DevelopmentWorkloadAPIServer: Sendable {
    public let socketPath: String
    private let hub = Hub()
    private struct Running: Sendable {
        var server: GRPCServer<HTTP2ServerTransport.Posix>?
        var serving: Task<Void, Never>?
    }
    private let running = NIOLockedValueBox(Running())

    public init(socketPath: String) { self.socketPath = socketPath }

    /// Binds the socket (replacing a stale file) and serves until `stop`.
    public func start() async throws {
        _ = unlink(socketPath)
        let server = GRPCServer(
            transport: .http2NIOPosix(address: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext),
            services: [Service(hub: hub)])
        let task = Task { _ = try? await server.serve() }
        running.withLockedValue {
            $0.server = server
            $0.serving = task
        }
        guard (try? await server.listeningAddress) != nil else {
            await stop()
            throw WorkloadAPIError.badEndpoint(address: "unix://\(socketPath)", reason: "the development server could not listen")
        }
    }

    /// Ends every stream and closes the socket (clients see the stream drop).
    public func stop() async {
        let (server, task) = running.withLockedValue { ($0.server, $0.serving) }
        hub.endStreams()
        server?.beginGracefulShutdown()
        await task?.value
        _ = unlink(socketPath)
        running.withLockedValue {
            $0.server = nil
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
        svid.x509Svid = Data(try DERCertificates.serialize(certificate))
        svid.x509SvidKey = key.derRepresentation
        svid.bundle = Data(try bundle.flatMap(DERCertificates.serialize))
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


    /// One stream kind: its newest message and the open streams waiting for the next.
    final class Topic<Message: Sendable>: Sendable {
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
        let svids = Topic<X509SVIDResponse>()
        let bundles = Topic<X509BundlesResponse>()
        private let refused = NIOLockedValueBox(0)

        var refusedCalls: Int { refused.withLockedValue { $0 } }
        var openStreams: Int { svids.openStreams + bundles.openStreams }
        func refuse() { refused.withLockedValue { $0 += 1 } }
        func publish(_ response: X509SVIDResponse) { svids.publish(response) }
        func publish(_ response: X509BundlesResponse) { bundles.publish(response) }

        func endStreams() {
            svids.endStreams()
            bundles.endStreams()
        }
    }

    struct Service: SpiffeWorkloadAPI.ServiceProtocol {
        let hub: Hub

        /// Streams every message of `topic` until the server stops or the client goes.
        func follow<M: Sendable>(_ topic: Topic<M>, _ metadata: Metadata) throws -> StreamingServerResponse<M> {
            try checkHeader(metadata)
            let updates = topic.subscribe()
            return StreamingServerResponse { writer in
                for await update in updates { try await writer.write(update) }
                return [:]
            }
        }

        /// SPIRE's answer to a call without the header.
        func checkHeader(_ metadata: Metadata) throws {
            guard metadata[stringValues: "workload.spiffe.io"].contains("true") else {
                hub.refuse()
                throw RPCError(code: .invalidArgument, message: "security header missing from request")
            }
        }

        func fetchX509SVID(request: ServerRequest<X509SVIDRequest>, context: ServerContext) async throws
            -> StreamingServerResponse<X509SVIDResponse>
        {
            try follow(hub.svids, request.metadata)
        }

        func fetchX509Bundles(request: ServerRequest<X509BundlesRequest>, context: ServerContext) async throws
            -> StreamingServerResponse<X509BundlesResponse>
        {
            try follow(hub.bundles, request.metadata)
        }

        func fetchJWTSVID(request: ServerRequest<JWTSVIDRequest>, context: ServerContext) async throws -> ServerResponse<JWTSVIDResponse> {
            try checkHeader(request.metadata)
            throw Self.x509Only
        }

        func fetchJWTBundles(request: ServerRequest<JWTBundlesRequest>, context: ServerContext) async throws
            -> StreamingServerResponse<JWTBundlesResponse>
        {
            try checkHeader(request.metadata)
            throw Self.x509Only
        }

        func validateJWTSVID(request: ServerRequest<ValidateJWTSVIDRequest>, context: ServerContext) async throws
            -> ServerResponse<ValidateJWTSVIDResponse>
        {
            try checkHeader(request.metadata)
            throw Self.x509Only
        }

        func fetchWITSVID(request: ServerRequest<WITSVIDRequest>, context: ServerContext) async throws
            -> StreamingServerResponse<WITSVIDResponse>
        {
            try checkHeader(request.metadata)
            throw Self.x509Only
        }

        func fetchWITBundles(request: ServerRequest<WITBundlesRequest>, context: ServerContext) async throws
            -> StreamingServerResponse<WITBundlesResponse>
        {
            try checkHeader(request.metadata)
            throw Self.x509Only
        }

        static let x509Only = RPCError(code: .unimplemented, message: "this development server serves X.509 SVIDs only")
    }
}
