import Foundation
import SecureMemory
import Testing
import TestSupport

/// Copies of shards left in a running process's memory, counted by
/// tools/memscan: the decimal JSON text a shard travels in must not outlive
/// the request or response that carried it. Each scan also looks for the
/// process's one legitimate copy (the raw bytes it holds), so a scan that
/// reads nothing cannot pass.
///
/// With glibc's per-thread cache off (`noCache`) there is none. With it on,
/// one can remain per shard: BoringSSL decrypts a TLS record in place in a
/// block it mallocs for that record and frees unzeroed, and glibc's
/// overwrite-on-free (M_PERTURB, set by ProcessHardening) skips blocks it
/// keeps in that cache (up to 1 KiB), where a small record lands.
@Suite(.serialized, .timeLimit(.minutes(5))) struct SecretCopiesTests {
    static let memscan = repository.appendingPathComponent("tools/memscan").path

    /// Occurrences of each pattern in the memory of `pid` (patterns go on stdin, never argv).
    static func copies(in pid: Int32, of patterns: [[UInt8]]) async throws -> [Int] {
        let dir = try temporaryDirectory("memscan")
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("patterns")
        let hex = patterns.map { $0.map { String(format: "%02x", $0) }.joined() }.joined(separator: "\n") + "\n"
        _ = FileManager.default.createFile(atPath: input.path, contents: Data(hex.utf8), attributes: [.posixPermissions: 0o600])
        let whereFlag = ProcessInfo.processInfo.environment["MEMSCAN_WHERE"] == nil ? "" : "--where"
        let r = try await runToCompletion("/bin/bash", ["-c", "'\(memscan)' \(whereFlag) \(pid) < '\(input.path)'"], timeout: 120)
        if !whereFlag.isEmpty { print(r.stderr) }
        #expect(r.status == 0, "memscan: \(r.stderr)")
        let counts = r.stdout.split(separator: "\n").compactMap { line in line.split(separator: " ").last.flatMap { Int($0) } }
        #expect(counts.count == patterns.count, "memscan printed \(r.stdout)")
        return counts
    }

    static func decimalText(_ bytes: [UInt8]) -> [UInt8] { Array(bytes.map(String.init).joined(separator: ",").utf8) }

    static let noCache = ["GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"]

    @Test(arguments: [true, false])
    func aKeeperKeepsNoShardTextAfter1000Reads(cacheOff: Bool) async throws {
        let keeper = try await SecretsHygieneTests.Keeper(wrapper: cacheOff ? "env GLIBC_TUNABLES=glibc.malloc.tcache_count=0" : "")
        defer {
            keeper.process.terminate()
            try? FileManager.default.removeItem(at: keeper.dir)
        }
        let dir = keeper.dir
        let script = dir.appendingPathComponent("reads.py")
        try (PythonTLS.preamble + """
            ctx = context(sys.argv[1], sys.argv[2], sys.argv[3])
            port = int(sys.argv[4])
            ok = 0
            for _ in range(10):  # 10 kept-alive connections, 100 reads each
                s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
                s.settimeout(20)
                for _ in range(100):
                    s.sendall(b"POST /v1/store/shard HTTP/1.1\\r\\nHost: k\\r\\nContent-Length: 2\\r\\n\\r\\n{}")
                    data = b""
                    while not data.endswith(b'"Err":""}'):
                        data += s.recv(4096)
                    ok += data.startswith(b"HTTP/1.1 200 OK")
                s.close()
            print("reads:", ok)
            """).write(to: script, atomically: true, encoding: .utf8)
        let r = try await runToCompletion("/usr/bin/python3", [script.path, dir.appendingPathComponent("nexus.pem").path,
                                                               dir.appendingPathComponent("nexus.key").path,
                                                               dir.appendingPathComponent("bundle.pem").path, String(keeper.port)], timeout: 120)
        #expect(r.stdout.contains("reads: 1000"), "\(r.stdout) \(r.stderr)")
        let counts = try await Self.copies(in: keeper.process.processIdentifier, of: [Self.decimalText(keeper.shard), keeper.shard])
        #expect(counts.first.map { $0 <= (cacheOff ? 0 : 1) } == true,
                "\(counts.first ?? -1) copies of the shard's decimal text in the keeper after 1,000 reads (glibc cache off: \(cacheOff))")
        #expect((counts.last ?? 0) >= 1, "the scan did not find the shard the keeper holds: it read nothing useful")
    }

    @Test(arguments: [true, false])
    func aNexusKeepsNoShardTextAfterOperatorRecover(cacheOff: Bool) async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }
        let port = freePort()
        let n = try w.nexus("recover", ["--deadline", "60"],
                            env: ["SPIKE_NEXUS_TLS_PORT": "127.0.0.1:\(port)"].merging(cacheOff ? Self.noCache : [:]) { $1 })
        #expect(try await eventually(60) { !n.events("operational").isEmpty })
        let recovered = await run("/usr/bin/curl", ["-s", "-k", "--max-time", "20", "--cert", w.dir.appendingPathComponent("pilot-recover.pem").path,
                                                    "--key", w.dir.appendingPathComponent("pilot-recover.key").path, "-X", "POST", "-d", "{}",
                                                    "https://127.0.0.1:\(port)/v1/operator/recover"]).output
        #expect(recovered.hasPrefix("{\"shards\":{\"1\":["))
        let shards = w.shards.map { $0.withUnsafeBytes { Array($0) } }
        let root = w.rootKey.withUnsafeBytes { Array($0) }
        let counts = try await Self.copies(in: n.process.processIdentifier, of: shards.map(Self.decimalText) + [root])
        #expect(counts.prefix(3).allSatisfy { $0 <= (cacheOff ? 0 : 1) },
                "copies of each shard's decimal text in the Nexus after /v1/operator/recover: \(Array(counts.prefix(3))) (glibc cache off: \(cacheOff))")
        #expect((counts.last ?? 0) >= 1, "the scan did not find the root key the Nexus holds: it read nothing useful")
        n.process.terminate()
        #expect(try await n.exit() == 0)
        await w.finish()
    }
}
