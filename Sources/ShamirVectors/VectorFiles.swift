import Foundation
import ShamirCore

/// `vectors verify|generate` on files: what the CLI runs, with its reporting left to the caller.
public enum VectorFiles {
    /// Verifies every file; a file that cannot be read is not a pass: its
    /// error line is returned in `unreadable`.
    public static func verify(_ paths: [String], with verifier: VectorVerifier) -> (report: VectorVerifier.Report, unreadable: [String]) {
        var total = VectorVerifier.Report()
        var unreadable: [String] = []
        for path in paths {
            do {
                total.merge(verifier.verify(try VectorLoader.load(path: path), label: path))
            } catch {
                unreadable.append("\(error)")
            }
        }
        return (total, unreadable)
    }

    public enum GenerateError: Error, CustomStringConvertible {
        case referenceRefused(ShamirError)
        case cannotWrite(directory: String, reason: String)

        public var description: String {
            switch self {
            case .referenceRefused(let e): "vectors generate: the reference refused its own input: \(e)"
            case .cannotWrite(let directory, let reason): "vectors generate: cannot write into \(directory): \(reason)"
            }
        }
    }

    /// Writes the project's own vector files (`Vectors/reference`) into
    /// `directory` (created if missing); returns each file's path and case count.
    public static func generate(into directory: String) throws(GenerateError) -> [(path: String, cases: Int)] {
        let files: [(name: String, file: VectorFile)]
        do {
            files = try VectorGenerator().files()
        } catch {
            throw .referenceRefused(error)
        }
        var written: [(path: String, cases: Int)] = []
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for (name, file) in files {
                let path = (directory as NSString).appendingPathComponent(name)
                try VectorLoader.encode(file).write(to: URL(fileURLWithPath: path), options: .atomic)
                written.append((path, file.caseCount))
            }
        } catch {
            throw .cannotWrite(directory: directory, reason: error.localizedDescription)
        }
        return written
    }
}
