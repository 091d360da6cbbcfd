import ArgumentParser
import Demo
import Foundation
import Logging
import UnixSignals

/// `spike-recovery demo`: the embedded default (Sources/Demo).
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the whole recovery on loopback: keepers, a SPIKE database, a Nexus that recovers (default 3 keepers, threshold 2).")

    @Option(help: "Number of keepers (shares).") var keepers = 3
    @Option(help: "Shards needed to rebuild the root key.") var threshold = 2
    @Flag(help: "Kill keeper 1 after seeding, before the Nexus asks for shards.") var killOne = false
    @Flag(help: "Print the Nexus summary as one JSON object on stdout.") var json = false

    func validate() throws {
        guard (1...32).contains(keepers) else { throw ValidationError("--keepers must be 1...32 (got \(keepers))") }
        guard threshold >= 1, threshold <= keepers else {
            throw ValidationError("--threshold must be 1...keepers (got \(threshold) with \(keepers) keepers)")
        }
        if killOne && threshold > keepers - 1 {
            throw ValidationError("--kill-one needs threshold <= keepers - 1 (got \(threshold) of \(keepers))")
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = .critical  // the demo prints its own view
            return h
        }
        let demo: DemoRun
        do {
            // The keepers are this executable's `keeper` command.
            demo = try DemoRun(keepers: keepers, threshold: threshold, killOne: killOne,
                               keeperExecutable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path,
                               colour: isatty(2) != 0, output: Console.say)
        } catch {
            throw fail(OperatorError(error.description))
        }
        // Ctrl-C or SIGTERM: stop the keepers and remove the directory before exiting.
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        let interrupt = Task {
            for await _ in signals {
                demo.cleanUp()
                Glibc.exit(130)
            }
        }
        defer { interrupt.cancel() }
        do {
            let outcome = try await demo.run()
            if json { Console.json(outcome.summaryJSON) }
            demo.cleanUp()
            if outcome.ending != .operational { throw ExitCode(1) }
        } catch let error as DemoError {
            demo.cleanUp()
            throw fail(OperatorError(error.description))
        } catch {
            demo.cleanUp()
            throw error
        }
    }
}
