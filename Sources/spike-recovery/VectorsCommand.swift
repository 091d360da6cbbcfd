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
            abstract: "Check every case of every file against the native implementation and the GMP reference.")

        @Argument(help: "Vector files (format: Spec/shamir.md).")
        var files: [String]

        func run() throws {
            let verifier = VectorVerifier(schemes: Implementations.all)
            var total = VectorVerifier.Report()
            var unreadable = 0
            for path in files {
                do {
                    let file = try VectorLoader.load(path: path)
                    total.merge(verifier.verify(file, label: path))
                } catch {
                    Console.say("\(error)")
                    unreadable += 1
                }
            }
            for line in total.failures { Console.say(line) }
            Console.say("\(total.passed) passed, \(total.failed + unreadable) failed")
            if total.failed + unreadable > 0 { throw ExitCode(1) }
        }
    }

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Regenerate the project's own vector files from the GMP reference.")

        @Option(help: "Directory to write the files into (created if missing).")
        var out: String

        func run() throws {
            let generator = VectorGenerator()
            let files: [(name: String, file: VectorFile)]
            do {
                files = try generator.files()
            } catch {
                throw fail(OperatorError("vectors generate: the reference refused its own input: \(error)"))
            }
            do {
                try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
                for (name, file) in files {
                    let path = (out as NSString).appendingPathComponent(name)
                    try VectorLoader.encode(file).write(to: URL(fileURLWithPath: path), options: .atomic)
                    Console.say("wrote \(path): \(file.caseCount) cases")
                }
            } catch {
                throw fail(OperatorError("vectors generate: cannot write into \(out): \(error.localizedDescription)"))
            }
        }
    }
}

/// The implementations the CLI checks and measures.
enum Implementations {
    static let all: [any ShamirScheme] = [NativeShamir(), ReferenceShamir()]
}
