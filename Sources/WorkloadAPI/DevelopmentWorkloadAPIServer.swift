import Crypto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
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
public final class DevelopmentWorkloadAPIServer: @unchecked Sendable {
    public let socketPath: String
    private let hub = Hub()
    private let lock = NSLock()
    private var server: GRPCServer<HTTP2ServerTransport.Posix>?
    private var serving: Task<Void, Never>?

    public init(socketPath: String) { self.socketPath = socketPath }

    /// Binds the socket (replacing a stale file) and serves until `stop`.
    public func start() async throws {
        _ = unlink(socketPath)
        let server = GRPCServer(
            transport: .http2NIOPosix(address: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext),
            services: [Service(hub: hub)])
        let task = Task { _ = try? await server.serve() }
        lock.withLock {
            self.server = server
            serving = task
        }
        guard (try? await server.listeningAddress) != nil else {
            await stop()
            throw WorkloadAPIError.badEndpoint(address: "unix://\(socketPath)", reason: "the development server could not listen")
        }
    }

    /// Ends every stream and closes the socket (clients see the stream drop).
    public func stop() async {
        let (server, task) = lock.withLock { (self.server, serving) }
        hub.endStreams()
        server?.beginGracefulShutdown()
        await task?.value
        _ = unlink(socketPath)
        lock.withLock {
            self.server = nil
            serving = nil
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
        svid.x509Svid = Data(try Self.der(certificate))
        svid.x509SvidKey = key.derRepresentation
        svid.bundle = Data(try bundle.flatMap(Self.der))
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

    static func der(_ certificate: Certificate) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return serializer.serializedBytes
    }

    /// The newest messages and the open streams waiting for the next.
    final class Hub: @unchecked Sendable {
        private let lock = NSLock()
        private var svids: X509SVIDResponse?
        private var bundles: X509BundlesResponse?
        private var svidStreams: [Int: AsyncStream<X509SVIDResponse>.Continuation] = [:]
        private var bundleStreams: [Int: AsyncStream<X509BundlesResponse>.Continuation] = [:]
        private var nextID = 0
        private var refused = 0

        var refusedCalls: Int { lock.withLock { refused } }

        var openStreams: Int { lock.withLock { svidStreams.count + bundleStreams.count } }

        func publish(_ response: X509SVIDResponse) {
            let streams = lock.withLock { svids = response; return Array(svidStreams.values) }
            streams.forEach { $0.yield(response) }
        }

        func publish(_ response: X509BundlesResponse) {
            let streams = lock.withLock { bundles = response; return Array(bundleStreams.values) }
            streams.forEach { $0.yield(response) }
        }

        func refuse() { lock.withLock { refused += 1 } }

        func endStreams() {
            let (a, b) = lock.withLock { (Array(svidStreams.values), Array(bundleStreams.values)) }
            a.forEach { $0.finish() }
            b.forEach { $0.finish() }
        }

        func subscribeSVIDs() -> AsyncStream<X509SVIDResponse> {
            let (stream, continuation) = AsyncStream<X509SVIDResponse>.makeStream()
            let id = lock.withLock {
                nextID += 1
                return nextID
            }
            // Before registering, so a stream ended at once is still removed.
            continuation.onTermination = { [weak self] _ in self?.lock.withLock { _ = self?.svidStreams.removeValue(forKey: id) } }
            lock.withLock {
                svidStreams[id] = continuation
                if let svids { continuation.yield(svids) }
            }
            return stream
        }

        func subscribeBundles() -> AsyncStream<X509BundlesResponse> {
            let (stream, continuation) = AsyncStream<X509BundlesResponse>.makeStream()
            let id = lock.withLock {
                nextID += 1
                return nextID
            }
            // Before registering, so a stream ended at once is still removed.
            continuation.onTermination = { [weak self] _ in self?.lock.withLock { _ = self?.bundleStreams.removeValue(forKey: id) } }
            lock.withLock {
                bundleStreams[id] = continuation
                if let bundles { continuation.yield(bundles) }
            }
            return stream
        }
    }

    struct Service: SpiffeWorkloadAPI.ServiceProtocol {
        let hub: Hub

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
            try checkHeader(request.metadata)
            let updates = hub.subscribeSVIDs()
            return StreamingServerResponse { writer in
                for await update in updates { try await writer.write(update) }
                return [:]
            }
        }

        func fetchX509Bundles(request: ServerRequest<X509BundlesRequest>, context: ServerContext) async throws
            -> StreamingServerResponse<X509BundlesResponse>
        {
            try checkHeader(request.metadata)
            let updates = hub.subscribeBundles()
            return StreamingServerResponse { writer in
                for await update in updates { try await writer.write(update) }
                return [:]
            }
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
