import Foundation
import SpiffeIdentity
import Testing
import TestSupport

/// The repository, and the `spike-recovery` binary the tests start (`BuiltCLI`).
let repository = BuiltCLI.repository
let binary = BuiltCLI.path

/// Runs the CLI with arguments and environment to completion, off the
/// cooperative pool, bounded in time.
func cli(_ args: [String], env: [String: String] = [:], timeout: Duration = .seconds(60)) async throws -> Finished {
    try await runToCompletion(binary, args, environment: env, timeout: Double(timeout.components.seconds))
}

func mode(_ path: String) throws -> Int {
    (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
}

struct GoVectors: Decodable {
    struct Shard: Decodable { let id: UInt64; let value: String }
    struct Split: Decodable { let name: String; let root_key: String; let threshold: Int; let shares: Int; let shards: [Shard] }
    let split: [Split]
}

@Suite(.serialized, .timeLimit(.minutes(5))) struct ShamirCLITests {
    @Test func splitMatchesGoSpikeByteForByte() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: binary), "build the CLI first: swift build")
        let vectors = try JSONDecoder().decode(GoVectors.self, from: Data(contentsOf: repository.appendingPathComponent("Vectors/go-spike/go-spike-shamir.json")))
        for v in vectors.split.filter({ $0.shares <= 20 }).prefix(12) {
            let dir = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            let keyFile = dir.appendingPathComponent("root.key").path
            try v.root_key.write(toFile: keyFile, atomically: true, encoding: .utf8)
            let out = dir.appendingPathComponent("shards").path
            let r = try await cli(["shamir", "split", "--threshold", "\(v.threshold)", "--shares", "\(v.shares)", "--root-key-file", keyFile, "--out", out])
            #expect(r.status == 0, "\(v.name): \(r.stderr)")
            #expect(r.stdout.isEmpty)
            #expect(!r.stderr.contains(v.root_key) && !r.stderr.contains(v.shards[0].value))
            let files = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
            #expect(files == (1...v.shares).map { "spike.recovery.\($0).txt" }.sorted(), "\(v.name)")
            for s in v.shards {
                let path = out + "/spike.recovery.\(s.id).txt"
                #expect(try String(contentsOfFile: path, encoding: .utf8) == "spike:\(s.id):\(s.value)", "\(v.name) shard \(s.id)")
                #expect(try mode(path) == 0o600)
            }
            // And back: any threshold of them.
            let keyOut = dir.appendingPathComponent("recovered.key").path
            let files2 = v.shards.suffix(v.threshold).map { out + "/spike.recovery.\($0.id).txt" }
            let back = try await cli(["shamir", "recover", "--threshold", "\(v.threshold)", "--out", keyOut] + files2)
            #expect(back.status == 0, "\(v.name): \(back.stderr)")
            #expect(try String(contentsOfFile: keyOut, encoding: .utf8) == v.root_key)
            #expect(try mode(keyOut) == 0o600)
        }
    }

    /// Neither command replaces a file without --force (recover never onto one
    /// of its own shard files), and a key or shard file others can read is named.
    @Test func noFileIsReplacedWithoutForce() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = String(repeating: "0f", count: 32)
        let keyFile = dir.appendingPathComponent("k").path
        try key.write(toFile: keyFile, atomically: true, encoding: .utf8)
        chmod(keyFile, 0o644)
        let shards = dir.appendingPathComponent("s").path
        let split = ["shamir", "split", "--threshold", "2", "--shares", "3", "--root-key-file", keyFile, "--out", shards]
        let first = try await cli(split)
        #expect(first.status == 0)
        #expect(first.stderr.contains("warning: \(keyFile) is readable by group or others (mode 644); keep key and shard files at 0600"))
        chmod(keyFile, 0o600)
        let s1 = shards + "/spike.recovery.1.txt", s2 = shards + "/spike.recovery.2.txt"
        let shard2 = try String(contentsOfFile: s2, encoding: .utf8)
        try "spike:1:not-a-shard".write(toFile: s1, atomically: true, encoding: .utf8)
        let again = try await cli(split)
        #expect(again.status == 64 && again.stderr.contains("\(s1): already exists; pass --force to replace it"))
        #expect(try String(contentsOfFile: s1, encoding: .utf8) == "spike:1:not-a-shard", "a refused split changed a file")
        let forced = try await cli(split + ["--force"])
        #expect(forced.status == 0 && !forced.stderr.contains("warning"))
        #expect(try String(contentsOfFile: s2, encoding: .utf8) == shard2)

        let onto = try await cli(["shamir", "recover", "--threshold", "2", "--force", "--out", s2, s1, s2])
        #expect(onto.status == 64 && onto.stderr.contains("--out \(s2) is the shard file \(s2)"))
        #expect(try String(contentsOfFile: s2, encoding: .utf8) == shard2)
        let out = dir.appendingPathComponent("out.key").path
        try "keep".write(toFile: out, atomically: true, encoding: .utf8)
        let taken = try await cli(["shamir", "recover", "--threshold", "2", "--out", out, s1, s2])
        #expect(taken.status == 64 && taken.stderr.contains("\(out): already exists; pass --force to replace it"))
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "keep")
        #expect(try await cli(["shamir", "recover", "--threshold", "2", "--force", "--out", out, s1, s2]).status == 0)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == key)
        #expect(try mode(out) == 0o600)
    }

    @Test func recoverErrorsNameTheFileAndWriteNothing() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = String(repeating: "0f", count: 32)
        try key.write(toFile: dir.appendingPathComponent("k").path, atomically: true, encoding: .utf8)
        let shards = dir.appendingPathComponent("s").path
        #expect(try await cli(["shamir", "split", "--threshold", "2", "--shares", "3", "--root-key-file", dir.appendingPathComponent("k").path, "--out", shards]).status == 0)
        let out = dir.appendingPathComponent("out.key").path
        func recover(_ files: [String], threshold: Int = 2) async throws -> Finished {
            try await cli(["shamir", "recover", "--threshold", "\(threshold)", "--out", out] + files)
        }
        let s1 = shards + "/spike.recovery.1.txt", s2 = shards + "/spike.recovery.2.txt"
        let tooFew = try await recover([s1])
        #expect(tooFew.status != 0 && tooFew.stderr.contains("need 2 shard files, got 1"))
        let dup = dir.appendingPathComponent("dup.txt").path
        try FileManager.default.copyItem(atPath: s1, toPath: dup)
        let duplicate = try await recover([s1, dup])
        #expect(duplicate.status != 0 && duplicate.stderr.contains("\(dup): shard id 1 is also in \(s1)"))
        let bad = dir.appendingPathComponent("bad.txt").path
        try "spike:2:zz".write(toFile: bad, atomically: true, encoding: .utf8)
        let badFile = try await recover([s1, bad])
        #expect(badFile.status != 0 && badFile.stderr.contains("\(bad): shard has 2 hex digits, expected 64"))
        let missing = try await recover([s1, dir.appendingPathComponent("nope").path])
        #expect(missing.status != 0 && missing.stderr.contains("nope: no such file"))
        let order = dir.appendingPathComponent("order.txt").path
        try ("spike:2:" + "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551").write(toFile: order, atomically: true, encoding: .utf8)
        let notCanonical = try await recover([s1, order])
        #expect(notCanonical.status != 0 && notCanonical.stderr.contains("\(order): shard value is not below the P-256 group order"))
        #expect(!FileManager.default.fileExists(atPath: out))
        for r in [tooFew, duplicate, badFile, missing, notCanonical] { #expect(!r.stderr.contains(key)) }
        #expect(try await recover([s2, s1]).status == 0)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == key)
    }

    @Test func badFlagsAndSettingsAreOneClearLine() async throws {
        // A nexus's warm-ups start before its command line is parsed (SpikeRecovery.main);
        // the parse, its refusals and its help are still ArgumentParser's.
        let unknown = try await cli(["nexus", "--no-such-flag"])
        #expect(unknown.status == 64 && unknown.stderr.contains("Error: Unknown option '--no-such-flag'"), "\(unknown.stderr)")
        let zero = try await cli(["nexus", "--deadline", "0"])
        #expect(zero.status == 64 && zero.stderr.contains("Error: --deadline must be a positive number of seconds"), "\(zero.stderr)")
        let help = try await cli(["nexus", "--help"])
        #expect(help.status == 0 && help.stdout.contains("USAGE: spike-recovery nexus"), "\(help.stdout)")
        let r = try await cli(["nexus"], env: ["SPIKE_NEXUS_KEEPER_PEERS": "https://a:1,http://b:2"])
        #expect(r.status == 64)
        #expect(r.stderr.contains("SPIKE_NEXUS_KEEPER_PEERS: entry 2 is not an https://host[:port][/prefix] URL"))
        let t = try await cli(["nexus"], env: ["SPIKE_NEXUS_KEEPER_PEERS": "https://a:1", "SPIKE_NEXUS_SHAMIR_THRESHOLD": "two"])
        #expect(t.status == 64 && t.stderr.contains("SPIKE_NEXUS_SHAMIR_THRESHOLD: expected a whole number"))
        // Every bad setting is exit 64 and one line naming it: never a crash, never silently taken.
        let onePeer = ["SPIKE_NEXUS_KEEPER_PEERS": "https://a:1", "SPIKE_NEXUS_SHAMIR_SHARES": "1", "SPIKE_NEXUS_SHAMIR_THRESHOLD": "1"]
        for (variable, value, problem) in [
            ("SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL", "9999999999999999h", "expected a duration from 1s to 24h"),
            ("SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL", "1ns", "expected a duration from 1s to 24h"),
            ("SPIKE_NEXUS_KEEPER_REQUEST_TIMEOUT", "1e400s", "expected a duration from 10ms to 5m"),
            ("SPIKE_NEXUS_RECOVERY_MAX_INTERVAL", "2h", "expected a duration from 10ms to 1h"),
            ("SPIKE_SYSTEM_LOG_LEVEL", "loud", "expected one of trace, debug, info, warn, error (got \"loud\")"),
            ("SPIKE_NEXUS_KEEPER_PEERS", "https://a:99999", "entry 1 has port 99999; a port is 1...65535"),
            ("SPIKE_TLS_MAX_CONNECTIONS", "0", "expected a whole number in 1...65536 (got \"0\")"),
        ] {
            let r = try await cli(["nexus"], env: onePeer.merging([variable: value]) { $1 })
            #expect(r.status == 64, "\(variable)=\(value): exit \(r.status)")
            #expect(r.stderr.contains("\(variable): \(problem)"), "\(variable)=\(value): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(variable)=\(value): \(r.stderr)")
        }
        let capKeeper = try await cli(["keeper"], env: ["SPIKE_TLS_MAX_CONNECTIONS": "many"])
        #expect(capKeeper.status == 64 && capKeeper.stderr.contains("SPIKE_TLS_MAX_CONNECTIONS: expected a whole number in 1...65536 (got \"many\")"))
        let loudKeeper = try await cli(["keeper"], env: ["SPIKE_SYSTEM_LOG_LEVEL": "loud"])
        #expect(loudKeeper.status == 64 && loudKeeper.stderr.contains("SPIKE_SYSTEM_LOG_LEVEL: expected one of"))
        let peers3 = "https://a:1,https://b:2,https://c:3"
        let idsShort = try await cli(["nexus"], env: ["SPIKE_NEXUS_KEEPER_PEERS": peers3,
                                                     "SPIKE_NEXUS_KEEPER_IDS": "spiffe://spike.ist/spike/keeper/1,spiffe://spike.ist/spike/keeper/2"])
        #expect(idsShort.status == 64 && idsShort.stderr.contains(
            "SPIKE_NEXUS_KEEPER_IDS: lists 2 IDs but SPIKE_NEXUS_KEEPER_PEERS lists 3 keepers (one ID per keeper, in the same order)"))
        let idsRole = try await cli(["nexus"], env: ["SPIKE_NEXUS_KEEPER_PEERS": peers3,
                                                    "SPIKE_NEXUS_KEEPER_IDS": "spiffe://spike.ist/spike/keeper/1,spiffe://spike.ist/spike/nexus"])
        #expect(idsRole.status == 64 && idsRole.stderr.contains("SPIKE_NEXUS_KEEPER_IDS: entry 2, spiffe://spike.ist/spike/nexus, is not a keeper ID"))
        let k = try await cli(["keeper"], env: ["SPIKE_KEEPER_TLS_PORT": "localhost"])
        #expect(k.status == 64 && k.stderr.contains("SPIKE_KEEPER_TLS_PORT: expected [host]:port"))
        let f = try await cli(["keeper"], env: ["SPIKE_SVID_CERT_FILE": "/nonexistent/a.pem", "SPIKE_SVID_KEY_FILE": "/x", "SPIKE_SVID_BUNDLE_FILE": "/y"])
        #expect(f.status == 64 && f.stderr.contains("SPIKE_SVID_CERT_FILE: /nonexistent/a.pem: no such file"))
    }

    /// An own SVID that is expired, or of the other role, is one line naming
    /// the SVID file, exit 64: nothing listens, nothing is asked of a keeper.
    @Test func anUnusableOwnSVIDAtStartIsOneLine() async throws {
        let dir = try temporaryDirectory("own-svid")
        defer { try? FileManager.default.removeItem(at: dir) }
        let pki = try DevelopmentPKI()
        try pki.writeBundle(into: dir)
        var expired = DevelopmentPKI.Flaws()
        expired.notValidBefore = Date().addingTimeInterval(-7200)
        expired.notValidAfter = Date().addingTimeInterval(-3600)
        try pki.write(path: "/spike/keeper/1", name: "old-keeper", into: dir, flaws: expired)
        try pki.write(path: "/spike/nexus", name: "old-nexus", into: dir, flaws: expired)
        try pki.write(path: "/spike/nexus", name: "nexus", into: dir)
        func files(_ name: String) -> [String: String] {
            ["SPIKE_SVID_CERT_FILE": dir.appendingPathComponent("\(name).pem").path, "SPIKE_SVID_KEY_FILE": dir.appendingPathComponent("\(name).key").path,
             "SPIKE_SVID_BUNDLE_FILE": dir.appendingPathComponent("bundle.pem").path, "SPIKE_KEEPER_TLS_PORT": "127.0.0.1:\(freePort())",
             "SPIKE_NEXUS_TLS_PORT": "127.0.0.1:\(freePort())"]
        }
        let cert = { (name: String) in "SPIKE_SVID_CERT_FILE (\(dir.appendingPathComponent("\(name).pem").path)): the SVID " }
        let oldKeeper = try await cli(["keeper"], env: files("old-keeper"))
        #expect(oldKeeper.status == 64 && oldKeeper.stderr.contains(cert("old-keeper") + "spiffe://spike.ist/spike/keeper/1 expired at"), "\(oldKeeper.stderr)")
        let wrongRole = try await cli(["keeper"], env: files("nexus"))
        #expect(wrongRole.status == 64 && wrongRole.stderr.contains(cert("nexus") + "spiffe://spike.ist/spike/nexus is not a keeper ID"), "\(wrongRole.stderr)")
        var nexusEnv = files("old-nexus")
        nexusEnv["SPIKE_NEXUS_KEEPER_PEERS"] = "https://127.0.0.1:1"
        nexusEnv["SPIKE_NEXUS_SHAMIR_SHARES"] = "1"
        nexusEnv["SPIKE_NEXUS_SHAMIR_THRESHOLD"] = "1"
        nexusEnv["SPIKE_NEXUS_DATA_DIR"] = dir.path
        let oldNexus = try await cli(["nexus", "--allow-empty-store", "--deadline", "5"], env: nexusEnv)
        #expect(oldNexus.status == 64 && oldNexus.stderr.contains(cert("old-nexus") + "spiffe://spike.ist/spike/nexus expired at"), "\(oldNexus.stderr)")
        for r in [oldKeeper, wrongRole, oldNexus] { #expect(!r.stderr.contains("cannot listen")) }
    }
}

