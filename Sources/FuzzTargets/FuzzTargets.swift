import Foundation
import SecretJSON
import SecureMemory
import ShamirVectors
import SpiffeIdentity
import SpikeWire

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
            let again = KeeperWire.shardBody(shard).withUnsafeBytes { SecretBytes(copying: $0) }
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
}
