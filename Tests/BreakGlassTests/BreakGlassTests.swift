import BreakGlass
import Foundation
import SecureMemory
import Shamir
import ShamirCore
import SpikeWire
import Testing
import TestSupport

/// Pilot's break-glass files on disk: what `shamir split|recover` and
/// `nexus --restore` rely on.
@Suite struct BreakGlassTests {
    let dir: String

    init() throws {
        dir = try temporaryDirectory("breakglass").path
    }

    func keyFile(_ key: SecretBytes) throws -> String {
        let path = dir + "/root.key"
        var hex = key.hexBytes()
        defer { wipe(&hex) }
        try SecretFiles.write(hex, to: path)
        return path
    }

    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test func splitThenRecoverGivesTheKeyBack() throws {
        let key = NativeShamir.randomRootKey()
        let written = try PilotFiles.split(rootKeyFile: try keyFile(key), threshold: 2, shares: 3, into: dir + "/shards")
        #expect(written.map { ($0 as NSString).lastPathComponent } == ["spike.recovery.1.txt", "spike.recovery.2.txt", "spike.recovery.3.txt"])
        for path in written { #expect(try mode(path) == 0o600) }
        let (used, read) = try PilotFiles.recover(threshold: 2, files: [written[2], written[0]], out: dir + "/out.key")
        #expect(used == 2 && read == 2)
        #expect(try mode(dir + "/out.key") == 0o600)
        let back = try RootKeyFile.read(dir + "/out.key")
        #expect(back.constantTimeEquals(key))
        // The files are the ones Go SPIKE hands keeper i: share i of the deterministic split.
        let shards = try PilotFiles.read(written)
        let expected = try NativeShamir().split(rootKey: key, threshold: 2, shares: 3).shards
        #expect(zip(shards, expected).allSatisfy { $0.id == $1.id && $0.value.constantTimeEquals($1.value) })
        try? FileManager.default.removeItem(atPath: dir)
    }

    @Test func refusalsNameTheFileAndTheirKind() throws {
        let missing = dir + "/nope.txt"
        #expect(throws: BreakGlassError("\(missing): no such file")) { try PilotFiles.read([missing]) }

        let bad = dir + "/bad.key"
        try SecretFiles.write(Array("not a key".utf8), to: bad)
        #expect(throws: BreakGlassError("\(bad): expected 64 hex characters or 32 raw bytes (got 9 bytes)", kind: .badInput)) {
            try RootKeyFile.read(bad)
        }

        let key = NativeShamir.randomRootKey()
        let written = try PilotFiles.split(rootKeyFile: try keyFile(key), threshold: 2, shares: 2, into: dir)
        #expect(throws: BreakGlassError("\(written[0]): shard id 1 is also in \(written[0])")) {
            try PilotFiles.read([written[0], written[0]])
        }
        // A value at or above the group order is not a shard (n's first byte is 0xff; all-ff is above n).
        let high = dir + "/spike.recovery.9.txt"
        try SecretFiles.write(Array("spike:9:\(String(repeating: "f", count: 64))".utf8), to: high)
        #expect(throws: BreakGlassError("\(high): shard value is not below the P-256 group order")) { try PilotFiles.read([high]) }

        #expect(throws: BreakGlassError("shamir recover: need 2 shard files, got 1")) {
            try PilotFiles.recover(threshold: 2, files: [written[0]], out: dir + "/never.key")
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/never.key"), "a refused recover wrote a file")
        try? FileManager.default.removeItem(atPath: dir)
    }

    @Test func anExistingFileIsKeptUnlessReplacing() throws {
        let path = dir + "/held"
        try SecretFiles.write([1], to: path)
        #expect(throws: BreakGlassError("\(path): already exists; pass --force to replace it", kind: .badInput)) { try SecretFiles.write([2], to: path) }
        #expect(try SecretFiles.read(path) == [1])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["held"], "a refused write left its temp file")
        try SecretFiles.write([3], to: path, replacing: true)
        #expect(try SecretFiles.read(path) == [3])
        var warnings: [String] = []
        _ = try SecretFiles.read(path) { warnings.append($0) }
        #expect(warnings.isEmpty)
        chmod(path, 0o640)
        _ = try SecretFiles.read(path) { warnings.append($0) }
        #expect(warnings == ["warning: \(path) is readable by group or others (mode 640); keep key and shard files at 0600"])
        try? FileManager.default.removeItem(atPath: dir)
    }

    @Test func writesAreAtomicAndNeverPartial() throws {
        let target = dir + "/sub/absent/file"
        #expect(throws: BreakGlassError("\(target): cannot create (No such file or directory)")) { try SecretFiles.write([1, 2, 3], to: target) }
        #expect(!FileManager.default.fileExists(atPath: target))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".tmp") }
        #expect(leftovers.isEmpty)
        try? FileManager.default.removeItem(atPath: dir)
    }
}
