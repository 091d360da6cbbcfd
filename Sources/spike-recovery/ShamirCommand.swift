import ArgumentParser
import BreakGlass

/// `spike-recovery shamir split|recover`: break-glass tools, byte-compatible with SPIKE Pilot files.
struct ShamirCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shamir", abstract: "Split a root key into Pilot shard files, or recover it from them.",
        subcommands: [Split.self, Recover.self])

    struct Split: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "split",
            abstract: "Write DIR/spike.recovery.<i>.txt (mode 0600): the shards Go SPIKE hands keeper i.")
        @Option(help: "Shards needed to recover.") var threshold: Int
        @Option(help: "Shards to make (one per keeper).") var shares: Int
        @Option(help: "File with the root key: 64 hex characters or 32 raw bytes.") var rootKeyFile: String
        @Option(help: "Directory for the shard files (created if missing).") var out: String
        @Flag(help: "Replace shard files that already exist.") var force = false

        func run() throws {
            do {
                _ = try PilotFiles.split(rootKeyFile: rootKeyFile, threshold: threshold, shares: shares, into: out, replacing: force,
                                         warn: Console.say)
                Console.say("wrote \(shares) shard files (threshold \(threshold)) into \(out)")
            } catch {
                throw fail(OperatorError(error))
            }
        }
    }

    struct Recover: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "recover", abstract: "Rebuild the root key from Pilot shard files; write it as 64 hex characters (mode 0600).")
        @Option(help: "Shards needed.") var threshold: Int
        @Option(help: "File to write the root key into.") var out: String
        @Argument(help: "Pilot shard files (spike.recovery.<id>.txt).") var files: [String]
        @Flag(help: "Replace the output file if it already exists.") var force = false

        func run() throws {
            do {
                let (used, read) = try PilotFiles.recover(threshold: threshold, files: files, out: out, replacing: force, warn: Console.say)
                Console.say("root key written to \(out) (from \(used) of \(read) shards)")
            } catch {
                throw fail(OperatorError(error))
            }
        }
    }
}

extension OperatorError {
    /// A break-glass refusal: bad input is a usage error (64), anything else exit 1.
    init(_ error: BreakGlassError) {
        self.init(error.description, exitCode: error.kind == .badInput ? 64 : 1)
    }
}
