import BackingStoreWriter
import Foundation
import SecureMemory
import Shamir
import SpiffeIdentity
import Testing
import TestSupport
import WorkloadAPI

@Suite(.serialized, .timeLimit(.minutes(10))) struct WorkloadAPIProcessTests {
    /// Keepers and Nexus as real processes that get their SVIDs only from
    /// Workload API sockets: Nexus restores from Pilot files and hands the
    /// keepers their shards, then a fresh Nexus recovers the key from them,
    /// after one keeper's SVID was rotated.
    @Test func keepersAndNexusOnWorkloadAPISocketsRecover() async throws {
        let dir = try temporaryDirectory()
        let pki = try DevelopmentPKI()
        var apis: [DevelopmentWorkloadAPIServer] = []
        func api(_ path: String) async throws -> DevelopmentWorkloadAPIServer {
            let server = DevelopmentWorkloadAPIServer(socketPath: "/tmp/wapi-\(UInt32.random(in: 0...UInt32.max)).sock")
            try await server.start()
            let (cert, key) = try pki.issue(path: path)
            try server.publish(svid: cert, key: key, bundle: [pki.caCertificate])
            apis.append(server)
            return server
        }
        var keepers: [Process] = []
        var keeperExits: [ExitWatch] = []
        var ports: [Int] = []
        defer {
            for k in keepers where k.isRunning { k.terminate() }
            try? FileManager.default.removeItem(at: dir)
        }
        for i in 1...3 {
            let socket = try await api("/spike/keeper/\(i)")
            let port = freePort()
            let p = Process()
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = ["keeper"]
            var env = ProcessInfo.processInfo.environment
            env["SPIFFE_ENDPOINT_SOCKET"] = "unix://\(socket.socketPath)"
            env["SPIKE_KEEPER_TLS_PORT"] = "127.0.0.1:\(port)"
            for v in ["SPIKE_SVID_CERT_FILE", "SPIKE_SVID_KEY_FILE", "SPIKE_SVID_BUNDLE_FILE"] { env[v] = nil }
            p.environment = env
            _ = FileManager.default.createFile(atPath: dir.appendingPathComponent("keeper-\(i).log").path, contents: nil)
            p.standardError = try FileHandle(forWritingTo: dir.appendingPathComponent("keeper-\(i).log"))
            keeperExits.append(ExitWatch(p))
            try p.run()
            keepers.append(p)
            ports.append(port)
        }
        // Each keeper waits for its SVID from an in-process agent first (up to 30 s).
        for port in ports { #expect(try await eventually(60) { portOpen(port) }, "keeper on \(port) did not start") }
        let nexusAPI = try await api("/spike/nexus")

        // A store under a fresh root key, and that key as Pilot shard files.
        let rootKey = randomRootKey()
        let writer = try SpikeDatabaseWriter(path: dir.appendingPathComponent("nexus/data/spike.db").path, rootKey: rootKey)
        try writer.putSecret(path: "db/password", versions: [.init(version: 1, data: ["p": "s3cret"], created: Date())], created: Date(), updated: Date())
        let keyFile = dir.appendingPathComponent("rk").path
        try rootKey.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }.write(toFile: keyFile, atomically: true, encoding: .utf8)
        let pilot = dir.appendingPathComponent("pilot").path
        #expect(try await cli(["shamir", "split", "--threshold", "2", "--shares", "3", "--root-key-file", keyFile, "--out", pilot], env: [:]).status == 0)

        let env = [
            "SPIFFE_ENDPOINT_SOCKET": "unix://\(nexusAPI.socketPath)",
            "SPIKE_SVID_CERT_FILE": "", "SPIKE_SVID_KEY_FILE": "", "SPIKE_SVID_BUNDLE_FILE": "",
            "SPIKE_NEXUS_KEEPER_PEERS": ports.map { "https://127.0.0.1:\($0)" }.joined(separator: ","),
            "SPIKE_NEXUS_DATA_DIR": dir.appendingPathComponent("nexus").path,
            "SPIKE_NEXUS_SHAMIR_THRESHOLD": "2", "SPIKE_NEXUS_SHAMIR_SHARES": "3",
            "SPIKE_NEXUS_RECOVERY_MAX_INTERVAL": "200ms", "SPIKE_NEXUS_KEEPER_REQUEST_TIMEOUT": "30s",
        ]
        var nexusEnv = env
        nexusEnv["SPIKE_NEXUS_TLS_PORT"] = "127.0.0.1:\(freePort())"
        let restore = try await cli(["nexus", "--once", "--json", "--restore", pilot + "/spike.recovery.1.txt", pilot + "/spike.recovery.3.txt"],
                                           env: nexusEnv)
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(restore.stderr.contains("SVID spiffe://spike.ist/spike/nexus from the Workload API (generation 1"))

        // Rotate keeper 1's SVID; the keeper picks it up without a restart.
        let (rotated, rotatedKey) = try pki.issue(path: "/spike/keeper/1-rotated")
        try apis[0].publish(svid: rotated, key: rotatedKey, bundle: [pki.caCertificate])
        let log1 = dir.appendingPathComponent("keeper-1.log").path
        _ = try await eventually(60) { ((try? String(contentsOfFile: log1, encoding: .utf8)) ?? "").contains("generation 2") }
        #expect(try String(contentsOfFile: log1, encoding: .utf8).contains("SVID spiffe://spike.ist/spike/keeper/1-rotated from the Workload API (generation 2"))

        nexusEnv["SPIKE_NEXUS_TLS_PORT"] = "127.0.0.1:\(freePort())"
        let recovered = try await cli(["nexus", "--once", "--json", "--deadline", "20"], env: nexusEnv)
        #expect(recovered.status == 0, "\(recovered.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(recovered.stdout.utf8)) as? [String: Any]
        #expect(summary?["operational"] as? Bool == true && summary?["secrets"] as? Int == 1)
        #expect((summary?["shards_used"] as? [Int])?.count == 2 && (summary?["keepers_rejected"] as? [Int]) == [])

        for (i, (k, keeperExit)) in zip(keepers, keeperExits).enumerated() {
            k.terminate()
            if !(await keeperExit.exited(within: .seconds(60))) { Issue.record("keeper \(i + 1) did not exit within 60 s of SIGTERM") }
        }
        for a in apis { await a.stop() }
        // Nothing the processes printed holds the key or a shard.
        let shards = try NativeShamir().split(rootKey: rootKey, threshold: 2, shares: 3).shards.map(\.value)
        let scan = SecretScan([rootKey] + shards)
        for i in 1...3 { scan.check(try String(contentsOfFile: dir.appendingPathComponent("keeper-\(i).log").path, encoding: .utf8), "keeper-\(i).log") }
        scan.check(restore.stdout + restore.stderr + recovered.stdout + recovered.stderr, "nexus output")
    }

    @Test func aMissingAgentIsAClearError() async throws {
        let r = try await cli(["keeper"], env: [
            "SPIFFE_ENDPOINT_SOCKET": "unix:///tmp/no-agent-\(UInt32.random(in: 0...UInt32.max)).sock",
            "SPIKE_WORKLOAD_API_TIMEOUT": "1500ms", "SPIKE_KEEPER_TLS_PORT": "127.0.0.1:\(freePort())",
            "SPIKE_SVID_CERT_FILE": "", "SPIKE_SVID_KEY_FILE": "", "SPIKE_SVID_BUNDLE_FILE": "",
        ])
        #expect(r.status == 1)
        #expect(r.stderr.contains("no X.509 SVID from the Workload API at unix:///tmp/no-agent-"))
        #expect(r.stderr.contains(" within 1500 ms (unavailable: "))
        #expect(r.stderr.contains("set SPIKE_WORKLOAD_API_TIMEOUT to wait longer"))
        let bad = try await cli(["keeper"], env: ["SPIFFE_ENDPOINT_SOCKET": "tcp://127.0.0.1:8081",
                                                         "SPIKE_SVID_CERT_FILE": "", "SPIKE_SVID_KEY_FILE": "", "SPIKE_SVID_BUNDLE_FILE": ""])
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("SPIFFE_ENDPOINT_SOCKET \"tcp://127.0.0.1:8081\": only unix: sockets are supported (got tcp:)"))
    }
}
