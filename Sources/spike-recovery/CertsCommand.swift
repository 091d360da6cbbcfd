import ArgumentParser
import Foundation
import SpiffeIdentity

/// `spike-recovery certs issue --out DIR`: development SVIDs for trying things out.
struct CertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs", abstract: "Development certificates (never needed in production).",
        subcommands: [Issue.self])

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mint a development CA and SVIDs for nexus, keepers, bootstrap and the pilot roles.")

        @Option(help: "Directory to write into (created if missing).") var out: String
        @Option(help: "Number of keeper SVIDs (keeper-1 … keeper-N).") var keepers = 3
        @Option(help: "Trust domain.") var trustDomain = TrustRoots.defaultRoot
        @Option(help: "Validity of the SVIDs in hours.") var hours = 24

        func validate() throws {
            guard (1...1000).contains(keepers) else { throw ValidationError("--keepers must be 1...1000") }
            guard (1...8760).contains(hours) else { throw ValidationError("--hours must be 1...8760") }
            do {
                _ = try SpiffeID(trustDomain: trustDomain, path: "")
            } catch {
                throw ValidationError("--trust-domain: \(error)")
            }
        }

        func run() throws {
            let dir = URL(fileURLWithPath: out)
            do {
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                let pki = try DevelopmentPKI(trustDomain: trustDomain, validFor: TimeInterval(hours) * 3600 * 2)
                try pki.writeBundle(into: dir)
                var written = ["bundle.pem"]
                var identities: [(String, String)] = [("nexus", "/spike/nexus"), ("bootstrap", "/spike/bootstrap")]
                identities += (1...keepers).map { ("keeper-\($0)", "/spike/keeper/\($0)") }
                identities += [("pilot-superuser", SpikeRole.pilotSuperuser.path), ("pilot-recover", SpikeRole.pilotRecover.path),
                               ("pilot-restore", SpikeRole.pilotRestore.path)]
                for (name, path) in identities {
                    try pki.write(path: path, name: name, into: dir, validFor: TimeInterval(hours) * 3600)
                    written += ["\(name).pem", "\(name).key"]
                }
                Console.say("wrote \(written.count) files into \(out): bundle.pem and <name>.pem/.key for "
                            + identities.map(\.0).joined(separator: ", "))
            } catch {
                throw fail(OperatorError("certs issue: cannot write into \(out): \(error.localizedDescription)"))
            }
        }
    }
}
