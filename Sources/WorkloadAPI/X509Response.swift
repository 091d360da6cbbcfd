import Foundation
import SecureMemory
import WorkloadAPIWire
import SpiffeIdentity
import X509

/// Turns a `FetchX509SVID` message into a snapshot, refusing anything that
/// is not a complete, consistent identity (so a bad message never replaces
/// a good SVID).
enum X509Response {
    static func snapshot(_ message: X509SVIDResponse, selecting selector: SVIDSelector, generation: UInt64, now: Date = Date())
        throws(WorkloadAPIError) -> X509Snapshot
    {
        guard !message.svids.isEmpty else { throw .badResponse("no SVIDs in the response") }
        let chosen: X509SVID
        switch selector {
        case .first: chosen = message.svids[0]
        case .hint(let hint):
            guard let match = message.svids.first(where: { $0.hint == hint }) else {
                throw .badResponse("no SVID with hint \"\(hint)\" among \(message.svids.count)")
            }
            chosen = match
        case .id(let id):
            guard let match = message.svids.first(where: { $0.spiffeID == id }) else {
                throw .badResponse("no SVID for \(id) among \(message.svids.count)")
            }
            chosen = match
        }
        do throws(X509SourceError) {
            let declared: SpiffeID
            do {
                declared = try SpiffeID(parsing: chosen.spiffeID)
            } catch {
                throw .invalid(file: "spiffe_id", reason: "\(error)")
            }
            let chain = try DERCertificates.parse(chosen.x509Svid, what: "x509_svid")
            // swift-certificates takes the DER as an array: a copy wiped at once.
            var keyDER = chosen.x509SvidKey.withUnsafeBytes { Array($0) }
            defer { SecureMemory.wipe(&keyDER) }
            let key = try DERCertificates.pkcs8PrivateKey(keyDER, what: "x509_svid_key")
            let own = try DERCertificates.parse(chosen.bundle, what: "bundle")
            var bundles = try DERCertificates.bundleMap(message.federatedBundles, field: "federated_bundles",
                                                        skipping: declared.trustDomain)
            bundles[declared.trustDomain] = own
            guard chain[0].notValidAfter > now else {
                throw .invalid(file: "x509_svid", reason: "the leaf expired at \(chain[0].notValidAfter)")
            }
            let snapshot = try X509Snapshot(chain: chain, privateKey: key, bundles: bundles, generation: generation)
            guard snapshot.id == declared else {
                throw .invalid(file: "x509_svid", reason: "the leaf is \(snapshot.id), the response says \(declared)")
            }
            return snapshot
        } catch {
            switch error {
            case .keyDoesNotMatchCertificate: throw .badResponse("x509_svid_key does not match the x509_svid leaf")
            default: throw .badResponse(error.description)
            }
        }
    }

    /// Zeroes the key bytes of a received message. They live in wiping
    /// storage that only this message refers to (decoded from the wire into
    /// it), so this reaches the only copy this code made.
    static func wipeKeys(_ message: X509SVIDResponse) {
        for svid in message.svids { svid.x509SvidKey.wipe() }
    }
}
