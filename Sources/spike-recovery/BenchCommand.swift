import ArgumentParser
import Bench
import Demo
import Foundation

/// `spike-recovery bench`: prints what `FieldBench` and `SystemBench` (Sources/Bench) measure.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the native field and Shamir code against the GMP reference.")

    @Flag(help: "Print one JSON object on stdout instead of the table.") var json = false
    @Flag(help: "Fewer repetitions (a smoke run; numbers are noisier).") var quick = false
    @Flag(help: "Also measure the store (10,000 secret versions), whole recoveries over loopback mTLS, and nexus processes from exec to operational.") var system = false
    @Flag(help: "Only the nexus processes from exec to operational (what a supervisor sees), with the trace's stages.") var execOnly = false

    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

    func run() async throws {
        var results: [(key: String, value: Double)] = []
        let json = self.json
        func record(_ key: String, _ value: Double) {
            results.append((key, value))
            if !json {
                Console.say(key.padding(toLength: 34, withPad: " ", startingAt: 0) + String(format: "%14.1f %@", value, key.hasSuffix("_ms") ? "ms" : "ns"))
            }
        }
        if !execOnly { FieldBench.run(quick ? .quick : .full, record: record) }
        if system && !execOnly { try await SystemBench.run(quick: quick, record: record) }
        if system || execOnly {
            // What a supervisor sees: real nexus processes from exec, beside the in-process figure above.
            let exec = try await ExecBench.run(executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path,
                                               runs: quick ? 3 : 15)
            record("nexus_exec_to_operational_ms", median(exec.execToOperational))
            record("nexus_exec_elapsed_ms", median(exec.elapsed))
            for (stage, times) in exec.stages { record("nexus_stage_\(stage)_ms", median(times)) }
        }
        // Native against GMP, as "how many times faster" (the README's ratio column).
        let byKey = Dictionary(uniqueKeysWithValues: results.map { ($0.key, $0.value) })
        let ratios = FieldBench.comparisons.compactMap { native, gmp in
            byKey[native].flatMap { n in byKey[gmp].map { (native, gmp, $0 / n) } }
        }
        if json {
            let fields = results.map { "\"\($0.key)\":\(String(format: "%.1f", $0.value))" }
                + ratios.map { "\"\($0.0)_vs_gmp\":\(String(format: "%.2f", $0.2))" }
            Console.json("{" + fields.joined(separator: ",") + "}")
        } else {
            for (native, gmp, ratio) in ratios { Console.say(String(format: "%.1fx  ", ratio) + "\(native) vs \(gmp)") }
        }
    }
}
