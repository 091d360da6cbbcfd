import Foundation
import SwiftASN1
import X509

/// Why a peer's certificate chain is not a valid X.509-SVID for the role asked.
/// Messages carry no certificate bytes; the peer ID appears only once verified.
public enum SVIDError: Error, Equatable, Sendable, CustomStringConvertible {
    case emptyChain
    case unparseable(position: Int)
    case noURISAN
    case multipleURISANs(Int)
    case invalidSpiffeID(SpiffeIDError)
    case malformedExtension(String)
    case leafIsCA
    case leafCanSignCertificates
    case leafCanSignCRLs
    case notYetValid
    case expired
    case noBundle(trustDomain: String)
    case chainDoesNotVerify
    case roleNotAllowed(id: String, expected: String)

    public var description: String {
        switch self {
        case .emptyChain: "no certificate presented"
        case .unparseable(let i): "certificate \(i) of the chain is not valid DER X.509"
        case .noURISAN: "leaf has no URI SAN (not an SVID)"
        case .multipleURISANs(let n): "leaf has \(n) URI SANs (an SVID has exactly one)"
        case .invalidSpiffeID(let e): "leaf URI SAN is not a SPIFFE ID: \(e)"
        case .malformedExtension(let name): "leaf's \(name) extension does not parse"
        case .leafIsCA: "leaf is a CA certificate"
        case .leafCanSignCertificates: "leaf has the keyCertSign key usage"
        case .leafCanSignCRLs: "leaf has the cRLSign key usage"
        case .notYetValid: "leaf is not valid yet"
        case .expired: "leaf has expired"
        case .noBundle(let td): "no trust bundle for trust domain \(td)"
        case .chainDoesNotVerify: "chain does not verify to the trust bundle of its trust domain"
        case .roleNotAllowed(let id, let expected): "peer \(id) is not \(expected)"
        }
    }
}

/// A verified peer: its SPIFFE ID and the chain from its leaf to a trusted root.
public struct VerifiedSVID: Sendable {
    public let id: SpiffeID
    public let chain: [Certificate]
}

/// X.509-SVID verification with go-spiffe's rules: exactly one URI SAN that
/// is a valid SPIFFE ID; the leaf is not a CA and has neither keyCertSign nor
/// cRLSign; its validity period covers now; the chain verifies (RFC 5280) to
/// the bundle of the ID's own trust domain. There is no hostname check.
public enum SVIDVerifier {
    /// Checks the leaf's SVID rules (no chain building yet) and returns its ID.
    public static func leafID(_ leaf: Certificate, now: Date = Date()) throws(SVIDError) -> SpiffeID {
        // swift-certificates parses extensions when asked; Go's parser refuses a
        // certificate with a malformed known extension outright. So must we: an
        // extension that does not parse is never read as absent.
        try checkKnownExtensionsParse(leaf)
        let names = try parsed("subjectAltName") { try leaf.extensions.subjectAlternativeNames }
        let uris = (names ?? SubjectAlternativeNames()).compactMap { name -> String? in
            if case .uniformResourceIdentifier(let u) = name { return u }
            return nil
        }
        guard !uris.isEmpty else { throw .noURISAN }
        guard uris.count == 1 else { throw .multipleURISANs(uris.count) }
        let id: SpiffeID
        do {
            id = try SpiffeID(parsing: uris[0])
        } catch {
            throw .invalidSpiffeID(error)
        }
        let constraints = try parsed("basicConstraints") { try leaf.extensions.basicConstraints }
        if case .isCertificateAuthority = constraints { throw .leafIsCA }
        if let usage = try parsed("keyUsage", { try leaf.extensions.keyUsage }) {
            if usage.keyCertSign { throw .leafCanSignCertificates }
            if usage.cRLSign { throw .leafCanSignCRLs }
        }
        guard now >= leaf.notValidBefore else { throw .notYetValid }
        guard now <= leaf.notValidAfter else { throw .expired }
        return id
    }

    /// The extensions an SVID's rules or RFC 5280 path validation read, each
    /// by its name in errors.
    static let knownExtensions: [(name: String, parses: @Sendable (Certificate.Extensions) throws -> Void)] = [
        ("subjectAltName", { _ = try $0.subjectAlternativeNames }),
        ("basicConstraints", { _ = try $0.basicConstraints }),
        ("keyUsage", { _ = try $0.keyUsage }),
        ("extendedKeyUsage", { _ = try $0.extendedKeyUsage }),
        ("nameConstraints", { _ = try $0.nameConstraints }),
        ("authorityKeyIdentifier", { _ = try $0.authorityKeyIdentifier }),
        ("subjectKeyIdentifier", { _ = try $0.subjectKeyIdentifier }),
        ("authorityInfoAccess", { _ = try $0.authorityInformationAccess }),
    ]

    static func checkKnownExtensionsParse(_ leaf: Certificate) throws(SVIDError) {
        for known in knownExtensions { try parsed(known.name) { try known.parses(leaf.extensions) } }
    }

    /// `read`'s value; its failure is the named extension's.
    static func parsed<T>(_ name: String, _ read: () throws -> T) throws(SVIDError) -> T {
        do {
            return try read()
        } catch {
            throw .malformedExtension(name)
        }
    }

    /// Verifies a presented chain (leaf first) against `bundles` (trust domain → CA certificates).
    public static func verify(chain der: [[UInt8]], bundles: [String: [Certificate]], now: Date = Date()) async throws(SVIDError) -> VerifiedSVID {
        guard !der.isEmpty else { throw .emptyChain }
        var chain: [Certificate] = []
        for (i, bytes) in der.enumerated() {
            guard let cert = try? Certificate(derEncoded: bytes) else { throw .unparseable(position: i) }
            chain.append(cert)
        }
        return try await verify(chain: chain, bundles: bundles, now: now)
    }

    public static func verify(chain: [Certificate], bundles: [String: [Certificate]], now: Date = Date()) async throws(SVIDError) -> VerifiedSVID {
        guard let leaf = chain.first else { throw .emptyChain }
        let id = try leafID(leaf, now: now)
        guard let roots = bundles[id.trustDomain], !roots.isEmpty else { throw .noBundle(trustDomain: id.trustDomain) }
        var verifier = Verifier(rootCertificates: CertificateStore(roots)) {
            SpiffeLeafExtensions()
            RFC5280Policy(validationTime: now)
        }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(chain.dropFirst()))
        guard case .validCertificate(let validated) = result else { throw .chainDoesNotVerify }
        return VerifiedSVID(id: id, chain: Array(validated))
    }

    /// Verifies `WarmUpChain`, a public chain of no real trust domain, at an
    /// instant inside its validity. The Swift runtime sets up each generic type
    /// of the X.509 and ASN.1 paths on first use by scanning the binary's
    /// conformance records; paid here, at process start, those scans are off
    /// the first handshakes' path. The outcome means nothing and is dropped.
    public static func warmUp() async {
        guard let ca = try? Certificate(derEncoded: WarmUpChain.ca) else { return }
        _ = try? await verify(chain: [WarmUpChain.leaf], bundles: [WarmUpChain.trustDomain: [ca]], now: WarmUpChain.instant)
    }
}

/// Lets an SVID mark its SAN critical (required when its subject is empty):
/// the SAN's content was checked by `SVIDVerifier.leafID` already.
struct SpiffeLeafExtensions: VerifierPolicy {
    let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = [.X509ExtensionID.subjectAlternativeName]
    func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult { .meetsPolicy }
}
