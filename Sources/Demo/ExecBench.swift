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
        /// Per stage (`ExecBench.stageNames`, in order), each run's milliseconds.
        public let stages: [(String, [Double])]
    }

    /// Where start-up goes, from one run's wall time and trace (trace times
    /// count from the recorder's creation, after settings and SVID are read):
    /// exec to the trace (process start, libraries, settings, identity load),
    /// to the first round (the machine's steps 1–4), to the first shard (client
    /// TLS set-up and the first handshake with its request), to the threshold,
    /// the key check (rebuild, store open and the check), the load, and on to
    /// operational (wipes, handing distribution over, the line itself).
    public static let stageNames = ["exec_to_trace", "trace_to_round", "first_shard", "threshold", "key_check", "load", "operational"]

    /// The stages of one run, or nil when its trace lacks a mark.
    static func stages(wall: Double, trace: String) -> [Double]? {
        var first: [String: Double] = [:]
        for line in trace.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let event = object["event"] as? String, let t = object["t_ms"] as? Double else { continue }
            if first[event] == nil { first[event] = t }
        }
        guard let round = first["round_started"], let shard = first["shard_received"], let threshold = first["threshold_met"],
              let checked = first["key_verified"], let loaded = first["state_initialized"], let operational = first["operational"] else { return nil }
        return [wall - operational, round, shard - round, threshold - shard, checked - threshold, loaded - checked, operational - loaded]
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
        var stages = stageNames.map { ($0, [Double]()) }
        let tracePath = demo.dir.appendingPathComponent("nexus.trace").path
        for _ in 0..<runs {
            guard let port = Loopback.freePort() else { throw DemoError("bench: no free loopback port") }
            environment["SPIKE_NEXUS_TLS_PORT"] = "127.0.0.1:\(port)"
            try? FileManager.default.removeItem(atPath: tracePath)
            let (wall, line) = try timeOneNexus(executable: executable, environment: environment, trace: tracePath)
            guard let data = line.data(using: .utf8),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  object["operational"] as? Bool == true, let ms = object["elapsed_ms"] as? Double else {
                throw DemoError("bench: the nexus did not become operational: \(line)")
            }
            exec.append(wall)
            elapsed.append(ms)
            let trace = (try? String(contentsOfFile: tracePath, encoding: .utf8)) ?? ""
            guard let times = Self.stages(wall: wall, trace: trace) else { throw DemoError("bench: the nexus trace lacks a stage: \(trace)") }
            for i in stages.indices { stages[i].1.append(times[i]) }
        }
        return Result(execToOperational: exec, elapsed: elapsed, stages: stages)
    }

    /// Starts one nexus, blocks until its first stdout line, then waits for its exit.
    /// Blocking is deliberate: the bench does nothing else meanwhile, and a
    /// thread hop would add to what is measured.
    static func timeOneNexus(executable: String, environment: [String: String], trace: String) throws -> (Double, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["nexus", "--once", "--json", "--deadline", "30", "--trace", trace]
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