@Suite(.serialized, .timeLimit(.minutes(5))) struct DemoAndNexusProcessTests {
    @Test func demoJSONSummary() async throws {
        let r = try await cli(["demo", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let line = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!line.contains("\n"))
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        #expect(object["operational"] as? Bool == true)
        #expect(object["secrets"] as? Int == 5 && object["secret_versions"] as? Int == 8 && object["policies"] as? Int == 2)
        #expect((object["shards_used"] as? [Int])?.count == 2)
        #expect(r.stderr.contains("demo ok"))
    }

    @Test func demoKilledMidRunLeavesNothingBehind() async throws {
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory()).filter { $0.hasPrefix("spike-recovery-demo-") })
        // The blocking reads and waits run on a thread of their own, not on the cooperative pool.
        let dir: String = try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result {
                    let p = Process()
                    p.executableURL = URL(fileURLWithPath: binary)
                    p.arguments = ["demo", "--keepers", "4"]
                    let err = Pipe()
                    p.standardError = err
                    try p.run()
                    // Wait until the keepers are up, then interrupt.
                    var seen = ""
                    let handle = err.fileHandleForReading
                    while !seen.contains("keeper processes up"), p.isRunning {
                        let chunk = handle.availableData
                        if chunk.isEmpty { break }
                        seen += String(decoding: chunk, as: UTF8.self)
                    }
                    let dirLine = seen.split(separator: "\n").first { $0.contains("dev CA and SVIDs") }.map(String.init) ?? ""
                    p.interrupt()
                    p.waitUntilExit()
                    return dirLine.components(separatedBy: " in ").last ?? ""
                })
            }.start()
        }
        #expect(!dir.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir), "temporary directory left behind")
        let after = Set(try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory()).filter { $0.hasPrefix("spike-recovery-demo-") })
        #expect(after.subtracting(before).isEmpty)
        // No keeper process of that demo survives.
        try await Task.sleep(for: .milliseconds(500))
        #expect(await run("/usr/bin/pgrep", ["-f", dir.isEmpty ? "no-such-dir" : dir]).status == 1, "a keeper process outlived the demo")
    }
}
