import Crypto
import Foundation
import SwiftASN1
import X509

/// A development CA that mints X.509-SVIDs, for `certs issue`, the demo and
/// tests. Never needed in production (SPIRE issues SVIDs there).
///
/// Invariant: `caCertificate` is self-signed by `caKey`, is a CA with
/// keyCertSign and cRLSign, and carries the trust domain's SPIFFE ID as its
/// URI SAN (as SPIRE's CAs do).
public struct DevelopmentPKI: Sendable {
    public let trustDomain: String
    public let caKey: P256.Signing.PrivateKey
    public let caCertificate: Certificate

    public init(trustDomain: String = "spike.ist", validFor: TimeInterval = 7 * 86_400, now: Date = Date()) throws {
        self.trustDomain = trustDomain
        caKey = P256.Signing.PrivateKey()
        let name = try DistinguishedName { OrganizationName("spike-recovery development"); CommonName("\(trustDomain) dev CA") }
        caCertificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(caKey.publicKey),
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(validFor),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectAlternativeNames([.uniformResourceIdentifier("spiffe://\(trustDomain)")])
            },
            issuerPrivateKey: .init(caKey))
    }

    /// Options for deliberately broken SVIDs (tests of the verifier).
    public struct Flaws: Sendable {
        public var markAsCA = false
        public var keyCertSign = false
        public var extraURI: String? = nil
        public var noURI = false
        public var notValidBefore: Date? = nil
        public var notValidAfter: Date? = nil
        /// Replaces (or adds) the extension with this OID by one whose value
        /// does not parse as that extension (an ASN.1 NULL).
        public var malformedExtension: ASN1ObjectIdentifier? = nil
        public init() {}
    }

    /// An SVID for `path` (e.g. `/spike/keeper/1`): the leaf certificate and its new key.
    public func issue(path: String, validFor: TimeInterval = 86_400, flaws: Flaws = Flaws(), now: Date = Date())
        throws -> (certificate: Certificate, key: P256.Signing.PrivateKey)
    {
        let key = P256.Signing.PrivateKey()
        let id = "spiffe://\(trustDomain)\(path)"
        var uris: [GeneralName] = flaws.noURI ? [.dnsName("localhost")] : [.uniformResourceIdentifier(id)]
        if let extra = flaws.extraURI { uris.append(.uniformResourceIdentifier(extra)) }
        let subject = try DistinguishedName { OrganizationName("SPIRE"); CommonName(String(path.suffix(60))) }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: flaws.notValidBefore ?? now.addingTimeInterval(-300),
            notValidAfter: flaws.notValidAfter ?? now.addingTimeInterval(validFor),
            issuer: caCertificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Self.replacing(flaws.malformedExtension, in: try Certificate.Extensions {
                Critical(flaws.markAsCA ? BasicConstraints.isCertificateAuthority(maxPathLength: 0) : BasicConstraints.notCertificateAuthority)
                Critical(flaws.keyCertSign ? KeyUsage(digitalSignature: true, keyCertSign: true) : KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames(uris)
            }),
            issuerPrivateKey: .init(caKey))
        return (certificate, key)
    }

    static func replacing(_ oid: ASN1ObjectIdentifier?, in extensions: Certificate.Extensions) throws -> Certificate.Extensions {
        guard let oid else { return extensions }
        let asn1Null: [UInt8] = [0x05, 0x00]
        return try Certificate.Extensions(extensions.filter { $0.oid != oid } + [Certificate.Extension(oid: oid, critical: false, value: asn1Null[...])])
    }

    /// A snapshot for in-process use (tests, the demo).
    public func snapshot(path: String, flaws: Flaws = Flaws(), extraBundles: [String: [Certificate]] = [:], generation: UInt64 = 1) throws -> X509Snapshot {
        let (cert, key) = try issue(path: path, flaws: flaws)
        var bundles = extraBundles
        bundles[trustDomain, default: []].append(caCertificate)
        return try X509Snapshot(chain: [cert], privateKey: .init(key), bundles: bundles, generation: generation)
    }

    /// Writes `<name>.pem` (leaf), `<name>.key` (PKCS#8, mode 0600) into `directory`.
    public func write(path: String, name: String, into directory: URL, validFor: TimeInterval = 86_400, flaws: Flaws = Flaws()) throws {
        let (cert, key) = try issue(path: path, validFor: validFor, flaws: flaws)
        try Self.pem(cert).write(to: directory.appendingPathComponent("\(name).pem"), atomically: true, encoding: .utf8)
        let keyURL = directory.appendingPathComponent("\(name).key")
        try Self.writePrivate(key.pemRepresentation, to: keyURL)
    }

    /// `certs issue`: `bundle.pem` and `<name>.pem`/`.key` for nexus, bootstrap,
    /// keeper-1 … keeper-N and the Pilot roles, into `directory` (created if
    /// missing). Returns the identity names, in the order written.
    public func writeIdentities(keepers: Int, into directory: URL, validFor: TimeInterval) throws -> [String] {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try writeBundle(into: directory)
        var identities: [(String, String)] = [("nexus", SpikeRole.nexus.path), ("bootstrap", SpikeRole.bootstrap.path)]
        identities += (1...max(keepers, 1)).map { ("keeper-\($0)", "\(SpikeRole.keeper.path)/\($0)") }
        identities += [("pilot-superuser", SpikeRole.pilotSuperuser.path), ("pilot-recover", SpikeRole.pilotRecover.path),
                       ("pilot-restore", SpikeRole.pilotRestore.path)]
        for (name, path) in identities { try write(path: path, name: name, into: directory, validFor: validFor) }
        return identities.map(\.0)
    }

    /// Writes the CA certificate as `bundle.pem`.
    public func writeBundle(into directory: URL) throws {
        try Self.pem(caCertificate).write(to: directory.appendingPathComponent("bundle.pem"), atomically: true, encoding: .utf8)
    }

    public static func pem(_ certificate: Certificate) throws -> String { try certificate.serializeAsPEM().pemString + "\n" }

    /// Creates the file with mode 0600 before any byte is written.
    public static func writePrivate(_ text: String, to url: URL) throws {
        let path = url.path
        _ = unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path]) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
    }
}
