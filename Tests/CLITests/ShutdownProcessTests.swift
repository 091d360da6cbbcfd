import Foundation
import Testing
import TestSupport

/// Starts `binary args` with output to files in `dir` (nothing blocks on a pipe).
func start(_ args: [String], env: [String: String], dir: URL, name: String) throws -> (Process, ExitWatch, URL) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: binary)
    p.arguments = args
    p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
    let err = dir.appendingPathComponent("\(name).err")
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    p.standardOutput = FileHandle.nullDevice
    p.standardError = try FileHandle(forWritingTo: err)
    let watch = ExitWatch(p)
    try p.run()
    return (p, watch, err)
}

func text(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }

/// SIGTERM on real processes: graceful shutdown in the order the commands
/// state, exit 0, within 3 s.
@Suite(.serialized, .timeLimit(.minutes(5))) struct ShutdownProcessTests {
    /// SIGTERM, then: exited within 3 s, status 0, and its last log line says `stopped`.
    func expectGracefulExit(_ p: Process, _ exit: ExitWatch, log: URL, saying stopped: String,
                            sourceLocation: SourceLocation = #_sourceLocation) async {
        let clock = ContinuousClock()
        let sent = clock.now
        kill(p.processIdentifier, SIGTERM)
        #expect(await exit.exited(within: .seconds(3)), "still running 3 s after SIGTERM: \(text(log))", sourceLocation: sourceLocation)
        #expect(clock.now - sent < .seconds(3), sourceLocation: sourceLocation)
        #expect(p.terminationReason == .exit && p.terminationStatus == 0, "\(text(log))", sourceLocation: sourceLocation)
        #expect(text(log).contains(stopped), sourceLocation: sourceLocation)
    }

    /// A mutual-TLS HTTP/1.1 client that reads one keep-alive answer, then sits
    /// idle and prints "closed" when the server ends the connection.
    static let idleClient = PythonTLS.preamble + """
        port, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
        s = context(cert, key, ca).wrap_socket(socket.create_connection(("127.0.0.1", port)))
        s.sendall(b"POST /v1/store/shard HTTP/1.1\\r\\nHost: k\\r\\nContent-Length: 2\\r\\n\\r\\n{}")
        answer = s.recv(4096)
        print("answered" if answer.startswith(b"HTTP/1.1 ") else "no answer", flush=True)
        while True:
            try:
                if not s.recv(4096): break
            except (ssl.SSLError, OSError):
                break
        print("closed", flush=True)
        """

    @Test func keeperWithIdleKeepAliveClientsExitsAtOnce() async throws {
        let dir = try temporaryDirectory("shutdown-keeper")
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try await cli(["certs", "issue", "--out", dir.path, "--keepers", "1"]).status == 0)
        let port = freePort()
        let (keeper, exit, err) = try start(["keeper"], env: [
            "SPIKE_SVID_CERT_FILE": dir.appendingPathComponent("keeper-1.pem").path,
            "SPIKE_SVID_KEY_FILE": dir.appendingPathComponent("keeper-1.key").path,
            "SPIKE_SVID_BUNDLE_FILE": dir.appendingPathComponent("bundle.pem").path,
            "SPIKE_KEEPER_TLS_PORT": "127.0.0.1:\(port)"], dir: dir, name: "keeper")
        defer { if keeper.isRunning { kill(keeper.processIdentifier, SIGKILL) } }
        guard try await eventually(30, { portOpen(port) }) else {
            Issue.record("the keeper did not listen: \(text(err))")
            return
        }
        let script = dir.appendingPathComponent("idle.py")
        try Self.idleClient.write(to: script, atomically: true, encoding: .utf8)
        var clients: [(Process, ExitWatch, URL)] = []
        for i in 0..<3 {
            let out = dir.appendingPathComponent("client-\(i).out")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            let c = Process()
            c.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            c.arguments = [script.path, String(port), dir.appendingPathComponent("nexus.pem").path,
                           dir.appendingPathComponent("nexus.key").path, dir.appendingPathComponent("bundle.pem").path]
            c.standardOutput = try FileHandle(forWritingTo: out)
            c.standardError = c.standardOutput
            let watch = ExitWatch(c)
            try c.run()
            clients.append((c, watch, out))
        }
        defer { for (c, _, _) in clients where c.isRunning { c.terminate() } }
        #expect(try await eventually(30) { clients.allSatisfy { text($0.2).contains("answered") } },
                "clients: \(clients.map { text($0.2) })")

        await expectGracefulExit(keeper, exit, log: err, saying: "stopped; shard wiped")
        // Each idle connection was closed by the keeper, not left to die with the process.
        for (_, watch, out) in clients {
            #expect(await watch.exited(within: .seconds(10)))
            #expect(text(out).contains("closed"))
        }
    }

    @Test func nexusInItsDistributionLoopExitsAtOnce() async throws {
        let w = try await NexusWorld(fill: true)
        var env = w.env(port: freePort())
        env["SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL"] = "1s"  // the shortest allowed
        let (nexus, exit, err) = try start(["nexus"], env: env, dir: w.dir, name: "nexus")
        defer { if nexus.isRunning { kill(nexus.processIdentifier, SIGKILL) } }
        // Operational, then at least two distribution passes: it is in the loop.
        let inLoop = try await eventually(60) {
            text(err).contains("step 12 operational") && text(err).components(separatedBy: "distribution: 3 of 3 keepers hold their shard").count > 2
        }
        guard inLoop else {
            Issue.record("nexus did not reach its distribution loop: \(text(err))")
            await w.stop()
            return
        }
        await expectGracefulExit(nexus, exit, log: err, saying: "stopped; root key wiped")
        await w.stop()
    }
}
