import Foundation
import FuzzTargets
import Testing

/// Every committed fuzz input (seeds, inputs libFuzzer kept, and any crash
/// reproducer saved as `crash-*`) goes through its target again on each test
/// run, so a fixed finding stays fixed.
@Suite struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FuzzCorpus")

    @Test(arguments: FuzzTarget.allCases)
    func corpusReplays(target: FuzzTarget) throws {
        let dir = Self.corpus.appendingPathComponent(target.rawValue)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(files.contains { $0.hasPrefix("seed-") }, "no seeds for \(target.rawValue)")
        for name in files {
            let data = try Data(contentsOf: dir.appendingPathComponent(name))
            target.run(Array(data))
        }
    }

    @Test func everyTargetHasACorpusDirectory() throws {
        let dirs = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path).sorted()
        #expect(dirs == FuzzTarget.allCases.map(\.rawValue).sorted())
    }
}
