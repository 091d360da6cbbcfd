import ArgumentParser
import Foundation

@main
struct SpikeRecovery: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spike-recovery",
        abstract: "SPIKE's root-key recovery plane: Shamir tools, keepers, nexus recovery.",
        discussion: """
            Exit status: 0 success; 1 a check failed or the operation was refused; \
            64 bad command line or settings (one line on stderr names it).
            """,
        subcommands: [DemoCommand.self, KeeperCommand.self, NexusCommand.self, DrillCommand.self, ShamirCommand.self, CertsCommand.self, VectorsCommand.self, BenchCommand.self],
        defaultSubcommand: nil
    )

    /// For `nexus`, its warm-ups start before ArgumentParser parses the command
    /// line: that first parse is a few milliseconds of the runtime's first-use
    /// type lookups on this core, while the other core would be idle.
    static func main() async {
        if CommandLine.arguments.dropFirst().first == NexusCommand.configuration.commandName {
            NexusCommand.startWarmUps()
        }
        await main(nil)
    }
}

/// Human-readable output goes to stderr (cli.md); stdout is for --json and
/// explicitly requested data. Each line is one write(2) call: no Foundation on
/// the path of the operational line, whose first use (FileHandle, Data from a
/// String) costs runtime casts.
enum Console {
    static func say(_ line: String) { write(STDERR_FILENO, line) }
    static func json(_ line: String) { write(STDOUT_FILENO, line) }

    /// Writes `line` and a newline, resuming after partial writes and EINTR;
    /// gives up quietly when the reader has gone (nothing left to tell).
    static func write(_ fd: Int32, _ line: String) {
        let bytes = Array((line + "\n").utf8)
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += n
            }
        }
    }
}

/// A refusal the operator should read: one line, already saying what to fix.
struct OperatorError: Error, CustomStringConvertible {
    let description: String
    let exitCode: Int32
    init(_ description: String, exitCode: Int32 = 1) {
        self.description = description
        self.exitCode = exitCode
    }
}

extension ParsableCommand {
    /// Prints an operator error as one line and exits with its code.
    func fail(_ error: OperatorError) -> ExitCode {
        Console.say("spike-recovery: \(error.description)")
        return ExitCode(error.exitCode)
    }
}
