import Foundation
import Shamir
import ShamirCore
import ShamirReference
import Testing
@testable import ShamirVectors

/// The repository's own Vectors/ folder (tests never read ../shared).
let vectorsDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Vectors")

func vectorFiles() throws -> [URL] {
    var out: [URL] = []
    for sub in ["go-spike", "reference"] {
        let dir = vectorsDirectory.appendingPathComponent(sub)
        out += try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "json" }
    }
    return out.sorted { $0.path < $1.path }
}

@Suite struct VectorFileTests {
    let verifier = VectorVerifier(schemes: [NativeShamir(), ReferenceShamir()])

    /// Files verified here only in optimized builds. Thresholds up to 1000 take
    /// minutes through the unoptimized field of a debug build (no target sets
    /// -O, so the products stay usable as dependencies); CI's release step
    /// `vectors verify` checks these files, with both implementations, as shipped.
    static var releaseOnly: Set<String> {
        #if DEBUG
        ["large.json"]
        #else
        []
        #endif
    }

    @Test func everyCommittedFilePassesBothImplementations() throws {
        let files = try vectorFiles()
        #expect(files.count == 7)
        var total = 0
        for url in files where !Self.releaseOnly.contains(url.lastPathComponent) {
            let file = try VectorLoader.load(path: url.path)
            let report = verifier.verify(file, label: url.lastPathComponent)
            #expect(report.failures == [])
            #expect(report.passed == file.caseCount)
            total += report.passed
        }
        #expect(total > 600)
    }

    @Test func goFileHasEveryCase() throws {
        let file = try VectorLoader.load(path: vectorsDirectory.appendingPathComponent("go-spike/go-spike-shamir.json").path)
        #expect(file.split.count == 47)
        #expect(file.recover.count == 149)
        #expect(file.reject.count == 10)
    }

    /// `vectors generate` reproduces the committed files byte for byte.
    @Test func generatorReproducesCommittedFiles() throws {
        let generated = try VectorGenerator().files()
        let committed = try FileManager.default.contentsOfDirectory(atPath: vectorsDirectory.appendingPathComponent("reference").path)
            .filter { $0.hasSuffix(".json") }
        #expect(Set(committed) == Set(generated.map(\.name)))
        for (name, file) in generated {
            let onDisk = try Data(contentsOf: vectorsDirectory.appendingPathComponent("reference/\(name)"))
            #expect(try VectorLoader.encode(file) == onDisk, "\(name) differs from what the generator writes")
        }
    }

    /// The reference set covers what the spec asks for.
    @Test func referenceCoverage() throws {
        let generated = Dictionary(uniqueKeysWithValues: try VectorGenerator().files().map { ($0.name, $0.file) })
        let thresholds = Set(generated["thresholds.json"]!.split.map(\.threshold))
        #expect(thresholds == Set(1...16))
        let large = Set(generated["large.json"]!.split.map(\.threshold))
        #expect(large == [100, 1000])
        let ids = generated["share-ids.json"]!.recover.flatMap { $0.shards.map(\.id) }
        #expect(ids.contains(UInt64.max))
        let classes = Set(generated["reject.json"]!.reject.compactMap(\.error))
        #expect(classes == Set(ShamirError.allFailureClasses).subtracting(["self-check-failed"]))
        #expect(generated["rejection-sampling.json"]!.split.count >= 6)
    }

    /// The recorded rejection-sampling keys really hit a block >= n on the
    /// draw they are named for, and the split skips it.
    @Test func rejectionKeysHitTheirDraw() throws {
        let n = ShamirConstants.groupOrderBigEndian
        func atLeastN(_ b: [UInt8]) -> Bool { !b.lexicographicallyPrecedes(n) }
        for (name, hex) in RejectionSearchResults.keys {
            let key = Hex.decode(hex)!
            let b1 = ReferenceShamir.sha256(key), b2 = ReferenceShamir.sha256(b1), b3 = ReferenceShamir.sha256(b2)
            let split = try ReferenceShamir().split(rootKey: .init(copying: key), threshold: 3, shares: 3)
            let coefficients = split.coefficients.map { $0.withUnsafeBytes { Array($0) } }
            if name.hasPrefix("first-draw") {
                #expect(atLeastN(b1) && !atLeastN(b2))
                #expect(coefficients == [b2, b3])
            } else {
                #expect(!atLeastN(b1) && atLeastN(b2))
                #expect(coefficients == [b1, b3])
            }
        }
        #expect(RejectionSearchResults.keys.count >= 2)
    }

