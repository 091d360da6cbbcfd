import Foundation
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

    /// Peers holding any of `roles` under `trustRoots`.
    public static func roles(_ roles: [SpikeRole], trustRoots: TrustRoots) -> PeerPolicy {
        PeerPolicy(name: roles.map(\.rawValue).joined(separator: " or ")) { id in
            roles.contains { trustRoots.id(id, hasRole: $0) }
        }
    }
}

/// The verified identity of a connection's peer, filled in by the TLS
/// verification callback before any application data flows.
public final class PeerIdentityBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: SpiffeID?
    public init() {}
    public var id: SpiffeID? {
        get { lock.lock(); defer { lock.unlock() }; return value }
        set { lock.lock(); value = newValue; lock.unlock() }
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
final class TLSContextCache: @unchecked Sendable {
    enum Side { case server, client }
    private let lock = NSLock()
    private var cached: (generation: UInt64, context: NIOSSLContext)?
    private let side: Side
    let source: any X509Source

    init(source: any X509Source, side: Side) {
        self.source = source
        self.side = side
    }

    func context() throws -> NIOSSLContext {
        let snapshot = source.current
        // A source keeps its last good SVID while it cannot get a new one, but never past its expiry.
        guard !snapshot.leafRulesChecked || snapshot.notAfter > Date() else { throw SVIDExpired(id: snapshot.id, notAfter: snapshot.notAfter) }
        lock.lock()
        defer { lock.unlock() }
        if let cached, cached.generation == snapshot.generation { return cached.context }
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
        // Require a peer certificate; the custom callback does all verification (no hostname check).
        configuration.certificateVerification = .noHostnameVerification
        configuration.applicationProtocols = ["http/1.1"]
        let context = try NIOSSLContext(configuration: configuration)
        cached = (snapshot.generation, context)
        return context
    }
}

/// The SVID's leaf has expired and the source has no newer one.
public struct SVIDExpired: Error, CustomStringConvertible {
    public let id: SpiffeID
    public let notAfter: Date
    public var description: String { "the SVID \(id) expired at \(notAfter) and no newer one has arrived" }
}
