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
            commandName: "issue",
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
            do {
                // The CA outlives the SVIDs, so a reissued SVID set can share it.
                let pki = try DevelopmentPKI(trustDomain: trustDomain, validFor: TimeInterval(hours) * 3600 * 2)
                let names = try pki.writeIdentities(keepers: keepers, into: URL(fileURLWithPath: out), validFor: TimeInterval(hours) * 3600)
                Console.say("wrote \(1 + 2 * names.count) files into \(out): bundle.pem and <name>.pem/.key for "
                            + names.joined(separator: ", "))
            } catch {
                throw fail(OperatorError("certs issue: cannot write into \(out): \(error.localizedDescription)"))
            }
        }
    }
}
