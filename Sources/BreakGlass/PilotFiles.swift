import Foundation
import SecureMemory
import Shamir
import ShamirCore
import SpikeWire

/// Pilot's break-glass operations on files (`shamir split|recover`, `nexus --restore`).
/// Every shard and key passes through wiping buffers only; errors name files, never content.
public enum PilotFiles {
    /// Reads Pilot shard files: each error names its file; a repeated id and a
    /// value not below the group order are refused.
    public static func read(_ paths: [String], warn: (String) -> Void = { _ in }) throws(BreakGlassError) -> [Shard] {
        var shards: [Shard] = []
        do throws(BreakGlassError) {
            var seen: [Int: String] = [:]
            for path in paths {
                var bytes = try SecretFiles.read(path, warn: warn)
                defer { wipe(&bytes) }
                let parsed: (id: Int, value: SecretBytes)
                do {
                    parsed = try PilotShardFile.parse(bytes)
                } catch {
                    throw BreakGlassError("\(path): \(error)")
                }
                shards.append(Shard(id: UInt64(parsed.id), value: parsed.value))
                if let other = seen[parsed.id] { throw BreakGlassError("\(path): shard id \(parsed.id) is also in \(other)") }
                guard NativeShamir.isCanonicalNonZero(parsed.value) else {
                    throw BreakGlassError("\(path): shard value is not below the P-256 group order")
                }
                seen[parsed.id] = path
            }
        } catch {
            for s in shards { s.value.wipe() }
            throw error
        }
        return shards
    }

    /// `shamir split`: writes `directory/spike.recovery.<i>.txt` (mode 0600) for
    /// every share of the key in `rootKeyFile`; returns the files written.
    /// Existing shard files are refused before any is written, unless `replacing`.
    public static func split(rootKeyFile: String, threshold: Int, shares: Int, into directory: String, replacing: Bool = false,
                             warn: (String) -> Void = { _ in }) throws(BreakGlassError) -> [String] {
        let key = try RootKeyFile.read(rootKeyFile, warn: warn)
        defer { key.wipe() }
        let split: ShamirSplit
        do {
            split = try NativeShamir().split(rootKey: key, threshold: threshold, shares: shares)
        } catch {
            throw BreakGlassError("shamir split: \(error)", kind: .badInput)
        }
        defer { for s in split.shards { s.value.wipe() } }
        guard shares <= PilotShardFile.maximumID else {
            throw BreakGlassError("--shares: Pilot files number shards 1...\(PilotShardFile.maximumID)", kind: .badInput)
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw BreakGlassError("shamir split: cannot write into \(directory): \(error.localizedDescription)")
        }
        let paths = split.shards.map { (directory as NSString).appendingPathComponent(PilotShardFile.fileName(id: Int($0.id))) }
        try SecretFiles.refuseExisting(paths, replacing: replacing)
        for (shard, path) in zip(split.shards, paths) {
            var content = PilotShardFile.content(id: Int(shard.id), value: shard.value)
            defer { wipe(&content) }
            try SecretFiles.write(content, to: path, replacing: replacing)
        }
        return paths
    }

    /// `shamir recover`: rebuilds the key from shard files and writes it as
    /// 64 hex characters (mode 0600) to `out`; returns how many shards were used.
    /// `out` is never one of `files` (that would replace a shard with the key)
    /// and, unless `replacing`, does not exist yet.
    public static func recover(threshold: Int, files: [String], out: String, replacing: Bool = false,
                               warn: (String) -> Void = { _ in }) throws(BreakGlassError) -> (used: Int, read: Int) {
        let target = URL(fileURLWithPath: out).standardizedFileURL.resolvingSymlinksInPath().path
        if let same = files.first(where: { URL(fileURLWithPath: $0).standardizedFileURL.resolvingSymlinksInPath().path == target }) {
            throw BreakGlassError("--out \(out) is the shard file \(same); the root key goes into a file of its own", kind: .badInput)
        }
        try SecretFiles.refuseExisting([out], replacing: replacing)
        let shards = try read(files, warn: warn)
        defer { for s in shards { s.value.wipe() } }
        let key: SecretBytes
        do {
            key = try NativeShamir().recover(threshold: threshold, shards: shards)
        } catch ShamirError.tooFewShards(let needed, let got) {
            throw BreakGlassError("shamir recover: need \(needed) shard files, got \(got)")
        } catch {
            throw BreakGlassError("shamir recover: \(error)")
        }
        defer { key.wipe() }
        var hex = key.hexBytes()
        defer { wipe(&hex) }
        try SecretFiles.write(hex, to: out, replacing: replacing)
        return (min(threshold, shards.count), shards.count)
    }
}

/// A root-key file: 64 hex characters (one trailing newline tolerated) or 32 raw bytes.
public enum RootKeyFile {
    public static func read(_ path: String, warn: (String) -> Void = { _ in }) throws(BreakGlassError) -> SecretBytes {
        var bytes = try SecretFiles.read(path, limit: 128, warn: warn)
        defer { wipe(&bytes) }
        var content = bytes[...]
        while let last = content.last, last == 0x0a || last == 0x0d { content = content.dropLast() }
        if content.count == 64 {
            guard let key = SecretBytes.decodingHex(content) else { throw BreakGlassError("\(path): not 64 hex characters", kind: .badInput) }
            return key
        }
        guard bytes.count == 32 else {
            throw BreakGlassError("\(path): expected 64 hex characters or 32 raw bytes (got \(bytes.count) bytes)", kind: .badInput)
        }
        return bytes.withUnsafeBytes { SecretBytes(copying: $0) }
    }
}
