import Foundation
import MutualTLS

/// `bench --system`'s measure of what a supervisor sees: a real
/// `nexus --once --json` process, from just before exec to its
/// `{"operational":true,…}` line on a pipe, against 3 real keeper processes
/// (threshold 2) with SVID files and a SPIKE database; and the
/// `elapsed_ms` that line reports (the recovery proper, start to step 12).
public enum ExecBench {
    public struct Result: Sendable {
        /// Each run's exec → operational line, milliseconds.
        public let execToOperational: [Double]
        /// Each run's own `elapsed_ms`.
        public let elapsed: [Double]
    }

    /// `executable` is this program (`spike-recovery`); `runs` nexus processes, one after another.
    public static func run(executable: String, runs: Int) async throws -> Result {
        let demo = try DemoRun(keepers: 3, threshold: 2, killOne: false, keeperExecutable: executable, colour: false, output: { _ in })
        defer { demo.cleanUp() }
        let deployment = try await demo.deploy()
        deployment.minted.wipe()
        var environment = ProcessInfo.processInfo.environment
        environment["SPIKE_SVID_CERT_FILE"] = demo.dir.appendingPathComponent("nexus.pem").path
        environment["SPIKE_SVID_KEY_FILE"] = demo.dir.appendingPathComponent("nexus.key").path
        environment["SPIKE_SVID_BUNDLE_FILE"] = demo.dir.appendingPathComponent("bundle.pem").path
        environment["SPIKE_NEXUS_KEEPER_PEERS"] = deployment.urls.joined(separator: ",")
        environment["SPIKE_NEXUS_KEEPER_IDS"] = deployment.keeperIDs.map(\.description).joined(separator: ",")
        environment["SPIKE_NEXUS_DATA_DIR"] = demo.dir.appendingPathComponent("nexus").path
        var exec: [Double] = [], elapsed: [Double] = []
        for _ in 0..<runs {
            guard let port = Loopback.freePort() else { throw DemoError("bench: no free loopback port") }
            environment["SPIKE_NEXUS_TLS_PORT"] = "127.0.0.1:\(port)"
            let (wall, line) = try timeOneNexus(executable: executable, environment: environment)
            guard let data = line.data(using: .utf8),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  object["operational"] as? Bool == true, let ms = object["elapsed_ms"] as? Double else {
                throw DemoError("bench: the nexus did not become operational: \(line)")
            }
            exec.append(wall)
            elapsed.append(ms)
        }
        return Result(execToOperational: exec, elapsed: elapsed)
    }

    /// Starts one nexus, blocks until its first stdout line, then waits for its exit.
    /// Blocking is deliberate: the bench does nothing else meanwhile, and a
    /// thread hop would add to what is measured.
    static func timeOneNexus(executable: String, environment: [String: String]) throws -> (Double, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["nexus", "--once", "--json", "--deadline", "30"]
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        let start = ContinuousClock.now
        try process.run()
        var bytes: [UInt8] = []
        let fd = pipe.fileHandleForReading.fileDescriptor
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !bytes.contains(UInt8(ascii: "\n")) {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        let wall = (ContinuousClock.now - start) / .milliseconds(1)
        process.waitUntilExit()
        let line = String(decoding: bytes.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        guard process.terminationStatus == 0 else { throw DemoError("bench: nexus exited \(process.terminationStatus): \(line)") }
        return (wall, line)
    }
}
