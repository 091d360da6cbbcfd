import SwiftASN1
import X509

/// Certificates as the Workload API carries them: DER encodings concatenated
/// with nothing between them (the SVID chain leaf first, or a bundle).
public enum DERCertificates {
    /// Largest single certificate accepted (SPIRE's are a few KiB).
    public static let maximumCertificateBytes = 64 * 1024
    /// Most certificates in one chain or bundle.
    public static let maximumCount = 256

    /// One certificate's DER encoding.
    public static func serialize(_ certificate: Certificate) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return serializer.serializedBytes
    }

    /// A Workload API bundle map (`bundles`, `federated_bundles`): keys are
    /// trust domains' SPIFFE IDs (`spiffe://domain`), values concatenated DER
    /// certificates. Returns certificates by trust domain name; `field` names
    /// the map in errors; a key naming `skipping` is left out (a federated
    /// bundle never overrides the workload's own domain).
    public static func bundleMap(_ map: [String: [UInt8]], field: String, skipping: String? = nil) throws(X509SourceError) -> [String: [Certificate]] {
        var out: [String: [Certificate]] = [:]
        for (domainID, der) in map.sorted(by: { $0.key < $1.key }) {
            let what = "\(field)[\(domainID)]"
            guard let domain = try? SpiffeID(parsing: domainID), domain.path.isEmpty else {
                throw .invalid(file: what, reason: "the key is not a trust domain's SPIFFE ID (spiffe://domain)")
            }
            if domain.trustDomain == skipping { continue }
            out[domain.trustDomain] = try parse(der, what: what)
        }
        return out
    }

    /// Splits `bytes` into certificates. Every byte must belong to a
    /// well-formed DER SEQUENCE that parses as an X.509 certificate.
    /// `what` names the field in errors ("x509_svid", "bundle").
    public static func parse(_ bytes: [UInt8], what: String) throws(X509SourceError) -> [Certificate] {
        guard !bytes.isEmpty else { throw .invalid(file: what, reason: "empty") }
        var out: [Certificate] = []
        var offset = 0
        while offset < bytes.count {
            guard out.count < maximumCount else { throw .invalid(file: what, reason: "more than \(maximumCount) certificates") }
            let index = out.count + 1
            let length = try elementLength(bytes, at: offset, what: what, index: index)
            do {
                out.append(try Certificate(derEncoded: Array(bytes[offset..<(offset + length)])))
            } catch {
                throw .invalid(file: what, reason: "certificate \(index) is not a valid X.509 certificate")
            }
            offset += length
        }
        return out
    }

    /// Total length (header and content) of the SEQUENCE starting at `offset`.
    static func elementLength(_ bytes: [UInt8], at offset: Int, what: String, index: Int) throws(X509SourceError) -> Int {
        let sequenceTag: UInt8 = 0x30
        let remaining = bytes.count - offset
        guard bytes[offset] == sequenceTag else {
            throw .invalid(file: what, reason: "certificate \(index) does not start a DER SEQUENCE")
        }
        guard remaining >= 2 else { throw .invalid(file: what, reason: "certificate \(index) is truncated") }
        let first = Int(bytes[offset + 1])
        var header = 2
        var content = 0
        if first < 0x80 {
            content = first
        } else {
            // Long form: 1...3 length bytes (a certificate over 16 MiB is refused anyway), minimal.
            let count = first & 0x7f
            guard (1...3).contains(count), remaining >= 2 + count else {
                throw .invalid(file: what, reason: "certificate \(index) has a malformed DER length")
            }
            for i in 0..<count { content = content << 8 | Int(bytes[offset + 2 + i]) }
            guard bytes[offset + 2] != 0, content >= 0x80 else {
                throw .invalid(file: what, reason: "certificate \(index) has a non-minimal DER length")
            }
            header += count
        }
        let total = header + content
        guard total <= maximumCertificateBytes else {
            throw .invalid(file: what, reason: "certificate \(index) is larger than \(maximumCertificateBytes) bytes")
        }
        guard total <= remaining else { throw .invalid(file: what, reason: "certificate \(index) is truncated") }
        return total
    }

    /// A PKCS#8 private key from DER (the Workload API's `x509_svid_key`).
    public static func pkcs8PrivateKey(_ der: [UInt8], what: String) throws(X509SourceError) -> Certificate.PrivateKey {
        guard !der.isEmpty else { throw .invalid(file: what, reason: "empty") }
        do {
            return try Certificate.PrivateKey(pemDocument: PEMDocument(type: "PRIVATE KEY", derBytes: der))
        } catch {
            throw .invalid(file: what, reason: "not an unencrypted PKCS#8 private key of a supported type (EC P-256/P-384, RSA)")
        }
    }
}
