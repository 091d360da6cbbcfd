import Foundation
import SecretJSON
import SecureMemory
import ShamirVectors
import SpiffeIdentity
import SpikeWire
import WorkloadAPIWire

/// The parsers that read hostile bytes, as fuzz targets. Each entry must
/// return normally on every input (errors are fine; a trap is a finding) and
/// checks a property beyond "no crash" where one exists. `spike-fuzz` runs
/// them under libFuzzer; `swift test` replays the committed corpus through
/// the same entries (FuzzCorpusTests).
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// Keeper and operator request/response bodies: strict JSON, the shard field, a Nexus's reading of answers.
    case shardJSON = "shard-json"
    /// SPIKE Pilot break-glass files.
    case pilotFile = "pilot-file"
    /// SVID, key and bundle PEM files.
    case pem
    /// Shamir test-vector files.
    case vectorFile = "vector-file"
    /// Concatenated DER certificates and PKCS#8 keys from the Workload API.
    case derCertificates = "der-certificates"
    /// Workload API messages (`X509SVIDResponse`, `X509BundlesResponse`) in protobuf.
    case workloadAPIMessage = "workload-api-message"

    /// Largest input worth trying: every format here is refused far below it.
    public static let maximumInputBytes = 64 * 1024

    public func run(_ input: UnsafeRawBufferPointer) {
        guard input.count <= Self.maximumInputBytes else { return }
        switch self {
        case .shardJSON: Self.shardJSON(input)
        case .pilotFile: Self.pilotFile(Array(input))
        case .pem: Self.pem(Array(input))
        case .vectorFile: Self.vectorFile(Data(input))
        case .derCertificates: Self.derCertificates(Array(input))
        case .workloadAPIMessage: Self.workloadAPIMessage(input)
        }
    }

    public func run(_ bytes: [UInt8]) { bytes.withUnsafeBytes { run($0) } }

    /// A broken property: a finding, like a crash.
    static func violated(_ property: String) -> Never {
        fatalError("fuzz property violated: \(property)")
    }

    static func shardJSON(_ input: UnsafeRawBufferPointer) {
        let body = SecretBytes(copying: input)
        if let members = try? KeeperWire.object(body), let shard = try? KeeperWire.shard(in: members) {
            // What parses must re-encode as Go does and parse back to the same bytes.
            let again = KeeperWire.shardBody(shard)
            guard let back = try? KeeperWire.shard(in: KeeperWire.object(again)), back.constantTimeEquals(shard) else {
                violated("shard JSON round trip")
            }
        }
        for status in [200, 400, 404, 500] {
            if case .shard(let s) = KeeperWire.interpretShardResponse(status: status, body: body) {
                guard status == 200, s.count == KeeperWire.shardByteCount, !s.isAllZero else { violated("accepted shard") }
            }
        }
        _ = try? JSONReader.stringObject(body)
    }

    static func pilotFile(_ bytes: [UInt8]) {
        guard let (id, value) = try? PilotShardFile.parse(bytes) else { return }
        guard value.count == 32, (1...PilotShardFile.maximumID).contains(id) else { violated("pilot file fields") }
        var content = PilotShardFile.content(id: id, value: value)
        defer { wipe(&content) }
        guard let again = try? PilotShardFile.parse(content), again.id == id, again.value.constantTimeEquals(value) else {
            violated("pilot file round trip")
        }
    }

    static func pem(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        _ = try? PEMFiles.certificates(pem: text, file: "fuzz.pem")
        _ = try? PEMFiles.privateKey(pem: text, file: "fuzz.key")
    }

    static func vectorFile(_ data: Data) {
        guard let file = try? VectorLoader.decode(data, path: "fuzz.json") else { return }
        // A decoded file must encode again without trapping.
        _ = try? VectorLoader.encode(file)
    }

    static func derCertificates(_ bytes: [UInt8]) {
        if let certificates = try? DERCertificates.parse(bytes, what: "fuzz") {
            guard !certificates.isEmpty, certificates.count <= DERCertificates.maximumCount else { violated("certificate count") }
        }
        _ = try? DERCertificates.pkcs8PrivateKey(bytes, what: "fuzz")
    }

    /// Whatever decodes re-encodes to bytes that decode to the same fields
    /// (the encoding is canonical, so a second round gives identical bytes).
    static func workloadAPIMessage(_ input: UnsafeRawBufferPointer) {
        func bytes(_ secret: SecretBytes) -> [UInt8] { secret.withUnsafeBytes { Array($0) } }
        if let message = try? X509SVIDResponse(decoding: input) {
            let once = bytes(message.encoded())
            guard let again = try? once.withUnsafeBytes({ try X509SVIDResponse(decoding: $0) }) else { violated("re-encoded X509SVIDResponse does not decode") }
            guard again.svids.count == message.svids.count, again.crl == message.crl, again.federatedBundles == message.federatedBundles,
                  zip(again.svids, message.svids).allSatisfy({ a, b in
                      a.spiffeID == b.spiffeID && a.x509Svid == b.x509Svid && bytes(a.x509SvidKey) == bytes(b.x509SvidKey)
                          && a.bundle == b.bundle && a.hint == b.hint
                  }),
                  bytes(again.encoded()) == once
            else { violated("X509SVIDResponse round trip") }
        }
        if let message = try? X509BundlesResponse(decoding: input) {
            let once = message.encoded()
            guard let again = try? once.withUnsafeBytes({ try X509BundlesResponse(decoding: $0) }),
                  again.crl == message.crl, again.bundles == message.bundles, again.encoded() == once
            else { violated("X509BundlesResponse round trip") }
        }
    }
}
