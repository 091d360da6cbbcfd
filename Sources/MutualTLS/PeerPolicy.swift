import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import SpiffeIdentity
import X509

/// Who may be on the other end of a connection: a predicate on the verified
/// peer SPIFFE ID, with a name for log lines ("nexus or bootstrap").
public struct PeerPolicy: Sendable {
    public let name: String
    public let allows: @Sendable (SpiffeID) -> Bool

    public init(name: String, allows: @escaping @Sendable (SpiffeID) -> Bool) {
        self.name = name
        self.allows = allows
    }

    /// This policy, narrowed to exactly `id`.
    public func pinned(to id: SpiffeID) -> PeerPolicy {
        let base = allows
        return PeerPolicy(name: "\(id), the ID pinned for this peer") { $0 == id && base($0) }
    }

    /// Peers holding any of `roles` under `trustRoots`.
    public static func roles(_ roles: [SpikeRole], trustRoots: TrustRoots) -> PeerPolicy {
        PeerPolicy(name: roles.map(\.rawValue).joined(separator: " or ")) { id in
            roles.contains { trustRoots.id(id, hasRole: $0) }
        }
    }
}

/// The verified identity of a connection's peer, filled in by the TLS
/// verification callback before any application data flows.
public final class PeerIdentityBox: Sendable {
    private let value = NIOLockedValueBox<SpiffeID?>(nil)
    public init() {}
    public var id: SpiffeID? {
        get { value.withLockedValue { $0 } }
        set { value.withLockedValue { $0 = newValue } }
    }
}

/// The custom verification callback NIOSSL runs during the handshake: the
/// presented chain must be a valid X.509-SVID (SVIDVerifier) and the peer's ID
/// must satisfy `policy`; otherwise the handshake fails with a TLS alert and
/// the application never sees the connection.
enum PeerVerification {
    static func callback(source: any X509Source, policy: PeerPolicy, box: PeerIdentityBox,
                         onRefused: @escaping @Sendable (String) -> Void) -> NIOSSLCustomVerificationCallbackWithMetadata {
        { certificates, promise in
            let der: [[UInt8]]
            do {
                der = try certificates.map { try $0.toDERBytes() }
            } catch {
                onRefused("peer certificate could not be read")
                promise.succeed(.failed)
                return
            }
            let bundles = source.current.bundles
            // On its own executor: a busy cooperative pool must not stall handshakes.
            Task(executorPreference: DispatchTaskExecutor.verification) {
                do {
                    let verified = try await SVIDVerifier.verify(chain: der, bundles: bundles)
                    guard policy.allows(verified.id) else {
                        onRefused("peer \(verified.id) refused: not \(policy.name)")
                        promise.succeed(.failed)
                        return
                    }
                    box.id = verified.id
                    promise.succeed(.certificateVerified(VerificationMetadata(ValidatedCertificateChain(certificates))))
                } catch {
                    onRefused("peer refused: \(error)")
                    promise.succeed(.failed)
                }
            }
        }
    }
}

/// NIOSSL contexts built from an X509Source, rebuilt only when the source's
/// generation changes (so rotated SVIDs reach new connections at once).
final class TLSContextCache: Sendable {
    enum Side { case server, client }
    private let cached = NIOLockedValueBox<(generation: UInt64, context: NIOSSLContext)?>(nil)
    private let side: Side
    let source: any X509Source
    /// The wall clock the expiry check reads (tests move it instead of waiting).
    let now: @Sendable () -> Date

    init(source: any X509Source, side: Side, now: @escaping @Sendable () -> Date = Date.init) {
        self.source = source
        self.side = side
        self.now = now
    }

    /// Builds the current context in the background, on a verification queue
    /// (not the cooperative pool, whose tasks would wait for it). Nothing is
    /// concluded from it: whoever needs the context asks again.
    func startWarmUp() {
        Task(executorPreference: DispatchTaskExecutor.verification) { _ = try? self.context() }
    }

    func context() throws -> NIOSSLContext {
        let snapshot = source.current
        // A source keeps its last good SVID while it cannot get a new one, but never past its expiry.
        guard !snapshot.leafRulesChecked || snapshot.notAfter > now() else { throw SVIDExpired(id: snapshot.id, notAfter: snapshot.notAfter) }
        return try cached.withLockedValue { entry in
            if let entry, entry.generation == snapshot.generation { return entry.context }
            let chain = try snapshot.chainDER.map { NIOSSLCertificateSource.certificate(try NIOSSLCertificate(bytes: $0, format: .der)) }
            let key = try snapshot.privateKeyPEM.withUnsafeBytes { try NIOSSLPrivateKey(bytes: Array($0), format: .pem) }
            var configuration: TLSConfiguration
            switch side {
            case .server:
                configuration = .makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
            case .client:
                configuration = .makeClientConfiguration()
                configuration.certificateChain = chain
                configuration.privateKey = .privateKey(key)
            }
            configuration.minimumTLSVersion = .tlsv12
            // The custom callback verifies against the SVID bundle; without this NIOSSL
            // parses the system CA store for every context (tens of ms at start-up).
            configuration.trustRoots = .certificates([])
            // Require a peer certificate; the custom callback does all verification (no hostname check).
            configuration.certificateVerification = .noHostnameVerification
            configuration.applicationProtocols = ["http/1.1"]
            // A peer that never answers our close_notify holds its connection this long at most
            // (NIOSSL's default is 5 s; a server closing a dripping or over-limit peer should not wait).
            configuration.shutdownTimeout = .seconds(1)
            let context = try NIOSSLContext(configuration: configuration)
            entry = (snapshot.generation, context)
            return context
        }
    }
}

/// A server's TLS contexts for one X509Source, made before the server
/// starts: `startWarmUp` builds the first on a verification queue, so that a
/// nexus has its operator server's context before its keeper handshakes run,
/// instead of building it beside them. The server still asks for the context
/// when it starts (an unusable SVID fails the start) and at each connection
/// (a rotated SVID is taken at once).
public final class ServerTLSContexts: Sendable {
    let cache: TLSContextCache

    public init(source: any X509Source) {
        cache = TLSContextCache(source: source, side: .server)
    }

    /// Builds the context in the background. Nothing is concluded from it: a
    /// failure here is met again, and reported, when the server starts.
    public func startWarmUp() { cache.startWarmUp() }
}

/// The SVID's leaf has expired and the source has no newer one.
public struct SVIDExpired: Error, CustomStringConvertible {
    public let id: SpiffeID
    public let notAfter: Date
    public var description: String { "the SVID \(id) expired at \(notAfter) and no newer one has arrived" }
}