    // MARK: the verifier can fail

    func smallFile() throws -> VectorFile {
        try VectorLoader.load(path: vectorsDirectory.appendingPathComponent("reference/edge-keys.json").path)
    }

    @Test func aChangedShardIsReported() throws {
        var file = try smallFile()
        let i = file.split.firstIndex { $0.shares >= 3 }!
        var value = Array(file.split[i].shards[1].value)
        value[10] = value[10] == "0" ? "1" : "0"
        file.split[i].shards[1].value = String(value)
        let report = verifier.verify(file, label: "edited")
        #expect(report.failed == 1)
        #expect(report.failures.count == 2)  // one line per implementation
        #expect(report.failures.allSatisfy { $0.contains("shard 2 differs") })
        // The line names the case, never the value.
        #expect(report.failures.allSatisfy { !$0.contains(file.split[i].shards[1].value) })
    }

    @Test func aChangedRecoveryKeyIsReported() throws {
        var file = try smallFile()
        file.recover[0].rootKey = String(repeating: "11", count: 32)
        let report = verifier.verify(file, label: "edited")
        #expect(report.failed == 1)
        #expect(report.failures.first?.contains("recovered another root key") == true)
    }

    @Test func aWrongFailureClassIsReported() throws {
        var file = try VectorLoader.load(path: vectorsDirectory.appendingPathComponent("reference/reject.json").path)
        let index = file.reject.firstIndex { $0.error == "root-key-zero" }!
        file.reject[index].error = "root-key-not-canonical"
        let report = verifier.verify(file, label: "edited")
        #expect(report.failed == 1)
        #expect(report.failures.first?.contains("failed as root-key-zero, expected root-key-not-canonical") == true)
    }

    @Test func anAcceptedRejectIsReported() throws {
        var file = try VectorLoader.load(path: vectorsDirectory.appendingPathComponent("reference/reject.json").path)
        let index = file.reject.firstIndex { $0.error == "shares-below-threshold" && $0.threshold == 4 }!
        file.reject[index].shares = 5
        let report = verifier.verify(file, label: "edited")
        #expect(report.failed == 1)
        #expect(report.failures.first?.contains("succeeded; expected it to fail") == true)
    }

    @Test func malformedFilesNameTheSpot() throws {
        func loadError(_ json: String) -> String {
            do {
                _ = try VectorLoader.decode(Data(json.utf8), path: "f.json")
                return "loaded"
            } catch {
                return "\(error)"
            }
        }
        #expect(loadError("not json") == "f.json: not a vector file: malformed at top level")
        #expect(loadError(#"{"group_order":"00","split":[],"recover":[],"reject":[]}"#) == "f.json: group_order is not the P-256 order")
        #expect(loadError(#"{"group_order":"\#(ShamirConstants.groupOrderHex)","split":[],"recover":[{"name":"x","threshold":1,"shards":[{"id":-1,"value":"01"}],"root_key":"01"}],"reject":[]}"#)
                .hasPrefix("f.json: not a vector file:"))
        #expect(loadError(#"{"group_order":"\#(ShamirConstants.groupOrderHex)","split":[]}"#) == "f.json: not a vector file: missing key \"recover\" at top level")
        // A missing file is a read failure naming it, not a parse failure.
        let missing = #expect(throws: VectorLoadError.self) { try VectorLoader.load(path: "/nonexistent/file.json") }
        if let missing { #expect(missing.path == "/nonexistent/file.json" && missing.reason.hasPrefix("cannot read file ("), "\(missing)") }
    }

    @Test func hexIsStrict() {
        #expect(Hex.decode("0aFf") == [0x0a, 0xff])
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
        #expect(Hex.decode("") == [])
        #expect(Hex.encode([0, 0xab]) == "00ab")
    }
}
