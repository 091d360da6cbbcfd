import ArgumentParser
import Foundation
import Shamir
import ShamirCore
import ShamirReference
import ShamirVectors

struct VectorsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vectors",
        abstract: "Check or regenerate Shamir test vectors.",
        subcommands: [Verify.self, Generate.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Check every case of every file against the native implementation and the GMP reference.")

        @Argument(help: "Vector files (format: Spec/shamir.md).")
        var files: [String]

        func run() throws {
            let (total, unreadable) = VectorFiles.verify(files, with: VectorVerifier(schemes: Implementations.all))
            for line in unreadable + total.failures { Console.say(line) }
            Console.say("\(total.passed) passed, \(total.failed + unreadable.count) failed")
            if total.failed + unreadable.count > 0 { throw ExitCode(1) }
        }
    }

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "generate",
            abstract: "Regenerate the project's own vector files from the GMP reference.")

        @Option(help: "Directory to write the files into (created if missing).")
        var out: String

        func run() throws {
            do {
                for (path, cases) in try VectorFiles.generate(into: out) { Console.say("wrote \(path): \(cases) cases") }
            } catch {
                throw fail(OperatorError(error.description))
            }
        }
    }
}

/// The implementations the CLI checks and measures.
enum Implementations {
    static let all: [any ShamirScheme] = [NativeShamir(), ReferenceShamir()]
}
