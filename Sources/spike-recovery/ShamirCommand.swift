import ArgumentParser
import Foundation
import SecureMemory
import Shamir
import ShamirCore
import SpikeWire

/// `spike-recovery shamir split|recover`: break-glass tools, byte-compatible with SPIKE Pilot files.
struct ShamirCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shamir", abstract: "Split a root key into Pilot shard files, or recover it from them.",
        subcommands: [Split.self, Recover.self])

    struct Split: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write DIR/spike.recovery.<i>.txt (mode 0600): the shards Go SPIKE hands keeper i.")
        @Option(help: "Shards needed to recover.") var threshold: Int
        @Option(help: "Shards to make (one per keeper).") var shares: Int
        @Option(help: "File with the root key: 64 hex characters or 32 raw bytes.") var rootKeyFile: String
        @Option(help: "Directory for the shard files (created if missing).") var out: String

        func run() throws {
            do {
                let key = try RootKeyFile.read(rootKeyFile)
                let split: ShamirSplit
                do {
                    split = try NativeShamir().split(rootKey: key, threshold: threshold, shares: shares)
                } catch {
                    throw OperatorError("shamir split: \(error)", exitCode: 64)
                }
                guard shares <= PilotShardFile.maximumID else {
                    throw OperatorError("--shares: Pilot files number shards 1...\(PilotShardFile.maximumID)", exitCode: 64)
                }
                try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
                for shard in split.shards {
                    var content = PilotShardFile.content(id: Int(shard.id), value: shard.value)
                    defer { wipe(&content) }
                    try SecretFiles.write(content, to: (out as NSString).appendingPathComponent(PilotShardFile.fileName(id: Int(shard.id))))
                }
                Console.say("wrote \(shares) shard files (threshold \(threshold)) into \(out)")
            } catch let error as OperatorError {
                throw fail(error)
            } catch {
                throw fail(OperatorError("shamir split: cannot write into \(out): \(error.localizedDescription)"))
            }
        }
    }

    struct Recover: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rebuild the root key from Pilot shard files; write it as 64 hex characters (mode 0600).")
        @Option(help: "Shards needed.") var threshold: Int
        @Option(help: "File to write the root key into.") var out: String
        @Argument(help: "Pilot shard files (spike.recovery.<id>.txt).") var files: [String]

        func run() throws {
            do {
                let shards = try PilotFiles.read(files)
                let key: SecretBytes
                do {
                    key = try NativeShamir().recover(threshold: threshold, shards: shards)
                } catch ShamirError.tooFewShards(let needed, let got) {
                    throw OperatorError("shamir recover: need \(needed) shard files, got \(got)", exitCode: 1)
                } catch {
                    throw OperatorError("shamir recover: \(error)", exitCode: 1)
                }
                var hex = key.hexBytes()
                defer { wipe(&hex) }
                try SecretFiles.write(hex, to: out)
                Console.say("root key written to \(out) (from \(min(threshold, shards.count)) of \(shards.count) shards)")
            } catch let error as OperatorError {
                throw fail(error)
            }
        }
    }
}

/// Reading Pilot shard files: each error names its file; duplicates are refused.
enum PilotFiles {
    static func read(_ paths: [String]) throws -> [Shard] {
        var shards: [Shard] = []
        var seen: [Int: String] = [:]
        for path in paths {
            var bytes = try SecretFiles.read(path)
            defer { wipe(&bytes) }
            let parsed: (id: Int, value: SecretBytes)
            do {
                parsed = try PilotShardFile.parse(bytes)
            } catch {
                throw OperatorError("\(path): \(error)", exitCode: 1)
            }
            if let other = seen[parsed.id] {
                throw OperatorError("\(path): shard id \(parsed.id) is also in \(other)", exitCode: 1)
            }
            guard NativeShamir.isCanonicalNonZero(parsed.value) else {
                throw OperatorError("\(path): shard value is not below the P-256 group order", exitCode: 1)
            }
            seen[parsed.id] = path
            shards.append(Shard(id: UInt64(parsed.id), value: parsed.value))
        }
        return shards
    }
}

/// A root-key file: 64 hex characters (one trailing newline tolerated) or 32 raw bytes.
enum RootKeyFile {
    static func read(_ path: String) throws -> SecretBytes {
        var bytes = try SecretFiles.read(path, limit: 128)
        defer { wipe(&bytes) }
        var content = bytes[...]
        while let last = content.last, last == 0x0a || last == 0x0d { content = content.dropLast() }
        if content.count == 64 {
            guard let key = PilotShardFile.decodeHex(content) else { throw OperatorError("\(path): not 64 hex characters", exitCode: 64) }
            return key
        }
        guard bytes.count == 32 else {
            throw OperatorError("\(path): expected 64 hex characters or 32 raw bytes (got \(bytes.count) bytes)", exitCode: 64)
        }
        return bytes.withUnsafeBytes { SecretBytes(copying: $0) }
    }
}
